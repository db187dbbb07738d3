//! `zoo objective eval` against the parity fixtures of `tests/fixtures/objectives/`.
//!
//! The fixtures' expected values come from `generate.py` there: an independent float64
//! re-implementation of `algorithms.md` with finite-difference gradients. zoo computes in f32
//! with autodiff, hence the tolerances.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/objectives")
}

fn fixtures() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("not a number: {other}"),
    }
}

fn numbers(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flatten(v, &mut out);
    out
}

/// `|a − e| ≤ tol·max(1, max|e|)` element-wise, with a message naming the fixture.
fn assert_close(name: &str, what: &str, actual: &Value, expected: &Value, tol: f64) {
    let (a, e) = (numbers(actual), numbers(expected));
    assert_eq!(a.len(), e.len(), "{name}: {what} has the wrong size");
    let scale = e.iter().fold(1f64, |m, x| m.max(x.abs()));
    for (k, (x, y)) in a.iter().zip(&e).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{name}: {what}[{k}] = {x}, expected {y} (tolerance {})",
            tol * scale
        );
    }
}

#[test]
fn every_objective_matches_its_independent_reference_on_the_parity_fixtures() {
    // On every device of this build: `flex`, and `tch-cpu` with feature `tch`.
    for device in zoo::zoo_core::device::DeviceSpec::available() {
        parity_on(&device);
    }
}

