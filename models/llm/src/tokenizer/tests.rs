//! Tests of the tokenizer against transformers' own output (fixtures in `tests/fixtures/llm/tokenizer`).

use std::path::PathBuf;

use serde_json::json;
use zoo_core::policy::Tokenizer as _;

use super::*;
use crate::gguf::GgufTokenizer;

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
    let dir = std::env::temp_dir().join(format!("zoo-llm-tokenizer-{}-{name}", std::process::id()));
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
