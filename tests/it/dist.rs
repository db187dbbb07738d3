//! Data-parallel training gives what one process gives: ranks as threads of this process
//! (`ThreadCollective`), through `zoo train`'s own code (`run_with`), against one process on
//! the whole batch. The MPI engine runs the same checks with real processes in the `mpi` CI
//! stage (`scripts/test-mpi.sh`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use zoo::cli::TrainArgs;
use zoo::commands::train::run_with;
use zoo::zoo_core::dist::{Collective, Single, ThreadCollective};

use crate::resume::metrics;

fn args(algo: &str, out: &Path, sets: &[&str], steps: usize, resume: bool) -> TrainArgs {
    let mut set: Vec<String> = [
        "rollout.prompts_per_step=8",
        "rollout.group_size=4",
        // Each of two ranks' share of a step is one micro-batch of the single process.
        "update.micro_batch_size=16",
        "eval.problems=16",
        "checkpoint_every=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    set.extend(sets.iter().map(|s| s.to_string()));
    TrainArgs {
        algo: Some(algo.into()),
        steps: Some(steps),
        seed: Some(5),
        out: Some(out.to_path_buf()),
        resume,
        set,
        quiet: true,
        ..TrainArgs::default()
    }
}

/// `zoo train` on `world` thread ranks (1: one process, no collective), writing into `out`.
fn train(world: usize, args: TrainArgs) {
    zoo::link_all();
    if world == 1 {
        run_with(&args, Arc::new(Single), None).unwrap();
        return;
    }
    let args = Arc::new(args);
    let handles: Vec<_> = ThreadCollective::world(world, Duration::from_secs(120))
        .into_iter()
        .map(|rank| {
            let args = args.clone();
            std::thread::spawn(move || {
                let result = run_with(&args, Arc::new(rank.clone()), None);
                if let Err(e) = &result {
                    rank.fail(&format!("{e:#}"));
                }
                result
                    .map(drop)
                    .map_err(|e| format!("rank {}: {e:#}", rank.rank()))
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
}

pub fn base(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoo-it-dist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn checkpoint(out: &Path, step: usize, file: &str) -> Vec<u8> {
    std::fs::read(out.join(format!("checkpoints/step-{step:06}/{file}"))).unwrap()
}

/// Metrics equal key by key: exactly, except the sampler-vs-scoring gap (each rank's sampler
/// pads its own rows, which moves log-probs in the last bits) within `tolerance` relative,
/// and everything within `tolerance` when the summation order differs.
pub fn assert_metrics_match(a: &[serde_json::Value], b: &[serde_json::Value], tolerance: f64) {
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y) = (x.as_object().unwrap(), y.as_object().unwrap());
        let keys =
            |o: &serde_json::Map<String, serde_json::Value>| o.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(x), keys(y), "step {}", step + 1);
        for (key, value) in x {
            let (p, q) = (value.as_f64().unwrap(), y[key].as_f64().unwrap());
            let exact = tolerance == 0.0 && !key.starts_with("rollout/logprob_diff");
            let bound = if exact {
                0.0
            } else {
                tolerance.max(1e-6) * p.abs().max(1.0)
            };
            assert!(
                (p - q).abs() <= bound,
                "step {} `{key}`: one process {p}, data-parallel {q}",
                step + 1
            );
        }
    }
}

/// The Euclidean distance between the weights of two `model.safetensors` files.
pub fn distance(a: &[u8], b: &[u8]) -> f64 {
    let (a, b) = (
        safetensors::SafeTensors::deserialize(a).unwrap(),
        safetensors::SafeTensors::deserialize(b).unwrap(),
    );
    let (mut names, mut names_b) = (a.names(), b.names());
    names.sort();
    names_b.sort();
    assert_eq!(names, names_b);
    let floats = |t: safetensors::tensor::TensorView<'_>| -> Vec<f32> {
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let mut sum = 0f64;
    for name in names {
        let (x, y) = (
            floats(a.tensor(name).unwrap()),
            floats(b.tensor(name).unwrap()),
        );
        sum += x
            .iter()
            .zip(&y)
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum::<f64>();
    }
    sum.sqrt()
}

/// Two ranks whose shares are each one micro-batch of the single process: the same micro-
/// batches, the same coefficients, and a gradient sum of two terms (which commutes), so the
/// weights, the optimizer state and every metric are bitwise those of one process (GRPO,
/// on-policy, and with an `ℓ^old` pass scored in shares and exchanged).
#[test]
fn two_ranks_train_bit_for_bit_as_one_process_when_each_share_is_one_micro_batch() {
    let dir = base("aligned");
    for (algo, sets) in [("grpo", &[][..]), ("grpo", &["update.epochs=2"][..])] {
        let case = dir.join(format!("{algo}-{}", sets.len()));
        let (one, two) = (case.join("one"), case.join("two"));
        train(1, args(algo, &one, sets, 2, false));
        train(2, args(algo, &two, sets, 2, false));
        for file in ["model.safetensors", "optimizer.safetensors"] {
            assert!(
                checkpoint(&one, 2, file) == checkpoint(&two, 2, file),
                "{algo}: `{file}` after 2 steps differs"
            );
        }
        assert_metrics_match(&metrics(&one), &metrics(&two), 0.0);
        let eval = |out: &Path| {
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap())
                    .unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        };
        assert_eq!(eval(&one), eval(&two), "{algo}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Where the summation order differs (three ranks; uneven and empty shares;
/// CEPO's teacher rows, scored in shares that are not the single process's micro-batches;
/// DisCO's loss over the whole mini-batch in two mini-batches; DAPO's dynamic sampling; SDPO's
/// EMA teacher and loss mask), the run stays the one process's within rounding: every metric
/// (loss, gradient norm, rewards, the objectives' own) to 1e-5 relative, and the weights after
/// 2 steps within 1% of one step's movement (AdamW's first steps move a coordinate whose
/// gradient is rounding noise by ±lr, so weights are compared in norm, not element by element).
#[test]
fn data_parallel_runs_match_one_process_within_rounding() {
    let dir = base("rounding");
    let cases: [(&str, usize, &[&str]); 9] = [
        ("grpo", 3, &[]),
        ("grpo", 2, &["rollout.prompts_per_step=3"]),
        // One group for two ranks: rank 1 samples nothing and joins every exchange.
        ("grpo", 2, &["rollout.prompts_per_step=1"]),
        // 5 groups in mini-batches of 3 and 2 over 3 ranks: a rank without a group of one.
        (
            "grpo",
            3,
            &["rollout.prompts_per_step=5", "update.mini_batches=2"],
        ),
        ("cepo", 2, &[]),
        // DisCO on-policy (its loss over the whole mini-batch, with the update's own ℓ^old).
        ("disco", 2, &[]),
        ("disco", 2, &["update.mini_batches=2"]),
        ("dapo", 2, &[]),
        ("sdpo", 2, &[]),
    ];
    for (k, (algo, world, sets)) in cases.into_iter().enumerate() {
        let (one, many) = (dir.join(format!("{k}-one")), dir.join(format!("{k}-many")));
        train(1, args(algo, &one, sets, 2, false));
        train(world, args(algo, &many, sets, 2, false));
        let weights = |out: &Path, step| checkpoint(out, step, "model.safetensors");
        let apart = distance(&weights(&one, 2), &weights(&many, 2));
        let moved = distance(&weights(&one, 2), &weights(&one, 1));
        assert!(
            apart <= 1e-2 * moved,
            "{algo} on {world} ranks {sets:?}: weights {apart:e} apart, a step moves them {moved:e}"
        );
        assert_metrics_match(&metrics(&one), &metrics(&many), 1e-5);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A checkpoint written by rank 0 of two ranks resumes in one process, and one written by
/// one process resumes on two ranks, each exactly as the uninterrupted single run.
#[test]
fn checkpoints_resume_across_world_sizes() {
    let dir = base("resume");
    let whole = dir.join("whole");
    train(1, args("grpo", &whole, &[], 3, false));
    for (first, second, name) in [(2, 1, "two-then-one"), (1, 2, "one-then-two")] {
        let out = dir.join(name);
        train(first, args("grpo", &out, &[], 3, false));
        // Interrupted after step 1: the later checkpoints never made it to disk.
        for step in [2, 3] {
            std::fs::remove_dir_all(out.join(format!("checkpoints/step-{step:06}"))).unwrap();
        }
        train(second, args("grpo", &out, &[], 3, true));
        assert!(
            checkpoint(&whole, 3, "model.safetensors") == checkpoint(&out, 3, "model.safetensors"),
            "{name}: resumed weights differ"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A rank that fails (here: rank 1 is given a task that does not exist) stops the others
/// with an error naming it, not a hang.
#[test]
fn a_failing_rank_stops_the_others_naming_it() {
    zoo::link_all();
    let out = base("failing");
    let handles: Vec<_> = ThreadCollective::world(2, Duration::from_secs(60))
        .into_iter()
        .map(|rank| {
            let mut args = args("grpo", &out, &[], 1, false);
            if rank.rank() == 1 {
                args.task = Some("no-such-task".into());
            }
            std::thread::spawn(move || {
                let result = run_with(&args, Arc::new(rank.clone()), None);
                if let Err(e) = &result {
                    rank.fail(&format!("{e:#}"));
                }
                result.map(drop).map_err(|e| format!("{e:#}"))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let rank0 = results[0].as_ref().unwrap_err();
    assert!(
        rank0.contains("rank 1 failed") && rank0.contains("no-such-task"),
        "{rank0}"
    );
    assert!(results[1].as_ref().unwrap_err().contains("no-such-task"));
    let _ = std::fs::remove_dir_all(out);
}
