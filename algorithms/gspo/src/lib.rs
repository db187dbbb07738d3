//! GSPO: group sequence policy optimization, a sequence-level importance ratio, clipped.
//!
//! # What it computes
//! Credit: GRPO's group advantages (`zoo_grpo::group_advantages`: Bessel std, eps 1e-6, or no
//! std with `norm_adv_by_std = false`), one per response, broadcast to its tokens.
//! Loss per token, with `s_i = exp(mean_t m·(ℓ − ℓ^old))` the geometric mean of the response's
//! token ratios:
//! `s_i,t = sg[s_i] · π_θ(y_t) / sg[π_θ(y_t)]` (value `s_i`, gradient that of the token's own
//! log-prob: the "token-level gradient form" of GSPO's Eq. 10), `log s_i,t` clamped above at 10,
//! `loss = max(−Â·s_i,t, −Â·clip(s_i,t, 1 − clip_low, 1 + clip_high))`. No dual clip.
//!
//! # The reference, and its quirks
//! verl `verl/trainer/ppo/core_algos.py`, `compute_policy_loss_gspo` (verl-project/verl at
//! `1dda039b9`, lines 1545-1618):
//! - the sequence mean divides by `max(Σ_t m, 1)`;
//! - the aggregation is always `seq-mean-token-mean`, whatever `loss_agg_mode` the run
//!   configures (the function passes it to `agg_loss` fixed): zoo refuses any other `loss_agg`
//!   rather than ignore it;
//! - `pg_clipfrac_lower` is always 0 (there is no dual clip), so zoo does not report it;
//! - `actor/pg_clipfrac` counts tokens whose clipped term exceeds the unclipped one.
//!
//! # Defaults and their source
//! `clip_low = 3e-4`, `clip_high = 4e-4`, `seq-mean-token-mean`: verl's GSPO recipes
//! (`examples/gspo_trainer/README.md`, `run_qwen3_8b_fsdp.sh`; GSPO arXiv 2507.18071 §5.1),
//! GRPO's advantages (`algorithm.adv_estimator=grpo`).

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result,
};
use zoo_grpo::{LossAgg, group_credit};

/// GSPO's configuration; defaults of verl's GSPO recipes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GspoConfig {
    /// The sequence ratio is clipped below at `1 − clip_low`.
    pub clip_low: f32,
    /// The sequence ratio is clipped above at `1 + clip_high`.
    pub clip_high: f32,
    /// Aggregation: `seq-mean-token-mean`, the one verl's GSPO uses whatever is configured.
    pub loss_agg: LossAgg,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// Divide by the group std (false: Dr.GRPO's advantages).
    pub norm_adv_by_std: bool,
}

impl Default for GspoConfig {
    fn default() -> Self {
        Self {
            clip_low: 3e-4,
            clip_high: 4e-4,
            loss_agg: LossAgg::SeqMeanTokenMean,
            adv_eps: 1e-6,
            norm_adv_by_std: true,
        }
    }
}

