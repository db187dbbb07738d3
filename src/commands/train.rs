//! `zoo train`: RL from the base policy with one objective, with held-out accuracy before and
//! after.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use zoo_core::checkpoint;
use zoo_core::dist::{Collective, Single};
use zoo_core::eval::{EvalReport, evaluate};
use zoo_core::metrics::MetricsWriter;
use zoo_core::trainer::Trainer;
use zoo_core::{Policy, Problem, SamplingConfig, Task};

use crate::base;
use crate::cli::TrainArgs;
use crate::commands::progress::Progress;
use crate::run_config::{Overrides, RunConfig, given_flags};

/// Held-out pass@1, greedy and sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Accuracy {
    /// Greedy decoding.
    pub greedy: f64,
    /// Sampling at the configured evaluation temperature.
    pub sampled: f64,
    /// The share of the sampled responses with each of the task's response features
    /// (`chainless`, ...); empty for a task without any.
    #[serde(default)]
    pub features: std::collections::BTreeMap<String, f64>,
}

/// What `zoo train` reports at the end (also written as `eval.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The algorithm.
    pub algo: String,
    /// The task.
    pub task: String,
    /// The RL seed.
    pub seed: u64,
    /// Steps trained.
    pub steps: usize,
    /// Held-out problems evaluated.
    pub problems: usize,
    /// Before RL (the base policy).
    pub before: Accuracy,
    /// After RL.
    pub after: Accuracy,
    /// Wall time of the whole command, seconds.
    pub seconds: f64,
}

/// The held-out problems an evaluation of `problems` reads: the first `problems`, or all.
/// The base-evaluation key fingerprints this slice, so it is the one rule for both.
pub(crate) fn evaluated_heldout(task: &dyn Task, problems: usize) -> &[Problem] {
    let heldout = task.heldout();
    &heldout[..problems.min(heldout.len())]
}

/// Greedy and sampled held-out pass@1 of `policy` on the first `problems` held-out problems.
pub fn heldout_accuracy(
    policy: &dyn Policy,
    task: &dyn Task,
    problems: usize,
    temperature: f32,
    max_new_tokens: usize,
    seed: u64,
) -> zoo_core::Result<Accuracy> {
    let heldout = evaluated_heldout(task, problems);
    let run = |temperature: f32| -> zoo_core::Result<EvalReport> {
        evaluate(
            policy,
            task,
            heldout,
            &SamplingConfig {
                temperature,
                max_new_tokens,
                min_new_tokens: 0,
            },
            1,
            &[],
            seed,
        )
    };
    let sampled = run(temperature)?;
    Ok(Accuracy {
        greedy: run(0.0)?.pass_at_1,
        sampled: sampled.pass_at_1,
        features: sampled.features,
    })
}

fn default_out(config: &RunConfig, algo: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{algo}-{}-s{}-{stamp}", config.task, config.seed))
}

/// A TOML comment naming the settings the algorithm's own run defaults gave (its reference's),
/// which apply under the user's: empty when it has none.
fn run_defaults_note(config: &RunConfig) -> Result<String> {
    let task = config.task()?;
    let algo = config.build_objective(task.as_ref())?.name().to_string();
    let entry = zoo_core::registry::algorithm(&algo)?;
    let Ok(mut table) = entry.run_defaults.parse::<toml::Table>() else {
        return Ok(String::new());
    };
    if config.model.is_llm()
        && let Ok(llm) = entry.llm_run_defaults.parse::<toml::Table>()
    {
        let mut merged = toml::Value::Table(table);
        zoo_core::config::merge(&mut merged, toml::Value::Table(llm));
        table = match merged {
            toml::Value::Table(t) => t,
            _ => unreachable!("a table merged with a table"),
        };
    }
    let mut keys = Vec::new();
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => flatten(&path, inner, out),
                other => out.push(format!("{path} = {other}")),
            }
        }
    }
    flatten("", &table, &mut keys);
    if keys.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "\n# `{algo}`'s run defaults (its reference's; your settings win): {}\n",
        keys.join(", ")
    ))
}

