//! SAPO: soft adaptive policy optimization, a smooth gate on the importance ratio in place of
//! PPO's hard clip.
//!
//! # What it computes
//! Credit: GRPO's group advantages (`zoo_grpo::group_advantages`), broadcast to every token.
//! Loss per token: `−f(ρ)·Â` with `ρ = exp(clamp(ℓ − ℓ^old, ±20))` and the gate
//! `f(ρ) = σ(τ (ρ − 1)) · 4/τ`, `τ = tau_pos` where `Â > 0`, else `tau_neg`. At `ρ = 1` the gate's
//! slope is 1 (the policy gradient); it decays smoothly as `ρ` leaves 1, more steeply for the
//! larger `τ`, instead of dropping to 0 at a clip boundary.
//!
//! # The reference, and its quirks
//! verl `verl/trainer/ppo/core_algos.py`, `compute_policy_loss_sapo` (verl-project/verl at
//! `1dda039b9`, lines 1621-1703):
//! - the aggregation is always `seq-mean-token-mean` whatever is configured (zoo refuses another
//!   `loss_agg` rather than ignore it);
//! - `Â = 0` takes `tau_neg` (`torch.where(advantages > 0, ...)`), which changes nothing since the
//!   loss is then 0;
//! - the loss's value at `ρ = 1` is `−2Â/τ`, not 0;
//! - verl reports the clip fractions as 0; zoo does not report them.
//!
//! # Defaults and their source
//! `tau_pos = 1.0`, `tau_neg = 1.05`: verl's actor config and `examples/sapo_trainer/` (SAPO
//! arXiv 2511.20347); GRPO's advantages (`algorithm.adv_estimator=grpo`).

use serde::{Deserialize, Serialize};
use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result,
};
use zoo_grpo::{LossAgg, group_credit};

/// SAPO's configuration; defaults of verl's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SapoConfig {
    /// The gate's temperature for tokens of positive advantage.
    pub tau_pos: f32,
    /// The gate's temperature for the others.
    pub tau_neg: f32,
    /// Aggregation: `seq-mean-token-mean`, the one verl's SAPO uses whatever is configured.
    pub loss_agg: LossAgg,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// Divide by the group std (false: Dr.GRPO's advantages).
    pub norm_adv_by_std: bool,
}

impl Default for SapoConfig {
    fn default() -> Self {
        Self {
            tau_pos: 1.0,
            tau_neg: 1.05,
            loss_agg: LossAgg::SeqMeanTokenMean,
            adv_eps: 1e-6,
            norm_adv_by_std: true,
        }
    }
}

#[typetag::serde(name = "sapo")]
impl ObjectiveConfig for SapoConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        let c = self;
        let positive = |tau: f32| tau > 0.0 && tau.is_finite();
        if !(positive(c.tau_pos) && positive(c.tau_neg)) {
            return Err(Error::Config(format!(
                "sapo: `tau_pos` and `tau_neg` must be positive, got {} and {}",
                c.tau_pos, c.tau_neg
            )));
        }
        if c.loss_agg != LossAgg::SeqMeanTokenMean {
            return Err(Error::Config(
                "sapo: `loss_agg` must be \"seq-mean-token-mean\": verl's compute_policy_loss_sapo aggregates so whatever mode is configured\nhint: drop `loss_agg`".into(),
            ));
        }
        if c.adv_eps.is_nan() || c.adv_eps < 0.0 {
            return Err(Error::Config("sapo: `adv_eps` must be non-negative".into()));
        }
        Ok(Box::new(Sapo { config: c.clone() }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "sapo",
        summary: "a smooth sigmoid gate on the ratio instead of the hard clip (Qwen's SAPO; verl)",
        default_config: || Box::new(SapoConfig::default()),
        origin: "zoo-sapo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The SAPO objective.
#[derive(Debug, Clone)]
pub struct Sapo {
    config: SapoConfig,
}

impl Objective for Sapo {
    fn name(&self) -> &str {
        "sapo"
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
        Ok(group_credit("sapo", input, c.norm_adv_by_std, c.adv_eps))
    }

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let log_ratio = input.logprobs.sub(input.old_logprobs).clamp(-20.0, 20.0);
        let ratio = log_ratio.clone().exp();
        // τ per token: tau_pos where Â > 0, tau_neg elsewhere.
        let positive = input.advantages.clone().greater_elem(0.0);
        let tau = input
            .advantages
            .zeros_like()
            .add_scalar(c.tau_neg)
            .mask_fill(positive, c.tau_pos);
        let gate =
            zoo_core::burn::tensor::activation::sigmoid(ratio.sub_scalar(1.0).mul(tau.clone()))
                .mul(tau.recip().mul_scalar(4.0));
        let loss = gate.mul(input.advantages).neg();
        LossTerms {
            per_token: loss.clone(),
            scalar: None,
            parts: vec![("actor/pg_loss", loss)],
            token_metrics: vec![("actor/ppo_kl", log_ratio.detach().neg())],
            metrics: Vec::new(),
        }
    }
}
