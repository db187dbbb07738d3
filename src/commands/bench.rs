//! `zoo bench`: tokens per second of sampling and of a training step on the CPU default model,
//! for every device this build has, with the ratio to the first device.
//!
//! A measurement on one device: the default decoder (646k parameters, random weights: speed does
//! not depend on them) on `--batch` addition prompts with the task's length cap.
//! - sampling: `Policy::sample` at temperature 1; tokens = generated response tokens;
//! - training step: GRPO's loss on those responses, forward and backward in micro-batches of 32,
//!   then one AdamW update (what the trainer does per optimizer step); tokens = response tokens
//!   in the loss.
//!
//! One untimed warm-up round, then the median of `--rounds` rounds.

use std::time::Instant;

use anyhow::{Result, bail};
use rand::Rng;
use zoo_core::device::DeviceSpec;
use zoo_core::objective::BuildContext;
use zoo_core::optim::{AdamW, OptimConfig};
use zoo_core::policy::Tokenizer;
use zoo_core::trainer::{MicroBatching, UpdateBatch, mini_batch_gradient};
use zoo_core::{Policy, SamplingConfig, TokenMatrix, registry, rng};
use zoo_models::{CharTokenizer, TinyDecoderConfig, TinyPolicy};

use crate::cli::BenchArgs;

/// One device's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// The device name.
    pub device: String,
    /// Generated tokens per second.
    pub sample_tokens_per_s: f64,
    /// Trained response tokens per second (forward, backward, update).
    pub train_tokens_per_s: f64,
}

/// Runs `zoo bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.batch == 0 || args.rounds == 0 {
        bail!("`--batch` and `--rounds` must be at least 1");
    }
    let mut devices: Vec<DeviceSpec> = match &args.devices {
        Some(list) => list
            .split(',')
            .map(|d| d.trim().parse::<DeviceSpec>())
            .collect::<Result<_, _>>()?,
        None => DeviceSpec::available(),
    };
    // A device named twice is measured once.
    let mut seen = Vec::new();
    devices.retain(|d| {
        let first = !seen.contains(d);
        seen.push(*d);
        first
    });
    let max_new_tokens = (registry::task("addition")?.build)(&Default::default())?.max_new_tokens();
    eprintln!(
        "zoo bench: default model, {} prompts, up to {max_new_tokens} new tokens, median of {} rounds",
        args.batch, args.rounds
    );
    let mut rows = Vec::new();
    for spec in &devices {
        eprintln!("  measuring `{spec}`...");
        rows.push(measure(spec, args.batch, args.rounds, max_new_tokens)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let base = rows[0].clone();
    println!(
        "{:<12} {:>14} {:>10} {:>14} {:>10}",
        "device",
        "sample tok/s",
        format!("× {}", base.device),
        "train tok/s",
        format!("× {}", base.device)
    );
    for row in &rows {
        println!(
            "{:<12} {:>14.0} {:>10.2} {:>14.0} {:>10.2}",
            row.device,
            row.sample_tokens_per_s,
            row.sample_tokens_per_s / base.sample_tokens_per_s,
            row.train_tokens_per_s,
            row.train_tokens_per_s / base.train_tokens_per_s
        );
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Measures one device.
pub fn measure(
    spec: &DeviceSpec,
    batch: usize,
    rounds: usize,
    max_new_tokens: usize,
) -> Result<BenchRow> {
    let device = spec.device()?;
    let mut policy = TinyPolicy::new(
        &TinyDecoderConfig::default(),
        &mut rng::stream(0, 0, "bench-init"),
        &device,
    )?;
    let mut prompt_rng = rng::stream(0, 0, "bench-prompts");
    let contexts: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            let (a, b) = (
                prompt_rng.random_range(0..1000),
                prompt_rng.random_range(0..1000),
            );
            CharTokenizer.encode_prompt(&format!("{a}+{b}="))
        })
        .collect::<zoo_core::Result<_>>()?;
    let objective = (registry::algorithm("grpo")?.default_config)().build(&BuildContext {
        max_new_tokens,
        group_size: 1,
        steps: 1,
        temperature: 1.0,
        evaluation: false,
    })?;
    let mut optimizer = AdamW::new(OptimConfig::default());
    let sampling = SamplingConfig {
        temperature: 1.0,
        max_new_tokens,
        min_new_tokens: 0,
    };
    let mut sample_rates = Vec::new();
    let mut train_rates = Vec::new();
    for round in 0..=rounds {
        let start = Instant::now();
        let samples = policy.sample(
            &contexts,
            &sampling,
            &mut rng::stream(0, round as u64, "bench-sample"),
        );
        let sample_seconds = start.elapsed().as_secs_f64();
        let responses: Vec<Vec<u32>> = samples.into_iter().map(|s| s.tokens).collect();
        let generated: usize = responses.iter().map(Vec::len).sum();

        let cols = responses.iter().map(Vec::len).max().unwrap_or(0);
        let mut mask = TokenMatrix::zeros(batch, cols);
        let mut advantages = TokenMatrix::zeros(batch, cols);
        for (i, r) in responses.iter().enumerate() {
            for t in 0..r.len() {
                mask.set(i, t, 1.0);
                advantages.set(i, t, if i % 2 == 0 { 1.0 } else { -1.0 });
            }
        }
        let old =
            TokenMatrix::from_tensor(policy.token_logprobs(&contexts, &responses, 1.0, false));
        let rewards = vec![0.0; batch];
        let group_ids: Vec<usize> = (0..batch).collect();
        let update = UpdateBatch {
            contexts: &contexts,
            responses: &responses,
            mask: &mask,
            old_logprobs: &old,
            old_is_current: false,
            ref_logprobs: None,
            advantages: &advantages,
            selected: None,
            teacher: None,
            rewards: &rewards,
            group_ids: &group_ids,
        };
        let rows: Vec<usize> = (0..batch).collect();
        let start = Instant::now();
        let gradient = mini_batch_gradient(
            &policy,
            objective.as_ref(),
            &update,
            &rows,
            MicroBatching {
                max_rows: 32,
                max_tokens: 0,
            },
            1.0,
            false,
        )?;
        let (params, _) = optimizer.step(&policy.parameters(), gradient.grads, 1e-4)?;
        policy.set_parameters(&params)?;
        // Wait for the update to finish (backends may run asynchronously).
        let _ = params
            .values()
            .next()
            .map(|p| p.value.clone().sum().into_scalar::<f32>());
        let train_seconds = start.elapsed().as_secs_f64();
        if round > 0 {
            sample_rates.push(generated as f64 / sample_seconds);
            train_rates.push(gradient.tokens / train_seconds);
        }
    }
    Ok(BenchRow {
        device: spec.to_string(),
        sample_tokens_per_s: median(sample_rates),
        train_tokens_per_s: median(train_rates),
    })
}
