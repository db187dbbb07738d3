//! LoRA adapters against PEFT (fixtures of `scripts/make-lora-fixtures.py`: random A and B on
//! all seven projections of each family's fixture model, and the logits PEFT's adapted model
//! gives), and what training adapters must guarantee: the base never changes, the reference is
//! the base, and the sampler always uses the adapters being trained. PEFT loading zoo's own
//! adapter checkpoints, and transformers loading `zoo export --merge`, are checked by
//! `scripts/check-adapter-peft.py` in `scripts/test-llm.sh`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::optim::{AdamW, OptimConfig};
use zoo::zoo_core::policy::NamedTensors;
use zoo::zoo_core::{Policy, SamplingConfig, TokenMatrix, rng};
use zoo::zoo_llm::LlmPolicy;
use zoo::zoo_llm::lora::{LoraConfig, is_adapter, trainable_params};

use crate::llm::{
    FIXTURES, all_logits, assert_close, fixture_dir, floats, ids, load_on, some_weight_differs,
};

fn adapter_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lora")
        .join(name)
}

fn base(name: &str) -> LlmPolicy {
    load_on(name, &Device::flex()).0
}

fn with_peft_adapter(name: &str) -> LlmPolicy {
    base(name)
        .with_adapter(&adapter_dir(name), false, name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(adapter_dir(name).join("expected.json")).unwrap())
        .unwrap()
}

fn sequences(expected: &Value) -> Vec<Vec<u32>> {
    expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["input_ids"]))
        .collect()
}

fn flat(logits: &[Vec<Vec<f32>>]) -> Vec<f32> {
    logits.iter().flatten().flatten().copied().collect()
}

#[test]
fn peft_adapters_give_peft_logits_on_every_family_alone_and_batched() {
    for name in FIXTURES {
        let policy = with_peft_adapter(name);
        let expected = expected(name);
        let sequences = sequences(&expected);
        let batched = all_logits(&policy, &sequences);
        let mut worst = 0f32;
        for (i, case) in expected["cases"].as_array().unwrap().iter().enumerate() {
            let alone = all_logits(&policy, std::slice::from_ref(&sequences[i]));
            for (j, row) in case["logits"].as_array().unwrap().iter().enumerate() {
                let want = floats(row);
                worst = worst.max(assert_close(name, &alone[0][j], &want, 1e-4));
                worst = worst.max(assert_close(name, &batched[i][j], &want, 1e-4));
            }
        }
        // The adapters matter: the base alone is far from PEFT's adapted logits.
        let plain = flat(&all_logits(&base(name), &sequences));
        let adapted = flat(&batched);
        let moved = plain
            .iter()
            .zip(&adapted)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            moved > 1e-2,
            "{name}: the adapter moved logits by only {moved:e}"
        );
        eprintln!("{name}: worst relative logit difference to PEFT {worst:.2e}");
    }
}

