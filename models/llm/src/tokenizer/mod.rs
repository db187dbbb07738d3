//! Hugging Face tokenizers and chat templates.
//!
//! [`HfTokenizer`] wraps the `tokenizers` crate (the engine behind transformers' fast tokenizers)
//! and renders the model's chat template the way transformers' `apply_chat_template` does (see
//! the `chat` submodule). It loads from a Hugging Face folder ([`HfTokenizer::from_dir`]) or
//! from the tokenizer a GGUF file carries ([`HfTokenizer::from_gguf`], in the `from_gguf`
//! submodule), and saves a folder that both [`HfTokenizer::from_dir`] and transformers'
//! `AutoTokenizer` read back.
//!
//! Conventions (as transformers):
//! - text is encoded without adding special tokens, but special-token strings written in the
//!   text (`<|im_end|>`) are recognized as those tokens;
//! - decoding drops special tokens (added tokens marked `special`); added non-special tokens
//!   such as Qwen3's `<think>` stay in the text;
//! - a chat prompt is the rendered template encoded without adding special tokens: the template
//!   writes the BOS token itself where the model wants one.

mod chat;
mod from_gguf;

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
use chat::ChatTemplate;
pub use from_gguf::byte_level_alphabet;

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

#[cfg(test)]
mod tests;
