//! OPSD: on-policy self-distillation toward the initial model reading a reference solution.
//!
//! # What it computes (`algorithms.md` §6)
//! No reward, no group, no advantage. At every response position the student distribution
//! `p^S = softmax(z^S/τ)` is matched to the teacher's `p^T = softmax(z^T/τ)` (the frozen initial
//! weights with the problem's reference solution in the context) with the generalized
//! Jensen-Shannon divergence: `β = 0` is `KL(p^T ‖ p^S)`, `β = 1` is `KL(p^S ‖ p^T)`, otherwise
//! `M = β p^T + (1 − β) p^S` and `D = β KL(p^T ‖ M) + (1 − β) KL(p^S ‖ M)`. Optionally both
//! distributions are restricted to the teacher's top-k tokens and renormalized. Loss:
//! token-mean of `D`.
//!
//! # Defaults and their source
//! Decision 8: β = 0.5, τ = 1.1, fixed teacher (`--fixed_teacher`, every script but
//! `run_opsd_ema.sh`), full vocabulary (`top_k_loss = 0`).
//!
//! One completion per prompt (`rollout.group_size = 1`, the registry's run default): no group
//! is needed, and the reference samples one (`lmbda = 1`).
//!
//! # The teacher's context
//! A new user message through the chat template with the generation prompt, as
//! siyan-zhao/OPSD@590ec26 `data_collator.py` L56-58, L82-93 builds it:
//! `{problem}\n\nHere is a reference solution to this problem:\n{solution}\n` + the
//! transition sentence (L28) + `\nPlease reason step by step, and put your final answer within
//! \boxed{}.`, with `problem` the problem statement alone and `solution` the data set's worked
//! solution, neither stripped (see [`teacher_message`]). A problem without a solution is an
//! error, as the reference's data always has one. A task with a solution slot of its own (the
//! CPU world's `[s:…]`) gets the solution there.
//!
//! # Differences from the reference
//! The endpoints β = 0 and β = 1 are the KLs exactly (the mixture formula tends to 0 there).
//! zoo samples at the run's `rollout.temperature`; the reference samples at τ as well. The
//! sampled-token ("tinker") variant is not implemented. In the paper's runs the student's
//! prompt reached vLLM without its chat template while `generated_ids[:, student_prompt_len:]`
//! cut the completion at the templated length (`opsd_trainer.py` L856-863, L1383-1399), so the
//! teacher and the loss skipped the first few completion tokens; zoo renders both prompts with
//! the template and scores every response token. The collator encodes the rendered teacher
//! prompt with the tokenizer's special tokens (`tokenizer(text)`, L97-115): none for Qwen's and
//! SmolLM2's tokenizers, the same ids as zoo's; a tokenizer that adds a BOS (Llama 3's) would
//! get it twice there, and once in zoo.
//!
//! # References
//! Zhao et al. (arXiv 2601.18734); siyan-zhao/OPSD `opsd_trainer.py::generalized_jsd_loss`.

use serde::{Deserialize, Serialize};
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::activation::log_softmax;
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, ProbeInput, Result, TeacherGroup, TeacherPass, TeacherRow, TeacherWeights,
    TokenMatrix,
};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// Which weights the teacher uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Teacher {
    /// The frozen initial policy (`--fixed_teacher`).
    Initial,
    /// The current policy, without gradient.
    Current,
    /// An EMA of the policy (`run_opsd_ema.sh`, decay 0.999).
    Ema,
}

/// OPSD's configuration; defaults per decision 8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsdConfig {
    /// `β` of the generalized JSD (0: forward KL, 1: reverse KL).
    pub jsd_beta: f32,
    /// `τ`, dividing both logits.
    pub temperature: f32,
    /// Restrict both distributions to the teacher's top-k tokens (absent, null or 0: the full
    /// vocabulary).
    pub topk: Option<usize>,
    /// The teacher's weights.
    pub teacher: Teacher,
    /// The EMA rate of `teacher = "ema"` (1 − decay).
    pub ema_rate: f32,
}

impl Default for OpsdConfig {
    fn default() -> Self {
        Self {
            jsd_beta: 0.5,
            temperature: 1.1,
            topk: None,
            teacher: Teacher::Initial,
            ema_rate: 0.001,
        }
    }
}

/// Checks `β` and `τ`; `algo` prefixes the message.
pub fn validate_divergence(algo: &str, beta: f32, temperature: f32) -> Result<()> {
    if !((0.0..=1.0).contains(&beta) && temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::Config(format!(
            "{algo}: need `jsd_beta` in [0, 1] and a positive `temperature`, got {beta} and {temperature}"
        )));
    }
    Ok(())
}

