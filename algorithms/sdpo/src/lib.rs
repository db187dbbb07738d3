//! SDPO: self-distillation toward an EMA teacher that reads a successful group-mate's answer.
//!
//! # What it computes (`algorithms.md` §7)
//! For each response whose group holds another successful response (score ≥ 0.5), the teacher
//! (an EMA of the student, rate 0.05) reads that response as a demonstration; responses
//! without one are masked out (`sd_mask`). At every response position both distributions are
//! reduced to the student's top-k tokens plus an exact tail bucket
//! `log(1 − exp(min(logsumexp_k, −1e−7)))` (k + 1 buckets), and matched with the generalized
//! JSD of OPSD (α = 0: `KL(T ‖ S)`, α = 1: `KL(S ‖ T)`). Each token's divergence is weighted by
//! the clipped importance ratio `min(exp(clamp(sg(ℓ − ℓ^old), ±20)), is_clip)`, which is 1 with
//! one on-policy update per batch. Loss: token-mean over tokens with `m·sd_mask = 1`; it
//! replaces the policy-gradient loss.
//!
//! # Defaults and their source
//! Decision 9: α = 0.5, top-100 + tail, EMA rate 0.05, success threshold 0.5, IS clip 2
//! (`sdpo.yaml`, `actor.yaml`, `run_sdpo_all.sh`). The distillation temperature is the
//! rollout temperature, as in the reference (verl divides every logit by
//! `rollout.temperature`), so the distributions and the importance weight's log-probs use
//! the same one; an explicit `temperature` that differs from `rollout.temperature` is refused.
//!
//! # The teacher's context
//! As lasgroup/SDPO@0e6d510 `verl/trainer/ppo/ray_trainer.py::_maybe_build_self_distillation_batch`
//! builds it (L636-669 picks the demonstration, L710-761 the message) with the templates of
//! `verl/trainer/config/actor/actor.yaml` L131-148: a new user message
//! `{prompt}\nCorrect solution:\n\n{demonstration}\n\nCorrectly solve the original question.`
//! through the chat template with the generation prompt, the conversation's earlier (system)
//! messages kept, where `prompt` is the student's user message and the demonstration the first
//! other response of the group scoring at least `success_threshold`, decoded without special
//! tokens, its `<think>…</think>` blocks removed (`remove_thinking_from_demonstration`,
//! [`strip_think`]). A response without a demonstration keeps the student's prompt (and is
//! masked out). A task with a solution slot of its own (the CPU world's `[s:…]`) gets the
//! demonstration there.
//!
//! # Differences from the reference
//! Environment feedback (`include_environment_feedback`) is not modelled: zoo's verifiers give
//! none. The reference truncates a teacher prompt longer than `max_reprompt_len` (10,240) on the
//! right; zoo keeps it whole.
//!
//! # References
//! Hübotter et al. (arXiv 2601.20802); lasgroup/SDPO `core_algos.py::
//! compute_self_distillation_loss`, `dp_actor.py::update_policy`, `_update_teacher`.

use serde::{Deserialize, Serialize};
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::activation::log_softmax;
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, ProbeInput, Result, TeacherGroup, TeacherPass, TeacherRow, TeacherWeights,
    TokenMatrix, strip_think,
};
use zoo_opsd::{generalized_jsd, validate_divergence};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// SDPO's configuration; defaults per decision 9.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SdpoConfig {
    /// `α` of the generalized JSD (0: forward KL, 1: reverse KL).
    pub jsd_beta: f32,
    /// Temperature dividing both logits; null: `rollout.temperature` (the only value the
    /// importance weight's log-probs agree with, so any other is refused in training).
    pub temperature: Option<f32>,
    /// The student's top-k tokens per position (null or 0: the full vocabulary, no tail).
    pub topk: Option<usize>,
    /// Add the exact tail bucket (false: renormalize over the top-k).
    pub tail: bool,
    /// Clip of the importance weight (null or 0: no weight).
    pub is_clip: Option<f32>,
    /// A response with a score at least this is a demonstration.
    pub success_threshold: f32,
    /// A response is never its own demonstration (`dont_reprompt_on_self_success`).
    pub exclude_self: bool,
    /// Remove `<think>…</think>` blocks from demonstrations
    /// (`remove_thinking_from_demonstration`).
    pub remove_thinking: bool,
    /// The EMA teacher's rate.
    pub ema_rate: f32,
}

impl Default for SdpoConfig {
    fn default() -> Self {
        Self {
            jsd_beta: 0.5,
            temperature: None,
            topk: Some(100),
            tail: true,
            is_clip: Some(2.0),
            success_threshold: 0.5,
            exclude_self: true,
            remove_thinking: true,
            ema_rate: 0.05,
        }
    }
}

