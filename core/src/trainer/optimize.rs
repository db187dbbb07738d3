//! The optimizer side of an update: one AdamW step per mini-batch gradient, the EMA and
//! snapshot teachers,
//! skipped steps for non-finite values, and the step's update metrics.

use crate::metrics::Metrics;
use crate::{Error, Result};

use super::Trainer;
use super::update::{DistillTeacher, UpdateBatch, add_to, mini_batch_gradient_share};

impl Trainer<'_> {
    /// The gradient of the mini-batch `rows` (this rank computing the rows `mine`, summed over
    /// the ranks), then one AdamW step (and the EMA teacher's
    /// update), or a skipped step for a non-finite loss or gradient. Returns whether the
    /// weights changed. `fresh`: no optimizer step since `ℓ^old` was scored.
    pub(super) fn update_mini_batch(
        &mut self,
        step: usize,
        batch: &UpdateBatch<'_>,
        distill_contexts: Option<&[Vec<u32>]>,
        (rows, mine): (&[usize], &[usize]),
        fresh: bool,
        totals: &mut UpdateTotals,
    ) -> Result<bool> {
        // The distillation teacher's weights as they are now: an EMA teacher moves after every
        // optimizer step.
        let distill = self.needs.teachers.iter().find(|t| t.logits);
        let teacher = distill
            .zip(distill_contexts)
            .map(|(pass, contexts)| DistillTeacher {
                policy: self.scorer(pass.weights),
                contexts,
            });
        let gradient = mini_batch_gradient_share(
            self.policy.as_ref(),
            self.objective.as_ref(),
            &UpdateBatch { teacher, ..*batch },
            (rows, mine),
            self.dist.as_ref(),
            self.micro_batching(),
            self.config.rollout.temperature,
            fresh,
            &format!(
                "gradients, step {step}, optimizer step {}",
                self.optimizer.steps_taken() + 1
            ),
        )?;
        if let Some(logprobs) = &gradient.logprobs {
            // One on-policy mini-batch of every row, in order: the step's ℓ^old (but for the
            // skipped rows).
            totals.current_logprobs = Some(logprobs.clone());
        }
        totals
            .trained_rows
            .extend(mine.iter().filter(|r| !gradient.skipped_rows.contains(r)));
        totals.entropy += gradient.entropy_sum;
        totals.response_tokens += gradient.response_tokens;
        totals.trained_tokens += gradient.trained_tokens;
        let optimizer_step = self.optimizer.steps_taken() as usize;
        let total_optimizer_steps =
            self.total_steps * self.config.update.epochs * self.config.update.mini_batches;
        let lr = self
            .config
            .optim
            .lr_at(optimizer_step, total_optimizer_steps);
        let stepped = if gradient.loss.is_finite() {
            // The optimizer checks the gradient norm before it changes any state.
            self.optimizer
                .step(&self.policy.parameters(), gradient.grads, lr)
        } else {
            Err(Error::NonFinite {
                what: "loss".into(),
                step,
            })
        };
        let (params, report) = match stepped {
            Ok(done) => done,
            Err(Error::NonFinite { what, .. }) => {
                // Skip this optimizer step: no weight and no optimizer moment changes.
                self.nonfinite_streak += 1;
                totals.skipped += 1;
                let limit = self.config.update.max_nonfinite_skips;
                if self.nonfinite_streak > limit {
                    return Err(Error::NonFinite {
                        what: format!(
                            "{what} in {} optimizer steps in a row (`update.max_nonfinite_skips` is {limit}); the last checkpoint holds the last good weights",
                            self.nonfinite_streak
                        ),
                        step,
                    });
                }
                return Ok(false);
            }
            Err(other) => return Err(other),
        };
        self.nonfinite_streak = 0;
        self.policy.set_parameters(&params)?;
        if let Some((rate, ema)) = &mut self.ema {
            // θ_T ← (1 − rate)·θ_T + rate·θ, after every optimizer step (SDPO `_update_teacher`).
            let mut mixed = ema.parameters();
            for (name, value) in mixed.iter_mut() {
                let current = params[name].value.clone();
                value.value = value
                    .value
                    .clone()
                    .mul_scalar(1.0 - *rate)
                    .add(current.mul_scalar(*rate));
            }
            ema.set_parameters(&mixed)?;
        }
        if let Some((every, snapshot)) = &mut self.snapshot
            && self.optimizer.steps_taken().is_multiple_of(*every as u64)
        {
            // The teacher copies the policy after every `every` optimizer steps (RLCSD's
            // `teacher_mode: snapshot`, `dp_actor.py::_update_teacher_shadow`).
            snapshot.set_parameters(&params)?;
        }
        totals.loss += gradient.loss;
        totals.grad_norm += report.grad_norm;
        totals.lr = report.lr;
        totals.updates += 1;
        totals.tokens += gradient.tokens;
        for (name, value) in gradient.parts {
            add_to(&mut totals.parts, name, value);
        }
        for (name, sum) in gradient.token_metric_sums {
            totals.add_token_metric(name, sum);
        }
        for (name, value) in gradient.metrics {
            totals.add_metric(name, value);
        }
        Ok(true)
    }
}

/// What the optimizer steps of one training step add up, for its metrics.
#[derive(Default)]
pub(super) struct UpdateTotals {
    /// Optimizer steps skipped for a non-finite loss or gradient.
    skipped: usize,
    /// `Σ` entropy over response tokens, and their count.
    entropy: f64,
    response_tokens: f64,
    /// Response tokens through forward and backward passes.
    pub(super) trained_tokens: usize,
    /// The log-probs the on-policy update computed when `ℓ^old` had no pass of its own.
    pub(super) current_logprobs: Option<crate::batch::TokenMatrix>,
    /// Rows this rank's update ran through a forward pass (batch indices, once per epoch).
    pub(super) trained_rows: Vec<usize>,
    loss: f64,
    /// Each loss part summed over optimizer steps.
    parts: Vec<(&'static str, f64)>,
    grad_norm: f64,
    lr: f64,
    updates: usize,
    tokens: f64,
    token_metrics: Vec<(&'static str, f64)>,
    metrics: Vec<(&'static str, f64)>,
}

impl UpdateTotals {
    fn add_token_metric(&mut self, name: &'static str, sum: f64) {
        add_to(&mut self.token_metrics, name, sum);
    }

    fn add_metric(&mut self, name: &'static str, value: f64) {
        add_to(&mut self.metrics, name, value);
    }

    pub(super) fn report(&self, metrics: &mut Metrics) {
        metrics.insert("actor/skipped_updates".into(), self.skipped as f64);
        if self.response_tokens > 0.0 {
            metrics.insert("actor/entropy".into(), self.entropy / self.response_tokens);
        }
        if self.updates == 0 {
            // No optimizer step: no loss, gradient or learning rate to report.
            return;
        }
        let updates = self.updates as f64;
        metrics.insert("actor/loss".into(), self.loss / updates);
        for (name, sum) in &self.parts {
            metrics.insert(name.to_string(), sum / updates);
        }
        metrics.insert("actor/grad_norm".into(), self.grad_norm / updates);
        metrics.insert("actor/lr".into(), self.lr);
        for (name, sum) in &self.token_metrics {
            metrics.insert(name.to_string(), sum / self.tokens.max(1.0));
        }
        for (name, sum) in &self.metrics {
            metrics.insert(name.to_string(), sum / updates);
        }
    }
}
