//! The `Objective` trait: what an RLVR algorithm is, as far as the trainer is concerned.
//!
//! Lifecycle, per training step (the trainer calls these in this order):
//! 1. [`Objective::needs`] once, to know which extra passes to run (reference log-probs,
//!    teacher passes with their contexts and weights, student logits, dynamic sampling);
//! 2. [`Objective::keep_group`] per sampled group, when dynamic sampling is declared;
//! 3. [`Objective::teacher_rows`] once per group: each response's teacher context under each
//!    teacher pass, as token ids (see [`crate::teacher`]), and whether to score it at all;
//! 4. [`Objective::credit`] once per rollout batch, on plain host numbers: per-token
//!    advantages (and optionally a loss mask);
//! 5. [`Objective::token_divergence`], for a distillation objective, on chunks of positions:
//!    the per-token divergence between the student's and the teacher's distributions;
//! 6. [`Objective::loss`] once per micro-batch, on `[rows, tokens]` tensors: *unreduced*
//!    per-token loss terms.
//!
//! The trainer reduces those terms with [`Objective::aggregation`] over the whole mini-batch
//! (see [`crate::aggregation`]); an objective never divides by a token count itself. The one
//! exception is a term over groups that cannot be cut into micro-batches (DisCO's
//! log-mean-exp): an objective that declares [`Needs::whole_mini_batch`] sees a whole
//! mini-batch per call and may return [`LossTerms::scalar`].
//!
//! The loss stage never sees a `[rows, tokens, vocabulary]` tensor: the trainer takes the
//! gradient of the loss with respect to its `[rows, tokens]` inputs and carries it through the
//! policy's output head chunk by chunk (see [`crate::trainer::update`]).

use std::fmt::Debug;

use burn::prelude::*;

use crate::aggregation::Aggregation;
use crate::batch::TokenMatrix;
use crate::teacher::{TeacherGroup, TeacherPass, TeacherRow, TeacherScores, TeacherWeights};
use crate::{Error, Result};

/// What happens when dynamic sampling cannot fill the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// Stop the run with an error that says what to change.
    Error,
    /// Train on the groups that were kept and report the shortfall in the metrics.
    Log,
}

/// Dynamic sampling (DAPO): groups that [`Objective::keep_group`] rejects are dropped and more
/// prompts are sampled until the batch holds `prompts_per_step` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicSampling {
    /// The most generation rounds per step (each round samples `prompts_per_step` prompts).
    pub max_rounds: usize,
    /// What to do when the rounds run out.
    pub on_shortfall: Shortfall,
}

/// The extra inputs and batch handling an objective asks the trainer for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    /// Log-probs of the sampled tokens under the frozen initial policy (`ℓ^ref`).
    pub reference_logprobs: bool,
    /// Teacher passes, run without an autodiff graph after verification; their outputs reach
    /// [`CreditInput::teachers`] in this order.
    pub teachers: Vec<TeacherPass>,
    /// The loss reads a per-token divergence between the student's and the distillation
    /// teacher's distributions ([`LossInput::divergence`], from
    /// [`Objective::token_divergence`]); needs a teacher pass with [`TeacherPass::logits`].
    pub student_logits: bool,
    /// Drop groups and sample more prompts (DAPO).
    pub dynamic_sampling: Option<DynamicSampling>,
    /// The credit stage does not read `ℓ^old`. When the update is on-policy (one epoch of one
    /// mini-batch: no optimizer step before it), the trainer then skips the `ℓ^old` pass and
    /// the update uses its own log-probs, detached, as `ℓ^old` (verl's `on_policy` shortcut;
    /// the ratio is exactly 1); [`CreditInput::old_logprobs`] is zeros.
    pub credit_without_old_logprobs: bool,
    /// Each [`Objective::loss`] call sees a whole mini-batch (terms over groups that do not
    /// decompose into micro-batches). The trainer still back-propagates through the policy in
    /// micro-batches: it scores the mini-batch without a graph first, so the loss's gradient
    /// with respect to the log-probs is exact before any micro-batch runs.
    pub whole_mini_batch: bool,
}

impl Needs {
    /// Whether the trainer keeps a frozen copy of the initial weights (for `ℓ^ref` or an
    /// `Initial` teacher).
    pub fn keeps_initial(&self) -> bool {
        self.reference_logprobs
            || self
                .teachers
                .iter()
                .any(|t| t.weights == TeacherWeights::Initial)
    }

