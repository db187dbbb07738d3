//! The shared RL trainer. Algorithm-blind: it knows objectives only through [`Objective`].
//!
//! One step:
//! 1. draw `prompts_per_step` training problems and sample `group_size` responses to each,
//!    recording behaviour log-probs; score every response with the task's verifier; with
//!    dynamic sampling, drop the groups the objective rejects and sample more prompts;
//! 2. run the declared extra passes without an autodiff graph, in micro-batches: `ℓ^old`
//!    (recomputed, as verl does), `ℓ^ref` from the frozen initial policy, and each teacher
//!    pass (a hinted context scored by the current, frozen initial or EMA weights);
//! 3. credit: the objective turns rewards and teacher scores into per-token advantages;
//! 4. update: `epochs` passes over `mini_batches` mini-batches (whole groups), each cut into
//!    micro-batches by a row count and a token budget; gradients are summed over the
//!    micro-batches with aggregation coefficients computed over the whole mini-batch, clipped,
//!    and applied by AdamW ([`update`] computes a mini-batch's gradient, [`optimize`] applies
//!    it);
//! 5. metrics, and a checkpoint every `checkpoint_every` steps ([`checkpoints`]).
//!
//! Stage by stage: [`rollout`] (sampling, verification, teacher contexts), this file (the step's
//! order and its scoring passes), [`update`], [`optimize`], [`checkpoints`].

pub mod checkpoints;
pub mod dumps;
pub mod optimize;
pub mod rollout;
pub mod update;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::batch::TokenMatrix;
use crate::dist::{Collective, Reduce, Single};
use crate::metrics::{Metrics, mean_std};
use crate::objective::{CreditInput, Needs, Objective};
use crate::optim::{AdamW, OptimConfig};
use crate::policy::{Policy, SamplingConfig};
use crate::task::Task;
use crate::teacher::{TeacherScores, TeacherWeights};
use crate::{Error, Result};

use optimize::UpdateTotals;
use rollout::Collected;
pub use update::{
    DistillTeacher, MicroBatching, MiniBatchGradient, UpdateBatch, mini_batch_gradient, score_rows,
};

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
    /// The most padded tokens (rows × longest context + response) in one forward/backward
    /// pass, rows sorted by length (verl's `ppo_max_token_len_per_gpu`); 0: rows only. Changes
    /// memory, never the gradient. Scoring passes use the same micro-batches.
    pub micro_batch_tokens: usize,
    /// Optimizer steps in a row that may be skipped for a non-finite loss or gradient (more
    /// likely in low precision) before the run stops; a skipped step changes no weight and no
    /// optimizer state, and is counted in `actor/skipped_updates`.
    pub max_nonfinite_skips: usize,
}

impl Default for UpdateConfig {
    /// One on-policy update per rollout batch.
    fn default() -> Self {
        Self {
            epochs: 1,
            mini_batches: 1,
            micro_batch_size: 64,
            micro_batch_tokens: 0,
            max_nonfinite_skips: 3,
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
    /// Keep the newest this many checkpoints, removing older ones (0: keep all).
    pub checkpoint_keep: usize,
    /// The device's peak TFLOP/s for `perf/mfu` (0: not reported).
    pub peak_tflops: f64,
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
    /// Where the frozen initial policy of the run is, when the objective keeps one: written
    /// once per run beside the step folders, not in each of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_policy: Option<InitialPolicyFile>,
}

/// The file of a run's frozen initial policy, as a checkpoint refers to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitialPolicyFile {
    /// The path relative to the checkpoint folder (`../initial_policy.safetensors`).
    pub path: String,
    /// FNV-1a of the file's bytes, as 16 hex digits: a copy from another run is refused.
    pub fnv1a: String,
}

/// The RL trainer.
pub struct Trainer<'a> {
    config: TrainerConfig,
    seed: u64,
    total_steps: usize,
    policy: Box<dyn Policy>,
    /// The frozen initial policy: the reference of a KL term, OPSD's fixed teacher.
    initial: Option<Box<dyn Policy>>,
    /// The hash of the initial policy's file once written (or read on resume).
    initial_hash: Option<String>,
    /// The EMA teacher and its rate (SDPO).
    ema: Option<(f32, Box<dyn Policy>)>,
    /// The snapshot teacher and its refresh interval in optimizer steps (RLCSD).
    snapshot: Option<(usize, Box<dyn Policy>)>,
    /// Where each step's rollouts are written (`rollouts/` of the run folder), if anywhere.
    rollout_dir: Option<PathBuf>,
    objective: Box<dyn Objective>,
    needs: Needs,
    task: &'a dyn Task,
    optimizer: AdamW,
    /// Optimizer steps skipped in a row for a non-finite loss or gradient.
    nonfinite_streak: usize,
    /// The other ranks of a data-parallel run ([`Single`] when alone).
    dist: Arc<dyn Collective>,
}

