//! DPPO: divergence proximal policy optimization, a trust region in probability space
//! (binary total variation or binary KL of the sampled token) instead of PPO's ratio clip, with
//! a truncated, detached importance weight.
//!
//! # What it computes
//! Credit: GRPO's group advantages (`zoo_grpo::group_advantages`), broadcast to every token.
//! Loss per token: `−Â · sg[min(ρ, tis_cap)] · ℓ · sg[v]`, `ρ = exp(clamp(ℓ − ℓ^old, ±20))`, with
//! `v = 1` while the token stays inside the trust region on the side its advantage pushes:
//! - `divergence = "tv"`: `p − p_old ≤ delta_high` for `Â > 0`, `p − p_old ≥ −delta_low` else;
//! - `divergence = "kl"`: with the binary KL
//!   `D = p_old·(ℓ^old − ℓ) + (1 − p_old)·log((1 − p_old + 1e-8)/(1 − p + 1e-8))`,
//!   `D ≤ delta_high or p ≤ p_old` for `Â > 0`, `D ≤ delta_low or p ≥ p_old` else;
//!
//! with `p = exp(ℓ)`, `p_old = exp(ℓ^old)`. A token outside gets no gradient (its loss is 0).
//!
//! # The reference, and its quirks
//! verl `verl/trainer/ppo/core_algos.py`, `compute_policy_loss_dppo_tv` and
//! `compute_policy_loss_dppo_kl` (verl-project/verl at `1dda039b9`, lines 1379-1542):
//! - the loss's value is `−w·Â·ℓ` (not 0 on-policy), as CISPO's;
//! - `Â = 0` takes the negative side's test (`torch.where(advantages > 0, ...)`; its loss is 0);
//! - the truncation cap comes from `clip_ratio_c` (verl's actor default 3.0, the DPPO recipe's
//!   10,000; the function's own fallback of 20 is never reached with verl's config): zoo's
//!   `tis_cap` defaults to the recipe's;
//! - `actor/pg_clipfrac` is the share of tokens outside the region, `actor/pg_clipfrac_lower`
//!   the share inside it whose weight was truncated.
//!
//! # Defaults and their source
//! verl's `examples/dppo_trainer/run_qwen3_30b_a3b_megatron.sh` (DPPO arXiv 2602.04879):
//! `divergence = "tv"`, `delta_low = delta_high = 0.15` for TV and 0.05 for KL, `tis_cap =
//! 10000`, `loss_agg = "seq-mean-token-sum-norm"` (per-response token sums, their mean, divided
//! by the response length cap); GRPO's advantages (`algorithm.adv_estimator=grpo`).

use serde::{Deserialize, Serialize};

use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result,
};
use zoo_grpo::{LossAgg, group_credit};

/// The divergence whose trust region DPPO keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Divergence {
    /// The sampled token's probability change (binary total variation).
    Tv,
    /// The binary KL between the old and new probability of the sampled token.
    Kl,
}

/// DPPO's configuration; defaults of verl's DPPO recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DppoConfig {
    /// `tv` or `kl`.
    pub divergence: Divergence,
    /// The region's bound for tokens of non-positive advantage [default: 0.15 for tv, 0.05 for kl].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_low: Option<f32>,
    /// The region's bound for tokens of positive advantage [default: 0.15 for tv, 0.05 for kl].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_high: Option<f32>,
    /// The importance weight is truncated at this value.
    pub tis_cap: f32,
    /// Aggregation mode.
    pub loss_agg: LossAgg,
    /// The constant of the `constant` and `seq-mean-token-sum-norm` modes; default: the
    /// response length cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f32>,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// Divide by the group std (false: Dr.GRPO's advantages).
    pub norm_adv_by_std: bool,
}

impl Default for DppoConfig {
    fn default() -> Self {
        Self {
            divergence: Divergence::Tv,
            delta_low: None,
            delta_high: None,
            tis_cap: 10_000.0,
            loss_agg: LossAgg::SeqMeanTokenSumNorm,
            loss_scale: None,
            adv_eps: 1e-6,
            norm_adv_by_std: true,
        }
    }
}

