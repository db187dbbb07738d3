//! The shared RL trainer. Algorithm-blind: it knows objectives only through [`Objective`].
//!
//! One step:
//! 1. draw `prompts_per_step` training problems and sample `group_size` responses to each,
//!    recording behaviour log-probs;
//! 2. score every response with the task's verifier;
//! 3. run the declared extra passes without an autodiff graph: `ℓ^old` (recomputed, as verl
//!    does), `ℓ^ref` from the frozen initial policy if asked;
//! 4. credit: the objective turns rewards into per-token advantages;
//! 5. update: `epochs` passes over `mini_batches` mini-batches (whole groups), each split into
//!    micro-batches of at most `micro_batch_size` responses; gradients are summed over the
//!    micro-batches with aggregation coefficients computed over the whole mini-batch, clipped,
//!    and applied by AdamW;
//! 6. metrics, and a checkpoint every `checkpoint_every` steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::batch::{Rollout, RolloutBatch, TokenMatrix};
use crate::checkpoint;
use crate::metrics::{Metrics, mean_std};
use crate::objective::{CreditInput, LossInput, Objective};
use crate::optim::{AdamW, OptimConfig};
use crate::policy::{NamedTensors, Policy, SamplingConfig};
use crate::rng;
use crate::task::{Problem, Task};
use crate::{Error, Result};

/// Rollout settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// Prompts per step.
    pub prompts_per_step: usize,
    /// Responses per prompt (`G`).
    pub group_size: usize,
    /// Sampling temperature; log-probs are scored at the same temperature.
    pub temperature: f32,
    /// Response length cap in tokens; 0 means the task's own cap.
    pub max_new_tokens: usize,
}

impl Default for RolloutConfig {
    /// The CPU world's RL defaults: 32 prompts × G = 8 at temperature 1.
    fn default() -> Self {
        Self {
            prompts_per_step: 32,
            group_size: 8,
            temperature: 1.0,
            max_new_tokens: 0,
        }
    }
}

/// Update settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateConfig {
    /// Passes over the rollout batch (PPO epochs).
    pub epochs: usize,
    /// Optimizer steps per pass: the batch is cut into this many mini-batches of whole groups.
    pub mini_batches: usize,
    /// The most responses in one forward/backward pass; changes memory, never the gradient.
    pub micro_batch_size: usize,
}

impl Default for UpdateConfig {
    /// One on-policy update per rollout batch.
    fn default() -> Self {
        Self {
            epochs: 1,
            mini_batches: 1,
            micro_batch_size: 64,
        }
    }
}

/// Everything the trainer needs besides the policy, the task and the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    /// Rollout settings.
    pub rollout: RolloutConfig,
    /// Update settings.
    pub update: UpdateConfig,
    /// Optimizer settings.
    pub optim: OptimConfig,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
}

impl TrainerConfig {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<()> {
        let r = &self.rollout;
        let u = &self.update;
        if r.prompts_per_step == 0 || r.group_size == 0 {
            return Err(Error::Config(
                "`rollout.prompts_per_step` and `rollout.group_size` must be positive".into(),
            ));
        }
        if !(r.temperature > 0.0 && r.temperature.is_finite()) {
            return Err(Error::Config(
                "`rollout.temperature` must be positive for RL (log-probs are scored at it)".into(),
            ));
        }
        if u.epochs == 0 || u.mini_batches == 0 || u.micro_batch_size == 0 {
            return Err(Error::Config(
                "`update.epochs`, `update.mini_batches` and `update.micro_batch_size` must be positive"
                    .into(),
            ));
        }
        if u.mini_batches > r.prompts_per_step {
            return Err(Error::Config(format!(
                "`update.mini_batches` ({}) exceeds `rollout.prompts_per_step` ({}): a mini-batch holds whole groups",
                u.mini_batches, r.prompts_per_step
            )));
        }
        self.optim.validate()
    }
}

/// The trainer's resumable state, saved as `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// The last completed step.
    pub step: usize,
    /// Optimizer steps taken.
    pub optimizer_steps: u64,
    /// The run's seed.
    pub seed: u64,
    /// The objective's name.
    pub algo: String,
}

/// The RL trainer.
pub struct Trainer<'a> {
    config: TrainerConfig,
    seed: u64,
    total_steps: usize,
    policy: Box<dyn Policy>,
    reference: Option<Box<dyn Policy>>,
    objective: Box<dyn Objective>,
    task: &'a dyn Task,
    optimizer: AdamW,
}

