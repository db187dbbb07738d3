//! `zoo bench --model SHAPE_OR_SOURCE`: one training step of a real model's shape, stage by
//! stage, with random weights (speed and memory do not depend on the values; random weights
//! rarely sample a stop token, so every response runs to the length cap).
//!
//! The step is the trainer's: sampling `prompts × group_size` responses with the KV cache, one
//! no-graph scoring pass (`ℓ^old`), then the objective's gradient over the whole batch (one
//! mini-batch, micro-batches by the token budget, the head in chunks) and one AdamW step. A
//! distillation objective reads a frozen copy of the weights as its teacher, the prompt with 16
//! more tokens as its context.
//!
//! Reported per stage: tokens per second, model TFLOP/s and MFU (with `--peak-tflops`), and
//! peak memory: the process's peak RSS (Linux `VmHWM`, reset before each stage) on the CPU,
//! the largest `memory.used` `nvidia-smi` reports while the stage runs on CUDA. The memory
//! estimate of `zoo train --dry-run` is printed beside it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::Rng;
use serde::Serialize;
use zoo_core::device::DeviceSpec;
use zoo_core::objective::BuildContext;
use zoo_core::optim::{AdamW, OptimConfig};
use zoo_core::trainer::{
    DistillTeacher, MicroBatching, UpdateBatch, mini_batch_gradient, model_flops, score_rows,
};
use zoo_core::{Policy, SamplingConfig, TokenMatrix, registry, rng};
use zoo_llm::memory::{MemoryEstimate, RunShape, estimate, human};
use zoo_llm::shapes::{config_of, random_policy};

use crate::cli::BenchArgs;

/// One stage's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// Wall seconds.
    pub seconds: f64,
    /// Tokens per second (generated, scored or trained response tokens).
    pub tokens_per_s: f64,
    /// Model TFLOP/s.
    pub tflops: f64,
    /// `tflops` over the device's peak, when given.
    pub mfu: Option<f64>,
    /// Peak memory during the stage, bytes, and where it was read.
    pub peak_memory: Option<u64>,
}

/// The result of `zoo bench --model`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelBench {
    /// The shape benchmarked.
    pub model: String,
    /// Its parameter count.
    pub parameters: usize,
    /// The device.
    pub device: String,
    /// The objective whose gradient the update computes.
    pub algo: String,
    /// The compute dtype.
    pub dtype: crate::run_config::ModelDtype,
    /// Whether f32 matrix products may use TF32 (CUDA only).
    pub tf32: bool,
    /// Prompts, responses per prompt, prompt tokens, response tokens.
    pub prompts: usize,
    /// Responses per prompt.
    pub group_size: usize,
    /// Tokens per prompt.
    pub prompt_tokens: usize,
    /// Tokens per response (the cap).
    pub max_new_tokens: usize,
    /// The micro-batch token budget.
    pub micro_batch_tokens: usize,
    /// Positions per head chunk.
    pub chunk_positions: usize,
    /// Where peak memory comes from: `VmHWM` (process RSS) or `nvidia-smi` (device).
    pub memory_source: Option<&'static str>,
    /// Sampling.
    pub rollout: Stage,
    /// The `ℓ^old` pass.
    pub scoring: Stage,
    /// Gradient and optimizer step.
    pub update: Stage,
    /// The whole step.
    pub step_seconds: f64,
    /// The estimate of `zoo train --dry-run` for this run.
    pub estimate: MemoryEstimate,
    /// Parameters + optimizer state + KV cache, the yardstick for peak RSS.
    pub state_estimate: u64,
}

