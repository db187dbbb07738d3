//! `zoo bandit`: objectives side by side on one toy environment, with the same trainer and
//! objective code as `zoo train`, on the tabular policy. Writes `curves.csv` (exact expected
//! reward and the environment's diagnostics per step, per algorithm and seed), `curves.svg`
//! (the seed-mean reward curves) and `results.json`, and prints the final table: mean and 95%
//! confidence interval over seeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;
use zoo_core::burn::prelude::*;
use zoo_core::burn::tensor::activation::softmax;
use zoo_core::config::{default_objective_table, objective_from_table};
use zoo_core::objective::BuildContext;
use zoo_core::optim::{OptimConfig, OptimKind};
use zoo_core::trainer::{RolloutConfig, Trainer, TrainerConfig, UpdateConfig};
use zoo_core::{Policy, Task, registry};
use zoo_models::TabularPolicy;
use zoo_verifiers::bandit::{Arms, Leakage, Sequence};

use crate::cli::BanditArgs;

/// The environments, by `--env` name.
pub const ENVS: &[&str] = &[
    "k-armed",
    "two-arm",
    "difficulty",
    "leakage",
    "leakage-memorize",
    "sequence",
];

enum Env {
    Arms(Arms),
    Leakage(Leakage),
    Sequence(Sequence),
}

/// Per environment: group size, prompts per step, optimizer and updates per batch, chosen so
/// that 300 steps reach the fixed points the spec states (tested in `tests/it/bandits.rs`).
/// The difficulty spectrum uses plain SGD: Adam normalizes each question's step and would hide
/// the weighting under study. The single token takes many updates per batch with `ℓ^old`
/// frozen, where the clip range decides how far a rare token can rise (E3, D-2).
struct Defaults {
    group_size: usize,
    prompts: usize,
    optim: OptimConfig,
    epochs: usize,
}

fn defaults(name: &str) -> Defaults {
    let adam = OptimConfig {
        lr: 0.05,
        ..OptimConfig::default()
    };
    let sgd = |lr: f64| OptimConfig {
        kind: OptimKind::Sgd,
        lr,
        grad_clip: 0.0,
        ..OptimConfig::default()
    };
    let (group_size, prompts, optim, epochs) = match name {
        "leakage" | "leakage-memorize" => (16, 4, adam, 1),
        "difficulty" => (8, 10, sgd(0.5), 1),
        "single-token" => (64, 1, sgd(0.1), 20),
        "sequence" => (8, 4, sgd(1.0), 1),
        _ => (8, 4, adam, 1),
    };
    Defaults {
        group_size,
        prompts,
        optim,
        epochs,
    }
}

impl Env {
    fn new(name: &str) -> Result<Self> {
        Ok(match name {
            "k-armed" => Env::Arms(Arms::k_armed()),
            "two-arm" => Env::Arms(Arms::two_arm()),
            "difficulty" => Env::Arms(Arms::difficulty()),
            "single-token" => Env::Arms(Arms::single_token()),
            "leakage" => Env::Leakage(Leakage::new(None)),
            "leakage-memorize" => Env::Leakage(Leakage::new(Some(4))),
            "sequence" => Env::Sequence(Sequence::new()),
            other => bail!(
                "unknown environment `{other}`\nhint: environments: {}",
                ENVS.join(", ")
            ),
        })
    }

    fn task(&self) -> &dyn Task {
        match self {
            Env::Arms(a) => a,
            Env::Leakage(l) => l,
            Env::Sequence(s) => s,
        }
    }

    fn policy(&self) -> Result<TabularPolicy> {
        let (rows, vocab) = match self {
            Env::Arms(a) => (a.rows(), a.vocab()),
            Env::Leakage(l) => (l.rows(), l.vocab()),
            Env::Sequence(s) => (s.rows(), s.vocab()),
        };
        Ok(TabularPolicy::shared(rows, vocab, &Device::flex())?)
    }

