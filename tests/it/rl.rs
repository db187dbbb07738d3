//! GRPO end to end: from a fixed seed, a short run on the easy task raises held-out accuracy.

use crate::{TEST_WARM_START, mod10_cache, run};

fn eval_json(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap()
}

/// The number of `key` in one `metrics.jsonl` line, parsed from its text by `str::parse`
/// (correctly rounded; `None` for `null`). serde_json's default number parser can be one f64 ULP
/// off, enough to flip the f32 rounding of a mean of f32 values, which often lies exactly halfway
/// between two f32 values.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let pattern = format!("\"{key}\":");
    let rest = &line[line.find(&pattern)? + pattern.len()..];
    rest[..rest.find([',', '}'])?].parse().ok()
}

#[test]
fn grpo_raises_heldout_accuracy_on_mod10() {
    let cache = mod10_cache();
    let out = std::env::temp_dir().join(format!("zoo-it-grpo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_str = out.to_string_lossy().to_string();
    let mut args = vec![
        "train", "--algo", "grpo", "--steps", "30", "--seed", "0", "--out", &out_str,
    ];
    args.extend_from_slice(TEST_WARM_START);
    let output = run(cache, &args);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("held-out pass@1"), "{stdout}");
    let report = eval_json(&out);
    let before = report["before"]["sampled"].as_f64().unwrap();
    let after = report["after"]["sampled"].as_f64().unwrap();
    eprintln!("sampled held-out pass@1: {before:.3} -> {after:.3}");
    // The base policy must leave room to improve, and GRPO must use it.
    assert!(
        before > 0.05 && before < 0.9,
        "base policy pass@1 {before} is not between 0 and 1"
    );
    assert!(
        after >= before + MARGIN,
        "GRPO moved pass@1 from {before:.3} to {after:.3}"
    );
    // The run's files.
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 30);
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    for key in [
        "step",
        "reward/mean",
        "reward/std",
        "response_length/mean",
        "actor/loss",
        "actor/pg_loss",
        "actor/pg_clipfrac",
        "actor/ppo_kl",
        "actor/grad_norm",
        "perf/throughput",
        "timing/rollout",
        "rollout/logprob_diff_max",
    ] {
        assert!(first.get(key).is_some(), "metric `{key}` missing: {first}");
    }
    let diff = first["rollout/logprob_diff_max"].as_f64().unwrap();
    assert!(
        diff < 1e-3,
        "sampling and teacher-forced log-probs disagree by {diff}"
    );
    // On-policy GRPO (one epoch, one mini-batch) takes ℓ^old from its own update: no scoring
    // pass ran, and the comparison above used the update's log-probs.
    assert_eq!(first["perf/tokens_per_s/scoring"], 0.0, "{first}");
    assert_eq!(first["actor/pg_clipfrac"], 0.0, "the ratio is exactly 1");
    // The same metrics, as TensorBoard scalars by step, in one event file beside them.
    let events: Vec<std::path::PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(events.len(), 1, "want one event file: {events:?}");
    let scalars = zoo::zoo_core::tensorboard::read_scalars(&events[0]).unwrap();
    for text in metrics.lines() {
        let line: serde_json::Value = serde_json::from_str(text).unwrap();
        let step = line["step"].as_u64().unwrap();
        let at_step: std::collections::BTreeMap<&str, f32> = scalars
            .iter()
            .filter(|(s, _, _)| *s == step)
            .map(|(_, tag, value)| (tag.as_str(), *value))
            .collect();
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "step")
            .collect();
        keys.sort_unstable();
        assert_eq!(
            at_step.keys().copied().collect::<Vec<_>>(),
            keys,
            "step {step}"
        );
        for key in keys {
            // `null` in JSON: a non-finite value, kept as is in the event file.
            match json_number(text, key) {
                Some(want) => assert_eq!(at_step[key], want as f32, "step {step} `{key}`"),
                None => assert!(!at_step[key].is_finite(), "step {step} `{key}`"),
            }
        }
    }
    assert!(out.join("config.toml").exists());
    assert!(
        out.join("checkpoints/step-000030/model.safetensors")
            .exists()
    );
    assert!(
        out.join("checkpoints/step-000010/optimizer.safetensors")
            .exists()
    );
    // `zoo eval` reads the run folder's latest checkpoint.
    let responses = out.join("responses.jsonl");
    let responses_str = responses.to_string_lossy().to_string();
    let output = run(
        cache,
        &[
            "eval",
            "--checkpoint",
            &out_str,
            "--task",
            "mod10",
            "--samples",
            "4",
            "--temperature",
            "1",
            "--problems",
            "50",
            "--responses",
            &responses_str,
        ],
    );
    assert!(output.status.success());
    let eval: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // `--responses` keeps every response; its verdicts and features are the summary's.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&responses)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50 * 4);
    let share = |pick: &dyn Fn(&serde_json::Value) -> bool| {
        lines.iter().filter(|l| pick(l)).count() as f64 / lines.len() as f64
    };
    approx::assert_relative_eq!(
        share(&|l| l["correct"].as_bool().unwrap()),
        eval["pass_at_1"].as_f64().unwrap(),
        epsilon = 1e-12
    );
    for feature in ["chainless", "off_chain", "misread"] {
        approx::assert_relative_eq!(
            share(&|l| l["features"][feature].as_bool().unwrap()),
            eval["features"][feature].as_f64().unwrap(),
            epsilon = 1e-12
        );
    }
    let pass = |k: &str| eval["pass_at_k"][k].as_f64().unwrap();
    assert!(
        eval["checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("step-000030/model.safetensors")
    );
    assert!(
        pass("pass@1") <= pass("pass@2") && pass("pass@2") <= pass("pass@4"),
        "{eval}"
    );
    approx::assert_relative_eq!(pass("pass@1"), eval["pass_at_1"].as_f64().unwrap());
    std::fs::remove_dir_all(&out).unwrap();
}

/// The least improvement of sampled held-out pass@1 the test accepts. Measured with these
/// settings (base: 150 warm-start steps of 64, then 30 GRPO steps at lr 1e-4): 0.380 -> 0.525
/// (seed 0) and 0.370 -> 0.522 (seed 1); the standard error of a pass@1 difference over 400
/// problems is about 0.035. Half the measured gain leaves headroom.
const MARGIN: f64 = 0.08;
