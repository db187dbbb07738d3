//! template: an objective skeleton. `zoo new-algo NAME` copies this crate to `plugins/NAME`
//! with every `template` renamed; replace the math below with yours.
//!
//! # What it computes
//! Credit: `A_i = R_i − mean_g(R)` (the group mean as a baseline), broadcast to every token.
//! Loss per token: `−A_i · ρ`, `ρ = exp(ℓ − ℓ^old)` (REINFORCE's gradient with one update per
//! batch), reduced by the trainer with `loss_agg` (token-mean by default).
//!
//! # How to change it
//! - the config: add fields with `#[serde(default)]`-compatible defaults; `build` validates;
//! - extra inputs (reference log-probs, teacher passes, student logits, dynamic sampling):
//!   return them from `Objective::needs` (see `zoo_core::objective::Needs`);
//! - credit works on host numbers, loss on tensors `[b, t]`; never divide by a token count:
//!   the trainer aggregates;
//! - keep the parity test below honest: expected values derived by hand or from a closed form.

use serde::{Deserialize, Serialize};
use zoo_core::objective::{BuildContext, groups};
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, LossInput, LossTerms, Objective, ObjectiveConfig, Result,
    TokenMatrix,
};

/// The configuration; its defaults are the algorithm's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateConfig {
    /// How the trainer reduces the per-token loss.
    pub loss_agg: Aggregation,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            loss_agg: Aggregation::TokenMean,
        }
    }
}

#[typetag::serde(name = "template")]
impl ObjectiveConfig for TemplateConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        Ok(Box::new(Template {
            aggregation: self.loss_agg,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "template",
        summary: "template: group-mean baseline REINFORCE (a skeleton to edit)",
        default_config: || Box::new(TemplateConfig::default()),
        origin: "zoo-template",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The objective.
#[derive(Debug, Clone)]
pub struct Template {
    aggregation: Aggregation,
}

/// `R_i − mean` of its group.
pub fn centred_rewards(rewards: &[f32], group_ids: &[usize]) -> Vec<f32> {
    let mut advantages = vec![0.0; rewards.len()];
    for members in groups(group_ids) {
        let mean = members.iter().map(|&i| rewards[i]).sum::<f32>() / members.len() as f32;
        for &i in &members {
            advantages[i] = rewards[i] - mean;
        }
    }
    advantages
}

impl Objective for Template {
    fn name(&self) -> &str {
        "template"
    }

    fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let advantages = centred_rewards(input.rewards, input.group_ids);
        let per_token = TokenMatrix::per_row(&advantages, input.mask);
        Ok(Credit {
            advantages: per_token,
            sequence_advantages: Some(advantages),
            metrics: Vec::new(),
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

    /// Parity on a hand-derived case: rewards (1, 0) give A = (0.5, −0.5); on-policy, token-mean
    /// over 3 tokens, `d loss / dℓ = −A/3` on every unmasked token.
    #[test]
    fn matches_the_hand_derived_gradient() {
        let objective = TemplateConfig::default()
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
        let expected = [-0.5 / 3.0, -0.5 / 3.0, 0.5 / 3.0, 0.0];
        for (g, e) in out.grad.iter().zip(expected) {
            approx::assert_relative_eq!(*g, e, epsilon = 1e-6);
        }
    }
}