/// `--dry-run --dist`: the world the launcher gives (`WORLD_SIZE=4 zoo train --dry-run --dist
/// nccl ...` plans without launching), each rank's share of a step and what the ranks
/// exchange, as TOML comments.
fn dist_plan(config: &RunConfig, engine: zoo_dist::Engine) -> Result<String> {
    let env = match zoo_dist::DistEnv::from_process(engine) {
        Ok(env) => env,
        Err(e) => {
            return Ok(format!(
                "\n# Data parallel: no world to plan for ({})\n# (set the launcher's variables, e.g. `RANK=0 WORLD_SIZE=4 MASTER_ADDR=h MASTER_PORT=29500`, to see a plan)\n",
                e.to_string().lines().next().unwrap_or("")
            ));
        }
    };
    let params = if config.model.is_llm() {
        zoo_llm::shapes::config_of(&config.model.source)?.num_params()
    } else {
        let mut rng = zoo_core::rng::stream(0, 0, "plan");
        zoo_models::TinyPolicy::new(
            &config.warm_start.model,
            &mut rng,
            &zoo_core::burn::prelude::Device::flex(),
        )?
        .num_params()
    };
    let (world, r, u) = (env.world, &config.rollout, &config.update);
    let shares: Vec<usize> = zoo_core::trainer::split_even(r.prompts_per_step, world)
        .iter()
        .map(|s| s.len())
        .collect();
    let (least, most) = (shares.iter().min().copied().unwrap_or(0), shares[0]);
    let optimizer_steps = u.epochs * u.mini_batches;
    let gradient_bytes = params as u64 * 4;
    let mut out = format!(
        "\n# Data parallel over {} ({}): {world} ranks\n",
        match engine {
            zoo_dist::Engine::Mpi => "MPI",
            zoo_dist::Engine::Nccl => "NCCL",
        },
        env.launcher
    );
    out.push_str(&format!(
        "#   each rank samples and scores {least}-{most} of the {} groups ({}-{} responses) a step\n",
        r.prompts_per_step,
        least * r.group_size,
        most * r.group_size
    ));
    if least == 0 {
        out.push_str("#   (some ranks hold no group: raise `rollout.prompts_per_step` to at least the world size)\n");
    }
    out.push_str(&format!(
        "#   gradients: one all-reduce of {params} f32 values ({}) per optimizer step, {optimizer_steps} a step\n",
        zoo_llm::memory::human(gradient_bytes)
    ));
    out.push_str("#   plus each step's samples and scored log-probs (all-gather, a few KB per response) and the loss sums\n");
    Ok(out)
}

/// The longest prompt the memory estimate assumes, in tokens (chat template included).
pub const ASSUMED_PROMPT_TOKENS: usize = 256;

/// The memory estimate of a real-model run as TOML comments (the printed config still reads
/// back unchanged); `None` for the tiny decoder, whose run fits in a few hundred MB.
fn memory_estimate(config: &RunConfig) -> Result<Option<String>> {
    use zoo_llm::memory::{RunShape, estimate, human};
    if !config.model.is_llm() {
        return Ok(None);
    }
    let model = zoo_llm::shapes::config_of(&config.model.source)?;
    let task = config.task()?;
    let needs = config.build_objective(task.as_ref())?.needs();
    let shape = RunShape {
        rows: config.rollout.prompts_per_step * config.rollout.group_size,
        prompt_tokens: ASSUMED_PROMPT_TOKENS,
        max_new_tokens: config.max_new_tokens(task.as_ref()),
        micro_batch_rows: config.update.micro_batch_size,
        micro_batch_tokens: config.update.micro_batch_tokens,
        head_chunk_positions: config.model.chunk_positions,
        snapshots: needs.snapshots(),
        bf16: config.model.dtype == crate::run_config::ModelDtype::Bf16,
        recompute: config.model.recompute,
        lora_trainable: config
            .model
            .lora
            .as_ref()
            .map_or(0, |lora| zoo_llm::lora::trainable_params(&model, lora)),
        bf16_base: config.model.base_dtype == crate::run_config::ModelDtype::Bf16,
    };
    let memory = estimate(&model, &shape);
    let trainable = match shape.lora_trainable {
        0 => "every one trained".to_string(),
        n => format!(
            "LoRA: {n} trainable ({:.2}%), the base frozen in {}",
            100.0 * n as f64 / model.num_params() as f64,
            if shape.bf16_base { "bf16" } else { "f32" }
        ),
    };
    let mut out = format!(
        "\n# Memory estimate ({} parameters, {trainable}; {} compute; prompts of up to {} tokens assumed):\n",
        model.num_params(),
        if shape.bf16 { "bf16" } else { "f32" },
        ASSUMED_PROMPT_TOKENS
    );
    for (item, bytes) in memory.rows() {
        out.push_str(&format!("#   {item:<30} {:>12}\n", human(bytes)));
    }
    out.push_str(
        "#   (rollout and update do not overlap: peak = resident + the larger of the two)\n",
    );
    Ok(Some(out))
}