impl<'a> Trainer<'a> {
    /// A trainer starting from `policy`. Snapshots of it become the frozen initial policy and
    /// the EMA teacher when the objective's [`Needs`] ask for them.
    pub fn new(
        config: TrainerConfig,
        seed: u64,
        total_steps: usize,
        policy: Box<dyn Policy>,
        objective: Box<dyn Objective>,
        task: &'a dyn Task,
    ) -> Result<Self> {
        config.validate()?;
        let needs = objective.needs();
        let name = objective.name().to_string();
        let distill_passes = needs.teachers.iter().filter(|t| t.logits).count();
        if distill_passes > 1 {
            return Err(Error::Config(format!(
                "objective `{name}` asks for teacher logits from more than one pass; the trainer passes one"
            )));
        }
        if needs.student_logits != (distill_passes == 1) {
            return Err(Error::Config(format!(
                "objective `{name}`: a distillation divergence (`student_logits`) needs exactly one teacher pass with `logits`, and such a pass is read only by it"
            )));
        }
        let mut ema_rate = None;
        let mut snapshot_every = None;
        for pass in &needs.teachers {
            if let TeacherWeights::Snapshot { every } = pass.weights {
                if every == 0 {
                    return Err(Error::Config(format!(
                        "objective `{name}`: a snapshot teacher must refresh after at least 1 optimizer step"
                    )));
                }
                if snapshot_every.is_some_and(|e| e != every) {
                    return Err(Error::Config(format!(
                        "objective `{name}` declares two snapshot teachers with different intervals"
                    )));
                }
                snapshot_every = Some(every);
            }
            if let TeacherWeights::Ema { rate } = pass.weights {
                if !(rate > 0.0 && rate <= 1.0) {
                    return Err(Error::Config(format!(
                        "objective `{name}`: the EMA teacher rate must lie in (0, 1], got {rate}"
                    )));
                }
                if ema_rate.is_some_and(|r| r != rate) {
                    return Err(Error::Config(format!(
                        "objective `{name}` declares two EMA teachers with different rates"
                    )));
                }
                ema_rate = Some(rate);
            }
        }
        if let Some(d) = needs.dynamic_sampling
            && d.max_rounds == 0
        {
            return Err(Error::Config(format!(
                "objective `{name}`: dynamic sampling needs at least one generation round"
            )));
        }
        let initial = needs.keeps_initial().then(|| policy.snapshot());
        let ema = ema_rate.map(|rate| (rate, policy.snapshot()));
        let snapshot = snapshot_every.map(|every| (every, policy.snapshot()));
        let optimizer = AdamW::new(config.optim.clone());
        Ok(Self {
            config,
            seed,
            total_steps,
            policy,
            initial,
            initial_hash: None,
            ema,
            snapshot,
            rollout_dir: None,
            objective,
            needs,
            task,
            optimizer,
            nonfinite_streak: 0,
            dist: Arc::new(Single),
        })
    }

    /// Trains as one rank of a data-parallel run (see [`crate::dist`]). Every rank must start
    /// from the same weights ([`crate::dist::check_same_weights`]).
    pub fn set_collective(&mut self, dist: Arc<dyn Collective>) {
        self.dist = dist;
    }

    /// The ranks of this run.
    pub fn collective(&self) -> &dyn Collective {
        self.dist.as_ref()
    }

    /// The policy being trained.
    pub fn policy(&self) -> &dyn Policy {
        self.policy.as_ref()
    }

    /// Writes each step's rollouts to `dir/step-NNNNNN.jsonl` (verl's `rollout_data_dir`;
    /// see [`dumps`]); `None` writes none.
    pub fn set_rollout_dir(&mut self, dir: Option<PathBuf>) {
        self.rollout_dir = dir;
    }

    /// How the update and the scoring passes cut micro-batches.
    pub fn micro_batching(&self) -> MicroBatching {
        MicroBatching {
            max_rows: self.config.update.micro_batch_size,
            max_tokens: self.config.update.micro_batch_tokens,
        }
    }

