//! `zoo eval`: held-out pass@1 and unbiased pass@k of a policy checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use zoo_core::eval::evaluate;
use zoo_core::{SamplingConfig, checkpoint, registry};
use zoo_models::TinyPolicy;

use crate::base;
use crate::cli::EvalArgs;
use crate::run_config::WarmStartConfig;

/// The JSON `zoo eval` prints.
#[derive(Debug, Serialize)]
pub struct EvalOutput {
    /// The evaluated checkpoint.
    pub checkpoint: PathBuf,
    /// The task.
    pub task: String,
    /// Problems evaluated.
    pub problems: usize,
    /// Samples per problem.
    pub samples: usize,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// pass@1.
    pub pass_at_1: f64,
    /// Unbiased pass@k by k.
    pub pass_at_k: std::collections::BTreeMap<String, f64>,
    /// The share of all responses with each of the task's response features (`chainless`,
    /// `off_chain`, ...).
    pub features: std::collections::BTreeMap<String, f64>,
}

/// The policy file a `--checkpoint` argument names: a `.safetensors` file, a checkpoint
/// folder, or a run folder (its latest checkpoint).
fn policy_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.join("model.safetensors").is_file() {
        return Ok(path.join("model.safetensors"));
    }
    if let Some((_, folder)) = checkpoint::latest(&path.join("checkpoints"))? {
        return Ok(folder.join("model.safetensors"));
    }
    bail!(
        "`{}` is neither a policy file nor a run or checkpoint folder\nhint: pass a `.safetensors` file or a `zoo train --out` folder",
        path.display()
    )
}

/// The `[data]` table of `--set data.KEY=VALUE` arguments. An evaluation needs no training
/// file: without `data.train`, the held-out files stand in for it.
fn data_table(sets: &[String]) -> Result<toml::Table> {
    let mut table = toml::Value::Table(toml::Table::new());
    for set in sets {
        if !set.trim_start().starts_with("data.") {
            bail!(
                "`--set {set}`: `zoo eval` takes only task settings\nhint: e.g. `--set 'data.eval=[\"FILE.jsonl\"]'`"
            );
        }
        zoo_core::config::apply_set(&mut table, set)?;
    }
    let mut data = match table.get("data") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => toml::Table::new(),
    };
    if !data.contains_key("train")
        && let Some(eval) = data.get("eval").cloned()
    {
        data.insert("train".into(), eval);
    }
    Ok(data)
}

/// Runs `zoo eval`.
pub fn run(args: &EvalArgs) -> Result<EvalOutput> {
    let task = (registry::task(&args.task)?.build)(&data_table(&args.set)?)?;
    if args.samples == 0 {
        bail!("`--samples` must be at least 1");
    }
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!(
            "`--temperature` must be 0 (greedy) or positive, got {}",
            args.temperature
        );
    }
    if args.max_new_tokens == Some(0) {
        bail!("`--max-new-tokens` must be at least 1");
    }
    let device = args
        .device
        .parse::<zoo_core::device::DeviceSpec>()?
        .device()?;
    let max_new_tokens = args.max_new_tokens.unwrap_or_else(|| task.max_new_tokens());
    let problems = super::train::evaluated_heldout(task.as_ref(), args.problems);
    if problems.is_empty() {
        bail!(
            "task `{}` has no held-out problems\nhint: for `--task jsonl`, `--set 'data.eval=[\"FILE.jsonl\"]'`",
            task.name()
        );
    }
    let (policy, file): (Box<dyn zoo_core::Policy>, PathBuf) = match &args.model {
        Some(model) => {
            let policy = crate::base::load_llm(model, &device, Default::default())?;
            let policy = match &args.adapter {
                Some(dir) => policy
                    .with_adapter(dir, false, &model.to_string_lossy())
                    .with_context(|| format!("cannot load the adapter `{}`", dir.display()))?,
                None => policy,
            };
            (Box::new(policy), model.clone())
        }
        None => {
            let file = tiny_policy_file(args, task.as_ref())?;
            (Box::new(TinyPolicy::load(&file, &device)?), file)
        }
    };
    crate::base::check_prompts_fit(policy.as_ref(), problems, max_new_tokens)?;
    let progress = crate::commands::progress::Progress::new(false);
    progress.line(&format!(
        "evaluating `{}` on {} `{}` problems, {} sample(s) each, up to {max_new_tokens} new tokens...",
        file.display(),
        problems.len(),
        task.name(),
        args.samples
    ));
    let mut ks: Vec<usize> = std::iter::successors(Some(1usize), |k| Some(k * 2))
        .take_while(|&k| k <= args.samples)
        .collect();
    if *ks.last().unwrap_or(&0) != args.samples {
        ks.push(args.samples);
    }
    let started = std::time::Instant::now();
    let report = evaluate(
        policy.as_ref(),
        task.as_ref(),
        problems,
        &SamplingConfig {
            temperature: args.temperature,
            max_new_tokens,
            min_new_tokens: 0,
        },
        args.samples,
        &ks,
        args.seed,
    )?;
    progress.line(&format!("done in {:.1}s", started.elapsed().as_secs_f64()));
    if let Some(path) = &args.responses {
        let mut lines = String::new();
        for (k, response) in report.responses.iter().enumerate() {
            let problem = &problems[k / args.samples];
            let features: std::collections::BTreeMap<&str, bool> =
                response.features.iter().copied().collect();
            let line = serde_json::json!({
                "prompt": problem.prompt,
                "answer": problem.answer,
                "response": response.text,
                "correct": response.verdict.correct,
                "reason": response.verdict.reason,
                "features": features,
            });
            lines.push_str(&format!("{line}\n"));
        }
        checkpoint::write_atomic(path, lines.as_bytes())
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        progress.line(&format!("responses written to `{}`", path.display()));
    }
    let output = EvalOutput {
        checkpoint: file,
        task: task.name().to_string(),
        problems: report.problems,
        samples: report.samples,
        temperature: args.temperature,
        pass_at_1: report.pass_at_1,
        pass_at_k: report
            .pass_at_k
            .iter()
            .map(|(k, v)| (format!("pass@{k}"), *v))
            .collect(),
        features: report.features,
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(output)
}

/// The tiny decoder's policy file: `--checkpoint`, or the default base policy.
fn tiny_policy_file(args: &EvalArgs, task: &dyn zoo_core::Task) -> Result<PathBuf> {
    Ok(match &args.checkpoint {
        Some(path) => policy_file(path)?,
        None => {
            let name = format!(
                "{}.safetensors",
                base::key(task, &WarmStartConfig::default())
            );
            [base::cache_dir().join("base"), base::shipped_dir()]
                .iter()
                .map(|d| d.join(&name))
                .find(|p| p.exists())
                .with_context(|| {
                    format!(
                        "no base policy for `{}` with the default settings\nhint: run `zoo sft --task {}` or pass `--checkpoint`",
                        task.name(),
                        task.name()
                    )
                })?
        }
    })
}
