//! Bad input gets one clear error line with a fix, a non-zero exit, and never a panic.

use crate::run;

fn assert_clean_error(args: &[&str], expected: &[&str]) {
    let cache = std::env::temp_dir().join("zoo-it-cli-cache");
    let output = run(&cache, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit code for {args:?}: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "`{text}` not in: {stderr}");
    }
}

#[test]
fn unknown_algorithm_is_refused_with_a_suggestion() {
    assert_clean_error(
        &["train", "--algo", "grpoo", "--dry-run"],
        &["unknown algorithm `grpoo`", "did you mean `grpo`", "hint:"],
    );
}

#[test]
fn unknown_config_key_is_refused_naming_the_key() {
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "objective.clip_hgh=0.3",
            "--dry-run",
        ],
        &[
            "`objective.clip_hgh`",
            "unknown field `clip_hgh`",
            "clip_high",
            "hint:",
        ],
    );
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "optim.lrr=0.1",
            "--dry-run",
        ],
        &["`optim.lrr`", "unknown field `lrr`"],
    );
}

#[test]
fn wrong_value_type_is_refused_naming_the_key() {
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "optim.lr=fast",
            "--dry-run",
        ],
        &["`optim.lr`", "expected f64"],
    );
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "objective.loss_agg=mean",
            "--dry-run",
        ],
        &["`objective.loss_agg`", "token-mean"],
    );
}

#[test]
fn bad_device_name_is_refused() {
    assert_clean_error(
        &["train", "--algo", "grpo", "--device", "flx", "--dry-run"],
        &["unknown device `flx`", "did you mean `flex`"],
    );
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--device",
            "tch-cuda:0",
            "--dry-run",
        ],
        &["LibTorch", "hint:"],
    );
}

#[test]
fn unreadable_or_invalid_files_are_refused_naming_the_path() {
    assert_clean_error(
        &["train", "--config", "/nonexistent/zoo.toml", "--dry-run"],
        &["`/nonexistent/zoo.toml`"],
    );
    let bad = std::env::temp_dir().join(format!("zoo-it-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "steps = [unclosed").unwrap();
    let path = bad.to_string_lossy().to_string();
    assert_clean_error(
        &["train", "--config", &path, "--dry-run"],
        &["not valid TOML", &path],
    );
    let cache = std::env::temp_dir().join("zoo-it-cli-cache");
    let output = run(&cache, &["eval", "--checkpoint", &path]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    std::fs::remove_file(&bad).unwrap();
}

#[test]
fn invalid_values_are_refused_before_any_work() {
    // Flag values reach the config as typed values, never re-parsed as TOML text.
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--task",
            "add\"ition",
            "--dry-run",
        ],
        &["unknown task `add\"ition`"],
    );
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "rollout.group_size=0",
            "--dry-run",
        ],
        &["rollout.group_size"],
    );
    assert_clean_error(
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "objective.clip_dual=0.5",
            "--dry-run",
        ],
        &["clip_dual"],
    );
    assert_clean_error(
        &["train", "--algo", "grpo", "--task", "addtion", "--dry-run"],
        &["unknown task `addtion`", "did you mean `addition`"],
    );
    assert_clean_error(&["train", "--dry-run"], &["no algorithm given", "--algo"]);
}

