//! `zoo objective eval`: one objective on given numbers, as JSON, for parity checks against
//! other implementations. The engine is [`zoo_core::probe`]; this file parses and validates
//! the input format and writes the output.

use std::collections::HashMap;
use std::io::Read;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use zoo_core::burn::prelude::*;
use zoo_core::device::DeviceSpec;
use zoo_core::objective::BuildContext;
use zoo_core::probe::{ProbeBatch, probe};
use zoo_core::{LogitArray, ObjectiveConfig, TokenMatrix, registry};

use crate::cli::ObjectiveEvalArgs;

/// The config keys of the input format. A key an objective does not have is ignored and listed
/// in the output's `unused_config`; any other key is an error.
const CONFIG_KEYS: &[&str] = &[
    "clip_low",
    "clip_high",
    "clip_dual",
    "loss_agg",
    "adv_eps",
    "norm_adv_by_std",
    "kl_coef",
    "kl_estimator",
    "score",
    "variant",
    "tau",
    "delta",
    "beta",
    "lambda",
    "eps_w",
    "jsd_beta",
    "temperature",
    "topk",
    "tail",
    "loss_scale",
    "lambda_schedule",
    "decay_steps",
    "accuracy_reward",
    "dynamic_sampling",
    "overlong_buffer",
    "overlong_buffer_len",
    "overlong_penalty_factor",
    "lam",
    "eta",
    "residual_clip_low",
    "residual_clip_high",
    "k_max",
    "tau_pos",
    "tau_neg",
    "divergence",
    "delta_low",
    "delta_high",
    "tis_cap",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    algo: String,
    #[serde(default)]
    config: Map<String, Value>,
    /// Present: the objective as the trainer builds it (reward shaping, group filtering, λ
    /// schedules on); absent: the loss on the numbers given.
    training: Option<Training>,
    batch: BatchInput,
}

/// The run settings of a training-time evaluation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Training {
    /// The training step (from 1): sets scheduled values such as λ.
    #[serde(default = "first_step")]
    step: usize,
    /// The response length cap `L_max` (DAPO's overlong zone, the constant normalizer);
    /// default: `T`, the batch's width.
    max_new_tokens: Option<usize>,
    /// The rollout temperature (SDPO's distillation temperature follows it).
    #[serde(default = "unit_temperature")]
    temperature: f32,
}

fn first_step() -> usize {
    1
}

fn unit_temperature() -> f32 {
    1.0
}

type Rows = Vec<Vec<f64>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchInput {
    /// May be absent for a distillation objective (OPSD, SDPO), which reads neither.
    rewards: Option<Vec<f64>>,
    group_ids: Option<Vec<Value>>,
    mask: Rows,
    logprobs: Option<Rows>,
    old_logprobs: Option<Rows>,
    ref_logprobs: Option<Rows>,
    teacher_logprobs: Option<Rows>,
    teacher_pos_logprobs: Option<Rows>,
    /// `[N][T]` (one wrong-answer teacher, CEPO) or `[N][K][T]` (K of them, RLCSD).
    teacher_neg_logprobs: Option<Value>,
    /// `[N][K]` of 0/1: slot `k` of row `i` of `teacher_neg_logprobs` is real.
    teacher_neg_valid: Option<Vec<Vec<f64>>>,
    /// `[N]` of 0/1: row `i` has its teacher hint.
    hint_mask: Option<Vec<f64>>,
    student_logits: Option<Vec<Rows>>,
    teacher_logits: Option<Vec<Rows>>,
}

/// `[N][T]` rows as a matrix; every row must have `cols` entries.
fn matrix(name: &str, rows: &Rows, cols: usize) -> Result<TokenMatrix> {
    let mut data = Vec::with_capacity(rows.len() * cols);
    for (i, row) in rows.iter().enumerate() {
        if row.len() != cols {
            bail!(
                "`batch.{name}[{i}]` has {} entries but `batch.mask[0]` has {cols}\nhint: pad every row to the same length T",
                row.len()
            );
        }
        data.extend(row.iter().map(|&x| x as f32));
    }
    Ok(TokenMatrix {
        rows: rows.len(),
        cols,
        data,
    })
}

