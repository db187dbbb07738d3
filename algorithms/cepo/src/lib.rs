//! CEPO: GRPO credit re-weighted per token by the contrast between a gold-answer teacher and a
//! wrong-answer teacher.
//!
//! # What it computes (`algorithms.md` §5)
//! Credit: the GRPO advantage `A_i` (§1), then per token
//! `Δ_t = ℓ^{T+}_t − ℓ^{T−}_t` (the same weights `θ_old` with the gold answer, resp. a wrong
//! answer, in the context), `w_t = exp(sign(A_i)·Δ_t)` and
//! `Â_{i,t} = A_i·[(1 − λ) + λ·clip(w_t, 1 − ε_w, 1 + ε_w)]·m_{i,t}`.
//! Tokens both teachers agree on keep exactly the GRPO advantage; on a correct response the
//! tokens the gold-answer teacher prefers get more credit, on a wrong one the tokens the
//! wrong-answer teacher prefers get more blame. Loss: the PPO-clip token loss (§0.3),
//! token-mean. Schedule: `λ_s = λ0·(1 − (s − 1)/T)` for `1 ≤ s ≤ T`, then 0 (one step later
//! than RLSD's).
//!
//! # Defaults and their source
//! Decision 2: ε_w = 0.2, λ0 = 0.5 decaying to 0 over 25 steps, clip 0.2/0.28, dual clip 3,
//! token-mean, no KL; the sign is that of the whole sequence's advantage
//! (`experiments/geo/cepo.sh`).
//!
//! # The teachers' contexts
//! As ahmedheakl/CEPO@7a9655d `verl/trainer/ray_trainer.py::_build_cepo_teacher_batch`
//! (L562-746) builds them: the student's context (the prompt through the chat template,
//! ending with the assistant header) followed by `" " + answer` tokenized on its own without
//! special tokens (L641-643, L662-668), no instruction text; then the response. The gold
//! answer for the positive teacher, the group's wrong answer (below) for the negative one.
//! With `cot_teacher` (`cepo_use_cot_teacher`, off by default as in `config.py` L124-129 and
//! `cepo.sh`): the first (`cot_slice = "prefix"`, `CEPO_IS_PREFIX=1`, the default) or last
//! `cot_len` (200) response ids of the group's best correct response and of its worst rejected
//! one, spliced as ids (L591-622); without a correct response the positive teacher reads the
//! gold answer. A task with hint slots of its own (the CPU world) gets the answer in its
//! `answer` slot (`[h:936]`) and a CoT slice in its `solution` slot.
//!
//! # Differences from the reference
//! The reference's teachers see no image (vision placeholders become padding); zoo's tasks
//! have none. The wrong answer (decision 3): per group, the most frequent *extracted* wrong answer among
//! the rejected responses (score < `rejected_below`, 0.5 as in the reference; ties: lowest
//! score, then first), skipping responses without an answer the verifier extracted and parsed.
//! `wrong_answer = "lowest-score"` is the reference's choice: the lowest-scoring rejected
//! response's extracted answer, and for a response without one the literal text `None` (the
//! reference's `extract_boxed_content(text) or text[:50]` returns the string "None" when no
//! box is found, so its 50-character fallback runs only for an empty box). A group without a
//! wrong answer has `Δ = 0` by construction (GRPO for that group): neither teacher scores it,
//! where the reference scores the gold answer twice. `A_i = 0` gives `Â = 0` before any
//! exponential, and a token both teachers rule out (`−∞ − (−∞)`) counts as agreement (Δ = 0).
//! The teachers score only the rows whose `Â` they can change: none once λ = 0 (the reference
//! skips the passes then), none with `A_i = 0`.
//!
//! # References
//! Heakl et al. (arXiv 2605.19436); ahmedheakl/CEPO `verl/trainer/core_algos.py::
//! apply_cepo_weighting`, `ray_trainer.py::_build_cepo_teacher_batch` and `fit()`.

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, ProbeInput, Result, TeacherGroup, TeacherPass, TeacherRow, TeacherWeights,
    Verdict,
};
use zoo_grpo::{Clip, LossAgg, advantage_metrics, group_advantages, ppo_clip_loss};
use zoo_rlsd::{
    LambdaSchedule, answer_context, reweight, scored_where_advantage_moves, validate_weighting,
};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// How the negative teacher's wrong answer is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WrongAnswer {
    /// The most frequent extracted wrong answer of the group (decision 3).
    MostFrequent,
    /// The lowest-scoring rejected response's answer (the reference code).
    LowestScore,
}

/// Which end of a response the CoT teacher reads (`CEPO_IS_PREFIX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CotSlice {
    /// The first `cot_len` tokens (`CEPO_IS_PREFIX=1`, the code's default).
    Prefix,
    /// The last `cot_len` tokens (`CEPO_IS_PREFIX=0`); empty for a shorter response, as the
    /// reference's slice of a padded row is.
    Suffix,
}

