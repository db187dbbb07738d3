//! Real-LLM policies against `transformers`: the tiny random models of each family in
//! `tests/fixtures/llm/` (made by `scripts/make-llm-fixtures.py`) give the logits, greedy ids
//! and log-probs that transformers computed for them.
//!
//! Tolerance: 1e-4 of max(1, |logit|). Both sides compute in f32 with different summation
//! orders through two layers, which agree to a few 1e-6; a wrong op (RoPE convention, a missing
//! bias or norm, a mask off by one) moves logits by 1e-2 or more.

use std::path::{Path, PathBuf};

use serde_json::Value;
use zoo::zoo_core::burn::prelude::*;
use zoo::zoo_core::policy::NamedTensors;
use zoo::zoo_core::{Policy, SamplingConfig, TokenMatrix, rng};
use zoo::zoo_llm::LlmPolicy;
use zoo::zoo_llm::tokenizer::ChatOptions;

pub const FIXTURES: [&str; 4] = ["llama", "llama-tied-llama3", "qwen2", "qwen3"];

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llm")
        .join(name)
}

fn load(name: &str) -> (LlmPolicy, Value) {
    load_on(name, &Device::flex())
}

/// A fixture's policy on `device` and its expected outputs.
pub fn load_on(name: &str, device: &Device) -> (LlmPolicy, Value) {
    let dir = fixture_dir(name);
    let policy = zoo::zoo_llm::source::load(&dir, device, ChatOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    (policy, expected)
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Logits of every position of each sequence, `[len, vocab]` per sequence, computed in one
/// left-padded batch: the context is the first token, the response the rest plus one extra
/// token (whose own logit row is not returned).
/// Whether any parameter of `a` differs from the one of the same name in `b`.
pub fn some_weight_differs(a: &NamedTensors, b: &NamedTensors) -> bool {
    let host = |t: &Tensor<1>| t.clone().into_data().try_into_vec::<f32>().unwrap();
    a.iter()
        .any(|(name, t)| host(&t.value) != host(&b[name].value))
}

pub fn all_logits(policy: &LlmPolicy, sequences: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let contexts: Vec<Vec<u32>> = sequences.iter().map(|s| s[..1].to_vec()).collect();
    let responses: Vec<Vec<u32>> = sequences
        .iter()
        .map(|s| s[1..].iter().copied().chain([0]).collect())
        .collect();
    let logits = policy.token_logits(&contexts, &responses, false);
    let [n, t, v] = logits.dims();
    let flat = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    (0..n)
        .map(|i| {
            (0..sequences[i].len())
                .map(|j| flat[(i * t + j) * v..(i * t + j + 1) * v].to_vec())
                .collect()
        })
        .collect()
}

pub fn assert_close(name: &str, got: &[f32], want: &[f32], tol: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut worst = 0f32;
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(err <= tol, "{name}[{k}]: got {g}, transformers {w}");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn logits_match_transformers_alone_and_in_a_left_padded_batch() {
    for name in FIXTURES {
        let (policy, expected) = load(name);
        let cases = expected["cases"].as_array().unwrap();
        let sequences: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["input_ids"])).collect();
        let batched = all_logits(&policy, &sequences);
        let mut worst = 0f32;
        for (i, case) in cases.iter().enumerate() {
            let alone = all_logits(&policy, std::slice::from_ref(&sequences[i]));
            for (j, row) in case["logits"].as_array().unwrap().iter().enumerate() {
                let want = floats(row);
                worst = worst.max(assert_close(name, &alone[0][j], &want, 1e-4));
                worst = worst.max(assert_close(name, &batched[i][j], &want, 1e-4));
            }
        }
        eprintln!("{name}: worst relative logit difference {worst:.2e}");
    }
}

#[test]
fn chunked_scoring_equals_one_chunk_and_transformers_at_a_temperature() {
    for name in FIXTURES {
        let (policy, expected) = load(name);
        let case = &expected["logprobs_at_temperature"];
        let sequence = ids(&case["input_ids"]);
        let temperature = case["temperature"].as_f64().unwrap() as f32;
        let want = floats(&case["values"]);
        let contexts = vec![sequence[..1].to_vec()];
        let responses = vec![sequence[1..].to_vec()];
        let one = policy.token_logprobs(&contexts, &responses, temperature, false);
        let chunked = LlmPolicy::with_chunk_positions(load(name).0, 1).token_logprobs(
            &contexts,
            &responses,
            temperature,
            false,
        );
        let one = TokenMatrix::from_tensor(one);
        let chunked = TokenMatrix::from_tensor(chunked);
        assert_close(name, &chunked.data, &one.data, 1e-6);
        assert_close(name, &one.data, &want, 1e-4);
    }
}

#[test]
fn greedy_ids_equal_transformers_generate_alone_and_batched() {
    for name in FIXTURES {
        let (policy, expected) = load(name);
        let greedy = expected["greedy"].as_array().unwrap();
        let eos = match &expected["greedy_settings"]["eos_token_id"] {
            Value::Array(_) => ids(&expected["greedy_settings"]["eos_token_id"]),
            v => vec![v.as_u64().unwrap() as u32],
        };
        let mut stop = policy.tokenizer().stop_tokens();
        stop.sort();
        let mut eos_sorted = eos.clone();
        eos_sorted.sort();
        assert_eq!(
            stop, eos_sorted,
            "{name}: stop tokens are generation_config's"
        );
        let prompts: Vec<Vec<u32>> = greedy.iter().map(|g| ids(&g["prompt_ids"])).collect();
        let sampling = SamplingConfig {
            temperature: 0.0,
            max_new_tokens: greedy[0]["max_new_tokens"].as_u64().unwrap() as usize,
            min_new_tokens: 0,
        };
        let batched = policy.sample(&prompts, &sampling, &mut rng::stream(0, 0, "greedy"));
        for (i, g) in greedy.iter().enumerate() {
            let want = ids(&g["output_ids"]);
            let alone = policy.sample(
                std::slice::from_ref(&prompts[i]),
                &sampling,
                &mut rng::stream(0, 0, "greedy"),
            );
            assert_eq!(alone[0].tokens, want, "{name} greedy {i} alone");
            assert_eq!(batched[i].tokens, want, "{name} greedy {i} batched");
            assert_eq!(batched[i].finished, g["hit_eos"].as_bool().unwrap());
        }
    }
}

/// `min_new_tokens` holds the stop tokens off: greedy decoding of a prompt whose transformers
/// output ends early keeps that output's tokens, then continues where it stopped, to exactly
/// the length asked.
#[test]
fn min_new_tokens_holds_off_the_stop_tokens_and_keeps_the_greedy_prefix() {
    for name in ["llama", "qwen2", "qwen3", "llama-tied-llama3"] {
        let (policy, expected) = load(name);
        let stop = policy.tokenizer().stop_tokens();
        let greedy = expected["greedy"].as_array().unwrap();
        let g = greedy.iter().find(|g| g["hit_eos"] == true).unwrap();
        let prompt = ids(&g["prompt_ids"]);
        let want = ids(&g["output_ids"]);
        let length = g["max_new_tokens"].as_u64().unwrap() as usize;
        assert!(want.len() < length, "{name}: the fixture stops early");
        let sampling = SamplingConfig {
            temperature: 0.0,
            max_new_tokens: length,
            min_new_tokens: length,
        };
        let out = policy.sample(&[prompt], &sampling, &mut rng::stream(0, 0, "greedy"));
        let tokens = &out[0].tokens;
        assert_eq!(tokens.len(), length, "{name}");
        assert!(!out[0].finished, "{name}");
        assert!(
            tokens.iter().all(|t| !stop.contains(t)),
            "{name}: {tokens:?}"
        );
        let kept = want.len() - 1; // the last wanted token is the stop token
        assert_eq!(tokens[..kept], want[..kept], "{name}");
    }
}

#[test]
fn sampled_logprobs_equal_teacher_forced_ones_and_rows_are_independent() {
    for name in ["llama", "qwen3"] {
        let (policy, expected) = load(name);
        let prompt = ids(&expected["greedy"][0]["prompt_ids"]);
        let other = ids(&expected["greedy"][1]["prompt_ids"]);
        let prompts = vec![
            prompt.clone(),
            prompt.clone(),
            prompt.clone(),
            other.clone(),
        ];
        for temperature in [1.0f32, 0.7] {
            let sampling = SamplingConfig {
                temperature,
                max_new_tokens: 12,
                min_new_tokens: 0,
            };
            let samples = policy.sample(&prompts, &sampling, &mut rng::stream(4, 0, "s"));
            let responses: Vec<Vec<u32>> = samples.iter().map(|s| s.tokens.clone()).collect();
            assert!(
                responses[0] != responses[1] || responses[1] != responses[2],
                "{name}: a group's samples differ"
            );
            let forced = TokenMatrix::from_tensor(policy.token_logprobs(
                &prompts,
                &responses,
                temperature,
                false,
            ));
            for (i, s) in samples.iter().enumerate() {
                for (t, &lp) in s.logprobs.iter().enumerate() {
                    let f = forced.get(i, t);
                    assert!(
                        (f - lp).abs() <= 1e-4,
                        "{name} row {i} token {t}: {f} vs {lp}"
                    );
                }
                for t in s.tokens.len()..forced.cols {
                    assert_eq!(forced.get(i, t), 0.0, "padding is exactly 0");
                }
            }
            // The same row index and seed give the same sample whatever its neighbours are.
            let alone = policy.sample(
                &[prompt.clone(), other.clone(), other.clone(), other.clone()],
                &sampling,
                &mut rng::stream(4, 0, "s"),
            );
            assert_eq!(
                alone[0], samples[0],
                "{name}: row 0 depends only on its own stream"
            );
            // Another layout: a longer neighbour (more left padding for row 0) in a batch of
            // another size.
            let longer: Vec<u32> = other.iter().chain(&other).copied().collect();
            let relaid = policy.sample(
                &[prompt.clone(), longer.clone(), other.clone()],
                &sampling,
                &mut rng::stream(4, 0, "s"),
            );
            // The draws are the same; the log-probs move only by the layout's float rounding.
            assert_eq!(
                relaid[0].tokens, samples[0].tokens,
                "{name}: row 0's sample does not depend on the batch's layout"
            );
            for (a, b) in relaid[0].logprobs.iter().zip(&samples[0].logprobs) {
                assert!((a - b).abs() <= 1e-5, "{name}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn padded_response_tokens_get_zero_gradient_through_a_real_model() {
    let (policy, _) = load("qwen2");
    let contexts = vec![vec![5u32, 6, 7], vec![8u32]];
    let responses = vec![vec![10u32, 11, 12], vec![13u32]];
    let logprobs = policy.token_logprobs(&contexts, &responses, 1.0, true);
    // Weight only the padded positions of row 1: every gradient must be exactly zero.
    let weights = Tensor::<2>::from_data(
        zoo::zoo_core::burn::tensor::TensorData::new(vec![0.0f32, 0.0, 0.0, 0.0, 5.0, 7.0], [2, 3]),
        &policy.device(),
    );
    let grads = policy.backward(logprobs.mul(weights).sum());
    for (name, g) in &grads {
        assert_eq!(
            g.value.clone().abs().max().into_scalar::<f32>(),
            0.0,
            "{name}"
        );
    }
    // And a real position does reach the weights, the embedding included.
    let logprobs = policy.token_logprobs(&contexts, &responses, 1.0, true);
    let grads = policy.backward(logprobs.sum());
    let embed = &grads["model.embed_tokens.weight"];
    assert!(embed.value.clone().abs().max().into_scalar::<f32>() > 0.0);
    assert!(grads.contains_key("model.layers.1.self_attn.q_proj.bias"));
}

#[test]
fn a_checkpoint_folder_is_a_model_folder_that_loads_back_exactly() {
    for name in ["llama-tied-llama3", "qwen2"] {
        let (policy, expected) = load(name);
        let dir =
            std::env::temp_dir().join(format!("zoo-it-llm-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        zoo::zoo_core::checkpoint::save_safetensors(
            &dir.join("model.safetensors"),
            &policy.parameters(),
            &policy.metadata(),
        )
        .unwrap();
        policy.write_model_files(&dir).unwrap();
        let reloaded = zoo::zoo_llm::source::load(&dir, &Device::flex(), ChatOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let sequence = ids(&expected["cases"][1]["input_ids"]);
        let a = all_logits(&policy, std::slice::from_ref(&sequence));
        let b = all_logits(&reloaded, std::slice::from_ref(&sequence));
        assert_eq!(a, b, "{name}: same weights, same logits");
        let text = "What is 12+34?";
        assert_eq!(
            policy.tokenizer().encode_prompt(text).unwrap(),
            reloaded.tokenizer().encode_prompt(text).unwrap(),
            "{name}: same chat template and tokenizer"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn prompts_longer_than_the_context_are_refused_with_the_fix() {
    let (policy, _) = load("llama");
    let max = policy.max_context().unwrap();
    let err = zoo::zoo_core::policy::check_context(&policy, max - 4, 8)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exceeds the model's context") && err.contains("hint:"),
        "{err}"
    );
    assert!(zoo::zoo_core::policy::check_context(&policy, max - 8, 8).is_ok());
}

/// The real SmolLM2-135M-Instruct GGUF, fetched by `scripts/fetch-smollm2.sh` (CI's LLM stage
/// runs these tests with `--ignored`).
fn smollm2() -> PathBuf {
    let path = std::env::var_os("ZOO_SMOLLM2_GGUF").expect(
        "ZOO_SMOLLM2_GGUF is not set: run `export ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)`",
    );
    PathBuf::from(path)
}

#[test]
#[ignore = "needs SmolLM2: export ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)"]
fn smollm2_answers_paris_and_scores_a_sentence_within_its_recorded_nll() {
    let model = smollm2();
    let cache = std::env::temp_dir().join(format!("zoo-it-smol-{}", std::process::id()));
    let model_arg = model.to_str().unwrap();
    let output = crate::run(
        &cache,
        &[
            "generate",
            "--model",
            model_arg,
            "--prompt",
            "What is the capital of France?",
            "--max-new-tokens",
            "30",
        ],
    );
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("Paris"), "greedy answer: {text}");

    // transformers 5.24 (GGUF dequantized to f32) gives a mean NLL of 1.00685 nats on this
    // continuation; zoo gave 1.00685 (max |Δ log-prob| 1.7e-5 per token).
    let policy =
        zoo::zoo_llm::source::load(&model, &Device::flex(), ChatOptions::default()).unwrap();
    let tokenizer = policy.tokenizer();
    let context = tokenizer.encode("The capital of France is").unwrap();
    let response = tokenizer
        .encode(" Paris. It is known for the Eiffel Tower, which was built in 1889.")
        .unwrap();
    assert_eq!(response.len(), 21);
    let lp = TokenMatrix::from_tensor(policy.token_logprobs(&[context], &[response], 1.0, false));
    let nll = -lp.data.iter().sum::<f32>() / 21.0;
    assert!((nll - 1.00685).abs() < 2e-4, "mean NLL {nll}");
}

#[test]
#[ignore = "needs SmolLM2: export ZOO_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)"]
fn smollm2_sampled_logprobs_equal_zoo_score() {
    let model = smollm2();
    let cache = std::env::temp_dir().join(format!("zoo-it-smol-score-{}", std::process::id()));
    let model_arg = model.to_str().unwrap();
    let args = [
        "generate",
        "--model",
        model_arg,
        "--prompt",
        "Name three colors.",
        "--max-new-tokens",
        "24",
        "--temperature",
        "0.8",
        "--seed",
        "5",
        "--json",
    ];
    let output = crate::run(&cache, &args);
    assert!(output.status.success());
    let sample: Value = serde_json::from_slice(&output.stdout).unwrap();
    let input = cache.join("pairs.jsonl");
    std::fs::create_dir_all(&cache).unwrap();
    let line = serde_json::json!({
        "context_ids": sample["context_ids"],
        "response_ids": sample["response_ids"],
    });
    std::fs::write(&input, format!("{line}\n")).unwrap();
    let output = crate::run(
        &cache,
        &[
            "score",
            "--model",
            model_arg,
            "--input",
            input.to_str().unwrap(),
            "--temperature",
            "0.8",
        ],
    );
    assert!(output.status.success());
    let scored: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(scored["response_ids"], sample["response_ids"]);
    let a = floats(&scored["logprobs"]);
    let b = floats(&sample["logprobs"]);
    assert_eq!(a.len(), b.len());
    for (t, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() < 1e-4, "token {t}: score {x}, sampling {y}");
    }
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A fresh folder for a CLI test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zoo-it-llm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn data_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// `zoo train --algo algo` for 2 steps of 2 prompts on the easy additions with the qwen2
/// fixture into `out`, with `sets` added as `--set` values.
fn train_fixture(dir: &Path, out: &Path, algo: &str, sets: &[&str]) -> std::process::Output {
    let data = |key: &str, file: &str| format!("data.{key}=[{:?}]", data_root().join(file));
    let mut owned = vec![
        data("train", "add-easy-train.jsonl"),
        data("eval", "add-easy-eval.jsonl"),
        "data.max_new_tokens=8".into(),
        "rollout.prompts_per_step=2".into(),
        "eval.problems=2".into(),
    ];
    owned.extend(sets.iter().map(|s| s.to_string()));
    let model = fixture_dir("qwen2");
    let mut args = vec![
        "train", "--quiet", "--algo", algo, "--task", "jsonl", "--steps", "2",
    ];
    for set in &owned {
        args.extend(["--set", set.as_str()]);
    }
    args.extend([
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    crate::run(dir, &args)
}

#[test]
fn train_with_a_real_model_writes_checkpoints_that_are_model_folders() {
    let dir = scratch("train");
    let model = fixture_dir("qwen2");
    let train = format!(
        "data.train=[{:?}]",
        data_root().join("add-easy-train.jsonl")
    );
    let heldout = format!("data.eval=[{:?}]", data_root().join("add-easy-eval.jsonl"));
    let out = dir.join("run");
    let mut args = vec![
        "train",
        "--quiet",
        "--algo",
        "cepo",
        "--task",
        "jsonl",
        "--steps",
        "2",
        "--set",
        &train,
        "--set",
        &heldout,
        "--set",
        "data.max_new_tokens=12",
        "--set",
        "rollout.prompts_per_step=2",
        "--set",
        "rollout.group_size=4",
        "--set",
        "eval.problems=4",
        "--set",
        "checkpoint_every=1",
    ];
    let model_arg = model.to_str().unwrap();
    args.extend(["--model", model_arg, "--out", out.to_str().unwrap()]);
    // The dry run shows the references' defaults for a real model (CEPO's lr 5e-6, from its
    // `cepo.sh`), and a `--set` still wins.
    let mut dry = args.clone();
    dry.extend(["--dry-run", "--set", "update.micro_batch_size=2"]);
    let output = crate::run(&dir, &dry);
    assert!(output.status.success());
    let config = String::from_utf8(output.stdout).unwrap();
    assert!(config.contains("lr = 0.000005"), "{config}");
    assert!(
        config.contains("run defaults (its reference's; your settings win): optim.lr = 0.000005"),
        "{config}"
    );
    assert!(config.contains("micro_batch_size = 2"), "{config}");
    assert!(config.contains("micro_batch_tokens = 4096"), "{config}");
    // The memory estimate follows as comments: the printed file still reads back as TOML.
    assert!(
        config.contains("# Memory estimate (115264 parameters, every one trained; f32 compute"),
        "{config}"
    );
    assert!(config.contains("#   peak"), "{config}");
    assert!(toml::from_str::<toml::Table>(&config).is_ok());
    assert!(
        config.contains(&format!("source = {model_arg:?}")),
        "{config}"
    );

    // λ decays to 0 after one step: step 2 scores no teacher row. (With a random model every
    // reward here is 0; `cepo_on_a_real_model_scores_the_rows_whose_advantage_moves` checks
    // the scored rows with mixed rewards.)
    let mut cepo = args.clone();
    cepo.extend([
        "--set",
        "objective.decay_steps=1",
        "--set",
        "log.rollouts=true",
    ]);
    let output = crate::run(&dir, &cepo);
    assert!(output.status.success());
    // The dump's gold-answer contexts are CEPO's reference splice: the rendered prompt (ending
    // with the assistant header), then `" " + answer` tokenized alone.
    let tokenizer = zoo::zoo_llm::HfTokenizer::from_dir(
        &model,
        &serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap())
            .unwrap(),
        320,
    )
    .unwrap();
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let dump = std::fs::read_to_string(out.join("rollouts/step-000001.jsonl")).unwrap();
    let mut spliced = 0;
    for line in dump.lines() {
        let line: Value = serde_json::from_str(line).unwrap();
        let prompt = ids(&line["context_ids"]);
        assert_eq!(
            prompt,
            zoo::zoo_core::policy::Tokenizer::encode_prompt(
                &tokenizer,
                line["prompt"].as_str().unwrap()
            )
            .unwrap()
        );
        for teacher in line["teachers"].as_array().unwrap() {
            let hint = teacher["hint"].as_str().unwrap();
            let answer =
                zoo::zoo_core::policy::Tokenizer::encode(&tokenizer, &format!(" {hint}")).unwrap();
            assert_eq!(
                ids(&teacher["context_ids"]),
                [prompt.clone(), answer].concat()
            );
            spliced += 1;
        }
    }
    assert!(spliced > 0, "the dump holds CEPO's gold-answer contexts");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    assert!(
        metrics.contains("cepo/"),
        "CEPO's teacher passes ran through the chat template"
    );
    let steps: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps[1]["teacher/scored_frac"], 0.0);
    let step = out.join("checkpoints/step-000002");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(step.join(file).is_file(), "{file}");
    }
    // The checkpoint is a model folder that `--model` reads; with a random model every
    // reward is 0 and CEPO's update is 0, so the distillation objective OPSD (whose teacher
    // reads the data set's reference solution) shows that the weights do train.
    let opsd_out = dir.join("opsd");
    let mut opsd = args.clone();
    let algo = opsd.iter().position(|a| *a == "cepo").unwrap();
    opsd[algo] = "opsd";
    let at = opsd
        .iter()
        .position(|a| *a == out.to_str().unwrap())
        .unwrap();
    opsd[at] = opsd_out.to_str().unwrap();
    assert!(crate::run(&dir, &opsd).status.success());
    let trained = zoo::zoo_llm::source::load(
        &opsd_out.join("checkpoints/step-000002"),
        &Device::flex(),
        ChatOptions::default(),
    )
    .unwrap();
    let changed = some_weight_differs(&trained.parameters(), &load("qwen2").0.parameters());
    assert!(changed, "two OPSD steps changed the weights");
    let output = crate::run(
        &dir,
        &[
            "eval",
            "--model",
            step.to_str().unwrap(),
            "--task",
            "jsonl",
            "--set",
            &heldout,
            "--problems",
            "3",
            "--max-new-tokens",
            "8",
        ],
    );
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["problems"], 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn score_gives_transformers_logprobs_for_ids_and_the_same_for_the_same_tokens_as_text() {
    let dir = scratch("score");
    let (policy, expected) = load("llama");
    let case = &expected["logprobs_at_temperature"];
    let sequence = ids(&case["input_ids"]);
    let prompt = "What is 12 + 7?";
    let response = "12 + 7 = 19";
    let context_ids = policy.tokenizer().encode_prompt(prompt).unwrap();
    let response_ids = policy.tokenizer().encode(response).unwrap();
    let lines = [
        serde_json::json!({"context_ids": &sequence[..1], "response_ids": &sequence[1..]}),
        serde_json::json!({"prompt": prompt, "response": response}),
        serde_json::json!({"context_ids": context_ids, "response_ids": response_ids}),
    ];
    let input = dir.join("pairs.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let model = fixture_dir("llama");
    let args = [
        "score",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--temperature",
        "0.7",
    ];
    let output = crate::run(&dir, &args);
    assert!(output.status.success());
    let out: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), 3);
    assert_close(
        "score",
        &floats(&out[0]["logprobs"]),
        &floats(&case["values"]),
        1e-4,
    );
    assert_eq!(out[1], out[2], "text and its ids score the same");
    assert_eq!(
        ids(&out[1]["context_ids"]),
        context_ids,
        "the prompt went through the chat template"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_models_and_prompts_get_errors_that_name_the_problem() {
    let dir = scratch("bad");
    let model = fixture_dir("llama");
    let generate = |model: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Hi",
        ];
        args.extend_from_slice(extra);
        let output = crate::run(&dir, &args);
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    // A folder without weights.
    let empty = dir.join("no-weights");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(model.join("config.json"), empty.join("config.json")).unwrap();
    let err = generate(&empty, &[]);
    assert!(err.contains("no weights") && err.contains("hint:"), "{err}");
    // A folder that is not a model.
    let err = generate(&dir, &[]);
    assert!(err.contains("no `config.json`"), "{err}");
    // An unsupported architecture, named by key.
    let mistral = dir.join("mistral");
    std::fs::create_dir_all(&mistral).unwrap();
    for file in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(model.join(file), mistral.join(file)).unwrap();
    }
    let config = std::fs::read_to_string(model.join("config.json"))
        .unwrap()
        .replace("LlamaForCausalLM", "MistralForCausalLM");
    std::fs::write(mistral.join("config.json"), config).unwrap();
    let err = generate(&mistral, &[]);
    assert!(
        err.contains("`architectures`") && err.contains("MistralForCausalLM"),
        "{err}"
    );
    // A truncated weights file.
    let truncated = dir.join("truncated");
    std::fs::create_dir_all(&truncated).unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(model.join(file), truncated.join(file)).unwrap();
    }
    let bytes = std::fs::read(model.join("model.safetensors")).unwrap();
    std::fs::write(
        truncated.join("model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = generate(&truncated, &[]);
    assert!(err.contains("truncated"), "{err}");
    // A response cap past the model's context (128 positions).
    let err = generate(&model, &["--max-new-tokens", "200"]);
    assert!(
        err.contains("exceeds the model's context of 128 tokens"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn supervised_warm_start_lowers_the_loss_of_a_real_model() {
    use zoo::zoo_core::optim::OptimConfig;
    use zoo::zoo_core::sft::{SftConfig, run};
    use zoo::zoo_verifiers::dataset::{JsonlConfig, JsonlTask};
    zoo::link_all();
    let task = JsonlTask::open(JsonlConfig {
        train: vec![data_root().join("add-easy-train.jsonl")],
        eval: vec![],
        template: "{problem}".into(),
        verifier: "math".into(),
        max_new_tokens: 16,
    })
    .unwrap();
    let (mut policy, _) = load("llama");
    let config = SftConfig {
        steps: 12,
        batch_size: 8,
        optim: OptimConfig {
            lr: 3e-3,
            ..OptimConfig::default()
        },
    };
    let mut losses = Vec::new();
    run(&mut policy, &task, &config, 0, &mut |s| losses.push(s.loss)).unwrap();
    let first = losses[..3].iter().sum::<f64>() / 3.0;
    let last = losses[losses.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(last < 0.8 * first, "SFT loss {first:.3} -> {last:.3}");
}

#[test]
fn a_resumed_real_model_run_matches_the_uninterrupted_run() {
    let dir = scratch("resume");
    let model = fixture_dir("qwen2");
    let train = format!(
        "data.train=[{:?}]",
        data_root().join("add-easy-train.jsonl")
    );
    let heldout = format!("data.eval=[{:?}]", data_root().join("add-easy-eval.jsonl"));
    let run = |out: &Path, resume: bool| {
        let mut args = vec![
            "train",
            "--quiet",
            "--algo",
            "opsd",
            "--task",
            "jsonl",
            "--steps",
            "4",
            "--set",
            &train,
            "--set",
            &heldout,
            "--set",
            "data.max_new_tokens=10",
            "--set",
            "rollout.prompts_per_step=2",
            "--set",
            "rollout.group_size=2",
            "--set",
            "eval.problems=3",
            "--set",
            "checkpoint_every=1",
            "--set",
            "checkpoint_keep=2",
            // Micro-batches by a token budget and a head in chunks of 5 positions.
            "--set",
            "update.micro_batch_tokens=40",
            "--set",
            "model.chunk_positions=5",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        assert!(crate::run(&dir, &args).status.success());
    };
    let (whole, split) = (dir.join("whole"), dir.join("split"));
    run(&whole, false);
    run(&split, false);
    // `checkpoint_keep = 2`: steps 3 and 4 are left.
    let mut kept: Vec<String> = std::fs::read_dir(split.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    kept.sort();
    // The frozen initial policy (OPSD's teacher) is written once, beside the step folders.
    assert_eq!(
        kept,
        ["initial_policy.safetensors", "step-000003", "step-000004"]
    );
    // Interrupted after step 3's checkpoint: the later one never reached the disk.
    std::fs::remove_dir_all(split.join("checkpoints/step-000004")).unwrap();
    run(&split, true);
    let (a, b) = (
        crate::resume::metrics(&whole),
        crate::resume::metrics(&split),
    );
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "the resumed run rewrote step 4 identically");
    let weights =
        |out: &Path| std::fs::read(out.join("checkpoints/step-000004/model.safetensors")).unwrap();
    assert!(
        weights(&whole) == weights(&split),
        "the same final weights, bit for bit"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Measured on flex (`check_bf16_compute` prints them), the tests allow twice each: the largest
/// difference between zoo's bf16 logits and transformers' bf16 logits (two bf16 computations
/// differ in their rounding about as much as bf16 differs from f32 here: 8e-2, 1.8e-1, 8.6e-2
/// for transformers), zoo's bf16 log-probs against its f32 ones (relative), and its bf16
/// gradient against its f32 one (relative L2).
const BF16_MEASURED: [(&str, [f32; 3]); 3] = [
    ("qwen2", [6.64e-2, 4.14e-3, 2.06e-2]),
    ("llama-tied-llama3", [7.81e-2, 5.54e-3, 2.26e-2]),
    ("qwen3", [7.58e-2, 5.55e-3, 1.58e-2]),
];

/// bf16 compute with f32 master weights (`model.dtype = "bf16"`): activations and the KV cache
/// in bf16, logits, log-probs and gradients in f32, values within bf16's precision of f32's.
pub fn check_bf16_compute(device: &Device) {
    use zoo::zoo_core::burn::tensor::DType;
    use zoo::zoo_llm::llama::Compute;
    for name in ["qwen2", "llama-tied-llama3", "qwen3"] {
        let (f32_policy, _) = load_on(name, device);
        let (policy, _) = load_on(name, device);
        let policy = policy.with_compute(Compute::Bf16);
        // Against transformers in bf16 (`scripts/make-bf16-fixtures.py`): the logits of zoo's
        // bf16 compute are as close to transformers' bf16 logits as measured (within 2x), and
        // much closer to them than bf16 is to f32.
        let fixture: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir(name).join("expected_bf16.json")).unwrap(),
        )
        .unwrap();
        let sequences = fixture["sequences"].as_array().unwrap();
        let ids_of: Vec<Vec<u32>> = sequences.iter().map(|s| ids(&s["ids"])).collect();
        let zoo_logits = all_logits(&policy, &ids_of);
        let (mut to_bf16, mut bf16_to_f32) = (0f32, 0f32);
        for (k, sequence) in sequences.iter().enumerate() {
            for (t, row) in zoo_logits[k].iter().enumerate() {
                let want = floats(&sequence["bf16"][t]);
                let f32_row = floats(&sequence["f32"][t]);
                for ((z, w), f) in row.iter().zip(&want).zip(&f32_row) {
                    to_bf16 = to_bf16.max((z - w).abs());
                    bf16_to_f32 = bf16_to_f32.max((w - f).abs());
                }
            }
        }
        eprintln!(
            "{name}: bf16 logits vs transformers' bf16, largest difference {to_bf16:.2e} (transformers' bf16 vs f32: {bf16_to_f32:.2e})"
        );
        let measured = BF16_MEASURED.iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(
            to_bf16 <= 2.0 * measured[0],
            "{name}: {to_bf16} > 2 x {}",
            measured[0]
        );
        let contexts = vec![vec![5u32, 6, 7, 8], vec![9u32]];
        let responses = vec![vec![10u32, 11, 12, 13, 14], vec![15u32, 16]];
        let hidden = policy.response_hidden(&contexts, &responses, false);
        assert_eq!(hidden.dtype(), DType::BF16, "{name}: activations in bf16");
        let logits = policy.head(hidden, false);
        assert_eq!(logits.dtype(), DType::F32, "{name}: logits in f32");
        let want = f32_policy.token_logprobs(&contexts, &responses, 1.0, false);
        let got = policy.token_logprobs(&contexts, &responses, 1.0, false);
        assert_eq!(got.dtype(), DType::F32);
        let (want, got) = (
            want.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
            got.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap(),
        );
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
            .fold(0f32, f32::max);
        // Passes without a graph read a copy whose weights were cast to bf16 once; with a graph
        // they are cast at each use: the same bf16 values, so the same log-probs.
        let with_graph = policy
            .token_logprobs(&contexts, &responses, 1.0, true)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        for (a, b) in with_graph.iter().zip(&got) {
            assert!(
                (a - b).abs() <= 1e-6,
                "{name}: {a} with a graph, {b} without"
            );
        }
        // bf16 keeps 8 significant bits (relative steps of 2^-8 ≈ 4e-3): the log-probs move by
        // about that, not by 1e-6 (f32 computing) nor by 1e-1 (a wrong op).
        eprintln!("{name}: bf16 vs f32 log-probs, worst relative difference {worst:.2e}");
        assert!(
            worst > 1e-5 && worst <= 2.0 * measured[1],
            "{name}: worst {worst} (measured {})",
            measured[1]
        );
        // Gradients reach the f32 master weights in f32, within bf16's precision of f32's.
        let logprobs = policy.token_logprobs(&contexts, &responses, 1.0, true);
        let grads = policy.backward(logprobs.sum());
        let reference = f32_policy.backward(
            f32_policy
                .token_logprobs(&contexts, &responses, 1.0, true)
                .sum(),
        );
        let (mut diff, mut norm) = (0f64, 0f64);
        for (param, g) in &grads {
            assert_eq!(g.value.dtype(), DType::F32, "{name}: {param}");
            let a = g.value.clone().into_data().try_into_vec::<f32>().unwrap();
            let b = reference[param]
                .value
                .clone()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            for (x, y) in a.iter().zip(&b) {
                diff += ((x - y) as f64).powi(2);
                norm += (*y as f64).powi(2);
            }
        }
        let relative = (diff / norm).sqrt();
        eprintln!("{name}: bf16 vs f32 gradient, relative L2 difference {relative:.2e}");
        assert!(
            relative <= 2.0 * f64::from(measured[2]),
            "{name}: {relative} (measured {})",
            measured[2]
        );
        let params = policy.parameters();
        assert!(params.values().all(|p| p.value.dtype() == DType::F32));
        // Sampling runs with a bf16 cache and gives f32 log-probs of the f32 head.
        let samples = policy.sample(
            &contexts,
            &SamplingConfig {
                temperature: 1.0,
                max_new_tokens: 4,
                min_new_tokens: 0,
            },
            &mut rng::stream(3, 0, "bf16"),
        );
        assert!(
            samples
                .iter()
                .all(|s| s.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0))
        );
    }
}

#[test]
fn bf16_compute_keeps_f32_weights_logits_and_gradients_on_flex() {
    check_bf16_compute(&Device::flex());
}

#[test]
fn a_bf16_recomputing_run_trains_and_the_tiny_model_refuses_bf16() {
    let dir = scratch("bf16");
    let out = dir.join("run");
    let output = train_fixture(
        &dir,
        &out,
        // OPSD: a distillation loss on every row, whatever the (random) model's rewards.
        "opsd",
        // bf16 compute and layer-by-layer recomputation together.
        &[
            "rollout.group_size=2",
            "model.dtype=\"bf16\"",
            "model.recompute=true",
        ],
    );
    assert!(output.status.success());
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    for line in metrics.lines() {
        let m: Value = serde_json::from_str(line).unwrap();
        assert!(m["actor/loss"].as_f64().unwrap() > 0.0, "{m}");
        assert_eq!(m["actor/skipped_updates"], 0.0);
        // The bf16 sampler and the bf16 scoring of the update agree (measured: up to about
        // 0.03 on this fixture; f32 agrees to 1e-6).
        let diff = m["rollout/logprob_diff_max"].as_f64().unwrap();
        assert!(diff < 0.1, "sampling and scoring disagree in bf16: {diff}");
    }
    // The checkpoint holds f32 weights, as the optimizer keeps them.
    let trained = zoo::zoo_llm::source::load(
        &out.join("checkpoints/step-000002"),
        &Device::flex(),
        ChatOptions::default(),
    )
    .unwrap();
    assert!(
        trained
            .parameters()
            .values()
            .all(|p| p.value.dtype() == zoo::zoo_core::burn::tensor::DType::F32)
    );
    // And they trained: the f32 master weights moved from the base's.
    assert!(some_weight_differs(
        &trained.parameters(),
        &load("qwen2").0.parameters()
    ));
    let output = crate::run(
        &dir,
        &[
            "train",
            "--algo",
            "grpo",
            "--dry-run",
            "--set",
            "model.dtype=\"bf16\"",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tiny decoder computes in f32"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scoring_groups_through_one_context_pass_equals_scoring_each_row() {
    for name in FIXTURES {
        let (policy, _) = load(name);
        // Three prompts of different lengths, three responses each (one empty, one of a single
        // token), listed out of order.
        let prompts = [vec![5u32, 6, 7, 8, 9], vec![11u32], vec![12u32, 13, 14]];
        let order = [0, 1, 2, 0, 1, 2, 2, 0, 1];
        let contexts: Vec<Vec<u32>> = order.iter().map(|&p| prompts[p].clone()).collect();
        let responses: Vec<Vec<u32>> = (0..9)
            .map(|i| (0..(i * 5) % 7).map(|k| (20 + 3 * i + k) as u32).collect())
            .collect();
        // With a graph each row runs through the whole model; without one the shared contexts
        // run once into a KV cache.
        let each = policy
            .token_logprobs(&contexts, &responses, 0.9, true)
            .detach();
        let shared = policy.token_logprobs(&contexts, &responses, 0.9, false);
        let (each, shared) = (
            TokenMatrix::from_tensor(each),
            TokenMatrix::from_tensor(shared),
        );
        assert_eq!((each.rows, each.cols), (shared.rows, shared.cols));
        assert_close(name, &shared.data, &each.data, 1e-5);
        assert!(each.data.iter().any(|&x| x != 0.0));
    }
}

/// A teacher context longer than the model's window is an error naming the pass and the
/// lengths (issue 22, item 5): here OPSD's teacher reads a reference solution that, with the
/// template, overflows the qwen2 fixture's 512 positions while the student's prompt fits.
#[test]
fn a_teacher_context_past_the_context_window_is_refused_by_pass() {
    let dir = scratch("teacher-length");
    let long = "1 + 1 = 2. ".repeat(100);
    let line = serde_json::json!({"problem": "What is 1 + 1?", "answer": "2", "solution": long});
    let data = dir.join("long.jsonl");
    std::fs::write(&data, format!("{line}\n")).unwrap();
    let out = dir.join("run");
    let output = train_fixture(
        &dir,
        &out,
        "opsd",
        &[
            &format!("data.train=[{data:?}]"),
            &format!("data.eval=[{data:?}]"),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a teacher context of pass `reference-solution` (")
            && stderr.contains("exceeds the model's context of 512 tokens"),
        "{stderr}"
    );
}

/// A task a random model passes about half the time: a response is right iff its text has an
/// even number of bytes, and its "answer" is the text itself.
struct EvenLength {
    problems: Vec<zoo::zoo_core::Problem>,
}

struct EvenLengthVerifier;

impl zoo::zoo_core::Verifier for EvenLengthVerifier {
    fn name(&self) -> &str {
        "even-length"
    }
    fn verify(&self, response: &str, _: &zoo::zoo_core::Problem) -> zoo::zoo_core::Verdict {
        let correct = response.len().is_multiple_of(2);
        let answer = response.trim();
        zoo::zoo_core::Verdict {
            score: f32::from(u8::from(correct)),
            correct,
            extracted: (!answer.is_empty()).then(|| answer.to_string()),
            parsed: !answer.is_empty(),
            reason: String::new(),
        }
    }
}

impl zoo::zoo_core::Task for EvenLength {
    fn name(&self) -> &str {
        "even-length"
    }
    fn sample_problems(
        &self,
        rng: &mut rand_chacha::ChaCha8Rng,
        n: usize,
    ) -> Vec<zoo::zoo_core::Problem> {
        use rand::Rng;
        (0..n)
            .map(|_| self.problems[rng.random_range(0..self.problems.len())].clone())
            .collect()
    }
    fn heldout(&self) -> &[zoo::zoo_core::Problem] {
        &self.problems
    }
    fn verifier(&self) -> &dyn zoo::zoo_core::Verifier {
        &EvenLengthVerifier
    }
    fn sft_example(&self, _: &mut rand_chacha::ChaCha8Rng) -> zoo::zoo_core::task::SftExample {
        unreachable!("real models are not warm-started")
    }
    fn max_new_tokens(&self) -> usize {
        6
    }
}

/// Issue 22, item 1: CEPO on a real model (the qwen2 fixture, through its chat template) with
/// mixed rewards scores exactly the rows whose advantage is not 0, in both passes, and no row
/// once λ = 0.
#[test]
fn cepo_on_a_real_model_scores_the_rows_whose_advantage_moves() {
    use zoo::zoo_core::ObjectiveConfig;
    use zoo::zoo_core::objective::BuildContext;
    use zoo::zoo_core::trainer::{RolloutConfig, Trainer, TrainerConfig};
    zoo::link_all();
    let problem = |q: &str| zoo::zoo_core::Problem {
        prompt: q.into(),
        question: q.into(),
        answer: "even".into(),
        solution: String::new(),
    };
    let task = EvenLength {
        problems: vec![problem("Say something."), problem("Write a word.")],
    };
    let objective = zoo_cepo::CepoConfig {
        decay_steps: 2,
        ..Default::default()
    }
    .build(&BuildContext {
        max_new_tokens: 6,
        group_size: 6,
        steps: 3,
        temperature: 1.0,
        evaluation: false,
    })
    .unwrap();
    let config = TrainerConfig {
        rollout: RolloutConfig {
            prompts_per_step: 4,
            group_size: 6,
            temperature: 1.0,
            max_new_tokens: 6,
        },
        ..TrainerConfig::default()
    };
    let (policy, _) = load("qwen2");
    let mut trainer = Trainer::new(config, 7, 3, Box::new(policy), objective, &task).unwrap();
    let dumps = scratch("cepo-mixed");
    trainer.set_rollout_dir(Some(dumps.clone()));
    for step in 1..=3 {
        let m = trainer.step(step).unwrap();
        let reward = m["reward/mean"];
        assert!(
            reward > 0.0 && reward < 1.0,
            "step {step}: rewards are mixed ({reward})"
        );
        let file = zoo::zoo_core::trainer::dumps::step_file(&dumps, step);
        let lines: Vec<Value> = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // A row is scored (in both passes) iff its advantage is not 0 and its group has a wrong
        // answer for the negative teacher, while λ > 0.
        let (mut scored, mut moving) = (0, 0);
        for line in &lines {
            let passes = line["teachers"].as_array().unwrap();
            let contrast = lines.iter().any(|other| {
                other["group"] == line["group"]
                    && other["teachers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|t| t["pass"] == "wrong-answer")
            });
            let moves = line["advantage"].as_f64().unwrap() != 0.0;
            moving += usize::from(moves && contrast);
            for teacher in passes {
                let expected = step <= 2 && moves && contrast;
                assert_eq!(
                    teacher["scored"].as_bool(),
                    Some(expected),
                    "step {step}: {line}"
                );
                scored += usize::from(expected);
            }
        }
        assert_eq!(
            m["teacher/scored_frac"],
            scored as f64 / (2 * lines.len()) as f64
        );
        if step <= 2 {
            assert!(moving > 0, "step {step}: some row has a contrast to score");
            assert!(
                m["cepo/delta_abs_mean"] > 0.0,
                "step {step}: the teachers differ"
            );
        } else {
            assert_eq!(m["teacher/scored_frac"], 0.0, "λ = 0 at step 3");
        }
    }
}
