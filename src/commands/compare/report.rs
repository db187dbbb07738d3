//! Reading the finished runs and writing `results.json`, `curves.csv`, `report.md` and
//! `report.html`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Plan, write};
use crate::commands::bandit::parse_algo;
use crate::commands::progress::Progress;
use crate::commands::train::TrainReport;
use crate::stats::{Estimate, mean_ci, paired_difference};
use crate::svg::{Chart, Series};

/// One finished run, as `results.json` lists it.
#[derive(Debug, Clone, Serialize)]
struct RunResult {
    seed: u64,
    dir: PathBuf,
    greedy: f64,
    sampled: f64,
    greedy_before: f64,
    sampled_before: f64,
    /// The task's response features (`chainless`, ...) among the sampled held-out responses
    /// after training, and before.
    features: BTreeMap<String, f64>,
    features_before: BTreeMap<String, f64>,
    seconds: f64,
}

fn read_run(dir: &Path, seed: u64) -> Result<RunResult> {
    let path = dir.join("eval.json");
    let text = fs_err::read_to_string(&path)?;
    let eval: TrainReport = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a `zoo train` report", path.display()))?;
    Ok(RunResult {
        seed,
        dir: dir.to_path_buf(),
        greedy: eval.after.greedy,
        sampled: eval.after.sampled,
        greedy_before: eval.before.greedy,
        sampled_before: eval.before.sampled,
        features: eval.after.features,
        features_before: eval.before.features,
        seconds: eval.seconds,
    })
}

/// Per step: `(reward/mean, accuracy/train)` and every `<algo>/...` diagnostic.
fn read_metrics(dir: &Path) -> Result<Vec<BTreeMap<String, f64>>> {
    let path = dir.join("metrics.jsonl");
    let text = fs_err::read_to_string(&path)?;
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .with_context(|| format!("a bad line in `{}`", path.display()))?;
            Ok(value
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
                        .collect()
                })
                .unwrap_or_default())
        })
        .collect()
}