impl<'a> Trainer<'a> {
    /// A trainer starting from `policy`; the frozen reference is a snapshot of it, taken only
    /// if the objective asks for reference log-probs.
    pub fn new(
        config: TrainerConfig,
        seed: u64,
        total_steps: usize,
        policy: Box<dyn Policy>,
        objective: Box<dyn Objective>,
        task: &'a dyn Task,
    ) -> Result<Self> {
        config.validate()?;
        let reference = objective
            .needs()
            .reference_logprobs
            .then(|| policy.snapshot());
        let optimizer = AdamW::new(config.optim.clone());
        Ok(Self {
            config,
            seed,
            total_steps,
            policy,
            reference,
            objective,
            task,
            optimizer,
        })
    }

    /// The policy being trained.
    pub fn policy(&self) -> &dyn Policy {
        self.policy.as_ref()
    }

    /// The sampling settings of the rollouts.
    pub fn sampling(&self) -> SamplingConfig {
        SamplingConfig {
            temperature: self.config.rollout.temperature,
            max_new_tokens: match self.config.rollout.max_new_tokens {
                0 => self.task.max_new_tokens(),
                n => n,
            },
        }
    }

    /// Runs steps `first..=last`, calling `on_step` after each with its metrics, and writes
    /// checkpoints under `checkpoint_dir` if given.
    pub fn run(
        &mut self,
        first: usize,
        last: usize,
        checkpoint_dir: Option<&Path>,
        on_step: &mut dyn FnMut(usize, &Metrics) -> Result<()>,
    ) -> Result<()> {
        for step in first..=last {
            let metrics = self.step(step)?;
            on_step(step, &metrics)?;
            let every = self.config.checkpoint_every;
            let due = step == last || (every > 0 && step % every == 0);
            if let (Some(dir), true) = (checkpoint_dir, due) {
                self.save_checkpoint(dir, step)?;
            }
        }
        Ok(())
    }

    /// One training step (`step` starts at 1).
    pub fn step(&mut self, step: usize) -> Result<Metrics> {
        let mut metrics = Metrics::new();
        let rollout_start = Instant::now();
        let (problems, batch) = self.rollout(step)?;
        let tokenizer = self.policy.tokenizer();
        let mut rewards = Vec::with_capacity(batch.rollouts.len());
        let mut correct = Vec::with_capacity(batch.rollouts.len());
        for r in &batch.rollouts {
            let text = tokenizer.decode(&r.tokens);
            let verdict = self.task.verifier().verify(&text, &problems[r.problem]);
            rewards.push(verdict.score);
            correct.push(verdict.correct);
        }
        metrics.insert(
            "timing/rollout".into(),
            rollout_start.elapsed().as_secs_f64(),
        );

        let update_start = Instant::now();
        let contexts: Vec<Vec<u32>> = batch
            .rollouts
            .iter()
            .map(|r| batch.prompts[r.problem].clone())
            .collect();
        let responses: Vec<Vec<u32>> = batch.rollouts.iter().map(|r| r.tokens.clone()).collect();
        let temperature = self.config.rollout.temperature;
        let mask = batch.mask();
        let chunk = self.config.update.micro_batch_size;
        let old_logprobs = scored_without_graph(
            self.policy.as_ref(),
            &contexts,
            &responses,
            temperature,
            chunk,
        );
        let ref_logprobs = self.reference.as_ref().map(|reference| {
            scored_without_graph(
                reference.as_ref(),
                &contexts,
                &responses,
                temperature,
                chunk,
            )
        });
        // How far the sampler's log-probs are from teacher forcing (verl reports the same as
        // `training/rollout_probs_diff_*`): a large gap means sampling and scoring disagree.
        let mut diff_max = 0f64;
        let mut diff_sum = 0f64;
        for (i, r) in batch.rollouts.iter().enumerate() {
            for (t, &behaviour) in r.behaviour_logprobs.iter().enumerate() {
                let diff = (behaviour as f64 - old_logprobs.get(i, t) as f64).abs();
                diff_max = diff_max.max(diff);
                diff_sum += diff;
            }
        }
        let token_count = mask.data.iter().map(|&m| m as f64).sum::<f64>().max(1.0);
        metrics.insert("rollout/logprob_diff_max".into(), diff_max);
        metrics.insert("rollout/logprob_diff_mean".into(), diff_sum / token_count);
        let group_ids = batch.group_ids();
        let credit = self.objective.credit(&CreditInput {
            step,
            rewards: &rewards,
            correct: &correct,
            group_ids: &group_ids,
            mask: &mask,
            old_logprobs: &old_logprobs,
            ref_logprobs: ref_logprobs.as_ref(),
        })?;
        for (key, value) in &credit.metrics {
            metrics.insert(key.clone(), *value);
        }

        let update = UpdateBatch {
            contexts: &contexts,
            responses: &responses,
            mask: &mask,
            old_logprobs: &old_logprobs,
            ref_logprobs: ref_logprobs.as_ref(),
            advantages: &credit.advantages,
        };
        let groups = self.config.rollout.prompts_per_step;
        let group_size = self.config.rollout.group_size;
        let mut totals = UpdateTotals::default();
        for _ in 0..self.config.update.epochs {
            for chunk in split_even(groups, self.config.update.mini_batches) {
                let rows: Vec<usize> = (chunk.start * group_size..chunk.end * group_size).collect();
                self.update_mini_batch(step, &update, &rows, &mut totals)?;
            }
        }
        metrics.insert("timing/update".into(), update_start.elapsed().as_secs_f64());

        let (reward_mean, reward_std) = mean_std(rewards.iter().map(|&r| r as f64));
        let accuracy = correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64;
        let tokens: usize = responses.iter().map(Vec::len).sum();
        let (length_mean, _) = mean_std(responses.iter().map(|r| r.len() as f64));
        let clipped = batch.rollouts.iter().filter(|r| !r.finished).count();
        metrics.insert("reward/mean".into(), reward_mean);
        metrics.insert("reward/std".into(), reward_std);
        metrics.insert("accuracy/train".into(), accuracy);
        metrics.insert("response_length/mean".into(), length_mean);
        metrics.insert(
            "response_length/clip_ratio".into(),
            clipped as f64 / responses.len() as f64,
        );
        totals.report(&mut metrics);
        let seconds = metrics["timing/rollout"] + metrics["timing/update"];
        metrics.insert("perf/throughput".into(), tokens as f64 / seconds.max(1e-9));
        Ok(metrics)
    }

