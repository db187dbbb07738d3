//! GRPO: group-relative advantages with the PPO-clip loss.
//!
//! # What it computes (`algorithms.md` §1, §0.3, §0.4)
//! Credit: for each group `g`, `A_i = (R_i − μ_g) / (σ_g + eps)` with the Bessel-corrected
//! group std (or `A_i = R_i − μ_g` when `norm_adv_by_std = false`, Dr.GRPO), broadcast to every
//! response token. Loss per token: the PPO-clip term with ratio `ρ = exp(clamp(ℓ − ℓ^old, ±20))`,
//! clip range `[1 − clip_low, 1 + clip_high]`, dual clip `c` for `Â < 0`, plus
//! `kl_coef · KL(ℓ, ℓ^ref)` with the k1/k2/k3 estimator when `kl_coef > 0`.
//!
//! # Defaults and their source
//! Decision 7 of `algorithms.md`: Bessel std, eps 1e-6 (verl, EasyR1), clip 0.2/0.2, dual clip 3
//! (verl `clip_ratio_c`), token-mean aggregation (verl's GRPO example scripts, TRL's default
//! `loss_type="dapo"`), KL to the reference off (TRL `beta = 0`), k3 when on (verl
//! `low_var_kl`).
//!
//! # Differences from the reference
//! None in the math. A group whose rewards are all equal gets `A = 0` exactly, even where
//! `mean` would round (e.g. three rewards of 0.1); a group of one response uses `μ = 0, σ = 1`
//! as verl does.
//!
//! Dr.GRPO's constant normalizer comes in the two conventions its implementations use, both
//! with `loss_scale` defaulting to the response length cap `L_max`:
//! - `loss_agg = "constant"`: `Σ m·loss / L_max` over the mini-batch, verl's
//!   `seq-mean-token-sum-norm` (`loss_scale_factor`, default the response length);
//! - `loss_agg = "constant-per-sequence"`: `Σ m·loss / (B·L_max)` with `B` the mini-batch's
//!   rows, TRL's `loss_type = "dr_grpo"` (`per_token_loss.size(0) * max_completion_length`).
//!
//! They differ by the factor `B`, which only rescales the gradient (with AdamW, nearly a
//! no-op; with SGD, the learning rate).
//!
//! # Known problems
//! The std normalization up-weights groups with few or many correct responses relative to
//! the population form (property G-4); use `norm_adv_by_std = false` for Dr.GRPO.
//!
//! # References
//! DeepSeekMath (arXiv 2402.03300) Eq. 3 and §4.1.2; verl `compute_grpo_outcome_advantage`,
//! `compute_policy_loss_vanilla`, `kl_penalty_forward`; TRL `GRPOTrainer._compute_loss`.

use serde::{Deserialize, Serialize};
use zoo_core::burn::prelude::*;
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result, TokenMatrix,
};

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// How per-token losses are reduced (`algorithms.md` §0.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossAgg {
    /// `Σ m·loss / Σ m`.
    TokenMean,
    /// Mean over sequences of each sequence's token mean (original GRPO).
    SeqMeanTokenMean,
    /// Mean over sequences of each sequence's token sum.
    SeqMeanTokenSum,
    /// `Σ m·loss / loss_scale` (Dr.GRPO as verl computes it).
    Constant,
    /// `Σ m·loss / (rows · loss_scale)` over the mini-batch (Dr.GRPO as TRL computes it).
    ConstantPerSequence,
    /// Each response's token sum, their mean over responses, divided by `loss_scale` (verl's
    /// `seq-mean-token-sum-norm`; DPPO's recipe).
    SeqMeanTokenSumNorm,
}

