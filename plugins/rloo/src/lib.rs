//! RLOO: REINFORCE with a leave-one-out baseline — the example of an algorithm written outside
//! `algorithms/`, as a plugin: one config, one objective, one registration, all in this file.
//!
//! # What it computes
//! Credit: for a group of `G` responses, `A_i = R_i − (1/(G − 1)) Σ_{j≠i} R_j`, i.e.
//! `G/(G − 1) · (R_i − mean)`; a group of one gets 0. Loss per token: `−A_i · ρ` with
//! `ρ = exp(ℓ − ℓ^old)`, so that with one update per batch the gradient is exactly REINFORCE's
//! `−A_i ∇ℓ`; no clipping. Aggregation: the sequence log-prob, averaged over responses
//! (`seq-mean-token-sum`), as in the paper's `(1/k) Σ_i A_i ∇ log π(y_i)`.
//!
//! # References
//! Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
//! Human Feedback in LLMs" (arXiv 2402.14740), Eq. for RLOO; Kool et al. 2019 ("Buy 4 REINFORCE
//! samples, get a baseline for free").

use serde::{Deserialize, Serialize};
use zoo_core::objective::{BuildContext, groups};
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, LossInput, LossTerms, Objective, ObjectiveConfig, Result,
    TokenMatrix,
};

/// RLOO's configuration: nothing to tune but the aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlooConfig {
    /// `seq-mean-token-sum` (the paper) or `token-mean`.
    pub loss_agg: Aggregation,
}

impl Default for RlooConfig {
    fn default() -> Self {
        Self {
            loss_agg: Aggregation::SeqMeanTokenSum,
        }
    }
}

#[typetag::serde(name = "rloo")]
impl ObjectiveConfig for RlooConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        Ok(Box::new(Rloo {
            aggregation: self.loss_agg,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "rloo",
        summary: "REINFORCE with a leave-one-out baseline (Ahmadian et al.; example plugin)",
        default_config: || Box::new(RlooConfig::default()),
        origin: "zoo-rloo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader. The
// `test-abi-mismatch` feature declares another ABI number, for the loader's refusal test.
#[cfg(not(feature = "test-abi-mismatch"))]
zoo_core::declare_plugin!();
#[cfg(feature = "test-abi-mismatch")]
zoo_core::declare_plugin!(abi = zoo_core::plugin::ABI_VERSION + 1);

/// The RLOO objective.
#[derive(Debug, Clone)]
pub struct Rloo {
    aggregation: Aggregation,
}

/// `A_i = R_i − mean of the other responses of its group`; 0 for a group of one.
pub fn leave_one_out(rewards: &[f32], group_ids: &[usize]) -> Vec<f32> {
    let mut advantages = vec![0.0; rewards.len()];
    for members in groups(group_ids) {
        let g = members.len();
        if g < 2 {
            continue;
        }
        let total: f64 = members.iter().map(|&i| rewards[i] as f64).sum();
        for &i in &members {
            let others = (total - rewards[i] as f64) / (g - 1) as f64;
            advantages[i] = (rewards[i] as f64 - others) as f32;
        }
    }
    advantages
}

impl Objective for Rloo {
    fn name(&self) -> &str {
        "rloo"
    }

    fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let advantages = leave_one_out(input.rewards, input.group_ids);
        let per_token = TokenMatrix::per_row(&advantages, input.mask);
        let n = advantages.len().max(1) as f64;
        Ok(Credit {
            advantages: per_token,
            sequence_advantages: Some(advantages.clone()),
            metrics: vec![(
                "rloo/adv_abs_mean".into(),
                advantages.iter().map(|a| a.abs() as f64).sum::<f64>() / n,
            )],
            ..Credit::default()
        })
    }

    /// Shapes: every input `[b, t]`; returns `−Â·ρ` `[b, t]`.
    fn loss(&self, input: LossInput) -> LossTerms {
        let ratio = input
            .logprobs
            .sub(input.old_logprobs)
            .clamp(-20.0, 20.0)
            .exp();
        LossTerms::per_token(input.advantages.neg().mul(ratio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo_core::burn::prelude::*;
    use zoo_core::probe::{ProbeBatch, probe};

    #[test]
    fn leave_one_out_baseline_matches_its_closed_form() {
        // G = 4 with rewards (1, 0, 0, 1): A = R − mean(others) = ±2/3.
        let a = leave_one_out(&[1.0, 0.0, 0.0, 1.0], &[0, 0, 0, 0]);
        approx::assert_relative_eq!(a[0], 2.0 / 3.0, epsilon = 1e-6);
        approx::assert_relative_eq!(a[1], -2.0 / 3.0, epsilon = 1e-6);
        // G/(G − 1) times the group-centred reward, summing to zero; groups by id.
        let a = leave_one_out(&[0.5, 1.0, 0.0, 0.2, 0.7], &[3, 3, 3, 9, 9]);
        approx::assert_relative_eq!(a[0], 1.5 * (0.5 - 0.5), epsilon = 1e-6);
        approx::assert_relative_eq!(a[1], 1.5 * (1.0 - 0.5), epsilon = 1e-6);
        approx::assert_relative_eq!(a[3], 2.0 * (0.2 - 0.45), epsilon = 1e-6);
        assert_eq!(leave_one_out(&[1.0], &[0]), vec![0.0]);
    }

    #[test]
    fn on_policy_gradient_is_reinforce_averaged_over_responses() {
        let objective = RlooConfig::default()
            .build(&BuildContext {
                max_new_tokens: 2,
                group_size: 2,
                steps: 1,
                temperature: 1.0,
                evaluation: true,
            })
            .unwrap();
        let m = |data: Vec<f32>| TokenMatrix {
            rows: 2,
            cols: 2,
            data,
        };
        let lp = m(vec![-1.0, -0.5, -2.0, 0.0]);
        let out = probe(
            objective.as_ref(),
            &ProbeBatch {
                rewards: vec![1.0, 0.0],
                group_ids: vec![0, 0],
                mask: m(vec![1.0, 1.0, 1.0, 0.0]),
                logprobs: Some(lp.clone()),
                old_logprobs: Some(lp),
                ..ProbeBatch::default()
            },
            1,
            &Device::flex().autodiff(),
        )
        .unwrap();
        // A = (+1, −1); seq-mean-token-sum over 2 responses: d loss/dℓ = −A/2 per token.
        assert_eq!(out.grad, vec![-0.5, -0.5, 0.5, 0.0]);
    }
}