/// Seconds a rank waits in one collective by default (torch.distributed's default too).
pub const DIST_TIMEOUT_S: u64 = 1800;

/// Runs `zoo train`; `None` for `--dry-run` and on every rank but 0 of a data-parallel run.
/// With `--dist`, joins the launcher's ranks first; a rank that fails prints its error with its
/// rank and stops every rank.
pub fn run(args: &TrainArgs) -> Result<Option<TrainReport>> {
    let Some(engine) = args.dist.as_deref() else {
        return run_with(args, Arc::new(Single), None);
    };
    let engine: zoo_dist::Engine = engine.parse()?;
    if args.dry_run {
        return run_with(args, Arc::new(Single), None);
    }
    let timeout = Duration::from_secs(args.dist_timeout.unwrap_or(DIST_TIMEOUT_S).max(1));
    let env = zoo_dist::DistEnv::from_process(engine)?;
    share_cores(env.local_world.unwrap_or(1));
    // NCCL's communicator lives on the GPU the rank trains on.
    let gpu = match args.device.as_deref() {
        Some(d) if d.starts_with("tch-cuda:") => d["tch-cuda:".len()..].parse().ok(),
        _ => None,
    };
    let dist = zoo_dist::connect(&env, engine, timeout, gpu.unwrap_or(env.local_rank))?;
    if dist.world() > 1 {
        // A panic on one rank must stop the others now, not after the collective timeout.
        let hook_dist = dist.clone();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            let message = format!("rank {}: panic: {info}", hook_dist.rank());
            eprintln!("{message}");
            hook_dist.abort(101, &message);
        }));
    }
    let result = run_with(args, dist.clone(), Some(env.local_rank));
    if dist.world() > 1 {
        // The hook holds the collective: dropping it lets MPI finalize when `dist` goes.
        drop(std::panic::take_hook());
    }
    match result {
        Ok(report) => Ok(report),
        Err(error) if dist.world() > 1 => {
            let message = format!("rank {}: error: {error:#}", dist.rank());
            eprintln!("{message}");
            dist.abort(1, &message)
        }
        Err(error) => Err(error),
    }
}

/// What the base policy's held-out evaluation depends on, as one string: the trainable weights'
/// fingerprint, the model's files and settings (a LoRA base is named by them), the warm start,
/// the task, its settings and the held-out problems themselves (a file regenerated in place is
/// another key), the number of problems and the temperature evaluated, the response cap, the
/// seed, the device and the package version. Two runs with the same key evaluate the same
/// policy the same way (CPU runs are deterministic), whatever their objective: the objective,
/// rollout and update settings are not in it.
fn base_eval_key(
    config: &RunConfig,
    heldout: &[Problem],
    policy: &dyn Policy,
    max_new_tokens: usize,
) -> Result<String> {
    let text: String = heldout
        .iter()
        .map(|p| format!("{}\u{1f}{}\u{1e}", p.prompt, p.answer))
        .collect();
    let fingerprint = zoo_core::rng::fnv1a(text.as_bytes());
    let parts = [
        format!(
            "weights {:016x}",
            zoo_core::dist::weights_fingerprint(policy)
        ),
        toml::to_string(&config.model)?,
        toml::to_string(&config.warm_start)?,
        format!("task {}", config.task),
        toml::to_string(&config.data)?,
        format!("heldout {fingerprint:016x} x {}", heldout.len()),
        format!("temperature {}", config.eval.temperature),
        format!("max_new_tokens {max_new_tokens}"),
        format!("seed {}", config.seed),
        format!("device {}", config.device),
        format!("zoo {}", env!("CARGO_PKG_VERSION")),
    ];
    Ok(parts.join("\n"))
}

/// The base evaluation stored under `key` in `dir`, else `evaluate()` stored there (the key's
/// text is kept beside the numbers and compared on reading: a hash collision evaluates anew).
fn cached_base_eval(
    dir: &Path,
    key: &str,
    progress: &Progress,
    evaluate: impl FnOnce() -> Result<Accuracy>,
) -> Result<Accuracy> {
    #[derive(Serialize, Deserialize)]
    struct Entry {
        key: String,
        accuracy: Accuracy,
    }
    let path = dir.join(format!(
        "base-eval-{:016x}.json",
        zoo_core::rng::fnv1a(key.as_bytes())
    ));
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(entry) = serde_json::from_str::<Entry>(&text)
        && entry.key == key
    {
        progress.line(&format!(
            "the base policy's held-out evaluation is reused from `{}`",
            path.display()
        ));
        return Ok(entry.accuracy);
    }
    let accuracy = evaluate()?;
    fs_err::create_dir_all(dir)?;
    let entry = Entry {
        key: key.to_string(),
        accuracy,
    };
    checkpoint::write_atomic(&path, serde_json::to_string_pretty(&entry)?.as_bytes())?;
    Ok(entry.accuracy)
}

