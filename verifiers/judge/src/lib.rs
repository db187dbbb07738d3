//! zoo-judge: answer checking for LLM outputs, with no trainer dependencies (so that it builds
//! in seconds for fuzzing and benchmarks).
//!
//! - [`math`]: final answers of math problems: extraction, normalization, exact rational and
//!   symbolic comparison, guards against pathological input;
//! - [`countdown`]: an expression that uses each given number once and equals the target;
//! - [`choice`]: exact match and multiple-choice letters.
//!
//! Every checker returns a [`Judgement`] and never panics. `zoo-verifiers` wraps them as
//! `zoo_core::Verifier`s.
#![warn(missing_docs)]

pub mod choice;
pub mod countdown;
pub mod math;

pub use math::{MathConfig, MathJudge};

/// A structured verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The reward: 1 for a correct answer, else 0.
    pub score: f32,
    /// Whether the answer equals the gold answer.
    pub correct: bool,
    /// The answer text found in the response, if any.
    pub extracted: Option<String>,
    /// Whether the answer could be read (a structured value or text).
    pub parsed: bool,
    /// Why, for humans.
    pub reason: String,
}

impl Judgement {
    /// A judgement with score 1 when `correct`.
    pub fn new(correct: bool, extracted: Option<String>, parsed: bool, reason: String) -> Self {
        Self {
            score: if correct { 1.0 } else { 0.0 },
            correct,
            extracted,
            parsed,
            reason,
        }
    }
}

#[cfg(test)]
mod no_panic {
    //! Random strings never panic any checker, and every judgement is well formed.

    use proptest::prelude::*;

    use super::*;

    fn well_formed(j: &Judgement) {
        assert!(j.score == 0.0 || j.score == 1.0);
        assert_eq!(j.correct, j.score == 1.0);
        assert!(!j.correct || j.parsed, "correct but not parsed: {j:?}");
        assert!(!j.reason.is_empty());
    }

    /// Strings made of the characters answers are made of, so that the parser gets deep.
    fn latexish() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("\\frac".to_string()),
                Just("\\sqrt".to_string()),
                Just("\\boxed{".to_string()),
                Just("\\left(".to_string()),
                Just("\\right)".to_string()),
                Just("\\pi".to_string()),
                Just("\\infty".to_string()),
                Just("\\cup".to_string()),
                Just("\\le".to_string()),
                Just("^".to_string()),
                Just("{".to_string()),
                Just("}".to_string()),
                Just("(".to_string()),
                Just(")".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just(",".to_string()),
                Just("=".to_string()),
                Just("!".to_string()),
                Just("$".to_string()),
                Just("####".to_string()),
                "[0-9]{1,4}".prop_map(|s| s),
                "[a-zA-Z_\\-+*/.%]".prop_map(|s| s),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    /// Well-formed answers: numbers, fractions, roots, sums, products, powers, a variable.
    fn expression() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (1u32..500).prop_map(|n| n.to_string()),
            (1u32..50, 1u32..50).prop_map(|(a, b)| format!("\\frac{{{a}}}{{{b}}}")),
            (2u32..30).prop_map(|n| format!("\\sqrt{{{n}}}")),
            Just("x".to_string()),
            Just("\\pi".to_string()),
        ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a})({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("\\frac{{{a}}}{{{b}}}")),
                (inner.clone(), 2u32..4).prop_map(|(a, n)| format!("({a})^{{{n}}}")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_text_never_panics(gold in ".{0,60}", response in ".{0,200}") {
            let judge = MathJudge::default();
            well_formed(&judge.check(&gold, &response));
            well_formed(&countdown::check_json(&gold, &response));
            well_formed(&choice::exact(&gold, &response));
            well_formed(&choice::choice(&gold, &response));
        }

        #[test]
        fn latex_like_text_never_panics(gold in latexish(), response in latexish()) {
            let judge = MathJudge::default();
            well_formed(&judge.check(&gold, &response));
            well_formed(&judge.check(&gold, &format!("\\boxed{{{response}}}")));
            let puzzle = countdown::Puzzle { target: 24, numbers: vec![1, 2, 3, 4] };
            well_formed(&countdown::check(&puzzle, &response));
        }

        #[test]
        fn every_well_formed_expression_equals_itself_and_not_a_nearby_value(e in expression()) {
            let judge = MathJudge::default();
            let same = judge.check(&e, &format!("so \\boxed{{{e}}}"));
            prop_assert!(same.correct, "{e}: {}", same.reason);
            // A relative change of 1e-6: far beyond float error, so always detected.
            let off = judge.check(&e, &format!("so \\boxed{{({e}) \\cdot \\frac{{1000001}}{{1000000}}}}"));
            prop_assert!(!off.correct, "{e} × (1 + 1e-6) accepted: {}", off.reason);
        }
    }
}
