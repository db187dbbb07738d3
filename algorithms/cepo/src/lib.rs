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
//! # Differences from the reference
//! The wrong answer (decision 3): per group, the most frequent *extracted* wrong answer among
//! the rejected responses (ties: lowest score, then first), skipping responses without an
//! answer the verifier extracted and parsed; `wrong_answer = "lowest-score"` reproduces the
//! reference's choice. A group without
//! any gets the gold answer in both contexts (Δ = 0: GRPO for that group). `A_i = 0` gives
//! `Â = 0` before any exponential, and a token both teachers rule out (`−∞ − (−∞)`) counts as
//! agreement (Δ = 0).
//!
//! # References
//! Heakl et al. (arXiv 2605.19436); ahmedheakl/CEPO `verl/trainer/core_algos.py::
//! apply_cepo_weighting`, `ray_trainer.py::_build_cepo_teacher_batch` and `fit()`.

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, LossInput, LossTerms, Needs, Objective, ObjectiveConfig,
    Result, TeacherContext, TeacherPass, TeacherWeights, WrongAnswerRule,
};
use zoo_grpo::{Clip, LossAgg, advantage_metrics, group_advantages, ppo_clip_loss};
use zoo_rlsd::{LambdaSchedule, reweight, validate_weighting};

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

impl Objective for Cepo {
    fn name(&self) -> &str {
        "cepo"
    }

    fn needs(&self) -> Needs {
        let rule = match self.config.wrong_answer {
            WrongAnswer::MostFrequent => WrongAnswerRule::MostFrequent,
            WrongAnswer::LowestScore => WrongAnswerRule::LowestScore,
        };
        let teacher = |context| TeacherPass {
            context,
            weights: TeacherWeights::Current,
            logits: false,
        };
        Needs {
            teachers: vec![
                teacher(TeacherContext::GoldAnswer),
                teacher(TeacherContext::WrongAnswer(rule)),
            ],
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    /// The teachers matter only while λ > 0 (the reference skips them after that), and only
    /// for rows whose advantage is not 0 (`reweight` keeps `Â = 0` whatever they say).
    fn teacher_rows(&self, step: usize, rewards: &[f32], group_ids: &[usize]) -> Vec<bool> {
        let c = &self.config;
        if cepo_lambda(c.lambda, c.decay_steps, c.lambda_schedule, step) == 0.0 {
            return vec![false; rewards.len()];
        }
        group_advantages(rewards, group_ids, c.norm_adv_by_std, c.adv_eps)
            .iter()
            .map(|&a| a != 0.0)
            .collect()
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
                sign * evidence_delta(positive.logprobs.get(i, t), negative.logprobs.get(i, t))
            },
        );
        let mask = input.mask;
        let (mut delta_sum, mut tokens) = (0.0, 0.0);
        // Over the rows both teachers scored.
        for i in (0..mask.rows).filter(|&i| positive.scored[i] && negative.scored[i]) {
            for t in 0..mask.cols {
                if mask.get(i, t) != 0.0 {
                    let d =
                        evidence_delta(positive.logprobs.get(i, t), negative.logprobs.get(i, t));
                    delta_sum += d.abs().min(1e6);
                    tokens += 1.0;
                }
            }
        }
        let found = negative.has_hint.iter().filter(|&&h| h).count() as f64;
        let mut metrics = advantage_metrics("cepo", &advantages);
        metrics.push(("cepo/lambda".into(), lambda));
        metrics.push((
            "cepo/delta_abs_mean".into(),
            delta_sum / f64::max(tokens, 1.0),
        ));
        metrics.push(("cepo/weight_dev_mean".into(), dev));
        metrics.push(("cepo/weight_clip_frac".into(), clip_frac));
        metrics.push((
            "cepo/wrong_answer_found_frac".into(),
            found / negative.has_hint.len().max(1) as f64,
        ));
        Ok(Credit {
            advantages: per_token,
            mask: None,
            metrics,
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
// Tests: properties P-1..P-9 of `algorithms.md` §9.4
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::burn::prelude::*;
    use zoo_core::probe::{ProbeBatch, probe};
    use zoo_core::{TeacherScores, TokenMatrix};
    use zoo_rlsd::RlsdConfig;

    const LAMBDA: f32 = 0.5;
    const EPS_W: f32 = 0.2;

    fn context() -> BuildContext {
        BuildContext {
            max_new_tokens: 4,
            group_size: 2,
            steps: 30,
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
                teacher_neg_logprobs: Some(m(2, &[-1.0, -0.5, -0.2, -0.3])),
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

    #[test]
    fn teacher_passes_are_skipped_exactly_when_lambda_is_zero_and_change_nothing() {
        let cepo = CepoConfig {
            decay_steps: 3,
            ..CepoConfig::default()
        }
        .build(&context())
        .unwrap();
        // Rewards of two groups: mixed (A ≠ 0), then uniform (A = 0).
        let (rewards, groups) = ([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1]);
        let rows: Vec<Vec<bool>> = (1..=5)
            .map(|s| cepo.teacher_rows(s, &rewards, &groups))
            .collect();
        let mixed = vec![true, true, false, false];
        assert_eq!(rows[..3], [mixed.clone(), mixed.clone(), mixed]);
        assert_eq!(rows[3..], [vec![false; 4], vec![false; 4]]);
        assert_eq!(
            constant(LAMBDA).teacher_rows(100, &rewards, &groups),
            [true, true, false, false]
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