    /// `reward` (exact, expected) first, then the environment's diagnostics.
    fn measure(&self, policy: &dyn Policy) -> Vec<(String, f64)> {
        let distribution = |state: &[u32]| -> Option<Vec<f64>> {
            let logits = policy.token_logits(&[state.to_vec()], &[vec![0]], false);
            let p = softmax(logits, 2).into_data().convert::<f64>();
            p.try_into_vec::<f64>().ok()
        };
        match self {
            Env::Arms(a) => {
                let success = a.success(&distribution);
                let mut out = vec![(
                    "reward".to_string(),
                    success.iter().sum::<f64>() / success.len() as f64,
                )];
                if success.len() > 1 {
                    for (q, p) in success.iter().enumerate() {
                        out.push((format!("p_q{q}"), *p));
                    }
                }
                out
            }
            Env::Sequence(s) => {
                let (reward, length) = s.expectations(&distribution);
                vec![
                    ("reward".to_string(), reward),
                    // Scaled to [0, 1] like every other column: length / max_len.
                    ("length_frac".to_string(), length / s.max_len as f64),
                ]
            }
            Env::Leakage(l) => vec![
                ("reward".to_string(), l.expected_reward(&distribution)),
                (
                    "train_reward".to_string(),
                    l.expected_reward_on(&l.training_problems(), &distribution),
                ),
                ("p_reason".to_string(), l.reason_probability(&distribution)),
            ],
        }
    }
}

/// Config overrides of one `--algos` entry, in order.
type Overrides = Vec<(String, toml::Value)>;

/// `grpo[norm_adv_by_std=false, clip_high=0.28]` → (`grpo`, overrides).
pub(crate) fn parse_algo(entry: &str) -> Result<(String, Overrides)> {
    let entry = entry.trim();
    let Some(open) = entry.find('[') else {
        return Ok((entry.to_string(), Vec::new()));
    };
    let Some(inner) = entry[open + 1..].strip_suffix(']') else {
        bail!(
            "`{entry}`: an override list must end with `]`\nhint: e.g. `grpo[norm_adv_by_std=false]`"
        );
    };
    let mut overrides = Vec::new();
    for pair in inner.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("`{pair}` in `{entry}` is not `key=value`");
        };
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", value.trim()))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.trim().to_string()));
        overrides.push((key.trim().to_string(), value));
    }
    Ok((entry[..open].trim().to_string(), overrides))
}