fn parity_on(spec: &zoo::zoo_core::device::DeviceSpec) {
    eprintln!("parity fixtures on `{spec}`");
    let device = spec.device().unwrap();
    let mut per_algo: BTreeMap<String, usize> = BTreeMap::new();
    for (name, fixture) in fixtures() {
        let name = format!("{name} on {spec}");
        let input = serde_json::to_string(&fixture["input"]).unwrap();
        let out = zoo::commands::objective::evaluate_on(&input, &device)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let expected = &fixture["expected"];
        assert_close(&name, "loss", &out["loss"], &expected["loss"], 2e-6);
        assert_close(&name, "grad", &out["grad"], &expected["grad"], 2e-6);
        if let Some(advantages) = expected.get("advantages") {
            assert_close(&name, "advantages", &out["advantages"], advantages, 2e-6);
        }
        assert!(
            numbers(&out["grad"]).iter().any(|g| g.abs() > 1e-4),
            "{name}: a zero gradient would prove nothing"
        );
        *per_algo
            .entry(fixture["input"]["algo"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for algo in [
        "grpo", "dapo", "disco", "cepo", "rlsd", "rlcsd", "opsd", "sdpo",
    ] {
        let count = per_algo.get(algo).copied().unwrap_or(0);
        assert!(
            count >= 3,
            "{algo} has {count} parity fixtures, want at least 3"
        );
    }
}

#[test]
fn objective_eval_cli_prints_one_json_object() {
    let cache = std::env::temp_dir();
    let path = fixture_dir().join("cepo_default_weights.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // A fixture file is read for its input; so is the bare input on stdin.
    let output = crate::run(
        &cache,
        &["objective", "eval", "--input", path.to_str().unwrap()],
    );
    assert!(output.status.success());
    let out: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(out["algo"], "cepo");
    assert!(out["metrics"]["cepo/lambda"].as_f64() == Some(0.5));
    assert_close(
        "cli",
        "loss",
        &out["loss"],
        &fixture["expected"]["loss"],
        2e-6,
    );
    let mut child = crate::zoo(&cache)
        .args(["objective", "eval", "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(fixture["input"].to_string().as_bytes())
        .unwrap();
    let piped = child.wait_with_output().unwrap();
    assert!(piped.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&piped.stdout).unwrap(), out);
}

#[test]
fn bad_objective_eval_input_gets_a_clear_error() {
    let base = r#"{"algo": "grpo", "batch": {"rewards": [1, 0], "group_ids": [0, 0],
        "mask": [[1, 1], [1, 0]], "logprobs": [[-1, -1], [-1, 0]], "old_logprobs": [[-1, -1], [-1, 0]]}}"#;
    assert!(zoo::commands::objective::evaluate(base).is_ok());
    let cases = [
        (base.replace("\"grpo\"", "\"gpro\""), "did you mean `grpo`"),
        (
            base.replace(", \"old_logprobs\": [[-1, -1], [-1, 0]]", ""),
            "`batch.old_logprobs` is missing",
        ),
        (
            base.replace("[[-1, -1], [-1, 0]]}", "[[-1, -1], [-1]]}"),
            "`batch.old_logprobs[1]` has 1 entries",
        ),
        (
            base.replace("\"rewards\": [1, 0]", "\"rewards\": [1]"),
            "one reward and one group id per response",
        ),
        (
            base.replace("\"logprobs\": [[-1, -1]", "\"logprobs\": [[-1e39, -1]"),
            "non-finite",
        ),
        (
            base.replace("\"mask\": [[1, 1]", "\"mask\": [[1, 2]"),
            "a mask holds only 0 and 1",
        ),
        (
            base.replace("\"batch\"", "\"config\": {\"clip_hi\": 0.3}, \"batch\""),
            "unknown config key `clip_hi`",
        ),
        (
            base.replace("{\"algo\"", "{\"agol\": 1, \"algo\""),
            "not the `objective eval` format",
        ),
    ];
    // RLCSD's K wrong-hint teachers: [N][K][T] with [N][K] flags.
    let rlcsd = r#"{"algo": "rlcsd", "batch": {"rewards": [1, 0], "group_ids": [0, 0],
        "mask": [[1, 1], [1, 0]], "logprobs": [[-1, -1], [-1, 0]], "old_logprobs": [[-1, -1], [-1, 0]],
        "teacher_pos_logprobs": [[-0.5, -1], [-2, 0]],
        "teacher_neg_logprobs": [[[-1, -1], [-2, -1]], [[-0.5, 0], [-1, 0]]],
        "teacher_neg_valid": [[1, 1], [1, 0]]}}"#;
    assert!(zoo::commands::objective::evaluate(rlcsd).is_ok());
    let rlcsd_cases = [
        (
            rlcsd.replace("[[1, 1], [1, 0]]}}", "[[1, 1], [1]]}}"),
            "`batch.teacher_neg_valid` must be [2][2]",
        ),
        (
            rlcsd.replace("[[1, 1], [1, 0]]}}", "[[1, 1], [1, 2]]}}"),
            "give 0 or 1",
        ),
        (
            rlcsd.replace("[[-0.5, 0], [-1, 0]]", "[[-0.5, 0]]"),
            "has 1 slots but row 0 has 2",
        ),
        (
            rlcsd.replace("[[1, 1], [1, 0]]}}", "[[1, 1]]}}"),
            "one entry per row of `batch.mask` (2)",
        ),
        (
            rlcsd.replace(
                "\"teacher_neg_valid\"",
                "\"hint_mask\": [1], \"teacher_neg_valid\"",
            ),
            "one entry per row of `batch.mask` (2)",
        ),
    ];
    // A distillation objective's two vocabularies must agree.
    let opsd = r#"{"algo": "opsd", "batch": {"mask": [[1]],
        "student_logits": [[[0.1, 0.2, 0.3]]], "teacher_logits": [[[0.3, 0.1, 0.0]]]}}"#;
    assert!(zoo::commands::objective::evaluate(opsd).is_ok());
    let opsd_cases = [(
        opsd.replace("[[[0.3, 0.1, 0.0]]]", "[[[0.3, 0.1]]]"),
        "`batch.student_logits` has 3 logits per position but `batch.teacher_logits` has 2",
    )];
    for (input, expected) in cases.into_iter().chain(rlcsd_cases).chain(opsd_cases) {
        let err = zoo::commands::objective::evaluate(&input)
            .expect_err(expected)
            .to_string();
        let err = format!("{err:#}");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
}