#[test]
fn config_file_round_trips_through_dry_run() {
    let cache = std::env::temp_dir().join("zoo-it-cli-cache");
    let output = run(
        &cache,
        &[
            "train",
            "--algo",
            "grpo",
            "--set",
            "optim.lr=3e-4",
            "--steps",
            "7",
            "--dry-run",
        ],
    );
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let file = std::env::temp_dir().join(format!("zoo-it-config-{}.toml", std::process::id()));
    std::fs::write(&file, &printed).unwrap();
    let again = run(
        &cache,
        &["train", "--config", &file.to_string_lossy(), "--dry-run"],
    );
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
    assert!(
        printed.contains("lr = 0.0003") && printed.contains("steps = 7"),
        "{printed}"
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn help_ends_with_runnable_examples() {
    let cache = std::env::temp_dir().join("zoo-it-cli-cache");
    let output = run(&cache, &["train", "--help"]);
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("Examples:\n  zoo train --algo grpo\n"),
        "{help}"
    );
    let output = run(&cache, &["list"]);
    let list = String::from_utf8(output.stdout).unwrap();
    for name in ["grpo", "addition", "mod10", "flex", "tch-cpu"] {
        assert!(list.contains(name), "{list}");
    }
}

#[test]
fn plugins_list_names_every_algorithm_with_its_origin() {
    let output = crate::run(&std::env::temp_dir(), &["plugins", "list"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for algo in [
        "grpo", "dapo", "disco", "cepo", "rlsd", "rlcsd", "opsd", "sdpo", "rloo",
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(algo))
            .unwrap_or_else(|| panic!("`{algo}` missing:\n{text}"));
        assert!(
            line.contains(&format!("zoo-{algo}")) && line.contains("static"),
            "{line}"
        );
    }
}

#[test]
fn new_algo_copies_the_template_and_registers_the_crate() {
    let root = std::env::temp_dir().join(format!("zoo-it-new-algo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "Cargo.toml",
        "plugins/linked.rs",
        "plugins/template/Cargo.toml",
        "plugins/template/src/lib.rs",
    ] {
        let to = root.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), &to).unwrap();
    }
    let ws = root.to_string_lossy().to_string();
    let output = crate::run(&root, &["new-algo", "my_algo", "--workspace", &ws]);
    assert!(output.status.success());
    let lib = std::fs::read_to_string(root.join("plugins/my_algo/src/lib.rs")).unwrap();
    assert!(lib.contains("#[typetag::serde(name = \"my_algo\")]"));
    assert!(lib.contains("pub struct MyAlgoConfig") && lib.contains("origin: \"zoo-my_algo\""));
    assert!(
        !lib.to_lowercase().contains("template"),
        "a template name was left"
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\"plugins/my_algo\"]"));
    assert!(manifest.contains("zoo-my_algo = { path = \"plugins/my_algo\", optional = true }"));
    assert!(manifest.contains("static-plugins = [\n    \"dep:zoo-my_algo\","));
    let linked = std::fs::read_to_string(root.join("plugins/linked.rs")).unwrap();
    assert!(linked.contains("zoo_my_algo::link();"));
    // Names that are taken, malformed, or already there are refused with a reason.
    for (name, message) in [
        ("grpo", "exists already"),
        ("My-Algo", "not a usable algorithm name"),
        ("my_algo", "exists already"),
    ] {
        let output = crate::run(&root, &["new-algo", name, "--workspace", &ws]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn plugins_inspect_refuses_a_file_that_is_not_a_plugin() {
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    assert_clean_error(
        &["plugins", "inspect", readme],
        &[
            "is not a zoo plugin",
            "not a 64-bit ELF shared library",
            "hint:",
        ],
    );
    assert_clean_error(
        &["plugins", "inspect", "/no/such/libzoo_x.so"],
        &["cannot read plugin `/no/such/libzoo_x.so`"],
    );
}

#[test]
fn bench_runs_exact_shapes_and_reports_every_stage() {
    let output = crate::run(
        &std::env::temp_dir(),
        &[
            "bench",
            "--devices",
            "flex",
            "--prompts",
            "3",
            "--group-size",
            "2",
            "--prompt-tokens",
            "4",
            "--response-len",
            "7",
            "--micro-batch-rows",
            "4",
            "--rounds",
            "1",
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["device"], "flex");
    assert_eq!(r["model"], "tiny");
    assert_eq!(r["parameters"], 645_760);
    assert_eq!(
        (r["rows"].as_u64(), r["response_len"].as_u64()),
        (Some(6), Some(7))
    );
    // Every response is exactly --response-len tokens: 6 rows x 7.
    for stage in ["rollout", "scoring", "update"] {
        let s = &r[stage];
        assert_eq!(s["tokens"], 42, "{stage}");
        let rate = s["tokens_per_s"].as_f64().unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{stage}: {rate}");
        let (tflops, fraction) = (
            s["tflops"].as_f64().unwrap(),
            s["peak_fraction"].as_f64().unwrap(),
        );
        let peak = r["matmul_peak_tflops"].as_f64().unwrap();
        assert!(tflops > 0.0 && peak > 0.0);
        approx::assert_relative_eq!(fraction, tflops / peak, max_relative = 1e-9);
    }
    assert_eq!(r["sample_s"], r["rollout"]["seconds"]);
    assert_eq!(r["train_step_s"], r["update"]["seconds"]);
    // The update counts three passes of the rollout's forward FLOPs.
    let per_second =
        |stage: &str| r[stage]["tflops"].as_f64().unwrap() * r[stage]["seconds"].as_f64().unwrap();
    approx::assert_relative_eq!(
        per_second("update"),
        3.0 * per_second("rollout"),
        max_relative = 1e-9
    );
    assert!(r["estimate"].is_null());
    // Flags of real-model shapes are refused for the tiny model.
    let output = crate::run(&std::env::temp_dir(), &["bench", "--recompute"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--model smollm2-135m"));
}

#[test]
fn bench_of_a_model_shape_reports_every_stage_and_the_memory_estimate() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/qwen2");
    let output = crate::run(
        &std::env::temp_dir(),
        &[
            "bench",
            "--model",
            fixture.to_str().unwrap(),
            "--algo",
            "sdpo",
            "--prompts",
            "2",
            "--group-size",
            "2",
            "--prompt-tokens",
            "5",
            "--max-new-tokens",
            "6",
            "--rounds",
            "1",
            "--chunk-positions",
            "4",
            "--peak-tflops",
            "1",
            "--json",
        ],
    );
    assert!(output.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let row = &rows.as_array().unwrap()[0];
    assert_eq!(row["parameters"], 115264);
    assert_eq!(row["algo"], "sdpo");
    for stage in ["rollout", "scoring", "update"] {
        let s = &row[stage];
        let rate = s["tokens_per_s"].as_f64().unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{stage}: {rate}");
        // MFU is TFLOP/s over the given peak of 1 TFLOP/s.
        assert_eq!(s["mfu"].as_f64().unwrap(), s["tflops"].as_f64().unwrap());
        if row["memory_source"] == "peak RSS" {
            assert!(s["peak_memory"].as_u64().unwrap() > 0);
        }
    }
    // The estimate counts SDPO's EMA snapshot.
    // Every response is exactly --max-new-tokens (an alias of --response-len) long.
    assert_eq!(row["rollout"]["tokens"], 2 * 2 * 6);
    let estimate = &row["estimate"];
    assert_eq!(estimate["snapshots"], estimate["parameters"]);
    assert_eq!(
        row["state_estimate"].as_u64().unwrap(),
        estimate["parameters"].as_u64().unwrap()
            + estimate["optimizer"].as_u64().unwrap()
            + estimate["kv_cache"].as_u64().unwrap()
    );
    // A shape that is neither a preset nor a file is refused with the list.
    let output = crate::run(&std::env::temp_dir(), &["bench", "--model", "qwen9"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("qwen2.5-0.5b") && stderr.contains("smollm2-135m"),
        "{stderr}"
    );
}

#[test]
fn the_dry_run_names_the_settings_an_algorithm_brings() {
    let dry = |algo: &str| {
        let output = crate::run(
            &std::env::temp_dir(),
            &["train", "--algo", algo, "--dry-run"],
        );
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let opsd = dry("opsd");
    assert!(opsd.contains("\ngroup_size = 1\n"), "{opsd}");
    assert!(
        opsd.contains(
            "# `opsd`'s run defaults (its reference's; your settings win): rollout.group_size = 1"
        ),
        "{opsd}"
    );
    assert!(!dry("grpo").contains("run defaults"));
}

#[test]
fn dist_without_a_launcher_or_with_an_unknown_engine_is_refused() {
    assert_clean_error(
        &["train", "--algo", "grpo", "--dist", "mpi"],
        &["no MPI launcher variable", "mpirun -np N"],
    );
    assert_clean_error(
        &["train", "--algo", "grpo", "--dist", "nccl"],
        &["no launcher variable", "torchrun"],
    );
    assert_clean_error(
        &["train", "--algo", "grpo", "--dist", "gloo"],
        &["unknown `--dist` engine `gloo`"],
    );
}
