//! `zoo sft`: the supervised warm start that produces (and caches) a base policy.

use std::time::Instant;

use anyhow::Result;
use zoo_core::Policy;

use crate::base;
use crate::cli::SftArgs;
use crate::commands::progress::Progress;
use crate::commands::train::{Accuracy, heldout_accuracy};
use crate::run_config::{Overrides, RunConfig};

/// Runs `zoo sft`; returns the base policy's held-out accuracy.
pub fn run(args: &SftArgs) -> Result<Accuracy> {
    let mut sets = Vec::new();
    if let Some(task) = &args.task {
        sets.push(format!("task=\"{task}\""));
    }
    if let Some(seed) = args.seed {
        sets.push(format!("warm_start.seed={seed}"));
    }
    if let Some(steps) = args.steps {
        sets.push(format!("warm_start.sft.steps={steps}"));
    }
    if let Some(device) = &args.device {
        sets.push(format!("device=\"{device}\""));
    }
    sets.extend(args.set.iter().cloned());
    let config = RunConfig::resolve(&Overrides {
        algo: Some("grpo"),
        config_file: args.config.as_deref(),
        sets,
    })?;
    if args.dry_run {
        print!(
            "task = {:?}\n\n[warm_start]\n{}",
            config.task,
            toml::to_string_pretty(&config.warm_start)?
        );
        return Ok(Accuracy {
            greedy: 0.0,
            sampled: 0.0,
        });
    }
    let progress = Progress::new(args.quiet);
    let task = config.task()?;
    let device = config.device_spec()?.device()?;
    let started = Instant::now();
    let policy = base::train(task.as_ref(), &config.warm_start, &device, &progress)?;
    let path = base::store(&policy, task.name(), &config.warm_start)?;
    let mut written = vec![path];
    if args.ship {
        let dir = base::shipped_dir();
        fs_err::create_dir_all(&dir)?;
        let shipped = dir.join(format!(
            "{}.safetensors",
            base::key(task.name(), &config.warm_start)
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
    Ok(accuracy)
}
