//! RLSD: GRPO with per-token credit re-weighted by a gold-answer-conditioned self-teacher.
//!
//! # What it computes (`algorithms.md` §4)
//! Credit: the GRPO advantage `A_i` (§1), then per token
//! `Δ_t = ℓ^T_t − ℓ^old_t` (teacher: the policy with the gold answer in the context),
//! `w_t = exp(clamp(sign(A_i)·Δ_t, ±20))` and
//! `Â_{i,t} = A_i·[(1 − λ) + λ·clip(w_t, 1 − ε_w, 1 + ε_w)]·m_{i,t}`.
//! Loss: the PPO-clip token loss (§0.3), token-mean.
//! Schedule: constant λ, or `λ_s = λ0·(1 − s/T)` for steps `s < T` (s starts at 1), then 0.
//!
//! # Two settings, both documented
//! - `algo = "rlsd"`: the authors' code (`iie-ycx/RLSD`, `opsd_config.py`,
//!   `dp_opsd_actor.py::_build_stgca_advantages`, `rlsd_train.sh`). λ = 0.5 held constant
//!   (their config's `rlsd_lambda_decay_steps = 0`; the released script decays over 60 steps:
//!   `lambda_schedule = "linear"`, `decay_steps = 60`), ε_w = 0.2, the teacher is the frozen
//!   initial model (`freeze_teacher_model`), which reads the gold answer as a reference solution
//!   (`teacher = "initial"`, `hint = "reference-solution"`), PPO clip 0.2/0.28, dual clip 3,
//!   token-mean.
//! - `algo = "rlsd-cepo"`: the RLSD baseline of CEPO's repository (decision 4): λ0 = 0.5
//!   decaying over T = 25 steps (`rlsd.sh`), the teacher is the current policy `θ_old` with the
//!   gold answer appended (`teacher = "current"`, `hint = "answer"`), the same clips. Every
//!   field is the same as `rlsd`'s; only the defaults differ.
//!
//! # The teacher's context
//! - `hint = "reference-solution"` (the authors', at `iie-ycx/RLSD@93e46f7`): a new user message
//!   through the chat template with the generation prompt, rendered from
//!   `examples/visual_rl/format_prompt/teacher_hint_self_distill.jinja` L2-7 by
//!   `opsd_algos.py::construct_teacher_prompts` L463-558:
//!   `{question|trim}\n\nHere is a reference solution:\n{hint|trim}\n\nAfter understanding the
//!   reference solution, please try to solve this problem using your own approach below. You
//!   FIRST think …<thought> </thought> tags. The final answer MUST be enclosed within <answer>
//!   </answer> tags.`, with `question` the problem statement alone (not the student's prompt
//!   template) and `hint` the gold answer: `opsd_trainer.py::_get_self_distill_hints` L384-397
//!   reads the trajectory named by `data.trajectory_key=answer`, which the data set popped
//!   before (`dataset.py` L581), so it always falls back to `str(ground_truth)`.
//! - `hint = "solution"`: the same template with the problem's worked solution, the gold answer
//!   where it has none (what that code does with a trajectory field that exists).
//! - `hint = "answer"` (CEPO's repository, `ray_trainer.py::_build_teacher_inputs` L748-888 at
//!   `ahmedheakl/CEPO@7a9655d`): `" " + answer` tokenized alone and spliced after the prompt's
//!   assistant header. That code reads the answer from a key the data set has renamed, so its
//!   teacher read a lone space; zoo splices the answer it meant.
//! - A task with hint slots of its own (the CPU world) gets the hint in its `solution` slot
//!   (`answer` slot for `hint = "answer"`): `[s:936]`, `[h:936]`.
//!
//! # Differences from the references
//! - `A_i = 0` gives `Â = 0` before any exponential, and `Δ` is NaN-guarded as CEPO's is (a
//!   token both the teacher and `ℓ^old` rule out counts as agreement); the references compute
//!   `0·w`, NaN when a teacher log-prob is −∞.
//! - The exponent is clamped to ±20 before `exp` (CEPO's repository); the authors' code does
//!   not clamp. Both clip the weight to `[1 − ε_w, 1 + ε_w]` next, so only overflow differs.
//! - The authors compute `Δ` against the current policy's log-probs inside the update; zoo
//!   against `ℓ^old`. Equal with one optimizer step per rollout batch (their setup).
//! - The authors' script re-syncs the frozen teacher from the actor every 20 steps
//!   (`rlsd_teacher_sync_interval`); zoo's initial teacher stays frozen (no periodic
//!   snapshot teacher yet), as their config's default does.
//! - The authors' teacher template asks for `<thought>`/`<answer>` tags (their tasks' format)
//!   whatever the student's prompt asks; zoo keeps it word for word.
//! - The teacher scores only rows whose `Â` it can change (none once λ = 0, none with
//!   `A_i = 0`); the references score every row. Value-equivalent.
//!
//! # References
//! "Self-Distilled RLVR" (arXiv 2604.03128); iie-ycx/RLSD; ahmedheakl/CEPO
//! `verl/trainer/core_algos.py::apply_rlsd_reweighting`.

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, ProbeInput, Result, TeacherGroup, TeacherPass, TeacherRow, TeacherWeights,
    TokenMatrix, py_strip,
};
use zoo_grpo::{Clip, LossAgg, advantage_metrics, group_advantages, ppo_clip_loss};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// How λ changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaSchedule {
    /// Linear decay to 0 over `decay_steps` (each method has its own offset).
    Linear,
    /// `λ = lambda` at every step.
    Constant,
}