/// Writes `results.json`, `curves.csv`, `report.md` and `report.html`, and prints the table.
pub(super) fn report(out: &Path, plan: &Plan, progress: &Progress) -> Result<()> {
    let mut rows = Vec::new();
    let mut curves =
        String::from("label,seed,step,reward_mean,accuracy_train,eval_greedy,eval_sampled\n");
    // label → step → values over seeds: training reward, held-out greedy pass@1 (with
    // `eval.every`).
    let mut reward: BTreeMap<&str, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    let mut heldout: BTreeMap<&str, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    // label → step → mean response length over seeds (OPSD's and SDPO's collapse is short).
    let mut length: BTreeMap<&str, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
    // Task response feature (`task/misread`, ...) → label → step → shares over seeds.
    type Curves<'a> = BTreeMap<&'a str, BTreeMap<u64, Vec<f64>>>;
    let mut task_curves: BTreeMap<String, Curves> = BTreeMap::new();
    for label in &plan.algos {
        let mut runs = Vec::new();
        let mut diagnostics: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let algo = parse_algo(label)?.0;
        for &seed in &plan.seeds {
            let dir = Plan::run_dir(out, label, seed);
            if !dir.join("eval.json").exists() {
                continue;
            }
            let run = read_run(&dir, seed)?;
            // The held-out curve starts at the base policy (step 0).
            heldout
                .entry(label)
                .or_default()
                .entry(0)
                .or_default()
                .push(run.greedy_before);
            runs.push(run);
            for metrics in read_metrics(&dir)? {
                let step = metrics.get("step").copied().unwrap_or(0.0) as u64;
                let r = metrics.get("reward/mean").copied().unwrap_or(f64::NAN);
                let a = metrics.get("accuracy/train").copied().unwrap_or(f64::NAN);
                let optional = |key: &str| metrics.get(key).map_or(String::new(), f64::to_string);
                curves.push_str(&format!(
                    "\"{label}\",{seed},{step},{r},{a},{},{}\n",
                    optional("eval/greedy"),
                    optional("eval/sampled")
                ));
                if let Some(&greedy) = metrics.get("eval/greedy") {
                    heldout
                        .entry(label)
                        .or_default()
                        .entry(step)
                        .or_default()
                        .push(greedy);
                }
                reward
                    .entry(label)
                    .or_default()
                    .entry(step)
                    .or_default()
                    .push(r);
                if let Some(&tokens) = metrics.get("response_length/mean") {
                    length
                        .entry(label)
                        .or_default()
                        .entry(step)
                        .or_default()
                        .push(tokens);
                }
                for (key, value) in metrics {
                    let task_feature = key.starts_with("task/");
                    if task_feature {
                        task_curves
                            .entry(key.clone())
                            .or_default()
                            .entry(label)
                            .or_default()
                            .entry(step)
                            .or_default()
                            .push(value);
                    }
                    // The algorithm's own metrics, how its responses are written and how
                    // long they are, and the generation rounds of dynamic sampling (its extra
                    // rollout cost).
                    if task_feature
                        || key.starts_with(&format!("{algo}/"))
                        || key == "response_length/mean"
                        || key == "rollout/generation_rounds"
                    {
                        diagnostics.entry(key).or_default().push(value);
                    }
                }
            }
        }
        rows.push((label.clone(), algo, runs, diagnostics));
    }
    let baseline_runs = rows
        .iter()
        .find(|r| r.0 == plan.baseline)
        .map(|r| r.2.clone())
        .unwrap_or_default();
    let pairs = |runs: &[RunResult], pick: fn(&RunResult) -> f64| -> Vec<(u64, f64)> {
        runs.iter().map(|r| (r.seed, pick(r))).collect()
    };
    let mut results = Vec::new();
    for (label, algo, runs, diagnostics) in &rows {
        let greedy: Vec<f64> = runs.iter().map(|r| r.greedy).collect();
        let sampled: Vec<f64> = runs.iter().map(|r| r.sampled).collect();
        let versus = |pick: fn(&RunResult) -> f64| {
            (label != &plan.baseline)
                .then(|| paired_difference(&pairs(runs, pick), &pairs(&baseline_runs, pick)))
                .flatten()
        };
        results.push(json!({
            "label": label,
            "algo": algo,
            "runs": runs,
            "greedy": mean_ci(&greedy),
            "sampled": mean_ci(&sampled),
            "vs_baseline": {
                "greedy": versus(|r| r.greedy),
                "sampled": versus(|r| r.sampled),
            },
            "heldout_features": features(runs),
            "diagnostics": diagnostics
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().sum::<f64>() / v.len().max(1) as f64))
                .collect::<BTreeMap<_, _>>(),
        }));
    }
    let document = json!({
        "baseline": plan.baseline,
        "seeds": plan.seeds,
        "train_args": plan.train_args,
        "algorithms": results,
    });
    write(
        &out.join("results.json"),
        &serde_json::to_string_pretty(&document)?,
    )?;
    write(&out.join("curves.csv"), &curves)?;

    let seeds = plan.seeds.len();
    let reward_chart = curve_chart(
        &plan.algos,
        &reward,
        format!("training reward, mean over {seeds} seeds with 95% band"),
        "reward/mean",
        None,
    );
    let length_chart = curve_chart(
        &plan.algos,
        &length,
        format!("training response length, mean over {seeds} seeds with 95% band"),
        "tokens",
        None,
    );
    let mut svgs = vec![
        ("reward.svg", "training reward", reward_chart.to_svg()),
        (
            "length.svg",
            "training response length",
            length_chart.to_svg(),
        ),
    ];
    // Drawn when the runs evaluated during training (`eval.every`), not from step 0 alone.
    if heldout.values().any(|by_step| by_step.len() > 1) {
        let chart = curve_chart(
            &plan.algos,
            &heldout,
            format!("held-out greedy pass@1 (eval.every), mean over {seeds} seeds with 95% band"),
            "greedy pass@1",
            Some((0.0, 1.0)),
        );
        svgs.push(("heldout.svg", "held-out greedy pass@1", chart.to_svg()));
    }
    // How the policies answer over training: one chart per task response feature.
    let task_files: Vec<String> = task_curves
        .keys()
        .map(|key| format!("{}.svg", key.replace('/', "-")))
        .collect();
    for ((key, curves), file) in task_curves.iter().zip(&task_files) {
        let chart = curve_chart(
            &plan.algos,
            curves,
            format!(
                "{key}: share of the training responses, mean over {seeds} seeds with 95% band"
            ),
            "share of responses",
            Some((0.0, 1.0)),
        );
        svgs.push((file.as_str(), key.as_str(), chart.to_svg()));
    }
    for (file, _, svg) in &svgs {
        write(&out.join(file), svg)?;
    }
    let table = format!(
        "{}\n{}{}",
        table(&document),
        features_table(&document),
        diagnostics(&document)
    );
    let command = format!(
        "zoo compare --algos '{}' --seeds {} --baseline '{}' {}",
        plan.algos.join(","),
        plan.seeds.len(),
        plan.baseline,
        plan.train_args.join(" ")
    );
    let images: String = svgs
        .iter()
        .map(|(file, title, _)| format!("![{title}]({file})\n"))
        .collect();
    write(
        &out.join("report.md"),
        &format!("# zoo compare\n\n`{}`\n\n{table}\n{images}", command.trim()),
    )?;
    let inline: String = svgs.iter().map(|(_, _, svg)| svg.as_str()).collect();
    write(&out.join("report.html"), &html(&command, &table, &inline))?;
    if progress.is_quiet() {
        return Ok(());
    }
    println!("{table}");
    println!(
        "files: {}/{{results.json, curves.csv, report.md, report.html}}",
        out.display()
    );
    Ok(())
}