#[typetag::serde(name = "gspo")]
impl ObjectiveConfig for GspoConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        let c = self;
        if !(0.0..1.0).contains(&c.clip_low) || c.clip_high.is_nan() || c.clip_high < 0.0 {
            return Err(Error::Config(format!(
                "gspo: `clip_low` must lie in [0, 1) and `clip_high` be non-negative, got {} and {}",
                c.clip_low, c.clip_high
            )));
        }
        if c.loss_agg != LossAgg::SeqMeanTokenMean {
            return Err(Error::Config(
                "gspo: `loss_agg` must be \"seq-mean-token-mean\": verl's compute_policy_loss_gspo aggregates so whatever mode is configured\nhint: drop `loss_agg`".into(),
            ));
        }
        if c.adv_eps.is_nan() || c.adv_eps < 0.0 {
            return Err(Error::Config("gspo: `adv_eps` must be non-negative".into()));
        }
        Ok(Box::new(Gspo { config: c.clone() }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "gspo",
        summary: "sequence-level clipped importance ratio (Qwen's GSPO; verl, TRL)",
        default_config: || Box::new(GspoConfig::default()),
        origin: "zoo-gspo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The GSPO objective.
#[derive(Debug, Clone)]
pub struct Gspo {
    config: GspoConfig,
}

impl Objective for Gspo {
    fn name(&self) -> &str {
        "gspo"
    }

    fn needs(&self) -> Needs {
        Needs {
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    fn aggregation(&self) -> Aggregation {
        Aggregation::SeqMeanTokenMean
    }

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let c = &self.config;
        Ok(group_credit("gspo", input, c.norm_adv_by_std, c.adv_eps))
    }

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let [b, _] = input.logprobs.dims();
        let log_ratio = input.logprobs.clone().sub(input.old_logprobs);
        // The mean log-ratio over each response's tokens: `log s_i`, [b, 1], detached.
        let lengths = input.mask.clone().sum_dim(1).clamp_min(1.0);
        let log_s = log_ratio
            .clone()
            .mul(input.mask.clone())
            .sum_dim(1)
            .div(lengths)
            .detach()
            .reshape([b, 1]);
        // log s_i,t = sg[log s_i] + ℓ − sg[ℓ]: the value of s_i, the gradient of ℓ.
        let log_token = input
            .logprobs
            .clone()
            .sub(input.logprobs.detach())
            .add(log_s)
            .clamp_max(10.0);
        let ratio = log_token.exp();
        let advantages = input.advantages;
        let unclipped = advantages.clone().neg().mul(ratio.clone());
        let clipped = advantages
            .neg()
            .mul(ratio.clamp(1.0 - c.clip_low, 1.0 + c.clip_high));
        let loss = unclipped.clone().max_pair(clipped.clone());
        LossTerms {
            per_token: loss.clone(),
            scalar: None,
            parts: vec![("actor/pg_loss", loss)],
            token_metrics: vec![
                ("actor/pg_clipfrac", clipped.greater(unclipped).float()),
                ("actor/ppo_kl", log_ratio.neg()),
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

    /// Inside the clip range every token of a response gets the gradient `−Â · s_i` (its own
    /// log-prob's, scaled by the sequence ratio): GSPO's Eq. 10 in its token-level form.
    #[test]
    fn inside_the_clip_range_each_token_gets_the_sequence_ratio_times_its_advantage() {
        let objective = GspoConfig {
            clip_low: 0.5,
            clip_high: 0.5,
            ..GspoConfig::default()
        }
        .build(&BuildContext {
            max_new_tokens: 3,
            group_size: 2,
            steps: 1,
            temperature: 1.0,
            evaluation: false,
        })
        .unwrap();
        let old = [-1.0f32, -2.0, -0.5, -1.0, -1.5, -3.0];
        let new = [-0.9f32, -2.2, -0.5, -1.2, -1.5, -2.0]; // row 1's last token is padding
        let mask = [1.0f32, 1.0, 1.0, 1.0, 1.0, 0.0];
        let logprobs = tensor(&new, 2, 3).require_grad();
        let terms = objective.loss(LossInput {
            logprobs: logprobs.clone(),
            old_logprobs: tensor(&old, 2, 3),
            ref_logprobs: None,
            advantages: tensor(&[1.5, 1.5, 1.5, -0.5, -0.5, -0.5], 2, 3),
            mask: tensor(&mask, 2, 3),
            divergence: None,
            rewards: vec![1.0, 0.0],
            group_ids: vec![0, 0],
        });
        let grads = terms.per_token.mul(tensor(&mask, 2, 3)).sum().backward();
        let grad = logprobs
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let s0 = ((-0.9f32 + 1.0 - 0.2 + 0.0) / 3.0).exp();
        let s1 = ((-0.2f32 + 0.0) / 2.0).exp();
        let want = [-1.5 * s0, -1.5 * s0, -1.5 * s0, 0.5 * s1, 0.5 * s1, 0.0];
        for (g, w) in grad.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{grad:?} vs {want:?}");
        }
    }
}
