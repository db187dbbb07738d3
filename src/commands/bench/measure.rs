//! One training step of a model, stage by stage, with random weights (speed and memory do not
//! depend on the values) and exact shapes: `prompts × group_size` rows, prompts of
//! `prompt_tokens` random ids, every response exactly `response_len` tokens (stop tokens are
//! held off, [`SamplingConfig::min_new_tokens`]).
//!
//! The step is the trainer's: sampling the responses with the KV cache (each distinct prompt
//! prefilled once), one no-graph scoring pass (`ℓ^old`), then the objective's gradient over
//! the whole batch (one mini-batch in micro-batches) and one AdamW step. A distillation
//! objective reads a frozen copy of the weights as its teacher, the prompt with 16 more tokens
//! as its context.
//!
//! One untimed warm-up round, then `rounds` rounds; each stage reports its median time and the
//! largest peak memory of the rounds (with peak RSS, the rollout's is the warm-up's: later
//! rounds' RSS keeps the heap the update freed). FLOPs: [`model_flops`] (2 per matrix parameter per token
//! plus attention over the context; the update counts 3 passes: forward, and backward's two).

use std::time::Instant;

use anyhow::{Context, Result};
use rand::Rng;
use serde::Serialize;
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::Distribution;
use zoo_core::device::DeviceSpec;
use zoo_core::objective::BuildContext;
use zoo_core::optim::{AdamW, OptimConfig};
use zoo_core::trainer::{
    DistillTeacher, MicroBatching, UpdateBatch, mini_batch_gradient, model_flops, score_rows,
};
use zoo_core::{Policy, SamplingConfig, TokenMatrix, registry, rng};
use zoo_llm::LlmConfig;
use zoo_llm::memory::{MemoryEstimate, RunShape, estimate};
use zoo_llm::shapes::random_policy;
use zoo_models::{TinyDecoderConfig, TinyPolicy};

use super::memory::MemoryProbe;
use crate::run_config::ModelDtype;

/// The model benchmarked.
pub enum BenchModel {
    /// The CPU world's tiny decoder.
    Tiny(TinyDecoderConfig),
    /// A Llama / Qwen shape.
    Llm(Box<LlmConfig>),
}

/// What one measurement runs: the shapes and settings, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The objective whose gradient the update computes.
    pub algo: String,
    /// Distinct prompts.
    pub prompts: usize,
    /// Responses per prompt.
    pub group_size: usize,
    /// `prompts × group_size`.
    pub rows: usize,
    /// Tokens per prompt.
    pub prompt_tokens: usize,
    /// Tokens per response, exactly.
    pub response_len: usize,
    /// Timed rounds (after one warm-up).
    pub rounds: usize,
    /// Rows per micro-batch.
    pub micro_batch_rows: usize,
    /// Token budget per micro-batch (0: none).
    pub micro_batch_tokens: usize,
    /// Positions per head chunk (real-model shapes).
    pub chunk_positions: usize,
    /// The compute dtype.
    pub dtype: ModelDtype,
    /// Whether decoder layers are recomputed in the backward pass.
    pub recompute: bool,
    /// The device's peak TFLOP/s, when given.
    pub peak_tflops: Option<f64>,
}

/// One stage's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// Median wall seconds.
    pub seconds: f64,
    /// Response tokens the stage produced or read.
    pub tokens: usize,
    /// `tokens / seconds`.
    pub tokens_per_s: f64,
    /// Model TFLOP/s.
    pub tflops: f64,
    /// `tflops` over the matrix-product rate measured on this device.
    pub peak_fraction: f64,
    /// `tflops` over `--peak-tflops`, when given.
    pub mfu: Option<f64>,
    /// The largest peak memory of the rounds, bytes.
    pub peak_memory: Option<u64>,
}