/// Runs `zoo bench --check-attention`: each device's fused attention against the decomposed
/// formula; fails when a case disagrees (the decoder does not use the fused kernel, so a
/// disagreement is a finding, not a wrong result).
pub fn check_attention(args: &BenchArgs) -> Result<()> {
    let devices: Vec<DeviceSpec> = match &args.devices {
        Some(list) => list
            .split(',')
            .map(|d| d.trim().parse::<DeviceSpec>())
            .collect::<Result<_, _>>()?,
        None => DeviceSpec::available(),
    };
    let mut all = Vec::new();
    let mut failed = 0;
    for spec in &devices {
        let cases = zoo_llm::attention_check::check(&spec.device()?);
        failed += cases.iter().filter(|c| !c.ok).count();
        if !args.json {
            for c in &cases {
                println!(
                    "{:<12} {:<44} max |diff| {:>9.2e} {}",
                    spec.to_string(),
                    c.case,
                    c.max_abs_diff,
                    if c.ok { "ok" } else { "DIFFERS" }
                );
            }
        }
        all.push(serde_json::json!({"device": spec.to_string(), "cases": cases}));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    if failed > 0 {
        bail!(
            "{failed} attention case(s) differ from the decomposed formula; zoo's decoder does not use the fused kernel"
        );
    }
    Ok(())
}

/// Runs `zoo bench --model`.
pub fn run(args: &BenchArgs, shape: &str) -> Result<()> {
    let devices: Vec<DeviceSpec> = match &args.devices {
        Some(list) => list
            .split(',')
            .map(|d| d.trim().parse::<DeviceSpec>())
            .collect::<Result<_, _>>()?,
        None => vec![DeviceSpec::Flex],
    };
    if args.prompts == 0 || args.group_size == 0 || args.prompt_tokens == 0 {
        bail!("`--prompts`, `--group-size` and `--prompt-tokens` must be at least 1");
    }
    if args.max_new_tokens == 0 || args.chunk_positions == 0 {
        bail!("`--max-new-tokens` and `--chunk-positions` must be at least 1");
    }
    let mut results = Vec::new();
    for spec in &devices {
        eprintln!(
            "zoo bench: `{shape}` (random weights) on `{spec}`, {} prompts x {} x {} tokens after {}-token prompts, `{}`",
            args.prompts, args.group_size, args.max_new_tokens, args.prompt_tokens, args.algo
        );
        results.push(measure(args, shape, spec)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    for r in &results {
        print_table(r);
    }
    Ok(())
}

fn print_table(r: &ModelBench) {
    println!(
        "{} ({} parameters, {:?}) on {}, {}: {} prompts x {} x {} tokens, prompts of {} tokens, micro-batches of {} tokens, head chunks of {} positions",
        r.model,
        r.parameters,
        r.dtype,
        r.device,
        r.algo,
        r.prompts,
        r.group_size,
        r.max_new_tokens,
        r.prompt_tokens,
        r.micro_batch_tokens,
        r.chunk_positions
    );
    let memory = r.memory_source.unwrap_or("peak memory");
    println!(
        "{:<10} {:>10} {:>12} {:>9} {:>7} {:>14}",
        "stage", "seconds", "tokens/s", "TFLOP/s", "MFU", memory
    );
    for (name, s) in [
        ("rollout", &r.rollout),
        ("scoring", &r.scoring),
        ("update", &r.update),
    ] {
        println!(
            "{:<10} {:>10.2} {:>12.1} {:>9.3} {:>7} {:>14}",
            name,
            s.seconds,
            s.tokens_per_s,
            s.tflops,
            s.mfu.map_or("-".into(), |m| format!("{:.1}%", 100.0 * m)),
            s.peak_memory.map_or("-".into(), human)
        );
    }
    println!(
        "step: {:.2} s{}",
        r.step_seconds,
        if r.device.starts_with("tch-cuda") {
            format!(
                " (TF32 for f32 matrix products: {})",
                if r.tf32 { "on" } else { "off" }
            )
        } else {
            String::new()
        }
    );
    println!("memory estimate (as `zoo train --dry-run`):");
    for (item, bytes) in r.estimate.rows() {
        println!("  {item:<30} {:>12}", human(bytes));
    }
    let peak = [&r.rollout, &r.scoring, &r.update]
        .iter()
        .filter_map(|s| s.peak_memory)
        .max();
    if let Some(peak) = peak {
        println!(
            "measured peak {} = {:.2} x the estimated peak ({}), {:.2} x (parameters + optimizer state + KV cache = {})",
            human(peak),
            peak as f64 / r.estimate.peak() as f64,
            human(r.estimate.peak()),
            peak as f64 / r.state_estimate as f64,
            human(r.state_estimate)
        );
        // The bench's rollout runs before any optimizer step: no moments are resident yet.
        let e = &r.estimate;
        for (name, stage, estimate) in [
            (
                "rollout",
                &r.rollout,
                e.parameters + e.snapshots + e.rollout(),
            ),
            ("update", &r.update, e.resident() + e.update()),
        ] {
            if let Some(measured) = stage.peak_memory {
                println!(
                    "  {name}: measured {} against an estimated {} ({:.2} x)",
                    human(measured),
                    human(estimate),
                    measured as f64 / estimate as f64
                );
            }
        }
    }
}

/// Measures one device.
fn measure(args: &BenchArgs, shape: &str, spec: &DeviceSpec) -> Result<ModelBench> {
    let config = config_of(shape)?;
    let device = spec.device()?;
    let memory = MemoryProbe::new(spec);
    let policy = random_policy(&config, 0, &device)
        .with_context(|| format!("building `{shape}` on `{spec}`"))?
        .with_chunk_positions(args.chunk_positions)
        .with_compute(args.dtype.compute())
        .with_recompute(args.recompute);
    let mut policy: Box<dyn Policy> = Box::new(policy);
    let objective = (registry::algorithm(&args.algo)?.default_config)().build(&BuildContext {
        max_new_tokens: args.max_new_tokens,
        group_size: args.group_size,
        steps: 1,
        temperature: 1.0,
        evaluation: false,
    })?;
    let needs = objective.needs();
    let teacher_policy = needs.student_logits.then(|| policy.snapshot());
    let snapshots = needs.snapshots();

    // Random prompts, each repeated for its group; the last id is the stop token.
    let vocab = config.vocab_size as u32;
    let mut prompt_rng = rng::stream(0, 0, "bench-model-prompts");
    let prompts: Vec<Vec<u32>> = (0..args.prompts)
        .map(|_| {
            (0..args.prompt_tokens)
                .map(|_| prompt_rng.random_range(0..vocab - 1))
                .collect()
        })
        .collect();
    let contexts: Vec<Vec<u32>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), args.group_size))
        .collect();
    let teacher_contexts: Vec<Vec<u32>> = contexts
        .iter()
        .map(|c| [c.as_slice(), &[7; 16]].concat())
        .collect();
    let micro = MicroBatching {
        max_rows: contexts.len(),
        max_tokens: args.micro_batch_tokens,
    };
    let sampling = SamplingConfig {
        temperature: 1.0,
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: 0,
    };
    let flops = |policy: &dyn Policy, responses: &[Vec<u32>], passes: f64| -> f64 {
        model_flops(policy, &contexts, responses, passes).unwrap_or(0.0)
    };
    let stage = |seconds: f64, tokens: usize, flops: f64, peak: Option<u64>| {
        let tflops = flops / seconds.max(1e-9) / 1e12;
        Stage {
            seconds,
            tokens_per_s: tokens as f64 / seconds.max(1e-9),
            tflops,
            mfu: args.peak_tflops.map(|p| tflops / p),
            peak_memory: peak,
        }
    };

    // A short warm-up: kernels, allocator, thread pools.
    let _ = policy.sample(
        &contexts[..1],
        &SamplingConfig {
            temperature: 1.0,
            max_new_tokens: 4,
            min_new_tokens: 0,
        },
        &mut rng::stream(0, 0, "bench-model-warmup"),
    );

    memory.reset();
    let start = Instant::now();
    let samples = policy.sample(
        &contexts,
        &sampling,
        &mut rng::stream(0, 1, "bench-model-sample"),
    );
    let rollout_seconds = start.elapsed().as_secs_f64();
    let responses: Vec<Vec<u32>> = samples.into_iter().map(|s| s.tokens).collect();
    let tokens: usize = responses.iter().map(Vec::len).sum();
    let rollout = stage(
        rollout_seconds,
        tokens,
        flops(policy.as_ref(), &responses, 1.0),
        memory.peak(),
    );

    memory.reset();
    let start = Instant::now();
    let old = score_rows(policy.as_ref(), &contexts, &responses, 1.0, micro);
    let scoring_seconds = start.elapsed().as_secs_f64();
    let scoring = stage(
        scoring_seconds,
        tokens,
        flops(policy.as_ref(), &responses, 1.0),
        memory.peak(),
    );

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
    let group_ids: Vec<usize> = (0..n).map(|i| i / args.group_size).collect();
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
    let mut optimizer = AdamW::new(OptimConfig::default());
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
    // Wait for the update (backends may run asynchronously).
    let _ = params
        .values()
        .next()
        .map(|p| p.value.clone().sum().into_scalar::<f32>());
    let update_seconds = start.elapsed().as_secs_f64();
    let update = stage(
        update_seconds,
        gradient.trained_tokens,
        flops(policy.as_ref(), &responses, 3.0),
        memory.peak(),
    );

    let estimate = estimate(
        &config,
        &RunShape {
            rows: n,
            prompt_tokens: args.prompt_tokens,
            max_new_tokens: args.max_new_tokens,
            micro_batch_rows: n,
            micro_batch_tokens: args.micro_batch_tokens,
            head_chunk_positions: args.chunk_positions,
            snapshots,
            bf16: args.dtype == crate::run_config::ModelDtype::Bf16,
            recompute: args.recompute,
        },
    );
    Ok(ModelBench {
        model: shape.to_string(),
        parameters: config.num_params(),
        device: spec.to_string(),
        algo: args.algo.clone(),
        dtype: args.dtype,
        tf32: zoo_core::device::tf32_on(),
        prompts: args.prompts,
        group_size: args.group_size,
        prompt_tokens: args.prompt_tokens,
        max_new_tokens: args.max_new_tokens,
        micro_batch_tokens: args.micro_batch_tokens,
        chunk_positions: args.chunk_positions,
        memory_source: memory.source(),
        step_seconds: rollout_seconds + scoring_seconds + update_seconds,
        rollout,
        scoring,
        update,
        state_estimate: estimate.parameters + estimate.optimizer + estimate.kv_cache,
        estimate,
    })
}