/// Several ranks on one machine share its cores: each gets its part for rayon's pool unless
/// `RAYON_NUM_THREADS` says otherwise (LibTorch reads `OMP_NUM_THREADS`, which torchrun sets).
fn share_cores(local_ranks: usize) {
    if local_ranks <= 1 || std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / local_ranks).max(1);
    // Fails only when the pool already exists, which then keeps its size.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// Runs `zoo train` as one rank of `dist` (`local_rank` picks the GPU of `--device tch-cuda`):
/// rank 0 alone writes the run folder, prints progress and evaluates; every rank trains.
pub fn run_with(
    args: &TrainArgs,
    dist: Arc<dyn Collective>,
    local_rank: Option<usize>,
) -> Result<Option<TrainReport>> {
    let started = Instant::now();
    let (rank, world) = (dist.rank(), dist.world());
    let lead = rank == 0;
    let config = RunConfig::resolve(&Overrides {
        algo: args.algo.as_deref(),
        config_file: args.config.as_deref(),
        flags: given_flags([
            ("steps", args.steps.map(|v| (v as i64).into())),
            ("seed", args.seed.map(|v| (v as i64).into())),
            ("task", args.task.clone().map(Into::into)),
            ("device", args.device.clone().map(Into::into)),
            (
                "model.source",
                args.model
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned().into()),
            ),
            (
                "model.adapter",
                args.adapter
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned().into()),
            ),
        ]),
        sets: args.set.clone(),
    })?;
    if args.dry_run {
        print!("{}", config.to_toml());
        print!("{}", run_defaults_note(&config)?);
        if let Some(estimate) = memory_estimate(&config)? {
            print!("{estimate}");
        }
        if let Some(engine) = args.dist.as_deref() {
            print!("{}", dist_plan(&config, engine.parse()?)?);
        }
        return Ok(None);
    }
    let progress = Progress::new(args.quiet || !lead);
    let task = config.task()?;
    let objective = config.build_objective(task.as_ref())?;
    let algo = objective.name().to_string();
    let device = match (local_rank, config.device.as_str()) {
        // One GPU per rank: the launcher's local rank picks it.
        (Some(local), "tch-cuda") => format!("tch-cuda:{local}")
            .parse::<zoo_core::device::DeviceSpec>()?
            .device()?,
        _ => config.device_spec()?.device()?,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(&config, &algo));
    let checkpoints = out.join("checkpoints");
    // Rank 0 prepares the run folder and tells the others where to resume from.
    let resume_from = if lead {
        let found = prepare_out(&out, &checkpoints, args.resume)?;
        checkpoint::write_atomic(&out.join("config.toml"), config.to_toml().as_bytes())?;
        found
    } else {
        None
    };
    let resume_from = {
        let mut bytes = resume_from
            .map(|p| p.to_string_lossy().into_owned().into_bytes())
            .unwrap_or_default();
        dist.broadcast_bytes(&mut bytes, 0, "run folder")?;
        (!bytes.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()))
    };

    progress.line(&format!(
        "zoo train: algo `{algo}`, task `{}`, {} steps of {} prompts x {} responses, device `{}`, out `{}`",
        config.task,
        config.steps,
        config.rollout.prompts_per_step,
        config.rollout.group_size,
        config.device,
        out.display()
    ));
    if world > 1 {
        progress.line(&format!(
            "data-parallel: {world} ranks over {}, each sampling and training its share of the {} groups a step",
            dist.engine(),
            config.rollout.prompts_per_step
        ));
    }
    if matches!(
        config.device_spec()?,
        zoo_core::device::DeviceSpec::TchCuda(_)
    ) {
        progress.line(&format!(
            "f32 matrix products use TF32 on CUDA: {} (`ZOO_TF32=0` turns it off)",
            if zoo_core::device::tf32_on() {
                "on"
            } else {
                "off"
            }
        ));
    }
    let (policy, origin) = base::load_policy(
        &config.model,
        task.as_ref(),
        &config.warm_start,
        config.seed,
        &device,
        &progress,
    )?;
    progress.line(&origin);
    // Every rank starts from the same weights (the same files or seed): checked.
    zoo_core::dist::check_same_weights(dist.as_ref(), policy.as_ref())?;
    let max_new_tokens = config.max_new_tokens(task.as_ref());
    let mut probe = zoo_core::rng::stream(config.seed, 0, "context-check");
    let mut checked = task.sample_problems(&mut probe, 64);
    let heldout = evaluated_heldout(task.as_ref(), config.eval.problems);
    checked.extend_from_slice(heldout);
    base::check_prompts_fit(policy.as_ref(), &checked, max_new_tokens)?;
    let eval_seed = config.seed ^ 0xe7a1;
    let evaluate_heldout = |policy: &dyn Policy| {
        heldout_accuracy(
            policy,
            task.as_ref(),
            config.eval.problems,
            config.eval.temperature,
            max_new_tokens,
            eval_seed,
        )
    };
    progress.line("evaluating the base policy on the held-out set...");
    // Rank 0 evaluates; the others wait in the first collective of step 1.
    let before = match (&args.base_eval_cache, lead) {
        (_, false) => Accuracy::default(),
        (None, true) => evaluate_heldout(policy.as_ref())?,
        (Some(dir), true) => {
            let key = base_eval_key(&config, heldout, policy.as_ref(), max_new_tokens)?;
            cached_base_eval(dir, &key, &progress, || {
                Ok(evaluate_heldout(policy.as_ref())?)
            })?
        }
    };
    progress.line(&format!(
        "before RL: held-out pass@1 greedy {:.3}, sampled {:.3}",
        before.greedy, before.sampled
    ));

    let mut trainer = Trainer::new(
        config.trainer(),
        config.seed,
        config.steps,
        policy,
        objective,
        task.as_ref(),
    )?;
    trainer.set_collective(dist.clone());
    if config.log.rollouts {
        trainer.set_rollout_dir(Some(out.join("rollouts")));
    }
    let first = match &resume_from {
        Some(folder) => {
            let step = trainer.load_checkpoint(folder)?;
            progress.line(&format!(
                "resumed from `{}` (step {step})",
                folder.display()
            ));
            step + 1
        }
        None => 1,
    };
    let mut metrics_out = match lead {
        true => Some(MetricsWriter::open(&out.join("metrics.jsonl"), first - 1)?),
        false => None,
    };
    let bar = progress.bar(config.steps as u64, "train");
    bar.set_position((first - 1) as u64);
    let steps = config.steps;
    // The held-out accuracy of the last step's policy when `eval.every` evaluated it: the final
    // evaluation is the same computation (same policy, same evaluation seed), not run twice.
    let mut last_eval: Option<Accuracy> = None;
    if first <= steps {
        let every = config.eval.every;
        trainer.run(first, steps, Some(&checkpoints), &mut |step, m, policy| {
            inject_fault(rank, step)?;
            if !lead {
                return Ok(());
            }
            // Held-out pass@1 of the updated policy every `eval.every` steps.
            if every > 0 && step % every == 0 {
                let accuracy = evaluate_heldout(policy)?;
                m.insert("eval/greedy".into(), accuracy.greedy);
                m.insert("eval/sampled".into(), accuracy.sampled);
                for (name, share) in &accuracy.features {
                    m.insert(format!("eval/task/{name}"), *share);
                }
                if step == steps {
                    last_eval = Some(accuracy);
                }
            }
            if let Some(out) = metrics_out.as_mut() {
                out.write(step, m)?;
            }
            bar.set_position(step as u64);
            let Some(&reward) = m.get("reward/mean") else {
                // Dynamic sampling kept no group (the objective chose to go on).
                progress.line(&format!(
                    "step {step:>4}/{steps}  no update: no group kept after {} generation rounds",
                    m.get("rollout/generation_rounds").copied().unwrap_or(0.0)
                ));
                return Ok(());
            };
            let get = |key: &str| m.get(key).copied().unwrap_or(0.0);
            bar.set_message(format!("reward {reward:.3}"));
            progress.line(&format!(
                "step {step:>4}/{steps}  reward {reward:.3}  acc {:.3}  len {:5.1}  loss {:+.4}  clipfrac {:.3}  grad_norm {:.3}  {:.1}s",
                get("accuracy/train"),
                get("response_length/mean"),
                get("actor/loss"),
                get("actor/pg_clipfrac"),
                get("actor/grad_norm"),
                get("timing/rollout") + get("timing/update"),
            ));
            Ok(())
        })?;
    }
    bar.finish_and_clear();
    // Training is over on every rank: rank 0 alone evaluates and writes, with no rank waiting
    // on it (a long evaluation must not time a finished run out).
    dist.barrier("end of training")?;
    if !lead {
        return Ok(None);
    }

    progress.line("evaluating the trained policy on the held-out set...");
    let after = match last_eval {
        Some(accuracy) => accuracy,
        None => evaluate_heldout(trainer.policy())?,
    };
    let report = TrainReport {
        algo,
        task: config.task.clone(),
        seed: config.seed,
        steps,
        problems: config.eval.problems.min(task.heldout().len()),
        before,
        after,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).expect("report serializes");
    checkpoint::write_atomic(&out.join("eval.json"), json.as_bytes())?;
    println!(
        "held-out pass@1 on {} `{}` problems   before   after",
        report.problems, report.task
    );
    println!(
        "  greedy                                {:.3}    {:.3}",
        report.before.greedy, report.after.greedy
    );
    println!(
        "  sampled (T={})                         {:.3}    {:.3}",
        config.eval.temperature, report.before.sampled, report.after.sampled
    );
    println!(
        "run files in `{}`: config.toml, metrics.jsonl, events.out.tfevents.* (TensorBoard), eval.json, checkpoints/ ({:.0}s)",
        out.display(),
        report.seconds
    );
    Ok(Some(report))
}