/// The result of one device's benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Bench {
    /// `zoo`.
    #[serde(rename = "impl")]
    pub implementation: &'static str,
    /// The model (`tiny` or the shape given).
    pub model: String,
    /// Its parameter count.
    pub parameters: usize,
    /// The device.
    pub device: String,
    /// CPU threads available to the process.
    pub threads: usize,
    /// Whether f32 matrix products may use TF32 (CUDA only).
    pub tf32: bool,
    /// The shapes and settings.
    #[serde(flatten)]
    pub settings: Settings,
    /// An f32 `[1024, 1024] × [1024, 1024]` product on this device, TFLOP/s (median of 5).
    pub matmul_peak_tflops: f64,
    /// Where peak memory comes from: `peak RSS` (process) or `nvidia-smi` (device).
    pub memory_source: Option<&'static str>,
    /// Sampling.
    pub rollout: Stage,
    /// The `ℓ^old` pass.
    pub scoring: Stage,
    /// Gradient and optimizer step.
    pub update: Stage,
    /// `rollout.seconds`.
    pub sample_s: f64,
    /// `update.seconds`: forward, backward and the optimizer step.
    pub train_step_s: f64,
    /// The three stages' medians together.
    pub step_seconds: f64,
    /// The estimate of `zoo train --dry-run` for this run (real-model shapes).
    pub estimate: Option<MemoryEstimate>,
    /// Parameters + optimizer state + KV cache (real-model shapes).
    pub state_estimate: Option<u64>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Waits for `t` (backends may run asynchronously) by reading one element back.
fn sync(t: Tensor<2>) {
    let _ = t.slice([0..1, 0..1]).into_data();
}

