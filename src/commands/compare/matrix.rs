//! Running the matrix: one `zoo train` child process per (label, seed), `--jobs` at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Plan;
use crate::commands::bandit::parse_algo;
use crate::commands::progress::Progress;

/// One cell of the matrix.
#[derive(Debug, Clone)]
struct Job {
    label: String,
    seed: u64,
    dir: PathBuf,
}

/// Runs every unfinished (label, seed) with `jobs` child processes at a time; one progress bar
/// counts the steps of the whole matrix.
///
/// The runs share one store of base-policy evaluations (`base-eval/`): the base is evaluated
/// once per seed, not once per run. With `drop_checkpoints` a run's checkpoints are removed once
/// it has finished (its `eval.json`, metrics and log stay).
pub(super) fn run_matrix(
    out: &Path,
    plan: &Plan,
    jobs: usize,
    drop_checkpoints: bool,
    progress: &Progress,
) -> Result<()> {
    let all: Vec<Job> = plan
        .algos
        .iter()
        .flat_map(|label| {
            plan.seeds.iter().map(move |&seed| Job {
                label: label.clone(),
                seed,
                dir: Plan::run_dir(out, label, seed),
            })
        })
        .collect();
    let (done, todo): (Vec<Job>, Vec<Job>) = all
        .iter()
        .cloned()
        .partition(|j| j.dir.join("eval.json").exists());
    progress.line(&format!(
        "compare: {} runs ({} algorithms × {} seeds), {} finished, {} to run, {jobs} at a time, in `{}`",
        all.len(),
        plan.algos.len(),
        plan.seeds.len(),
        done.len(),
        todo.len(),
        out.display()
    ));
    if drop_checkpoints {
        // Runs finished by an earlier invocation lose theirs too.
        for job in &done {
            drop_finished_checkpoints(&job.dir)?;
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let steps_per_run = steps_of(plan);
    let bar = progress.bar((todo.len() * steps_per_run) as u64, "compare");
    // Popped from the back: reversed, the runs start in `--algos` order, seed by seed.
    let queue = Arc::new(Mutex::new(todo.iter().rev().cloned().collect::<Vec<_>>()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let finished = Arc::new(AtomicUsize::new(0));
    let exe = std::env::current_exe().context("cannot locate the zoo binary to run `zoo train`")?;
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len()) {
            let (queue, failures, finished, exe) = (&queue, &failures, &finished, &exe);
            scope.spawn(move || {
                loop {
                    let job = queue.lock().expect("queue lock").pop();
                    let Some(job) = job else { break };
                    if let Err(e) = train(exe, out, plan, &job, drop_checkpoints) {
                        failures
                            .lock()
                            .expect("failure lock")
                            .push(format!("{} seed {}: {e:#}", job.label, job.seed));
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // The bar: steps logged so far by the runs of this invocation.
        let started = Instant::now();
        while finished.load(Ordering::SeqCst) < todo.len() {
            let steps: usize = todo.iter().map(|j| logged_steps(&j.dir)).sum();
            bar.set_position(steps as u64);
            bar.set_message(format!(
                "{}/{} runs",
                finished.load(Ordering::SeqCst),
                todo.len()
            ));
            std::thread::sleep(Duration::from_millis(if started.elapsed().as_secs() < 5 {
                100
            } else {
                500
            }));
        }
    });
    bar.finish_and_clear();
    let failures = failures.lock().expect("failure lock");
    if !failures.is_empty() {
        bail!(
            "{} of {} runs failed:\n{}\nhint: each run's log is `train.log` in its folder; rerun the same command to retry only those",
            failures.len(),
            todo.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// The steps each run trains (`--steps`, else `zoo train`'s default).
fn steps_of(plan: &Plan) -> usize {
    plan.train_args
        .windows(2)
        .find(|w| w[0] == "--steps")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(crate::run_config::DEFAULT_STEPS)
}

/// Lines of a run's `metrics.jsonl`: its steps done.
fn logged_steps(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
}

/// One `zoo train` child for `job`: resumes from the latest checkpoint when it has one.
fn train(exe: &Path, out: &Path, plan: &Plan, job: &Job, drop_checkpoints: bool) -> Result<()> {
    let (name, overrides) = parse_algo(&job.label)?;
    fs_err::create_dir_all(&job.dir)?;
    // Without a checkpoint the run starts over (zoo train drops the old metrics lines).
    let has_checkpoint = zoo_core::checkpoint::latest(&job.dir.join("checkpoints"))?.is_some();
    let mut command = Command::new(exe);
    command
        .args([
            "train",
            "--algo",
            &name,
            "--seed",
            &job.seed.to_string(),
            "--quiet",
        ])
        .arg("--out")
        .arg(&job.dir)
        .arg("--base-eval-cache")
        .arg(out.join("base-eval"))
        .args(&plan.train_args);
    for (key, value) in &overrides {
        command.args(["--set", &format!("objective.{key}={value}")]);
    }
    if has_checkpoint {
        command.arg("--resume");
    }
    let log_path = job.dir.join("train.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create `{}`", log_path.display()))?;
    let status = command
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .status()
        .with_context(|| format!("cannot start `{}`", exe.display()))?;
    if !status.success() {
        let log = std::fs::read_to_string(job.dir.join("train.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        bail!(
            "`zoo train` exited with {status}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    if drop_checkpoints {
        drop_finished_checkpoints(&job.dir)?;
    }
    Ok(())
}

/// Removes the checkpoints of the run in `dir` when it has finished (`eval.json` written).
fn drop_finished_checkpoints(dir: &Path) -> Result<()> {
    let checkpoints = dir.join("checkpoints");
    if dir.join("eval.json").is_file() && checkpoints.is_dir() {
        fs_err::remove_dir_all(&checkpoints)?;
    }
    Ok(())
}
