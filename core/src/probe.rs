//! Evaluating an objective on given numbers, outside the trainer: the engine of
//! `zoo objective eval` and of the objectives' parity and property tests.
//!
//! [`probe`] runs the same two stages the trainer runs ([`Objective::credit`], then
//! [`Objective::loss`] on the whole batch as one mini-batch, reduced with the objective's
//! aggregation) and returns the loss, its gradient with respect to the differentiable input
//! (`logprobs`, or `student_logits` for distillation objectives), the per-token advantages
//! and the metrics.
//!
//! Teacher passes are fed from the batch by their [`ProbeInput`]: `teacher_logprobs`,
//! `teacher_pos_logprobs` (or `teacher_logprobs` when absent), or a slot of
//! `teacher_neg_logprobs`; a pass that keeps logits reads `teacher_logits`. A row holds its
//! hint where `hint_mask` (or, for a negative slot, `teacher_neg_valid`) says so, and every row
//! without them (fold SDPO's self-distillation mask into `mask`).

use std::collections::BTreeMap;

use burn::prelude::*;

use crate::batch::{LogitArray, TokenMatrix};
use crate::objective::{CreditInput, LossInput, Objective};
use crate::teacher::{ProbeInput, TeacherScores};
use crate::{Error, Result};

/// The numbers of one batch of `n` responses padded to `t` positions.
#[derive(Debug, Clone, Default)]
pub struct ProbeBatch {
    /// Scores `[n]`.
    pub rewards: Vec<f32>,
    /// Group ids `[n]`, in any order.
    pub group_ids: Vec<usize>,
    /// Response mask `[n, t]` of 0/1.
    pub mask: TokenMatrix,
    /// `ℓ` `[n, t]`: the differentiable input of policy-gradient objectives.
    pub logprobs: Option<TokenMatrix>,
    /// `ℓ^old` `[n, t]`.
    pub old_logprobs: Option<TokenMatrix>,
    /// `ℓ^ref` `[n, t]`.
    pub ref_logprobs: Option<TokenMatrix>,
    /// `ℓ^T` `[n, t]` (RLSD).
    pub teacher_logprobs: Option<TokenMatrix>,
    /// `ℓ^{T+}` `[n, t]` (CEPO).
    pub teacher_pos_logprobs: Option<TokenMatrix>,
    /// `ℓ^{T−}`: `K` slots of `[n, t]` (CEPO: one; RLCSD: one per wrong-hint teacher).
    pub teacher_neg_logprobs: Option<Vec<TokenMatrix>>,
    /// Whether slot `k` of `teacher_neg_logprobs` is real for row `i`, `[n][K]`; absent: all.
    pub teacher_neg_valid: Option<Vec<Vec<bool>>>,
    /// Whether row `i` has its teacher hint, `[n]`; absent: all rows.
    pub hint_mask: Option<Vec<bool>>,
    /// Student logits `[n, t, v]`: the differentiable input of distillation objectives.
    pub student_logits: Option<LogitArray>,
    /// Teacher logits `[n, t, v]`.
    pub teacher_logits: Option<LogitArray>,
}

/// What [`probe`] returns.
#[derive(Debug, Clone)]
pub struct ProbeOutput {
    /// The aggregated loss.
    pub loss: f64,
    /// `d loss / d input`, flattened row-major.
    pub grad: Vec<f32>,
    /// The shape of `grad`: `[n, t]` or `[n, t, v]`.
    pub grad_shape: Vec<usize>,
    /// The credit stage's per-token advantages `[n, t]`.
    pub advantages: TokenMatrix,
    /// Credit metrics, token-means of the token metrics, and the loss metrics.
    pub metrics: BTreeMap<String, f64>,
}

fn check_matrix(name: &str, m: &TokenMatrix, rows: usize, cols: usize) -> Result<()> {
    if m.rows != rows || m.cols != cols || m.data.len() != rows * cols {
        return Err(Error::Input(format!(
            "`batch.{name}` is [{}][{}] but `batch.mask` is [{rows}][{cols}]\nhint: give every per-token array the shape of `mask`",
            m.rows, m.cols
        )));
    }
    check_finite(name, &m.data)
}

fn check_logits(name: &str, l: &LogitArray, rows: usize, cols: usize) -> Result<()> {
    if l.rows != rows || l.cols != cols || l.data.len() != rows * cols * l.vocab {
        return Err(Error::Input(format!(
            "`batch.{name}` is [{}][{}][{}] but `batch.mask` is [{rows}][{cols}]\nhint: give logits the shape [N][T][V] with [N][T] that of `mask`",
            l.rows, l.cols, l.vocab
        )));
    }
    if l.vocab == 0 {
        return Err(Error::Input(format!(
            "`batch.{name}` has an empty vocabulary"
        )));
    }
    check_finite(name, &l.data)
}

fn check_finite(name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(k) => Err(Error::Input(format!(
            "`batch.{name}` holds a non-finite number ({}) at flat index {k}",
            values[k]
        ))),
        None => Ok(()),
    }
}