/// Which weights score the teacher pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RlsdTeacher {
    /// The frozen initial policy (the authors').
    Initial,
    /// The policy that generated the batch, `θ_old` (CEPO's repository).
    Current,
}

/// What the teacher reads, and how (see "The teacher's context" above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RlsdHint {
    /// The gold answer as the reference solution of the authors' template (what their script
    /// ran).
    ReferenceSolution,
    /// The problem's worked solution in the authors' template, the gold answer without one.
    Solution,
    /// The gold answer spliced after the assistant header (CEPO's repository).
    Answer,
}

/// RLSD's configuration. [`Default`] is the authors' setting (`algo = "rlsd"`);
/// [`RlsdConfig::cepo_repository`] the CEPO repository's baseline (`algo = "rlsd-cepo"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlsdConfig {
    /// `λ0`, the weight of the teacher term (at the start, with a decaying schedule).
    pub lambda: f32,
    /// `ε_w`, the clip range of the per-token weight.
    pub eps_w: f32,
    /// `T_decay`, the steps over which a linear schedule takes λ to 0.
    pub decay_steps: usize,
    /// The λ schedule.
    pub lambda_schedule: LambdaSchedule,
    /// Which weights score the teacher.
    pub teacher: RlsdTeacher,
    /// How the teacher reads the gold answer.
    pub hint: RlsdHint,
    /// `ε_low` of the PPO clip.
    pub clip_low: f32,
    /// `ε_high` of the PPO clip.
    pub clip_high: f32,
    /// Dual-clip constant.
    pub clip_dual: f32,
    /// Aggregation mode.
    pub loss_agg: LossAgg,
    /// Divide by the group std.
    pub norm_adv_by_std: bool,
    /// `eps` added to the group std.
    pub adv_eps: f32,
}

impl Default for RlsdConfig {
    /// The authors' defaults (`iie-ycx/RLSD`).
    fn default() -> Self {
        Self {
            lambda: 0.5,
            eps_w: 0.2,
            decay_steps: 60,
            lambda_schedule: LambdaSchedule::Constant,
            teacher: RlsdTeacher::Initial,
            hint: RlsdHint::ReferenceSolution,
            clip_low: 0.2,
            clip_high: 0.28,
            clip_dual: 3.0,
            loss_agg: LossAgg::TokenMean,
            norm_adv_by_std: true,
            adv_eps: 1e-6,
        }
    }
}

impl RlsdConfig {
    /// The RLSD baseline of CEPO's repository (decision 4): λ decaying over 25 steps, the
    /// current policy as the teacher, the gold answer appended.
    pub fn cepo_repository() -> Self {
        Self {
            decay_steps: 25,
            lambda_schedule: LambdaSchedule::Linear,
            teacher: RlsdTeacher::Current,
            hint: RlsdHint::Answer,
            ..Self::default()
        }
    }
}