/// CEPO's configuration; defaults per decision 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CepoConfig {
    /// `λ0`.
    pub lambda: f32,
    /// `ε_w`.
    pub eps_w: f32,
    /// `T_warm`, the steps over which λ decays.
    pub decay_steps: usize,
    /// The λ schedule.
    pub lambda_schedule: LambdaSchedule,
    /// How the wrong answer is chosen.
    pub wrong_answer: WrongAnswer,
    /// A response scoring below this is rejected: a source of wrong answers.
    pub rejected_below: f32,
    /// The CoT teachers (`cepo_use_cot_teacher`): the positive teacher reads `cot_len` tokens
    /// of the group's best correct response, the negative one of its worst rejected response,
    /// instead of the answers. Off in the reference's config and script.
    pub cot_teacher: bool,
    /// Tokens of the response a CoT teacher reads (`cepo_cot_prefix_len`: 200 in
    /// `config.py`; the script's 512 is unused while `cot_teacher` is off).
    pub cot_len: usize,
    /// Which end of the response a CoT teacher reads (`CEPO_IS_PREFIX`, default `1`).
    pub cot_slice: CotSlice,
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

impl Default for CepoConfig {
    fn default() -> Self {
        Self {
            lambda: 0.5,
            eps_w: 0.2,
            decay_steps: 25,
            lambda_schedule: LambdaSchedule::Linear,
            wrong_answer: WrongAnswer::MostFrequent,
            rejected_below: 0.5,
            cot_teacher: false,
            cot_len: 200,
            cot_slice: CotSlice::Prefix,
            clip_low: 0.2,
            clip_high: 0.28,
            clip_dual: 3.0,
            loss_agg: LossAgg::TokenMean,
            norm_adv_by_std: true,
            adv_eps: 1e-6,
        }
    }
}

#[typetag::serde(name = "cepo")]
impl ObjectiveConfig for CepoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        validate_weighting("cepo", self.lambda, self.eps_w, self.decay_steps)?;
        if !self.rejected_below.is_finite() {
            return Err(Error::Config(format!(
                "cepo: `rejected_below` must be a finite score, got {}",
                self.rejected_below
            )));
        }
        if self.cot_teacher && self.cot_len == 0 {
            return Err(Error::Config(
                "cepo: `cot_len` must be at least 1 with `cot_teacher = true`".into(),
            ));
        }
        let clip = Clip {
            low: self.clip_low,
            high: self.clip_high,
            dual: self.clip_dual,
        };
        clip.validate("cepo")?;
        let aggregation = self
            .loss_agg
            .aggregation(None, context.max_new_tokens, "cepo")?;
        // `zoo objective eval` gives this step's λ: no schedule there.
        let mut config = self.clone();
        if context.evaluation {
            config.lambda_schedule = LambdaSchedule::Constant;
        }
        Ok(Box::new(Cepo {
            config,
            clip,
            aggregation,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "cepo",
        summary: "GRPO credit re-weighted by a gold- vs wrong-answer teacher contrast (CEPO)",
        default_config: || Box::new(CepoConfig::default()),
        origin: "zoo-cepo",
        run_defaults: "",
        llm_run_defaults: "[optim]\nlr = 5e-6",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The CEPO objective.
#[derive(Debug, Clone)]
pub struct Cepo {
    config: CepoConfig,
    clip: Clip,
    aggregation: Aggregation,
}

/// CEPO's λ at step `s ≥ 1`: λ is applied, then decayed, so `λ_s = λ0·(1 − (s − 1)/T)` for
/// `s ≤ T`, then 0.
pub fn cepo_lambda(lambda0: f32, decay_steps: usize, schedule: LambdaSchedule, step: usize) -> f64 {
    match schedule {
        LambdaSchedule::Constant => lambda0 as f64,
        LambdaSchedule::Linear if (1..=decay_steps).contains(&step) => {
            lambda0 as f64 * (1.0 - (step - 1) as f64 / decay_steps as f64)
        }
        LambdaSchedule::Linear => 0.0,
    }
}

/// `Δ_t = ℓ^{T+}_t − ℓ^{T−}_t`; a token both teachers rule out counts as agreement.
pub fn evidence_delta(positive: f32, negative: f32) -> f64 {
    let delta = positive as f64 - negative as f64;
    if delta.is_nan() { 0.0 } else { delta }
}

/// The context of a CoT teacher that reads `ids` (a slice of a group-mate's response): the
/// task's own solution slot where it has one, else the ids spliced after the prompt's
/// assistant header as the reference does (no decoding, `_build_cepo_teacher_batch`
/// L612-622); with the decoded slice as the hint.
fn slice_context(group: &TeacherGroup<'_>, ids: &[u32]) -> Result<TeacherRow> {
    let text = group.decode(ids);
    let context = match group.task_hint("solution", &text)? {
        Some(context) => context,
        None => group.after_prompt_ids(ids),
    };
    Ok(TeacherRow::hinted(context, text))
}

/// The wrong answer of one group's negative teacher (from its `responses` and their
/// `verdicts`), or `None` when no rejected response (score < `rejected_below`) yields one.
pub fn wrong_answer(
    rule: WrongAnswer,
    rejected_below: f32,
    responses: &[String],
    verdicts: &[Verdict],
) -> Option<String> {
    let rejected = (0..verdicts.len()).filter(|&i| verdicts[i].score < rejected_below);
    match rule {
        WrongAnswer::MostFrequent => {
            // (answer, count, lowest score, first index)
            let mut tally: Vec<(&str, usize, f32, usize)> = Vec::new();
            for i in rejected {
                // Only an answer the verifier could parse is a wrong answer: unparsable text
                // after the answer marker is no answer at all.
                let Some(answer) = verdicts[i]
                    .extracted
                    .as_deref()
                    .filter(|a| !a.trim().is_empty() && verdicts[i].parsed)
                else {
                    continue;
                };
                match tally.iter_mut().find(|(a, ..)| *a == answer) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 = entry.2.min(verdicts[i].score);
                    }
                    None => tally.push((answer, 1, verdicts[i].score, i)),
                }
            }
            tally
                .into_iter()
                .min_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)).then(a.3.cmp(&b.3)))
                .map(|(answer, ..)| answer.to_string())
        }
        // The reference: `extract_boxed_content(text) or text[:50]`, where a missing box is
        // the string "None" and an empty one falls back to the text; blank → the gold answer
        // (no wrong answer).
        WrongAnswer::LowestScore => rejected
            .min_by(|&a, &b| {
                verdicts[a]
                    .score
                    .total_cmp(&verdicts[b].score)
                    .then(a.cmp(&b))
            })
            .map(|i| match verdicts[i].extracted.as_deref() {
                None => "None".to_string(),
                Some("") => responses[i].chars().take(50).collect(),
                Some(answer) => answer.to_string(),
            })
            .filter(|answer| !answer.trim().is_empty()),
    }
}

