//! MaxRL: maximum-likelihood RL, whose advantage estimates the gradient of the log of the pass
//! probability (not of the pass probability, as GRPO's does), with PPO's clipped loss.
//!
//! # What it computes
//! Credit, per group of `N` responses with `a` successes (`reward > 0.5`) and `b = N − a`
//! failures, the official conditional estimator (`vr_cond`):
//! a success gets `b / (a·N)`, a failure `−1/N`. Its expectation is `∇ log p` of the group's
//! pass probability `p` (conditioned on at least one success): hard prompts (few successes)
//! weigh more than under GRPO, where the weight is `p(1−p)`-like. Broadcast to every token.
//! Loss per token: PPO-clip with verl's dual clip (`zoo_grpo::ppo_clip_loss`).
//!
//! # The reference, and its quirks
//! Zanette-Labs/MaxRL (arXiv 2602.02710), in its history (commit `76e04d1`):
//! `verl/trainer/ppo/maclaurin.py`, `vr_cond_weights` (lines 185-235), and
//! `verl/trainer/ppo/core_algos.py`, `compute_vr_cond_advantage` (lines 789-811):
//! - rewards are binarized at 0.5 (`P = (scores > 0.5)`): a reward of 0.5 is a failure, 0.6 a
//!   full success, whatever the verifier's scale;
//! - an all-fail group is *not* zero: each response gets `−1/N` (pushing down every sampled
//!   response); an all-success group gets 0 (`b = 0`);
//! - the weights are not normalized by a standard deviation (no `eps`, no std);
//! - the reference assumes every prompt has the same `N` (`bsz // len(unique(index))`); zoo
//!   uses each group's own size, the same when they are equal.
//!
//! # Defaults and their source
//! MaxRL's repository runs verl's actor with its defaults (it ships no run script for
//! `vr_cond`): clip 0.2/0.2, dual clip 3, token-mean.

use serde::{Deserialize, Serialize};
use zoo_core::objective::{BuildContext, groups};
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, LossInput, LossTerms, Needs, Objective, ObjectiveConfig,
    Result, TokenMatrix,
};
use zoo_grpo::{Clip, LossAgg, advantage_metrics, ppo_clip_loss};

/// MaxRL's configuration; verl's actor defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxrlConfig {
    /// `ε_low`: the ratio is clipped below at `1 − clip_low`.
    pub clip_low: f32,
    /// `ε_high`: the ratio is clipped above at `1 + clip_high`.
    pub clip_high: f32,
    /// Dual-clip constant `c > 1` for negative advantages.
    pub clip_dual: f32,
    /// Aggregation mode.
    pub loss_agg: LossAgg,
    /// The constant of the `constant` modes; default: the response length cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
}

impl Default for MaxrlConfig {
    fn default() -> Self {
        Self {
            clip_low: 0.2,
            clip_high: 0.2,
            clip_dual: 3.0,
            loss_agg: LossAgg::TokenMean,
            loss_scale: None,
        }
    }
}

impl MaxrlConfig {
    fn clip(&self) -> Clip {
        Clip {
            low: self.clip_low,
            high: self.clip_high,
            dual: self.clip_dual,
        }
    }
}

#[typetag::serde(name = "maxrl")]
impl ObjectiveConfig for MaxrlConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        self.clip().validate("maxrl")?;
        let aggregation =
            self.loss_agg
                .aggregation(self.loss_scale, context.max_new_tokens, "maxrl")?;
        Ok(Box::new(Maxrl {
            config: self.clone(),
            aggregation,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "maxrl",
        summary: "maximum-likelihood RL: the conditional estimator of ∇ log pass@k's p (MaxRL; prime-rl, SkyRL)",
        default_config: || Box::new(MaxrlConfig::default()),
        origin: "zoo-maxrl",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The MaxRL objective.
#[derive(Debug, Clone)]
pub struct Maxrl {
    config: MaxrlConfig,
    aggregation: Aggregation,
}

/// MaxRL's conditional advantages (`vr_cond_weights`): in a group of `N` with `a` successes
/// (`reward > 0.5`) and `b` failures, `b/(a·N)` for a success and `−1/N` for a failure.
pub fn vr_cond_advantages(rewards: &[f32], group_ids: &[usize]) -> Vec<f32> {
    let mut advantages = vec![0.0f32; rewards.len()];
    for members in groups(group_ids) {
        let n = members.len() as f64;
        let a = members.iter().filter(|&&i| rewards[i] > 0.5).count() as f64;
        let b = n - a;
        for &i in &members {
            advantages[i] = if rewards[i] > 0.5 {
                (b / (a * n)) as f32
            } else {
                (-1.0 / n) as f32
            };
        }
    }
    advantages
}

impl Objective for Maxrl {
    fn name(&self) -> &str {
        "maxrl"
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
        let advantages = vr_cond_advantages(input.rewards, input.group_ids);
        Ok(Credit {
            advantages: TokenMatrix::per_row(&advantages, input.mask),
            metrics: advantage_metrics("maxrl", &advantages),
            sequence_advantages: Some(advantages),
            ..Credit::default()
        })
    }

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        ppo_clip_loss(
            input.logprobs,
            input.old_logprobs,
            input.advantages,
            self.config.clip(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_share_the_failures_mass_and_all_fail_groups_push_down() {
        // Group 0: 1 success of 4; group 1: all fail; group 2: all succeed; group 3: a reward
        // of exactly 0.5 is a failure, 0.6 a success.
        let rewards = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.6];
        let ids = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3];
        let a = vr_cond_advantages(&rewards, &ids);
        let want = [0.75, -0.25, -0.25, -0.25, -0.5, -0.5, 0.0, 0.0, -0.5, 0.5];
        for (got, want) in a.iter().zip(want) {
            assert!((got - want).abs() < 1e-7, "{a:?}");
        }
        // The successes' advantages sum to b/N, the failures' to −b/N: zero-sum in a group
        // with a success.
        assert!((a[..4].iter().sum::<f32>()).abs() < 1e-7);
    }
}