    /// Whether the trainer keeps an EMA copy of the weights (an `Ema` teacher).
    pub fn keeps_ema(&self) -> bool {
        self.teachers
            .iter()
            .any(|t| matches!(t.weights, TeacherWeights::Ema { .. }))
    }

    /// Whether the trainer keeps a periodically refreshed copy of the weights (a `Snapshot`
    /// teacher).
    pub fn keeps_snapshot(&self) -> bool {
        self.teachers
            .iter()
            .any(|t| matches!(t.weights, TeacherWeights::Snapshot { .. }))
    }

    /// Copies of the weights the trainer keeps besides the policy (for memory estimates).
    pub fn snapshots(&self) -> usize {
        usize::from(self.keeps_initial())
            + usize::from(self.keeps_ema())
            + usize::from(self.keeps_snapshot())
    }
}

/// What [`ObjectiveConfig::build`] may need to know about the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildContext {
    /// The response length cap in tokens (Dr.GRPO's constant normalizer and DAPO's overlong
    /// punishment default to it).
    pub max_new_tokens: usize,
    /// Responses per prompt.
    pub group_size: usize,
    /// Number of training steps of the run.
    pub steps: usize,
    /// The rollout's sampling temperature (1 for evaluation): the temperature of every
    /// log-prob the trainer computes.
    pub temperature: f32,
    /// Built for [`crate::probe`] (`zoo objective eval`): the objective's loss on given
    /// numbers, without reward shaping or group filtering.
    pub evaluation: bool,
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
    /// Response-token mask `[n, t]`; row sums are the response lengths.
    pub mask: &'a TokenMatrix,
    /// `ℓ^old`, log-probs under the policy that generated the batch, `[n, t]`; zeros when the
    /// objective declared [`Needs::credit_without_old_logprobs`] and the update is on-policy.
    pub old_logprobs: &'a TokenMatrix,
    /// `ℓ^ref`, when [`Needs::reference_logprobs`] was declared.
    pub ref_logprobs: Option<&'a TokenMatrix>,
    /// One entry per declared [`TeacherPass`], in order.
    pub teachers: &'a [TeacherScores],
}

/// The output of the credit stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credit {
    /// Per-token advantages `Â`, `[n, t]`, 0 at padded positions.
    pub advantages: TokenMatrix,
    /// The sequence-level advantage of each response, `[n]` (GRPO's `A_i`, before any
    /// per-token re-weighting), as rollout dumps report it; `None` for an objective without
    /// one (DisCO, OPSD, SDPO).
    pub sequence_advantages: Option<Vec<f32>>,
    /// A loss mask `[n, t]` that replaces the response mask in aggregation and in the loss
    /// stage (SDPO's self-distillation mask; RLCSD's rows without a hint pair); `None` keeps
    /// the response mask.
    pub mask: Option<TokenMatrix>,
    /// The tokens of the second set of [`Aggregation::SplitTokenMean`], `[n, t]` of 0/1
    /// (RLCSD's modulated tokens); `None`: none.
    pub selected: Option<TokenMatrix>,
    /// Scalar diagnostics for the step's metrics line, e.g. `("grpo/adv_abs_mean", 0.4)`.
    pub metrics: Vec<(String, f64)>,
    /// A mini-batch whose loss mask holds no token takes no optimizer step (RLCSD, whose
    /// reference drops the responses without a hint pair from the batch before cutting it, and
    /// skips the actor update when none is left). A zero gradient would still move AdamW's
    /// moments and, through them and the weight decay, the weights.
    pub skip_empty_updates: bool,
}

/// The tensor inputs of the loss stage for one micro-batch of `b` responses, `t` positions.
#[derive(Debug, Clone)]
pub struct LossInput {
    /// `ℓ`, current-policy log-probs `[b, t]` at the sampling temperature, differentiable.
    pub logprobs: Tensor<2>,
    /// `ℓ^old`, `[b, t]`, constant.
    pub old_logprobs: Tensor<2>,
    /// `ℓ^ref`, `[b, t]`, constant; present iff declared in [`Needs`].
    pub ref_logprobs: Option<Tensor<2>>,
    /// `Â`, `[b, t]`, constant.
    pub advantages: Tensor<2>,
    /// Loss mask `[b, t]` (0/1): the response mask, or the credit stage's mask.
    pub mask: Tensor<2>,
    /// The per-token divergence `[b, t]` of [`Objective::token_divergence`], differentiable;
    /// iff [`Needs::student_logits`].
    pub divergence: Option<Tensor<2>>,
    /// Verifier score per response, `[b]`.
    pub rewards: Vec<f32>,
    /// Group id per response, `[b]`.
    pub group_ids: Vec<usize>,
}