/// One line per label through its per-step means over seeds, with their 95% band.
fn curve_chart(
    labels: &[String],
    values: &BTreeMap<&str, BTreeMap<u64, Vec<f64>>>,
    title: String,
    y_label: &str,
    y_range: Option<(f64, f64)>,
) -> Chart {
    Chart {
        title,
        x_label: "step".into(),
        y_label: y_label.into(),
        y_range,
        series: labels
            .iter()
            .map(|label| {
                let estimates: Vec<(f64, Estimate)> = values
                    .get(label.as_str())
                    .into_iter()
                    .flatten()
                    .filter_map(|(&step, v)| mean_ci(v).map(|e| (step as f64, e)))
                    .collect();
                Series {
                    label: label.clone(),
                    points: estimates.iter().map(|(s, e)| (*s, e.mean)).collect(),
                    band: estimates.iter().map(|(s, e)| (*s, e.low, e.high)).collect(),
                }
            })
            .collect(),
    }
}

/// An [`Estimate`] stored in `results.json` (`null` when there is none).
fn estimate(value: &Value) -> Option<Estimate> {
    serde_json::from_value(value.clone()).ok()
}

/// `0.823 [0.801, 0.845]` (a point for one seed), or `-` when absent.
fn cell(value: &Value) -> String {
    match estimate(value) {
        Some(e) if e.n == 1 => format!("{:.3}", e.mean),
        Some(e) => format!("{:.3} [{:.3}, {:.3}]", e.mean, e.low, e.high),
        None => "-".into(),
    }
}

/// A difference cell, marked `*` when its interval excludes 0.
fn difference(value: &Value) -> String {
    match estimate(value) {
        // One shared seed: a difference, no interval to mark it by.
        Some(e) if e.n == 1 => format!("{:+.3} (1 seed)", e.mean),
        // Every seed's difference the same: no spread measured, no interval to show.
        Some(e) if !e.has_spread() => format!("{:+.3} ({} seeds, all equal)", e.mean, e.n),
        Some(e) => {
            let mark = if e.excludes_zero() { " *" } else { "" };
            format!("{:+.3} [{:+.3}, {:+.3}]{mark}", e.mean, e.low, e.high)
        }
        None => "-".into(),
    }
}

