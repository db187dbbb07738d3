//! The shared RL trainer. Algorithm-blind: it knows objectives only through [`Objective`].
//!
//! One step:
//! 1. draw `prompts_per_step` training problems and sample `group_size` responses to each,
//!    recording behaviour log-probs; score every response with the task's verifier; with
//!    dynamic sampling, drop the groups the objective rejects and sample more prompts;
//! 2. run the declared extra passes without an autodiff graph, in micro-batch chunks: `ℓ^old`
//!    (recomputed, as verl does), `ℓ^ref` from the frozen initial policy, and each teacher
//!    pass (a hinted context scored by the current, frozen initial or EMA weights);
//! 3. credit: the objective turns rewards and teacher scores into per-token advantages;
//! 4. update: `epochs` passes over `mini_batches` mini-batches (whole groups), each split into
//!    micro-batches of at most `micro_batch_size` responses; gradients are summed over the
//!    micro-batches with aggregation coefficients computed over the whole mini-batch, clipped,
//!    and applied by AdamW;
//! 5. metrics, and a checkpoint every `checkpoint_every` steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::batch::{LogitArray, Rollout, RolloutBatch, TokenMatrix};
use crate::checkpoint;
use crate::metrics::{Metrics, mean_std};
use crate::objective::{
    CreditInput, LossInput, Needs, Objective, Shortfall, TeacherContext, TeacherScores,
    TeacherWeights, WrongAnswerRule,
};
use crate::optim::{AdamW, OptimConfig};
use crate::policy::{NamedTensors, Policy, SamplingConfig, sampled_logprobs};
use crate::rng;
use crate::task::{Hint, Problem, Task, Verdict};
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
    /// The frozen initial policy: the reference of a KL term, OPSD's fixed teacher.
    initial: Option<Box<dyn Policy>>,
    /// The EMA teacher and its rate (SDPO).
    ema: Option<(f32, Box<dyn Policy>)>,
    objective: Box<dyn Objective>,
    needs: Needs,
    task: &'a dyn Task,
    optimizer: AdamW,
    /// Optimizer steps skipped in a row for a non-finite loss or gradient.
    nonfinite_streak: usize,
}