    fn rollout(&self, step: usize) -> Result<(Vec<Problem>, RolloutBatch)> {
        let rollout = &self.config.rollout;
        let mut prompt_rng = rng::stream(self.seed, step as u64, "prompts");
        let problems = self
            .task
            .sample_problems(&mut prompt_rng, rollout.prompts_per_step);
        let tokenizer = self.policy.tokenizer();
        let prompts = problems
            .iter()
            .map(|p| tokenizer.encode_prompt(&p.prompt))
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), rollout.group_size))
            .collect();
        let mut sample_rng = rng::stream(self.seed, step as u64, "sample");
        let samples = self.policy.sample(&rows, &self.sampling(), &mut sample_rng);
        let rollouts = samples
            .into_iter()
            .enumerate()
            .map(|(i, s)| Rollout {
                problem: i / rollout.group_size,
                group_id: i / rollout.group_size,
                tokens: s.tokens,
                behaviour_logprobs: s.logprobs,
                finished: s.finished,
            })
            .collect();
        Ok((problems, RolloutBatch { prompts, rollouts }))
    }

    fn update_mini_batch(
        &mut self,
        step: usize,
        batch: &UpdateBatch<'_>,
        rows: &[usize],
        totals: &mut UpdateTotals,
    ) -> Result<()> {
        let gradient = mini_batch_gradient(
            self.policy.as_ref(),
            self.objective.as_ref(),
            batch,
            rows,
            self.config.update.micro_batch_size,
            self.config.rollout.temperature,
        );
        if !gradient.loss.is_finite() {
            return Err(Error::NonFinite {
                what: "loss".into(),
                step,
            });
        }
        let optimizer_step = self.optimizer.steps_taken() as usize;
        let total_optimizer_steps =
            self.total_steps * self.config.update.epochs * self.config.update.mini_batches;
        let lr = self
            .config
            .optim
            .lr_at(optimizer_step, total_optimizer_steps);
        let (params, report) =
            self.optimizer
                .step(&self.policy.parameters(), &gradient.grads, lr)?;
        self.policy.set_parameters(&params)?;
        totals.loss += gradient.loss;
        totals.grad_norm += report.grad_norm;
        totals.lr = report.lr;
        totals.updates += 1;
        totals.tokens += gradient.tokens;
        for (name, sum) in gradient.token_metric_sums {
            totals.add_token_metric(name, sum);
        }
        Ok(())
    }

    /// Writes the checkpoint of `step` under `dir` atomically.
    pub fn save_checkpoint(&self, dir: &Path, step: usize) -> Result<PathBuf> {
        let target = checkpoint::step_dir(dir, step);
        let state = TrainerState {
            step,
            optimizer_steps: self.optimizer.steps_taken(),
            seed: self.seed,
            algo: self.objective.name().to_string(),
        };
        fs_err::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        checkpoint::write_dir_atomic(&target, |tmp| {
            checkpoint::save_safetensors(
                &tmp.join("model.safetensors"),
                &self.policy.parameters(),
                &self.policy.metadata(),
            )?;
            checkpoint::save_safetensors(
                &tmp.join("optimizer.safetensors"),
                &self.optimizer.state(),
                &Default::default(),
            )?;
            let json = serde_json::to_string_pretty(&state).expect("state serializes");
            checkpoint::write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())
        })?;
        Ok(target)
    }

    /// Restores policy weights and optimizer state from a checkpoint folder; returns the step
    /// it was written after.
    pub fn load_checkpoint(&mut self, folder: &Path) -> Result<usize> {
        let state_path = folder.join("trainer_state.json");
        let text =
            fs_err::read_to_string(&state_path).map_err(|e| Error::io("read", &state_path, e))?;
        let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: state_path.clone(),
            reason: e.to_string(),
            hint: "the checkpoint is damaged; resume from an earlier one".into(),
        })?;
        if state.algo != self.objective.name() || state.seed != self.seed {
            return Err(Error::Config(format!(
                "checkpoint `{}` was written by `--algo {} --seed {}`, not `--algo {} --seed {}`\nhint: resume with the same algorithm and seed, or use a new `--out`",
                folder.display(),
                state.algo,
                state.seed,
                self.objective.name(),
                self.seed
            )));
        }
        let device = self.policy.device();
        let weights = checkpoint::load_safetensors(&folder.join("model.safetensors"), &device)?;
        self.policy.set_parameters(&weights)?;
        let moments = checkpoint::load_safetensors(&folder.join("optimizer.safetensors"), &device)?;
        self.optimizer.load_state(moments, state.optimizer_steps);
        Ok(state.step)
    }
}