/// `teacher_neg_logprobs` as its slots: `[N][T]` is one slot, `[N][K][T]` K slots of `[N][T]`.
fn negative_slots(value: &Value, cols: usize) -> Result<Vec<TokenMatrix>> {
    let three_d = value
        .as_array()
        .and_then(|rows| rows.first())
        .and_then(|row| row.as_array())
        .and_then(|row| row.first())
        .is_some_and(Value::is_array);
    if !three_d {
        let rows: Rows = serde_json::from_value(value.clone()).map_err(|e| {
            anyhow::anyhow!(
                "`batch.teacher_neg_logprobs` is neither [N][T] nor [N][K][T] numbers: {e}"
            )
        })?;
        return Ok(vec![matrix("teacher_neg_logprobs", &rows, cols)?]);
    }
    let rows: Vec<Rows> = serde_json::from_value(value.clone()).map_err(|e| {
        anyhow::anyhow!("`batch.teacher_neg_logprobs` is not [N][K][T] numbers: {e}")
    })?;
    let k = rows.first().map_or(0, Vec::len);
    if let Some(i) = rows.iter().position(|slots| slots.len() != k) {
        bail!(
            "`batch.teacher_neg_logprobs[{i}]` has {} slots but row 0 has {k}\nhint: pad every row to K slots and mark the missing ones 0 in `teacher_neg_valid`",
            rows[i].len()
        );
    }
    (0..k)
        .map(|slot| {
            let slot_rows: Rows = rows.iter().map(|r| r[slot].clone()).collect();
            matrix("teacher_neg_logprobs", &slot_rows, cols)
        })
        .collect()
}

/// A list of 0/1 numbers as flags; `name` for the message.
fn flags(name: &str, values: &[f64]) -> Result<Vec<bool>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            0.0 => Ok(false),
            1.0 => Ok(true),
            other => bail!("`batch.{name}` holds {other} at {i}; give 0 or 1"),
        })
        .collect()
}

/// `[N][T][V]` as a logit array.
fn logits(name: &str, values: &[Rows], cols: usize) -> Result<LogitArray> {
    let vocab = values
        .first()
        .and_then(|r| r.first())
        .map_or(0, |v| v.len());
    let mut data = Vec::new();
    for (i, row) in values.iter().enumerate() {
        if row.len() != cols {
            bail!(
                "`batch.{name}[{i}]` has {} positions but `batch.mask[0]` has {cols}",
                row.len()
            );
        }
        for (t, v) in row.iter().enumerate() {
            if v.len() != vocab {
                bail!(
                    "`batch.{name}[{i}][{t}]` has {} logits but `batch.{name}[0][0]` has {vocab}\nhint: give every position the whole vocabulary",
                    v.len()
                );
            }
            data.extend(v.iter().map(|&x| x as f32));
        }
    }
    Ok(LogitArray {
        rows: values.len(),
        cols,
        vocab,
        data,
    })
}

/// Group ids may be integers or strings; each distinct value becomes one group.
fn group_ids(values: &[Value]) -> Result<Vec<usize>> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let key = match v {
                Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
                Value::String(s) => format!("s:{s}"),
                other => bail!("`batch.group_ids[{i}]` is {other}; use an integer or a string"),
            };
            let next = ids.len();
            Ok(*ids.entry(key).or_insert(next))
        })
        .collect()
}

/// The objective's config from the input's keys: unknown keys are refused, keys this
/// objective lacks are dropped and returned. (Objectives built for evaluation take `lambda` as
/// this step's value, without a schedule.)
fn objective_config(
    algo: &str,
    given: &Map<String, Value>,
) -> Result<(Box<dyn ObjectiveConfig>, Vec<String>)> {
    if let Some(key) = given.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
        bail!(
            "unknown config key `{key}`\nhint: the keys are {}",
            CONFIG_KEYS.join(", ")
        );
    }
    let mut table = given.clone();
    table.insert("algo".into(), algo.into());
    let mut unused = Vec::new();
    loop {
        match serde_json::from_value::<Box<dyn ObjectiveConfig>>(Value::Object(table.clone())) {
            Ok(config) => return Ok((config, unused)),
            Err(e) => {
                let message = e.to_string();
                let field = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string);
                match field {
                    Some(field) if table.contains_key(&field) => {
                        table.remove(&field);
                        unused.push(field);
                    }
                    _ => bail!("invalid `config` for `{algo}`: {message}"),
                }
            }
        }
    }
}

/// Runs `zoo objective eval`.
pub fn run(args: &ObjectiveEvalArgs) -> Result<()> {
    let text = if args.input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        text
    } else {
        fs_err::read_to_string(&args.input)
            .with_context(|| format!("cannot read `{}`", args.input.display()))?
    };
    let device = args.device.parse::<DeviceSpec>()?.device()?;
    let output = evaluate_on(&text, &device)?;
    let rendered = if args.pretty {
        serde_json::to_string_pretty(&output)?
    } else {
        serde_json::to_string(&output)?
    };
    println!("{rendered}");
    Ok(())
}

