//! `zoo score`: per-token log-probs of given responses under a real language model, one JSON
//! line out per line in, to check zoo against another implementation.
//!
//! Each line is scored alone (no padding beside other rows), so the output for a line never
//! depends on the rest of the file.

use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::json;
use zoo_core::policy::check_context;
use zoo_core::{Policy, TokenMatrix};
use zoo_llm::tokenizer::ChatOptions;

use crate::cli::ScoreArgs;
use crate::commands::generate::load_model;

/// One input line: text or token ids.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    prompt: Option<String>,
    response: Option<String>,
    /// `false`: the prompt is used as is, without the chat template.
    #[serde(default = "yes")]
    chat: bool,
    context_ids: Option<Vec<u32>>,
    response_ids: Option<Vec<u32>>,
}

fn yes() -> bool {
    true
}

/// `(context ids, response ids)` of a line.
fn tokens(
    line: &Line,
    policy: &dyn Policy,
    raw: &dyn Fn(&str) -> Result<Vec<u32>>,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let tokenizer = policy.tokenizer();
    match (line, &line.context_ids, &line.response_ids) {
        (
            Line {
                prompt: Some(p),
                response: Some(r),
                ..
            },
            None,
            None,
        ) => {
            let context = if line.chat {
                tokenizer.encode_prompt(p)?
            } else {
                raw(p)?
            };
            Ok((context, tokenizer.encode(r)?))
        }
        (
            Line {
                prompt: None,
                response: None,
                ..
            },
            Some(c),
            Some(r),
        ) => {
            let vocab = tokenizer.vocab_size() as u32;
            if let Some(bad) = c.iter().chain(r).find(|&&t| t >= vocab) {
                bail!("token id {bad} is not below the model's vocabulary size {vocab}");
            }
            Ok((c.clone(), r.clone()))
        }
        _ => {
            bail!("give either `prompt` and `response` (text) or `context_ids` and `response_ids`")
        }
    }
}

/// Runs `zoo score`.
pub fn run(args: &ScoreArgs) -> Result<()> {
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        bail!("`--temperature` must be positive, got {}", args.temperature);
    }
    let policy = load_model(
        &args.model,
        args.adapter.as_deref(),
        &args.device,
        ChatOptions::default(),
    )?
    .with_compute(args.dtype.compute());
    let input = crate::commands::open_input(&args.input)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let raw = |text: &str| -> Result<Vec<u32>> { Ok(policy.tokenizer().encode(text)?) };
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("line {} of `{}`", n + 1, args.input.display());
        let parsed: Line = serde_json::from_str(&line).with_context(at)?;
        let (context, response) = tokens(&parsed, &policy, &raw).with_context(at)?;
        if context.is_empty() {
            bail!(
                "{}: the context has no token\nhint: give a prompt (with `\"chat\": false`, a non-empty one)",
                at()
            );
        }
        check_context(&policy, context.len(), response.len()).with_context(at)?;
        let logprobs = policy.token_logprobs(
            std::slice::from_ref(&context),
            std::slice::from_ref(&response),
            args.temperature,
            false,
        );
        let logprobs = TokenMatrix::from_tensor(logprobs);
        let line = json!({
            "context_ids": context,
            "response_ids": response,
            "logprobs": &logprobs.data[..response.len()],
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