/// Splits `a,b[x=1,y=2],c` at the commas outside brackets.
pub(crate) fn split_algos(list: &str) -> Vec<String> {
    let (mut out, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// Mean and Student-t 95% confidence interval of `values`, clamped to [0, 1]: every reported
/// quantity (expected rewards, probabilities) lies there.
fn mean_ci(values: &[f64]) -> (f64, [f64; 2]) {
    let (mean, [lo, hi]) = mean_ci_unclamped(values);
    (mean, [lo.max(0.0), hi.min(1.0)])
}

fn mean_ci_unclamped(values: &[f64]) -> (f64, [f64; 2]) {
    crate::stats::mean_ci(values).map_or((f64::NAN, [f64::NAN; 2]), |e| (e.mean, [e.low, e.high]))
}

/// Runs `zoo bandit`.
pub fn run(args: &BanditArgs) -> Result<()> {
    let env = Env::new(&args.env)?;
    let Defaults {
        group_size,
        prompts,
        optim,
        epochs,
    } = defaults(&args.env);
    let algos = split_algos(&args.algos);
    if algos.is_empty() {
        bail!(
            "`--algos` lists no algorithm\nhint: e.g. `--algos grpo,grpo[norm_adv_by_std=false],disco`"
        );
    }
    if args.seeds == 0 || args.steps == 0 {
        bail!("`--seeds` and `--steps` must be at least 1");
    }
    let parsed: Vec<(String, String, Overrides)> = algos
        .iter()
        .map(|label| parse_algo(label).map(|(name, o)| (label.trim().to_string(), name, o)))
        .collect::<Result<_>>()?;
    // Validate every entry before any work.
    let context = BuildContext {
        max_new_tokens: env.task().max_new_tokens(),
        group_size,
        steps: args.steps,
        temperature: 1.0,
        evaluation: false,
    };
    let mut objectives_config = Vec::new();
    for (label, name, overrides) in &parsed {
        registry::algorithm(name)?;
        let mut table = default_objective_table(name)?;
        for (key, value) in overrides {
            table
                .as_table_mut()
                .expect("an objective table")
                .insert(key.clone(), value.clone());
        }
        let config = objective_from_table(table.clone())
            .with_context(|| format!("in `--algos` entry `{label}`"))?;
        config
            .build(&context)
            .with_context(|| format!("in `--algos` entry `{label}`"))?;
        objectives_config.push((label.clone(), table));
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("runs/bandit-{}-{stamp}", args.env))
    });
    fs_err::create_dir_all(&out)?;

    let mut csv = String::new();
    let mut header_written = false;
    // label -> metric -> final value per seed
    let mut finals: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for (label, table) in &objectives_config {
        for seed in 0..args.seeds as u64 {
            let objective = objective_from_table(table.clone())?.build(&context)?;
            let trainer_config = TrainerConfig {
                rollout: RolloutConfig {
                    prompts_per_step: prompts,
                    group_size,
                    temperature: 1.0,
                    max_new_tokens: context.max_new_tokens,
                },
                optim: optim.clone(),
                update: UpdateConfig {
                    epochs,
                    ..UpdateConfig::default()
                },
                ..TrainerConfig::default()
            };
            let mut trainer = Trainer::new(
                trainer_config,
                seed,
                args.steps,
                Box::new(env.policy()?),
                objective,
                env.task(),
            )?;
            let mut record = |step: usize, policy: &dyn Policy| {
                let metrics = env.measure(policy);
                if !header_written {
                    let names: Vec<&str> = metrics.iter().map(|(k, _)| k.as_str()).collect();
                    let _ = writeln!(csv, "algo,seed,step,{}", names.join(","));
                    header_written = true;
                }
                let values: Vec<String> = metrics.iter().map(|(_, v)| format!("{v:.6}")).collect();
                let _ = writeln!(csv, "\"{label}\",{seed},{step},{}", values.join(","));
                metrics
            };
            record(0, trainer.policy());
            for step in 1..=args.steps {
                trainer
                    .step(step)
                    .with_context(|| format!("`{label}`, seed {seed}, step {step}"))?;
                let metrics = record(step, trainer.policy());
                if step == args.steps {
                    for (name, value) in metrics {
                        finals
                            .entry(label.clone())
                            .or_default()
                            .entry(name)
                            .or_default()
                            .push(value);
                    }
                }
            }
        }
        if !args.json {
            eprintln!("{label}: done");
        }
    }
    checkpoint_write(&out.join("curves.csv"), &csv)?;
    let colors = plot(
        &out.join("curves.svg"),
        &csv,
        &objectives_config,
        &args.env,
        args.seeds,
    )?;

    let mut results = serde_json::Map::new();
    for (label, metrics) in &finals {
        let mut entry = serde_json::Map::new();
        for (name, values) in metrics {
            let (mean, ci) = mean_ci(values);
            entry.insert(format!("{name}_mean"), json!(mean));
            entry.insert(format!("{name}_ci95"), json!(ci));
        }
        results.insert(label.clone(), serde_json::Value::Object(entry));
    }
    let summary = json!({
        "env": args.env,
        "steps": args.steps,
        "seeds": args.seeds,
        "results": results,
        "plot_colors": colors,
    });
    checkpoint_write(
        &out.join("results.json"),
        &serde_json::to_string_pretty(&summary)?,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    let names: Vec<String> = finals
        .values()
        .next()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    println!(
        "`{}` after {} steps, {} seeds: mean [95% CI]",
        args.env, args.steps, args.seeds
    );
    let width = finals.keys().map(String::len).max().unwrap_or(4).max(4);
    print!("{:<width$}", "algo");
    for name in &names {
        print!("  {name:>24}");
    }
    println!();
    for (label, metrics) in &finals {
        print!("{label:<width$}");
        for name in &names {
            let (mean, [lo, hi]) = mean_ci(&metrics[name]);
            print!("  {:>24}", format!("{mean:.3} [{lo:.3}, {hi:.3}]"));
        }
        println!();
    }
    println!(
        "curves: `{}`, plot: `{}` ({})",
        out.join("curves.csv").display(),
        out.join("curves.svg").display(),
        colors
            .iter()
            .map(|(label, color)| format!("{label} {color}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Draws the seed-mean reward curve of each algorithm with its Student-t 95% band to `path`
/// (SVG with a title, axis labels and a legend); returns each label's color name.
fn plot(
    path: &std::path::Path,
    csv: &str,
    algos: &[(String, toml::Value)],
    env: &str,
    seeds: usize,
) -> Result<Vec<(String, String)>> {
    use crate::svg::{Chart, PALETTE, Series};
    // Rewards per (algo, step) over seeds, from the CSV just written.
    let mut rewards: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let (label, rest) = line[1..].split_once("\",").unwrap_or(("", ""));
        let fields: Vec<&str> = rest.split(',').collect();
        if let (Some(step), Some(reward)) = (fields.get(1), fields.get(2)) {
            let (step, reward): (usize, f64) = (step.parse()?, reward.parse()?);
            rewards
                .entry((label.to_string(), step))
                .or_default()
                .push(reward);
        }
    }
    let mut series = Vec::new();
    let mut colors = Vec::new();
    for (i, (label, _)) in algos.iter().enumerate() {
        let estimates: Vec<(f64, crate::stats::Estimate)> = rewards
            .iter()
            .filter(|((l, _), _)| l == label)
            .filter_map(|((_, step), v)| crate::stats::mean_ci(v).map(|e| (*step as f64, e)))
            .collect();
        series.push(Series {
            label: label.clone(),
            points: estimates.iter().map(|(x, e)| (*x, e.mean)).collect(),
            band: estimates
                .iter()
                .map(|(x, e)| (*x, e.low.max(0.0), e.high.min(1.0)))
                .collect(),
        });
        colors.push((label.clone(), PALETTE[i % PALETTE.len()].0.to_string()));
    }
    let chart = Chart {
        title: format!("`{env}`: expected reward, mean over {seeds} seeds with 95% band"),
        x_label: "step".into(),
        y_label: "expected reward".into(),
        y_range: Some((0.0, 1.0)),
        series,
    };
    checkpoint_write(path, &chart.to_svg())?;
    Ok(colors)
}

fn checkpoint_write(path: &std::path::Path, text: &str) -> Result<()> {
    zoo_core::checkpoint::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// The exact expected ascent gradient `E[−d loss / d z]` on a two-arm question with logits
/// `(z, 0)`, `p = sigmoid(z)`, for one group of `group_size` one-token responses sampled
/// on-policy: every one of the `2^G` outcomes is scored by the registered objective `algo` with
/// `config` (the `zoo objective eval` engine) and weighted by its probability. This is the
/// per-question "difficulty weight" of `algorithms.md` §9 (G-4, C-1).
pub fn expected_weight(
    algo: &str,
    config: &serde_json::Value,
    group_size: u32,
    p: f64,
) -> Result<f64> {
    let mut total = 0.0;
    for outcome in 0..(1u32 << group_size) {
        let k = outcome.count_ones();
        let probability = p.powi(k as i32) * (1.0 - p).powi((group_size - k) as i32);
        total += probability * group_weight(algo, config, group_size, p, outcome)?;
    }
    Ok(total)
}

/// `−d loss / d z` for one outcome: arm 0 (correct) on the set bits of `outcome`.
pub fn group_weight(
    algo: &str,
    config: &serde_json::Value,
    group_size: u32,
    p: f64,
    outcome: u32,
) -> Result<f64> {
    let arms: Vec<bool> = (0..group_size).map(|i| outcome >> i & 1 == 1).collect();
    let logprob = |correct: bool| vec![if correct { p.ln() } else { (1.0 - p).ln() }];
    let input = json!({
        "algo": algo,
        "config": config,
        "batch": {
            "rewards": arms.iter().map(|&c| if c { 1.0 } else { 0.0 }).collect::<Vec<_>>(),
            "group_ids": vec![0; group_size as usize],
            "mask": vec![vec![1.0]; group_size as usize],
            "logprobs": arms.iter().map(|&c| logprob(c)).collect::<Vec<_>>(),
            "old_logprobs": arms.iter().map(|&c| logprob(c)).collect::<Vec<_>>(),
        }
    });
    let out = crate::commands::objective::evaluate(&input.to_string())?;
    let grad = out["grad"]
        .as_array()
        .context("a gradient array")?
        .iter()
        .map(|row| row[0].as_f64().unwrap_or(0.0));
    // ∂ℓ/∂z is 1 − p for arm 0 and −p for arm 1.
    Ok(-arms
        .iter()
        .zip(grad)
        .map(|(&correct, d)| d * if correct { 1.0 - p } else { -p })
        .sum::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algo_entries_split_outside_brackets_and_carry_typed_overrides() {
        let list = split_algos("grpo, grpo[norm_adv_by_std=false,clip_high=0.28],disco");
        assert_eq!(list.len(), 3);
        let (name, overrides) = parse_algo(&list[1]).unwrap();
        assert_eq!(name, "grpo");
        assert_eq!(
            overrides[0],
            ("norm_adv_by_std".into(), toml::Value::Boolean(false))
        );
        assert_eq!(overrides[1], ("clip_high".into(), toml::Value::Float(0.28)));
        assert!(parse_algo("grpo[x=1").is_err());
        let (mean, [lo, hi]) = mean_ci_unclamped(&[1.0, 2.0, 3.0]);
        assert_eq!(mean, 2.0);
        assert!((hi - mean - 4.303 / 3f64.sqrt()).abs() < 1e-9 && lo < mean);
        let (_, [lo, hi]) = mean_ci(&[0.01, 0.9, 0.3]);
        assert!(lo == 0.0 && hi < 1.0 + 1e-12);
    }
}
