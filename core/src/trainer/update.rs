//! The update stage: the gradient of one mini-batch, with memory bounded by settings rather
//! than by rows × tokens × vocabulary.
//!
//! Micro-batches are cut by a row count and a budget of padded tokens (rows sorted by length,
//! [`MicroBatching`]). For each micro-batch:
//! 1. the policy's trunk runs with an autodiff graph up to the head's input `h` `[b, t, d]`
//!    ([`Policy::response_hidden`]);
//! 2. without a graph, the output head runs over chunks of positions: the log-probs `ℓ`
//!    `[b, t]` and, for a distillation objective, the divergence `D` `[b, t]` between the
//!    student's and the teacher's distributions (the teacher's trunk runs once per micro-batch,
//!    its head per chunk: no `[b, t, v]` tensor is alive beyond one chunk);
//! 3. the objective's loss on `ℓ` and `D` as autodiff leaves, times the mini-batch-wide
//!    aggregation coefficients, gives `∂L/∂ℓ` and `∂L/∂D` (a vector-Jacobian step);
//! 4. with a graph, chunk by chunk again: `Σ ∂L/∂ℓ · ℓ_c + Σ ∂L/∂D · D_c` is back-propagated
//!    into the head's parameters and into `∂L/∂h` for the chunk's positions;
//! 5. `Σ h · ∂L/∂h` is back-propagated through the trunk.
//!
//! Steps 3-5 give the gradient of the one-graph loss exactly: the chain rule, cut at `ℓ`, `D`
//! and `h`. An objective whose loss couples a whole mini-batch (DisCO's log-mean-exp,
//! [`Needs::whole_mini_batch`](crate::objective::Needs)) runs step 2 for every micro-batch
//! first (or reuses `ℓ^old` when no optimizer step has happened since it was scored: then
//! `ℓ = ℓ^old`), step 3 once for the mini-batch, then steps 1, 4 and 5 per micro-batch with its
//! rows of `∂L/∂ℓ`: exact too, since those coefficients depend only on detached values.

use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::batch::TokenMatrix;
use crate::dist::{Collective, Single};
use crate::objective::{LossInput, Objective};
use crate::params;
use crate::policy::{NamedTensors, Policy, response_targets};
use crate::{Error, Result};

/// The per-response inputs of an update, for all `n` responses of a rollout batch.
#[derive(Clone, Copy)]
pub struct UpdateBatch<'b> {
    /// The context (prompt) of each response.
    pub contexts: &'b [Vec<u32>],
    /// The response tokens.
    pub responses: &'b [Vec<u32>],
    /// Loss mask `[n, t]`: the response mask or the credit stage's.
    pub mask: &'b TokenMatrix,
    /// `ℓ^old` `[n, t]`, unless `old_is_current`.
    pub old_logprobs: &'b TokenMatrix,
    /// `ℓ^old` was not scored: the weights are those that sampled the batch (an on-policy
    /// update), so the update uses its own log-probs, detached, as `ℓ^old`.
    pub old_is_current: bool,
    /// `ℓ^ref` `[n, t]`, if the objective needs it.
    pub ref_logprobs: Option<&'b TokenMatrix>,
    /// `Â` `[n, t]`.
    pub advantages: &'b TokenMatrix,
    /// The tokens of [`Aggregation::SplitTokenMean`](crate::Aggregation)'s second set
    /// `[n, t]`, if the credit stage selected any.
    pub selected: Option<&'b TokenMatrix>,
    /// The distillation teacher, if the objective declares one.
    pub teacher: Option<DistillTeacher<'b>>,
    /// Verifier scores `[n]`.
    pub rewards: &'b [f32],
    /// Group ids `[n]`.
    pub group_ids: &'b [usize],
}

/// The teacher whose distribution a distillation objective reads: computed per micro-batch on
/// the device, never stored for the whole batch.
#[derive(Clone, Copy)]
pub struct DistillTeacher<'b> {
    /// The weights that score it.
    pub policy: &'b dyn Policy,
    /// The teacher's context of every response, `[n]`.
    pub contexts: &'b [Vec<u32>],
}

