//! `zoo sft`: the supervised warm start that produces (and caches) a base policy.

use std::time::Instant;

use anyhow::Result;
use zoo_core::Policy;

use crate::base;
use crate::cli::SftArgs;
use crate::commands::progress::Progress;
use crate::commands::train::{Accuracy, heldout_accuracy};
use crate::run_config::{Overrides, RunConfig, given_flags};

/// Runs `zoo sft`; returns the base policy's held-out accuracy (`None` for `--dry-run`).
pub fn run(args: &SftArgs) -> Result<Option<Accuracy>> {
    let config = RunConfig::resolve(&Overrides {
        // The objective plays no part in a warm start; any registered one resolves the rest.
        algo: Some("grpo"),
        config_file: args.config.as_deref(),
        flags: given_flags([
            ("task", args.task.clone().map(Into::into)),
            ("warm_start.seed", args.seed.map(|v| (v as i64).into())),
            (
                "warm_start.sft.steps",
                args.steps.map(|v| (v as i64).into()),
            ),
            ("device", args.device.clone().map(Into::into)),
        ]),
        sets: args.set.clone(),
    })?;
    if args.dry_run {
        print!(
            "task = {:?}\n\n[warm_start]\n{}",
            config.task,
            toml::to_string_pretty(&config.warm_start)?
        );
        return Ok(None);
    }
    let progress = Progress::new(args.quiet);
    let task = config.task()?;
    let device = config.device_spec()?.device()?;
    let started = Instant::now();
    let policy = base::train(task.as_ref(), &config.warm_start, &device, &progress)?;
    let path = base::store(&policy, task.as_ref(), &config.warm_start)?;
    let mut written = vec![path];
    if args.ship {
        let dir = base::shipped_dir();
        fs_err::create_dir_all(&dir)?;
        let shipped = dir.join(format!(
            "{}.safetensors",
            base::key(task.as_ref(), &config.warm_start)
        ));
        fs_err::copy(&written[0], &shipped)?;
        written.push(shipped);
    }
    let accuracy = heldout_accuracy(
        &policy as &dyn Policy,
        task.as_ref(),
        config.eval.problems,
        config.eval.temperature,
        config.max_new_tokens(task.as_ref()),
        config.warm_start.seed ^ 0xe7a1,
    )?;
    println!(
        "base policy for `{}`: held-out pass@1 greedy {:.3}, sampled (T={}) {:.3} ({:.0}s)",
        task.name(),
        accuracy.greedy,
        config.eval.temperature,
        accuracy.sampled,
        started.elapsed().as_secs_f64()
    );
    for path in written {
        println!("written: `{}`", path.display());
    }
    Ok(Some(accuracy))
}
