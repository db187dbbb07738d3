//! The tokenizer a GGUF file carries, rebuilt as the model's own `tokenizer.json` would have it.

use serde_json::{Map, Value as Json, json};
use tokenizers::Tokenizer as Engine;
use zoo_core::Result;

use super::chat::ChatTemplate;
use super::{HfTokenizer, Origin};
use crate::gguf::GgufTokenizer;

impl HfTokenizer {
    /// From the tokenizer a GGUF file carries. Supported: byte-level BPE (`tokenizer.ggml.model`
    /// `gpt2`) with the pre-tokenizers (`tokenizer.ggml.pre`) of the models zoo runs, built as
    /// in those models' own `tokenizer.json`: `smollm` (digits split one by one, then GPT-2's
    /// byte-level split), `qwen2` / `deepseek-r1-qwen` (NFC, Qwen2's split regex),
    /// `llama-bpe` / `llama3` / `llama-v3` (Llama 3's split regex), `gpt-2`. Control tokens
    /// (type 3) become special added tokens, user-defined ones (type 4, such as `<think>`)
    /// non-special added tokens, as transformers does. SentencePiece (`llama`) vocabularies and
    /// other pre-tokenizers are refused: load the model's Hugging Face folder instead.
    pub fn from_gguf(t: &GgufTokenizer, model_vocab: usize) -> Result<Self> {
        let origin = Origin::Gguf;
        let hint = "load the model from its Hugging Face folder (tokenizer.json) instead";
        match t.model.as_str() {
            "gpt2" => {}
            "llama" => {
                return Err(origin.error(
                    "",
                    "tokenizer model `llama` (SentencePiece) is not supported".to_string(),
                    hint,
                ));
            }
            other => {
                return Err(origin.error(
                    "",
                    format!(
                        "tokenizer model `{other}` is not supported (only `gpt2`, byte-level BPE)"
                    ),
                    hint,
                ));
            }
        }
        let pre = t.pre.as_deref().unwrap_or("");
        let (normalizer, pre_tokenizer) = gguf_pre_tokenizer(pre).ok_or_else(|| {
            origin.error(
                "",
                format!(
                    "{} (known: smollm, qwen2, deepseek-r1-qwen, llama-bpe, llama3, llama-v3, \
                     gpt-2)",
                    match &t.pre {
                        Some(pre) => format!("pre-tokenizer `{pre}` is not supported"),
                        None => "no pre-tokenizer (`tokenizer.ggml.pre`)".to_string(),
                    }
                ),
                hint,
            )
        })?;
        if t.tokens.is_empty() {
            return Err(origin.error("", "no tokens".to_string(), hint));
        }
        if !t.token_types.is_empty() && t.token_types.len() != t.tokens.len() {
            return Err(origin.error(
                "",
                format!(
                    "{} token types for {} tokens",
                    t.token_types.len(),
                    t.tokens.len()
                ),
                "the GGUF file is damaged; download it again",
            ));
        }

        // The vocabulary, in the byte-level alphabet (tokens spelled otherwise are respelled
        // from their UTF-8 bytes, as transformers does); a repeated token keeps its first id.
        let alphabet = byte_alphabet();
        let in_alphabet = |token: &str| token.chars().all(|c| alphabet.contains(&c));
        let mut vocab = Map::new();
        for (id, token) in t.tokens.iter().enumerate() {
            let spelled = if in_alphabet(token) {
                token.clone()
            } else {
                token.bytes().map(|b| alphabet[b as usize]).collect()
            };
            vocab.entry(spelled).or_insert(json!(id));
        }
        let mut merges = Vec::with_capacity(t.merges.len());
        for merge in &t.merges {
            let parts: Vec<&str> = merge.split(' ').collect();
            let [a, b] = parts[..] else {
                return Err(origin.error(
                    "",
                    format!("merge `{merge}` is not two tokens separated by a space"),
                    hint,
                ));
            };
            merges.push(json!([a, b]));
        }
        let mut added = Vec::new();
        for (id, (token, kind)) in t.tokens.iter().zip(&t.token_types).enumerate() {
            let special = match kind {
                // A control token spelled outside the byte alphabet is a llama.cpp mislabel.
                3 if in_alphabet(token) => true,
                4 if vocab.contains_key(token) => false,
                _ => continue,
            };
            added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": special,
            }));
        }
        let document = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": merges,
            },
        });
        let engine: Engine = serde_json::from_value(document).map_err(|e| {
            origin.error(
                "",
                format!("the vocabulary and merges do not make a BPE tokenizer: {e}"),
                hint,
            )
        })?;

        let name = |id: Option<u32>| -> Result<Json> {
            match id {
                None => Ok(Json::Null),
                Some(id) => t
                    .tokens
                    .get(id as usize)
                    .map(|s| Json::String(s.clone()))
                    .ok_or_else(|| {
                        origin.error(
                            "",
                            format!("special token id {id} is not in the vocabulary"),
                            hint,
                        )
                    }),
            }
        };
        let mut config = Map::new();
        config.insert("add_bos_token".into(), json!(t.add_bos));
        config.insert("add_eos_token".into(), json!(false));
        config.insert("bos_token".into(), name(t.bos)?);
        config.insert("clean_up_tokenization_spaces".into(), json!(false));
        config.insert("eos_token".into(), name(t.eos)?);
        config.insert("pad_token".into(), name(t.pad)?);
        config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        config.insert("unk_token".into(), name(t.unk)?);
        let template = match &t.chat_template {
            Some(source) => {
                config.insert("chat_template".into(), json!(source));
                Some(ChatTemplate::new(source.clone()).map_err(|e| {
                    origin.error(
                        "",
                        format!("the chat template does not compile: {e}"),
                        "use the model's Hugging Face folder, or fix `tokenizer.chat_template`",
                    )
                })?)
            }
            None => None,
        };
        Self::assemble(engine, config, template, Vec::new(), model_vocab, &origin)
    }
}

/// The 256 one-byte tokens of a byte-level BPE vocabulary, in byte order.
pub fn byte_level_alphabet() -> Vec<String> {
    byte_alphabet().into_iter().map(String::from).collect()
}

/// GPT-2's byte-to-character map (`bytes_to_unicode`): printable bytes stand for themselves,
/// the others for U+0100 onwards. Indexed by byte.
fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256;
    (0..256u32)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(code).unwrap_or('\u{FFFD}')
        })
        .collect()
}

/// Qwen2's split regex (its tokenizer.json; single digits).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split regex (its tokenizer.json; up to three digits).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The normalizer and pre-tokenizer (tokenizer.json form) of llama.cpp's pre-tokenizer `pre`,
/// as the model's own tokenizer.json has them.
fn gguf_pre_tokenizer(pre: &str) -> Option<(Json, Json)> {
    let byte_level = |trim_offsets: bool, use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim_offsets, "use_regex": use_regex});
    let split = |regex: &str| json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "smollm" => (
            Json::Null,
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true, true),
            ]}),
        ),
        "qwen2" | "deepseek-r1-qwen" => (
            json!({"type": "NFC"}),
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false, false)]}),
        ),
        "llama-bpe" | "llama3" | "llama-v3" => (
            Json::Null,
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(true, false)]}),
        ),
        "gpt-2" | "gpt2" => (Json::Null, byte_level(true, true)),
        _ => return None,
    })
}
