//! `zoo compare` end to end on the tiny model: two algorithms × two seeds × two steps.

use std::path::Path;

use serde_json::Value;

use crate::{TEST_WARM_START, mod10_cache, run};

fn compare(cache: &Path, out: &Path) -> std::process::Output {
    let out = out.to_string_lossy().to_string();
    let mut args = vec![
        "compare",
        "--algos",
        "grpo,grpo[norm_adv_by_std=false]",
        "--seeds",
        "2",
        "--steps",
        "2",
        "--out",
        &out,
        "--set",
        "eval.problems=20",
        "--set",
        "rollout.prompts_per_step=4",
        "--set",
        "eval.every=1",
    ];
    args.extend_from_slice(TEST_WARM_START);
    run(cache, &args)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `results.json` without the wall-clock seconds of its runs.
fn numbers(mut results: Value) -> Value {
    for algorithm in results["algorithms"].as_array_mut().unwrap() {
        for run in algorithm["runs"].as_array_mut().unwrap() {
            run.as_object_mut().unwrap().remove("seconds");
        }
    }
    results
}

#[test]
fn compare_reports_the_runs_numbers_and_reuses_finished_runs() {
    let cache = mod10_cache();
    let out = std::env::temp_dir().join(format!("zoo-it-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = compare(cache, &out);
    assert!(output.status.success());
    for file in [
        "compare.json",
        "results.json",
        "curves.csv",
        "report.md",
        "report.html",
        "reward.svg",
        "length.svg",
        "task-misread.svg",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().nth(2).unwrap().starts_with("| grpo |"),
        "{stdout}"
    );

    // results.json holds exactly the runs' eval.json numbers, their mean and interval.
    let results = json(&out.join("results.json"));
    assert_eq!(results["baseline"], "grpo");
    let algorithms = results["algorithms"].as_array().unwrap();
    assert_eq!(algorithms.len(), 2);
    for algorithm in algorithms {
        let runs = algorithm["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        let mut greedy = Vec::new();
        for run in runs {
            let eval = json(&Path::new(run["dir"].as_str().unwrap()).join("eval.json"));
            assert_eq!(run["greedy"], eval["after"]["greedy"]);
            assert_eq!(run["sampled"], eval["after"]["sampled"]);
            assert_eq!(eval["seed"], run["seed"]);
            // The task's response features come through too (mod10 has `chainless`).
            assert_eq!(
                run["features"]["chainless"],
                eval["after"]["features"]["chainless"]
            );
            greedy.push(run["greedy"].as_f64().unwrap());
        }
        let chainless: Vec<f64> = runs
            .iter()
            .map(|r| r["features"]["chainless"].as_f64().unwrap())
            .collect();
        let feature = &algorithm["heldout_features"]["chainless"]["after"]["mean"];
        assert!((feature.as_f64().unwrap() - (chainless[0] + chainless[1]) / 2.0).abs() < 1e-12);
        let mean = algorithm["greedy"]["mean"].as_f64().unwrap();
        assert!((mean - (greedy[0] + greedy[1]) / 2.0).abs() < 1e-12);
        let half = algorithm["greedy"]["high"].as_f64().unwrap() - mean;
        let sd = (greedy[0] - greedy[1]).abs() / 2f64.sqrt();
        assert!(
            (half - 12.706 * sd / 2f64.sqrt()).abs() < 1e-9,
            "t_{{0.975,1}} interval"
        );
    }
    assert!(algorithms[0]["vs_baseline"]["greedy"].is_null());
    let difference = &algorithms[1]["vs_baseline"]["greedy"];
    let paired: Vec<f64> = (0..2)
        .map(|k| {
            algorithms[1]["runs"][k]["greedy"].as_f64().unwrap()
                - algorithms[0]["runs"][k]["greedy"].as_f64().unwrap()
        })
        .collect();
    assert!((difference["mean"].as_f64().unwrap() - (paired[0] + paired[1]) / 2.0).abs() < 1e-12);
    // `eval.every = 1`: the last step's held-out numbers are the final evaluation's (the same
    // policy, the same evaluation seed).
    let run_dir = out.join("runs/grpo/seed-1");
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    let eval = json(&run_dir.join("eval.json"));
    assert_eq!(last["eval/greedy"], eval["after"]["greedy"]);
    assert_eq!(last["eval/sampled"], eval["after"]["sampled"]);
    assert_eq!(
        last["eval/task/chainless"],
        eval["after"]["features"]["chainless"]
    );
    let share = last["task/chainless"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share), "task/chainless {share}");
    // One curve line per algorithm, seed and step.
    let curves = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(curves.lines().count(), 1 + 2 * 2 * 2);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains(">step</text>") && html.contains("<td>grpo</td>")
    );

    // Rerun: every run is reused, nothing retrains.
    let before = std::fs::metadata(out.join("runs/grpo/seed-1/eval.json"))
        .unwrap()
        .modified()
        .unwrap();
    let output = compare(cache, &out);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("4 finished, 0 to run"));
    let after = std::fs::metadata(out.join("runs/grpo/seed-1/eval.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // A run that lost its eval.json runs again (from its last checkpoint, or from the start:
    // the same seed gives the same numbers on the CPU); the others are reused.
    std::fs::remove_file(out.join("runs/grpo/seed-2/eval.json")).unwrap();
    let output = compare(cache, &out);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 finished, 1 to run"));
    assert_eq!(
        numbers(json(&out.join("results.json"))),
        numbers(results.clone())
    );

    // `--report` rebuilds the same results from the runs alone.
    std::fs::remove_file(out.join("results.json")).unwrap();
    let out_str = out.to_string_lossy().to_string();
    let output = run(cache, &["compare", "--report", &out_str, "--quiet"]);
    assert!(output.status.success());
    assert_eq!(numbers(json(&out.join("results.json"))), numbers(results));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn compare_refuses_bad_requests_with_a_hint() {
    let cache = mod10_cache();
    for (args, message) in [
        (
            vec!["compare", "--algos", "grpo", "--baseline", "cepo"],
            "is not among `--algos`",
        ),
        (vec!["compare", "--algos", "grpo,grpo"], "is listed twice"),
        (
            vec!["compare", "--algos", "grpo[clip_high=0.3"],
            "must end with `]`",
        ),
        (
            vec!["compare", "--report", "/nonexistent/zoo-compare"],
            "holds no comparison",
        ),
    ] {
        let output = run(cache, &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(error.contains(message), "{args:?}: {error}");
        assert!(!error.contains("panicked"), "{error}");
    }
}

/// `zoo compare --model` with the qwen2 fixture on the word problems: 2 algorithms × 2 seeds ×
/// 1 step. The model reaches every run (their config.toml names it), results.json holds the
/// runs' eval.json numbers and the JSONL task's response features, and a rerun trains nothing.
#[test]
fn compare_with_a_real_model_reports_its_runs_and_reuses_them() {
    let cache = mod10_cache();
    let out = std::env::temp_dir().join(format!("zoo-it-compare-llm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let model = crate::llm::fixture_dir("qwen2");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let sets = [
        format!("data.train=[{:?}]", data.join("words-train.jsonl")),
        format!("data.eval=[{:?}]", data.join("words-eval.jsonl")),
        "data.max_new_tokens=6".into(),
        "rollout.prompts_per_step=2".into(),
        "rollout.group_size=2".into(),
        "eval.problems=3".into(),
    ];
    let compare = || {
        let (model, out) = (model.to_string_lossy(), out.to_string_lossy());
        let mut args = vec![
            "compare",
            "--algos",
            "grpo,cepo",
            "--seeds",
            "2",
            "--steps",
            "1",
            "--task",
            "jsonl",
            "--model",
            &model,
            "--out",
            &out,
            "--drop-checkpoints",
        ];
        for set in &sets {
            args.extend(["--set", set.as_str()]);
        }
        run(cache, &args)
    };
    let output = compare();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results = json(&out.join("results.json"));
    let algorithms = results["algorithms"].as_array().unwrap();
    assert_eq!(algorithms.len(), 2);
    for algorithm in algorithms {
        let runs = algorithm["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        for run in runs {
            let dir = Path::new(run["dir"].as_str().unwrap());
            let eval = json(&dir.join("eval.json"));
            assert_eq!(run["greedy"], eval["after"]["greedy"]);
            assert_eq!(run["sampled"], eval["after"]["sampled"]);
            for feature in ["no_answer", "no_work", "echoes_solution"] {
                assert_eq!(
                    run["features"][feature], eval["after"]["features"][feature],
                    "{feature}"
                );
                assert!(run["features"][feature].is_number(), "{feature}");
            }
            let config: toml::Value =
                toml::from_str(&std::fs::read_to_string(dir.join("config.toml")).unwrap()).unwrap();
            assert_eq!(
                config["model"]["source"].as_str(),
                Some(model.to_str().unwrap())
            );
            // Each objective's LLM defaults, not the CPU world's: CEPO's own learning rate.
            let lr = if algorithm["label"] == "cepo" {
                5e-6
            } else {
                1e-6
            };
            assert_eq!(config["optim"]["lr"].as_float(), Some(lr));
        }
    }
    // One base evaluation per seed, shared by both algorithms; finished runs lost their
    // checkpoints (`--drop-checkpoints`), not their results.
    let stored = std::fs::read_dir(out.join("base-eval")).unwrap().count();
    assert_eq!(stored, 2);
    for seed in ["seed-1", "seed-2"] {
        let grpo = json(&out.join("runs/grpo").join(seed).join("eval.json"));
        let cepo = json(&out.join("runs/cepo").join(seed).join("eval.json"));
        assert_eq!(grpo["before"], cepo["before"]);
        assert!(
            !out.join("runs/grpo")
                .join(seed)
                .join("checkpoints")
                .exists()
        );
    }
    let before = std::fs::read(out.join("runs/cepo/seed-2/metrics.jsonl")).unwrap();
    // A run finished earlier whose checkpoints are still there loses them on the rerun.
    let stale = out.join("runs/cepo/seed-1/checkpoints/step-000001");
    std::fs::create_dir_all(&stale).unwrap();
    let output = compare();
    assert!(!stale.exists());
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("4 finished, 0 to run"));
    assert_eq!(
        std::fs::read(out.join("runs/cepo/seed-2/metrics.jsonl")).unwrap(),
        before
    );
    assert_eq!(numbers(json(&out.join("results.json"))), numbers(results));
    // A model that is not there is refused before anything runs.
    let output = run(
        cache,
        &[
            "compare",
            "--algos",
            "grpo",
            "--model",
            "/nonexistent/model",
            "--task",
            "jsonl",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
    let _ = std::fs::remove_dir_all(&out);
}
