//! zoo-verifiers: verifiable tasks, each a task source plus an exact checker, and the checkers
//! on their own.
//!
//! - The CPU world's procedural tasks: multi-digit addition written as a carry chain
//!   (`addition`) and its easier one-digit modular cousin (`mod10`), seeded, with a fixed
//!   held-out split, a hint slot for teacher contexts, and noisy warm-start data.
//! - Verifiers for LLM outputs ([`answers`]): math final answers, countdown, exact match and
//!   multiple choice, the checkers of `zoo-judge` registered by name for `zoo verify`.
//! - [`dataset`]: a task source over JSONL files such as `../shared/datasets/`.
//! - [`word_problems`]: the seeded generator of `examples/data/words-*.jsonl`.
#![warn(missing_docs)]

pub mod answers;
pub mod arithmetic;
pub mod bandit;
pub mod dataset;
pub mod word_problems;

pub use answers::{ChoiceVerifier, CountdownVerifier, ExactVerifier, MathVerifier};
pub use arithmetic::{Arithmetic, ArithmeticVerifier, Kind};

use zoo_core::registry::VerifierEntry;

zoo_core::inventory::submit! {
    VerifierEntry {
        name: "math",
        summary: "final answers of math problems: \\boxed/####/Answer: extraction, exact rational and symbolic comparison",
        build: || Box::new(MathVerifier::default()),
    }
}

zoo_core::inventory::submit! {
    VerifierEntry {
        name: "countdown",
        summary: "an expression using each given number once that equals the target (gold: {\"target\", \"numbers\"})",
        build: || Box::new(CountdownVerifier),
    }
}

zoo_core::inventory::submit! {
    VerifierEntry {
        name: "exact",
        summary: "the answer text equals the gold after normalization",
        build: || Box::new(ExactVerifier),
    }
}

zoo_core::inventory::submit! {
    VerifierEntry {
        name: "choice",
        summary: "multiple choice: the option letter equals the gold's",
        build: || Box::new(ChoiceVerifier),
    }
}

zoo_core::inventory::submit! {
    VerifierEntry {
        name: "arithmetic",
        summary: "the CPU world's tasks: the number after the last `=>`",
        build: || Box::new(ArithmeticVerifier),
    }
}

/// Makes the linker keep this crate's verifier registrations; the `zoo` binary calls it.
pub fn link() {}
