//! `zoo bench`: one training step, stage by stage (rollout, scoring, update), of the default
//! tiny model or a real model's shape, on each device asked, with exact shapes (every response
//! exactly `--response-len` tokens) so that `bench/` can run the same step in PyTorch and set
//! the two side by side (`bench/side-by-side.py`).
//!
//! Reported per stage: median seconds, tokens per second, model TFLOP/s, their fraction of the
//! matrix-product rate the bench measures on the device, MFU against `--peak-tflops`, and peak
//! memory (the process's peak RSS on the CPU, `nvidia-smi` on CUDA). For real-model shapes the
//! memory estimate of `zoo train --dry-run` is printed beside the measured peaks.
//!
//! [`measure`] runs the step; [`memory`] reads peak memory.

mod measure;
mod memory;

use anyhow::{Result, bail};
use zoo_core::device::DeviceSpec;
use zoo_llm::memory::human;
use zoo_llm::shapes::config_of;
use zoo_models::TinyDecoderConfig;

use crate::cli::BenchArgs;
use measure::{Bench, BenchModel, Settings, measure};

/// Runs `zoo bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    let tiny = args.model == "tiny";
    let model = if tiny {
        BenchModel::Tiny(TinyDecoderConfig::default())
    } else {
        BenchModel::Llm(Box::new(config_of(&args.model)?))
    };
    let devices = devices(args, if tiny { None } else { Some(DeviceSpec::Flex) })?;
    let settings = settings(args, tiny)?;
    let mut results = Vec::new();
    for spec in &devices {
        eprintln!(
            "zoo bench: `{}` (random weights) on `{spec}`, {} prompts x {} x {} tokens after {}-token prompts, `{}`, median of {} rounds",
            args.model,
            settings.prompts,
            settings.group_size,
            settings.response_len,
            settings.prompt_tokens,
            settings.algo,
            settings.rounds
        );
        results.push(measure(&model, &args.model, &settings, spec)?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    for r in &results {
        print_table(r);
    }
    if results.len() > 1 {
        print_ratios(&results);
    }
    Ok(())
}

/// The devices of `--devices`, each once; without it `default`, or every device this build
/// and machine have.
fn devices(args: &BenchArgs, default: Option<DeviceSpec>) -> Result<Vec<DeviceSpec>> {
    let mut devices: Vec<DeviceSpec> = match &args.devices {
        Some(list) => list
            .split(',')
            .map(|d| d.trim().parse::<DeviceSpec>())
            .collect::<Result<_, _>>()?,
        None => default.map_or_else(DeviceSpec::available, |d| vec![d]),
    };
    let mut seen = Vec::new();
    devices.retain(|d| {
        let first = !seen.contains(d);
        seen.push(*d);
        first
    });
    Ok(devices)
}

/// The flags, with the defaults of the tiny model or of real-model shapes.
fn settings(args: &BenchArgs, tiny: bool) -> Result<Settings> {
    let pick = |value: Option<usize>, tiny_default: usize, llm_default: usize| {
        value.unwrap_or(if tiny { tiny_default } else { llm_default })
    };
    let prompts = pick(args.prompts, 64, 8);
    let group_size = pick(args.group_size, 4, 4);
    let prompt_tokens = pick(args.prompt_tokens, 9, 64);
    let response_len = pick(args.response_len, 33, 256);
    let rounds = pick(args.rounds, 3, 1);
    for (flag, value) in [
        ("--prompts", prompts),
        ("--group-size", group_size),
        ("--prompt-tokens", prompt_tokens),
        ("--response-len", response_len),
        ("--rounds", rounds),
        ("--chunk-positions", args.chunk_positions),
    ] {
        if value == 0 {
            bail!("`{flag}` must be at least 1");
        }
    }
    let rows = prompts * group_size;
    let micro_batch_rows = pick(args.micro_batch_rows, 64, rows);
    if micro_batch_rows == 0 {
        bail!("`--micro-batch-rows` must be at least 1");
    }
    if tiny && (args.recompute || args.dtype != crate::run_config::ModelDtype::F32) {
        bail!(
            "`--recompute` and `--dtype bf16` apply to real-model shapes\nhint: add e.g. `--model smollm2-135m`"
        );
    }
    Ok(Settings {
        algo: args.algo.clone(),
        prompts,
        group_size,
        rows,
        prompt_tokens,
        response_len,
        rounds,
        micro_batch_rows,
        micro_batch_tokens: pick(args.micro_batch_tokens, 0, 4096),
        chunk_positions: args.chunk_positions,
        dtype: args.dtype,
        recompute: args.recompute,
        peak_tflops: args.peak_tflops,
    })
}

fn print_table(r: &Bench) {
    let s = &r.settings;
    println!(
        "{} ({} parameters, {:?}) on {} ({} threads), {}: {} prompts x {} x {} tokens after {}-token prompts; micro-batches of {} rows{}; median of {} rounds",
        r.model,
        r.parameters,
        s.dtype,
        r.device,
        r.threads,
        s.algo,
        s.prompts,
        s.group_size,
        s.response_len,
        s.prompt_tokens,
        s.micro_batch_rows,
        if s.micro_batch_tokens > 0 {
            format!(" / {} tokens", s.micro_batch_tokens)
        } else {
            String::new()
        },
        s.rounds
    );
    let memory = r.memory_source.unwrap_or("peak memory");
    println!(
        "{:<10} {:>10} {:>12} {:>9} {:>9} {:>7} {:>14}",
        "stage", "seconds", "tokens/s", "TFLOP/s", "of mm", "MFU", memory
    );
    for (name, st) in [
        ("rollout", &r.rollout),
        ("scoring", &r.scoring),
        ("update", &r.update),
    ] {
        println!(
            "{:<10} {:>10.3} {:>12.1} {:>9.4} {:>8.1}% {:>7} {:>14}",
            name,
            st.seconds,
            st.tokens_per_s,
            st.tflops,
            100.0 * st.peak_fraction,
            st.mfu.map_or("-".into(), |m| format!("{:.1}%", 100.0 * m)),
            st.peak_memory.map_or("-".into(), human)
        );
    }
    println!(
        "step: {:.3} s; matrix products ([1024, 1024]², f32) run at {:.3} TFLOP/s here{}",
        r.step_seconds,
        r.matmul_peak_tflops,
        if r.device.starts_with("tch-cuda") {
            format!(
                " (TF32 for f32 matrix products: {})",
                if r.tf32 { "on" } else { "off" }
            )
        } else {
            String::new()
        }
    );
    let Some(e) = &r.estimate else {
        return;
    };
    println!("memory estimate (as `zoo train --dry-run`):");
    for (item, bytes) in e.rows() {
        println!("  {item:<30} {:>12}", human(bytes));
    }
    let peak = [&r.rollout, &r.scoring, &r.update]
        .iter()
        .filter_map(|s| s.peak_memory)
        .max();
    if let Some(peak) = peak {
        let state = r.state_estimate.unwrap_or(1);
        println!(
            "measured peak {} = {:.2} x the estimated peak ({}), {:.2} x (parameters + optimizer state + KV cache = {})",
            human(peak),
            peak as f64 / e.peak() as f64,
            human(e.peak()),
            peak as f64 / state as f64,
            human(state)
        );
        // The first round's rollout runs before any optimizer step: no moments resident yet;
        // later rounds' do, so the rollout is compared with everything resident.
        for (name, stage, estimate) in [
            ("rollout", &r.rollout, e.resident() + e.rollout()),
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

/// Tokens per second of each stage on each device, and the ratio to the first device.
fn print_ratios(results: &[Bench]) {
    let base = &results[0];
    println!(
        "{:<12} {:>14} {:>14} {:>14}   (x {})",
        "device", "rollout tok/s", "scoring tok/s", "update tok/s", base.device
    );
    for r in results {
        println!(
            "{:<12} {:>8.0} {:>5.2}x {:>8.0} {:>5.2}x {:>8.0} {:>5.2}x",
            r.device,
            r.rollout.tokens_per_s,
            r.rollout.tokens_per_s / base.rollout.tokens_per_s,
            r.scoring.tokens_per_s,
            r.scoring.tokens_per_s / base.scoring.tokens_per_s,
            r.update.tokens_per_s,
            r.update.tokens_per_s / base.update.tokens_per_s
        );
    }
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