#[test]
fn every_registered_objective_trains_end_to_end_and_logs_its_metrics() {
    use crate::{TEST_WARM_START, mod10_cache, run};
    let cache = mod10_cache();
    let base = std::env::temp_dir().join(format!("zoo-it-objectives-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let own_metric = [
        ("grpo", "grpo/adv_abs_mean"),
        ("dapo", "dapo/kept_groups"),
        ("disco", "disco/kl"),
        ("cepo", "cepo/wrong_answer_found_frac"),
        ("rlsd", "rlsd/lambda"),
        ("rlcsd", "rlcsd/valid_sample_frac"),
        ("opsd", "opsd/divergence"),
        ("sdpo", "sdpo/teacher_ema_rate"),
        ("rloo", "rloo/adv_abs_mean"),
    ];
    for (algo, metric) in own_metric {
        let out = base.join(algo).to_string_lossy().to_string();
        let mut args = vec![
            "train", "--algo", algo, "--steps", "2", "--out", &out, "--quiet",
        ];
        args.extend_from_slice(TEST_WARM_START);
        args.extend_from_slice(&[
            "--set",
            "rollout.prompts_per_step=8",
            "--set",
            "eval.problems=20",
        ]);
        let output = run(cache, &args);
        assert!(output.status.success(), "{algo} failed to train");
        let text = std::fs::read_to_string(base.join(algo).join("metrics.jsonl")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{algo}");
        for line in &lines {
            let value = line[metric].as_f64();
            assert!(
                value.is_some_and(f64::is_finite),
                "{algo}: `{metric}` missing in {line}"
            );
            assert!(
                line["actor/grad_norm"].as_f64().is_some_and(|g| g > 0.0),
                "{algo}: no update"
            );
        }
    }
    // DisCO takes several optimizer steps per batch so that its trust region can act.
    let disco: Value = serde_json::from_str(
        std::fs::read_to_string(base.join("disco/metrics.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert!(
        disco["disco/kl"].as_f64().unwrap() != 0.0,
        "DisCO's later mini-batches moved off θ_old"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn dapo_dynamic_sampling_refills_and_reports_or_refuses_a_shortfall() {
    use crate::{TEST_WARM_START, mod10_cache, run};
    let cache = mod10_cache();
    let base = std::env::temp_dir().join(format!("zoo-it-dapo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let train = |name: &str, extra: &[&str]| {
        let out = base.join(name).to_string_lossy().to_string();
        let mut args = vec![
            "train", "--algo", "dapo", "--steps", "2", "--out", &out, "--quiet",
        ];
        args.extend_from_slice(TEST_WARM_START);
        args.extend_from_slice(&[
            "--set",
            "rollout.prompts_per_step=8",
            "--set",
            "eval.problems=10",
        ]);
        args.extend_from_slice(extra);
        run(cache, &args)
    };
    let metrics = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(base.join(name).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // Groups of two: about half are mixed, so filling 8 groups takes more than one round.
    assert!(
        train("refill", &["--set", "rollout.group_size=2"])
            .status
            .success()
    );
    let refill = metrics("refill");
    for m in &refill {
        assert_eq!(m["rollout/kept_groups"], 8.0, "{m}");
        assert_eq!(m["dapo/kept_groups"], 8.0, "{m}");
    }
    assert!(
        refill
            .iter()
            .any(|m| m["rollout/generation_rounds"].as_f64().unwrap() >= 2.0),
        "no step needed a second round"
    );
    // Groups of one are never mixed: every round comes back empty.
    let log = [
        "--set",
        "rollout.group_size=1",
        "--set",
        "objective.max_gen_rounds=3",
    ];
    assert!(train("log", &log).status.success());
    for m in metrics("log") {
        assert_eq!(m["rollout/kept_groups"], 0.0, "{m}");
        assert_eq!(m["rollout/shortfall_groups"], 8.0, "{m}");
        assert_eq!(m["rollout/generation_rounds"], 3.0, "{m}");
    }
    let mut refuse = log.to_vec();
    refuse.extend_from_slice(&["--set", "objective.on_shortfall=\"error\""]);
    let output = train("error", &refuse);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kept 0 of 8 groups after 3 generation rounds")
            && stderr.contains("max_gen_rounds"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn distillation_inputs_need_only_their_logits_and_null_means_none() {
    use zoo::commands::objective::evaluate;
    let z_s = [0.3, -1.2, 2.0, 0.1, -0.4];
    let z_t = [1.1, -0.2, 0.5, -1.0, 0.7];
    let input = |algo: &str, config: Value| {
        serde_json::json!({
            "algo": algo,
            "config": config,
            "batch": {"mask": [[1.0]], "student_logits": [[z_s]], "teacher_logits": [[z_t]]}
        })
        .to_string()
    };
    let loss = |algo: &str, config: Value| {
        evaluate(&input(algo, config)).unwrap()["loss"]
            .as_f64()
            .unwrap()
    };
    // The batch holds only `mask`, `student_logits` and `teacher_logits`.
    for algo in ["opsd", "sdpo"] {
        assert!(loss(algo, serde_json::json!({})) > 0.0, "{algo}");
    }
    // `null` is "none": OPSD's full vocabulary, its default, not a top-2 restriction.
    let full = loss("opsd", serde_json::json!({}));
    assert_eq!(loss("opsd", serde_json::json!({"topk": null})), full);
    assert!((loss("opsd", serde_json::json!({"topk": 2})) - full).abs() > 1e-4);
    // An objective that reads rewards says so when they are missing.
    let err = evaluate(&input("grpo", serde_json::json!({})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`grpo` reads `batch.rewards`"), "{err}");
}

#[test]
fn dapo_default_overlong_buffer_spares_correct_answers_of_typical_length_on_the_cpu_task() {
    use zoo::zoo_core::objective::BuildContext;
    use zoo::zoo_core::{CreditInput, TokenMatrix, registry, rng};
    // The main CPU task's correct answers: reference solutions plus end-of-sequence, one token
    // per character, all in one batch through DAPO's default credit stage.
    let task = (registry::task("addition").unwrap().build)(&Default::default()).unwrap();
    let max_len = task.max_new_tokens();
    let problems = task.sample_problems(&mut rng::stream(7, 0, "overlong"), 2000);
    let lengths: Vec<usize> = problems
        .iter()
        .map(|p| p.solution.chars().count() + 1)
        .collect();
    let n = lengths.len();
    let dapo = (registry::algorithm("dapo").unwrap().default_config)()
        .build(&BuildContext {
            max_new_tokens: max_len,
            group_size: n,
            steps: 1,
            temperature: 1.0,
            evaluation: false,
        })
        .unwrap();
    let mut mask = TokenMatrix::zeros(n, max_len);
    for (i, &len) in lengths.iter().enumerate() {
        for t in 0..len {
            mask.set(i, t, 1.0);
        }
    }
    let credit = dapo
        .credit(&CreditInput {
            step: 1,
            rewards: &vec![1.0; n],
            correct: &vec![true; n],
            group_ids: &vec![0; n],
            mask: &mask,
            old_logprobs: &TokenMatrix::zeros(n, max_len),
            ref_logprobs: None,
            teachers: &[],
        })
        .unwrap();
    let metric = |key: &str| {
        credit
            .metrics
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .unwrap()
    };
    // The default L_cache = L_max / 5 leaves L_max − L_cache = 48 of 60 tokens free: every
    // answer up to 46 tokens (the median is 34) is spared; only 4-digit sums with a carry
    // out of every column (50 tokens, ~1.5% of problems) fall 2 tokens into the zone.
    let free = max_len - max_len / 5;
    let over: Vec<usize> = lengths.iter().copied().filter(|&l| l > free).collect();
    assert_eq!(metric("dapo/overlong_frac"), over.len() as f64 / n as f64);
    assert!(
        over.len() * 50 < n,
        "{} of {n} correct answers penalized",
        over.len()
    );
    let mut sorted = lengths.clone();
    sorted.sort_unstable();
    assert!(
        sorted[n * 95 / 100] <= free,
        "the 95th percentile is penalized"
    );
    let worst = over
        .iter()
        .map(|&l| (l - free) as f64 / (max_len / 5) as f64);
    assert!(
        worst.fold(0.0, f64::max) <= 0.2,
        "a correct answer loses over 0.2"
    );
}