#[typetag::serde(name = "opsd")]
impl ObjectiveConfig for OpsdConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        validate_divergence("opsd", self.jsd_beta, self.temperature)?;
        if self.teacher == Teacher::Ema && !(self.ema_rate > 0.0 && self.ema_rate <= 1.0) {
            return Err(Error::Config(format!(
                "opsd: `ema_rate` must lie in (0, 1], got {}",
                self.ema_rate
            )));
        }
        Ok(Box::new(Opsd {
            config: self.clone(),
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "opsd",
        summary: "on-policy distillation toward the initial model reading the solution (OPSD)",
        default_config: || Box::new(OpsdConfig::default()),
        origin: "zoo-opsd",
        // One on-policy completion per prompt, as the reference (`lmbda = 1`) samples.
        run_defaults: "[rollout]\ngroup_size = 1",
        llm_run_defaults: "[rollout]\ntemperature = 1.1",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The OPSD objective.
#[derive(Debug, Clone)]
pub struct Opsd {
    config: OpsdConfig,
}

/// The sentence between the reference solution and the instruction
/// (`data_collator.py` L28, siyan-zhao/OPSD@590ec26).
const TRANSITION: &str = "\n\nAfter understanding the reference solution and the rationale behind each step, now articulate your own step-by-step reasoning that derives the same final answer to the problem below:\n";

/// The teacher's user message (`data_collator.py` L82-87): the problem, the reference
/// solution, the transition sentence and the student's instruction, not stripped.
pub fn teacher_message(problem: &str, solution: &str) -> String {
    format!(
        "{problem}\n\nHere is a reference solution to this problem:\n{solution}\n{TRANSITION}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    )
}

// ---------------------------------------------------------------------------------------------
// The divergence (shared with SDPO)
// ---------------------------------------------------------------------------------------------

/// `log(exp(a) + exp(b))`, elementwise and stable.
fn log_add_exp<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let max = a.clone().max_pair(b.clone()).detach();
    a.sub(max.clone())
        .exp()
        .add(b.sub(max.clone()).exp())
        .log()
        .add(max)
}

/// The generalized JSD between two distributions given as log-probs over their last axis,
/// summed over it: `[b, t, k] → [b, t]`. `β = 0` is `KL(T ‖ S)` and `β = 1` is `KL(S ‖ T)`
/// exactly; otherwise `β KL(T ‖ M) + (1 − β) KL(S ‖ M)` with `M = β T + (1 − β) S`.
/// `teacher` is treated as a constant.
pub fn generalized_jsd(student: Tensor<3>, teacher: Tensor<3>, beta: f32) -> Tensor<2> {
    let [b, t, _] = student.dims();
    let teacher = teacher.detach();
    let kl = |p: Tensor<3>, q: Tensor<3>| p.clone().exp().mul(p.sub(q)).sum_dim(2);
    let divergence = if beta == 0.0 {
        kl(teacher, student)
    } else if beta == 1.0 {
        kl(student, teacher)
    } else {
        let mixture = log_add_exp(
            teacher.clone().add_scalar(beta.ln()),
            student.clone().add_scalar((1.0 - beta).ln()),
        );
        kl(teacher, mixture.clone())
            .mul_scalar(beta)
            .add(kl(student, mixture).mul_scalar(1.0 - beta))
    };
    divergence.reshape([b, t])
}

impl Objective for Opsd {
    fn name(&self) -> &str {
        "opsd"
    }

    fn needs(&self) -> Needs {
        Needs {
            teachers: vec![TeacherPass {
                name: "reference-solution".into(),
                probe_input: ProbeInput::Teacher,
                weights: match self.config.teacher {
                    Teacher::Initial => TeacherWeights::Initial,
                    Teacher::Current => TeacherWeights::Current,
                    Teacher::Ema => TeacherWeights::Ema {
                        rate: self.config.ema_rate,
                    },
                },
                logits: true,
            }],
            student_logits: true,
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    /// Every response's teacher reads the problem's reference solution in the authors'
    /// template (see "The teacher's context" above), or in the task's own solution slot.
    fn teacher_rows(&self, _step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        let problem = group.problem;
        let context = match group.task_hint("solution", &problem.solution)? {
            Some(context) => context,
            None if problem.solution.is_empty() => {
                return Err(Error::Input(format!(
                    "opsd: the problem {:?} has no reference solution for the teacher to read\nhint: give the data set a `solution` field (OPSD's teacher reads a worked solution)",
                    problem.question
                )));
            }
            None => group.user_message(&teacher_message(&problem.question, &problem.solution))?,
        };
        let row = TeacherRow::hinted(context, problem.solution.as_str());
        Ok(vec![vec![row; group.len()]])
    }

    fn aggregation(&self) -> Aggregation {
        Aggregation::TokenMean
    }

    /// OPSD uses no reward: nothing to credit.
    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        Ok(Credit {
            advantages: TokenMatrix::zeros(input.mask.rows, input.mask.cols),
            ..Credit::default()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage
    // -----------------------------------------------------------------------------------------

    /// Shapes: `student` and `teacher` raw logits `[b, c, v]`; returns `D` `[b, c]`.
    fn token_divergence(&self, student: Tensor<3>, teacher: Tensor<3>) -> Option<Tensor<2>> {
        let c = &self.config;
        let teacher = teacher.detach();
        let vocab = student.dims()[2];
        let (student, teacher) = match c.topk.filter(|&k| k > 0 && k < vocab) {
            // Both restricted to the teacher's top-k indices, renormalized over them.
            Some(k) => {
                let (_, indices) = teacher.clone().topk_with_indices(k, 2);
                (
                    student.gather(2, indices.clone()),
                    teacher.gather(2, indices),
                )
            }
            None => (student, teacher),
        };
        let student = log_softmax(student.div_scalar(c.temperature), 2);
        let teacher = log_softmax(teacher.div_scalar(c.temperature), 2);
        Some(generalized_jsd(student, teacher, c.jsd_beta))
    }

    /// Shapes: `divergence` `[b, t]`; returns `D` `[b, t]`.
    fn loss(&self, input: LossInput) -> LossTerms {
        let divergence = input
            .divergence
            .expect("OPSD declares student_logits: the trainer passes the divergence");
        LossTerms {
            per_token: divergence.clone(),
            scalar: None,
            parts: Vec::new(),
            token_metrics: vec![("opsd/divergence", divergence)],
            metrics: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: properties S-1, S-2, S-3 and S-5 of `algorithms.md` §9.5
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::LogitArray;
    use zoo_core::probe::{ProbeBatch, ProbeOutput, probe};

    const Z_S: [f32; 5] = [0.3, -1.2, 2.0, 0.1, -0.4];
    const Z_T: [f32; 5] = [1.1, -0.2, 0.5, -1.0, 0.7];

    fn opsd(jsd_beta: f32, temperature: f32, topk: Option<usize>) -> Box<dyn Objective> {
        OpsdConfig {
            jsd_beta,
            temperature,
            topk,
            ..OpsdConfig::default()
        }
        .build(&BuildContext {
            max_new_tokens: 1,
            group_size: 1,
            steps: 1,
            temperature: 1.0,
            evaluation: true,
        })
        .unwrap()
    }

    fn logits(rows: usize, cols: usize, data: &[f32]) -> LogitArray {
        LogitArray {
            rows,
            cols,
            vocab: data.len() / (rows * cols),
            data: data.to_vec(),
        }
    }

    /// One response of one token.
    fn one(
        objective: &dyn Objective,
        student: &[f32],
        teacher: &[f32],
        reward: f32,
    ) -> ProbeOutput {
        probe(
            objective,
            &ProbeBatch {
                rewards: vec![reward],
                group_ids: vec![0],
                mask: TokenMatrix {
                    rows: 1,
                    cols: 1,
                    data: vec![1.0],
                },
                student_logits: Some(logits(1, 1, student)),
                teacher_logits: Some(logits(1, 1, teacher)),
                ..ProbeBatch::default()
            },
            1,
            &Device::flex().autodiff(),
        )
        .unwrap()
    }

    fn softmax(z: &[f32], tau: f32) -> Vec<f64> {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
        let e: Vec<f64> = z
            .iter()
            .map(|&x| ((x as f64 - max) / tau as f64).exp())
            .collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    fn kl(p: &[f64], q: &[f64]) -> f64 {
        p.iter().zip(q).map(|(a, b)| a * (a / b).ln()).sum()
    }

    #[test]
    fn s1_divergence_is_nonnegative_zero_on_equality_and_symmetric_at_one_half() {
        for beta in [0.0, 0.25, 0.5, 0.9, 1.0] {
            let d = one(opsd(beta, 1.0, None).as_ref(), &Z_S, &Z_T, 1.0).loss;
            assert!(d > 0.0, "β = {beta}: {d}");
            let same = one(opsd(beta, 1.0, None).as_ref(), &Z_T, &Z_T, 1.0).loss;
            assert!(same.abs() < 1e-6, "β = {beta}: {same}");
        }
        let ab = one(opsd(0.5, 1.0, None).as_ref(), &Z_S, &Z_T, 1.0).loss;
        let ba = one(opsd(0.5, 1.0, None).as_ref(), &Z_T, &Z_S, 1.0).loss;
        assert_relative_eq!(ab, ba, max_relative = 1e-5);
        let far = one(
            opsd(0.5, 1.0, None).as_ref(),
            &[30.0, 0.0],
            &[0.0, 30.0],
            1.0,
        )
        .loss;
        assert!(far <= std::f64::consts::LN_2 + 1e-6 && far > 0.69, "{far}");
        // The value matches the closed form at every β.
        let (p, q) = (softmax(&Z_S, 1.3), softmax(&Z_T, 1.3));
        for beta in [0.0f64, 0.3, 1.0] {
            let expected = if beta == 0.0 {
                kl(&q, &p)
            } else if beta == 1.0 {
                kl(&p, &q)
            } else {
                let m: Vec<f64> = p
                    .iter()
                    .zip(&q)
                    .map(|(s, t)| beta * t + (1.0 - beta) * s)
                    .collect();
                beta * kl(&q, &m) + (1.0 - beta) * kl(&p, &m)
            };
            let d = one(opsd(beta as f32, 1.3, None).as_ref(), &Z_S, &Z_T, 1.0).loss;
            assert_relative_eq!(d, expected, max_relative = 1e-5);
        }
    }

    #[test]
    fn s2_forward_and_reverse_kl_gradients_match_their_closed_forms() {
        let tau = 1.1f32;
        let (p, q) = (softmax(&Z_S, tau), softmax(&Z_T, tau));
        let forward = one(opsd(0.0, tau, None).as_ref(), &Z_S, &Z_T, 1.0);
        for k in 0..5 {
            assert_relative_eq!(
                forward.grad[k] as f64,
                (p[k] - q[k]) / tau as f64,
                epsilon = 1e-6
            );
        }
        let reverse = one(opsd(1.0, tau, None).as_ref(), &Z_S, &Z_T, 1.0);
        let kl_sq = kl(&p, &q);
        for k in 0..5 {
            let expected = p[k] * (p[k].ln() - q[k].ln() - kl_sq) / tau as f64;
            assert_relative_eq!(reverse.grad[k] as f64, expected, epsilon = 1e-6);
        }
    }

    #[test]
    fn s3_sampled_token_estimator_is_unbiased_for_the_reverse_kl_gradient() {
        // Σ_y p(y)·(log p(y) − log q(y))·∇_z log p(y) by enumeration, with
        // ∇_z log p(y) = (e_y − p)/τ, equals the gradient of KL(p ‖ q).
        let tau = 1.0f32;
        let (p, q) = (softmax(&Z_S, tau), softmax(&Z_T, tau));
        let mut estimator = [0f64; 5];
        for y in 0..5 {
            let a = p[y] * (p[y].ln() - q[y].ln());
            for (k, slot) in estimator.iter_mut().enumerate() {
                let e = if k == y { 1.0 } else { 0.0 };
                *slot += a * (e - p[k]) / tau as f64;
            }
        }
        let reverse = one(opsd(1.0, tau, None).as_ref(), &Z_S, &Z_T, 1.0);
        for (g, e) in reverse.grad.iter().zip(estimator) {
            assert_relative_eq!(*g as f64, e, epsilon = 1e-6);
        }
    }

    #[test]
    fn s5_rewards_do_not_enter_the_loss() {
        let objective = opsd(0.5, 1.1, None);
        let batch = |rewards: Vec<f32>| ProbeBatch {
            rewards,
            group_ids: vec![0, 0],
            mask: TokenMatrix {
                rows: 2,
                cols: 1,
                data: vec![1.0, 1.0],
            },
            student_logits: Some(logits(2, 1, &[Z_S, Z_T].concat())),
            teacher_logits: Some(logits(2, 1, &[Z_T, Z_T].concat())),
            ..ProbeBatch::default()
        };
        let device = Device::flex().autodiff();
        let a = probe(objective.as_ref(), &batch(vec![1.0, 0.0]), 1, &device).unwrap();
        let b = probe(objective.as_ref(), &batch(vec![0.0, 0.0]), 1, &device).unwrap();
        assert_eq!(a.loss, b.loss);
        assert_eq!(a.grad, b.grad);
        assert!(a.grad[..5].iter().any(|&g| g.abs() > 1e-3));
    }

    #[test]
    fn teacher_topk_renormalizes_over_the_teachers_best_tokens() {
        // k = 2: the teacher's top tokens are 0 and 4; tokens 1..3 get no gradient.
        let out = one(opsd(0.0, 1.0, Some(2)).as_ref(), &Z_S, &Z_T, 1.0);
        let p = softmax(&[Z_S[0], Z_S[4]], 1.0);
        let q = softmax(&[Z_T[0], Z_T[4]], 1.0);
        assert_relative_eq!(out.loss, kl(&q, &p), max_relative = 1e-5);
        assert_eq!(&out.grad[1..4], &[0.0, 0.0, 0.0]);
        assert_relative_eq!(out.grad[0] as f64, p[0] - q[0], epsilon = 1e-6);
    }
}