/// The results as a Markdown table, the baseline's row first.
fn table(document: &Value) -> String {
    let baseline = document["baseline"].as_str().unwrap_or_default();
    let mut rows: Vec<&Value> = document["algorithms"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    rows.sort_by_key(|r| r["label"].as_str() != Some(baseline));
    let mut out = format!(
        "| algorithm | seeds | greedy pass@1 | sampled pass@1 | greedy − {baseline} | sampled − {baseline} |\n|---|---|---|---|---|---|\n"
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row["label"].as_str().unwrap_or_default(),
            row["runs"].as_array().map_or(0, Vec::len),
            cell(&row["greedy"]),
            cell(&row["sampled"]),
            difference(&row["vs_baseline"]["greedy"]),
            difference(&row["vs_baseline"]["sampled"]),
        ));
    }
    out.push_str("\nMeans over seeds with Student-t 95% intervals; differences are paired over the same seeds, `*` when the interval excludes 0.\n");
    out
}

/// Per response feature: its share among the sampled held-out responses after training, mean
/// over seeds with its interval, and the base policy's share (`before`).
fn features(runs: &[RunResult]) -> BTreeMap<String, Value> {
    let names: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.features.keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let pick = |m: &BTreeMap<String, f64>| m.get(name).copied().unwrap_or(0.0);
            let after: Vec<f64> = runs.iter().map(|r| pick(&r.features)).collect();
            let before: Vec<f64> = runs.iter().map(|r| pick(&r.features_before)).collect();
            let value = json!({ "after": mean_ci(&after), "before": mean_ci(&before) });
            (name.clone(), value)
        })
        .collect()
}