/// Peak memory of a stage: the process's peak RSS on the CPU, `nvidia-smi`'s `memory.used`
/// sampled every 50 ms on CUDA.
enum MemoryProbe {
    /// Linux `/proc/self/status` `VmHWM`, reset through `/proc/self/clear_refs`.
    Rss,
    /// `nvidia-smi` for GPU `index`, sampled by a thread; the largest value since the reset.
    Gpu {
        index: usize,
        peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    },
    /// Neither is available.
    None,
}

impl MemoryProbe {
    fn new(spec: &DeviceSpec) -> Self {
        if let DeviceSpec::TchCuda(index) = *spec {
            if nvidia_smi_used(index).is_none() {
                return MemoryProbe::None;
            }
            let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let watched = peak.clone();
            std::thread::spawn(move || {
                loop {
                    if let Some(used) = nvidia_smi_used(index) {
                        watched.fetch_max(used, std::sync::atomic::Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            return MemoryProbe::Gpu { index, peak };
        }
        if vm_hwm().is_some() {
            MemoryProbe::Rss
        } else {
            MemoryProbe::None
        }
    }

    fn source(&self) -> Option<&'static str> {
        match self {
            MemoryProbe::Rss => Some("peak RSS"),
            MemoryProbe::Gpu { .. } => Some("nvidia-smi"),
            MemoryProbe::None => None,
        }
    }

    fn reset(&self) {
        match self {
            // "5" resets the peak RSS (Linux 4.0+); without it the peak is the process's.
            MemoryProbe::Rss => {
                let _ = std::fs::write("/proc/self/clear_refs", "5");
            }
            MemoryProbe::Gpu { index, peak } => {
                peak.store(
                    nvidia_smi_used(*index).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            MemoryProbe::None => {}
        }
    }

    fn peak(&self) -> Option<u64> {
        match self {
            MemoryProbe::Rss => vm_hwm(),
            MemoryProbe::Gpu { index, peak } => {
                if let Some(used) = nvidia_smi_used(*index) {
                    peak.fetch_max(used, std::sync::atomic::Ordering::Relaxed);
                }
                Some(peak.load(std::sync::atomic::Ordering::Relaxed))
            }
            MemoryProbe::None => None,
        }
    }
}

/// The process's peak resident set, bytes (`VmHWM` in `/proc/self/status`).
fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory in use on GPU `index`, bytes, as `nvidia-smi` reports it.
fn nvidia_smi_used(index: usize) -> Option<u64> {
    let output = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mib: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .ok()?;
    Some(mib * 1024 * 1024)
}