/// The groups of one step after sampling (and dynamic sampling's filter).
struct Collected {
    problems: Vec<Problem>,
    batch: RolloutBatch,
    verdicts: Vec<Verdict>,
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
        if needs.teachers.iter().filter(|t| t.logits).count() > 1 {
            return Err(Error::Config(format!(
                "objective `{name}` asks for teacher logits from more than one pass; the trainer passes one"
            )));
        }
        let mut ema_rate = None;
        for pass in &needs.teachers {
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
        let wants_initial = needs.reference_logprobs
            || needs
                .teachers
                .iter()
                .any(|t| t.weights == TeacherWeights::Initial);
        let initial = wants_initial.then(|| policy.snapshot());
        let ema = ema_rate.map(|rate| (rate, policy.snapshot()));
        let optimizer = AdamW::new(config.optim.clone());
        Ok(Self {
            config,
            seed,
            total_steps,
            policy,
            initial,
            ema,
            objective,
            needs,
            task,
            optimizer,
            nonfinite_streak: 0,
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
        let (old_logprobs, _) = scored_without_graph(
            self.policy.as_ref(),
            &contexts,
            &responses,
            temperature,
            chunk,
            false,
        );
        let ref_logprobs = match (&self.initial, self.needs.reference_logprobs) {
            (Some(initial), true) => Some(
                scored_without_graph(
                    initial.as_ref(),
                    &contexts,
                    &responses,
                    temperature,
                    chunk,
                    false,
                )
                .0,
            ),
            _ => None,
        };
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

        let teacher_start = Instant::now();
        let mut teachers = Vec::with_capacity(self.needs.teachers.len());
        for pass in &self.needs.teachers {
            let (teacher_contexts, has_hint) =
                self.teacher_contexts(pass.context, &problems, &batch, &verdicts)?;
            let scorer: &dyn Policy = match pass.weights {
                TeacherWeights::Current => self.policy.as_ref(),
                TeacherWeights::Initial => self.initial.as_deref().expect("snapshot taken in new"),
                TeacherWeights::Ema { .. } => {
                    self.ema.as_ref().expect("snapshot taken in new").1.as_ref()
                }
            };
            let (logprobs, logits) = scored_without_graph(
                scorer,
                &teacher_contexts,
                &responses,
                temperature,
                chunk,
                pass.logits,
            );
            teachers.push(TeacherScores {
                logprobs,
                has_hint,
                logits,
            });
        }
        if !teachers.is_empty() {
            metrics.insert(
                "timing/teacher".into(),
                teacher_start.elapsed().as_secs_f64(),
            );
        }

        let group_ids = batch.group_ids();
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

        let update = UpdateBatch {
            contexts: &contexts,
            responses: &responses,
            mask: credit.mask.as_ref().unwrap_or(&mask),
            old_logprobs: &old_logprobs,
            ref_logprobs: ref_logprobs.as_ref(),
            advantages: &credit.advantages,
            teacher_logits: teachers.iter().find_map(|t| t.logits.as_ref()),
            rewards: &rewards,
            group_ids: &group_ids,
        };
        let groups = batch.prompts.len();
        let group_size = self.config.rollout.group_size;
        let mut totals = UpdateTotals::default();
        for _ in 0..self.config.update.epochs {
            for chunk in split_even(groups, self.config.update.mini_batches) {
                if chunk.is_empty() {
                    continue;
                }
                let rows: Vec<usize> = (chunk.start * group_size..chunk.end * group_size).collect();
                self.update_mini_batch(step, &update, &rows, &mut totals)?;
            }
        }
        metrics.insert("timing/update".into(), update_start.elapsed().as_secs_f64());

        let (reward_mean, reward_std) = mean_std(rewards.iter().map(|&r| r as f64));
        let tokens: usize = responses.iter().map(Vec::len).sum();
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
        let seconds = metrics["timing/rollout"] + metrics["timing/update"];
        metrics.insert("perf/throughput".into(), tokens as f64 / seconds.max(1e-9));
        Ok(metrics)
    }

    /// Samples groups, verifies them and, with dynamic sampling, keeps the groups the
    /// objective accepts until `prompts_per_step` are kept or the rounds run out.
    fn collect(&self, step: usize, metrics: &mut Metrics) -> Result<Collected> {
        let wanted = self.config.rollout.prompts_per_step;
        let group_size = self.config.rollout.group_size;
        let dynamic = self.needs.dynamic_sampling;
        let rounds = dynamic.map_or(1, |d| d.max_rounds);
        let tokenizer = self.policy.tokenizer();
        let mut kept = Collected {
            problems: Vec::new(),
            batch: RolloutBatch {
                prompts: Vec::new(),
                rollouts: Vec::new(),
            },
            verdicts: Vec::new(),
        };
        let (mut generated, mut correct_count, mut rounds_used) = (0usize, 0usize, 0usize);
        for round in 0..rounds {
            rounds_used += 1;
            let (problems, batch) = self.rollout(step, round)?;
            for (g, problem) in problems.into_iter().enumerate() {
                let members = &batch.rollouts[g * group_size..(g + 1) * group_size];
                let verdicts: Vec<Verdict> = members
                    .iter()
                    .map(|r| {
                        let text = tokenizer.decode(&r.tokens);
                        self.task.verifier().verify(&text, &problem)
                    })
                    .collect();
                generated += members.len();
                correct_count += verdicts.iter().filter(|v| v.correct).count();
                let rewards: Vec<f32> = verdicts.iter().map(|v| v.score).collect();
                let correct: Vec<bool> = verdicts.iter().map(|v| v.correct).collect();
                let keep = dynamic.is_none() || self.objective.keep_group(&rewards, &correct);
                if !keep || kept.problems.len() == wanted {
                    continue;
                }
                let id = kept.problems.len();
                kept.batch.prompts.push(batch.prompts[g].clone());
                kept.batch
                    .rollouts
                    .extend(members.iter().cloned().map(|r| Rollout {
                        problem: id,
                        group_id: id,
                        ..r
                    }));
                kept.problems.push(problem);
                kept.verdicts.extend(verdicts);
            }
            if kept.problems.len() == wanted {
                break;
            }
        }
        metrics.insert(
            "accuracy/train".into(),
            correct_count as f64 / generated.max(1) as f64,
        );
        if let Some(dynamic) = dynamic {
            metrics.insert("rollout/generation_rounds".into(), rounds_used as f64);
            metrics.insert("rollout/kept_groups".into(), kept.problems.len() as f64);
            if kept.problems.len() < wanted {
                metrics.insert(
                    "rollout/shortfall_groups".into(),
                    (wanted - kept.problems.len()) as f64,
                );
                if dynamic.on_shortfall == Shortfall::Error {
                    return Err(Error::Config(format!(
                        "step {step}: dynamic sampling kept {} of {wanted} groups after {rounds_used} generation rounds (every other group was all-correct or all-wrong)\nhint: raise the objective's `max_gen_rounds`, or set its `on_shortfall = \"log\"` to train on the groups kept",
                        kept.problems.len()
                    )));
                }
            }
        }
        Ok(kept)
    }

    /// Samples `prompts_per_step` groups; round 0 uses the step's main streams, later rounds
    /// (dynamic sampling) their own.
    fn rollout(&self, step: usize, round: usize) -> Result<(Vec<Problem>, RolloutBatch)> {
        let rollout = &self.config.rollout;
        let purpose = |name: &str| match round {
            0 => name.to_string(),
            r => format!("{name}/round-{r}"),
        };
        let mut prompt_rng = rng::stream(self.seed, step as u64, &purpose("prompts"));
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
        let mut sample_rng = rng::stream(self.seed, step as u64, &purpose("sample"));
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

    /// The context of every response under a teacher `context`, and whether it holds its hint.
    fn teacher_contexts(
        &self,
        context: TeacherContext,
        problems: &[Problem],
        batch: &RolloutBatch,
        verdicts: &[Verdict],
    ) -> Result<(Vec<Vec<u32>>, Vec<bool>)> {
        let tokenizer = self.policy.tokenizer();
        let n = batch.rollouts.len();
        let group_size = n / problems.len();
        let texts: Vec<String> = batch
            .rollouts
            .iter()
            .map(|r| tokenizer.decode(&r.tokens))
            .collect();
        let mut contexts = Vec::with_capacity(n);
        let mut has_hint = Vec::with_capacity(n);
        for (g, problem) in problems.iter().enumerate() {
            let members: Vec<usize> = (g * group_size..(g + 1) * group_size).collect();
            let gold = Hint::Answer(problem.answer.clone());
            // Group-level hints (CEPO's wrong answer) are computed once per group.
            let wrong = match context {
                TeacherContext::WrongAnswer(rule) => wrong_answer(rule, &members, verdicts, &texts),
                _ => None,
            };
            for &i in &members {
                let (hint, found) = match context {
                    TeacherContext::GoldAnswer => (Some(gold.clone()), true),
                    TeacherContext::Solution => {
                        (Some(Hint::Solution(problem.solution.clone())), true)
                    }
                    TeacherContext::WrongAnswer(_) => match &wrong {
                        Some(w) => (Some(Hint::Answer(w.clone())), true),
                        None => (Some(gold.clone()), false),
                    },
                    TeacherContext::SuccessfulGroupMate { threshold } => {
                        match successful_group_mate(i, &members, verdicts, threshold) {
                            Some(j) => (Some(Hint::Solution(texts[j].clone())), true),
                            None => (None, false),
                        }
                    }
                };
                let prompt = match hint {
                    Some(hint) => self.task.hinted_prompt(problem, &hint),
                    None => problem.prompt.clone(),
                };
                contexts.push(tokenizer.encode_prompt(&prompt)?);
                has_hint.push(found);
            }
        }
        Ok((contexts, has_hint))
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
        )?;
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
                .step(&self.policy.parameters(), &gradient.grads, lr)
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
                return Ok(());
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
        totals.loss += gradient.loss;
        totals.grad_norm += report.grad_norm;
        totals.lr = report.lr;
        totals.updates += 1;
        totals.tokens += gradient.tokens;
        for (name, sum) in gradient.token_metric_sums {
            totals.add_token_metric(name, sum);
        }
        for (name, value) in gradient.metrics {
            totals.add_metric(name, value);
        }
        Ok(())
    }

    /// Writes the checkpoint of `step` under `dir` atomically: the policy, the optimizer state,
    /// the frozen initial policy and the EMA teacher when the objective uses them, and the
    /// trainer state.
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
            self.policy.write_model_files(tmp)?;
            checkpoint::save_safetensors(
                &tmp.join("optimizer.safetensors"),
                &self.optimizer.state(),
                &Default::default(),
            )?;
            if let Some(initial) = &self.initial {
                checkpoint::save_safetensors(
                    &tmp.join(INITIAL_FILE),
                    &initial.parameters(),
                    &initial.metadata(),
                )?;
            }
            if let Some((_, ema)) = &self.ema {
                checkpoint::save_safetensors(
                    &tmp.join(EMA_FILE),
                    &ema.parameters(),
                    &ema.metadata(),
                )?;
            }
            let json = serde_json::to_string_pretty(&state).expect("state serializes");
            checkpoint::write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())
        })?;
        Ok(target)
    }

    /// Restores policy weights, optimizer state and the objective's extra policies from a
    /// checkpoint folder; returns the step it was written after.
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
        if let Some(initial) = &mut self.initial {
            initial.set_parameters(&checkpoint::load_safetensors(
                &folder.join(INITIAL_FILE),
                &device,
            )?)?;
        }
        if let Some((_, ema)) = &mut self.ema {
            ema.set_parameters(&checkpoint::load_safetensors(
                &folder.join(EMA_FILE),
                &device,
            )?)?;
        }
        Ok(state.step)
    }
}