/// Checks λ0, ε_w and T shared by RLSD and CEPO; `algo` prefixes the message.
pub fn validate_weighting(algo: &str, lambda: f32, eps_w: f32, decay_steps: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&lambda) || !(0.0..1.0).contains(&eps_w) || decay_steps == 0 {
        return Err(Error::Config(format!(
            "{algo}: need `lambda` in [0, 1], `eps_w` in [0, 1) and `decay_steps` ≥ 1, got {lambda}, {eps_w}, {decay_steps}"
        )));
    }
    Ok(())
}

impl RlsdConfig {
    fn build_rlsd(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        validate_weighting("rlsd", self.lambda, self.eps_w, self.decay_steps)?;
        let clip = Clip {
            low: self.clip_low,
            high: self.clip_high,
            dual: self.clip_dual,
        };
        clip.validate("rlsd")?;
        let aggregation = self
            .loss_agg
            .aggregation(None, context.max_new_tokens, "rlsd")?;
        // `zoo objective eval` gives this step's λ: no schedule there.
        let mut config = self.clone();
        if context.evaluation {
            config.lambda_schedule = LambdaSchedule::Constant;
        }
        Ok(Box::new(Rlsd {
            config,
            clip,
            aggregation,
        }))
    }
}

#[typetag::serde(name = "rlsd")]
impl ObjectiveConfig for RlsdConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        self.build_rlsd(context)
    }
}

/// `algo = "rlsd-cepo"`: [`RlsdConfig`] with [`RlsdConfig::cepo_repository`]'s defaults for the
/// fields a config leaves out.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct RlsdCepoConfig(pub RlsdConfig);

impl<'de> Deserialize<'de> for RlsdCepoConfig {
    /// The given fields over the CEPO repository's defaults, checked as `rlsd`'s are.
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let given = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut merged = match serde_json::to_value(RlsdConfig::cepo_repository()) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("RlsdConfig serializes to a map"),
        };
        merged.extend(given);
        serde_json::from_value(serde_json::Value::Object(merged))
            .map(Self)
            .map_err(D::Error::custom)
    }
}

#[typetag::serde(name = "rlsd-cepo")]
impl ObjectiveConfig for RlsdCepoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        self.0.build_rlsd(context)
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "rlsd",
        summary: "GRPO credit re-weighted by a frozen gold-answer self-teacher (RLSD, the authors' defaults)",
        default_config: || Box::new(RlsdConfig::default()),
        origin: "zoo-rlsd",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "rlsd-cepo",
        summary: "RLSD as CEPO's repository runs it: decaying λ, the current policy as teacher",
        default_config: || Box::new(RlsdCepoConfig(RlsdConfig::cepo_repository())),
        origin: "zoo-rlsd",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The RLSD objective.
#[derive(Debug, Clone)]
pub struct Rlsd {
    config: RlsdConfig,
    clip: Clip,
    aggregation: Aggregation,
}

// ---------------------------------------------------------------------------------------------
// The weighting shared with CEPO
// ---------------------------------------------------------------------------------------------

/// RLSD's λ at step `s ≥ 1`: `λ0·(1 − s/T)` while `s < T`, then 0.
pub fn rlsd_lambda(lambda0: f32, decay_steps: usize, schedule: LambdaSchedule, step: usize) -> f64 {
    match schedule {
        LambdaSchedule::Constant => lambda0 as f64,
        LambdaSchedule::Linear if step < decay_steps => {
            lambda0 as f64 * (1.0 - step as f64 / decay_steps as f64)
        }
        LambdaSchedule::Linear => 0.0,
    }
}

/// `(1 − λ) + λ·clip(exp(log_w), 1 − ε_w, 1 + ε_w)`: the factor on `A_i`.
pub fn multiplier(log_w: f64, lambda: f64, eps_w: f64) -> f64 {
    let w = log_w.exp().clamp(1.0 - eps_w, 1.0 + eps_w);
    (1.0 - lambda) + lambda * w
}

