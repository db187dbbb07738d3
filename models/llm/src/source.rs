//! `--model DIR_OR_GGUF`: a Hugging Face folder or a GGUF file to an [`LlmPolicy`].

use std::path::Path;

use zoo_core::burn::prelude::*;
use zoo_core::{Error, Result};

use crate::config::LlmConfig;
use crate::gguf::Gguf;
use crate::llama::CausalLm;
use crate::policy::LlmPolicy;
use crate::tokenizer::{ChatOptions, HfTokenizer};
use crate::weights::{SafetensorsDir, WeightSource};

/// Loads the model at `path` (a Hugging Face folder or a `.gguf` file) as a trainable policy on
/// `device` (autodiff is enabled here), with `chat` options for its chat template.
pub fn load(path: &Path, device: &Device, chat: ChatOptions) -> Result<LlmPolicy> {
    let device = device.clone().autodiff();
    let (model, mut tokenizer) = if path.is_dir() {
        let config_path = path.join("config.json");
        if !config_path.exists() {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: "no `config.json`: this is not a Hugging Face model folder".into(),
                hint: "pass a folder with config.json, model.safetensors (or its shards) and tokenizer.json, or a `.gguf` file".into(),
            });
        }
        let text =
            fs_err::read_to_string(&config_path).map_err(|e| Error::io("read", &config_path, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: config_path.clone(),
            reason: format!("not JSON ({e})"),
            hint: "download the file again".into(),
        })?;
        let config = supported(&json, &config_path)?;
        let weights = SafetensorsDir::open(path)?;
        let model = build(&config, &weights, path, &device)?;
        (
            model,
            HfTokenizer::from_dir(path, &json, config.vocab_size)?,
        )
    } else if path.is_file() {
        let gguf = Gguf::open(path)?;
        let json = gguf.hf_config()?;
        let config = supported(&json, path)?;
        let model = build(&config, &gguf, path, &device)?;
        (
            model,
            HfTokenizer::from_gguf(&gguf.tokenizer()?, config.vocab_size)?,
        )
    } else {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            reason: "no such file or folder".into(),
            hint: "pass a Hugging Face model folder or a `.gguf` file (`scripts/fetch-smollm2.sh` fetches SmolLM2-135M-Instruct)".into(),
        });
    };
    tokenizer.set_chat_options(chat);
    Ok(LlmPolicy::new(model, tokenizer, &device))
}

/// The architecture of `json` (a `config.json`, or its equivalent read from the GGUF file at
/// `path`), or the error naming the unsupported key.
fn supported(json: &serde_json::Value, path: &Path) -> Result<LlmConfig> {
    LlmConfig::from_hf(json).map_err(|reason| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("unsupported model: {reason}"),
        hint: "zoo loads LlamaForCausalLM (SmolLM2, Llama-3.x), Qwen2ForCausalLM and Qwen3ForCausalLM (docs/models.md)".into(),
    })
}

fn build(
    config: &LlmConfig,
    source: &dyn WeightSource,
    path: &Path,
    device: &Device,
) -> Result<CausalLm> {
    crate::llama::check_names(config, source).map_err(|reason| Error::BadFile {
        path: path.to_path_buf(),
        reason: format!("the weights do not match the config: {reason}"),
        hint: "config.json and the weights must come from the same checkpoint".into(),
    })?;
    CausalLm::build(config, device, &mut |name, _| source.tensor_f32(name))
}
