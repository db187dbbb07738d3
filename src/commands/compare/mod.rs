//! `zoo compare`: objectives side by side on equal footing.
//!
//! Every algorithm (with optional config overrides, `grpo[norm_adv_by_std=false]`) trains once
//! per seed through `zoo train`, in a child process of this binary, with the same task, steps,
//! device, settings and seeds: the same base policy, data order and sampling streams. The
//! matrix lives in `--out`:
//!
//! ```text
//! compare.json            what was asked (algorithms, seeds, baseline, settings)
//! runs/<label>/seed-<s>/  one `zoo train` run each (its log in train.log)
//! base-eval/              the base policy's held-out evaluation, once per seed
//! results.json            per algorithm: held-out pass@1 per seed, mean and 95% interval,
//!                         paired differences to the baseline, diagnostics
//! curves.csv              label, seed, step, reward/mean, accuracy/train
//! report.md, report.html  the table and the learning curves (self-contained SVG)
//! ```
//!
//! A run whose `eval.json` exists is finished and reused; one with checkpoints resumes from
//! the latest; `--report DIR` rebuilds the report from finished runs. Intervals and paired
//! differences: [`crate::stats`].
//!
//! This file checks the request and writes the plan; [`matrix`] runs the (label, seed) cells
//! as child processes; [`report`] reads the finished runs and writes the results and report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cli::CompareArgs;
use crate::commands::bandit::{parse_algo, split_algos};
use crate::commands::progress::Progress;

mod matrix;
mod report;

use matrix::run_matrix;
use report::report;

/// What a comparison was asked to do: written first, read by `--report` and on reruns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `--algos` entries, as given (labels).
    pub algos: Vec<String>,
    /// The seeds, `1..=--seeds`.
    pub seeds: Vec<u64>,
    /// The label differences are taken against.
    pub baseline: String,
    /// `zoo train` flags shared by every run (`--task`, `--steps`, `--device`, `--model`,
    /// `--set`).
    pub train_args: Vec<String>,
}

impl Plan {
    /// The run folder of `label` and `seed` under `out`.
    pub fn run_dir(out: &Path, label: &str, seed: u64) -> PathBuf {
        out.join("runs")
            .join(slug(label))
            .join(format!("seed-{seed}"))
    }
}

/// `grpo[norm_adv_by_std=false]` → `grpo_norm_adv_by_std_false`: a folder name.
fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Runs `zoo compare`.
pub fn run(args: &CompareArgs) -> Result<()> {
    if let Some(dir) = &args.report {
        let plan = read_plan(dir)?;
        return report(dir, &plan, &Progress::new(args.quiet));
    }
    let Some(algos) = &args.algos else {
        bail!(
            "`--algos` is missing\nhint: e.g. `zoo compare --algos grpo,cepo --seeds 3`, or `--report DIR` to rebuild a report"
        );
    };
    let labels: Vec<String> = split_algos(algos)
        .into_iter()
        .map(|l| l.trim().to_string())
        .collect();
    if labels.is_empty() {
        bail!(
            "`--algos` lists no algorithm\nhint: e.g. `--algos 'grpo,grpo[norm_adv_by_std=false],cepo'`"
        );
    }
    if args.seeds == 0 || args.jobs == 0 {
        bail!("`--seeds` and `--jobs` must be at least 1");
    }
    let mut seen = std::collections::HashSet::new();
    for label in &labels {
        parse_algo(label)?;
        if !seen.insert(slug(label)) {
            bail!(
                "`{label}` is listed twice (or two labels share a folder name)\nhint: list each variant once"
            );
        }
    }
    let baseline = args.baseline.clone().unwrap_or_else(|| labels[0].clone());
    if !labels.contains(&baseline) {
        bail!(
            "the baseline `{baseline}` is not among `--algos` ({})\nhint: pass one of them to `--baseline`",
            labels.join(", ")
        );
    }
    let mut train_args = Vec::new();
    for (flag, value) in [
        ("--task", args.task.clone()),
        ("--steps", args.steps.map(|s| s.to_string())),
        ("--device", args.device.clone()),
    ] {
        if let Some(value) = value {
            train_args.extend([flag.to_string(), value]);
        }
    }
    if let Some(model) = &args.model {
        if !model.exists() {
            bail!(
                "the model `{}` does not exist\nhint: pass a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a GGUF file",
                model.display()
            );
        }
        train_args.extend(["--model".to_string(), model.display().to_string()]);
    }
    for set in &args.set {
        train_args.extend(["--set".to_string(), set.clone()]);
    }
    let plan = Plan {
        algos: labels,
        seeds: (1..=args.seeds as u64).collect(),
        baseline,
        train_args,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("runs/compare-{stamp}"))
    });
    fs_err::create_dir_all(&out)?;
    let plan_path = out.join("compare.json");
    if plan_path.exists() {
        let earlier = read_plan(&out)?;
        if earlier.train_args != plan.train_args {
            bail!(
                "`{}` holds a comparison with other settings ({})\nhint: use another `--out`, or the same settings to resume it",
                out.display(),
                earlier.train_args.join(" ")
            );
        }
    }
    write(&plan_path, &serde_json::to_string_pretty(&plan)?)?;
    let progress = Progress::new(args.quiet);
    run_matrix(&out, &plan, args.jobs, args.drop_checkpoints, &progress)?;
    report(&out, &plan, &progress)
}

fn read_plan(dir: &Path) -> Result<Plan> {
    let path = dir.join("compare.json");
    let text = fs_err::read_to_string(&path)
        .with_context(|| format!("`{}` holds no comparison (no compare.json)", dir.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a comparison plan", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    zoo_core::checkpoint::write_atomic(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_folder_names() {
        assert_eq!(slug("grpo"), "grpo");
        assert_eq!(
            slug("grpo[norm_adv_by_std=false]"),
            "grpo_norm_adv_by_std_false"
        );
        assert_eq!(
            slug("disco[variant=\"basic\", tau=0.5]"),
            "disco_variant_basic_tau_0.5"
        );
    }
}
