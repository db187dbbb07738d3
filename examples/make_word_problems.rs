//! Writes `examples/data/words-{train,eval}.jsonl`, the arithmetic word problems of the first
//! comparison on a real language model (docs/results-llm.md), from their seed:
//!
//! ```text
//! cargo run --example make_word_problems            # into examples/data/
//! cargo run --example make_word_problems -- DIR     # elsewhere
//! ```
//!
//! The generator is `zoo_verifiers::word_problems`; its unit test checks that the committed
//! files are its output and that the `math` verifier accepts every gold answer.

use std::path::PathBuf;

use zoo_verifiers::word_problems::{EVAL, SEED, TRAIN, generate, to_jsonl};

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("examples/data"), PathBuf::from);
    let (heldout, train) = generate(SEED, EVAL, TRAIN);
    for (name, rows) in [
        ("words-eval.jsonl", &heldout),
        ("words-train.jsonl", &train),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, to_jsonl(rows))?;
        println!("{}: {} problems", path.display(), rows.len());
    }
    Ok(())
}