/// How a set of rows is cut into micro-batches; changes memory, never the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MicroBatching {
    /// The most responses in one micro-batch.
    pub max_rows: usize,
    /// The most padded tokens (rows × (longest context + longest response)) in one
    /// micro-batch; 0: no token budget.
    pub max_tokens: usize,
}

impl MicroBatching {
    /// `rows` cut into micro-batches. Without a token budget: consecutive runs of `max_rows`.
    /// With one: rows sorted by length, longest first (ties in row order), packed while the
    /// padded size stays within the budget; a row longer than the budget goes alone.
    pub fn split(
        &self,
        rows: &[usize],
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
    ) -> Vec<Vec<usize>> {
        let length = |r: usize| contexts[r].len() + responses[r].len();
        self.split_sorted(rows, contexts, responses, |&a, &b| {
            length(b).cmp(&length(a))
        })
    }

    /// As [`MicroBatching::split`], but with a token budget rows that share a context stay
    /// together (sorted by context, then longest response first), so that a scoring pass runs
    /// each context once for its group.
    pub fn split_by_context(
        &self,
        rows: &[usize],
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
    ) -> Vec<Vec<usize>> {
        self.split_sorted(rows, contexts, responses, |&a, &b| {
            (contexts[b].len(), &contexts[a], responses[b].len()).cmp(&(
                contexts[a].len(),
                &contexts[b],
                responses[a].len(),
            ))
        })
    }

    /// Without a token budget, consecutive runs of `max_rows`; with one, `rows` sorted by
    /// `order` (stably) and packed in that order while the padded size stays within it.
    fn split_sorted(
        &self,
        rows: &[usize],
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        order: impl FnMut(&usize, &usize) -> std::cmp::Ordering,
    ) -> Vec<Vec<usize>> {
        let max_rows = self.max_rows.max(1);
        if self.max_tokens == 0 {
            return rows.chunks(max_rows).map(<[usize]>::to_vec).collect();
        }
        let mut sorted = rows.to_vec();
        sorted.sort_by(order);
        let mut out: Vec<Vec<usize>> = Vec::new();
        let (mut context_cols, mut response_cols) = (0, 0);
        for r in sorted {
            let c = context_cols.max(contexts[r].len());
            let t = response_cols.max(responses[r].len());
            let fits = out.last().is_some_and(|last| {
                last.len() < max_rows && (last.len() + 1) * (c + t) <= self.max_tokens
            });
            if fits {
                out.last_mut().expect("checked").push(r);
                (context_cols, response_cols) = (c, t);
            } else {
                out.push(vec![r]);
                (context_cols, response_cols) = (contexts[r].len(), responses[r].len());
            }
        }
        out
    }
}

