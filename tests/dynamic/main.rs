//! The dynamic build end to end: the `zoo` binary of `scripts/build-dynamic.sh` loads every
//! algorithm from its plugin file, trains with each, matches the static build step for step,
//! and refuses what it must refuse.
//!
//! Run by `scripts/test-dynamic.sh`, which builds what these tests read:
//! - `ZOO_DYNAMIC_DIR`: the dynamic build (`zoo`, `libzoo_core.so`, `plugins/`);
//! - `ZOO_STATIC_BIN`: the default (static) `zoo` binary;
//! - `ZOO_MISMATCHED_PLUGIN`: the RLOO plugin built with feature `test-abi-mismatch`, which
//!   declares another ABI number.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn env_path(name: &str) -> PathBuf {
    let value = std::env::var_os(name).unwrap_or_else(|| {
        panic!("`{name}` is not set: run these tests with `scripts/test-dynamic.sh`")
    });
    let path = PathBuf::from(value);
    assert!(
        path.exists(),
        "`{name}` = `{}` does not exist",
        path.display()
    );
    path
}

fn dynamic_dir() -> PathBuf {
    env_path("ZOO_DYNAMIC_DIR")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoo-dynamic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a `zoo` binary with an isolated cache and no plugin path from the environment.
fn run(binary: &Path, args: &[&str]) -> Output {
    let output = Command::new(binary)
        .args(args)
        .env("ZOO_CACHE_DIR", scratch("cache"))
        .env_remove("ZOO_PLUGIN_PATH")
        .env_remove("LD_LIBRARY_PATH") // the binary must find its libraries by itself
        .output()
        .expect("the zoo binary starts");
    eprintln!(
        "$ {} {}\n{}",
        binary.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A one-step training run small enough for a test.
fn train_args<'a>(algo: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--algo",
        algo,
        "--steps",
        "1",
        "--seed",
        "3",
        "--out",
        out,
        "--quiet",
        "--set",
        "rollout.prompts_per_step=8",
        "--set",
        "eval.problems=20",
    ]
}

const ALGORITHMS: [&str; 15] = [
    "cepo", "cispo", "dapo", "disco", "dppo", "gmpo", "grpo", "gspo", "maxrl", "opsd", "rlcsd",
    "rloo", "rlsd", "sapo", "sdpo",
];

#[test]
fn every_algorithm_is_registered_from_its_plugin_file() {
    let output = run(&dynamic_dir().join("zoo"), &["plugins", "list"]);
    assert!(output.status.success());
    let text = stdout(&output);
    for algo in ALGORITHMS {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{algo} ")))
            .unwrap_or_else(|| panic!("`{algo}` is not listed:\n{text}"));
        assert!(line.contains(" dynamic "), "{line}");
        assert!(
            line.contains(&format!("plugins/libzoo_{algo}.so")),
            "{line}"
        );
    }
    assert!(text.contains("dynamic build (zoo-core shared)"), "{text}");
}

#[test]
fn every_algorithm_trains_one_step_when_loaded_dynamically() {
    let binary = dynamic_dir().join("zoo");
    let base = scratch("train");
    for algo in ALGORITHMS {
        let out = base.join(algo).to_string_lossy().into_owned();
        let output = run(&binary, &train_args(algo, &out));
        assert!(output.status.success(), "{algo}: {}", stderr(&output));
        let metrics = std::fs::read_to_string(Path::new(&out).join("metrics.jsonl")).unwrap();
        let step: serde_json::Value =
            serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
        let grad_norm = step["actor/grad_norm"].as_f64().unwrap();
        // A plugin running on a second copy of Burn's autodiff graph would get no gradient
        // (or crash): the update must have moved the policy.
        assert!(grad_norm > 0.0 && grad_norm.is_finite(), "{algo}: {step}");
    }
}

#[test]
fn the_dynamic_build_trains_exactly_like_the_static_one() {
    let out = scratch("same");
    let dynamic = out.join("dynamic").to_string_lossy().into_owned();
    let fixed = out.join("static").to_string_lossy().into_owned();
    let a = run(&dynamic_dir().join("zoo"), &train_args("cepo", &dynamic));
    let b = run(&env_path("ZOO_STATIC_BIN"), &train_args("cepo", &fixed));
    assert!(a.status.success() && b.status.success());
    let metrics = |dir: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(Path::new(dir).join("metrics.jsonl")).unwrap();
        let mut step: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let map = step.as_object_mut().unwrap();
        map.retain(|k, _| !k.starts_with("timing/") && !k.starts_with("perf/"));
        step
    };
    assert_eq!(metrics(&dynamic), metrics(&fixed));
    let eval = |dir: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(Path::new(dir).join("eval.json")).unwrap();
        let mut report: serde_json::Value = serde_json::from_str(&text).unwrap();
        report.as_object_mut().unwrap().remove("seconds");
        report
    };
    assert_eq!(eval(&dynamic), eval(&fixed));
}