#[typetag::serde(name = "sdpo")]
impl ObjectiveConfig for SdpoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        let temperature = self.temperature.unwrap_or(context.temperature);
        validate_divergence("sdpo", self.jsd_beta, temperature)?;
        if !context.evaluation && temperature != context.temperature {
            return Err(Error::Config(format!(
                "sdpo: `temperature` = {temperature} differs from `rollout.temperature` = {}: the importance weight reads log-probs at the rollout temperature, so the distillation would mix two temperatures\nhint: remove `objective.temperature` (it follows the rollout), or set `rollout.temperature = {temperature}` too",
                context.temperature
            )));
        }
        if !(self.ema_rate > 0.0 && self.ema_rate <= 1.0) {
            return Err(Error::Config(format!(
                "sdpo: `ema_rate` must lie in (0, 1], got {}",
                self.ema_rate
            )));
        }
        if self.is_clip.is_some_and(|c| c.is_nan() || c < 0.0) {
            return Err(Error::Config(
                "sdpo: `is_clip` must be positive (0 or null: no importance weight)".into(),
            ));
        }
        Ok(Box::new(Sdpo {
            config: self.clone(),
            temperature,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "sdpo",
        summary: "self-distillation toward an EMA teacher shown a successful group-mate (SDPO)",
        default_config: || Box::new(SdpoConfig::default()),
        origin: "zoo-sdpo",
        run_defaults: "",
        llm_run_defaults: "[optim]\nlr = 1e-5",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// SDPO's teacher message with a demonstration: `reprompt_template` with
/// `solution_template` filled in and no feedback (`actor.yaml` L131-148, as YAML's `|-` block
/// scalars read them).
pub fn reprompt(prompt: &str, demonstration: &str) -> String {
    format!(
        "{prompt}\nCorrect solution:\n\n{demonstration}\n\nCorrectly solve the original question."
    )
}

/// The SDPO objective.
#[derive(Debug, Clone)]
pub struct Sdpo {
    config: SdpoConfig,
    /// The distillation temperature in effect.
    temperature: f32,
}

// ---------------------------------------------------------------------------------------------
// The k + 1 bucket distribution
// ---------------------------------------------------------------------------------------------

/// `log Σ exp(x)` over the last axis, `[b, t, k] → [b, t, 1]`.
fn log_sum_exp(x: Tensor<3>) -> Tensor<3> {
    let max = x.clone().max_dim(2).detach();
    x.sub(max.clone()).exp().sum_dim(2).log().add(max)
}

/// Log-probs `[b, t, k]` (full-vocabulary normalized) reduced to a distribution: with `tail`
/// the bucket `log(1 − exp(min(logsumexp, −1e−7)))` is appended (`[b, t, k + 1]`), without it
/// the k log-probs are renormalized.
pub fn with_tail(top: Tensor<3>, tail: bool) -> Tensor<3> {
    let total = log_sum_exp(top.clone());
    if tail {
        let rest = total.clamp_max(-1e-7).exp().neg().log1p();
        Tensor::cat(vec![top, rest], 2)
    } else {
        top.sub(total)
    }
}

impl Objective for Sdpo {
    fn name(&self) -> &str {
        "sdpo"
    }

    fn needs(&self) -> Needs {
        Needs {
            teachers: vec![TeacherPass {
                name: "demonstration".into(),
                probe_input: ProbeInput::Teacher,
                weights: TeacherWeights::Ema {
                    rate: self.config.ema_rate,
                },
                logits: true,
            }],
            student_logits: true,
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    /// Each response's demonstration: the first other response of its group whose score
    /// reaches `success_threshold` (`dont_reprompt_on_self_success`), in SDPO's reprompt
    /// message; without one, the student's prompt (the credit stage masks the row out).
    fn teacher_rows(&self, _step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        let c = &self.config;
        let successes: Vec<usize> = (0..group.len())
            .filter(|&j| group.verdicts[j].score >= c.success_threshold)
            .collect();
        // A context per demonstration, built once for the group.
        let mut built: Vec<Option<TeacherRow>> = vec![None; group.len()];
        let mut rows = Vec::with_capacity(group.len());
        for i in 0..group.len() {
            let Some(&j) = successes.iter().find(|&&j| !(c.exclude_self && j == i)) else {
                rows.push(TeacherRow::plain(group.prompt));
                continue;
            };
            if built[j].is_none() {
                let demonstration = if c.remove_thinking {
                    strip_think(&group.responses[j])
                } else {
                    group.responses[j].clone()
                };
                let context = match group.task_hint("solution", &demonstration)? {
                    Some(context) => context,
                    None => group.user_message(&reprompt(&group.problem.prompt, &demonstration))?,
                };
                built[j] = Some(TeacherRow::hinted(context, demonstration));
            }
            rows.push(built[j].clone().expect("built above"));
        }
        Ok(vec![rows])
    }

    fn aggregation(&self) -> Aggregation {
        Aggregation::TokenMean
    }

    // -----------------------------------------------------------------------------------------
    // Credit stage: the self-distillation mask
    // -----------------------------------------------------------------------------------------

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let demo = &input.teachers[0].has_hint;
        let mut mask = input.mask.clone();
        for (i, &has_demo) in demo.iter().enumerate() {
            if !has_demo {
                for t in 0..mask.cols {
                    mask.set(i, t, 0.0);
                }
            }
        }
        let n = demo.len().max(1) as f64;
        Ok(Credit {
            advantages: TokenMatrix::zeros(mask.rows, mask.cols),
            mask: Some(mask),
            metrics: vec![
                (
                    "sdpo/distill_frac".into(),
                    demo.iter().filter(|&&d| d).count() as f64 / n,
                ),
                ("sdpo/teacher_ema_rate".into(), self.config.ema_rate as f64),
            ],
            ..Credit::default()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage
    // -----------------------------------------------------------------------------------------

    /// Shapes: `student` and `teacher` raw logits `[b, c, v]`; returns the divergence `[b, c]`
    /// over the student's top-k tokens (+ the tail bucket) or the full vocabulary.
    fn token_divergence(&self, student: Tensor<3>, teacher: Tensor<3>) -> Option<Tensor<2>> {
        let c = &self.config;
        let teacher = teacher.detach();
        let student = log_softmax(student.div_scalar(self.temperature), 2);
        let teacher = log_softmax(teacher.div_scalar(self.temperature), 2);
        let vocab = student.dims()[2];
        let (student, teacher) = match c.topk.filter(|&k| k > 0) {
            // Indices from the student; the teacher is read at the same tokens.
            Some(k) => {
                let (_, indices) = student.clone().detach().topk_with_indices(k.min(vocab), 2);
                (
                    with_tail(student.gather(2, indices.clone()), c.tail),
                    with_tail(teacher.gather(2, indices), c.tail),
                )
            }
            None => (student, teacher),
        };
        Some(generalized_jsd(student, teacher, c.jsd_beta))
    }

    /// Shapes: `divergence`, `logprobs`, `old_logprobs` `[b, t]`; returns the weighted
    /// divergence `[b, t]`.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let divergence = input
            .divergence
            .expect("SDPO declares student_logits: the trainer passes the divergence");
        let per_token = match c.is_clip.filter(|&clip| clip > 0.0) {
            Some(clip) => {
                let weight = input
                    .logprobs
                    .detach()
                    .sub(input.old_logprobs)
                    .clamp(-20.0, 20.0)
                    .exp()
                    .clamp_max(clip);
                divergence.clone().mul(weight)
            }
            None => divergence.clone(),
        };
        LossTerms {
            per_token,
            scalar: None,
            parts: Vec::new(),
            token_metrics: vec![("sdpo/divergence", divergence)],
            metrics: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: properties S-4 and S-5 of `algorithms.md` §9.5 (OPSD's crate tests S-1..S-3)
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::probe::{ProbeBatch, ProbeOutput, probe};
    use zoo_core::testing::GroupFixture;
    use zoo_core::{LogitArray, TeacherScores};

    const Z_S: [f32; 6] = [2.0, 1.5, -0.3, 0.2, -2.0, 0.9];
    const Z_T: [f32; 6] = [0.1, 2.2, 0.4, -0.6, 1.3, -0.2];

    fn sdpo(config: SdpoConfig) -> Box<dyn Objective> {
        config
            .build(&BuildContext {
                max_new_tokens: 1,
                group_size: 2,
                steps: 1,
                temperature: 1.0,
                evaluation: true,
            })
            .unwrap()
    }

    fn one(objective: &dyn Objective, logprobs: Option<(f32, f32)>) -> ProbeOutput {
        let l = |data: &[f32]| LogitArray {
            rows: 1,
            cols: 1,
            vocab: 6,
            data: data.to_vec(),
        };
        let m = |x: f32| TokenMatrix {
            rows: 1,
            cols: 1,
            data: vec![x],
        };
        probe(
            objective,
            &ProbeBatch {
                rewards: vec![1.0],
                group_ids: vec![0],
                mask: m(1.0),
                logprobs: logprobs.map(|(l, _)| m(l)),
                old_logprobs: logprobs.map(|(_, o)| m(o)),
                student_logits: Some(l(&Z_S)),
                teacher_logits: Some(l(&Z_T)),
                ..ProbeBatch::default()
            },
            1,
            &Device::flex().autodiff(),
        )
        .unwrap()
    }

    fn config(topk: Option<usize>, tail: bool) -> SdpoConfig {
        SdpoConfig {
            topk,
            tail,
            ..SdpoConfig::default()
        }
    }

    #[test]
    fn s4_topk_with_tail_matches_full_at_k_equal_v_and_is_below_it_otherwise() {
        let full = one(sdpo(config(None, true)).as_ref(), None).loss;
        let all = one(sdpo(config(Some(6), true)).as_ref(), None).loss;
        assert_relative_eq!(all, full, epsilon = 1e-6);
        for k in 1..6 {
            let coarse = one(sdpo(config(Some(k), true)).as_ref(), None).loss;
            assert!(coarse <= full + 1e-7, "k = {k}: {coarse} > {full}");
        }
    }

    #[test]
    fn s4_indices_come_from_the_student() {
        // k = 2: the student's top tokens are 0 and 1 (the teacher's are 1 and 4). Without a
        // tail, D is the JSD of the two renormalized pairs read at tokens 0 and 1.
        let out = one(sdpo(config(Some(2), false)).as_ref(), None);
        let pair = |z: &[f32]| {
            let (a, b) = ((z[0] as f64).exp(), (z[1] as f64).exp());
            [a / (a + b), b / (a + b)]
        };
        let (p, q) = (pair(&Z_S), pair(&Z_T));
        let m = [0.5 * (p[0] + q[0]), 0.5 * (p[1] + q[1])];
        let kl = |x: [f64; 2], y: [f64; 2]| x[0] * (x[0] / y[0]).ln() + x[1] * (x[1] / y[1]).ln();
        assert_relative_eq!(
            out.loss,
            0.5 * kl(q, m) + 0.5 * kl(p, m),
            max_relative = 1e-5
        );
        assert_eq!(
            &out.grad[2..],
            &[0.0; 4],
            "tokens outside the student's top-2"
        );
    }

    #[test]
    fn zero_means_full_vocabulary_and_no_weight_so_toml_can_say_it() {
        let full = one(sdpo(config(None, true)).as_ref(), Some((-1.0, -3.0))).loss;
        let zero = SdpoConfig {
            topk: Some(0),
            ..SdpoConfig::default()
        };
        let unweighted = SdpoConfig {
            topk: Some(0),
            is_clip: Some(0.0),
            ..SdpoConfig::default()
        };
        assert_eq!(one(sdpo(zero).as_ref(), Some((-1.0, -3.0))).loss, full);
        let base = one(sdpo(config(None, true)).as_ref(), None).loss;
        assert_eq!(
            one(sdpo(unweighted).as_ref(), Some((-1.0, -3.0))).loss,
            base
        );
    }

    #[test]
    fn importance_weight_is_clipped_ratio_and_one_without_old_logprobs() {
        let base = one(sdpo(SdpoConfig::default()).as_ref(), None).loss;
        let stale = one(sdpo(SdpoConfig::default()).as_ref(), Some((-1.0, -1.5))).loss;
        assert_relative_eq!(stale, base * 0.5f64.exp(), max_relative = 1e-5);
        let far = one(sdpo(SdpoConfig::default()).as_ref(), Some((-1.0, -3.0))).loss;
        assert_relative_eq!(far, base * 2.0, max_relative = 1e-5);
    }

    #[test]
    fn s5_rows_without_a_demonstration_are_masked_out() {
        // An all-wrong group (no demonstration) gets no loss; an all-correct group with two
        // successes does (unlike GRPO, whose advantage is 0 there).
        let objective = sdpo(SdpoConfig::default());
        let mask = TokenMatrix {
            rows: 4,
            cols: 2,
            data: vec![1.0; 8],
        };
        let credit = objective
            .credit(&CreditInput {
                step: 1,
                rewards: &[0.0, 0.0, 1.0, 1.0],
                correct: &[false, false, true, true],
                group_ids: &[0, 0, 1, 1],
                mask: &mask,
                old_logprobs: &TokenMatrix::zeros(4, 2),
                ref_logprobs: None,
                teachers: &[TeacherScores {
                    logprobs: TokenMatrix::zeros(4, 2),
                    has_hint: vec![false, false, true, true],
                    scored: vec![true; 4],
                }],
            })
            .unwrap();
        let m = credit.mask.unwrap();
        assert_eq!(m.data, vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            objective.needs().teachers[0].weights,
            TeacherWeights::Ema { rate: 0.05 }
        );
    }

    #[test]
    fn rewards_become_the_self_distillation_mask_through_the_group_mates() {
        // Verdicts → teacher rows (the demonstration rule) → has_hint → the credit's mask,
        // the path the trainer takes. Group 0: one success; group 1: none; group 2: two.
        let objective = sdpo(SdpoConfig::default());
        let problem = zoo_core::Problem {
            prompt: "p".into(),
            question: "p".into(),
            answer: "4".into(),
            solution: "2+2=4".into(),
        };
        let groups = [[1.0, 0.0, 0.3], [0.0, 0.2, 0.0], [1.0, 0.0, 0.5]];
        let mut has_hint = Vec::new();
        let mut hints = Vec::new();
        let mut contexts = Vec::new();
        for scores in groups {
            let texts: Vec<String> = (0..3)
                .map(|i| format!("<think>x</think> response {i}"))
                .collect();
            let responses: Vec<(&str, f32, Option<&str>)> = texts
                .iter()
                .zip(scores)
                .map(|(t, s)| (t.as_str(), s, None))
                .collect();
            let fixture = GroupFixture::new(problem.clone(), &responses);
            for row in objective
                .teacher_rows(1, &fixture.group(1))
                .unwrap()
                .remove(0)
            {
                assert!(row.scored, "a distillation pass scores every row");
                has_hint.push(row.has_hint);
                hints.push(row.hint);
                contexts.push(row.context);
            }
        }
        // The success itself has no other success to read; its group-mates read it.
        assert_eq!(
            has_hint,
            [false, true, true, false, false, false, true, true, true]
        );
        // The demonstration loses its think block and sits in SDPO's reprompt message.
        let user = |text: &str| [vec![256], text.bytes().map(u32::from).collect()].concat();
        assert_eq!(hints[1], "response 0");
        assert_eq!(
            contexts[1],
            user("p\nCorrect solution:\n\nresponse 0\n\nCorrectly solve the original question.")
        );
        assert_eq!(
            hints[0], "",
            "without a demonstration: the student's prompt"
        );
        assert_eq!(contexts[0], user("p"));
        assert_eq!(
            hints[6], "response 2",
            "the first other success (score 0.5 counts)"
        );
        assert_eq!(hints[8], "response 0");
        let rewards: Vec<f32> = groups.iter().flatten().copied().collect();
        let credit = objective
            .credit(&CreditInput {
                step: 1,
                rewards: &rewards,
                correct: &rewards.iter().map(|&r| r >= 1.0).collect::<Vec<_>>(),
                group_ids: &[0, 0, 0, 1, 1, 1, 2, 2, 2],
                mask: &TokenMatrix {
                    rows: 9,
                    cols: 1,
                    data: vec![1.0; 9],
                },
                old_logprobs: &TokenMatrix::zeros(9, 1),
                ref_logprobs: None,
                teachers: &[TeacherScores {
                    logprobs: TokenMatrix::zeros(9, 1),
                    has_hint: has_hint.clone(),
                    scored: vec![true; 9],
                }],
            })
            .unwrap();
        let expected: Vec<f32> = has_hint.iter().map(|&h| f32::from(u8::from(h))).collect();
        assert_eq!(credit.mask.unwrap().data, expected);
    }

    #[test]
    fn the_distillation_temperature_follows_the_rollout_and_a_mismatch_is_refused() {
        let context = |temperature: f32, evaluation: bool| BuildContext {
            max_new_tokens: 1,
            group_size: 2,
            steps: 1,
            temperature,
            evaluation,
        };
        // Unset: the rollout's. At T = 2 the distributions flatten, so the loss changes.
        let at = |t: f32| {
            let objective = SdpoConfig::default().build(&context(t, false)).unwrap();
            one(objective.as_ref(), None).loss
        };
        let explicit = SdpoConfig {
            temperature: Some(2.0),
            ..SdpoConfig::default()
        };
        let explicit = explicit.build(&context(2.0, false)).unwrap();
        assert_eq!(at(2.0), one(explicit.as_ref(), None).loss);
        assert!((at(2.0) - at(1.0)).abs() > 1e-4);
        // A different explicit value is refused in training, accepted for evaluation.
        let mismatch = SdpoConfig {
            temperature: Some(0.7),
            ..SdpoConfig::default()
        };
        let error = mismatch.build(&context(1.0, false)).err().expect("refused");
        assert!(error.to_string().contains("rollout.temperature"), "{error}");
        assert!(mismatch.build(&context(1.0, true)).is_ok());
    }
}