/// The summed gradient of one mini-batch.
pub struct MiniBatchGradient {
    /// Parameter gradients of the aggregated loss (every parameter, zeros where not reached).
    pub grads: NamedTensors,
    /// The aggregated loss.
    pub loss: f64,
    /// Loss-mask tokens in the mini-batch.
    pub tokens: f64,
    /// Each loss part ([`LossTerms::parts`](crate::LossTerms)) reduced as the loss is.
    pub parts: Vec<(&'static str, f64)>,
    /// `Σ mask · metric` per token metric.
    pub token_metric_sums: Vec<(&'static str, f64)>,
    /// The objective's scalar metrics, averaged over its calls.
    pub metrics: Vec<(&'static str, f64)>,
    /// `Σ` over response tokens of the policy's entropy at the sampling temperature.
    pub entropy_sum: f64,
    /// Response tokens in the mini-batch.
    pub response_tokens: f64,
    /// Response tokens that went through a forward and backward pass (for throughput).
    pub trained_tokens: usize,
    /// With [`UpdateBatch::old_is_current`]: the log-probs `[rows, t]` the update computed, in
    /// the order of `rows` (they are `ℓ^old`); the skipped rows hold zeros.
    pub logprobs: Option<TokenMatrix>,
    /// Rows (batch indices) whose loss mask is all zero, which went through no pass (none
    /// when the objective's loss reads the whole mini-batch). The entropy and token counts
    /// above leave them out.
    pub skipped_rows: Vec<usize>,
}

/// What the micro-batches of a mini-batch add up.
#[derive(Default)]
struct Sums {
    grads: NamedTensors,
    loss: f64,
    parts: Vec<(&'static str, f64)>,
    token_metrics: Vec<(&'static str, f64)>,
    metrics: Vec<(&'static str, f64)>,
    calls: usize,
    /// With `old_is_current`: the log-probs of the mini-batch, `[rows, width]`.
    logprobs: Option<TokenMatrix>,
    entropy: f64,
    response_tokens: f64,
    trained_tokens: usize,
}

/// The gradient of the mini-batch `rows` of `batch` (see the module docs). `fresh`: no
/// optimizer step has happened since `batch.old_logprobs` was scored, so `ℓ = ℓ^old`.
pub fn mini_batch_gradient(
    policy: &dyn Policy,
    objective: &dyn Objective,
    batch: &UpdateBatch<'_>,
    rows: &[usize],
    micro: MicroBatching,
    temperature: f32,
    fresh: bool,
) -> Result<MiniBatchGradient> {
    mini_batch_gradient_share(
        policy,
        objective,
        batch,
        (rows, rows),
        &Single,
        micro,
        temperature,
        fresh,
        "gradients",
    )
}

/// As [`mini_batch_gradient`], on one rank of a data-parallel run: the aggregation
/// coefficients are those of the whole mini-batch `rows`, this rank runs the rows `mine` (a
/// subset) through its passes, and the gradient, the loss and every sum are added up over the
/// ranks (`what` names the exchange), so every rank returns what one process computing all of
/// `rows` returns. A loss over the whole mini-batch gets every rank's log-probs first (each
/// rank computes it on all rows, then back-propagates its own).
#[allow(clippy::too_many_arguments)]
pub fn mini_batch_gradient_share(
    policy: &dyn Policy,
    objective: &dyn Objective,
    batch: &UpdateBatch<'_>,
    (rows, mine): (&[usize], &[usize]),
    dist: &dyn Collective,
    micro: MicroBatching,
    temperature: f32,
    fresh: bool,
    what: &str,
) -> Result<MiniBatchGradient> {
    let needs = objective.needs();
    let teacher = if needs.student_logits {
        let probe = || Tensor::<3>::zeros([1, 1, 2], &policy.device().inner());
        if objective.token_divergence(probe(), probe()).is_none() {
            return Err(Error::Config(format!(
                "objective `{}` declares `student_logits` but does not implement `token_divergence`",
                objective.name()
            )));
        }
        Some(batch.teacher.ok_or_else(|| {
            Error::Config(format!(
                "objective `{}` reads a distillation divergence but no teacher pass declares `logits`",
                objective.name()
            ))
        })?)
    } else {
        None
    };
    let mini_mask = batch.mask.select_rows(rows);
    let mini_selected = batch.selected.map(|s| s.select_rows(rows));
    let coefficients = objective
        .aggregation()
        .token_coefficients(&mini_mask, mini_selected.as_ref());
    let local: HashMap<usize, usize> = rows.iter().enumerate().map(|(k, &r)| (r, k)).collect();
    // A row whose loss mask is all zero has coefficient 0 at every token: it adds nothing to
    // the loss or the gradient (SDPO's rows without a demonstration), so unless the loss couples
    // rows (`whole_mini_batch`) it runs through no forward and no backward pass.
    let (live, skipped_rows): (Vec<usize>, Vec<usize>) = mine.iter().partition(|&&r| {
        needs.whole_mini_batch
            || batch.mask.data[r * batch.mask.cols..(r + 1) * batch.mask.cols]
                .iter()
                .any(|&m| m != 0.0)
    });
    let micros = micro.split(&live, batch.contexts, batch.responses);
    let mut sums = Sums {
        logprobs: batch
            .old_is_current
            .then(|| TokenMatrix::zeros(rows.len(), width_of(batch, rows))),
        ..Sums::default()
    };
    let pick = |micro: &[usize]| Pick {
        rows: micro.to_vec(),
        local: micro.iter().map(|r| local[r]).collect(),
    };

    // A loss over the whole mini-batch: step 2 for every micro-batch, then step 3 once.
    let whole = if needs.whole_mini_batch {
        let all = Pick {
            rows: rows.to_vec(),
            local: (0..rows.len()).collect(),
        };
        let width = width_of(batch, rows);
        let (logprobs, divergence) = if fresh && teacher.is_none() && !batch.old_is_current {
            (
                narrow_cols(&batch.old_logprobs.select_rows(rows), width),
                None,
            )
        } else {
            let mut logprobs = TokenMatrix::zeros(rows.len(), width);
            let mut divergence = teacher.map(|_| TokenMatrix::zeros(rows.len(), width));
            for micro in &micros {
                let part = pick(micro);
                let responses = part.responses(batch);
                let hidden = policy.response_hidden(&part.contexts(batch), &responses, false);
                let teacher = teacher.map(|t| (t, teacher_hidden(t, &part, batch)));
                let (l, d) =
                    head_values(policy, objective, hidden, teacher, &responses, temperature);
                place_rows(&mut logprobs, &part.local, &TokenMatrix::from_tensor(l));
                if let (Some(all), Some(d)) = (divergence.as_mut(), d) {
                    place_rows(all, &part.local, &TokenMatrix::from_tensor(d));
                }
            }
            // Every rank's rows, so that each computes the loss of the whole mini-batch.
            let ours: Vec<usize> = mine.iter().map(|r| local[r]).collect();
            crate::dist::all_gather_rows(dist, &mut logprobs, &ours, what)?;
            if let Some(divergence) = divergence.as_mut() {
                crate::dist::all_gather_rows(dist, divergence, &ours, what)?;
            }
            (logprobs, divergence)
        };
        let device = policy.device().inner();
        Some(loss_gradient(
            policy,
            objective,
            batch,
            &all,
            &coefficients,
            logprobs.to_tensor(&device),
            divergence.map(|d| d.to_tensor(&device)),
            true,
            &mut sums,
        )?)
    } else {
        None
    };

    for micro in &micros {
        let part = pick(micro);
        let responses = part.responses(batch);
        let contexts = part.contexts(batch);
        // Step 1 (without a graph when the policy recomputes its trunk in step 5).
        let hidden = policy.response_hidden(&contexts, &responses, !policy.recomputes_trunk());
        let teacher = teacher.map(|t| (t, teacher_hidden(t, &part, batch)));
        let (g_logprobs, g_divergence) = match &whole {
            // This micro-batch's rows of the mini-batch's gradient.
            Some((g_logprobs, g_divergence)) => {
                let cols = hidden.dims()[1];
                let rows_of = |g: &Tensor<2>| {
                    let index = index_tensor(&part.local, &g.device());
                    g.clone()
                        .select(0, index)
                        .slice([0..part.rows.len(), 0..cols])
                };
                (
                    g_logprobs.as_ref().map(rows_of),
                    g_divergence.as_ref().map(rows_of),
                )
            }
            // Steps 2 and 3 for this micro-batch alone.
            None => {
                let (logprobs, divergence) = head_values(
                    policy,
                    objective,
                    hidden.clone().inner(),
                    teacher.clone(),
                    &responses,
                    temperature,
                );
                loss_gradient(
                    policy,
                    objective,
                    batch,
                    &part,
                    &coefficients,
                    logprobs,
                    divergence,
                    false,
                    &mut sums,
                )?
            }
        };
        // Steps 4 and 5.
        backpropagate(
            policy,
            objective,
            hidden,
            teacher,
            (&contexts, &responses),
            temperature,
            g_logprobs,
            g_divergence,
            &mut sums,
        );
    }

    let mut grads = params::fill_zeros(std::mem::take(&mut sums.grads), &policy.parameters());
    if dist.world() > 1 {
        dist.all_reduce_tensors(&mut grads, what)?;
        sums = reduce_sums(dist, sums, whole.is_some(), what)?;
    }
    for (_, sum) in &mut sums.metrics {
        *sum /= sums.calls.max(1) as f64;
    }
    Ok(MiniBatchGradient {
        grads,
        loss: sums.loss,
        parts: sums.parts,
        tokens: mini_mask.data.iter().map(|&m| m as f64).sum(),
        token_metric_sums: sums.token_metrics,
        metrics: sums.metrics,
        entropy_sum: sums.entropy,
        response_tokens: sums.response_tokens,
        trained_tokens: sums.trained_tokens,
        logprobs: sums.logprobs,
        skipped_rows,
    })
}

/// The ranks' sums added up, in rank order. With a loss over the whole mini-batch (`whole`)
/// every rank computed the same loss, parts and metrics from all rows: those are kept, and only
/// what each rank's own passes add (entropy, token counts) is summed.
fn reduce_sums(dist: &dyn Collective, sums: Sums, whole: bool, what: &str) -> Result<Sums> {
    // Values travel as their bits: JSON has no NaN or infinity, and a non-finite loss must
    // reach every rank (each then skips the optimizer step, as one process does).
    type Named = Vec<(String, u64)>;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Shared {
        loss: u64,
        parts: Named,
        token_metrics: Named,
        metrics: Named,
        calls: usize,
        entropy: u64,
        response_tokens: u64,
        trained_tokens: usize,
    }
    let owned = |named: &[(&'static str, f64)]| -> Named {
        named
            .iter()
            .map(|&(n, v)| (n.to_string(), v.to_bits()))
            .collect()
    };
    let mine = Shared {
        loss: sums.loss.to_bits(),
        parts: owned(&sums.parts),
        token_metrics: owned(&sums.token_metrics),
        metrics: owned(&sums.metrics),
        calls: sums.calls,
        entropy: sums.entropy.to_bits(),
        response_tokens: sums.response_tokens.to_bits(),
        trained_tokens: sums.trained_tokens,
    };
    let bytes = serde_json::to_vec(&mine).expect("sums serialize");
    let mut total = Sums {
        logprobs: sums.logprobs,
        ..Sums::default()
    };
    if whole {
        (
            total.loss,
            total.parts,
            total.token_metrics,
            total.metrics,
            total.calls,
        ) = (
            sums.loss,
            sums.parts,
            sums.token_metrics,
            sums.metrics,
            sums.calls,
        );
    }
    for (rank, part) in dist.all_gather_bytes(&bytes, what)?.iter().enumerate() {
        let part: Shared = serde_json::from_slice(part)
            .map_err(|e| Error::Dist(format!("`{what}`: rank {rank} sent unreadable sums: {e}")))?;
        let value = f64::from_bits;
        if !whole {
            total.loss += value(part.loss);
            for (name, v) in part.parts {
                add_to(&mut total.parts, crate::dist::intern(&name), value(v));
            }
            for (name, v) in part.token_metrics {
                add_to(
                    &mut total.token_metrics,
                    crate::dist::intern(&name),
                    value(v),
                );
            }
            for (name, v) in part.metrics {
                add_to(&mut total.metrics, crate::dist::intern(&name), value(v));
            }
            total.calls += part.calls;
        }
        total.entropy += value(part.entropy);
        total.response_tokens += value(part.response_tokens);
        total.trained_tokens += part.trained_tokens;
    }
    Ok(total)
}

/// Rows of a micro-batch: their indices in the batch and in the mini-batch.
struct Pick {
    rows: Vec<usize>,
    local: Vec<usize>,
}

impl Pick {
    fn contexts(&self, batch: &UpdateBatch<'_>) -> Vec<Vec<u32>> {
        self.rows
            .iter()
            .map(|&r| batch.contexts[r].clone())
            .collect()
    }

    fn responses(&self, batch: &UpdateBatch<'_>) -> Vec<Vec<u32>> {
        self.rows
            .iter()
            .map(|&r| batch.responses[r].clone())
            .collect()
    }
}

/// The teacher's head inputs `[b, t, d]` for the rows of `part`, without a graph.
fn teacher_hidden(teacher: DistillTeacher<'_>, part: &Pick, batch: &UpdateBatch<'_>) -> Tensor<3> {
    let contexts: Vec<Vec<u32>> = part
        .rows
        .iter()
        .map(|&r| teacher.contexts[r].clone())
        .collect();
    teacher
        .policy
        .response_hidden(&contexts, &part.responses(batch), false)
        .inner()
}

/// The longest response among `rows`.
fn width_of(batch: &UpdateBatch<'_>, rows: &[usize]) -> usize {
    rows.iter()
        .map(|&r| batch.responses[r].len())
        .max()
        .unwrap_or(0)
}

/// Columns of the output head per chunk for `rows` rows.
fn chunk_columns(policy: &dyn Policy, rows: usize) -> usize {
    (policy.head_chunk_positions() / rows.max(1)).max(1)
}

/// Step 2: `ℓ` `[b, t]` at `temperature` (0 at padding) and, with a teacher, the objective's
/// divergence `[b, t]`, from head inputs `hidden` `[b, t, d]`, head chunk by head chunk, without
/// a graph.
fn head_values(
    policy: &dyn Policy,
    objective: &dyn Objective,
    hidden: Tensor<3>,
    teacher: Option<(DistillTeacher<'_>, Tensor<3>)>,
    responses: &[Vec<u32>],
    temperature: f32,
) -> (Tensor<2>, Option<Tensor<2>>) {
    let hidden = hidden.inner();
    let [b, t, d] = hidden.dims();
    let device = hidden.device();
    if t == 0 {
        let empty = || Tensor::zeros([b, 0], &device);
        return (empty(), teacher.map(|_| empty()));
    }
    let (ids, mask) = response_targets(responses, t, &device);
    let step = chunk_columns(policy, b);
    let (mut logprobs, mut divergence) = (Vec::new(), Vec::new());
    for start in (0..t).step_by(step) {
        let end = (start + step).min(t);
        let logits = policy.head(hidden.clone().slice([0..b, start..end, 0..d]), false);
        let log_probs = log_softmax(logits.clone().div_scalar(temperature), 2);
        logprobs.push(sampled(log_probs, &ids, &mask, start..end));
        if let Some(teacher) = &teacher {
            divergence.push(divergence_at(objective, logits, teacher, start..end));
        }
    }
    let divergence = teacher.map(|_| Tensor::cat(divergence, 1));
    (Tensor::cat(logprobs, 1), divergence)
}

/// The log-probs `[b, c]` of the sampled tokens at positions `range`, from the chunk's
/// log-softmax `[b, c, v]`; 0, with a zero gradient, at padding.
fn sampled(
    log_probs: Tensor<3>,
    ids: &Tensor<3, Int>,
    mask: &Tensor<2>,
    range: std::ops::Range<usize>,
) -> Tensor<2> {
    let [b, c, _] = log_probs.dims();
    let chunk_ids = ids.clone().slice([0..b, range.clone(), 0..1]);
    log_probs
        .gather(2, chunk_ids)
        .reshape([b, c])
        .mul(mask.clone().slice([0..b, range]))
}

/// The objective's divergence `[b, c]` between the student's chunk `logits` `[b, c, v]` and the
/// teacher's logits at positions `range` (its head run on its hidden states, no graph).
fn divergence_at(
    objective: &dyn Objective,
    logits: Tensor<3>,
    (teacher, hidden): &(DistillTeacher<'_>, Tensor<3>),
    range: std::ops::Range<usize>,
) -> Tensor<2> {
    let [b, _, d] = hidden.dims();
    let teacher_logits = teacher
        .policy
        .head(hidden.clone().slice([0..b, range, 0..d]), false);
    objective
        .token_divergence(logits, teacher_logits)
        .expect("checked: the objective computes a divergence")
}

/// Step 3: the objective's loss on `logprobs` and `divergence` (`[b, t]`, inner tensors) as
/// leaves, reduced with the mini-batch's `coefficients`; adds the loss and the metrics to
/// `sums` and returns `∂L/∂ℓ` and `∂L/∂D` (`None`: the loss does not reach it).
#[allow(clippy::too_many_arguments)]
fn loss_gradient(
    policy: &dyn Policy,
    objective: &dyn Objective,
    batch: &UpdateBatch<'_>,
    part: &Pick,
    coefficients: &TokenMatrix,
    logprobs: Tensor<2>,
    divergence: Option<Tensor<2>>,
    whole: bool,
    sums: &mut Sums,
) -> Result<(Option<Tensor<2>>, Option<Tensor<2>>)> {
    let device = policy.device();
    let cols = logprobs.dims()[1];
    let take = |m: &TokenMatrix, rows: &[usize]| {
        narrow_cols(&m.select_rows(rows), cols).to_tensor(&device)
    };
    let old_logprobs = if batch.old_is_current {
        if let Some(all) = sums.logprobs.as_mut() {
            place_rows(
                all,
                &part.local,
                &TokenMatrix::from_tensor(logprobs.clone()),
            );
        }
        logprobs.clone().autodiff()
    } else {
        take(batch.old_logprobs, &part.rows)
    };
    let logprobs = logprobs.autodiff().require_grad();
    let divergence = divergence.map(|d| d.autodiff().require_grad());
    let mask = take(batch.mask, &part.rows);
    let terms = objective.loss(LossInput {
        logprobs: logprobs.clone(),
        old_logprobs,
        ref_logprobs: batch.ref_logprobs.map(|m| take(m, &part.rows)),
        advantages: take(batch.advantages, &part.rows),
        mask: mask.clone(),
        divergence: divergence.clone(),
        rewards: part.rows.iter().map(|&r| batch.rewards[r]).collect(),
        group_ids: part.rows.iter().map(|&r| batch.group_ids[r]).collect(),
    });
    let coefficients = take(coefficients, &part.local);
    for (name, values) in terms.parts {
        let value = values.detach().mul(coefficients.clone()).sum();
        add_to(&mut sums.parts, name, value.into_scalar::<f64>());
    }
    let mut loss = terms.per_token.mul(coefficients).sum();
    if let Some(scalar) = terms.scalar {
        if !whole {
            return Err(Error::Config(format!(
                "objective `{}` returned a scalar loss term without declaring `whole_mini_batch`: its value would depend on the micro-batch size",
                objective.name()
            )));
        }
        loss = loss.add(scalar);
    }
    sums.loss += loss.clone().into_scalar::<f64>();
    for (name, values) in terms.token_metrics {
        let sum = values.detach().mul(mask.clone()).sum().into_scalar::<f64>();
        add_to(&mut sums.token_metrics, name, sum);
    }
    for (name, value) in terms.metrics {
        add_to(&mut sums.metrics, name, value);
    }
    sums.calls += 1;
    if !loss.is_tracked() {
        return Ok((None, None));
    }
    let grads = loss.backward();
    Ok((
        logprobs.grad(&grads),
        divergence.and_then(|d| d.grad(&grads)),
    ))
}

/// Steps 4 and 5: back-propagates `Σ g_ℓ · ℓ + Σ g_D · D` through the head, chunk by chunk,
/// then through the trunk from `hidden` (`[b, t, d]`, with its graph unless the policy
/// recomputes its trunk) for the rows `(contexts, responses)`; adds the parameter gradients,
/// the entropy and the token counts to `sums`.
#[allow(clippy::too_many_arguments)]
fn backpropagate(
    policy: &dyn Policy,
    objective: &dyn Objective,
    hidden: Tensor<3>,
    teacher: Option<(DistillTeacher<'_>, Tensor<3>)>,
    (contexts, responses): (&[Vec<u32>], &[Vec<u32>]),
    temperature: f32,
    g_logprobs: Option<Tensor<2>>,
    g_divergence: Option<Tensor<2>>,
    sums: &mut Sums,
) {
    let [b, t, d] = hidden.dims();
    sums.trained_tokens += responses.iter().map(Vec::len).sum::<usize>();
    if t == 0 {
        return;
    }
    let base = hidden.clone().inner();
    let device = base.device();
    let (ids, mask) = response_targets(responses, t, &device);
    sums.response_tokens += mask.clone().sum().into_scalar::<f64>();
    let step = chunk_columns(policy, b);
    let mut d_hidden = Vec::new();
    for start in (0..t).step_by(step) {
        let end = (start + step).min(t);
        let chunk_mask = mask.clone().slice([0..b, start..end]);
        let leaf = base
            .clone()
            .slice([0..b, start..end, 0..d])
            .autodiff()
            .require_grad();
        let logits = policy.head(leaf.clone(), true);
        let log_probs = log_softmax(logits.clone().div_scalar(temperature), 2);
        // The entropy at the sampling temperature, from the log-softmax at hand (its values,
        // without the graph).
        let lp = log_probs.clone().inner();
        let entropy = lp
            .clone()
            .exp()
            .mul(lp)
            .sum_dim(2)
            .neg()
            .reshape([b, end - start]);
        sums.entropy += entropy.mul(chunk_mask.clone()).sum().into_scalar::<f64>();

        let mut surrogate: Option<Tensor<1>> = None;
        let mut add = |term: Tensor<1>| {
            surrogate = Some(match surrogate.take() {
                None => term,
                Some(s) => s.add(term),
            });
        };
        if let Some(g) = &g_logprobs {
            let logprobs = sampled(log_probs, &ids, &mask, start..end);
            add(logprobs.mul(g.clone().slice([0..b, start..end])).sum());
        }
        if let (Some(g), Some(teacher)) = (&g_divergence, &teacher) {
            let divergence = divergence_at(objective, logits, teacher, start..end);
            add(divergence.mul(g.clone().slice([0..b, start..end])).sum());
        }
        let grad = match surrogate.filter(Tensor::is_tracked) {
            Some(s) => {
                let grads = s.backward();
                params::accumulate(&mut sums.grads, policy.gradients(&grads));
                leaf.grad(&grads)
            }
            None => None,
        };
        d_hidden.push(grad.unwrap_or_else(|| Tensor::zeros([b, end - start, d], &device)));
    }
    let d_hidden = Tensor::cat(d_hidden, 1);
    params::accumulate(
        &mut sums.grads,
        policy.trunk_gradients(contexts, responses, hidden, d_hidden),
    );
}

/// Teacher-forced log-probs `[n, t]` of all responses without an autodiff graph, in
/// micro-batches cut as `micro` says, a group's rows together (a policy may then run their
/// shared context once).
pub fn score_rows(
    policy: &dyn Policy,
    contexts: &[Vec<u32>],
    responses: &[Vec<u32>],
    temperature: f32,
    micro: MicroBatching,
) -> TokenMatrix {
    let cols = responses.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = TokenMatrix::zeros(responses.len(), cols);
    let all: Vec<usize> = (0..responses.len()).collect();
    for rows in micro.split_by_context(&all, contexts, responses) {
        let c: Vec<Vec<u32>> = rows.iter().map(|&r| contexts[r].clone()).collect();
        let r: Vec<Vec<u32>> = rows.iter().map(|&r| responses[r].clone()).collect();
        let logprobs = TokenMatrix::from_tensor(policy.token_logprobs(&c, &r, temperature, false));
        place_rows(&mut out, &rows, &logprobs);
    }
    out
}

/// Writes row `k` of `part` into row `rows[k]` of `into` (columns beyond `part`'s stay).
pub(super) fn place_rows(into: &mut TokenMatrix, rows: &[usize], part: &TokenMatrix) {
    let cols = part.cols.min(into.cols);
    for (k, &r) in rows.iter().enumerate() {
        for t in 0..cols {
            into.set(r, t, part.get(k, t));
        }
    }
}

/// `indices` as a `[len]` index tensor.
fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(
        burn::tensor::TensorData::new(values, [indices.len()]),
        device,
    )
}

/// The first `cols` columns of `m` (`cols` ≤ `m.cols`), or `m` padded with zeros to `cols`.
pub(super) fn narrow_cols(m: &TokenMatrix, cols: usize) -> TokenMatrix {
    TokenMatrix::from_rows((0..m.rows).map(|r| &m.row(r)[..cols.min(m.cols)]), cols)
}

/// Adds `value` to the entry `name` of `sums`, creating it if needed.
pub(super) fn add_to(sums: &mut Vec<(&'static str, f64)>, name: &'static str, value: f64) {
    match sums.iter_mut().find(|(n, _)| *n == name) {
        Some((_, s)) => *s += value,
        None => sums.push((name, value)),
    }
}
