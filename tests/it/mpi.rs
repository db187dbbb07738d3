//! `zoo train --dist mpi` under `mpirun`, as users start it (feature `mpi`; run by
//! `scripts/test-extra.sh` after `scripts/setup-mpi.sh`): two processes against one on the
//! whole batch, uneven shares, resuming at another world size, a failing and a hanging rank.

use std::path::Path;
use std::process::{Command, Output};

use crate::dist::{assert_metrics_match, base, checkpoint, distance};
use crate::resume::metrics;

const SETTINGS: &[&str] = &[
    "--set",
    "rollout.prompts_per_step=8",
    "--set",
    "rollout.group_size=4",
    "--set",
    "update.micro_batch_size=16",
    "--set",
    "eval.problems=16",
    "--set",
    "checkpoint_every=1",
];

/// `zoo train ...` in one process (`np` 0) or under `mpirun -np np` with `--dist mpi`; one
/// rayon thread per process in both, so that only the ranks' split differs.
fn train(np: usize, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let zoo = env!("CARGO_BIN_EXE_zoo");
    let out = out.to_string_lossy().to_string();
    let mut train: Vec<&str> = vec!["train", "--seed", "5", "--out", &out, "--quiet"];
    train.extend_from_slice(SETTINGS);
    train.extend_from_slice(extra);
    let cache = std::env::temp_dir().join(format!("zoo-it-mpi-cache-{}", std::process::id()));
    let mut command = if np == 0 {
        let mut c = Command::new(zoo);
        c.args(&train);
        c
    } else {
        let mut c = Command::new("mpirun");
        c.args([
            "-np",
            &np.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
        ])
        .args(["--timeout", "300"])
        .args([
            "-x",
            "RAYON_NUM_THREADS",
            "-x",
            "ZOO_CACHE_DIR",
            "-x",
            "ZOO_DIST_FAULT",
        ])
        .args(["-x", "LD_LIBRARY_PATH"])
        .arg(zoo)
        .args(&train)
        .args(["--dist", "mpi"]);
        c
    };
    command
        .env("RAYON_NUM_THREADS", "1")
        .env("ZOO_CACHE_DIR", &cache)
        .env("ZOO_DIST_FAULT", "")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .expect("mpirun runs (scripts/setup-mpi.sh)");
    eprintln!(
        "$ {np} x zoo {}\n{}",
        train.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn two_mpi_processes_train_as_one() {
    let dir = base("mpi-equal");
    // Each rank's share is one micro-batch of the single process: bit for bit.
    let (one, two) = (dir.join("grpo-one"), dir.join("grpo-two"));
    assert!(
        train(0, &one, &["--algo", "grpo", "--steps", "2"], &[])
            .status
            .success()
    );
    assert!(
        train(2, &two, &["--algo", "grpo", "--steps", "2"], &[])
            .status
            .success()
    );
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            checkpoint(&one, 2, file) == checkpoint(&two, 2, file),
            "grpo `{file}`"
        );
    }
    assert_metrics_match(&metrics(&one), &metrics(&two), 0.0);
    // CEPO (teacher passes), DisCO (two mini-batches, its loss over each whole mini-batch),
    // DAPO (dynamic sampling), SDPO (EMA teacher), and uneven shares: within rounding.
    let cases: [(&str, &[&str]); 5] = [
        ("cepo", &[]),
        ("disco", &["--set", "update.mini_batches=2"]),
        ("dapo", &[]),
        ("sdpo", &[]),
        ("grpo", &["--set", "rollout.prompts_per_step=3"]),
    ];
    for (k, (algo, sets)) in cases.into_iter().enumerate() {
        let (one, two) = (dir.join(format!("{k}-one")), dir.join(format!("{k}-two")));
        let extra = [&["--algo", algo, "--steps", "2"][..], sets].concat();
        assert!(train(0, &one, &extra, &[]).status.success());
        assert!(train(2, &two, &extra, &[]).status.success());
        let weights = |out: &Path, step| checkpoint(out, step, "model.safetensors");
        let apart = distance(&weights(&one, 2), &weights(&two, 2));
        let moved = distance(&weights(&one, 2), &weights(&one, 1));
        assert!(
            apart <= 1e-2 * moved,
            "{algo} {sets:?}: {apart:e} apart, a step moves {moved:e}"
        );
        assert_metrics_match(&metrics(&one), &metrics(&two), 1e-5);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_mpi_checkpoint_resumes_in_one_process_exactly() {
    let dir = base("mpi-resume");
    let (whole, split) = (dir.join("whole"), dir.join("split"));
    let algo = ["--algo", "grpo", "--steps", "3"];
    assert!(train(0, &whole, &algo, &[]).status.success());
    assert!(train(2, &split, &algo, &[]).status.success());
    for step in [2, 3] {
        std::fs::remove_dir_all(split.join(format!("checkpoints/step-{step:06}"))).unwrap();
    }
    assert!(
        train(0, &split, &[&algo[..], &["--resume"]].concat(), &[])
            .status
            .success()
    );
    assert!(
        checkpoint(&whole, 3, "model.safetensors") == checkpoint(&split, 3, "model.safetensors")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_or_hanging_rank_stops_the_run_with_an_error() {
    let dir = base("mpi-faults");
    let algo = ["--algo", "grpo", "--steps", "3", "--dist-timeout", "5"];
    let failing = train(
        2,
        &dir.join("fail"),
        &algo,
        &[("ZOO_DIST_FAULT", "fail:1:1")],
    );
    let text = String::from_utf8_lossy(&failing.stderr);
    assert!(!failing.status.success());
    assert!(
        text.contains("rank 1: error") && text.contains("injected fault"),
        "{text}"
    );
    let started = std::time::Instant::now();
    let hanging = train(
        2,
        &dir.join("hang"),
        &algo,
        &[("ZOO_DIST_FAULT", "hang:1:1")],
    );
    let text = String::from_utf8_lossy(&hanging.stderr);
    assert!(!hanging.status.success());
    assert!(
        // Rank 0 waits in the step's checkpoint barrier for rank 1, which hangs after step 1.
        text.contains("rank 0: error") && text.contains("`checkpoint, step 1` timed out after 5 s"),
        "{text}"
    );
    assert!(
        started.elapsed().as_secs() < 120,
        "stopped by the timeout, not mpirun's"
    );
    let _ = std::fs::remove_dir_all(dir);
}