/// The per-response inputs of an update, for all `n` responses of a rollout batch.
pub struct UpdateBatch<'b> {
    /// The context (prompt) of each response.
    pub contexts: &'b [Vec<u32>],
    /// The response tokens.
    pub responses: &'b [Vec<u32>],
    /// Response-token mask `[n, t]`.
    pub mask: &'b TokenMatrix,
    /// `ℓ^old` `[n, t]`.
    pub old_logprobs: &'b TokenMatrix,
    /// `ℓ^ref` `[n, t]`, if the objective needs it.
    pub ref_logprobs: Option<&'b TokenMatrix>,
    /// `Â` `[n, t]`.
    pub advantages: &'b TokenMatrix,
}

/// The summed gradient of one mini-batch.
pub struct MiniBatchGradient {
    /// Parameter gradients of the aggregated loss.
    pub grads: NamedTensors,
    /// The aggregated loss.
    pub loss: f64,
    /// Response tokens in the mini-batch.
    pub tokens: f64,
    /// `Σ mask · metric` per token metric.
    pub token_metric_sums: Vec<(&'static str, f64)>,
}

/// The gradient of the mini-batch `rows` of `batch`, computed in micro-batches of at most
/// `micro_batch_size` responses. The aggregation coefficients are computed over the whole
/// mini-batch, so the result does not depend on `micro_batch_size` (up to float rounding).
pub fn mini_batch_gradient(
    policy: &dyn Policy,
    objective: &dyn Objective,
    batch: &UpdateBatch<'_>,
    rows: &[usize],
    micro_batch_size: usize,
    temperature: f32,
) -> MiniBatchGradient {
    let device = policy.device();
    let mini_mask = batch.mask.select_rows(rows);
    let coefficients = objective.aggregation().token_coefficients(&mini_mask);
    let mut grads: Option<NamedTensors> = None;
    let mut loss_total = 0.0;
    let mut token_metric_sums: Vec<(&'static str, f64)> = Vec::new();
    for (chunk_index, micro) in rows.chunks(micro_batch_size).enumerate() {
        let local: Vec<usize> = (chunk_index * micro_batch_size
            ..chunk_index * micro_batch_size + micro.len())
            .collect();
        let contexts: Vec<Vec<u32>> = micro.iter().map(|&r| batch.contexts[r].clone()).collect();
        let responses: Vec<Vec<u32>> = micro.iter().map(|&r| batch.responses[r].clone()).collect();
        let logprobs = policy.token_logprobs(&contexts, &responses, temperature, true);
        let [_, cols] = logprobs.dims();
        let take = |m: &TokenMatrix, rows: &[usize]| {
            narrow_cols(&m.select_rows(rows), cols).to_tensor(&device)
        };
        let mask = take(batch.mask, micro);
        let terms = objective.loss(LossInput {
            logprobs,
            old_logprobs: take(batch.old_logprobs, micro),
            ref_logprobs: batch.ref_logprobs.map(|m| take(m, micro)),
            advantages: take(batch.advantages, micro),
            mask: mask.clone(),
        });
        let coef = take(&coefficients, &local);
        let loss = terms.per_token.mul(coef).sum();
        loss_total += loss.clone().into_scalar::<f64>();
        for (name, values) in terms.token_metrics {
            let sum = values.detach().mul(mask.clone()).sum().into_scalar::<f64>();
            match token_metric_sums.iter_mut().find(|(n, _)| *n == name) {
                Some((_, s)) => *s += sum,
                None => token_metric_sums.push((name, sum)),
            }
        }
        let micro_grads = policy.backward(loss);
        grads = Some(match grads {
            None => micro_grads,
            Some(mut acc) => {
                for (name, g) in micro_grads {
                    if let Some(a) = acc.get_mut(&name) {
                        a.value = a.value.clone().add(g.value);
                    }
                }
                acc
            }
        });
    }
    MiniBatchGradient {
        grads: grads.expect("a mini-batch holds at least one response"),
        loss: loss_total,
        tokens: mini_mask.data.iter().map(|&m| m as f64).sum(),
        token_metric_sums,
    }
}

#[derive(Default)]
struct UpdateTotals {
    loss: f64,
    grad_norm: f64,
    lr: f64,
    updates: usize,
    tokens: f64,
    token_metrics: Vec<(&'static str, f64)>,
}

impl UpdateTotals {
    fn add_token_metric(&mut self, name: &'static str, sum: f64) {
        match self.token_metrics.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => *s += sum,
            None => self.token_metrics.push((name, sum)),
        }
    }

    fn report(&self, metrics: &mut Metrics) {
        let updates = self.updates.max(1) as f64;
        metrics.insert("actor/pg_loss".into(), self.loss / updates);
        metrics.insert("actor/grad_norm".into(), self.grad_norm / updates);
        metrics.insert("actor/lr".into(), self.lr);
        for (name, sum) in &self.token_metrics {
            metrics.insert(name.to_string(), sum / self.tokens.max(1.0));
        }
    }
}

/// Teacher-forced log-probs `[n, t]` of all responses without an autodiff graph, computed in
/// chunks of at most `chunk` responses (the micro-batch size bounds memory here too).
fn scored_without_graph(
    policy: &dyn Policy,
    contexts: &[Vec<u32>],
    responses: &[Vec<u32>],
    temperature: f32,
    chunk: usize,
) -> TokenMatrix {
    let cols = responses.iter().map(Vec::len).max().unwrap_or(0);
    let mut data = Vec::with_capacity(responses.len() * cols);
    for (c, r) in contexts.chunks(chunk).zip(responses.chunks(chunk)) {
        let part = TokenMatrix::from_tensor(policy.token_logprobs(c, r, temperature, false));
        data.extend(narrow_cols(&part, cols).data);
    }
    TokenMatrix {
        rows: responses.len(),
        cols,
        data,
    }
}

/// The first `cols` columns of `m` (`cols` ≤ `m.cols`), or `m` padded with zeros to `cols`.
fn narrow_cols(m: &TokenMatrix, cols: usize) -> TokenMatrix {
    TokenMatrix::from_rows((0..m.rows).map(|r| &m.row(r)[..cols.min(m.cols)]), cols)
}

/// `n` items cut into `parts` contiguous ranges whose sizes differ by at most one.
pub fn split_even(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let base = n / parts;
    let extra = n % parts;
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_even_covers_everything_once() {
        let parts = split_even(10, 3);
        assert_eq!(parts, vec![0..4, 4..7, 7..10]);
        assert_eq!(split_even(4, 4).len(), 4);
    }
}