impl LossAgg {
    /// The trainer's aggregation for this mode; `constant` divides by `loss_scale`, by default
    /// the response length cap.
    pub fn aggregation(
        self,
        loss_scale: Option<f32>,
        max_new_tokens: usize,
        algo: &str,
    ) -> Result<Aggregation> {
        Ok(match self {
            LossAgg::TokenMean => Aggregation::TokenMean,
            LossAgg::SeqMeanTokenMean => Aggregation::SeqMeanTokenMean,
            LossAgg::SeqMeanTokenSum => Aggregation::SeqMeanTokenSum,
            LossAgg::Constant | LossAgg::ConstantPerSequence | LossAgg::SeqMeanTokenSumNorm => {
                let scale = loss_scale.unwrap_or(max_new_tokens as f32);
                if scale.is_nan() || scale <= 0.0 {
                    return Err(Error::Config(format!(
                        "{algo}: `loss_scale` must be positive, got {scale}"
                    )));
                }
                match self {
                    LossAgg::Constant => Aggregation::Constant(scale),
                    LossAgg::ConstantPerSequence => Aggregation::ConstantPerSequence(scale),
                    _ => Aggregation::SeqMeanTokenSumNorm(scale),
                }
            }
        })
    }
}

/// Estimator of the KL to the reference, with `d = ℓ^ref − ℓ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimator {
    /// `−d` (verl "kl").
    K1,
    /// `d²/2` (verl "mse").
    K2,
    /// `exp(d) − d − 1`, `d` clamped to ±20 and the result to ±10 (verl "low_var_kl").
    K3,
}

/// GRPO's configuration; defaults per decision 7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// `ε_low`: the ratio is clipped below at `1 − clip_low`.
    pub clip_low: f32,
    /// `ε_high`: the ratio is clipped above at `1 + clip_high`.
    pub clip_high: f32,
    /// Dual-clip constant `c > 1` for negative advantages (verl `clip_ratio_c`).
    pub clip_dual: f32,
    /// Aggregation mode.
    pub loss_agg: LossAgg,
    /// The constant normalizer of `loss_agg = "constant"` and `"constant-per-sequence"`;
    /// default: the response length cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
    /// Divide by the group std (false: Dr.GRPO).
    pub norm_adv_by_std: bool,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// `β`, the weight of the KL to the frozen initial policy (0: off, no reference pass).
    pub kl_coef: f32,
    /// The KL estimator.
    pub kl_estimator: KlEstimator,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.2,
            clip_dual: 3.0,
            loss_agg: LossAgg::TokenMean,
            loss_scale: None,
            norm_adv_by_std: true,
            adv_eps: 1e-6,
            kl_coef: 0.0,
            kl_estimator: KlEstimator::K3,
        }
    }
}

impl GrpoConfig {
    /// The clip range.
    pub fn clip(&self) -> Clip {
        Clip {
            low: self.clip_low,
            high: self.clip_high,
            dual: self.clip_dual,
        }
    }
}

