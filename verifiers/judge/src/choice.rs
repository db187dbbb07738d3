//! Exact-match and multiple-choice verifiers.
//!
//! `exact`: the extracted answer (as the math verifier finds it, or the whole response when
//! nothing marks one) equals the gold as text: case, spaces, braces and backslashes ignored,
//! math delimiters and `\text{}` dropped. `choice`: the option letter of the answer (`C`,
//! `(C)`, `\text{(C)}`) equals the gold's.

use crate::Judgement;

use crate::math::answer::canonical_text;
use crate::math::choice_letter;
use crate::math::extract::extract;
use crate::math::normalize::normalize;

/// The answer text of `response`: marked, else the whole (trimmed) response.
fn answer_text(response: &str) -> String {
    extract(response, false)
        .map(|(a, _)| a)
        .unwrap_or_else(|| response.trim().to_string())
}

/// Exact match after normalization: `gold` against the response's answer.
pub fn exact(gold: &str, response: &str) -> Judgement {
    let answer = answer_text(response);
    if answer.is_empty() {
        return Judgement::new(false, None, false, "empty response".into());
    }
    let canon = |s: &str| canonical_text(&normalize(s).text);
    let correct = canon(&answer) == canon(gold);
    let reason = if correct {
        "matches the gold text".to_string()
    } else {
        format!("`{answer}` is not `{}`", gold)
    };
    Judgement::new(correct, Some(answer), true, reason)
}

/// Multiple choice: the response's option letter against the gold's.
pub fn choice(gold: &str, response: &str) -> Judgement {
    let Some(gold) = choice_letter(gold) else {
        return Judgement::new(
            false,
            None,
            false,
            format!("the gold `{}` is not an option letter", gold),
        );
    };
    let answer = answer_text(response);
    match choice_letter(&answer) {
        Some(letter) => Judgement::new(
            letter == gold,
            Some(answer),
            true,
            format!("option ({letter}) vs gold ({gold})"),
        ),
        None => Judgement::new(false, Some(answer), false, "no option letter found".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_choice_cases() {
        let exact_cases: &[(&str, &str, bool)] = &[
            ("Paris", "\\boxed{paris}", true),
            ("Paris", "Paris", true),
            ("Paris", "The answer is \\text{Paris}.", true),
            ("Paris", "\\boxed{Lyon}", false),
            ("x^2", "$x^{2}$", true),
            ("42", "\\boxed{42.0}", false), // text, not number equality
        ];
        for &(gold, response, expected) in exact_cases {
            let v = exact(gold, response);
            assert_eq!(v.correct, expected, "{gold} {response}: {}", v.reason);
        }
        let choice_cases: &[(&str, &str, bool)] = &[
            ("C", "\\boxed{C}", true),
            ("(C)", "The answer is (C).", true),
            ("C", "\\boxed{\\text{(C)}}", true),
            ("C", "\\boxed{B}", false),
            ("C", "\\boxed{12}", false),
        ];
        for &(gold, response, expected) in choice_cases {
            let v = choice(gold, response);
            assert_eq!(v.correct, expected, "{gold} {response}: {}", v.reason);
        }
        assert!(!choice("12", "C").parsed);
    }
}