#[test]
fn a_plugin_declaring_another_abi_is_refused_before_it_is_loaded() {
    let mismatched = env_path("ZOO_MISMATCHED_PLUGIN");
    let mismatched_str = mismatched.to_string_lossy().into_owned();
    let binary = dynamic_dir().join("zoo");
    let output = run(&binary, &["--plugin", &mismatched_str, "list"]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("refusing plugin"), "{error}");
    assert!(
        error.contains(&format!(
            "plugin ABI {} but this zoo expects ABI {}",
            zoo::zoo_core::plugin::ABI_VERSION + 1,
            zoo::zoo_core::plugin::ABI_VERSION
        )),
        "{error}"
    );
    assert!(
        error.contains("hint: build zoo and its plugins together"),
        "{error}"
    );
    assert!(!error.contains("panicked"), "{error}");

    let output = run(&binary, &["plugins", "inspect", &mismatched_str]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("plugin:      zoo-rloo"));
    assert!(stderr(&output).contains("refusing plugin"));
}

/// The default (static) build's file of the same plugin crate, same sources and lock file:
/// built without `-C prefer-dynamic`, so it cannot link against this binary's shared zoo-core.
/// The declaration says so and the file is refused before the dynamic linker sees it.
#[test]
fn a_plugin_from_the_default_build_is_refused_before_it_is_loaded() {
    let other = env_path("ZOO_DEFAULT_BUILD_PLUGIN");
    let other = other.to_string_lossy().into_owned();
    let output = run(&dynamic_dir().join("zoo"), &["--plugin", &other, "list"]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("refusing plugin"), "{error}");
    assert!(error.contains("type fingerprint: plugin"), "{error}");
    assert!(
        error.contains("hint: build zoo and its plugins together"),
        "{error}"
    );
    assert!(!error.contains("undefined symbol"), "{error}");
    assert!(!error.contains("panicked"), "{error}");
}

#[test]
fn inspect_reads_a_plugin_and_refuses_other_files_cleanly() {
    let dir = dynamic_dir();
    let binary = dir.join("zoo");
    let cepo = dir
        .join("plugins/libzoo_cepo.so")
        .to_string_lossy()
        .into_owned();
    let output = run(&binary, &["plugins", "inspect", &cepo]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("plugin:      zoo-cepo 0.1.0"), "{text}");
    assert!(text.contains("libzoo_grpo.so"), "CEPO links GRPO: {text}");
    assert!(text.contains("compatible with this zoo: yes"), "{text}");

    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let core = dir.join("libzoo_core.so").to_string_lossy().into_owned();
    for (file, reason) in [
        (readme.to_string(), "not a 64-bit ELF shared library"),
        (core, "exports no plugin declaration"),
    ] {
        let output = run(&binary, &["plugins", "inspect", &file]);
        assert_eq!(output.status.code(), Some(1), "{file}");
        let error = stderr(&output);
        assert!(error.contains("is not a zoo plugin"), "{error}");
        assert!(error.contains(reason), "{error}");
        assert!(!error.contains("panicked"), "{error}");
    }
}

#[test]
fn a_plugin_without_the_plugins_it_links_against_is_refused() {
    let alone = scratch("alone");
    std::fs::copy(
        dynamic_dir().join("plugins/libzoo_cepo.so"),
        alone.join("libzoo_cepo.so"),
    )
    .unwrap();
    let path = alone.join("libzoo_cepo.so").to_string_lossy().into_owned();
    let output = run(&dynamic_dir().join("zoo"), &["--plugin", &path, "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("links against `libzoo_rlsd.so`, which is not next to it"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_same_plugin_from_two_files_is_refused() {
    let copy = scratch("copy");
    std::fs::copy(
        dynamic_dir().join("plugins/libzoo_rloo.so"),
        copy.join("libzoo_rloo.so"),
    )
    .unwrap();
    let path = copy.to_string_lossy().into_owned();
    let output = run(&dynamic_dir().join("zoo"), &["--plugin", &path, "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("plugin `zoo-rloo` is given twice"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_static_build_refuses_plugin_files() {
    let rloo = dynamic_dir()
        .join("plugins/libzoo_rloo.so")
        .to_string_lossy()
        .into_owned();
    let output = run(&env_path("ZOO_STATIC_BIN"), &["--plugin", &rloo, "list"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("this zoo binary is the static build"),
        "{}",
        stderr(&output)
    );
}