/// The unreduced output of the loss stage.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// The per-token loss `[b, t]` to minimize; the trainer multiplies by the mask and the
    /// aggregation coefficients, so its padded entries may hold anything finite.
    pub per_token: Tensor<2>,
    /// A term `[1]` added to the aggregated loss as it is; only for objectives that declare
    /// [`Needs::whole_mini_batch`] (the trainer refuses it otherwise).
    pub scalar: Option<Tensor<1>>,
    /// Named parts of the loss `[b, t]` (no gradient needed), reported reduced exactly as
    /// `per_token` is (the aggregation's coefficients over the mini-batch, then the mean over
    /// optimizer steps): `actor/pg_loss` for the policy-gradient term, `actor/kl_loss` for a KL
    /// penalty before its coefficient. The trainer reports the whole loss as `actor/loss`.
    pub parts: Vec<(&'static str, Tensor<2>)>,
    /// Per-token diagnostics `[b, t]` (no gradient needed), reported as their token-mean over the
    /// mini-batch under the given metric name, e.g. `actor/pg_clipfrac`.
    pub token_metrics: Vec<(&'static str, Tensor<2>)>,
    /// Scalar diagnostics of this call, averaged over the step's calls, e.g. `disco/kl`.
    pub metrics: Vec<(&'static str, f64)>,
}

impl LossTerms {
    /// Terms with only a per-token loss.
    pub fn per_token(per_token: Tensor<2>) -> Self {
        Self {
            per_token,
            scalar: None,
            parts: Vec::new(),
            token_metrics: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

/// An RLVR objective. See the module docs for the call order.
pub trait Objective: Send + Sync {
    /// The registry name.
    fn name(&self) -> &str;

    /// Extra inputs this objective needs. Default: none.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// With [`Needs::dynamic_sampling`]: whether a sampled group (its rewards and correctness
    /// bits) is kept. Default: every group.
    fn keep_group(&self, _rewards: &[f32], _correct: &[bool]) -> bool {
        true
    }

    /// The teacher context of each response of `group` under each declared teacher pass at
    /// training step `step`: `rows[pass][response]`, passes in the order of
    /// [`Needs::teachers`]. Each row holds the context ids (built with the group's tools, see
    /// [`crate::teacher`]), the privileged text they add, whether the row holds it and whether
    /// the pass scores it at all. This is where an objective's rule for its teachers lives
    /// (CEPO's wrong answer, SDPO's successful group-mate, RLCSD's wrong siblings), and where it
    /// skips rows whose teacher log-probs it would not read (CEPO and RLSD: rows with advantage
    /// 0, every row once λ = 0). Called once per group, so the passes can share their work.
    /// Default: an error, for an objective that declares teacher passes.
    fn teacher_rows(&self, _step: usize, group: &TeacherGroup<'_>) -> Result<Vec<Vec<TeacherRow>>> {
        let _ = group;
        Err(Error::Config(format!(
            "objective `{}` declares teacher passes but does not implement `teacher_rows`\nhint: implement `Objective::teacher_rows` to build each response's teacher context",
            self.name()
        )))
    }

    /// How the trainer reduces [`LossTerms::per_token`].
    fn aggregation(&self) -> Aggregation;

    /// The credit stage: per-token advantages from rewards and constant log-probs.
    fn credit(&self, input: &CreditInput<'_>) -> Result<Credit>;

    /// With [`Needs::student_logits`]: the divergence at each position between the student's
    /// raw logits `[b, c, v]` (temperature 1, differentiable) and the distillation teacher's
    /// `[b, c, v]` (constant), as `[b, c]`. The trainer calls it on chunks of positions, so it
    /// must treat positions independently. Default: `None` (no distillation term).
    fn token_divergence(&self, _student: Tensor<3>, _teacher: Tensor<3>) -> Option<Tensor<2>> {
        None
    }

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

/// Per-group index lists of `group_ids`, in order of first appearance.
pub fn groups(group_ids: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, &g) in group_ids.iter().enumerate() {
        match order.iter().position(|&o| o == g) {
            Some(k) => members[k].push(i),
            None => {
                order.push(g);
                members.push(vec![i]);
            }
        }
    }
    members
}