    /// Teacher-forced log-probs `[n, t]` of all rows without a graph, as [`score_rows`]
    /// computes them: each rank scores its contiguous share of the rows, and every rank gets
    /// all of them.
    fn score_share(
        &self,
        policy: &dyn Policy,
        contexts: &[Vec<u32>],
        responses: &[Vec<u32>],
        what: &str,
    ) -> Result<TokenMatrix> {
        let temperature = self.config.rollout.temperature;
        let micro = self.micro_batching();
        if self.dist.world() == 1 {
            return Ok(score_rows(policy, contexts, responses, temperature, micro));
        }
        let mine = crate::dist::share(responses.len(), self.dist.world(), self.dist.rank());
        let part = score_rows(
            policy,
            &contexts[mine.clone()],
            &responses[mine.clone()],
            temperature,
            micro,
        );
        let cols = responses.iter().map(Vec::len).max().unwrap_or(0);
        let mut all = TokenMatrix::zeros(responses.len(), cols);
        let rows: Vec<usize> = mine.collect();
        update::place_rows(&mut all, &rows, &part);
        crate::dist::all_gather_rows(self.dist.as_ref(), &mut all, &rows, what)?;
        Ok(all)
    }

    /// The weights that score a teacher pass.
    pub(super) fn scorer(&self, weights: TeacherWeights) -> &dyn Policy {
        match weights {
            TeacherWeights::Current => self.policy.as_ref(),
            TeacherWeights::Initial => self.initial.as_deref().expect("snapshot taken in new"),
            TeacherWeights::Ema { .. } => {
                self.ema.as_ref().expect("snapshot taken in new").1.as_ref()
            }
            TeacherWeights::Snapshot { .. } => self
                .snapshot
                .as_ref()
                .expect("snapshot taken in new")
                .1
                .as_ref(),
        }
    }

    /// The sampling settings of the rollouts.
    pub fn sampling(&self) -> SamplingConfig {
        SamplingConfig {
            temperature: self.config.rollout.temperature,
            max_new_tokens: match self.config.rollout.max_new_tokens {
                0 => self.task.max_new_tokens(),
                n => n,
            },
            min_new_tokens: 0,
        }
    }

    /// Runs steps `first..=last`, calling `on_step` after each with its metrics (which it may
    /// add to, e.g. a held-out evaluation of the updated policy it is given), and writes
    /// checkpoints under `checkpoint_dir` if given.
    pub fn run(
        &mut self,
        first: usize,
        last: usize,
        checkpoint_dir: Option<&Path>,
        on_step: &mut dyn FnMut(usize, &mut Metrics, &dyn Policy) -> Result<()>,
    ) -> Result<()> {
        for step in first..=last {
            let mut metrics = self.step(step)?;
            on_step(step, &mut metrics, self.policy.as_ref())?;
            let every = self.config.checkpoint_every;
            let due = step == last || (every > 0 && step % every == 0);
            if let (Some(dir), true) = (checkpoint_dir, due) {
                // Every rank holds the same weights and optimizer state: rank 0 writes them.
                if self.dist.rank() == 0 {
                    self.save_checkpoint(dir, step)?;
                    crate::checkpoint::prune(dir, self.config.checkpoint_keep)?;
                }
                self.dist.barrier(&format!("checkpoint, step {step}"))?;
            }
        }
        Ok(())
    }

