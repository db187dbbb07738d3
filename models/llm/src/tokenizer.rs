//! Hugging Face tokenizers and chat templates.
//!
//! [`HfTokenizer`] wraps the `tokenizers` crate (the engine behind transformers' fast tokenizers)
//! and renders the model's chat template the way transformers' `apply_chat_template` does (see
//! the `chat` submodule). It loads from a Hugging Face folder ([`HfTokenizer::from_dir`]) or
//! from the tokenizer a GGUF file carries ([`HfTokenizer::from_gguf`]), and saves a folder that
//! both [`HfTokenizer::from_dir`] and transformers' `AutoTokenizer` read back.
//!
//! Conventions (as transformers):
//! - text is encoded without adding special tokens, but special-token strings written in the
//!   text (`<|im_end|>`) are recognized as those tokens;
//! - decoding drops special tokens (added tokens marked `special`); added non-special tokens
//!   such as Qwen3's `<think>` stay in the text;
//! - a chat prompt is the rendered template encoded without adding special tokens: the template
//!   writes the BOS token itself where the model wants one.

mod chat;

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::Value;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer as Engine};
use zoo_core::checkpoint::write_atomic;
use zoo_core::{Error, Result};

use crate::config::token_ids;
use crate::gguf::GgufTokenizer;
use chat::ChatTemplate;