/// The held-out response features as a Markdown table (empty when the task has none).
fn features_table(document: &Value) -> String {
    let rows: Vec<&Value> = document["algorithms"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: std::collections::BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r["heldout_features"].as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    if names.is_empty() {
        return String::new();
    }
    let mut out = String::from("| held-out responses of |");
    for name in &names {
        out.push_str(&format!(" `{name}` |"));
    }
    out.push_str(&format!("\n|---|{}\n", "---|".repeat(names.len())));
    // The base policy first (from the baseline's runs: the same policy, each seed's sampling).
    let baseline = document["baseline"].as_str().unwrap_or_default();
    let base = rows.iter().find(|r| r["label"].as_str() == Some(baseline));
    let lines = base
        .map(|r| ("the base policy".to_string(), *r, "before"))
        .into_iter()
        .chain(rows.iter().map(|r| {
            let label = r["label"].as_str().unwrap_or_default().to_string();
            (label, *r, "after")
        }));
    for (label, row, when) in lines {
        out.push_str(&format!("| {label} |"));
        for name in &names {
            out.push_str(&format!(
                " {} |",
                cell(&row["heldout_features"][name.as_str()][when])
            ));
        }
        out.push('\n');
    }
    out.push_str("\nShare of the sampled held-out responses with each of the task's response features, before training and after (`docs/metrics.md`: `task/<feature>`).\n\n");
    out
}

/// Each algorithm's own metrics (`cepo/weight_dev_mean`, `disco/penalty_active`, ...) and the
/// task's response features in training (`task/chainless`), mean over steps and seeds, as a
/// Markdown table per algorithm with any.
fn diagnostics(document: &Value) -> String {
    let mut out = String::new();
    for row in document["algorithms"].as_array().into_iter().flatten() {
        let Some(values) = row["diagnostics"].as_object().filter(|d| !d.is_empty()) else {
            continue;
        };
        out.push_str(&format!(
            "| {} diagnostic | mean over steps and seeds |\n|---|---|\n",
            row["label"].as_str().unwrap_or_default()
        ));
        for (name, value) in values {
            out.push_str(&format!(
                "| `{name}` | {:.4} |\n",
                value.as_f64().unwrap_or(f64::NAN)
            ));
        }
        out.push('\n');
    }
    out
}

/// Escaped `text` with Markdown's `code` spans as `<code>`.
fn inline_code(text: &str) -> String {
    crate::svg::escape(text)
        .split('`')
        .enumerate()
        .map(|(k, part)| {
            if k % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

/// A self-contained HTML page: the command, the tables and the inline SVG plot.
fn html(command: &str, tables: &str, svg: &str) -> String {
    let mut body = String::new();
    // Markdown tables (separated by blank lines) become HTML tables; other lines paragraphs.
    for block in tables.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let lines: Vec<&str> = block.lines().collect();
        if !lines.first().is_some_and(|l| l.starts_with('|')) {
            body.push_str(&format!("<p>{}</p>\n", inline_code(block.trim())));
            continue;
        }
        body.push_str("<table>\n");
        for (k, line) in lines.iter().enumerate() {
            if k == 1 {
                continue; // the Markdown separator
            }
            let tag = if k == 0 { "th" } else { "td" };
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| {
                    format!(
                        "<{tag}>{}</{tag}>",
                        crate::svg::escape(c.trim().trim_matches('`'))
                    )
                })
                .collect();
            body.push_str(&format!("<tr>{}</tr>\n", cells.concat()));
        }
        body.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>zoo compare</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}code{{background:#f4f4f4}}</style></head>\n<body><h1>zoo compare</h1>\n<p><code>{}</code></p>\n{body}{svg}</body></html>\n",
        crate::svg::escape(command.trim())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_puts_the_baseline_first_and_marks_significant_differences() {
        let document = json!({
            "baseline": "grpo",
            "algorithms": [
                {"label": "cepo", "runs": [1, 2, 3],
                 "diagnostics": {"cepo/weight_dev_mean": 0.0123, "cepo/lambda": 0.25},
                 "greedy": {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 3},
                 "sampled": {"mean": 0.4, "low": 0.3, "high": 0.5, "n": 3},
                 "vs_baseline": {"greedy": {"mean": 0.1, "low": 0.05, "high": 0.15, "n": 3},
                                 "sampled": {"mean": 0.0, "low": -0.1, "high": 0.1, "n": 3}}},
                {"label": "grpo", "runs": [1, 2, 3],
                 "greedy": {"mean": 0.4, "low": 0.3, "high": 0.5, "n": 3},
                 "sampled": {"mean": 0.4, "low": 0.3, "high": 0.5, "n": 3},
                 "vs_baseline": {"greedy": null, "sampled": null}},
            ],
        });
        let text = table(&document);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("| grpo |"), "{text}");
        assert!(lines[3].contains("+0.100 [+0.050, +0.150] *"), "{text}");
        assert!(lines[3].contains("+0.000 [-0.100, +0.100] |"), "{text}");
        assert!(lines[2].ends_with("| - | - |"), "{text}");
        // One shared seed: no interval, no mark.
        let one = json!({"mean": -0.2, "low": -0.2, "high": -0.2, "n": 1});
        assert_eq!(difference(&one), "-0.200 (1 seed)");
        // Equal differences on every seed: a zero-width interval, not marked.
        let tie = json!({"mean": 0.037, "low": 0.037, "high": 0.037, "n": 2});
        assert_eq!(difference(&tie), "+0.037 (2 seeds, all equal)");
        let extra = diagnostics(&document);
        assert!(
            extra.contains("| `cepo/weight_dev_mean` | 0.0123 |"),
            "{extra}"
        );
        assert_eq!(
            extra.matches("diagnostic |").count(),
            1,
            "grpo has none: {extra}"
        );
        let page = html(
            "zoo compare --algos grpo,cepo",
            &format!("{text}\n{extra}"),
            "<svg></svg>",
        );
        assert!(page.contains("<th>algorithm</th>") && page.contains("<td>cepo</td>"));
        assert!(
            page.contains("<td>cepo/weight_dev_mean</td><td>0.0123</td>"),
            "{page}"
        );
        assert_eq!(page.matches("<table>").count(), 2);
        assert!(page.contains("<svg></svg>"));
    }
}