/// The checkpoint file of the frozen initial policy.
const INITIAL_FILE: &str = "initial_policy.safetensors";
/// The checkpoint file of the EMA teacher.
const EMA_FILE: &str = "teacher_ema.safetensors";

/// SDPO's demonstration for response `i`: the first response of its group, other than `i`,
/// whose score reaches `threshold` (`dont_reprompt_on_self_success`).
fn successful_group_mate(
    i: usize,
    members: &[usize],
    verdicts: &[Verdict],
    threshold: f32,
) -> Option<usize> {
    members
        .iter()
        .copied()
        .find(|&j| j != i && verdicts[j].score >= threshold)
}

/// The wrong answer of one group's negative teacher, or `None` when no rejected response
/// (score < 0.5, as in the CEPO reference) yields one.
fn wrong_answer(
    rule: WrongAnswerRule,
    members: &[usize],
    verdicts: &[Verdict],
    texts: &[String],
) -> Option<String> {
    let rejected = members.iter().copied().filter(|&i| verdicts[i].score < 0.5);
    match rule {
        WrongAnswerRule::MostFrequent => {
            // (answer, count, lowest score, first index)
            let mut tally: Vec<(&str, usize, f32, usize)> = Vec::new();
            for i in rejected {
                let Some(answer) = verdicts[i].extracted.as_deref().filter(|a| !a.is_empty())
                else {
                    continue;
                };
                match tally.iter_mut().find(|(a, ..)| *a == answer) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 = entry.2.min(verdicts[i].score);
                    }
                    None => tally.push((answer, 1, verdicts[i].score, i)),
                }
            }
            tally
                .into_iter()
                .min_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)).then(a.3.cmp(&b.3)))
                .map(|(answer, ..)| answer.to_string())
        }
        WrongAnswerRule::LowestScore => rejected
            .min_by(|&a, &b| {
                verdicts[a]
                    .score
                    .total_cmp(&verdicts[b].score)
                    .then(a.cmp(&b))
            })
            .map(|i| match verdicts[i].extracted.as_deref() {
                Some(answer) if !answer.is_empty() => answer.to_string(),
                _ => texts[i].chars().take(50).collect(),
            }),
    }
}

