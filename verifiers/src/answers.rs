//! The `zoo-judge` checkers as `zoo_core::Verifier`s: the gold is `Problem::answer`.

use zoo_core::{Problem, Verdict, Verifier};
use zoo_judge::{Judgement, MathJudge, choice, countdown};

fn verdict(j: Judgement) -> Verdict {
    Verdict {
        score: j.score,
        correct: j.correct,
        extracted: j.extracted,
        parsed: j.parsed,
        reason: j.reason,
    }
}

/// Final answers of math problems (`zoo_judge::math`).
#[derive(Debug, Clone, Default)]
pub struct MathVerifier {
    /// The checker and its settings.
    pub judge: MathJudge,
}

impl Verifier for MathVerifier {
    fn name(&self) -> &str {
        "math"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        verdict(self.judge.check(&problem.answer, response))
    }
}

/// Countdown: the gold is `{"target": N, "numbers": [...]}` (`zoo_judge::countdown`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountdownVerifier;

impl Verifier for CountdownVerifier {
    fn name(&self) -> &str {
        "countdown"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        verdict(countdown::check_json(&problem.answer, response))
    }
}

/// Exact match after normalization (`zoo_judge::choice::exact`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExactVerifier;

impl Verifier for ExactVerifier {
    fn name(&self) -> &str {
        "exact"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        verdict(choice::exact(&problem.answer, response))
    }
}

/// Multiple choice by option letter (`zoo_judge::choice::choice`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChoiceVerifier;

impl Verifier for ChoiceVerifier {
    fn name(&self) -> &str {
        "choice"
    }

    fn verify(&self, response: &str, problem: &Problem) -> Verdict {
        verdict(choice::choice(&problem.answer, response))
    }
}