fn required<'a, T>(value: Option<&'a T>, name: &str, algo: &str) -> Result<&'a T> {
    value.ok_or_else(|| {
        Error::Input(format!(
            "`batch.{name}` is missing; `{algo}` needs it with this config"
        ))
    })
}

/// Evaluates `objective` on `batch` at training step `step` (which sets scheduled values such
/// as CEPO's λ). `device` must have autodiff enabled.
pub fn probe(
    objective: &dyn Objective,
    batch: &ProbeBatch,
    step: usize,
    device: &Device,
) -> Result<ProbeOutput> {
    let algo = objective.name();
    let needs = objective.needs();
    let (n, t) = (batch.mask.rows, batch.mask.cols);
    check_matrix("mask", &batch.mask, n, t)?;
    if let Some(k) = batch.mask.data.iter().position(|&m| m != 0.0 && m != 1.0) {
        return Err(Error::Input(format!(
            "`batch.mask` holds {} at flat index {k}; a mask holds only 0 and 1",
            batch.mask.data[k]
        )));
    }
    if batch.rewards.len() != n || batch.group_ids.len() != n {
        return Err(Error::Input(format!(
            "`batch.rewards` has {} entries and `batch.group_ids` {}, but `batch.mask` has {n} rows\nhint: give one reward and one group id per response",
            batch.rewards.len(),
            batch.group_ids.len()
        )));
    }
    check_finite("rewards", &batch.rewards)?;
    let matrices = [
        ("logprobs", &batch.logprobs),
        ("old_logprobs", &batch.old_logprobs),
        ("ref_logprobs", &batch.ref_logprobs),
        ("teacher_logprobs", &batch.teacher_logprobs),
        ("teacher_pos_logprobs", &batch.teacher_pos_logprobs),
    ];
    for (name, m) in matrices {
        if let Some(m) = m {
            check_matrix(name, m, n, t)?;
        }
    }
    let negatives = batch.teacher_neg_logprobs.as_deref().unwrap_or_default();
    for m in negatives {
        check_matrix("teacher_neg_logprobs", m, n, t)?;
    }
    if let Some(valid) = &batch.teacher_neg_valid
        && (valid.len() != n || valid.iter().any(|row| row.len() != negatives.len()))
    {
        return Err(Error::Input(format!(
            "`batch.teacher_neg_valid` must be [{n}][{}]: one flag per row and slot of `teacher_neg_logprobs`",
            negatives.len()
        )));
    }
    if batch.hint_mask.as_ref().is_some_and(|h| h.len() != n) {
        return Err(Error::Input(format!(
            "`batch.hint_mask` must have one entry per row ({n})"
        )));
    }
    for (name, l) in [
        ("student_logits", &batch.student_logits),
        ("teacher_logits", &batch.teacher_logits),
    ] {
        if let Some(l) = l {
            check_logits(name, l, n, t)?;
        }
    }
    if let (Some(s), Some(t)) = (&batch.student_logits, &batch.teacher_logits)
        && s.vocab != t.vocab
    {
        return Err(Error::Input(format!(
            "`batch.student_logits` has {} logits per position but `batch.teacher_logits` has {}\nhint: give both over the same vocabulary",
            s.vocab, t.vocab
        )));
    }

    let zeros = TokenMatrix::zeros(n, t);
    // The differentiable input, and ℓ / ℓ^old as the loss stage sees them.
    let (logprobs, old_logprobs) = if needs.student_logits {
        required(batch.student_logits.as_ref(), "student_logits", algo)?;
        // Without sampled tokens, ℓ comes from the batch when given (SDPO's importance weight
        // is a stop-gradient); without `old_logprobs` the weight is exactly 1.
        let logprobs = batch.logprobs.clone().unwrap_or_else(|| zeros.clone());
        let old = batch
            .old_logprobs
            .clone()
            .unwrap_or_else(|| logprobs.clone());
        (logprobs, old)
    } else {
        let logprobs = required(batch.logprobs.as_ref(), "logprobs", algo)?.clone();
        let old = required(batch.old_logprobs.as_ref(), "old_logprobs", algo)?.clone();
        (logprobs, old)
    };
    let ref_logprobs = if needs.reference_logprobs {
        Some(required(batch.ref_logprobs.as_ref(), "ref_logprobs", algo)?.clone())
    } else {
        None
    };
    let mut teachers = Vec::new();
    let hinted = batch.hint_mask.clone().unwrap_or_else(|| vec![true; n]);
    for pass in &needs.teachers {
        let (name, given, has_hint) = match pass.probe_input {
            ProbeInput::Negative { slot } => (
                "teacher_neg_logprobs",
                negatives.get(slot),
                match &batch.teacher_neg_valid {
                    Some(valid) if slot < negatives.len() => {
                        valid.iter().map(|row| row[slot]).collect()
                    }
                    // A slot past the given ones holds no hint for any row.
                    _ => vec![slot < negatives.len(); n],
                },
            ),
            ProbeInput::Positive => match &batch.teacher_pos_logprobs {
                Some(m) => ("teacher_pos_logprobs", Some(m), hinted.clone()),
                None => (
                    "teacher_logprobs",
                    batch.teacher_logprobs.as_ref(),
                    hinted.clone(),
                ),
            },
            ProbeInput::Teacher => (
                "teacher_logprobs",
                batch.teacher_logprobs.as_ref(),
                hinted.clone(),
            ),
        };
        if pass.logits {
            required(batch.teacher_logits.as_ref(), "teacher_logits", algo)?;
        }
        let logprobs = match (given, pass.logits) {
            (Some(m), _) => m.clone(),
            (None, true) => zeros.clone(),
            // Slots past the `K` given: no row reads them.
            (None, false)
                if !negatives.is_empty()
                    && matches!(pass.probe_input, ProbeInput::Negative { .. }) =>
            {
                zeros.clone()
            }
            (None, false) => required(None::<&TokenMatrix>, name, algo)?.clone(),
        };
        teachers.push(TeacherScores {
            logprobs,
            // A distillation pass scores every row.
            scored: if pass.logits {
                vec![true; n]
            } else {
                has_hint.clone()
            },
            has_hint,
        });
    }
    let correct: Vec<bool> = batch.rewards.iter().map(|&r| r >= 1.0).collect();
    let credit = objective.credit(&CreditInput {
        step,
        rewards: &batch.rewards,
        correct: &correct,
        group_ids: &batch.group_ids,
        mask: &batch.mask,
        old_logprobs: &old_logprobs,
        ref_logprobs: ref_logprobs.as_ref(),
        teachers: &teachers,
    })?;
    let loss_mask = credit.mask.clone().unwrap_or_else(|| batch.mask.clone());

    let student = batch
        .student_logits
        .as_ref()
        .filter(|_| needs.student_logits)
        .map(|l| l.to_tensor(device).require_grad());
    let logprob_leaf = logprobs.to_tensor(device);
    let logprob_leaf = if student.is_none() {
        logprob_leaf.require_grad()
    } else {
        logprob_leaf
    };
    let mask_tensor = loss_mask.to_tensor(device);
    // The divergence as the trainer computes it, here over all positions at once.
    let divergence = match (&student, &batch.teacher_logits) {
        (Some(student), Some(teacher)) => Some(
            objective
                .token_divergence(student.clone(), teacher.to_tensor(device))
                .ok_or_else(|| {
                    Error::Input(format!(
                        "`{algo}` declares student logits but computes no divergence from them"
                    ))
                })?,
        ),
        _ => None,
    };
    let terms = objective.loss(LossInput {
        logprobs: logprob_leaf.clone(),
        old_logprobs: old_logprobs.to_tensor(device),
        ref_logprobs: ref_logprobs.map(|m| m.to_tensor(device)),
        advantages: credit.advantages.to_tensor(device),
        mask: mask_tensor.clone(),
        divergence,
        rewards: batch.rewards.clone(),
        group_ids: batch.group_ids.clone(),
    });
    let coefficients = objective
        .aggregation()
        .token_coefficients(&loss_mask, credit.selected.as_ref());
    let coefficients = coefficients.to_tensor(device);
    let parts: Vec<(&str, f64)> = terms
        .parts
        .into_iter()
        .map(|(name, values)| {
            let value = values.detach().mul(coefficients.clone()).sum();
            (name, value.into_scalar::<f64>())
        })
        .collect();
    let mut loss = terms.per_token.mul(coefficients).sum();
    if let Some(scalar) = terms.scalar {
        loss = loss.add(scalar);
    }
    let loss_value = loss.clone().into_scalar::<f64>();
    if !loss_value.is_finite() {
        return Err(Error::Input(format!(
            "`{algo}` gives a non-finite loss ({loss_value}) on this batch"
        )));
    }
    let grads = loss.backward();
    // A leaf the loss does not reach has no gradient entry: its gradient is zero.
    fn leaf_grad<const D: usize>(
        leaf: &Tensor<D>,
        grads: &burn::tensor::Gradients,
    ) -> (Vec<f32>, Vec<usize>) {
        let shape = leaf.dims().to_vec();
        let values = leaf
            .grad(grads)
            .map(|g| {
                g.into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("a float gradient converts to f32")
            })
            .unwrap_or_else(|| vec![0.0; shape.iter().product()]);
        (values, shape)
    }
    let (grad, grad_shape) = match &student {
        Some(leaf) => leaf_grad(leaf, &grads),
        None => leaf_grad(&logprob_leaf, &grads),
    };
    let mut metrics: BTreeMap<String, f64> = credit.metrics.into_iter().collect();
    let tokens = loss_mask.data.iter().map(|&m| m as f64).sum::<f64>();
    for (name, values) in terms.token_metrics {
        let sum = values
            .detach()
            .mul(mask_tensor.clone())
            .sum()
            .into_scalar::<f64>();
        metrics.insert(name.to_string(), sum / tokens.max(1.0));
    }
    for (name, value) in terms.metrics.into_iter().chain(parts) {
        metrics.insert(name.to_string(), value);
    }
    metrics.insert("actor/loss".into(), loss_value);
    Ok(ProbeOutput {
        loss: loss_value,
        grad,
        grad_shape,
        advantages: credit.advantages,
        metrics,
    })
}
