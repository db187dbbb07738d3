//! A run stopped after k steps and resumed gives the same metrics as an uninterrupted run.

use std::path::Path;

use crate::{TEST_WARM_START, mod10_cache, run};

fn train(cache: &Path, algo: &str, out: &Path, extra: &[&str]) {
    let out = out.to_string_lossy().to_string();
    let mut args = vec![
        "train", "--algo", algo, "--steps", "4", "--seed", "3", "--out", &out, "--quiet",
    ];
    args.extend_from_slice(TEST_WARM_START);
    args.extend_from_slice(&[
        "--set",
        "checkpoint_every=2",
        "--set",
        "eval.problems=40",
        "--set",
        "rollout.prompts_per_step=8",
    ]);
    args.extend_from_slice(extra);
    let output = run(cache, &args);
    assert!(output.status.success());
}

/// Metrics by step without the wall-clock ones.
pub fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let object = v.as_object_mut().unwrap();
            object.retain(|k, _| !k.starts_with("timing/") && !k.starts_with("perf/"));
            v
        })
        .collect()
}

/// GRPO (on-policy: no `ℓ^old` pass), SDPO whose EMA teacher is part of the state to
/// restore, CEPO whose teacher passes skip rows (advantage 0) and, once λ has decayed to 0
/// after step 2, whole passes, and RLCSD whose snapshot teacher (refreshed after optimizer
/// step 3, past the checkpoint) and seeded sibling draws are restored.
#[test]
fn resumed_run_matches_uninterrupted_run() {
    let cache = mod10_cache();
    let base = std::env::temp_dir().join(format!("zoo-it-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    for algo in ["grpo", "sdpo", "cepo", "rlcsd"] {
        let extra: &[&str] = match algo {
            "cepo" => &["--set", "objective.decay_steps=2"],
            "rlcsd" => &["--set", "objective.teacher_sync_interval=3"],
            _ => &[],
        };
        let (whole, split) = (base.join(algo).join("whole"), base.join(algo).join("split"));
        train(cache, algo, &whole, extra);
        // Interrupted after step 2's checkpoint: the later checkpoint never made it to disk.
        train(cache, algo, &split, extra);
        std::fs::remove_dir_all(split.join("checkpoints/step-000004")).unwrap();
        let resume = [extra, &["--resume"]].concat();
        train(cache, algo, &split, &resume);
        let (a, b) = (metrics(&whole), metrics(&split));
        assert_eq!(a.len(), 4);
        assert_eq!(
            b.len(),
            4,
            "the resumed {algo} run rewrote steps 3 and 4 once"
        );
        assert_eq!(a, b, "{algo}");
        if algo == "cepo" {
            let scored: Vec<f64> = a
                .iter()
                .map(|m| m["teacher/scored_frac"].as_f64().unwrap())
                .collect();
            // Rows with a non-zero advantage only, then none once λ = 0.
            for m in &a[..2] {
                assert_eq!(m["teacher/scored_frac"], m["cepo/nonzero_adv_frac"], "{m}");
            }
            assert!(scored[0] > 0.0, "{scored:?}");
            assert_eq!(scored[2..], [0.0, 0.0], "λ = 0 from step 3");
        }
        let eval = |d: &Path| std::fs::read_to_string(d.join("eval.json")).unwrap();
        let strip = |s: String| {
            s.lines()
                .filter(|l| !l.contains("seconds"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(eval(&whole)), strip(eval(&split)), "{algo}");
    }
    let split = base.join("grpo").join("split");
    // Without `--resume`, an existing run is not overwritten.
    let out = split.to_string_lossy().to_string();
    let output = run(
        cache,
        &["train", "--algo", "grpo", "--out", &out, "--task", "mod10"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--resume"));
    std::fs::remove_dir_all(&base).unwrap();
}

/// SDPO's teacher after each optimizer step is `θ_T ← (1 − r)·θ_T + r·θ` with the new
/// weights θ, checked on the checkpointed weights of steps 1 to 3 (one optimizer step each).
#[test]
fn the_ema_teacher_follows_the_policy_at_its_rate_after_every_step() {
    use zoo::zoo_core::burn::prelude::*;
    use zoo::zoo_core::checkpoint::{load_safetensors, step_dir};
    let cache = mod10_cache();
    let out = std::env::temp_dir().join(format!("zoo-it-ema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_str = out.to_string_lossy().to_string();
    let mut args = vec![
        "train", "--algo", "sdpo", "--steps", "3", "--seed", "5", "--out", &out_str, "--quiet",
    ];
    args.extend_from_slice(TEST_WARM_START);
    args.extend_from_slice(&[
        "--set",
        "checkpoint_every=1",
        "--set",
        "eval.problems=8",
        "--set",
        "rollout.prompts_per_step=8",
        "--set",
        "objective.ema_rate=0.25",
    ]);
    let output = run(cache, &args);
    assert!(output.status.success());
    let device = Device::flex();
    let load = |step: usize, file: &str| -> Vec<(String, Vec<f32>)> {
        let path = step_dir(&out.join("checkpoints"), step).join(file);
        load_safetensors(&path, &device)
            .unwrap()
            .into_iter()
            .map(|(name, t)| (name, t.value.into_data().try_to_vec::<f32>().unwrap()))
            .collect()
    };
    let rate = 0.25f32;
    for step in 2..=3 {
        let (before, policy, after) = (
            load(step - 1, "teacher_ema.safetensors"),
            load(step, "model.safetensors"),
            load(step, "teacher_ema.safetensors"),
        );
        assert_eq!(before.len(), after.len());
        let mut moved = 0usize;
        for ((name, old), ((pname, theta), (_, new))) in
            before.iter().zip(policy.iter().zip(&after))
        {
            assert_eq!(name, pname);
            for k in 0..old.len() {
                let expected = (1.0 - rate) * old[k] + rate * theta[k];
                assert!(
                    (new[k] - expected).abs() <= 1e-6 * (1.0 + expected.abs()),
                    "step {step} `{name}`[{k}]: {} vs {expected}",
                    new[k]
                );
                moved += usize::from(new[k] != old[k]);
            }
        }
        assert!(moved > 0, "step {step}: the teacher did not move");
    }
    // The teacher lags the policy: not equal to it after three steps.
    let (policy, teacher) = (
        load(3, "model.safetensors"),
        load(3, "teacher_ema.safetensors"),
    );
    assert!(policy.iter().zip(&teacher).any(|((_, a), (_, b))| a != b));
    let _ = std::fs::remove_dir_all(&out);
}
