//! End-to-end tests of the zoo package, in one binary (each test binary links Burn).

mod bandits;
mod cli;
mod micro_batch;
mod objectives;
mod reproducibility;
mod resume;
mod rl;
mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `zoo` binary with an isolated cache folder.
pub fn zoo(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zoo"));
    command
        .env("ZOO_CACHE_DIR", cache)
        .env_remove("RUST_BACKTRACE");
    command
}

/// Runs `zoo` and returns its output, with stderr echoed for failing tests.
pub fn run(cache: &Path, args: &[&str]) -> Output {
    let output = zoo(cache).args(args).output().expect("the zoo binary runs");
    eprintln!(
        "$ zoo {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Warm-start settings small enough for tests: a quick mod10 base policy.
pub const TEST_WARM_START: &[&str] = &[
    "--task",
    "mod10",
    "--set",
    "warm_start.sft.steps=150",
    "--set",
    "warm_start.sft.batch_size=64",
    "--set",
    "warm_start.sft.optim.warmup_steps=10",
];

/// A cache folder holding the test's mod10 base policy, made once per test binary by
/// `zoo sft`.
pub fn mod10_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("zoo-it-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec!["sft", "--quiet", "--set", "eval.problems=50"];
        args.extend_from_slice(TEST_WARM_START);
        let output = run(&dir, &args);
        assert!(output.status.success(), "zoo sft failed");
        dir
    })
}
