//! Model shapes without weights: the architectures of published checkpoints by name (for
//! `zoo bench --model qwen2.5-0.5b`), a `config.json` or a model's own config, and policies with
//! random weights of those shapes (speed and memory do not depend on the values).

use std::path::Path;

use rand::Rng;
use serde_json::{Value, json};
use zoo_core::burn::prelude::*;
use zoo_core::{Error, Result, rng};

use crate::config::LlmConfig;
use crate::gguf::{Gguf, GgufTokenizer};
use crate::llama::CausalLm;
use crate::policy::LlmPolicy;
use crate::tokenizer::HfTokenizer;

/// The named shapes: `(name, config.json)`, copied from each checkpoint's `config.json`.
pub fn presets() -> Vec<(&'static str, Value)> {
    let qwen2 = |hidden: usize, inter: usize, layers: usize, heads: usize, kv: usize| {
        json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
            "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 32768, "vocab_size": 151936,
            "tie_word_embeddings": true, "torch_dtype": "bfloat16",
            "bos_token_id": 151643, "eos_token_id": 151645
        })
    };
    vec![
        (
            "smollm2-135m",
            json!({
                "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
                "rope_theta": 100000.0, "max_position_embeddings": 8192, "vocab_size": 49152,
                "tie_word_embeddings": true, "torch_dtype": "bfloat16",
                "bos_token_id": 1, "eos_token_id": 2
            }),
        ),
        ("qwen2.5-0.5b", qwen2(896, 4864, 24, 14, 2)),
        ("qwen2.5-1.5b", qwen2(1536, 8960, 28, 12, 2)),
        ("qwen2.5-7b", {
            let mut json = qwen2(3584, 18944, 28, 28, 4);
            json["vocab_size"] = json!(152064);
            json["tie_word_embeddings"] = json!(false);
            json
        }),
        (
            "qwen3-0.6b",
            json!({
                "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_act": "silu",
                "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
                "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 40960,
                "vocab_size": 151936, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
                "attention_bias": false, "bos_token_id": 151643, "eos_token_id": 151645
            }),
        ),
        (
            "llama3.2-1b",
            json!({
                "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
                "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
                "vocab_size": 128256, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
                "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                "bos_token_id": 128000, "eos_token_id": 128009
            }),
        ),
    ]
}

/// The architecture named by `shape`: a preset name ([`presets`]), a `config.json` file, a
/// Hugging Face model folder or a `.gguf` file (only its config is read, no weights).
pub fn config_of(shape: &str) -> Result<LlmConfig> {
    let presets = presets();
    if let Some((_, json)) = presets.iter().find(|(name, _)| *name == shape) {
        return LlmConfig::from_hf(json).map_err(Error::Config);
    }
    let path = Path::new(shape);
    let (json, file) = if path.is_dir() {
        let file = path.join("config.json");
        (read_json(&file)?, file)
    } else if path.extension().is_some_and(|e| e == "gguf") && path.is_file() {
        (Gguf::open(path)?.hf_config()?, path.to_path_buf())
    } else if path.is_file() {
        (read_json(path)?, path.to_path_buf())
    } else {
        let names: Vec<&str> = presets.iter().map(|(n, _)| *n).collect();
        return Err(Error::Config(format!(
            "`{shape}` is neither a known model shape nor a file or folder\nhint: use one of {}, a config.json, a model folder or a .gguf file",
            names.join(", ")
        )));
    };
    LlmConfig::from_hf(&json).map_err(|reason| Error::BadFile {
        path: file,
        reason: format!("unsupported model: {reason}"),
        hint: "zoo loads LlamaForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM (docs/models.md)"
            .into(),
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs_err::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("not JSON ({e})"),
        hint: "pass a model's config.json".into(),
    })
}

/// A policy of shape `config` with random weights (uniform, the scale of a trained model's:
/// standard deviation 0.02; norms 1) drawn from `seed`, on `device` (autodiff enabled), with a
/// stand-in tokenizer: byte-level ids and a stop token, no chat template (benchmarks feed it
/// token ids).
pub fn random_policy(config: &LlmConfig, seed: u64, device: &Device) -> Result<LlmPolicy> {
    let device = device.clone().autodiff();
    let mut stream = rng::stream(seed, 0, "random-weights");
    let bound = 0.02f32 * 3f32.sqrt();
    let model = CausalLm::build(config, &device, &mut |name, shape| {
        let n: usize = shape.iter().product();
        Ok(if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| stream.random_range(-bound..bound)).collect()
        })
    })?;
    let tokenizer = HfTokenizer::from_gguf(&stand_in_tokenizer(config), config.vocab_size)?;
    Ok(LlmPolicy::new(model, tokenizer, &device))
}

/// A byte-level BPE vocabulary without merges, padded with placeholder tokens to the model's
/// vocabulary, the last id being the end-of-sequence token.
fn stand_in_tokenizer(config: &LlmConfig) -> GgufTokenizer {
    let vocab = config.vocab_size.max(258);
    let mut tokens: Vec<String> = crate::tokenizer::byte_level_alphabet();
    tokens.extend((tokens.len()..vocab - 1).map(|i| format!("<|placeholder_{i}|>")));
    tokens.push("<|endoftext|>".into());
    let mut token_types = vec![1; vocab];
    token_types[vocab - 1] = 3;
    GgufTokenizer {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        tokens,
        token_types,
        merges: Vec::new(),
        bos: None,
        eos: Some(vocab as u32 - 1),
        pad: Some(vocab as u32 - 1),
        unk: None,
        add_bos: false,
        chat_template: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_their_published_parameter_counts() {
        let count = |name: &str| config_of(name).unwrap().num_params();
        assert_eq!(count("qwen2.5-0.5b"), 494_032_768);
        assert_eq!(count("qwen2.5-1.5b"), 1_543_714_304);
        assert_eq!(count("smollm2-135m"), 134_515_008);
        assert_eq!(count("qwen3-0.6b"), 596_049_920);
        assert_eq!(count("llama3.2-1b"), 1_235_814_400);
        let err = config_of("qwen9").unwrap_err().to_string();
        assert!(err.contains("qwen2.5-0.5b"), "{err}");
    }

    #[test]
    fn a_random_policy_of_a_fixture_shape_scores_and_samples() {
        use zoo_core::{Policy, SamplingConfig};
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llm/qwen2");
        let config = config_of(dir.to_str().unwrap()).unwrap();
        let policy = random_policy(&config, 7, &Device::flex()).unwrap();
        let again = random_policy(&config, 7, &Device::flex()).unwrap();
        let contexts = vec![vec![3u32, 4, 5]];
        let responses = vec![vec![6u32, 7]];
        let a = policy.token_logprobs(&contexts, &responses, 1.0, false);
        let b = again.token_logprobs(&contexts, &responses, 1.0, false);
        let (a, b) = (
            a.into_data().try_to_vec::<f32>().unwrap(),
            b.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(a, b, "the same seed gives the same weights");
        assert!(a.iter().all(|x| x.is_finite() && *x < 0.0));
        let samples = policy.sample(
            &contexts,
            &SamplingConfig {
                temperature: 1.0,
                max_new_tokens: 4,
                min_new_tokens: 0,
            },
            &mut rng::stream(0, 0, "t"),
        );
        assert!(!samples[0].tokens.is_empty());
    }
}