/// For the tests of failure handling only: `ZOO_DIST_FAULT=fail:R:S` makes rank `R` fail after
/// step `S`, `hang:R:S` makes it hang there.
fn inject_fault(rank: usize, step: usize) -> zoo_core::Result<()> {
    let Ok(fault) = std::env::var("ZOO_DIST_FAULT") else {
        return Ok(());
    };
    let parts: Vec<&str> = fault.split(':').collect();
    let at = |i: usize| parts.get(i).and_then(|p| p.parse::<usize>().ok());
    if (at(1), at(2)) != (Some(rank), Some(step)) {
        return Ok(());
    }
    match parts[0] {
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        _ => Err(zoo_core::Error::Config(format!(
            "injected fault (`ZOO_DIST_FAULT={fault}`)"
        ))),
    }
}

/// Creates the output folder; returns the checkpoint to resume from, if asked. Refuses to
/// overwrite a run that has checkpoints unless resuming.
fn prepare_out(out: &Path, checkpoints: &Path, resume: bool) -> Result<Option<PathBuf>> {
    let latest = checkpoint::latest(checkpoints)?;
    match (resume, latest) {
        (true, Some((_, folder))) => Ok(Some(folder)),
        (true, None) => bail!(
            "`--resume` but `{}` holds no checkpoint\nhint: drop `--resume` to start a new run",
            checkpoints.display()
        ),
        (false, Some(_)) => bail!(
            "`{}` already holds a run with checkpoints\nhint: pass `--resume` to continue it, or choose another `--out`",
            out.display()
        ),
        (false, None) => {
            fs_err::create_dir_all(out)
                .with_context(|| format!("cannot create the output folder `{}`", out.display()))?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_evaluations_are_reused_only_under_the_same_key() {
        let dir = std::env::temp_dir().join(format!("zoo-base-eval-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let progress = Progress::new(true);
        let accuracy = |greedy| Accuracy {
            greedy,
            sampled: greedy / 2.0,
            features: [("no_work".to_string(), 0.25)].into(),
        };
        let calls = std::cell::Cell::new(0);
        let evaluate = |greedy| {
            calls.set(calls.get() + 1);
            Ok(accuracy(greedy))
        };
        let first = cached_base_eval(&dir, "key a", &progress, || evaluate(0.5)).unwrap();
        let again = cached_base_eval(&dir, "key a", &progress, || evaluate(0.9)).unwrap();
        assert_eq!((first.clone(), again), (accuracy(0.5), accuracy(0.5)));
        assert_eq!(calls.get(), 1);
        let other = cached_base_eval(&dir, "key b", &progress, || evaluate(0.7)).unwrap();
        assert_eq!((other, calls.get()), (accuracy(0.7), 2));
        // A stored entry whose key text differs (a hash collision, an edited file) is not used.
        let path = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read_to_string(p).unwrap().contains("key a"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("key a", "key z")).unwrap();
        let fresh = cached_base_eval(&dir, "key a", &progress, || evaluate(0.1)).unwrap();
        assert_eq!((fresh, calls.get()), (accuracy(0.1), 3));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
