//! `zoo verify`: verdicts for a JSONL file of `{verifier, answer, response}` lines.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use zoo_core::{Problem, Verdict, Verifier, registry};

use crate::cli::VerifyArgs;

fn bad_line(reason: String) -> Verdict {
    Verdict {
        score: 0.0,
        correct: false,
        extracted: None,
        parsed: false,
        reason,
    }
}

/// The verdict for one input line (never an error: a bad line gets a verdict saying why).
pub fn verify_line(line: &str, cache: &mut HashMap<String, Box<dyn Verifier>>) -> Verdict {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return bad_line(format!("the line is not JSON: {e}")),
    };
    let Some(name) = value.get("verifier").and_then(Value::as_str) else {
        return bad_line("the line has no `verifier` string".into());
    };
    let answer = match value.get("answer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return bad_line("the line has no `answer`".into()),
        Some(other) => other.to_string(),
    };
    let Some(response) = value.get("response").and_then(Value::as_str) else {
        return bad_line("the line has no `response` string".into());
    };
    if !cache.contains_key(name) {
        match registry::verifier(name) {
            Ok(entry) => {
                cache.insert(name.to_string(), (entry.build)());
            }
            Err(e) => return bad_line(e.to_string()),
        }
    }
    let problem = Problem {
        prompt: String::new(),
        question: String::new(),
        answer,
        solution: String::new(),
    };
    cache[name].verify(response, &problem)
}

/// Runs `zoo verify`.
pub fn run(args: &VerifyArgs) -> Result<()> {
    let reader = crate::commands::open_input(&args.input)?;
    let writer: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            fs_err::File::create(path)
                .with_context(|| format!("cannot write `{}`", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(writer);
    let mut cache = HashMap::new();
    for (n, line) in BufReader::new(reader).split(b'\n').enumerate() {
        let bytes = line.with_context(|| format!("cannot read line {}", n + 1))?;
        let verdict = match String::from_utf8(bytes) {
            Ok(text) if text.trim().is_empty() => bad_line("the line is empty".into()),
            Ok(text) => verify_line(&text, &mut cache),
            Err(_) => bad_line("the line is not UTF-8".into()),
        };
        let record = json!({
            "correct": verdict.correct,
            "score": verdict.score,
            "extracted": verdict.extracted,
            "parsed": verdict.parsed,
            "reason": verdict.reason,
        });
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    Ok(())
}
