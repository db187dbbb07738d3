//! The `Objective` trait: what an RLVR algorithm is, as far as the trainer is concerned.
//!
//! Lifecycle, per training step (the trainer calls these in this order):
//! 1. [`Objective::needs`] once, to know which extra passes to run (reference log-probs, ...);
//! 2. [`Objective::credit`] once per rollout batch, on plain host numbers: advantages per token;
//! 3. [`Objective::loss`] once per micro-batch, on tensors: *unreduced* per-token loss terms.
//!
//! The trainer reduces those terms with [`Objective::aggregation`] over the whole mini-batch
//! (see [`crate::aggregation`]); an objective never divides by a count itself.

use std::fmt::Debug;

use burn::prelude::*;

use crate::Result;
use crate::aggregation::Aggregation;
use crate::batch::TokenMatrix;

/// The extra inputs an objective asks the trainer for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Log-probs of the sampled tokens under the frozen initial policy (`ℓ^ref`).
    pub reference_logprobs: bool,
}

/// What [`ObjectiveConfig::build`] may need to know about the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildContext {
    /// The response length cap in tokens (Dr.GRPO's constant normalizer defaults to it).
    pub max_new_tokens: usize,
    /// Responses per prompt.
    pub group_size: usize,
    /// Number of training steps of the run.
    pub steps: usize,
}

/// The host-side inputs of the credit stage for one rollout batch of `n` responses.
#[derive(Debug, Clone, Copy)]
pub struct CreditInput<'a> {
    /// The training step, starting at 1.
    pub step: usize,
    /// Verifier score per response, `[n]`.
    pub rewards: &'a [f32],
    /// Whether each response is correct, `[n]`.
    pub correct: &'a [bool],
    /// Group id per response, `[n]`; responses to one prompt share it.
    pub group_ids: &'a [usize],
    /// Response-token mask `[n, t]`.
    pub mask: &'a TokenMatrix,
    /// `ℓ^old`, log-probs under the policy that generated the batch, `[n, t]`.
    pub old_logprobs: &'a TokenMatrix,
    /// `ℓ^ref`, when [`Needs::reference_logprobs`] was declared.
    pub ref_logprobs: Option<&'a TokenMatrix>,
}

/// The output of the credit stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    /// Per-token advantages `Â`, `[n, t]`, 0 at padded positions.
    pub advantages: TokenMatrix,
    /// Scalar diagnostics for the step's metrics line, e.g. `("grpo/adv_abs_mean", 0.4)`.
    pub metrics: Vec<(String, f64)>,
}

/// The tensor inputs of the loss stage for one micro-batch of `b` responses, `t` positions.
#[derive(Debug, Clone)]
pub struct LossInput {
    /// `ℓ`, current-policy log-probs `[b, t]`, differentiable.
    pub logprobs: Tensor<2>,
    /// `ℓ^old`, `[b, t]`, constant.
    pub old_logprobs: Tensor<2>,
    /// `ℓ^ref`, `[b, t]`, constant; present iff declared in [`Needs`].
    pub ref_logprobs: Option<Tensor<2>>,
    /// `Â`, `[b, t]`, constant.
    pub advantages: Tensor<2>,
    /// Response-token mask `[b, t]` (0/1).
    pub mask: Tensor<2>,
}

/// The unreduced output of the loss stage.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// The per-token loss `[b, t]` to minimize; the trainer multiplies by the mask and the
    /// aggregation coefficients, so its padded entries may hold anything finite.
    pub per_token: Tensor<2>,
    /// Per-token diagnostics `[b, t]` (no gradient needed), reported as their token-mean over the
    /// mini-batch under the given metric name, e.g. `actor/pg_clipfrac`.
    pub token_metrics: Vec<(&'static str, Tensor<2>)>,
}

/// An RLVR objective. See the module docs for the call order.
pub trait Objective: Send + Sync {
    /// The registry name.
    fn name(&self) -> &str;

    /// Extra inputs this objective needs. Default: none.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// How the trainer reduces [`LossTerms::per_token`].
    fn aggregation(&self) -> Aggregation;

    /// The credit stage: per-token advantages from rewards and constant log-probs.
    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit>;

    /// The loss stage: unreduced per-token loss terms for one micro-batch.
    fn loss(&self, input: LossInput) -> LossTerms;
}

/// An algorithm's configuration, deserialized by its registry name under the tag `algo`.
///
/// Each implementation is one struct with `#[serde(deny_unknown_fields)]` whose defaults equal
/// the reference implementation's, validated in [`ObjectiveConfig::build`].
#[typetag::serde(tag = "algo")]
pub trait ObjectiveConfig: Debug + Send + Sync {
    /// Validates the configuration and builds the objective.
    fn build(&self, context: &BuildContext) -> Result<Box<dyn Objective>>;
}