#[typetag::serde(name = "grpo")]
impl ObjectiveConfig for GrpoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        let bad = |msg: String| Err(Error::Config(format!("grpo: {msg}")));
        self.clip().validate("grpo")?;
        if self.adv_eps.is_nan()
            || self.adv_eps < 0.0
            || self.kl_coef.is_nan()
            || self.kl_coef < 0.0
        {
            return bad("`adv_eps` and `kl_coef` must be non-negative".into());
        }
        let aggregation =
            self.loss_agg
                .aggregation(self.loss_scale, context.max_new_tokens, "grpo")?;
        Ok(Box::new(Grpo {
            config: self.clone(),
            aggregation,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "grpo",
        summary: "group-relative advantages with PPO-clip (DeepSeekMath; verl, TRL)",
        default_config: || Box::new(GrpoConfig::default()),
        origin: "zoo-grpo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; the `zoo` binary calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The GRPO objective.
#[derive(Debug, Clone)]
pub struct Grpo {
    config: GrpoConfig,
    aggregation: Aggregation,
}

// ---------------------------------------------------------------------------------------------
// Credit stage
// ---------------------------------------------------------------------------------------------

/// Group-relative advantages, one per response: `A_i = (R_i − μ_g)/(σ_g + eps)` with the
/// Bessel std, or `R_i − μ_g` without std normalization. All-equal groups get exactly 0.
pub fn group_advantages(
    rewards: &[f32],
    group_ids: &[usize],
    norm_by_std: bool,
    eps: f32,
) -> Vec<f32> {
    assert_eq!(rewards.len(), group_ids.len(), "one group id per reward");
    let mut advantages = vec![0.0f32; rewards.len()];
    let mut groups: Vec<usize> = group_ids.to_vec();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let members: Vec<usize> = (0..rewards.len()).filter(|&i| group_ids[i] == g).collect();
        let values: Vec<f64> = members.iter().map(|&i| rewards[i] as f64).collect();
        if values.iter().all(|&v| v == values[0]) && values.len() > 1 {
            continue; // exactly zero, whatever the rounding of the mean
        }
        let n = values.len() as f64;
        let (mean, std) = if values.len() == 1 {
            (0.0, 1.0) // verl's convention for a group of one
        } else {
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var.sqrt())
        };
        for (&i, &r) in members.iter().zip(&values) {
            advantages[i] = if norm_by_std {
                ((r - mean) / (std + eps as f64)) as f32
            } else {
                (r - mean) as f32
            };
        }
    }
    advantages
}

impl Objective for Grpo {
    fn name(&self) -> &str {
        "grpo"
    }

    fn needs(&self) -> Needs {
        Needs {
            reference_logprobs: self.config.kl_coef > 0.0,
            // ℓ^old is read only by the loss.
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let advantages = group_advantages(
            input.rewards,
            input.group_ids,
            self.config.norm_adv_by_std,
            self.config.adv_eps,
        );
        Ok(Credit {
            advantages: TokenMatrix::per_row(&advantages, input.mask),
            metrics: advantage_metrics("grpo", &advantages),
            sequence_advantages: Some(advantages),
            ..Credit::default()
        })
    }

    // -----------------------------------------------------------------------------------------
    // Loss stage
    // -----------------------------------------------------------------------------------------

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let mut terms = ppo_clip_loss(
            input.logprobs.clone(),
            input.old_logprobs,
            input.advantages,
            self.config.clip(),
        );
        if let (Some(reference), true) = (input.ref_logprobs, c.kl_coef > 0.0) {
            let kl = kl_penalty(input.logprobs, reference, c.kl_estimator);
            terms.parts.push(("actor/kl_loss", kl.clone()));
            terms.per_token = terms.per_token.add(kl.mul_scalar(c.kl_coef));
        }
        terms
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces (DAPO, RLSD and CEPO reuse them; `algorithms.md` §0.3 and §1)
// ---------------------------------------------------------------------------------------------

/// The PPO clip range with verl's dual clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    /// `ε_low`: the ratio is clipped below at `1 − low`.
    pub low: f32,
    /// `ε_high`: the ratio is clipped above at `1 + high`.
    pub high: f32,
    /// Dual-clip constant `c > 1` for negative advantages; `f32::INFINITY`: no dual clip (the
    /// plain `max(u1, u2)` of PPO).
    pub dual: f32,
}

impl Clip {
    /// Checks the ranges; `algo` prefixes the message.
    pub fn validate(&self, algo: &str) -> Result<()> {
        if !(0.0..1.0).contains(&self.low) || self.high.is_nan() || self.high < 0.0 {
            return Err(Error::Config(format!(
                "{algo}: `clip_low` must lie in [0, 1) and `clip_high` be non-negative, got {} and {}",
                self.low, self.high
            )));
        }
        if self.dual.is_nan() || self.dual <= 1.0 {
            return Err(Error::Config(format!(
                "{algo}: `clip_dual` must exceed 1, got {}",
                self.dual
            )));
        }
        Ok(())
    }
}

/// GRPO's credit stage for an objective that keeps it and changes the loss (GSPO, CISPO,
/// SAPO, GMPO, DPPO): group advantages broadcast to every token, with `<name>/adv_abs_mean`
/// and `<name>/nonzero_adv_frac`.
pub fn group_credit(name: &str, input: &CreditInput<'_>, norm_by_std: bool, eps: f32) -> Credit {
    let advantages = group_advantages(input.rewards, input.group_ids, norm_by_std, eps);
    Credit {
        advantages: TokenMatrix::per_row(&advantages, input.mask),
        metrics: advantage_metrics(name, &advantages),
        sequence_advantages: Some(advantages),
        ..Credit::default()
    }
}

/// `<prefix>/adv_abs_mean` and `<prefix>/nonzero_adv_frac` of per-response advantages.
pub fn advantage_metrics(prefix: &str, advantages: &[f32]) -> Vec<(String, f64)> {
    let n = advantages.len().max(1) as f64;
    let abs_mean = advantages.iter().map(|a| a.abs() as f64).sum::<f64>() / n;
    let nonzero = advantages.iter().filter(|&&a| a != 0.0).count() as f64 / n;
    vec![
        (format!("{prefix}/adv_abs_mean"), abs_mean),
        (format!("{prefix}/nonzero_adv_frac"), nonzero),
    ]
}

/// The PPO-clip token loss of §0.3 with dual clip (reported as `actor/pg_loss`), and its
/// diagnostics (`actor/pg_clipfrac`, `actor/pg_clipfrac_lower`, `actor/ppo_kl`).
///
/// Shapes: every input `[b, t]`; returns `[b, t]` terms.
pub fn ppo_clip_loss(
    logprobs: Tensor<2>,
    old_logprobs: Tensor<2>,
    advantages: Tensor<2>,
    clip: Clip,
) -> LossTerms {
    // ρ = exp(clamp(ℓ − ℓ^old, ±20)); the clamp is verl's, for numerics only.
    let log_ratio = logprobs.sub(old_logprobs).clamp(-20.0, 20.0);
    let ratio = log_ratio.clone().exp();
    let unclipped = advantages.clone().neg().mul(ratio.clone());
    let clipped = advantages
        .clone()
        .neg()
        .mul(ratio.clamp(1.0 - clip.low, 1.0 + clip.high));
    let clip_loss = unclipped.clone().max_pair(clipped.clone());
    let clipfrac = clipped.greater(unclipped).float();
    if !clip.dual.is_finite() {
        // No dual clip: −c·Â would be ±∞ (NaN at Â = 0).
        return LossTerms {
            per_token: clip_loss.clone(),
            scalar: None,
            parts: vec![("actor/pg_loss", clip_loss)],
            token_metrics: vec![
                ("actor/pg_clipfrac", clipfrac),
                ("actor/ppo_kl", log_ratio.neg()),
            ],
            metrics: Vec::new(),
        };
    }
    // Dual clip for Â < 0: min(clip_loss, −c·Â).
    let dual_bound = advantages.clone().neg().mul_scalar(clip.dual);
    let negative = advantages.lower_elem(0.0);
    let dual_loss = clip_loss.clone().min_pair(dual_bound.clone());
    let pg_loss = clip_loss.clone().mask_where(negative.clone(), dual_loss);
    let clipfrac_lower = clip_loss.greater(dual_bound).bool_and(negative).float();
    LossTerms {
        per_token: pg_loss.clone(),
        scalar: None,
        parts: vec![("actor/pg_loss", pg_loss)],
        token_metrics: vec![
            ("actor/pg_clipfrac", clipfrac),
            ("actor/pg_clipfrac_lower", clipfrac_lower),
            ("actor/ppo_kl", log_ratio.neg()),
        ],
        metrics: Vec::new(),
    }
}

/// The per-token KL estimate between the policy (`logprobs`) and the reference, `[b, t]`.
pub fn kl_penalty(logprobs: Tensor<2>, reference: Tensor<2>, estimator: KlEstimator) -> Tensor<2> {
    let d = reference.sub(logprobs);
    match estimator {
        KlEstimator::K1 => d.neg(),
        KlEstimator::K2 => d.square().mul_scalar(0.5),
        KlEstimator::K3 => {
            let d = d.clamp(-20.0, 20.0);
            d.clone().exp().sub(d).sub_scalar(1.0).clamp(-10.0, 10.0)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use zoo_core::burn::tensor::TensorData;

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn tensor(values: &[f32], b: usize, t: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), [b, t]), &device())
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn grpo(config: GrpoConfig) -> Box<dyn Objective> {
        config
            .build(&BuildContext {
                max_new_tokens: 10,
                group_size: 8,
                steps: 1,
                temperature: 1.0,
                evaluation: false,
            })
            .unwrap()
    }

    /// The gradient of the aggregated loss w.r.t. `ℓ` for the given inputs.
    fn gradient(
        objective: &dyn Objective,
        logprobs: &[f32],
        old: &[f32],
        advantages: &[f32],
        mask: &[f32],
        b: usize,
        t: usize,
    ) -> Vec<f32> {
        let leaf = tensor(logprobs, b, t).require_grad();
        let mask_host = TokenMatrix {
            rows: b,
            cols: t,
            data: mask.to_vec(),
        };
        let coef = objective.aggregation().token_coefficients(&mask_host, None);
        let terms = objective.loss(LossInput {
            logprobs: leaf.clone(),
            old_logprobs: tensor(old, b, t),
            ref_logprobs: None,
            advantages: tensor(advantages, b, t),
            mask: tensor(mask, b, t),
            divergence: None,
            rewards: vec![0.0; b],
            group_ids: vec![0; b],
        });
        let loss = terms.per_token.mul(coef.to_tensor(&device())).sum();
        let grads = loss.backward();
        host(leaf.grad(&grads).unwrap())
    }

    #[test]
    fn k_of_g_correct_matches_the_closed_form() {
        // G = 8, k = 2 (spec G-2): A+ = 1.62019, A− = −0.54006.
        let rewards = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let a = group_advantages(&rewards, &[0; 8], true, 1e-6);
        assert_relative_eq!(a[0], 1.62019, epsilon = 1e-5);
        assert_relative_eq!(a[2], -0.54006, epsilon = 1e-5);
        for (g, k) in [(6usize, 1usize), (6, 3), (16, 5)] {
            let rewards: Vec<f32> = (0..g).map(|i| if i < k { 1.0 } else { 0.0 }).collect();
            let a = group_advantages(&rewards, &vec![0; g], true, 0.0);
            let (gf, kf) = (g as f64, k as f64);
            let sigma = (kf * (gf - kf) / (gf * (gf - 1.0))).sqrt();
            assert_relative_eq!(a[0] as f64, (1.0 - kf / gf) / sigma, epsilon = 1e-5);
            assert_relative_eq!(a[g - 1] as f64, -(kf / gf) / sigma, epsilon = 1e-5);
            assert!(a.iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-5);
        }
    }

    #[test]
    fn dr_grpo_advantages_are_centred_rewards() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 0.0], &[0; 4], false, 1e-6);
        assert_eq!(a, vec![0.75, -0.25, -0.25, -0.25]);
    }

    #[test]
    fn groups_are_found_by_id_in_any_order() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], &[7, 3, 7, 3], false, 0.0);
        assert_eq!(a, vec![0.5, -0.5, -0.5, 0.5]);
    }

    #[test]
    fn all_equal_group_gives_exactly_zero_gradient() {
        let objective = grpo(GrpoConfig::default());
        let a = group_advantages(&[0.1, 0.1, 0.1], &[0; 3], true, 1e-6);
        assert_eq!(a, vec![0.0; 3]);
        let logprobs = [-1.0, -2.0, -0.5, -0.3, -0.2, -4.0];
        let old = [-1.1, -1.9, -0.5, -0.2, -0.25, -3.0];
        let g = gradient(
            objective.as_ref(),
            &logprobs,
            &old,
            &[0.0; 6],
            &[1.0; 6],
            3,
            2,
        );
        assert!(g.iter().all(|&x| x == 0.0), "{g:?}");
    }

    #[test]
    fn on_policy_gradient_is_minus_advantage_times_coefficient() {
        // ℓ^old = ℓ: ρ = 1, the gradient is −Â · coef (spec G-6), token-mean over 3 tokens.
        let objective = grpo(GrpoConfig::default());
        let logprobs = [-1.0, -2.0, -0.5, -0.3];
        let advantages = [0.7, 0.7, -1.2, 0.0];
        let mask = [1.0, 1.0, 1.0, 0.0];
        let g = gradient(
            objective.as_ref(),
            &logprobs,
            &logprobs,
            &advantages,
            &mask,
            2,
            2,
        );
        for i in 0..4 {
            assert_relative_eq!(g[i], -advantages[i] * mask[i] / 3.0, epsilon = 1e-7);
        }
    }

    #[test]
    fn clip_regions_zero_the_gradient_exactly_where_the_spec_says() {
        // One token each; ρ placed just inside / outside each boundary (spec D-1).
        let config = GrpoConfig {
            clip_low: 0.2,
            clip_high: 0.28,
            ..GrpoConfig::default()
        };
        let objective = grpo(config);
        let cases: [(f32, f32, bool); 6] = [
            (1.0, 1.28 - 1e-3, true),
            (1.0, 1.28 + 1e-3, false),
            (-1.0, 0.8 + 1e-3, true),
            (-1.0, 0.8 - 1e-3, false),
            (-1.0, 3.0 - 1e-3, true),
            (-1.0, 3.0 + 1e-3, false),
        ];
        for (advantage, ratio, active) in cases {
            let old = -1.0f32;
            let logprob = old + ratio.ln();
            let g = gradient(
                objective.as_ref(),
                &[logprob],
                &[old],
                &[advantage],
                &[1.0],
                1,
                1,
            );
            if active {
                let expected = -advantage * (logprob - old).exp();
                assert_relative_eq!(g[0], expected, epsilon = 1e-5);
            } else {
                assert_eq!(g[0], 0.0, "A={advantage} ρ={ratio}");
            }
        }
    }

    #[test]
    fn kl_estimators_match_their_formulas() {
        let logprobs = tensor(&[-1.0, -0.5], 1, 2);
        let reference = tensor(&[-1.5, -0.5], 1, 2);
        let d = -0.5f32;
        let k1 = host(kl_penalty(
            logprobs.clone(),
            reference.clone(),
            KlEstimator::K1,
        ));
        let k2 = host(kl_penalty(
            logprobs.clone(),
            reference.clone(),
            KlEstimator::K2,
        ));
        let k3 = host(kl_penalty(logprobs, reference, KlEstimator::K3));
        assert_relative_eq!(k1[0], -d);
        assert_relative_eq!(k2[0], 0.5 * d * d);
        assert_relative_eq!(k3[0], d.exp() - d - 1.0, epsilon = 1e-7);
        assert_eq!([k1[1], k2[1], k3[1]], [0.0, 0.0, 0.0]);
    }

    #[test]
    fn kl_term_needs_the_reference_pass_only_when_on() {
        assert!(!grpo(GrpoConfig::default()).needs().reference_logprobs);
        let with_kl = GrpoConfig {
            kl_coef: 0.04,
            ..GrpoConfig::default()
        };
        assert!(grpo(with_kl).needs().reference_logprobs);
    }

    #[test]
    fn invalid_config_is_refused_with_the_key_name() {
        let config = GrpoConfig {
            clip_dual: 0.5,
            ..GrpoConfig::default()
        };
        let err = config
            .build(&BuildContext {
                max_new_tokens: 10,
                group_size: 8,
                steps: 1,
                temperature: 1.0,
                evaluation: false,
            })
            .err()
            .expect("clip_dual 0.5 is refused")
            .to_string();
        assert!(err.contains("clip_dual"), "{err}");
    }
}