/// The per-response inputs of an update, for all `n` responses of a rollout batch.
pub struct UpdateBatch<'b> {
    /// The context (prompt) of each response.
    pub contexts: &'b [Vec<u32>],
    /// The response tokens.
    pub responses: &'b [Vec<u32>],
    /// Loss mask `[n, t]`: the response mask or the credit stage's.
    pub mask: &'b TokenMatrix,
    /// `ℓ^old` `[n, t]`.
    pub old_logprobs: &'b TokenMatrix,
    /// `ℓ^ref` `[n, t]`, if the objective needs it.
    pub ref_logprobs: Option<&'b TokenMatrix>,
    /// `Â` `[n, t]`.
    pub advantages: &'b TokenMatrix,
    /// Teacher logits `[n, t, v]`, if a teacher pass kept them.
    pub teacher_logits: Option<&'b LogitArray>,
    /// Verifier scores `[n]`.
    pub rewards: &'b [f32],
    /// Group ids `[n]`.
    pub group_ids: &'b [usize],
}

/// The summed gradient of one mini-batch.
pub struct MiniBatchGradient {
    /// Parameter gradients of the aggregated loss.
    pub grads: NamedTensors,
    /// The aggregated loss.
    pub loss: f64,
    /// Loss-mask tokens in the mini-batch.
    pub tokens: f64,
    /// `Σ mask · metric` per token metric.
    pub token_metric_sums: Vec<(&'static str, f64)>,
    /// The objective's scalar metrics, averaged over the micro-batches.
    pub metrics: Vec<(&'static str, f64)>,
}

/// The gradient of the mini-batch `rows` of `batch`, computed in micro-batches of at most
/// `micro_batch_size` responses (one micro-batch when the objective needs the whole
/// mini-batch). The aggregation coefficients are computed over the whole mini-batch, so the
/// result does not depend on `micro_batch_size` (up to float rounding).
pub fn mini_batch_gradient(
    policy: &dyn Policy,
    objective: &dyn Objective,
    batch: &UpdateBatch<'_>,
    rows: &[usize],
    micro_batch_size: usize,
    temperature: f32,
) -> Result<MiniBatchGradient> {
    let device = policy.device();
    let needs = objective.needs();
    let micro_batch_size = if needs.whole_mini_batch {
        rows.len()
    } else {
        micro_batch_size
    };
    let mini_mask = batch.mask.select_rows(rows);
    let coefficients = objective.aggregation().token_coefficients(&mini_mask);
    let mut grads: Option<NamedTensors> = None;
    let mut loss_total = 0.0;
    let mut token_metric_sums: Vec<(&'static str, f64)> = Vec::new();
    let mut metric_sums: Vec<(&'static str, f64)> = Vec::new();
    let mut calls = 0usize;
    for (chunk_index, micro) in rows.chunks(micro_batch_size).enumerate() {
        let local: Vec<usize> = (chunk_index * micro_batch_size
            ..chunk_index * micro_batch_size + micro.len())
            .collect();
        let contexts: Vec<Vec<u32>> = micro.iter().map(|&r| batch.contexts[r].clone()).collect();
        let responses: Vec<Vec<u32>> = micro.iter().map(|&r| batch.responses[r].clone()).collect();
        let (logprobs, logits) = if needs.student_logits {
            let logits = policy.token_logits(&contexts, &responses, true);
            let logprobs = sampled_logprobs(logits.clone(), &responses, temperature);
            (logprobs, Some(logits))
        } else {
            let logprobs = policy.token_logprobs(&contexts, &responses, temperature, true);
            (logprobs, None)
        };
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
            logits,
            teacher_logits: batch
                .teacher_logits
                .map(|l| l.select_rows(micro, cols).to_tensor(&device)),
            rewards: micro.iter().map(|&r| batch.rewards[r]).collect(),
            group_ids: micro.iter().map(|&r| batch.group_ids[r]).collect(),
        });
        let coef = take(&coefficients, &local);
        let mut loss = terms.per_token.mul(coef).sum();
        if let Some(scalar) = terms.scalar {
            if !needs.whole_mini_batch {
                return Err(Error::Config(format!(
                    "objective `{}` returned a scalar loss term without declaring `whole_mini_batch`: its value would depend on the micro-batch size",
                    objective.name()
                )));
            }
            loss = loss.add(scalar);
        }
        loss_total += loss.clone().into_scalar::<f64>();
        for (name, values) in terms.token_metrics {
            let sum = values.detach().mul(mask.clone()).sum().into_scalar::<f64>();
            add_to(&mut token_metric_sums, name, sum);
        }
        for (name, value) in terms.metrics {
            add_to(&mut metric_sums, name, value);
        }
        calls += 1;
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
    for (_, sum) in &mut metric_sums {
        *sum /= calls.max(1) as f64;
    }
    Ok(MiniBatchGradient {
        grads: grads.expect("a mini-batch holds at least one response"),
        loss: loss_total,
        tokens: mini_mask.data.iter().map(|&m| m as f64).sum(),
        token_metric_sums,
        metrics: metric_sums,
    })
}

/// Adds `value` to the entry `name` of `sums`, creating it if needed.
fn add_to(sums: &mut Vec<(&'static str, f64)>, name: &'static str, value: f64) {
    match sums.iter_mut().find(|(n, _)| *n == name) {
        Some((_, s)) => *s += value,
        None => sums.push((name, value)),
    }
}

#[derive(Default)]
struct UpdateTotals {
    /// Optimizer steps skipped for a non-finite loss or gradient.
    skipped: usize,
    loss: f64,
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

    fn report(&self, metrics: &mut Metrics) {
        let updates = self.updates.max(1) as f64;
        metrics.insert("actor/skipped_updates".into(), self.skipped as f64);
        metrics.insert("actor/pg_loss".into(), self.loss / updates);
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

/// Teacher-forced log-probs `[n, t]` of all responses without an autodiff graph, and with
/// `keep_logits` their raw logits `[n, t, v]`, computed in chunks of at most `chunk` responses
/// (the micro-batch size bounds memory here too).
fn scored_without_graph(
    policy: &dyn Policy,
    contexts: &[Vec<u32>],
    responses: &[Vec<u32>],
    temperature: f32,
    chunk: usize,
    keep_logits: bool,
) -> (TokenMatrix, Option<LogitArray>) {
    let cols = responses.iter().map(Vec::len).max().unwrap_or(0);
    let mut data = Vec::with_capacity(responses.len() * cols);
    let mut logit_parts: Vec<LogitArray> = Vec::new();
    for (c, r) in contexts.chunks(chunk).zip(responses.chunks(chunk)) {
        let logits = policy.token_logits(c, r, false);
        let logprobs = sampled_logprobs(logits.clone(), r, temperature);
        data.extend(narrow_cols(&TokenMatrix::from_tensor(logprobs), cols).data);
        if keep_logits {
            let part = LogitArray::from_tensor(logits);
            let all: Vec<usize> = (0..part.rows).collect();
            logit_parts.push(part.select_rows(&all, cols));
        }
    }
    let logits = keep_logits.then(|| LogitArray {
        rows: responses.len(),
        cols,
        vocab: logit_parts.first().map_or(0, |p| p.vocab),
        data: logit_parts.into_iter().flat_map(|p| p.data).collect(),
    });
    let logprobs = TokenMatrix {
        rows: responses.len(),
        cols,
        data,
    };
    (logprobs, logits)
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

    fn verdict(score: f32, extracted: Option<&str>) -> Verdict {
        Verdict {
            score,
            correct: score >= 1.0,
            extracted: extracted.map(str::to_string),
            parsed: extracted.is_some(),
            reason: String::new(),
        }
    }

    #[test]
    fn wrong_answer_is_the_most_frequent_extracted_one() {
        let verdicts = [
            verdict(1.0, Some("42")),
            verdict(0.0, Some("41")),
            verdict(0.0, None),
            verdict(0.0, Some("43")),
            verdict(0.0, Some("43")),
            verdict(0.2, Some("41")),
        ];
        let texts: Vec<String> = (0..6).map(|i| format!("text {i}")).collect();
        let members: Vec<usize> = (0..6).collect();
        let pick = |rule, members: &[usize]| wrong_answer(rule, members, &verdicts, &texts);
        // 41 and 43 both appear twice; 43's lowest score (0.0) ties 41's (0.0): first wins.
        assert_eq!(
            pick(WrongAnswerRule::MostFrequent, &members).as_deref(),
            Some("41")
        );
        assert_eq!(
            pick(WrongAnswerRule::MostFrequent, &[0, 3, 4, 5]).as_deref(),
            Some("43")
        );
        // Ties on count: the lower score wins.
        assert_eq!(
            pick(WrongAnswerRule::MostFrequent, &[5, 3]).as_deref(),
            Some("43")
        );
        // Only correct or answer-less rejected responses: no wrong answer.
        assert_eq!(pick(WrongAnswerRule::MostFrequent, &[0, 2]), None);
        // The reference rule: the lowest score, first on ties, its text when it has no answer.
        assert_eq!(
            pick(WrongAnswerRule::LowestScore, &[0, 2, 3]).as_deref(),
            Some("text 2")
        );
        assert_eq!(
            pick(WrongAnswerRule::LowestScore, &[5, 3]).as_deref(),
            Some("43")
        );
        assert_eq!(pick(WrongAnswerRule::LowestScore, &[0]), None);
    }

    #[test]
    fn group_mate_is_the_first_other_success() {
        let verdicts = [verdict(1.0, None), verdict(0.0, None), verdict(1.0, None)];
        let members = [0, 1, 2];
        assert_eq!(successful_group_mate(0, &members, &verdicts, 0.5), Some(2));
        assert_eq!(successful_group_mate(1, &members, &verdicts, 0.5), Some(0));
        assert_eq!(successful_group_mate(2, &members, &verdicts, 0.5), Some(0));
        let lone = [verdict(1.0, None), verdict(0.0, None)];
        assert_eq!(successful_group_mate(0, &[0, 1], &lone, 0.5), None);
    }

    #[test]
    fn split_even_covers_everything_once() {
        let parts = split_even(10, 3);
        assert_eq!(parts, vec![0..4, 4..7, 7..10]);
        assert_eq!(split_even(4, 4).len(), 4);
    }
}