impl DppoConfig {
    /// `(delta_low, delta_high)`, with the recipe's default for the divergence.
    fn deltas(&self) -> (f32, f32) {
        let default = match self.divergence {
            Divergence::Tv => 0.15,
            Divergence::Kl => 0.05,
        };
        (
            self.delta_low.unwrap_or(default),
            self.delta_high.unwrap_or(default),
        )
    }
}

#[typetag::serde(name = "dppo")]
impl ObjectiveConfig for DppoConfig {
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>> {
        let (low, high) = self.deltas();
        if low.is_nan() || low < 0.0 || high.is_nan() || high < 0.0 {
            return Err(Error::Config(format!(
                "dppo: `delta_low` and `delta_high` must be non-negative, got {low} and {high}"
            )));
        }
        if self.tis_cap.is_nan() || self.tis_cap <= 0.0 {
            return Err(Error::Config(format!(
                "dppo: `tis_cap` must be positive, got {}",
                self.tis_cap
            )));
        }
        if self.adv_eps.is_nan() || self.adv_eps < 0.0 {
            return Err(Error::Config("dppo: `adv_eps` must be non-negative".into()));
        }
        let aggregation =
            self.loss_agg
                .aggregation(self.loss_scale, context.max_new_tokens, "dppo")?;
        Ok(Box::new(Dppo {
            config: self.clone(),
            aggregation,
        }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "dppo",
        summary: "trust region in probability space (TV or binary KL), truncated IS weight (DPPO; verl)",
        default_config: || Box::new(DppoConfig::default()),
        origin: "zoo-dppo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The DPPO objective.
#[derive(Debug, Clone)]
pub struct Dppo {
    config: DppoConfig,
    aggregation: Aggregation,
}

impl Objective for Dppo {
    fn name(&self) -> &str {
        "dppo"
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
        Ok(group_credit("dppo", input, c.norm_adv_by_std, c.adv_eps))
    }

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let (low, high) = c.deltas();
        let logprobs = input.logprobs;
        let old = input.old_logprobs;
        let advantages = input.advantages;
        let log_ratio = logprobs.clone().sub(old.clone()).clamp(-20.0, 20.0);
        let ratio = log_ratio.clone().exp().detach();
        let weight = ratio.clone().clamp_max(c.tis_cap);
        let p = logprobs.clone().detach().exp();
        let p_old = old.clone().exp();
        let (inside_positive, inside_negative) = match c.divergence {
            Divergence::Tv => {
                let change = p.sub(p_old);
                (
                    change.clone().lower_equal_elem(high),
                    change.greater_equal_elem(-low),
                )
            }
            Divergence::Kl => {
                // D = p_old·(ℓ^old − ℓ) + (1 − p_old)·log((1 − p_old + 1e-8)/(1 − p + 1e-8)),
                // the epsilon added to each complement as verl does (in f32, `1 + 1e-8` is 1).
                let q_old = p_old.clone().neg().add_scalar(1.0);
                let q = p.clone().neg().add_scalar(1.0);
                let log_odds = q_old.clone().add_scalar(1e-8).div(q.add_scalar(1e-8)).log();
                let kl = p_old
                    .clone()
                    .mul(old.sub(logprobs.clone().detach()))
                    .add(q_old.mul(log_odds));
                (
                    kl.clone()
                        .lower_equal_elem(high)
                        .bool_or(p.clone().lower_equal(p_old.clone())),
                    kl.lower_equal_elem(low).bool_or(p.greater_equal(p_old)),
                )
            }
        };
        let positive = advantages.clone().greater_elem(0.0);
        let valid = inside_negative
            .float()
            .mask_where(positive, inside_positive.float());
        let loss = advantages
            .mul(weight)
            .mul(logprobs)
            .mul(valid.clone())
            .neg();
        let truncated = ratio.greater_elem(c.tis_cap).float().mul(valid.clone());
        LossTerms {
            per_token: loss.clone(),
            scalar: None,
            parts: vec![("actor/pg_loss", loss)],
            token_metrics: vec![
                ("actor/pg_clipfrac", valid.neg().add_scalar(1.0)),
                ("actor/pg_clipfrac_lower", truncated),
                ("actor/ppo_kl", log_ratio.detach().neg()),
            ],
            metrics: Vec::new(),
        }
    }
}
