//! RLSD: GRPO with per-token credit re-weighted by a gold-answer-conditioned self-teacher.
//!
//! # What it computes (`algorithms.md` §4)
//! Credit: the GRPO advantage `A_i` (§1), then per token
//! `Δ_t = ℓ^T_t − ℓ^old_t` (teacher: the same weights with the gold answer in the context),
//! `w_t = exp(clamp(sign(A_i)·Δ_t, ±20))` and
//! `Â_{i,t} = A_i·[(1 − λ) + λ·clip(w_t, 1 − ε_w, 1 + ε_w)]·m_{i,t}`.
//! Loss: the PPO-clip token loss (§0.3), token-mean.
//! Schedule: `λ_s = λ0·(1 − s/T)` for steps `s < T` (s starts at 1), then 0.
//!
//! # Defaults and their source
//! Decision 4: λ0 = 0.5, ε_w = 0.2, T = 25 (the CEPO repository's `rlsd.sh`; the config
//! default is 50), sign per token, exponent clamped to ±20. Clip 0.2/0.28 and dual clip 3 as in
//! the same repository's scripts.
//!
//! # Differences from the reference
//! `A_i = 0` gives `Â = 0` before any exponential (the reference would compute `0·w`, which is
//! NaN when a teacher log-prob is −∞).
//!
//! # References
//! "Self-Distilled RLVR" (arXiv 2604.03128) Algorithm 1; ahmedheakl/CEPO
//! `verl/trainer/core_algos.py::apply_rlsd_reweighting`.

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result, TeacherContext, TeacherPass, TeacherWeights, TokenMatrix,
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

/// RLSD's configuration; defaults per decision 4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlsdConfig {
    /// `λ0`, the weight of the teacher term at the start.
    pub lambda: f32,
    /// `ε_w`, the clip range of the per-token weight.
    pub eps_w: f32,
    /// `T_decay`, the steps over which λ decays.
    pub decay_steps: usize,
    /// The λ schedule.
    pub lambda_schedule: LambdaSchedule,
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
    fn default() -> Self {
        Self {
            lambda: 0.5,
            eps_w: 0.2,
            decay_steps: 25,
            lambda_schedule: LambdaSchedule::Linear,
            clip_low: 0.2,
            clip_high: 0.28,
            clip_dual: 3.0,
            loss_agg: LossAgg::TokenMean,
            norm_adv_by_std: true,
            adv_eps: 1e-6,
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

#[typetag::serde(name = "rlsd")]
impl ObjectiveConfig for RlsdConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
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

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "rlsd",
        summary: "GRPO credit re-weighted by a gold-answer self-teacher (RLSD; CEPO repo)",
        default_config: || Box::new(RlsdConfig::default()),
        origin: "zoo-rlsd",
        run_defaults: "",
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

impl Objective for Rlsd {
    fn name(&self) -> &str {
        "rlsd"
    }

    fn needs(&self) -> Needs {
        Needs {
            teachers: vec![TeacherPass {
                context: TeacherContext::GoldAnswer,
                weights: TeacherWeights::Current,
                logits: false,
            }],
            ..Needs::default()
        }
    }

    /// The teacher matters only while λ > 0, and only for rows whose advantage is not 0.
    fn teacher_rows(&self, step: usize, rewards: &[f32], group_ids: &[usize]) -> Vec<bool> {
        let c = &self.config;
        if rlsd_lambda(c.lambda, c.decay_steps, c.lambda_schedule, step) == 0.0 {
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
                let delta = teacher.get(i, t) as f64 - old.get(i, t) as f64;
                (sign * delta).clamp(-20.0, 20.0)
            },
        );
        let mut metrics = advantage_metrics("rlsd", &advantages);
        metrics.push(("rlsd/lambda".into(), lambda));
        metrics.push(("rlsd/weight_dev_mean".into(), dev));
        metrics.push(("rlsd/weight_clip_frac".into(), clip_frac));
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
// Tests: RLSD's share of `algorithms.md` §9.4 (P-5 and P-8; CEPO's crate tests the rest)
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::TeacherScores;

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
        RlsdConfig::default()
            .build(&BuildContext {
                max_new_tokens: 2,
                group_size: 2,
                steps: 30,
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
        let adv = credit(rlsd().as_ref(), &teacher, &old, 1);
        let a = std::f64::consts::FRAC_1_SQRT_2;
        let lambda = 0.48;
        let up = (1.0 - lambda) + lambda * 0.1f64.exp();
        let down = (1.0 - lambda) + lambda * (-0.1f64).exp();
        assert_relative_eq!(adv.get(1, 0) as f64, a * up, epsilon = 1e-5);
        assert_relative_eq!(adv.get(0, 0) as f64, -a * down, epsilon = 1e-5);
    }
}