    /// One training step (`step` starts at 1).
    pub fn step(&mut self, step: usize) -> Result<Metrics> {
        let mut metrics = Metrics::new();
        // Ranks start the step together, so that no rank's timings hold its wait for another
        // (rank 0's held-out evaluation between steps).
        self.dist.barrier(&format!("start of step {step}"))?;
        let rollout_start = Instant::now();
        let Collected {
            problems,
            batch,
            verdicts,
        } = self.collect(step, &mut metrics)?;
        let rewards: Vec<f32> = verdicts.iter().map(|v| v.score).collect();
        let correct: Vec<bool> = verdicts.iter().map(|v| v.correct).collect();
        metrics.insert(
            "timing/rollout".into(),
            rollout_start.elapsed().as_secs_f64(),
        );
        if batch.rollouts.is_empty() {
            // Dynamic sampling kept no group and the objective asked to go on: nothing to learn.
            metrics.insert("timing/update".into(), 0.0);
            return Ok(metrics);
        }

        let scoring_start = Instant::now();
        let contexts: Vec<Vec<u32>> = batch
            .rollouts
            .iter()
            .map(|r| batch.prompts[r.problem].clone())
            .collect();
        let responses: Vec<Vec<u32>> = batch.rollouts.iter().map(|r| r.tokens.clone()).collect();
        let mask = batch.mask();
        let tokens: usize = responses.iter().map(Vec::len).sum();
        // On-policy (one epoch of one mini-batch), `ℓ^old` is what the update computes anyway;
        // it needs its own pass only when the credit stage reads it.
        let u = &self.config.update;
        let old_is_current =
            u.epochs == 1 && u.mini_batches == 1 && self.needs.credit_without_old_logprobs;
        let mut scored_tokens = 0;
        let old_logprobs = if old_is_current {
            TokenMatrix::zeros(mask.rows, mask.cols)
        } else {
            scored_tokens += tokens;
            self.score_share(
                self.policy.as_ref(),
                &contexts,
                &responses,
                &format!("old log-probs, step {step}"),
            )?
        };
        let ref_logprobs = match (&self.initial, self.needs.reference_logprobs) {
            (Some(initial), true) => {
                scored_tokens += tokens;
                Some(self.score_share(
                    initial.as_ref(),
                    &contexts,
                    &responses,
                    &format!("reference log-probs, step {step}"),
                )?)
            }
            _ => None,
        };

        let teacher_start = Instant::now();
        let mut teachers = Vec::with_capacity(self.needs.teachers.len());
        // The distillation teacher's contexts: its distribution is computed per micro-batch in
        // the update, on the device.
        let mut distill_contexts: Option<Vec<Vec<u32>>> = None;
        let group_ids = batch.group_ids();
        let (mut rows_scored, mut rows_asked) = (0usize, 0usize);
        let pass_contexts = if self.needs.teachers.is_empty() {
            Vec::new()
        } else {
            self.teacher_contexts(step, &problems, &batch, &verdicts)?
        };
        // Passes scored by the same weights share one scoring call, their rows ordered by
        // context, so a context several passes read (RLCSD's wrong siblings) is prefilled once
        // per micro-batch.
        // A distillation pass is read only by the divergence, in the update: nothing reads its
        // log-probs, so it is not scored here.
        let passes = &self.needs.teachers;
        let mut logprobs = vec![TokenMatrix::zeros(mask.rows, mask.cols); passes.len()];
        let mut done: Vec<bool> = passes.iter().map(|p| p.logits).collect();
        for first in 0..passes.len() {
            if done[first] {
                continue;
            }
            let weights = passes[first].weights;
            let mut rows: Vec<(usize, usize)> = Vec::new();
            for (p, built) in pass_contexts.iter().enumerate() {
                if !done[p] && passes[p].weights == weights {
                    done[p] = true;
                    rows.extend(
                        (0..responses.len())
                            .filter(|&i| built.scored[i])
                            .map(|i| (p, i)),
                    );
                }
            }
            rows.sort_by(|a, b| {
                pass_contexts[a.0].contexts[a.1].cmp(&pass_contexts[b.0].contexts[b.1])
            });
            let part = self.score_share(
                self.scorer(weights),
                &rows
                    .iter()
                    .map(|&(p, i)| pass_contexts[p].contexts[i].clone())
                    .collect::<Vec<_>>(),
                &rows
                    .iter()
                    .map(|&(_, i)| responses[i].clone())
                    .collect::<Vec<_>>(),
                &format!("teacher log-probs, step {step}"),
            )?;
            for (k, &(p, i)) in rows.iter().enumerate() {
                update::place_rows(&mut logprobs[p], &[i], &part.select_rows(&[k]));
            }
            scored_tokens += rows.iter().map(|&(_, i)| responses[i].len()).sum::<usize>();
            rows_scored += rows.len();
        }
        for ((pass, built), logprobs) in passes.iter().zip(&pass_contexts).zip(logprobs) {
            rows_asked += responses.len();
            teachers.push(TeacherScores {
                logprobs,
                has_hint: built.has_hint.clone(),
                scored: if pass.logits {
                    vec![false; responses.len()]
                } else {
                    built.scored.clone()
                },
            });
            if pass.logits {
                distill_contexts = Some(built.contexts.clone());
            }
        }
        if !teachers.is_empty() {
            metrics.insert(
                "timing/teacher".into(),
                teacher_start.elapsed().as_secs_f64(),
            );
            metrics.insert(
                "teacher/scored_frac".into(),
                rows_scored as f64 / rows_asked.max(1) as f64,
            );
        }
        let scoring_seconds = scoring_start.elapsed().as_secs_f64();
        metrics.insert("timing/scoring".into(), scoring_seconds);

        let credit = self.objective.credit(&CreditInput {
            step,
            rewards: &rewards,
            correct: &correct,
            group_ids: &group_ids,
            mask: &mask,
            old_logprobs: &old_logprobs,
            ref_logprobs: ref_logprobs.as_ref(),
            teachers: &teachers,
        })?;
        for (key, value) in &credit.metrics {
            metrics.insert(key.clone(), *value);
        }
        if let (Some(dir), 0) = (&self.rollout_dir, self.dist.rank()) {
            dumps::write_step(
                dir,
                step,
                &dumps::StepRollouts {
                    problems: &problems,
                    batch: &batch,
                    verdicts: &verdicts,
                    tokenizer: self.policy.tokenizer(),
                    credit: &credit,
                    passes: &self.needs.teachers,
                    contexts: &pass_contexts,
                },
            )?;
        }

        let update_start = Instant::now();
        let update = UpdateBatch {
            contexts: &contexts,
            responses: &responses,
            mask: credit.mask.as_ref().unwrap_or(&mask),
            old_logprobs: &old_logprobs,
            old_is_current,
            ref_logprobs: ref_logprobs.as_ref(),
            advantages: &credit.advantages,
            selected: credit.selected.as_ref(),
            teacher: None,
            rewards: &rewards,
            group_ids: &group_ids,
        };
        let groups = batch.prompts.len();
        let group_size = self.config.rollout.group_size;
        let mut totals = UpdateTotals::default();
        // Until an optimizer step changes the weights, the current log-probs are `ℓ^old`.
        let mut fresh = true;
        let mut empty_skipped = 0usize;
        for _ in 0..self.config.update.epochs {
            for chunk in split_even(groups, self.config.update.mini_batches) {
                if chunk.is_empty() {
                    continue;
                }
                let rows: Vec<usize> = (chunk.start * group_size..chunk.end * group_size).collect();
                // This rank's share of the mini-batch: whole groups.
                let share = crate::dist::share(chunk.len(), self.dist.world(), self.dist.rank());
                let mine: Vec<usize> = ((chunk.start + share.start) * group_size
                    ..(chunk.start + share.end) * group_size)
                    .collect();
                // A mini-batch with nothing to learn from takes no optimizer step, where the
                // objective asks for it (a zero gradient would still move AdamW's moments).
                if credit.skip_empty_updates
                    && rows
                        .iter()
                        .all(|&i| update.mask.row(i).iter().all(|&m| m == 0.0))
                {
                    empty_skipped += 1;
                    continue;
                }
                let stepped = self.update_mini_batch(
                    step,
                    &update,
                    distill_contexts.as_deref(),
                    (&rows, &mine),
                    fresh,
                    &mut totals,
                )?;
                fresh &= !stepped;
            }
        }
        if credit.skip_empty_updates {
            metrics.insert("actor/empty_updates_skipped".into(), empty_skipped as f64);
        }
        let update_seconds = update_start.elapsed().as_secs_f64();
        metrics.insert("timing/update".into(), update_seconds);
        // How far the sampler's log-probs are from teacher forcing (verl reports the same as
        // `training/rollout_probs_diff_*`): a large gap means sampling and scoring disagree.
        let (scored, scored_rows) = match totals.current_logprobs.take() {
            // The rows this rank's update computed log-probs for (not the skipped ones).
            Some(current) => (Some(current), totals.trained_rows.clone()),
            // Without an update and without a pass of its own, `ℓ^old` was never computed.
            None if old_is_current => (None, Vec::new()),
            // Every rank holds all of `ℓ^old`: each counts its share of the rows.
            None => (
                Some(old_logprobs),
                crate::dist::share(mask.rows, self.dist.world(), self.dist.rank()).collect(),
            ),
        };
        if let Some(scored) = scored {
            let (mut diff_max, mut sums) = ([0f64], [0f64; 2]); // [Σ |diff|, tokens]
            for &i in &scored_rows {
                for (t, &behaviour) in batch.rollouts[i].behaviour_logprobs.iter().enumerate() {
                    let diff = (behaviour as f64 - scored.get(i, t) as f64).abs();
                    diff_max[0] = diff_max[0].max(diff);
                    sums[0] += diff;
                    sums[1] += f64::from(mask.get(i, t));
                }
            }
            let what = format!("log-prob metrics, step {step}");
            self.dist
                .all_reduce_f64(&mut diff_max, Reduce::Max, &what)?;
            self.dist.all_reduce_f64(&mut sums, Reduce::Sum, &what)?;
            metrics.insert("rollout/logprob_diff_max".into(), diff_max[0]);
            metrics.insert(
                "rollout/logprob_diff_mean".into(),
                sums[0] / sums[1].max(1.0),
            );
        }
        // The slowest rank sets the step's pace.
        let mut timings = [
            metrics["timing/rollout"],
            scoring_seconds,
            update_seconds,
            metrics.get("timing/teacher").copied().unwrap_or(0.0),
        ];
        self.dist
            .all_reduce_f64(&mut timings, Reduce::Max, &format!("timings, step {step}"))?;
        let [
            rollout_seconds,
            scoring_seconds,
            update_seconds,
            teacher_seconds,
        ] = timings;
        metrics.insert("timing/rollout".into(), rollout_seconds);
        metrics.insert("timing/scoring".into(), scoring_seconds);
        metrics.insert("timing/update".into(), update_seconds);
        if metrics.contains_key("timing/teacher") {
            metrics.insert("timing/teacher".into(), teacher_seconds);
        }
        // Teacher passes that scored only some rows count by their share of the tokens.
        let scoring_passes = scored_tokens as f64 / tokens.max(1) as f64;
        // Training passes: three forward-equivalents per response token through an update.
        let trained_passes = totals.trained_tokens as f64 / tokens.max(1) as f64;
        let passes = 1.0 + scoring_passes + 3.0 * trained_passes;
        if let Some(flops) = model_flops(self.policy.as_ref(), &contexts, &responses, passes) {
            let seconds = metrics["timing/rollout"] + scoring_seconds + update_seconds;
            let tflops = flops / seconds.max(1e-9) / 1e12;
            metrics.insert("perf/tflops".into(), tflops);
            if self.config.peak_tflops > 0.0 {
                // `peak_tflops` is one device's: the ranks' devices together peak W times it.
                let peak = self.config.peak_tflops * self.dist.world() as f64;
                metrics.insert("perf/mfu".into(), tflops / peak);
            }
        }

        let (reward_mean, reward_std) = mean_std(rewards.iter().map(|&r| r as f64));
        let (length_mean, _) = mean_std(responses.iter().map(|r| r.len() as f64));
        let clipped = batch.rollouts.iter().filter(|r| !r.finished).count();
        metrics.insert("reward/mean".into(), reward_mean);
        metrics.insert("reward/std".into(), reward_std);
        metrics.insert("response_length/mean".into(), length_mean);
        metrics.insert(
            "response_length/clip_ratio".into(),
            clipped as f64 / responses.len() as f64,
        );
        totals.report(&mut metrics);
        let per_second = |tokens: usize, seconds: f64| tokens as f64 / seconds.max(1e-9);
        let seconds = rollout_seconds + scoring_seconds + update_seconds;
        metrics.insert("perf/throughput".into(), per_second(tokens, seconds));
        metrics.insert(
            "perf/tokens_per_s/rollout".into(),
            per_second(tokens, rollout_seconds),
        );
        metrics.insert(
            "perf/tokens_per_s/scoring".into(),
            per_second(scored_tokens, scoring_seconds),
        );
        metrics.insert(
            "perf/tokens_per_s/update".into(),
            per_second(totals.trained_tokens, update_seconds),
        );
        Ok(metrics)
    }
}

/// The model FLOPs of `passes` forward passes over every response token (a training pass counts
/// as three), or `None` when the policy does not know its FLOPs.
pub fn model_flops(
    policy: &dyn Policy,
    contexts: &[Vec<u32>],
    responses: &[Vec<u32>],
    passes: f64,
) -> Option<f64> {
    let mut total = 0.0;
    for (context, response) in contexts.iter().zip(responses) {
        let n = response.len();
        if n == 0 {
            continue;
        }
        // FLOPs grow linearly with the context: the middle token's are the mean.
        let middle = context.len() + (n - 1) / 2;
        total += n as f64 * policy.flops_per_token(middle)?;
    }
    Some(total * passes)
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