/// The output JSON for the input JSON `text`, computed on the pure-Rust CPU backend.
pub fn evaluate(text: &str) -> Result<Value> {
    evaluate_on(text, &Device::flex().autodiff())
}

/// The output JSON for the input JSON `text`, computed on `device` (with autodiff).
pub fn evaluate_on(text: &str, device: &Device) -> Result<Value> {
    // A parity fixture (`{"description", "input", "expected"}`) is evaluated on its input.
    let value: Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("the input is not JSON: {e}\nhint: see `zoo objective eval --help`")
    })?;
    let value = match value {
        Value::Object(mut fixture) if fixture.contains_key("expected") => {
            fixture.remove("input").unwrap_or_default()
        }
        other => other,
    };
    let input: Input = serde_json::from_value(value).map_err(|e| {
        anyhow::anyhow!("the input is not the `objective eval` format: {e}\nhint: see `zoo objective eval --help`")
    })?;
    registry::algorithm(&input.algo)?;
    let (config, unused) = objective_config(&input.algo, &input.config)?;
    let b = &input.batch;
    let cols = b.mask.first().map_or(0, Vec::len);
    let rows = |name: &str, r: &Option<Rows>| r.as_ref().map(|r| matrix(name, r, cols)).transpose();
    // Without rewards and group ids (a distillation objective's input): zeros, one group.
    let n = b.mask.len();
    let batch = ProbeBatch {
        rewards: match &b.rewards {
            Some(rewards) => rewards.iter().map(|&r| r as f32).collect(),
            None => vec![0.0; n],
        },
        group_ids: match &b.group_ids {
            Some(ids) => group_ids(ids)?,
            None => vec![0; n],
        },
        mask: matrix("mask", &b.mask, cols)?,
        logprobs: rows("logprobs", &b.logprobs)?,
        old_logprobs: rows("old_logprobs", &b.old_logprobs)?,
        ref_logprobs: rows("ref_logprobs", &b.ref_logprobs)?,
        teacher_logprobs: rows("teacher_logprobs", &b.teacher_logprobs)?,
        teacher_pos_logprobs: rows("teacher_pos_logprobs", &b.teacher_pos_logprobs)?,
        teacher_neg_logprobs: b
            .teacher_neg_logprobs
            .as_ref()
            .map(|v| negative_slots(v, cols))
            .transpose()?,
        teacher_neg_valid: b
            .teacher_neg_valid
            .as_ref()
            .map(|rows| {
                rows.iter()
                    .enumerate()
                    .map(|(i, row)| flags(&format!("teacher_neg_valid[{i}]"), row))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?,
        hint_mask: b
            .hint_mask
            .as_ref()
            .map(|v| flags("hint_mask", v))
            .transpose()?,
        student_logits: b
            .student_logits
            .as_ref()
            .map(|l| logits("student_logits", l, cols))
            .transpose()?,
        teacher_logits: b
            .teacher_logits
            .as_ref()
            .map(|l| logits("teacher_logits", l, cols))
            .transpose()?,
    };
    // Row-indexed flags are checked before any row is selected (dynamic sampling below).
    if batch.hint_mask.as_ref().is_some_and(|h| h.len() != n)
        || batch
            .teacher_neg_valid
            .as_ref()
            .is_some_and(|v| v.len() != n)
    {
        bail!(
            "`batch.hint_mask` and `batch.teacher_neg_valid` need one entry per row of `batch.mask` ({n})"
        );
    }
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for &g in &batch.group_ids {
        *sizes.entry(g).or_default() += 1;
    }
    let training = input.training.as_ref();
    if training.is_some_and(|t| t.step == 0) {
        bail!("`training.step` counts from 1");
    }
    let objective = config.build(&BuildContext {
        max_new_tokens: training
            .and_then(|t| t.max_new_tokens)
            .unwrap_or(cols)
            .max(1),
        group_size: sizes.values().copied().max().unwrap_or(1),
        steps: 1,
        temperature: training.map_or(1.0, |t| t.temperature),
        evaluation: training.is_none(),
    })?;
    if !objective.needs().student_logits {
        for (key, given) in [
            ("rewards", b.rewards.is_some()),
            ("group_ids", b.group_ids.is_some()),
        ] {
            if !given {
                bail!(
                    "`{}` reads `batch.{key}`, which is missing\nhint: give one value per response (only the distillation objectives, OPSD and SDPO, do without)",
                    input.algo
                );
            }
        }
    }
    // Dynamic sampling (training only): the groups the objective drops leave the batch.
    let kept: Vec<usize> = match (training, objective.needs().dynamic_sampling) {
        (Some(_), Some(_)) => kept_rows(objective.as_ref(), &batch),
        _ => (0..n).collect(),
    };
    if kept.is_empty() {
        bail!(
            "dynamic sampling drops every group of this batch (each is all-correct or all-wrong)\nhint: give at least one group with a correct (reward ≥ 1) and a wrong response"
        );
    }
    let batch = if kept.len() < n {
        select_rows(&batch, &kept)
    } else {
        batch
    };
    let step = training.map_or(1, |t| t.step);
    let mut out = probe(objective.as_ref(), &batch, step, device)?;
    if kept.len() < n {
        // Dropped rows: zero gradient and advantages, in the input's row order.
        let width: usize = out.grad_shape[1..].iter().product();
        let mut grad = vec![0.0; n * width];
        let mut advantages = TokenMatrix::zeros(n, cols);
        for (k, &row) in kept.iter().enumerate() {
            grad[row * width..(row + 1) * width]
                .copy_from_slice(&out.grad[k * width..(k + 1) * width]);
            for t in 0..cols {
                advantages.set(row, t, out.advantages.get(k, t));
            }
        }
        out.grad = grad;
        out.grad_shape[0] = n;
        out.advantages = advantages;
    }
    // `x + 0.0` turns −0.0 (a masked position times a negative number) into 0.0.
    let grad: Vec<f32> = out.grad.iter().map(|g| g + 0.0).collect();
    let grad: Value = match out.grad_shape.as_slice() {
        [n, t] => json!(
            (0..*n)
                .map(|i| &out.grad[i * t..(i + 1) * t])
                .collect::<Vec<_>>()
        ),
        [n, t, v] => json!(
            (0..*n)
                .map(|i| {
                    (0..*t)
                        .map(|j| &grad[(i * t + j) * v..(i * t + j + 1) * v])
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        ),
        shape => bail!("unexpected gradient shape {shape:?}"),
    };
    let a = &out.advantages;
    let advantages: Vec<Vec<f32>> = (0..a.rows)
        .map(|i| a.row(i).iter().map(|x| x + 0.0).collect())
        .collect();
    Ok(json!({
        "algo": input.algo,
        "loss": out.loss,
        "grad": grad,
        "advantages": advantages,
        "metrics": out.metrics,
        "kept_rows": kept,
        "unused_config": unused,
    }))
}

/// The rows of the groups [`zoo_core::Objective::keep_group`] keeps (correct: reward ≥ 1).
fn kept_rows(objective: &dyn zoo_core::Objective, batch: &ProbeBatch) -> Vec<usize> {
    let groups = zoo_core::objective::groups(&batch.group_ids);
    let mut kept: Vec<usize> = groups
        .into_iter()
        .filter(|rows| {
            let rewards: Vec<f32> = rows.iter().map(|&i| batch.rewards[i]).collect();
            let correct: Vec<bool> = rewards.iter().map(|&r| r >= 1.0).collect();
            objective.keep_group(&rewards, &correct)
        })
        .flatten()
        .collect();
    kept.sort_unstable();
    kept
}

/// The batch restricted to `rows`, in that order.
fn select_rows(batch: &ProbeBatch, rows: &[usize]) -> ProbeBatch {
    let m = |x: &Option<TokenMatrix>| x.as_ref().map(|m| m.select_rows(rows));
    let l = |x: &Option<LogitArray>| x.as_ref().map(|l| l.select_rows(rows, l.cols));
    ProbeBatch {
        rewards: rows.iter().map(|&i| batch.rewards[i]).collect(),
        group_ids: rows.iter().map(|&i| batch.group_ids[i]).collect(),
        mask: batch.mask.select_rows(rows),
        logprobs: m(&batch.logprobs),
        old_logprobs: m(&batch.old_logprobs),
        ref_logprobs: m(&batch.ref_logprobs),
        teacher_logprobs: m(&batch.teacher_logprobs),
        teacher_pos_logprobs: m(&batch.teacher_pos_logprobs),
        teacher_neg_logprobs: batch
            .teacher_neg_logprobs
            .as_ref()
            .map(|slots| slots.iter().map(|m| m.select_rows(rows)).collect()),
        teacher_neg_valid: batch
            .teacher_neg_valid
            .as_ref()
            .map(|valid| rows.iter().map(|&i| valid[i].clone()).collect()),
        hint_mask: batch
            .hint_mask
            .as_ref()
            .map(|h| rows.iter().map(|&i| h[i]).collect()),
        student_logits: l(&batch.student_logits),
        teacher_logits: l(&batch.teacher_logits),
    }
}
