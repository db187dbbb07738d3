//! GMPO: geometric-mean policy optimization, one ratio per response (the geometric mean of its
//! token ratios, each clipped in log space with the advantage's sign), times the response's
//! advantage.
//!
//! # What it computes
//! Credit: GRPO's group advantages (`zoo_grpo::group_advantages`), broadcast to every token.
//! Per response `i` with `L_i = Σ_t m` and `x_t = ℓ_t − ℓ^old_t`:
//! `x̃_t = sgn(Â)·min(sgn(Â)·x_t, sgn(Â)·clamp(x_t, −clip_low, clip_high))` (the clip binds only
//! on the side the advantage pushes toward), `R_i = exp(Σ_t m·x̃_t / (L_i + 1e-8))`,
//! `Ā_i = Σ_t m·Â_t / (L_i + 1e-8)`, and the response's loss `−Ā_i·R_i`. The loss is the mean
//! of that over the mini-batch's responses, empty ones included (`torch.mean`): zoo puts
//! `−Ā_i·R_i / L_i` on each of the response's tokens with the aggregation
//! `constant-per-sequence` at 1 (`Σ m·loss / rows`), which is that mean exactly.
//!
//! # The reference, and its quirks
//! verl `verl/trainer/ppo/core_algos.py`, `compute_policy_loss_geo_mean` (verl-project/verl at
//! `1dda039b9`, lines 1927-2010), after callsys/GMPO `train_zero_math_gmpo.py`:
//! - `loss_agg_mode` is not used: the loss is `torch.mean` over the responses, so a response
//!   with no loss token still counts in the denominator; zoo has no `loss_agg` key;
//! - the log-ratio is not clamped to ±20 (the line is commented out);
//! - `1e-8` is added to the token counts of both means;
//! - `actor/pg_clipfrac` counts clipped tokens with `Â > 0`, `actor/pg_clipfrac_lower` those
//!   with `Â < 0`.
//!
//! # Defaults and their source
//! `clip_low = clip_high = 0.4` (in log space: ratios within `e^±0.4`): verl's
//! `examples/gmpo_trainer/run_qwen3_8b_fsdp.sh` and GMPO (arXiv 2507.20673 §4); GRPO's
//! advantages (`algorithm.adv_estimator=grpo`).

use serde::{Deserialize, Serialize};

use zoo_core::objective::BuildContext;
use zoo_core::registry::AlgorithmEntry;
use zoo_core::{
    Aggregation, Credit, CreditInput, Error, LossInput, LossTerms, Needs, Objective,
    ObjectiveConfig, Result,
};
use zoo_grpo::group_credit;

/// GMPO's configuration; defaults of verl's GMPO example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GmpoConfig {
    /// Token log-ratios are clipped below at `−clip_low` (for `Â < 0`).
    pub clip_low: f32,
    /// Token log-ratios are clipped above at `clip_high` (for `Â > 0`).
    pub clip_high: f32,
    /// `eps` added to the group std.
    pub adv_eps: f32,
    /// Divide by the group std (false: Dr.GRPO's advantages).
    pub norm_adv_by_std: bool,
}

impl Default for GmpoConfig {
    fn default() -> Self {
        Self {
            clip_low: 0.4,
            clip_high: 0.4,
            adv_eps: 1e-6,
            norm_adv_by_std: true,
        }
    }
}

#[typetag::serde(name = "gmpo")]
impl ObjectiveConfig for GmpoConfig {
    fn build(&self, _context: &BuildContext) -> Result<Box<dyn Objective>> {
        let c = self;
        if c.clip_low.is_nan() || c.clip_low < 0.0 || c.clip_high.is_nan() || c.clip_high < 0.0 {
            return Err(Error::Config(format!(
                "gmpo: `clip_low` and `clip_high` must be non-negative, got {} and {}",
                c.clip_low, c.clip_high
            )));
        }
        if c.adv_eps.is_nan() || c.adv_eps < 0.0 {
            return Err(Error::Config("gmpo: `adv_eps` must be non-negative".into()));
        }
        Ok(Box::new(Gmpo { config: c.clone() }))
    }
}

zoo_core::inventory::submit! {
    AlgorithmEntry {
        name: "gmpo",
        summary: "geometric mean of sign-clipped token ratios per response (GMPO; verl)",
        default_config: || Box::new(GmpoConfig::default()),
        origin: "zoo-gmpo",
        run_defaults: "",
        llm_run_defaults: "",
    }
}

/// Makes the linker keep this crate's registration; `zoo::link_all` calls it.
pub fn link() {}

// What a build of this crate as a plugin file declares to the loader.
zoo_core::declare_plugin!();

/// The GMPO objective.
#[derive(Debug, Clone)]
pub struct Gmpo {
    config: GmpoConfig,
}

impl Objective for Gmpo {
    fn name(&self) -> &str {
        "gmpo"
    }

    fn needs(&self) -> Needs {
        Needs {
            credit_without_old_logprobs: true,
            ..Needs::default()
        }
    }

    fn aggregation(&self) -> Aggregation {
        // `Σ m·loss / rows`: with `−Ā_i·R_i / L_i` on each token, the mean of `−Ā_i·R_i`.
        Aggregation::ConstantPerSequence(1.0)
    }

    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit> {
        let c = &self.config;
        Ok(group_credit("gmpo", input, c.norm_adv_by_std, c.adv_eps))
    }

    /// Shapes: every input `[b, t]`; returns `[b, t]` terms.
    fn loss(&self, input: LossInput) -> LossTerms {
        let c = &self.config;
        let [b, t] = input.logprobs.dims();
        let mask = input.mask;
        let advantages = input.advantages;
        let log_ratio = input.logprobs.sub(input.old_logprobs);
        let sign = advantages.clone().sign();
        let clamped = log_ratio.clone().clamp(-c.clip_low, c.clip_high);
        let clipped = sign.clone().mul(
            sign.clone()
                .mul(log_ratio.clone())
                .min_pair(sign.mul(clamped.clone())),
        );
        let lengths = mask.clone().sum_dim(1); // [b, 1]
        let denominator = lengths.clone().add_scalar(1e-8);
        let ratio = clipped
            .mul(mask.clone())
            .sum_dim(1)
            .div(denominator.clone())
            .exp(); // [b, 1]
        let advantage = advantages
            .clone()
            .mul(mask.clone())
            .sum_dim(1)
            .div(denominator); // [b, 1]
        let per_response = advantage.mul(ratio).neg(); // [b, 1]
        // Spread over the response's tokens (an empty response's coefficients are 0).
        let loss = per_response
            .div(lengths.clamp_min(1.0))
            .reshape([b, 1])
            .expand([b, t]);
        let changed = log_ratio.clone().not_equal(clamped).float();
        let positive = advantages.clone().greater_elem(0.0).float();
        let negative = advantages.lower_elem(0.0).float();
        LossTerms {
            per_token: loss.clone(),
            scalar: None,
            parts: vec![("actor/pg_loss", loss)],
            token_metrics: vec![
                ("actor/pg_clipfrac", changed.clone().mul(positive).detach()),
                ("actor/pg_clipfrac_lower", changed.mul(negative).detach()),
                ("actor/ppo_kl", log_ratio.detach().neg()),
            ],
            metrics: Vec::new(),
        }
    }
}
