//! CISPO: the clipped, detached importance-sampling weight times the log-prob, so that every
//! token keeps a gradient (PPO's clip zeroes the gradient of clipped tokens; CISPO clips only the
//! weight).
//!
//! # What it computes
//! Credit: GRPO's group advantages (`zoo_grpo::group_advantages`), broadcast to every token.
//! Loss per token: `−sg[clip(ρ, 1 − clip_low, 1 + clip_high)] · Â · ℓ` with
//! `ρ = exp(clamp(ℓ − ℓ^old, ±20))`: the value is `−w·Â·ℓ`, the gradient `−w·Â` on every token.
//!
//! # The reference, and its quirks
//! verl `verl/trainer/ppo/core_algos.py`, `compute_policy_loss_cispo` (verl-project/verl at
//! `1dda039b9`, lines 2046-2099):
//! - the loss's value is `−w·Â·ℓ`, not a surrogate equal to 0 at `ℓ = ℓ^old`: `actor/pg_loss`
//!   is therefore of the order of `Â·ℓ` (positive for a correct response's tokens), as verl
//!   logs it;
//! - the log-ratio is clamped to ±20 before the exponential (numerics only);
//! - `actor/pg_clipfrac` counts tokens whose weight was clipped (`ρ ≠ clip(ρ)`);
//!   `pg_clipfrac_lower` is always 0 in verl and is not reported;
//! - the configured `loss_agg` is used (token-mean by default).
//!
//! # Defaults and their source
//! `clip_low = 10` (no lower clip: `ρ > 0 > 1 − 10`), `clip_high = 0.2`, token-mean: verl's
//! `examples/cispo_trainer/run_qwen3_8b_fsdp.sh` (MiniMax-M1, arXiv 2506.13585 §3.1, clips
//! only from above); GRPO's advantages (`algorithm.adv_estimator=grpo`).

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result,
};
use zoo_grpo::{LossAgg, group_credit};

/// CISPO's configuration; defaults of verl's CISPO example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CispoConfig {
    /// The weight is clipped below at `1 − clip_low` (10: never).
    pub clip_low: f32,
    /// The weight is clipped above at `1 + clip_high`.
    pub clip_high: f32,
    /// Aggregation mode.
    pub loss_agg: LossAgg,
    /// The constant normalizer of the `constant` modes; default: the response length cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// Divide by the group std (false: Dr.GRPO's advantages).
    pub norm_adv_by_std: bool,
}

impl Default for CispoConfig {
    fn default() -> Self {
        Self {
            clip_low: 10.0,
            clip_high: 0.2,
            loss_agg: LossAgg::TokenMean,
            loss_scale: None,
            adv_eps: 1e-6,
            norm_adv_by_std: true,
        }
    }
}

#[typetag::serde(name = "cispo")]
impl ObjectiveConfig for CispoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        let c = self;
        if c.clip_low.is_nan() || c.clip_low < 0.0 || c.clip_high.is_nan() || c.clip_high < 0.0 {
            return Err(Error::Config(format!(
                "cispo: `clip_low` and `clip_high` must be non-negative, got {} and {}",
                c.clip_low, c.clip_high
            )));
        }
        if c.adv_eps.is_nan() || c.adv_eps < 0.0 {
            return Err(Error::Config(
                "cispo: `adv_eps` must be non-negative".into(),
            ));
        }
        let aggregation = c
            .loss_agg
            .aggregation(c.loss_scale, context.max_new_tokens, "cispo")?;
        Ok(Box::new(Cispo {
            config: c.clone(),
            aggregation,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "cispo",
        summary: "clipped, detached IS weight times the log-prob (MiniMax-M1's CISPO; verl)",
        default_config: || Box::new(CispoConfig::default()),
        origin: "zoo-cispo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The CISPO objective.
#[derive(Debug, Clone)]
pub struct Cispo {
    config: CispoConfig,
    aggregation: Aggregation,
}

impl Objective for Cispo {
    fn name(&self) -> &str {
        "cispo"
    }

    fn needs(&self) -> Needs {
        Needs {
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let c = &self.config;
        Ok(group_credit("cispo", input, c.norm_adv_by_std, c.adv_eps))
    }

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let log_ratio = input
            .logprobs
            .clone()
            .sub(input.old_logprobs)
            .clamp(-20.0, 20.0);
        let ratio = log_ratio.clone().exp().detach();
        let weight = ratio.clone().clamp(1.0 - c.clip_low, 1.0 + c.clip_high);
        let clipped = ratio.not_equal(weight.clone()).float();
        let loss = weight.mul(input.advantages).mul(input.logprobs).neg();
        LossTerms {
            per_token: loss.clone(),
            scalar: None,
            parts: vec![("actor/pg_loss", loss)],
            token_metrics: vec![
                ("actor/pg_clipfrac", clipped),
                ("actor/ppo_kl", log_ratio.detach().neg()),
            ],
            metrics: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_core::burn::prelude::*;
    use zoo_core::burn::tensor::TensorData;

    fn tensor(values: &[f32], b: usize, t: usize) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [b, t]),
            &Device::flex().autodiff(),
        )
    }

    /// Unlike PPO's clip, a token whose ratio left the range keeps a gradient, `−w·Â` with the
    /// clipped weight `w`.
    #[test]
    fn a_clipped_token_keeps_the_gradient_of_its_clipped_weight() {
        let objective = CispoConfig::default()
            .build(&BuildContext {
                max_new_tokens: 2,
                group_size: 2,
                steps: 1,
                temperature: 1.0,
                evaluation: false,
            })
            .unwrap();
        let old = [-1.0f32, -1.0, -1.0, -1.0];
        let new = [-1.0 + 0.5f32, -1.0 + 0.1, -1.0 - 0.5, -1.0]; // ratios e^.5, e^.1, e^-.5, 1
        let logprobs = tensor(&new, 2, 2).require_grad();
        let terms = objective.loss(LossInput {
            logprobs: logprobs.clone(),
            old_logprobs: tensor(&old, 2, 2),
            ref_logprobs: None,
            advantages: tensor(&[2.0, 2.0, -1.0, -1.0], 2, 2),
            mask: tensor(&[1.0; 4], 2, 2),
            divergence: None,
            rewards: vec![1.0, 0.0],
            group_ids: vec![0, 0],
        });
        let grads = terms.per_token.sum().backward();
        let grad = logprobs
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let want = [-2.0 * 1.2, -2.0 * 0.1f32.exp(), 1.0 * (-0.5f32).exp(), 1.0];
        for (g, w) in grad.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{grad:?} vs {want:?}");
        }
    }
}