/// The f32 matrix-product rate of `device`, TFLOP/s: the median of 5 products of two
/// `[1024, 1024]` matrices after 2 untimed ones.
pub fn matmul_peak_tflops(device: &Device) -> f64 {
    let n = 1024;
    let a = Tensor::<2>::random([n, n], Distribution::Uniform(-1.0, 1.0), device);
    let b = Tensor::<2>::random([n, n], Distribution::Uniform(-1.0, 1.0), device);
    let mut times = Vec::new();
    for i in 0..7 {
        let start = Instant::now();
        sync(a.clone().matmul(b.clone()));
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    2.0 * (n * n * n) as f64 / median(times) / 1e12
}

/// Measures one device.
pub fn measure(model: &BenchModel, name: &str, s: &Settings, spec: &DeviceSpec) -> Result<Bench> {
    let device = spec.device()?;
    let memory = MemoryProbe::new(spec);
    let (mut policy, parameters, vocab): (Box<dyn Policy>, usize, usize) = match model {
        BenchModel::Tiny(config) => {
            let policy = TinyPolicy::new(config, &mut rng::stream(0, 0, "bench-init"), &device)?;
            let parameters = policy.num_params();
            (Box::new(policy), parameters, config.vocab_size)
        }
        BenchModel::Llm(config) => {
            let policy = random_policy(config, 0, &device)
                .with_context(|| format!("building `{name}` on `{spec}`"))?
                .with_chunk_positions(s.chunk_positions)
                .with_compute(s.dtype.compute())
                .with_recompute(s.recompute);
            (Box::new(policy), config.num_params(), config.vocab_size)
        }
    };
    let objective = (registry::algorithm(&s.algo)?.default_config)().build(&BuildContext {
        max_new_tokens: s.response_len,
        group_size: s.group_size,
        steps: 1,
        temperature: 1.0,
        evaluation: false,
    })?;
    let needs = objective.needs();
    let teacher_policy = needs.student_logits.then(|| policy.snapshot());

    // Random prompts, each repeated for its group (a group's rows adjacent).
    let mut prompt_rng = rng::stream(0, 0, "bench-prompts");
    let prompts: Vec<Vec<u32>> = (0..s.prompts)
        .map(|_| {
            (0..s.prompt_tokens)
                .map(|_| prompt_rng.random_range(0..vocab as u32 - 1))
                .collect()
        })
        .collect();
    let contexts: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), s.group_size))
        .collect();
    let teacher_contexts: Vec<Vec<u32>> = contexts
        .iter()
        .map(|c| [c.as_slice(), &[7; 16]].concat())
        .collect();
    let micro = MicroBatching {
        max_rows: s.micro_batch_rows,
        max_tokens: s.micro_batch_tokens,
    };
    let sampling = SamplingConfig {
        temperature: 1.0,
        max_new_tokens: s.response_len,
        min_new_tokens: s.response_len,
    };
    let matmul_peak = matmul_peak_tflops(&device);

    let mut optimizer = AdamW::new(OptimConfig::default());
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut peaks = [None, None, None];
    let mut tokens = [0, 0, 0];
    let mut flops = [0.0, 0.0, 0.0];
    // A process's RSS keeps heap that earlier stages freed: the rollout's own peak is the
    // warm-up's, the first thing the process runs after loading.
    let rss = matches!(memory, MemoryProbe::Rss);
    for round in 0..=s.rounds {
        let mut record = |stage: usize, seconds: f64, n: usize, f: f64, peak: Option<u64>| {
            if round == 0 && stage == 0 && rss {
                peaks[stage] = peak;
            }
            if round > 0 {
                times[stage].push(seconds);
                tokens[stage] = n;
                flops[stage] = f;
                if !(stage == 0 && rss) {
                    peaks[stage] = peaks[stage].max(peak);
                }
            }
        };
        memory.reset();
        let start = Instant::now();
        let samples = policy.sample(
            &contexts,
            &sampling,
            &mut rng::stream(0, round as u64, "bench-sample"),
        );
        let seconds = start.elapsed().as_secs_f64();
        let responses: Vec<Vec<u32>> = samples.into_iter().map(|s| s.tokens).collect();
        let generated: usize = responses.iter().map(Vec::len).sum();
        let forward = model_flops(policy.as_ref(), &contexts, &responses, 1.0).unwrap_or(0.0);
        record(0, seconds, generated, forward, memory.peak());

        memory.reset();
        let start = Instant::now();
        let old = score_rows(policy.as_ref(), &contexts, &responses, 1.0, micro);
        let seconds = start.elapsed().as_secs_f64();
        record(1, seconds, generated, forward, memory.peak());

        let n = responses.len();
        let mut mask = TokenMatrix::zeros(n, old.cols);
        let mut advantages = TokenMatrix::zeros(n, old.cols);
        for (i, r) in responses.iter().enumerate() {
            for t in 0..r.len() {
                mask.set(i, t, 1.0);
                advantages.set(i, t, if i % 2 == 0 { 1.0 } else { -1.0 });
            }
        }
        let rewards: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
        let group_ids: Vec<usize> = (0..n).map(|i| i / s.group_size).collect();
        let batch = UpdateBatch {
            contexts: &contexts,
            responses: &responses,
            mask: &mask,
            old_logprobs: &old,
            old_is_current: false,
            ref_logprobs: Some(&old),
            advantages: &advantages,
            selected: None,
            teacher: teacher_policy.as_deref().map(|p| DistillTeacher {
                policy: p,
                contexts: &teacher_contexts,
            }),
            rewards: &rewards,
            group_ids: &group_ids,
        };
        memory.reset();
        let start = Instant::now();
        let rows: Vec<usize> = (0..n).collect();
        let gradient = mini_batch_gradient(
            policy.as_ref(),
            objective.as_ref(),
            &batch,
            &rows,
            micro,
            1.0,
            true,
        )?;
        let (params, _) = optimizer.step(&policy.parameters(), gradient.grads, 1e-6)?;
        policy.set_parameters(&params)?;
        if let Some(p) = params.values().next() {
            let _ = p.value.clone().sum().into_scalar::<f32>();
        }
        let seconds = start.elapsed().as_secs_f64();
        record(
            2,
            seconds,
            gradient.trained_tokens,
            3.0 * forward,
            memory.peak(),
        );
    }

    let stage = |i: usize| {
        let seconds = median(times[i].clone());
        let tflops = flops[i] / seconds.max(1e-9) / 1e12;
        Stage {
            seconds,
            tokens: tokens[i],
            tokens_per_s: tokens[i] as f64 / seconds.max(1e-9),
            tflops,
            peak_fraction: tflops / matmul_peak,
            mfu: s.peak_tflops.map(|p| tflops / p),
            peak_memory: peaks[i],
        }
    };
    let (rollout, scoring, update) = (stage(0), stage(1), stage(2));
    let estimate = match model {
        BenchModel::Llm(config) => Some(estimate(
            config,
            &RunShape {
                rows: s.rows,
                prompt_tokens: s.prompt_tokens,
                max_new_tokens: s.response_len,
                micro_batch_rows: s.micro_batch_rows,
                micro_batch_tokens: s.micro_batch_tokens,
                head_chunk_positions: s.chunk_positions,
                snapshots: needs.snapshots(),
                bf16: s.dtype == ModelDtype::Bf16,
                recompute: s.recompute,
                lora_trainable: 0,
                bf16_base: false,
            },
        )),
        BenchModel::Tiny(_) => None,
    };
    Ok(Bench {
        implementation: "zoo",
        model: name.to_string(),
        parameters,
        device: spec.to_string(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        tf32: zoo_core::device::tf32_on(),
        settings: s.clone(),
        matmul_peak_tflops: matmul_peak,
        memory_source: memory.source(),
        sample_s: rollout.seconds,
        train_step_s: update.seconds,
        step_seconds: rollout.seconds + scoring.seconds + update.seconds,
        rollout,
        scoring,
        update,
        state_estimate: estimate
            .as_ref()
            .map(|e| e.parameters + e.optimizer + e.kv_cache),
        estimate,
    })
}