/// Per-token advantages `A_i · multiplier(log_w(i, t))` over the mask, `[n, t]`, with the
/// `A = 0` guard; also the mean `|multiplier − 1|` and the clipped fraction over the masked
/// tokens of rows with `A ≠ 0`.
pub fn reweight(
    advantages: &[f32],
    mask: &TokenMatrix,
    lambda: f64,
    eps_w: f64,
    log_w: impl Fn(usize, usize, f64) -> f64,
) -> (TokenMatrix, f64, f64) {
    let mut out = TokenMatrix::zeros(mask.rows, mask.cols);
    let (mut dev_sum, mut clipped, mut count) = (0.0, 0usize, 0usize);
    for (i, &a) in advantages.iter().enumerate() {
        if a == 0.0 {
            continue; // exactly 0, whatever the teachers say
        }
        let a = a as f64;
        for t in 0..mask.cols {
            let m = mask.get(i, t) as f64;
            if m == 0.0 {
                continue;
            }
            let lw = log_w(i, t, a.signum());
            let mult = multiplier(lw, lambda, eps_w);
            out.set(i, t, (a * mult * m) as f32);
            dev_sum += (mult - 1.0).abs();
            clipped += usize::from(lw.exp() < 1.0 - eps_w || lw.exp() > 1.0 + eps_w);
            count += 1;
        }
    }
    let count = count.max(1) as f64;
    (out, dev_sum / count, clipped as f64 / count)
}

/// The user message of the authors' teacher: `teacher_hint_self_distill.jinja` L2-7 rendered
/// with `question` and `hint`, each `trim`med (iie-ycx/RLSD@93e46f7).
pub fn authors_teacher_message(question: &str, hint: &str) -> String {
    format!(
        "{}\n\nHere is a reference solution:\n{}\n\nAfter understanding the reference solution, please try to solve this problem using your own approach below. You FIRST think about the reasoning process as an internal monologue enclosed within <thought> </thought> tags. The final answer MUST be enclosed within <answer> </answer> tags.",
        py_strip(question),
        py_strip(hint)
    )
}

/// The context of a teacher that reads `answer` as CEPO's repository builds it (for CEPO's
/// teachers and its RLSD baseline): the task's own answer slot where it has one (the CPU
/// world's `[h:936]`), else `" " + answer` tokenized on its own without special tokens and
/// spliced right after the prompt's assistant header, no instruction text
/// (ahmedheakl/CEPO@7a9655d `verl/trainer/ray_trainer.py::_build_cepo_teacher_batch`
/// L641-668, `_build_teacher_inputs` L771-773).
pub fn answer_context(group: &TeacherGroup<'_>, answer: &str) -> Result<Vec<u32>> {
    match group.task_hint("answer", answer)? {
        Some(context) => Ok(context),
        None => group.after_prompt(&format!(" {answer}")),
    }
}

/// `row` for every response of `group`, scored only where a teacher can change `Â`: when
/// `live` (λ > 0, and whatever else the objective needs) and the response's GRPO advantage is
/// not 0 (`reweight` keeps `Â = 0` there whatever the teacher says). Shared with CEPO.
pub fn scored_where_advantage_moves(
    row: TeacherRow,
    live: bool,
    group: &TeacherGroup<'_>,
    norm_adv_by_std: bool,
    adv_eps: f32,
) -> Vec<TeacherRow> {
    let rewards = group.rewards();
    let one_group = vec![0; rewards.len()];
    group_advantages(&rewards, &one_group, norm_adv_by_std, adv_eps)
        .iter()
        .map(|&a| {
            if live && a != 0.0 {
                row.clone()
            } else {
                row.clone().unscored()
            }
        })
        .collect()
}

impl Objective for Rlsd {
    fn name(&self) -> &str {
        "rlsd"
    }

    fn needs(&self) -> Needs {
        Needs {
            teachers: vec![TeacherPass {
                name: match self.config.hint {
                    RlsdHint::ReferenceSolution | RlsdHint::Solution => "reference-solution",
                    RlsdHint::Answer => "gold-answer",
                }
                .into(),
                weights: match self.config.teacher {
                    RlsdTeacher::Initial => TeacherWeights::Initial,
                    RlsdTeacher::Current => TeacherWeights::Current,
                },
                logits: false,
                probe_input: ProbeInput::Teacher,
            }],
            ..Needs::default()
        }
    }