/// How prompts are put into the chat template ([`zoo_core::policy::Tokenizer::encode_prompt`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatOptions {
    /// A system message put before every prompt (none: the template's default, if any).
    pub system: Option<String>,
    /// Passed to the template as `enable_thinking` when set (Qwen3: `false` writes an empty
    /// `<think>` block so that the model answers directly).
    pub enable_thinking: Option<bool>,
    /// Ignore the chat template: a prompt is `[bos if the tokenizer adds one] + encode(prompt)`.
    pub raw: bool,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` (or whatever else the template knows).
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The special-token names transformers passes to chat templates (`special_tokens_map`).
const SPECIAL_NAMES: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// A Hugging Face tokenizer with its chat template and stop tokens.
#[derive(Debug)]
pub struct HfTokenizer {
    engine: Engine,
    template: Option<ChatTemplate>,
    /// Named special tokens (`bos_token`, `eos_token`, ...) as strings, for the template.
    special: BTreeMap<String, String>,
    bos: Option<u32>,
    eos: u32,
    pad: Option<u32>,
    stop: Vec<u32>,
    /// Whether encoding with special tokens puts `bos` first.
    adds_bos: bool,
    model_vocab: usize,
    options: ChatOptions,
    /// `tokenizer_config.json` as read (or made up for a GGUF), written back by `save_to_dir`.
    config: Map<String, Json>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<HfTokenizer>();
};

/// Where a tokenizer came from, for error messages.
enum Origin<'a> {
    Dir(&'a Path),
    Gguf,
}

impl Origin<'_> {
    fn error(&self, file: &str, reason: String, hint: &str) -> Error {
        match self {
            Origin::Dir(dir) => Error::BadFile {
                path: dir.join(file),
                reason,
                hint: hint.to_string(),
            },
            Origin::Gguf => Error::Config(format!(
                "the GGUF tokenizer (`tokenizer.*` metadata): {reason}\nhint: {hint}"
            )),
        }
    }
}

impl HfTokenizer {
    /// From a Hugging Face folder: `tokenizer.json`, `tokenizer_config.json` (special tokens,
    /// `chat_template`), optional `chat_template.jinja` (preferred over the config's template,
    /// as transformers does), optional `generation_config.json` (`eos_token_id`) and optional
    /// `special_tokens_map.json` (older folders). `model_config` is the parsed `config.json`
    /// (its `eos_token_id` joins the stop tokens); `model_vocab` the model's embedding rows,
    /// which may exceed the tokenizer's size (ids without a token decode to nothing).
    ///
    /// `added_tokens_decoder` in `tokenizer_config.json` is not read: `tokenizer.json` lists the
    /// same added tokens. Truncation and padding stored in `tokenizer.json` are turned off.
    pub fn from_dir(dir: &Path, model_config: &Json, model_vocab: usize) -> Result<Self> {
        let origin = Origin::Dir(dir);
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::BadFile {
                path,
                reason: "missing".to_string(),
                hint:
                    "a model folder needs the tokenizer files of its Hugging Face repository next \
                       to config.json: tokenizer.json, tokenizer_config.json (special tokens, chat \
                       template) and, when the repository has them, chat_template.jinja and \
                       generation_config.json"
                        .to_string(),
            });
        }
        let text = fs_err::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let engine: Engine = text.parse().map_err(|e| {
            origin.error(
                "tokenizer.json",
                format!("not a tokenizer the `tokenizers` crate 0.22 reads: {e}"),
                "use the tokenizer.json of the model's Hugging Face repository (saved by \
                 transformers' fast tokenizers)",
            )
        })?;

        let mut config = match read_json(dir, "tokenizer_config.json")? {
            Some(Json::Object(map)) => map,
            Some(_) => {
                return Err(origin.error(
                    "tokenizer_config.json",
                    "not a JSON object".to_string(),
                    "use the tokenizer_config.json of the model's repository",
                ));
            }
            None => Map::new(),
        };
        // Older folders keep the special tokens in special_tokens_map.json.
        if let Some(Json::Object(map)) = read_json(dir, "special_tokens_map.json")? {
            for name in SPECIAL_NAMES {
                if let (Some(value), None) = (map.get(name), config.get(name)) {
                    config.insert(name.to_string(), value.clone());
                }
            }
        }

        let jinja = dir.join("chat_template.jinja");
        let template = if jinja.is_file() {
            let source =
                fs_err::read_to_string(&jinja).map_err(|e| Error::io("read", &jinja, e))?;
            Some((source, "chat_template.jinja"))
        } else {
            config_template(&config, &origin)?.map(|s| (s, "tokenizer_config.json"))
        };
        let template = match template {
            Some((source, file)) => Some(ChatTemplate::new(source).map_err(|e| {
                origin.error(
                    file,
                    format!("the chat template does not compile: {e}"),
                    "fix the template (Jinja2 as transformers renders it) or use the model's \
                     original tokenizer files",
                )
            })?),
            None => None,
        };

        let generation = read_json(dir, "generation_config.json")?;
        let mut extra_stop = Vec::new();
        if let Some(generation) = &generation {
            extra_stop.extend(token_ids(generation.get("eos_token_id")).map_err(|reason| {
                origin.error(
                    "generation_config.json",
                    format!("`eos_token_id`: {reason}"),
                    "`eos_token_id` is a token id or a list of token ids",
                )
            })?);
        }
        let model_eos = token_ids(model_config.get("eos_token_id")).map_err(|reason| {
            origin.error(
                "config.json",
                format!("`eos_token_id`: {reason}"),
                "`eos_token_id` is a token id or a list of token ids",
            )
        })?;
        extra_stop.extend(model_eos);
        Self::assemble(engine, config, template, extra_stop, model_vocab, &origin)
    }

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

    /// Common to both sources: special tokens, post-processor, ids, checks.
    fn assemble(
        mut engine: Engine,
        config: Map<String, Json>,
        template: Option<ChatTemplate>,
        extra_stop: Vec<u32>,
        model_vocab: usize,
        origin: &Origin<'_>,
    ) -> Result<Self> {
        // transformers never truncates or pads unless asked.
        engine
            .with_truncation(None)
            .map_err(|e| origin.error("tokenizer.json", e.to_string(), "remove `truncation`"))?;
        engine.with_padding(None);

        // Named special tokens; like transformers, one that the vocabulary has but not as an
        // added token becomes a special added token (so it is matched whole and decoded away).
        let mut special = BTreeMap::new();
        for name in SPECIAL_NAMES {
            let token = match config.get(name) {
                None | Some(Json::Null) => continue,
                Some(Json::String(s)) => s.clone(),
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => s.clone(),
                    _ => continue,
                },
                Some(_) => continue,
            };
            let added = engine
                .get_added_tokens_decoder()
                .values()
                .any(|t| t.content == token);
            if !added && engine.token_to_id(&token).is_some() {
                engine.add_special_tokens(&[AddedToken::from(token.clone(), true)]);
            }
            special.insert(name.to_string(), token);
        }
        let id_of = |name: &str| special.get(name).and_then(|t| engine.token_to_id(t));
        let bos = id_of("bos_token");
        let eos = id_of("eos_token")
            .or_else(|| extra_stop.first().copied())
            .ok_or_else(|| {
                origin.error(
                    "tokenizer_config.json",
                    "no end-of-sequence token: no `eos_token` in the vocabulary and no \
                     `eos_token_id` in generation_config.json or config.json"
                        .to_string(),
                    "set `eos_token` (for a chat model, the end-of-turn token such as \
                     `<|im_end|>`)",
                )
            })?;
        let pad = id_of("pad_token");

        // transformers rebuilds the post-processor from add_bos_token / add_eos_token when the
        // config states either, or when there is none.
        let add_bos = config.get("add_bos_token").and_then(Json::as_bool);
        let add_eos = config.get("add_eos_token").and_then(Json::as_bool);
        if add_bos.is_some() || add_eos.is_some() || engine.get_post_processor().is_none() {
            let add_bos = add_bos.unwrap_or(false) && bos.is_some();
            let add_eos = add_eos.unwrap_or(false);
            let mut single = Vec::new();
            let mut pair = Vec::new();
            let mut tokens = Vec::new();
            if let (true, Some(id)) = (add_bos, bos) {
                let bos_token = special["bos_token"].clone();
                single.push(format!("{bos_token}:0"));
                tokens.push((bos_token, id));
            }
            single.push("$A:0".to_string());
            if add_eos {
                let eos_token = engine.id_to_token(eos).unwrap_or_default();
                single.push(format!("{eos_token}:0"));
                tokens.push((eos_token, eos));
            }
            for part in &single {
                pair.push(part.clone());
            }
            for part in &single {
                pair.push(part.replace(":0", ":1").replace("$A", "$B"));
            }
            let mut builder = TemplateProcessing::builder();
            let processor = builder
                .try_single(single)
                .and_then(|b| b.try_pair(pair))
                .map(|b| b.special_tokens(tokens))
                .and_then(|b| b.build().map_err(|e| e.to_string()))
                .map_err(|e| {
                    origin.error(
                        "tokenizer_config.json",
                        format!("cannot add BOS/EOS: {e}"),
                        "check `add_bos_token` / `add_eos_token`",
                    )
                })?;
            engine.with_post_processor(Some(processor));
        }
        let probe = |add: bool| engine.encode_fast("a", add).map(|e| e.get_ids().to_vec());
        let adds_bos = match (probe(true), probe(false), bos) {
            (Ok(with), Ok(without), Some(bos)) => {
                with.len() > without.len() && with.first() == Some(&bos)
            }
            _ => false,
        };

        let mut stop = vec![eos];
        for id in extra_stop {
            if !stop.contains(&id) {
                stop.push(id);
            }
        }
        let top = engine.get_vocab(true).values().copied().max().unwrap_or(0);
        let largest = stop
            .iter()
            .copied()
            .chain(bos)
            .chain(pad)
            .max()
            .unwrap_or(0);
        if top.max(largest) as usize >= model_vocab {
            return Err(Error::Config(format!(
                "the tokenizer uses ids up to {} but the model has {model_vocab} embedding rows\n\
                 hint: the tokenizer files do not belong to this model",
                top.max(largest)
            )));
        }
        Ok(HfTokenizer {
            engine,
            template,
            special,
            bos,
            eos,
            pad,
            stop,
            adds_bos,
            model_vocab,
            options: ChatOptions::default(),
            config,
        })
    }

    /// Sets how prompts are put into the chat template (system message, `enable_thinking`,
    /// raw prompts).
    pub fn set_chat_options(&mut self, options: ChatOptions) {
        self.options = options;
    }

    /// The chat options in use.
    pub fn chat_options(&self) -> &ChatOptions {
        &self.options
    }

    /// The chat template rendered as transformers' `apply_chat_template(messages,
    /// tokenize=False, add_generation_prompt=...)` does, with the template variables
    /// `messages`, `add_generation_prompt`, `tools` and `documents` (none), the named special
    /// tokens (`bos_token`, `eos_token`, ...) and `enable_thinking` when the chat options set
    /// it. `strftime_now` reports a fixed date (26 July 2024) so that renders are reproducible.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.template.as_ref().ok_or_else(|| {
            Error::Config(
                "this tokenizer has no chat template\nhint: use a chat (instruct) model, or \
                 raw prompts (`raw = true` in the chat options)"
                    .to_string(),
            )
        })?;
        let mut context: Vec<(String, Value)> = self
            .special
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        context.push(("messages".into(), Value::from(messages)));
        context.push(("tools".into(), Value::from(())));
        context.push(("documents".into(), Value::from(())));
        context.push((
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        ));
        if let Some(flag) = self.options.enable_thinking {
            context.push(("enable_thinking".into(), Value::from(flag)));
        }
        template.render(Value::from_pairs(context)).map_err(|e| {
            Error::Config(format!(
                "chat template error: {e}\nhint: the template rejects these messages (check their \
                 roles and order against the template)"
            ))
        })
    }

    /// Token ids of `text`, no special tokens added; special-token strings in the text (such as
    /// `<|im_end|>`) are recognized as those tokens, as transformers does.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .engine
            .encode_fast(text, false)
            .map_err(|e| Error::Input(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Whether the tokenizer has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// The chat template source, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.template.as_ref().map(ChatTemplate::source)
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` (with the chat template, the special
    /// tokens and `add_bos_token`) and `generation_config.json` with `eos_token_id` set to the
    /// stop tokens (merged into the file when `dir` already has one), so that
    /// [`HfTokenizer::from_dir`] and transformers' `AutoTokenizer` read the same tokenizer back.
    /// A `chat_template.jinja` already in `dir` is rewritten (or removed) to match.
    pub fn save_to_dir(&self, dir: &Path) -> Result<()> {
        fs_err::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let path = dir.join("tokenizer.json");
        let text = self
            .engine
            .to_string(false)
            .map_err(|e| Error::io("write", &path, std::io::Error::other(e.to_string())))?;
        write_atomic(&path, text.as_bytes())?;

        let mut config = self.config.clone();
        for (name, token) in &self.special {
            config.insert(name.clone(), json!(token));
        }
        config.insert("add_bos_token".into(), json!(self.adds_bos));
        match &self.template {
            Some(t) => config.insert("chat_template".into(), json!(t.source())),
            None => config.remove("chat_template"),
        };
        write_json(&dir.join("tokenizer_config.json"), &Json::Object(config))?;
        let jinja = dir.join("chat_template.jinja");
        if jinja.exists() {
            match &self.template {
                Some(t) => write_atomic(&jinja, t.source().as_bytes())?,
                None => fs_err::remove_file(&jinja).map_err(|e| Error::io("remove", &jinja, e))?,
            }
        }

        let path = dir.join("generation_config.json");
        let mut generation = match read_json(dir, "generation_config.json")? {
            Some(Json::Object(map)) => map,
            _ => Map::new(),
        };
        let stop = if self.stop.len() == 1 {
            json!(self.stop[0])
        } else {
            json!(self.stop)
        };
        generation.insert("eos_token_id".into(), stop);
        if let Some(bos) = self.bos {
            generation.entry("bos_token_id").or_insert(json!(bos));
        }
        if let Some(pad) = self.pad {
            generation.entry("pad_token_id").or_insert(json!(pad));
        }
        write_json(&path, &Json::Object(generation))
    }
}

impl zoo_core::policy::Tokenizer for HfTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_text(text)
    }

    /// Special tokens and ids without a token (at or past the tokenizer's size) are dropped.
    fn decode(&self, tokens: &[u32]) -> String {
        self.engine.decode(tokens, true).unwrap_or_else(|_| {
            // Only a broken decoder fails; fall back to token by token.
            tokens
                .iter()
                .filter_map(|&t| self.engine.decode(&[t], true).ok())
                .collect()
        })
    }

    /// The BOS token, or (for tokenizers without one, like Qwen's) the pad token, else EOS.
    fn bos(&self) -> u32 {
        self.bos.unwrap_or_else(|| self.pad())
    }

    /// The tokenizer's `eos_token`: for chat models the end-of-turn token the template writes
    /// after an assistant message (`<|im_end|>`).
    fn eos(&self) -> u32 {
        self.eos
    }

    /// The EOS token, then `generation_config.json`'s and `config.json`'s `eos_token_id`s.
    fn stop_tokens(&self) -> Vec<u32> {
        self.stop.clone()
    }

    /// The pad token, else EOS.
    fn pad(&self) -> u32 {
        self.pad.unwrap_or(self.eos)
    }

    /// The model's embedding rows (may exceed the tokenizer's size).
    fn vocab_size(&self) -> usize {
        self.model_vocab
    }

    /// With a chat template (and not raw): the template rendered around `[system?, user:
    /// prompt]` with the generation prompt, encoded without adding special tokens. Raw or
    /// without a template: `[bos if the tokenizer adds one] + encode(prompt)`.
    fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        if self.template.is_some() && !self.options.raw {
            let mut messages = Vec::new();
            if let Some(system) = &self.options.system {
                messages.push(Message::new("system", system.as_str()));
            }
            messages.push(Message::new("user", prompt));
            let text = self.render(&messages, true)?;
            return self.encode_text(&text);
        }
        let mut ids = Vec::new();
        if self.adds_bos {
            ids.extend(self.bos);
        }
        ids.extend(self.encode_text(prompt)?);
        if ids.is_empty() {
            // A policy needs at least one context token to predict the first response token.
            return Err(Error::Config(format!(
                "the prompt {prompt:?} encodes to no token without a chat template\nhint: give a non-empty prompt, or use the chat template (drop `raw`)"
            )));
        }
        Ok(ids)
    }
}

/// The chat template in `tokenizer_config.json`: a string, or a list of `{name, template}`
/// (the one named `default`).
fn config_template(config: &Map<String, Json>, origin: &Origin<'_>) -> Result<Option<String>> {
    match config.get("chat_template") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let named = |name: &str| {
                list.iter().find_map(|t| {
                    (t.get("name")?.as_str()? == name)
                        .then(|| t.get("template")?.as_str().map(str::to_string))
                        .flatten()
                })
            };
            named("default").map(Some).ok_or_else(|| {
                origin.error(
                    "tokenizer_config.json",
                    "`chat_template` is a list without a template named `default`".to_string(),
                    "give the default template the name `default`",
                )
            })
        }
        Some(_) => Err(origin.error(
            "tokenizer_config.json",
            "`chat_template` is neither a string nor a list of {name, template}".to_string(),
            "use the tokenizer_config.json of the model's repository",
        )),
    }
}