#[test]
fn written_adapters_read_back_exactly_and_merging_gives_the_adapted_model() {
    let dir = std::env::temp_dir().join(format!("zoo-it-lora-files-{}", std::process::id()));
    for name in FIXTURES {
        let policy = with_peft_adapter(name);
        let sequences = sequences(&expected(name));
        let adapted = all_logits(&policy, &sequences);
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        policy.write_model_files(&out).unwrap();
        assert!(
            !out.join("config.json").exists(),
            "an adapter folder is not a model"
        );
        let again = base(name).with_adapter(&out, false, name).unwrap();
        assert_eq!(
            flat(&all_logits(&again, &sequences)),
            flat(&adapted),
            "{name}"
        );
        let merged = policy.merged();
        assert!(merged.lora().is_none());
        assert!(merged.parameters().keys().all(|k| !is_adapter(k)));
        assert_close(
            name,
            &flat(&all_logits(&merged, &sequences)),
            &flat(&adapted),
            1e-4,
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn fresh(name: &str, rank: usize) -> LlmPolicy {
    let config = LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        ..LoraConfig::default()
    };
    base(name).with_lora(&config, 7, false, name).unwrap()
}

fn host(tensors: &NamedTensors) -> Vec<(String, Vec<f32>)> {
    tensors
        .iter()
        .map(|(k, t)| {
            let v = t.value.clone().into_data().convert::<f32>();
            (k.clone(), v.try_into_vec::<f32>().unwrap())
        })
        .collect()
}

/// One AdamW step of the gradient of `Σ ℓ` (teacher-forced log-probs of `responses`), with
/// the trainer's calls (`parameters`, `backward`, `set_parameters`).
fn step(
    policy: &mut LlmPolicy,
    optimizer: &mut AdamW,
    contexts: &[Vec<u32>],
    responses: &[Vec<u32>],
) {
    let loss = policy
        .token_logprobs(contexts, responses, 1.0, true)
        .sum()
        .neg();
    let grads = policy.backward(loss);
    assert!(
        !grads.is_empty() && grads.keys().all(|k| is_adapter(k)),
        "only adapters get gradients: {:?}",
        grads.keys().collect::<Vec<_>>()
    );
    let grads = zoo::zoo_core::params::fill_zeros(grads, &policy.parameters());
    let (updated, _) = optimizer.step(&policy.parameters(), grads, 1e-2).unwrap();
    policy.set_parameters(&updated).unwrap();
}

#[test]
fn training_adapters_moves_only_them_and_the_reference_stays_the_base() {
    let name = "qwen2";
    let mut policy = fresh(name, 4);
    let config = zoo::zoo_llm::LlmConfig::from_hf(
        &serde_json::from_str(
            &std::fs::read_to_string(fixture_dir(name).join("config.json")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let trainable: usize = policy
        .parameters()
        .values()
        .map(|t| t.value.dims()[0])
        .sum();
    assert_eq!(trainable, trainable_params(&config, policy.lora().unwrap()));
    assert!(policy.parameters().keys().all(|k| is_adapter(k)));
    // PEFT's initialization (B = 0) leaves the model exactly as it was.
    let sequences = sequences(&expected(name));
    let plain = flat(&all_logits(&base(name), &sequences));
    assert_eq!(flat(&all_logits(&policy, &sequences)), plain);
    let reference = policy.snapshot(); // what the trainer keeps as `ℓ^ref` / the initial teacher
    let base_before: Vec<_> = host(&policy.all_parameters())
        .into_iter()
        .filter(|(k, _)| !is_adapter(k))
        .collect();
    let adapters_before = policy.parameters();
    let contexts = vec![sequences[0][..3].to_vec(), sequences[1][..2].to_vec()];
    let responses = vec![sequences[0][3..].to_vec(), sequences[1][2..].to_vec()];
    let mut optimizer = AdamW::new(OptimConfig::default());
    step(&mut policy, &mut optimizer, &contexts, &responses);
    step(&mut policy, &mut optimizer, &contexts, &responses);
    let base_after: Vec<_> = host(&policy.all_parameters())
        .into_iter()
        .filter(|(k, _)| !is_adapter(k))
        .collect();
    assert!(base_before == base_after, "the base changed");
    assert!(some_weight_differs(&policy.parameters(), &adapters_before));
    assert_ne!(
        flat(&all_logits(&policy, &sequences)),
        plain,
        "training changed the model"
    );
    // The reference is the base with the initial (zero-effect) adapters: the base's log-probs,
    // with no second copy of the base's weights.
    let ref_logprobs = reference.token_logprobs(&contexts, &responses, 1.0, false);
    let base_logprobs = base(name).token_logprobs(&contexts, &responses, 1.0, false);
    assert_eq!(
        TokenMatrix::from_tensor(ref_logprobs).data,
        TokenMatrix::from_tensor(base_logprobs).data
    );
}

/// The weight-sync guarantee: after every optimizer step, the log-probs the sampler records
/// for its tokens are those of teacher forcing with the adapters as they are now (a sampler
/// left on stale weights, the bug class RL frameworks report with LoRA, fails this at once).
#[test]
fn the_sampler_always_uses_the_adapters_being_trained() {
    let name = "qwen3";
    let mut policy = fresh(name, 8);
    let initial = policy.snapshot();
    let mut optimizer = AdamW::new(OptimConfig::default());
    let prompts = vec![vec![5u32, 9, 14], vec![5u32, 9, 14], vec![200u32, 3]];
    let sampling = SamplingConfig {
        temperature: 1.0,
        max_new_tokens: 6,
        // (A minimum length renormalizes without the stop token: the recorded log-probs would
        // not be the model's.)
        min_new_tokens: 0,
    };
    for round in 0..3 {
        let mut stream = rng::stream(11, round, "weight-sync");
        let samples = policy.sample(&prompts, &sampling, &mut stream);
        let responses: Vec<Vec<u32>> = samples.iter().map(|s| s.tokens.clone()).collect();
        let recorded: Vec<f32> = samples.iter().flat_map(|s| s.logprobs.clone()).collect();
        let scored =
            TokenMatrix::from_tensor(policy.token_logprobs(&prompts, &responses, 1.0, false));
        assert_close(name, &recorded, &scored.data, 1e-4);
        if round > 0 {
            // And the adapters have moved the model away from where it started.
            let stale =
                TokenMatrix::from_tensor(initial.token_logprobs(&prompts, &responses, 1.0, false));
            let gap = recorded
                .iter()
                .zip(&stale.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                gap > 1e-3,
                "round {round}: the sampler's log-probs are the initial policy's ({gap:e})"
            );
        }
        step(&mut policy, &mut optimizer, &prompts, &responses);
    }
}

#[test]
fn bad_adapter_settings_and_foreign_adapters_are_refused_by_name() {
    let error = |config: LoraConfig| {
        base("llama")
            .with_lora(&config, 0, false, "llama")
            .err()
            .unwrap()
            .to_string()
    };
    let unknown = error(LoraConfig {
        targets: vec!["qkv_proj".into()],
        ..LoraConfig::default()
    });
    assert!(
        unknown.contains("`qkv_proj`") && unknown.contains("q_proj"),
        "{unknown}"
    );
    let zero = error(LoraConfig {
        rank: 0,
        ..LoraConfig::default()
    });
    assert!(zero.contains("`model.lora.rank`"), "{zero}");
    // llama's adapter on qwen3 (other projection shapes): the key and both shapes named.
    let foreign = base("qwen3")
        .with_adapter(&adapter_dir("llama"), false, "qwen3")
        .err()
        .unwrap()
        .to_string();
    assert!(
        foreign.contains("q_proj.lora_") && foreign.contains("another base"),
        "{foreign}"
    );
    let missing = base("llama")
        .with_adapter(Path::new("/nonexistent-adapter"), false, "llama")
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("adapter_config.json"), "{missing}");
}

fn lora_train(out: &Path, extra: &[&str]) -> std::process::Output {
    let cache = std::env::temp_dir().join(format!("zoo-it-lora-cache-{}", std::process::id()));
    let out = out.to_string_lossy().to_string();
    let model = fixture_dir("qwen2").to_string_lossy().to_string();
    let mut args = vec![
        "train", "--quiet", "--algo", "opsd", "--model", &model, "--task", "jsonl", "--steps", "3",
        "--seed", "4", "--out", &out,
    ];
    args.extend_from_slice(&[
        "--set",
        "data.train=[\"examples/data/add-easy-train.jsonl\"]",
        "--set",
        "data.eval=[\"examples/data/add-easy-eval.jsonl\"]",
        "--set",
        "data.max_new_tokens=8",
        "--set",
        "rollout.prompts_per_step=2",
        "--set",
        "eval.problems=2",
        "--set",
        "optim.lr=1e-2",
        "--set",
        "checkpoint_every=1",
        "--set",
        "model.lora.rank=4",
    ]);
    args.extend_from_slice(extra);
    crate::run(&cache, &args)
}

/// A LoRA run's checkpoints are PEFT adapter folders holding only the adapters, and a run
/// resumed from one repeats the uninterrupted run bit for bit (adapters, AdamW's moments of
/// the adapters, metrics).
#[test]
fn a_lora_run_resumes_bit_for_bit_from_its_adapter_checkpoints() {
    let dir = std::env::temp_dir().join(format!("zoo-it-lora-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (whole, split) = (dir.join("whole"), dir.join("split"));
    assert!(lora_train(&whole, &[]).status.success());
    assert!(lora_train(&split, &[]).status.success());
    std::fs::remove_dir_all(split.join("checkpoints/step-000003")).unwrap();
    assert!(lora_train(&split, &["--resume"]).status.success());
    let file = |out: &Path, name: &str| {
        std::fs::read(out.join("checkpoints/step-000003").join(name)).unwrap()
    };
    for name in [
        "adapter_model.safetensors",
        "model.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(
            file(&whole, name) == file(&split, name),
            "`{name}` differs after resuming"
        );
    }
    let weights = safetensors::SafeTensors::deserialize(&file(&whole, "model.safetensors"))
        .unwrap()
        .names()
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert!(weights.iter().all(|n| is_adapter(n)), "{weights:?}");
    assert_eq!(
        crate::resume::metrics(&whole),
        crate::resume::metrics(&split)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lora_settings_that_cannot_work_are_refused_before_loading() {
    let dir = std::env::temp_dir().join(format!("zoo-it-lora-bad-{}", std::process::id()));
    for (extra, expected) in [
        (&["--set", "model.lora.targets=[\"qkv\"]"][..], "`qkv`"),
        (&["--set", "model.lora.rank=0"][..], "`model.lora.rank`"),
        (
            &["--set", "model.base_dtype=\"bf16\""][..],
            "needs bf16 compute",
        ),
        (
            &["--adapter", "tests/fixtures/lora/qwen2"][..],
            "both `model.lora`",
        ),
    ] {
        let output = lora_train(&dir, extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{extra:?}: `{expected}` not in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `model.base_dtype = "bf16"`: the frozen base is stored in bf16 (half its memory), the
/// adapters stay f32 master weights, and the model computes as bf16 compute does.
#[test]
fn a_bf16_base_halves_the_base_and_keeps_f32_adapters() {
    use zoo::zoo_core::burn::tensor::DType;
    use zoo::zoo_llm::llama::Compute;
    let name = "qwen3";
    let config = LoraConfig {
        rank: 4,
        ..LoraConfig::default()
    };
    let policy = base(name)
        .with_compute(Compute::Bf16)
        .with_lora(&config, 3, true, name)
        .unwrap();
    for (key, t) in policy.all_parameters() {
        let want = if is_adapter(&key) {
            DType::F32
        } else {
            DType::BF16
        };
        assert_eq!(t.value.dtype(), want, "{key}");
    }
    // Fresh adapters change nothing, and a weight stored in bf16 is the weight bf16 compute
    // casts on use: the same logits as the f32 base computing in bf16.
    let sequences = sequences(&expected(name));
    let bf16_compute = flat(&all_logits(
        &base(name).with_compute(Compute::Bf16),
        &sequences,
    ));
    assert_close(
        name,
        &flat(&all_logits(&policy, &sequences)),
        &bf16_compute,
        1e-6,
    );
}