    /// The gold answer (or the worked solution) in the configured form; scored only where it
    /// can change `Â`: while λ > 0, on rows with `A_i ≠ 0`. No context is built once λ = 0.
    fn teacher_rows(&self, step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        let c = &self.config;
        let live = rlsd_lambda(c.lambda, c.decay_steps, c.lambda_schedule, step) > 0.0;
        if !live {
            return Ok(vec![vec![TeacherRow::skipped(); group.len()]]);
        }
        let problem = group.problem;
        let row = match c.hint {
            RlsdHint::Answer => TeacherRow::hinted(
                answer_context(group, &problem.answer)?,
                problem.answer.as_str(),
            ),
            RlsdHint::ReferenceSolution | RlsdHint::Solution => {
                let hint = match c.hint {
                    RlsdHint::Solution if !problem.solution.is_empty() => &problem.solution,
                    _ => &problem.answer,
                };
                let context = match group.task_hint("solution", hint)? {
                    Some(context) => context,
                    None => {
                        group.user_message(&authors_teacher_message(&problem.question, hint))?
                    }
                };
                TeacherRow::hinted(context, hint.as_str())
            }
        };
        Ok(vec![scored_where_advantage_moves(
            row,
            true,
            group,
            c.norm_adv_by_std,
            c.adv_eps,
        )])
    }

    fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    // -----------------------------------------------------------------------------------------
    // Credit stage
    // -----------------------------------------------------------------------------------------

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let c = &self.config;
        let advantages =
            group_advantages(input.rewards, input.group_ids, c.norm_adv_by_std, c.adv_eps);
        let lambda = rlsd_lambda(c.lambda, c.decay_steps, c.lambda_schedule, input.step);
        let teacher = &input.teachers[0].logprobs;
        let old = input.old_logprobs;
        // w_t = exp(clamp(sign(A)·(ℓ^T − ℓ^old), ±20)).
        let (per_token, dev, clip_frac) = reweight(
            &advantages,
            input.mask,
            lambda,
            c.eps_w as f64,
            |i, t, sign| {
                // NaN (a token both rule out, −∞ − (−∞)) is agreement, as in CEPO.
                let delta = teacher.get(i, t) as f64 - old.get(i, t) as f64;
                let delta = if delta.is_nan() { 0.0 } else { delta };
                (sign * delta).clamp(-20.0, 20.0)
            },
        );
        let mut metrics = advantage_metrics("rlsd", &advantages);
        metrics.push(("rlsd/lambda".into(), lambda));
        metrics.push(("rlsd/weight_dev_mean".into(), dev));
        metrics.push(("rlsd/weight_clip_frac".into(), clip_frac));
        Ok(Credit {
            advantages: per_token,
            sequence_advantages: Some(advantages),
            metrics,
            ..Credit::default()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage: PPO-clip on the re-weighted advantages
    // -----------------------------------------------------------------------------------------

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        ppo_clip_loss(
            input.logprobs,
            input.old_logprobs,
            input.advantages,
            self.clip,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: RLSD's share of `algorithms.md` §9.4 (P-5 and P-8; CEPO's crate tests the rest)
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::TeacherScores;
    use zoo_core::testing::GroupFixture;

    fn credit(objective: &dyn Objective, teacher: &[f32], old: &[f32], step: usize) -> TokenMatrix {
        let n = teacher.len() / 2;
        let m = |data: &[f32]| TokenMatrix {
            rows: n,
            cols: 2,
            data: data.to_vec(),
        };
        let rewards: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
        objective
            .credit(&CreditInput {
                step,
                rewards: &rewards,
                correct: &rewards.iter().map(|&r| r == 1.0).collect::<Vec<_>>(),
                group_ids: &vec![0; n],
                mask: &m(&vec![1.0; 2 * n]),
                old_logprobs: &m(old),
                ref_logprobs: None,
                teachers: &[TeacherScores {
                    logprobs: m(teacher),
                    has_hint: vec![true; n],
                    scored: vec![true; n],
                }],
            })
            .unwrap()
            .advantages
    }

    fn rlsd() -> Box<dyn Objective> {
        build(RlsdConfig::default())
    }

    fn build(config: RlsdConfig) -> Box<dyn Objective> {
        config
            .build(&BuildContext {
                max_new_tokens: 2,
                group_size: 2,
                steps: 30,
                temperature: 1.0,
                evaluation: false,
            })
            .unwrap()
    }

    #[test]
    fn schedule_is_lambda0_times_one_minus_s_over_t() {
        // P-8 (RLSD form): λ_s = λ0·(1 − s/T), 0 from s = T on.
        let l = |s| rlsd_lambda(0.5, 25, LambdaSchedule::Linear, s);
        assert_relative_eq!(l(1), 0.48, epsilon = 1e-12);
        assert_relative_eq!(l(24), 0.02, epsilon = 1e-12);
        assert_eq!(l(25), 0.0);
        assert_eq!(l(100), 0.0);
        assert_eq!(rlsd_lambda(0.5, 25, LambdaSchedule::Constant, 100), 0.5);
    }

    #[test]
    fn a_style_offset_on_the_teacher_changes_rlsd_credit() {
        // P-5, RLSD half: adding u_t ≠ 0 to ℓ^T moves the weight (inside the clip range).
        let old = [-1.0, -1.0, -1.0, -1.0];
        let teacher = [-1.05, -0.95, -1.1, -0.9];
        let shifted: Vec<f32> = teacher.iter().map(|x| x + 0.03).collect();
        let a = credit(rlsd().as_ref(), &teacher, &old, 1);
        let b = credit(rlsd().as_ref(), &shifted, &old, 1);
        for k in 0..4 {
            assert!((a.data[k] - b.data[k]).abs() > 1e-4, "token {k} unchanged");
        }
    }

    #[test]
    fn weight_uses_the_per_token_sign_and_bounds() {
        // Row 1 is correct (A > 0), row 0 wrong (A < 0). With Δ = +0.1 on every token, the
        // correct row's factor is (1−λ) + λ·e^0.1 and the wrong row's (1−λ) + λ·e^−0.1.
        let old = [-1.0; 4];
        let teacher = [-0.9; 4];
        let adv = credit(
            build(RlsdConfig::cepo_repository()).as_ref(),
            &teacher,
            &old,
            1,
        );
        let a = std::f64::consts::FRAC_1_SQRT_2;
        let lambda = 0.48;
        let up = (1.0 - lambda) + lambda * 0.1f64.exp();
        let down = (1.0 - lambda) + lambda * (-0.1f64).exp();
        assert_relative_eq!(adv.get(1, 0) as f64, a * up, epsilon = 1e-5);
        assert_relative_eq!(adv.get(0, 0) as f64, -a * down, epsilon = 1e-5);
    }

    #[test]
    fn defaults_are_the_authors_and_rlsd_cepo_is_the_cepo_repository_baseline() {
        let authors = RlsdConfig::default();
        assert_eq!(authors.lambda_schedule, LambdaSchedule::Constant);
        assert_eq!((authors.lambda, authors.eps_w), (0.5, 0.2));
        assert_eq!((authors.clip_low, authors.clip_high), (0.2, 0.28));
        let pass = rlsd().needs().teachers[0].clone();
        assert_eq!(pass.weights, TeacherWeights::Initial);
        assert_eq!(pass.name, "reference-solution");
        // λ stays 0.5: the teacher is read at any step.
        let adv = credit(rlsd().as_ref(), &[-0.9; 4], &[-1.0; 4], 500);
        assert!(adv.get(1, 0) as f64 > std::f64::consts::FRAC_1_SQRT_2);

        // `algo = "rlsd-cepo"`: the CEPO repository's defaults under the fields given.
        let parse = |text: &str| -> RlsdConfig {
            let config: Box<dyn ObjectiveConfig> = serde_json::from_str(text).unwrap();
            let value = serde_json::to_value(&config).unwrap();
            serde_json::from_value(
                value
                    .as_object()
                    .unwrap()
                    .clone()
                    .into_iter()
                    .filter(|(k, _)| k != "algo")
                    .collect(),
            )
            .unwrap()
        };
        assert_eq!(
            parse(r#"{"algo": "rlsd-cepo"}"#),
            RlsdConfig::cepo_repository()
        );
        let tuned = parse(r#"{"algo": "rlsd-cepo", "decay_steps": 10, "teacher": "initial"}"#);
        assert_eq!(tuned.decay_steps, 10);
        assert_eq!(tuned.teacher, RlsdTeacher::Initial);
        assert_eq!(tuned.lambda_schedule, LambdaSchedule::Linear);
        assert_eq!(tuned.hint, RlsdHint::Answer);
        assert_eq!(parse(r#"{"algo": "rlsd"}"#), RlsdConfig::default());
        // Unknown keys are refused under either name.
        for algo in ["rlsd", "rlsd-cepo"] {
            let text = format!(r#"{{"algo": "{algo}", "lamda": 0.3}}"#);
            let error = serde_json::from_str::<Box<dyn ObjectiveConfig>>(&text).unwrap_err();
            assert!(error.to_string().contains("lamda"), "{algo}: {error}");
        }
        let cepo = build(RlsdConfig::cepo_repository());
        let pass = cepo.needs().teachers[0].clone();
        assert_eq!(pass.weights, TeacherWeights::Current);
        assert_eq!(pass.name, "gold-answer");
    }

    #[test]
    fn the_teacher_reads_the_gold_answer_in_the_configured_form_where_it_can_matter() {
        let problem = zoo_core::Problem {
            prompt: "Solve: p".into(),
            question: " p ".into(),
            answer: "7".into(),
            solution: "long".into(),
        };
        let fixture = |scores: [f32; 2]| {
            GroupFixture::new(
                problem.clone(),
                &[("a", scores[0], None), ("b", scores[1], None)],
            )
        };
        let rows = |objective: &dyn Objective, step: usize, scores: [f32; 2]| {
            let fixture = fixture(scores);
            objective
                .teacher_rows(step, &fixture.group(step))
                .unwrap()
                .remove(0)
        };
        let user = |text: &str| [vec![256], text.bytes().map(u32::from).collect()].concat();
        let mixed = [1.0, 0.0];
        // The authors' template around the trimmed question and the gold answer.
        let authors = rows(rlsd().as_ref(), 1000, mixed);
        assert_eq!(authors[0].hint, "7");
        assert_eq!(authors[0].context, user(&authors_teacher_message("p", "7")));
        assert!(authors[0].context.len() > 100);
        assert!(authors.iter().all(|r| r.scored));
        // `hint = "solution"`: the worked solution in the same template.
        let solution = build(RlsdConfig {
            hint: RlsdHint::Solution,
            ..RlsdConfig::default()
        });
        let with_solution = rows(solution.as_ref(), 1, mixed);
        assert_eq!(
            with_solution[1].context,
            user(&authors_teacher_message("p", "long"))
        );
        // CEPO's repository: `" " + answer` after the student's prompt.
        let cepo = build(RlsdConfig::cepo_repository());
        let spliced = rows(cepo.as_ref(), 1, mixed);
        assert_eq!(spliced[0].hint, "7");
        assert_eq!(
            spliced[0].context,
            [fixture(mixed).prompt, vec![32, 55]].concat()
        );
        // λ = 0 from step T = 25 on: no context, no score; A = 0 rows: not scored.
        assert!(
            rows(cepo.as_ref(), 25, mixed)
                .iter()
                .all(|r| !r.scored && r.context.is_empty())
        );
        assert!(
            rows(rlsd().as_ref(), 1, [1.0, 1.0])
                .iter()
                .all(|r| !r.scored)
        );
    }

    #[test]
    fn a_token_both_rule_out_counts_as_agreement() {
        // ℓ^T = ℓ^old = −∞ on token 0: Δ is NaN, treated as 0 (weight 1), as CEPO does.
        let inf = f32::NEG_INFINITY;
        let adv = credit(
            rlsd().as_ref(),
            &[inf, -0.9, inf, -0.9],
            &[inf, -1.0, inf, -1.0],
            1,
        );
        assert!(adv.data.iter().all(|a| a.is_finite()), "{adv:?}");
        let a = std::f64::consts::FRAC_1_SQRT_2;
        assert_relative_eq!(adv.get(1, 0) as f64, a, max_relative = 1e-5);
        assert_relative_eq!(adv.get(0, 0) as f64, -a, max_relative = 1e-5);
    }
}