impl Objective for Cepo {
    fn name(&self) -> &str {
        "cepo"
    }

    fn needs(&self) -> Needs {
        let teacher = |name: &str, probe_input| TeacherPass {
            name: name.into(),
            weights: TeacherWeights::Current,
            logits: false,
            probe_input,
        };
        Needs {
            teachers: vec![
                teacher("gold-answer", ProbeInput::Positive),
                teacher("wrong-answer", ProbeInput::Negative { slot: 0 }),
            ],
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    /// Pass `gold-answer` reads the gold answer, pass `wrong-answer` the group's wrong answer
    /// (or, with `cot_teacher`, slices of the best correct and the worst rejected response).
    /// Only rows whose `Â` the teachers can change are scored: none while λ = 0 (no context is
    /// built then), none with `A_i = 0`, none of a group without a wrong answer (there `Δ = 0`
    /// by construction).
    fn teacher_rows(&self, step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        let c = &self.config;
        let lambda = cepo_lambda(c.lambda, c.decay_steps, c.lambda_schedule, step);
        if lambda <= 0.0 {
            return Ok(vec![vec![TeacherRow::skipped(); group.len()]; 2]);
        }
        let (positive, negative) = if c.cot_teacher {
            self.cot_teachers(group)?
        } else {
            let gold = &group.problem.answer;
            let positive = TeacherRow::hinted(answer_context(group, gold)?, gold.as_str());
            let negative = match wrong_answer(
                c.wrong_answer,
                c.rejected_below,
                group.responses,
                group.verdicts,
            ) {
                Some(wrong) => TeacherRow::hinted(answer_context(group, &wrong)?, wrong),
                None => TeacherRow::skipped(),
            };
            (positive, negative)
        };
        let live = negative.has_hint;
        let rows =
            |row| scored_where_advantage_moves(row, live, group, c.norm_adv_by_std, c.adv_eps);
        Ok(vec![rows(positive), rows(negative)])
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
        let lambda = cepo_lambda(c.lambda, c.decay_steps, c.lambda_schedule, input.step);
        let (positive, negative) = (&input.teachers[0], &input.teachers[1]);
        // w_t = exp(σ_i·Δ_t), σ_i = sign(A_i); no clamp before the exponential (as in the
        // reference), the clip to [1 − ε_w, 1 + ε_w] bounds it.
        let (per_token, dev, clip_frac) = reweight(
            &advantages,
            input.mask,
            lambda,
            c.eps_w as f64,
            |i, t, sign| {
                // Without a wrong answer the two contexts are the same: Δ = 0.
                if !negative.has_hint[i] {
                    return 0.0;
                }
                sign * evidence_delta(positive.logprobs.get(i, t), negative.logprobs.get(i, t))
            },
        );
        let mask = input.mask;
        // Over the rows both teachers scored: |Δ| per token, and each row's largest |Δ| (the
        // decisive tokens are a few per response, so the token mean dilutes them).
        let (mut delta_sum, mut tokens, mut max_sum, mut rows) = (0.0, 0.0, 0.0, 0.0);
        for i in (0..mask.rows).filter(|&i| positive.scored[i] && negative.scored[i]) {
            let mut row_max: f64 = 0.0;
            for t in 0..mask.cols {
                if mask.get(i, t) != 0.0 {
                    let d =
                        evidence_delta(positive.logprobs.get(i, t), negative.logprobs.get(i, t));
                    delta_sum += d.abs().min(1e6);
                    row_max = row_max.max(d.abs().min(1e6));
                    tokens += 1.0;
                }
            }
            max_sum += row_max;
            rows += 1.0;
        }
        let found = negative.has_hint.iter().filter(|&&h| h).count() as f64;
        let mut metrics = advantage_metrics("cepo", &advantages);
        metrics.push(("cepo/lambda".into(), lambda));
        metrics.push((
            "cepo/delta_abs_mean".into(),
            delta_sum / f64::max(tokens, 1.0),
        ));
        metrics.push((
            "cepo/delta_abs_max_mean".into(),
            max_sum / f64::max(rows, 1.0),
        ));
        metrics.push(("cepo/weight_dev_mean".into(), dev));
        metrics.push(("cepo/weight_clip_frac".into(), clip_frac));
        metrics.push((
            "cepo/wrong_answer_found_frac".into(),
            found / negative.has_hint.len().max(1) as f64,
        ));
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

impl Cepo {
    /// The CoT teachers of `group` (`cepo_use_cot_teacher`, `_build_cepo_teacher_batch`
    /// L591-622): `cot_len` tokens (prefix or suffix) of the best correct response (highest
    /// score ≥ `rejected_below`, first on ties; without one, `" " + gold` as in the answer
    /// mode) and of the worst rejected response (lowest score below it, first on ties; without
    /// one, no negative teacher: `Δ = 0`). A response's length stops at its first padding id,
    /// as the reference's does.
    fn cot_teachers(&self, group: &TeacherGroup<'_>) -> Result<(TeacherRow, TeacherRow)> {
        let c = &self.config;
        let scores = group.rewards();
        let pick = |keep: &dyn Fn(f32) -> bool, better: &dyn Fn(f32, f32) -> bool| {
            (0..scores.len())
                .filter(|&i| keep(scores[i]))
                .fold(None, |best: Option<usize>, i| match best {
                    Some(b) if !better(scores[i], scores[b]) => Some(b),
                    _ => Some(i),
                })
        };
        let best = pick(&|s| s >= c.rejected_below, &|a, b| a > b);
        let worst = pick(&|s| s < c.rejected_below, &|a, b| a < b);
        let slice = |i: usize| -> &[u32] {
            let ids = &group.response_ids[i];
            let len = ids
                .iter()
                .position(|&t| t == group.pad_id())
                .unwrap_or(ids.len());
            match c.cot_slice {
                CotSlice::Prefix => &ids[..len.min(c.cot_len)],
                // `resp[actual_len - k : actual_len]` of a row padded past `k`: empty when the
                // response is shorter than `k`.
                CotSlice::Suffix if len >= c.cot_len => &ids[len - c.cot_len..len],
                CotSlice::Suffix => &[],
            }
        };
        let positive = match best {
            Some(i) => slice_context(group, slice(i))?,
            None => {
                let gold = &group.problem.answer;
                TeacherRow::hinted(answer_context(group, gold)?, gold.as_str())
            }
        };
        let negative = match worst {
            Some(i) => slice_context(group, slice(i))?,
            None => TeacherRow::skipped(),
        };
        Ok((positive, negative))
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: properties P-1..P-9 of `algorithms.md` §9.4
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::burn::prelude::*;
    use zoo_core::probe::{ProbeBatch, probe};
    use zoo_core::testing::GroupFixture;
    use zoo_core::{TeacherScores, TokenMatrix};
    use zoo_rlsd::RlsdConfig;

    const LAMBDA: f32 = 0.5;
    const EPS_W: f32 = 0.2;

    fn context() -> BuildContext {
        BuildContext {
            max_new_tokens: 4,
            group_size: 2,
            steps: 30,
            temperature: 1.0,
            evaluation: false,
        }
    }

    fn constant(lambda: f32) -> Box<dyn Objective> {
        CepoConfig {
            lambda,
            lambda_schedule: LambdaSchedule::Constant,
            ..CepoConfig::default()
        }
        .build(&context())
        .unwrap()
    }

    fn m(rows: usize, data: &[f32]) -> TokenMatrix {
        TokenMatrix {
            rows,
            cols: data.len() / rows,
            data: data.to_vec(),
        }
    }

    fn scores(logprobs: TokenMatrix) -> TeacherScores {
        let n = logprobs.rows;
        TeacherScores {
            logprobs,
            has_hint: vec![true; n],
            scored: vec![true; n],
        }
    }

    /// CEPO credit for one group of two (row 0 correct, row 1 wrong) over `t` tokens.
    fn cepo_credit(
        objective: &dyn Objective,
        pos: &[f32],
        neg: &[f32],
        old: &[f32],
    ) -> TokenMatrix {
        let t = pos.len() / 2;
        objective
            .credit(&CreditInput {
                step: 1,
                rewards: &[1.0, 0.0],
                correct: &[true, false],
                group_ids: &[0, 0],
                mask: &m(2, &vec![1.0; 2 * t]),
                old_logprobs: &m(2, old),
                ref_logprobs: None,
                teachers: &[scores(m(2, pos)), scores(m(2, neg))],
            })
            .unwrap()
            .advantages
    }

    /// `|A|` of a group of two with rewards (1, 0): `0.5 / (σ + eps)`.
    fn a0() -> f32 {
        zoo_grpo::group_advantages(&[1.0, 0.0], &[0, 0], true, 1e-6)[0]
    }

    /// RLSD credit (constant λ = `LAMBDA`) on the same group as [`cepo_credit`].
    fn rlsd_credit(teacher: &[f32], old: &[f32]) -> TokenMatrix {
        let rlsd = RlsdConfig {
            lambda: LAMBDA,
            lambda_schedule: LambdaSchedule::Constant,
            ..RlsdConfig::default()
        }
        .build(&context())
        .unwrap();
        rlsd.credit(&CreditInput {
            step: 1,
            rewards: &[1.0, 0.0],
            correct: &[true, false],
            group_ids: &[0, 0],
            mask: &m(2, &vec![1.0; old.len()]),
            old_logprobs: &m(2, old),
            ref_logprobs: None,
            teachers: &[scores(m(2, teacher))],
        })
        .unwrap()
        .advantages
    }

    #[test]
    fn p1_agreeing_teachers_leave_the_grpo_advantage() {
        let same = [-0.3, -2.0, -0.7, -5.0];
        let adv = cepo_credit(constant(LAMBDA).as_ref(), &same, &same, &[-1.0; 4]);
        for k in 0..4 {
            let a = if k < 2 { a0() } else { -a0() };
            assert_relative_eq!(adv.data[k], a, max_relative = 1e-7);
        }
        // Conversely, any Δ ≠ 0 with λ > 0 and A ≠ 0 moves it.
        let neg = [-0.31, -1.9, -0.69, -5.2];
        let adv = cepo_credit(constant(LAMBDA).as_ref(), &same, &neg, &[-1.0; 4]);
        for k in 0..4 {
            let a = if k < 2 { a0() } else { -a0() };
            assert!(adv.data[k] != a, "token {k}");
        }
    }

    #[test]
    fn contrast_metrics_are_the_token_mean_and_the_row_max_of_the_teacher_gap() {
        let pos = [-0.1, -0.2, -0.3, -0.4, -1.0, -2.0];
        let neg = [-0.1, -0.7, -0.3, -0.4, -3.0, -2.5];
        // |Δ| per token: 0, 0.5, 0 | 0, 2, 0.5.
        let credit = constant(LAMBDA)
            .credit(&CreditInput {
                step: 1,
                rewards: &[1.0, 0.0],
                correct: &[true, false],
                group_ids: &[0, 0],
                mask: &m(2, &[1.0; 6]),
                old_logprobs: &m(2, &[-1.0; 6]),
                ref_logprobs: None,
                teachers: &[scores(m(2, &pos)), scores(m(2, &neg))],
            })
            .unwrap();
        let metric = |name: &str| {
            credit
                .metrics
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| *v)
                .unwrap()
        };
        assert_relative_eq!(metric("cepo/delta_abs_mean"), 3.0 / 6.0, epsilon = 1e-6);
        assert_relative_eq!(
            metric("cepo/delta_abs_max_mean"),
            (0.5 + 2.0) / 2.0,
            epsilon = 1e-6
        );
    }

    #[test]
    fn p2_sign_is_anchored_for_any_teacher_log_probs() {
        let wild = [
            f32::NEG_INFINITY,
            0.0,
            -1e30,
            f32::INFINITY,
            -3.0,
            f32::NEG_INFINITY,
            7.0,
            -80.0,
        ];
        for lambda in [0.1, 0.5, 1.0] {
            let objective = constant(lambda);
            for shift in 0..wild.len() {
                let pos: Vec<f32> = (0..4).map(|k| wild[(k + shift) % 8]).collect();
                let neg: Vec<f32> = (0..4).map(|k| wild[(k * 3 + shift + 1) % 8]).collect();
                let adv = cepo_credit(objective.as_ref(), &pos, &neg, &[-1.0; 4]);
                assert!(adv.data[..2].iter().all(|&a| a > 0.0), "{adv:?}");
                assert!(adv.data[2..].iter().all(|&a| a < 0.0), "{adv:?}");
            }
        }
        // The A = 0 guard: an all-correct group gets exactly 0 even against ±∞.
        let credit = constant(LAMBDA)
            .credit(&CreditInput {
                step: 1,
                rewards: &[1.0, 1.0],
                correct: &[true, true],
                group_ids: &[0, 0],
                mask: &m(2, &[1.0, 1.0]),
                old_logprobs: &m(2, &[-1.0, -1.0]),
                ref_logprobs: None,
                teachers: &[
                    scores(m(2, &[f32::INFINITY, 0.0])),
                    scores(m(2, &[f32::NEG_INFINITY, f32::NEG_INFINITY])),
                ],
            })
            .unwrap();
        assert_eq!(credit.advantages.data, vec![0.0, 0.0]);
    }

    #[test]
    fn p3_modulation_is_bounded_and_saturates_exactly() {
        let objective = constant(LAMBDA);
        let (low, high) = (1.0 - LAMBDA * EPS_W, 1.0 + LAMBDA * EPS_W);
        for k in 0..40 {
            let d = -4.0 + 0.2 * k as f32;
            let adv = cepo_credit(objective.as_ref(), &[d, 0.0, d, 0.0], &[0.0; 4], &[-1.0; 4]);
            for &a in &adv.data {
                assert!(
                    a.abs() >= low * a0() * (1.0 - 1e-6) && a.abs() <= high * a0() * (1.0 + 1e-6)
                );
            }
        }
        // Δ ≥ log(1 + ε_w) on a correct response: exactly the upper bound.
        let d = (1.0 + EPS_W).ln() + 0.01;
        let adv = cepo_credit(
            objective.as_ref(),
            &[d, 3.0, 0.0, 0.0],
            &[0.0; 4],
            &[-1.0; 4],
        );
        assert_relative_eq!(adv.data[0], high * a0(), max_relative = 1e-6);
        assert_relative_eq!(adv.data[1], high * a0(), max_relative = 1e-6);
    }

    #[test]
    fn p4_credit_is_monotone_in_delta_and_mirror_symmetric() {
        let objective = constant(LAMBDA);
        let mut last_pos = f32::NEG_INFINITY;
        let mut last_neg = f32::NEG_INFINITY;
        for k in 0..50 {
            let d = -0.5 + 0.02 * k as f32;
            let adv = cepo_credit(
                objective.as_ref(),
                &[d, 0.0, -d, 0.0],
                &[0.0; 4],
                &[-1.0; 4],
            );
            assert!(adv.data[0] >= last_pos, "A > 0: Â not non-decreasing in Δ");
            // Wrong row: Δ' = −d runs negative, so |Â| grows with ℓ^{T−} − ℓ^{T+} = d.
            assert!(
                adv.data[2].abs() >= last_neg,
                "A < 0: |Â| not non-decreasing"
            );
            last_pos = adv.data[0];
            last_neg = adv.data[2].abs();
            // Mirror: mult(A > 0, Δ) = mult(A < 0, −Δ).
            assert_relative_eq!(adv.data[0] / a0(), adv.data[2] / -a0(), max_relative = 1e-6);
        }
    }

    #[test]
    fn p5_a_shared_style_offset_leaves_cepo_credit_unchanged() {
        let objective = constant(LAMBDA);
        let pos = [-1.0, -0.5, -2.0, -0.25];
        let neg = [-1.125, -0.375, -1.75, -0.5];
        let base = cepo_credit(objective.as_ref(), &pos, &neg, &[-1.0; 4]);
        for u in [0.5f32, -3.0, 16.0] {
            let p: Vec<f32> = pos.iter().map(|x| x + u).collect();
            let n: Vec<f32> = neg.iter().map(|x| x + u).collect();
            let shifted = cepo_credit(objective.as_ref(), &p, &n, &[-1.0; 4]);
            for k in 0..4 {
                assert_relative_eq!(shifted.data[k], base.data[k], max_relative = 1e-6);
            }
        }
    }

    #[test]
    fn p6_reductions_to_grpo_and_rlsd() {
        // λ = 0: GRPO exactly, however the teachers disagree.
        let adv = cepo_credit(
            constant(0.0).as_ref(),
            &[-0.1, -3.0, 0.0, -2.0],
            &[-2.0, -0.1, -1.0, 0.0],
            &[-1.0; 4],
        );
        assert_eq!(adv.data, vec![a0(), a0(), -a0(), -a0()]);
        // ℓ^{T−} := ℓ^old: RLSD exactly (same λ, both constant).
        let old = [-1.0, -0.7, -0.2, -1.5];
        let pos = [-0.9, -0.75, -0.4, -1.2];
        let cepo = cepo_credit(constant(LAMBDA).as_ref(), &pos, &old, &old);
        let rlsd = rlsd_credit(&pos, &old);
        for k in 0..4 {
            assert_relative_eq!(cepo.data[k], rlsd.data[k], max_relative = 1e-7);
        }
    }

    #[test]
    fn p7_gradient_is_the_ppo_clip_gradient_of_the_reweighted_advantage() {
        // Teachers enter only the credit stage (host numbers): no gradient can reach them. The
        // gradient w.r.t. ℓ is −Â·ρ·coef on unclipped tokens, 0 on clipped ones.
        let objective = constant(LAMBDA);
        let old = [-1.0f32, -1.0, -1.0, -1.0];
        let ratios = [1.1f32, 1.5, 0.9, 0.5]; // row 0: inside, above; row 1: inside, below
        let logprobs: Vec<f32> = old.iter().zip(&ratios).map(|(o, r)| o + r.ln()).collect();
        let out = probe(
            objective.as_ref(),
            &ProbeBatch {
                rewards: vec![1.0, 0.0],
                group_ids: vec![0, 0],
                mask: m(2, &[1.0; 4]),
                logprobs: Some(m(2, &logprobs)),
                old_logprobs: Some(m(2, &old)),
                teacher_pos_logprobs: Some(m(2, &[-0.5, -1.0, -2.0, -0.1])),
                teacher_neg_logprobs: Some(vec![m(2, &[-1.0, -0.5, -0.2, -0.3])]),
                ..ProbeBatch::default()
            },
            1,
            &Device::flex().autodiff(),
        )
        .unwrap();
        let adv = &out.advantages.data;
        assert_relative_eq!(out.grad[0], -adv[0] * ratios[0] / 4.0, max_relative = 1e-5);
        assert_eq!(out.grad[1], 0.0);
        assert_relative_eq!(out.grad[2], -adv[2] * ratios[2] / 4.0, max_relative = 1e-5);
        assert_eq!(out.grad[3], 0.0);
        assert!(adv[0] != a0(), "the weighting is active");
    }

    fn verdict(score: f32, extracted: Option<&str>) -> Verdict {
        Verdict {
            score,
            correct: score >= 1.0,
            extracted: extracted.map(str::to_string),
            parsed: extracted.is_some(),
            reason: String::new(),
        }
    }

    fn problem() -> zoo_core::Problem {
        zoo_core::Problem {
            prompt: "1+1".into(),
            question: "1+1".into(),
            answer: "2".into(),
            solution: "1+1=2".into(),
        }
    }

    /// A group of responses `text i` with `verdicts`.
    fn fixture(verdicts: &[Verdict]) -> GroupFixture {
        let texts: Vec<String> = (0..verdicts.len()).map(|i| format!("text {i}")).collect();
        let responses: Vec<(&str, f32, Option<&str>)> =
            texts.iter().map(|t| (t.as_str(), 0.0, None)).collect();
        GroupFixture {
            verdicts: verdicts.to_vec(),
            ..GroupFixture::new(problem(), &responses)
        }
    }

    /// `teacher_rows` of `objective` for one group of `verdicts`, per pass.
    fn rows(objective: &dyn Objective, step: usize, verdicts: &[Verdict]) -> [Vec<TeacherRow>; 2] {
        let fixture = fixture(verdicts);
        let rows = objective.teacher_rows(step, &fixture.group(step)).unwrap();
        rows.try_into().expect("two passes")
    }

    fn scored(rows: &[TeacherRow]) -> Vec<bool> {
        rows.iter().map(|r| r.scored).collect()
    }

    #[test]
    fn teacher_passes_are_skipped_exactly_when_lambda_is_zero_and_change_nothing() {
        let cepo = CepoConfig {
            decay_steps: 3,
            ..CepoConfig::default()
        }
        .build(&context())
        .unwrap();
        let mixed = [verdict(1.0, Some("2")), verdict(0.0, Some("3"))];
        let uniform = [verdict(1.0, Some("2")), verdict(1.0, Some("2"))];
        for step in 1..=5 {
            let live = step <= 3;
            for pass in rows(cepo.as_ref(), step, &mixed) {
                assert_eq!(scored(&pass), [live, live], "step {step}");
            }
            // A = 0 (and no wrong answer): never scored.
            for pass in rows(cepo.as_ref(), step, &uniform) {
                assert_eq!(scored(&pass), [false, false], "step {step}");
            }
        }
        // A constant λ keeps them.
        assert_eq!(
            scored(&rows(constant(LAMBDA).as_ref(), 100, &mixed)[1]),
            [true; 2]
        );
        // At λ = 0 the unscored rows' zeros give the advantages the real teachers give.
        let credit = |pos: &[f32], neg: &[f32], scored: bool| {
            let score = |data: &[f32]| TeacherScores {
                scored: vec![scored; 2],
                ..scores(m(2, data))
            };
            cepo.credit(&CreditInput {
                step: 4,
                rewards: &[1.0, 0.0],
                correct: &[true, false],
                group_ids: &[0, 0],
                mask: &m(2, &[1.0; 4]),
                old_logprobs: &m(2, &[-1.0; 4]),
                ref_logprobs: None,
                teachers: &[score(pos), score(neg)],
            })
            .unwrap()
            .advantages
        };
        let real = credit(&[-0.2, -3.0, -1.5, -0.1], &[-2.0, -0.3, -0.9, -4.0], true);
        assert_eq!(real, credit(&[0.0; 4], &[0.0; 4], false));
        assert_eq!(real.data, [a0(), a0(), -a0(), -a0()]);
    }

    #[test]
    fn a_group_without_a_wrong_answer_has_zero_delta_by_construction() {
        let objective = constant(LAMBDA);
        // Mixed rewards, but the rejected response has no parsed answer.
        let group = [verdict(1.0, Some("2")), verdict(0.0, None)];
        let [positive, negative] = rows(objective.as_ref(), 1, &group);
        assert_eq!(scored(&positive), [false, false]);
        assert_eq!(scored(&negative), [false, false]);
        assert!(negative.iter().all(|r| !r.has_hint));
        // Whatever the (unscored) teacher rows hold, the credit is GRPO's.
        let no_hint = |data: &[f32]| TeacherScores {
            has_hint: vec![false; 2],
            scored: vec![false; 2],
            ..scores(m(2, data))
        };
        let credit = objective
            .credit(&CreditInput {
                step: 1,
                rewards: &[1.0, 0.0],
                correct: &[true, false],
                group_ids: &[0, 0],
                mask: &m(2, &[1.0; 4]),
                old_logprobs: &m(2, &[-1.0; 4]),
                ref_logprobs: None,
                teachers: &[
                    scores(m(2, &[-0.1, -5.0, -0.2, -3.0])),
                    no_hint(&[-4.0, -0.1, -3.0, -0.2]),
                ],
            })
            .unwrap();
        assert_eq!(credit.advantages.data, [a0(), a0(), -a0(), -a0()]);
        // With a wrong answer both passes read the group, with their own hints spliced as the
        // reference does: `" " + answer` right after the prompt.
        let group = [verdict(1.0, Some("2")), verdict(0.0, Some("3"))];
        let [positive, negative] = rows(objective.as_ref(), 1, &group);
        let prompt = fixture(&group).prompt;
        assert_eq!(
            (positive[1].hint.as_str(), negative[1].hint.as_str()),
            ("2", "3")
        );
        assert_eq!(
            positive[1].context,
            [prompt.as_slice(), b" 2".map(u32::from).as_slice()].concat()
        );
        assert_eq!(
            negative[0].context,
            [prompt.as_slice(), b" 3".map(u32::from).as_slice()].concat()
        );
        assert!(
            positive
                .iter()
                .chain(&negative)
                .all(|r| r.scored && r.has_hint)
        );
    }

    #[test]
    fn the_rejected_threshold_is_the_configured_one() {
        let group = [verdict(1.0, Some("2")), verdict(0.6, Some("3"))];
        let responses = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            wrong_answer(WrongAnswer::MostFrequent, 0.5, &responses, &group),
            None
        );
        assert_eq!(
            wrong_answer(WrongAnswer::MostFrequent, 0.7, &responses, &group).as_deref(),
            Some("3")
        );
        let bad = CepoConfig {
            rejected_below: f32::NAN,
            ..CepoConfig::default()
        };
        let error = bad.build(&context()).err().expect("NaN is refused");
        assert!(error.to_string().contains("rejected_below"), "{error}");
    }

    #[test]
    fn wrong_answer_is_the_most_frequent_extracted_one() {
        let verdicts = [
            verdict(1.0, Some("42")),
            verdict(0.0, Some("41")),
            verdict(0.0, None),
            verdict(0.0, Some("43")),
            verdict(0.0, Some("43")),
            verdict(0.2, Some("41")),
        ];
        let pick = |rule, members: &[usize]| {
            let verdicts: Vec<Verdict> = members.iter().map(|&i| verdicts[i].clone()).collect();
            let responses: Vec<String> = members.iter().map(|i| format!("text {i}")).collect();
            wrong_answer(rule, 0.5, &responses, &verdicts)
        };
        // 41 and 43 both appear twice; 43's lowest score (0.0) ties 41's (0.0): first wins.
        assert_eq!(
            pick(WrongAnswer::MostFrequent, &[0, 1, 2, 3, 4, 5]).as_deref(),
            Some("41")
        );
        assert_eq!(
            pick(WrongAnswer::MostFrequent, &[0, 3, 4, 5]).as_deref(),
            Some("43")
        );
        // Ties on count: the lower score wins.
        assert_eq!(
            pick(WrongAnswer::MostFrequent, &[5, 3]).as_deref(),
            Some("43")
        );
        // Only correct or answer-less rejected responses: no wrong answer.
        assert_eq!(pick(WrongAnswer::MostFrequent, &[0, 2]), None);
        // The reference rule: the lowest score, first on ties; no extracted answer gives the
        // reference's literal "None".
        assert_eq!(
            pick(WrongAnswer::LowestScore, &[0, 2, 3]).as_deref(),
            Some("None")
        );
        assert_eq!(
            pick(WrongAnswer::LowestScore, &[5, 3]).as_deref(),
            Some("43")
        );
        assert_eq!(pick(WrongAnswer::LowestScore, &[0]), None);
    }

    #[test]
    fn an_unparsed_answer_is_no_wrong_answer() {
        let unparsed = Verdict {
            parsed: false,
            ..verdict(0.0, Some("4x"))
        };
        let responses = ["a".to_string(), "b".to_string(), "c".to_string()];
        let verdicts = [unparsed.clone(), unparsed, verdict(0.0, Some("44"))];
        let first = |rule, n: usize| wrong_answer(rule, 0.5, &responses[..n], &verdicts[..n]);
        assert_eq!(first(WrongAnswer::MostFrequent, 3).as_deref(), Some("44"));
        assert_eq!(first(WrongAnswer::MostFrequent, 2), None);
        // The reference rule takes the extracted text as it is; an empty box falls back to
        // the response's first 50 characters.
        assert_eq!(first(WrongAnswer::LowestScore, 2).as_deref(), Some("4x"));
        let empty = [Verdict {
            extracted: Some(String::new()),
            ..verdict(0.0, None)
        }];
        let long = ["y".repeat(80)];
        assert_eq!(
            wrong_answer(WrongAnswer::LowestScore, 0.5, &long, &empty),
            Some("y".repeat(50))
        );
    }

    #[test]
    fn p8_schedule_applies_lambda0_first_and_reaches_zero_after_t_steps() {
        let l = |s| cepo_lambda(0.5, 25, LambdaSchedule::Linear, s);
        assert_eq!(l(1), 0.5);
        assert_relative_eq!(l(2), 0.48, epsilon = 1e-12);
        assert_relative_eq!(l(25), 0.02, epsilon = 1e-12);
        assert_eq!(l(26), 0.0);
        // One step later than RLSD's.
        for s in 1..30 {
            assert_relative_eq!(
                l(s + 1),
                zoo_rlsd::rlsd_lambda(0.5, 25, LambdaSchedule::Linear, s),
                epsilon = 1e-12
            );
        }
    }

    #[test]
    fn p9_cepo_sharpens_beyond_rlsd_iff_the_wrong_teacher_likes_the_token_less() {
        // Correct row, unclipped weights: Â_CEPO > Â_RLSD ⟺ ℓ^{T−} < ℓ^old.
        let old = [-1.0f32, -1.0, -1.0, -1.0];
        let pos = [-0.95f32, -0.95, -1.0, -1.0];
        for neg0 in [-1.08f32, -1.03, -0.97, -0.92] {
            let neg = [neg0, neg0, -1.0, -1.0];
            let cepo = cepo_credit(constant(LAMBDA).as_ref(), &pos, &neg, &old);
            let r = rlsd_credit(&pos, &old);
            assert_eq!(cepo.data[0] > r.data[0], neg0 < old[0], "ℓ^T− = {neg0}");
        }
    }
}