/// `dir/file` parsed, or `None` when the file does not exist.
fn read_json(dir: &Path, file: &str) -> Result<Option<Json>> {
    let path = dir.join(file);
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs_err::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::BadFile {
            path,
            reason: format!("not valid JSON: {e}"),
            hint: "use the file of the model's Hugging Face repository".to_string(),
        })
}

fn write_json(path: &Path, value: &Json) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    write_atomic(path, text.as_bytes())
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;
    use zoo_core::policy::Tokenizer as _;

    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llm/tokenizer")
    }

    /// transformers' outputs, written by scripts/make-tokenizer-fixtures.py.
    #[derive(Deserialize)]
    struct Expected {
        renders: Vec<RenderCase>,
        texts: Vec<TextCase>,
    }

    #[derive(Deserialize)]
    struct RenderCase {
        messages: Vec<Message>,
        add_generation_prompt: bool,
        kwargs: Map<String, Json>,
        text: String,
        ids: Vec<u32>,
        decoded: String,
    }

    #[derive(Deserialize)]
    struct TextCase {
        text: String,
        ids: Vec<u32>,
        decoded: String,
    }

    fn expected(name: &str) -> Expected {
        let path = fixtures().join(name).join("expected.json");
        serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
    }

    /// A fresh empty folder under the system's temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("zoo-llm-tokenizer-{}-{name}", std::process::id()));
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir).unwrap();
        dir
    }

    /// A folder with the tiny tokenizer.json and the given tokenizer_config.json.
    fn tiny_with_config(name: &str, config: &Json) -> PathBuf {
        let dir = temp_dir(name);
        fs_err::copy(
            fixtures().join("tiny/tokenizer.json"),
            dir.join("tokenizer.json"),
        )
        .unwrap();
        write_json(&dir.join("tokenizer_config.json"), config).unwrap();
        dir
    }

    fn tiny() -> HfTokenizer {
        HfTokenizer::from_dir(&fixtures().join("tiny"), &json!({"eos_token_id": 1}), 320).unwrap()
    }

    /// Renders, ids and decoded texts equal transformers' (`ids`: also compare ids).
    fn check(tok: &mut HfTokenizer, expected: &Expected, ids: bool) {
        for (i, case) in expected.renders.iter().enumerate() {
            let enable_thinking = case.kwargs.get("enable_thinking").and_then(Json::as_bool);
            tok.set_chat_options(ChatOptions {
                enable_thinking,
                ..Default::default()
            });
            let text = tok
                .render(&case.messages, case.add_generation_prompt)
                .unwrap();
            assert_eq!(text, case.text, "render {i}");
            if ids {
                assert_eq!(tok.encode_text(&text).unwrap(), case.ids, "render {i} ids");
                assert_eq!(tok.decode(&case.ids), case.decoded, "render {i} decoded");
            }
        }
        tok.set_chat_options(ChatOptions::default());
        if ids {
            for case in &expected.texts {
                assert_eq!(
                    tok.encode_text(&case.text).unwrap(),
                    case.ids,
                    "{:?}",
                    case.text
                );
                assert_eq!(tok.decode(&case.ids), case.decoded, "{:?}", case.text);
            }
        }
    }

    #[test]
    fn tiny_matches_transformers() {
        let mut tok = tiny();
        check(&mut tok, &expected("tiny"), true);
        assert!(tok.has_chat_template());
    }

    #[test]
    fn tiny_special_and_stop_tokens() {
        let tok = tiny();
        // eos_token <|im_end|> = 2; pad_token <|endoftext|> = 0; no bos_token: bos() is pad.
        assert_eq!(tok.eos(), 2);
        assert_eq!(tok.pad(), 0);
        assert_eq!(tok.bos(), 0);
        // tokenizer eos, then generation_config.json [2, 0], then config.json 1.
        assert_eq!(tok.stop_tokens(), vec![2, 0, 1]);
        assert_eq!(tok.vocab_size(), 320);
        let without = HfTokenizer::from_dir(&fixtures().join("tiny"), &json!({}), 320).unwrap();
        assert_eq!(without.stop_tokens(), vec![2, 0]);
    }

    #[test]
    fn decode_drops_special_tokens_and_ids_past_the_tokenizer() {
        let tok = tiny();
        // <|im_start|> <think> h i </think> <|im_end|>, 310 and 319 have no token.
        assert_eq!(
            tok.decode(&[1, 300, 74, 75, 301, 2, 310, 319, 0]),
            "<think>hi</think>"
        );
    }

    #[test]
    fn encode_prompt_renders_the_template() {
        let mut tok = tiny();
        let cases = expected("tiny").renders;
        let prompt = "What is 12 + 30? Answer with a number.";
        let find = |roles: &[&str]| {
            cases
                .iter()
                .find(|c| {
                    c.add_generation_prompt
                        && c.messages
                            .iter()
                            .map(|m| m.role.as_str())
                            .eq(roles.iter().copied())
                })
                .unwrap()
        };
        assert_eq!(tok.encode_prompt(prompt).unwrap(), find(&["user"]).ids);
        tok.set_chat_options(ChatOptions {
            system: Some("You are a careful math tutor.".into()),
            ..Default::default()
        });
        assert_eq!(
            tok.encode_prompt(prompt).unwrap(),
            find(&["system", "user"]).ids
        );
        tok.set_chat_options(ChatOptions {
            raw: true,
            ..Default::default()
        });
        // The tiny tokenizer adds no BOS.
        assert_eq!(
            tok.encode_prompt(prompt).unwrap(),
            tok.encode_text(prompt).unwrap()
        );
        // Nothing to condition on: an error, not an empty context.
        let err = tok.encode_prompt("").unwrap_err().to_string();
        assert!(
            err.contains("encodes to no token") && err.contains("hint:"),
            "{err}"
        );
    }

    #[test]
    fn raw_prompt_starts_with_bos_when_the_tokenizer_adds_it() {
        let dir = tiny_with_config(
            "adds-bos",
            &json!({"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "add_bos_token": true}),
        );
        let tok = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        assert!(!tok.has_chat_template());
        assert_eq!(tok.bos(), 0);
        let mut expected = vec![0];
        expected.extend(tok.encode_text("hi").unwrap());
        assert_eq!(tok.encode_prompt("hi").unwrap(), expected);
        assert_eq!(tok.encode_text("hi").unwrap(), vec![74, 75]);
        let err = tok.render(&[Message::new("user", "hi")], true).unwrap_err();
        assert!(err.to_string().contains("no chat template"), "{err}");
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn qwen3_template_renders_like_transformers() {
        // Qwen3's tokenizer_config.json (its chat template) over the tiny vocabulary: the
        // renders do not depend on the vocabulary.
        let dir = temp_dir("qwen3-template");
        fs_err::copy(
            fixtures().join("tiny/tokenizer.json"),
            dir.join("tokenizer.json"),
        )
        .unwrap();
        fs_err::copy(
            fixtures().join("qwen3/tokenizer_config.json"),
            dir.join("tokenizer_config.json"),
        )
        .unwrap();
        let mut tok = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        check(&mut tok, &expected("qwen3"), false);
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn missing_tokenizer_json_is_a_bad_file() {
        let dir = temp_dir("missing");
        let err = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap_err();
        match &err {
            Error::BadFile { path, .. } => assert!(path.ends_with("tokenizer.json")),
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(text.contains("tokenizer_config.json"), "{text}");
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn raise_exception_surfaces_the_template_message() {
        let template = "{% if messages[0]['role'] != 'user' %}\
                        {{ raise_exception('Conversation must start with a user message') }}\
                        {% endif %}ok";
        let dir = tiny_with_config(
            "raise",
            &json!({"eos_token": "<|im_end|>", "chat_template": template}),
        );
        let tok = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        assert_eq!(
            tok.render(&[Message::new("user", "hi")], false).unwrap(),
            "ok"
        );
        let err = tok
            .render(&[Message::new("assistant", "hi")], false)
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(
            err.to_string()
                .contains("Conversation must start with a user message"),
            "{err}"
        );
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn template_that_does_not_compile_is_a_bad_file() {
        let dir = tiny_with_config(
            "syntax",
            &json!({"eos_token": "<|im_end|>", "chat_template": "{% if %}"}),
        );
        let err = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap_err();
        match err {
            Error::BadFile { path, .. } => assert!(path.ends_with("tokenizer_config.json")),
            other => panic!("{other}"),
        }
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn template_sources() {
        // A list of named templates: the default one.
        let dir = tiny_with_config(
            "sources",
            &json!({"eos_token": "<|im_end|>", "chat_template": [
                {"name": "tool_use", "template": "tools"},
                {"name": "default", "template": "default {{ messages[0].content }}"},
            ]}),
        );
        let tok = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        assert_eq!(
            tok.render(&[Message::new("user", "hi")], false).unwrap(),
            "default hi"
        );
        // chat_template.jinja wins over tokenizer_config.json.
        fs_err::write(dir.join("chat_template.jinja"), "jinja {{ eos_token }}\n").unwrap();
        let tok = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        assert_eq!(
            tok.render(&[Message::new("user", "hi")], false).unwrap(),
            "jinja <|im_end|>"
        );
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn tojson_does_not_html_escape() {
        let dir = tiny_with_config(
            "tojson",
            &json!({"eos_token": "<|im_end|>", "chat_template": "{{ messages | tojson }}"}),
        );
        let tok = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        let text = tok
            .render(&[Message::new("user", "<b> & 'x' é \"q\"")], false)
            .unwrap();
        assert_eq!(
            text,
            r#"[{"role": "user", "content": "<b> & 'x' é \"q\""}]"#
        );
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn model_vocab_smaller_than_the_tokenizer_is_refused() {
        let err = HfTokenizer::from_dir(&fixtures().join("tiny"), &json!({}), 300).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    /// Reloads `tok` from a save and checks every render, id and special token.
    fn check_round_trip(tok: &mut HfTokenizer, expected: &Expected, name: &str) {
        let dir = temp_dir(name);
        tok.save_to_dir(&dir).unwrap();
        let mut back = HfTokenizer::from_dir(&dir, &json!({}), tok.vocab_size()).unwrap();
        check(&mut back, expected, true);
        assert_eq!(back.stop_tokens(), tok.stop_tokens());
        assert_eq!(
            (back.bos(), back.eos(), back.pad(), back.adds_bos),
            (tok.bos(), tok.eos(), tok.pad(), tok.adds_bos)
        );
        assert_eq!(back.chat_template(), tok.chat_template());
        assert_eq!(back.special, tok.special);
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn save_to_dir_round_trip() {
        check_round_trip(&mut tiny(), &expected("tiny"), "round-trip");
    }

    /// The tiny tokenizer as a GGUF file would carry it (`qwen2` pre-tokenizer).
    fn tiny_as_gguf() -> GgufTokenizer {
        let text = fs_err::read_to_string(fixtures().join("tiny/tokenizer.json")).unwrap();
        let doc: Json = serde_json::from_str(&text).unwrap();
        let mut tokens = Vec::new();
        for (token, id) in doc["model"]["vocab"].as_object().unwrap() {
            let id = id.as_u64().unwrap() as usize;
            tokens.resize(tokens.len().max(id + 1), String::new());
            tokens[id] = token.clone();
        }
        let mut token_types = vec![1; tokens.len()];
        for added in doc["added_tokens"].as_array().unwrap() {
            let id = added["id"].as_u64().unwrap() as usize;
            tokens.resize(tokens.len().max(id + 1), String::new());
            token_types.resize(tokens.len(), 1);
            tokens[id] = added["content"].as_str().unwrap().to_string();
            token_types[id] = if added["special"].as_bool().unwrap() {
                3
            } else {
                4
            };
        }
        let merges = doc["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m {
                Json::String(s) => s.clone(),
                pair => format!(
                    "{} {}",
                    pair[0].as_str().unwrap(),
                    pair[1].as_str().unwrap()
                ),
            })
            .collect();
        let config: Json = serde_json::from_str(
            &fs_err::read_to_string(fixtures().join("tiny/tokenizer_config.json")).unwrap(),
        )
        .unwrap();
        GgufTokenizer {
            model: "gpt2".into(),
            pre: Some("qwen2".into()),
            tokens,
            token_types,
            merges,
            bos: None,
            eos: Some(2),
            pad: Some(0),
            unk: None,
            add_bos: false,
            chat_template: config["chat_template"].as_str().map(str::to_string),
        }
    }

    #[test]
    fn gguf_tokenizer_matches_transformers() {
        let mut tok = HfTokenizer::from_gguf(&tiny_as_gguf(), 320).unwrap();
        let expected = expected("tiny");
        check(&mut tok, &expected, true);
        assert_eq!((tok.eos(), tok.pad(), tok.bos()), (2, 0, 0));
        assert_eq!(tok.stop_tokens(), vec![2]);
        check_round_trip(&mut tok, &expected, "gguf-round-trip");
    }

    #[test]
    fn gguf_with_add_bos_prepends_bos_to_raw_prompts() {
        let mut gguf = tiny_as_gguf();
        gguf.bos = Some(0);
        gguf.add_bos = true;
        let mut tok = HfTokenizer::from_gguf(&gguf, 320).unwrap();
        tok.set_chat_options(ChatOptions {
            raw: true,
            ..Default::default()
        });
        assert_eq!(tok.encode_prompt("hi").unwrap(), vec![0, 74, 75]);
        assert_eq!(tok.encode_text("hi").unwrap(), vec![74, 75]);
        let dir = temp_dir("gguf-add-bos");
        tok.save_to_dir(&dir).unwrap();
        let mut back = HfTokenizer::from_dir(&dir, &json!({}), 320).unwrap();
        back.set_chat_options(tok.chat_options().clone());
        assert_eq!(back.encode_prompt("hi").unwrap(), vec![0, 74, 75]);
        let _ = fs_err::remove_dir_all(dir);
    }

    #[test]
    fn gguf_refuses_what_it_cannot_build() {
        let mut gguf = tiny_as_gguf();
        gguf.model = "llama".into();
        let err = HfTokenizer::from_gguf(&gguf, 320).unwrap_err().to_string();
        assert!(err.contains("SentencePiece"), "{err}");
        let mut gguf = tiny_as_gguf();
        gguf.pre = Some("falcon".into());
        let err = HfTokenizer::from_gguf(&gguf, 320).unwrap_err().to_string();
        assert!(err.contains("`falcon`"), "{err}");
    }

    #[test]
    fn chat_options_from_config() {
        let options: ChatOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(options, ChatOptions::default());
        let options: ChatOptions =
            serde_json::from_str(r#"{"system": "Be brief.", "enable_thinking": false}"#).unwrap();
        assert_eq!(options.system.as_deref(), Some("Be brief."));
        assert_eq!(options.enable_thinking, Some(false));
        assert!(!options.raw);
        assert!(serde_json::from_str::<ChatOptions>(r#"{"thinking": true}"#).is_err());
    }

    #[test]
    #[ignore = "needs SmolLM2: scripts/fetch-smollm2.sh"]
    fn smollm2_gguf_matches_transformers() {
        let path = std::env::var("ZOO_SMOLLM2_GGUF")
            .expect("set ZOO_SMOLLM2_GGUF to SmolLM2-135M-Instruct's GGUF file");
        let gguf = crate::gguf::Gguf::open(Path::new(&path)).unwrap();
        let mut tok = HfTokenizer::from_gguf(&gguf.tokenizer().unwrap(), 49152).unwrap();
        check(&mut tok, &expected("smollm2"), true);
        // bos <|im_start|>, eos and pad <|im_end|>.
        assert_eq!((tok.bos(), tok.eos(), tok.pad()), (1, 2, 2));
        assert_eq!(tok.stop_tokens(), vec![2]);
        assert_eq!(tok.decode(&[1, 104, 2, 105, 0]), "xy");
    }

    #[test]
    #[ignore = "needs scripts/fetch-qwen3-tokenizer.sh"]
    fn qwen3_tokenizer_matches_transformers() {
        let dir = std::env::var("ZOO_QWEN3_TOKENIZER_DIR")
            .expect("set ZOO_QWEN3_TOKENIZER_DIR=$(scripts/fetch-qwen3-tokenizer.sh)");
        // Qwen3-0.6B's config.json: eos_token_id 151645, 151936 embedding rows.
        let mut tok = HfTokenizer::from_dir(
            Path::new(&dir),
            &json!({"eos_token_id": 151645, "bos_token_id": 151643}),
            151936,
        )
        .unwrap();
        check(&mut tok, &expected("qwen3"), true);
        assert_eq!((tok.eos(), tok.pad(), tok.bos()), (151645, 151643, 151643));
        assert_eq!(tok.stop_tokens(), vec![151645]);
        // <think> stays (not special), <|im_end|> and ids past the tokenizer go.
        assert_eq!(tok.decode(&[151667, 151645, 151700, 151935]), "<think>");
    }
}
