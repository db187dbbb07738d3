//! The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata.

use zoo_core::Result;

use super::file::Gguf;

/// The tokenizer a GGUF file carries in its `tokenizer.ggml.*` metadata.
#[derive(Debug, Clone, Default)]
pub struct GgufTokenizer {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: llama.cpp's name of the pre-tokenizer (`smollm`, `qwen2`, `llama-bpe`, ...).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, by id (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: `"a b"` pairs, by rank.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

impl Gguf {
    /// The tokenizer stored in the metadata: `tokenizer.ggml.{model, pre, tokens, token_type,
    /// merges, bos_token_id, eos_token_id, padding_token_id, unknown_token_id, add_bos_token}` and
    /// `tokenizer.chat_template`. Without `add_bos_token`, BOS is added for SentencePiece
    /// (`llama`) vocabularies and Llama-3's `llama-bpe` pre-tokenizer, as llama.cpp does.
    pub fn tokenizer(&self) -> Result<GgufTokenizer> {
        let model = self
            .opt_str("tokenizer.ggml.model")?
            .ok_or_else(|| {
                self.bad(
                    "the file has no tokenizer (`tokenizer.ggml.model` is missing)",
                    "use a GGUF converted with its tokenizer, or the Hugging Face folder",
                )
            })?
            .to_string();
        let strings = |key: &str| -> Result<Vec<String>> {
            let Some(items) = self.opt_array(key)? else {
                return Ok(Vec::new());
            };
            items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.wrong_type(key, v, "an array of strings"))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        if tokens.is_empty() {
            return Err(self.bad(
                "the tokenizer has no tokens (`tokenizer.ggml.tokens` is missing or empty)",
                "use a GGUF converted with its tokenizer, or the Hugging Face folder",
            ));
        }
        let merges = strings("tokenizer.ggml.merges")?;
        let key = "tokenizer.ggml.token_type";
        let token_types = match self.opt_array(key)? {
            None => Vec::new(),
            Some(items) => items
                .iter()
                .map(|v| {
                    v.as_i64()
                        .and_then(|t| i32::try_from(t).ok())
                        .ok_or_else(|| self.wrong_type(key, v, "an array of integers"))
                })
                .collect::<Result<_>>()?,
        };
        if !token_types.is_empty() && token_types.len() != tokens.len() {
            return Err(self.bad(
                format!(
                    "{} token types for {} tokens",
                    token_types.len(),
                    tokens.len()
                ),
                "the file is damaged; convert the model again",
            ));
        }
        let pre = self.opt_str("tokenizer.ggml.pre")?.map(str::to_string);
        let id = |key: &str| -> Result<Option<u32>> {
            let id = self.opt_u32(key)?;
            match id {
                Some(i) if i as usize >= tokens.len() => Err(self.bad(
                    format!("`{key}` is {i}, outside the {} tokens", tokens.len()),
                    "the file is damaged; convert the model again",
                )),
                _ => Ok(id),
            }
        };
        let add_bos = self.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(
            model == "llama" || matches!(pre.as_deref(), Some("llama-bpe" | "llama3" | "llama-v3")),
        );
        Ok(GgufTokenizer {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            add_bos,
            chat_template: self.opt_str("tokenizer.chat_template")?.map(str::to_string),
            model,
            pre,
            tokens,
            token_types,
            merges,
        })
    }
}
