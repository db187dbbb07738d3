//! The countdown verifier: the response's arithmetic expression must use each given number
//! exactly once (with `+ − × ÷` and brackets) and evaluate exactly to the target.
//!
//! The gold answer is JSON: `{"target": 24, "numbers": [1, 2, 3, 4]}`. The response's
//! expression is the last `<answer>...</answer>` (TinyZero's format), else the last
//! `\boxed{...}`, else the last line with a digit; a trailing `= 24` is ignored.

use std::time::{Duration, Instant};

use crate::Judgement;
use num_rational::BigRational;
use num_traits::ToPrimitive;
use serde::Deserialize;

use crate::math::expr::{self, Budget, Expr, Num, Op, Parser};

/// A countdown puzzle.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Puzzle {
    /// The value to reach.
    pub target: i64,
    /// The numbers to use, each exactly once.
    pub numbers: Vec<i64>,
}

/// The expression text of a response.
fn extract(response: &str) -> Option<String> {
    let text = if response.len() > 20_000 {
        let mut start = response.len() - 20_000;
        while !response.is_char_boundary(start) {
            start += 1;
        }
        &response[start..]
    } else {
        response
    };
    let candidate = if let (Some(open), Some(close)) =
        (text.rfind("<answer>"), text.rfind("</answer>"))
        && open < close
    {
        text[open + "<answer>".len()..close].to_string()
    } else if let Some((boxed, crate::math::extract::Method::Boxed)) =
        crate::math::extract::extract(text, false)
    {
        boxed
    } else {
        text.lines()
            .rev()
            .find(|l| l.chars().any(|c| c.is_ascii_digit()))?
            .to_string()
    };
    // `(1 + 2) * 8 = 24`: the left side.
    let expression = candidate.split('=').next().unwrap_or("").trim().to_string();
    (!expression.is_empty()).then_some(expression)
}

/// The integer leaves of `e`, or why it is not a countdown expression.
fn leaves(e: &Expr, out: &mut Vec<BigRational>) -> Result<(), String> {
    match e {
        Expr::Num(r) if r.is_integer() => {
            out.push(r.clone());
            Ok(())
        }
        Expr::Num(r) => Err(format!("`{r}` is not an integer")),
        Expr::Bin(Op::Add | Op::Sub | Op::Mul | Op::Div, a, b) => {
            leaves(a, out)?;
            leaves(b, out)
        }
        Expr::Bin(Op::Pow, ..) => Err("powers are not allowed".into()),
        Expr::Neg(_) => Err("a unary minus is not allowed".into()),
        other => Err(format!(
            "only numbers, + − × ÷ and brackets are allowed, found {other:?}"
        )),
    }
}

/// Judges `response` against `puzzle`.
pub fn check(puzzle: &Puzzle, response: &str) -> Judgement {
    let Some(expression) = extract(response) else {
        return Judgement::new(false, None, false, "no expression found".into());
    };
    if expression.chars().count() > 1_000 {
        return Judgement::new(
            false,
            None,
            false,
            "the expression is longer than 1000 characters".into(),
        );
    }
    let mut budget = Budget::until(Instant::now() + Duration::from_millis(200));
    let parsed = expr::lex(&expression.replace('x', "*"), &mut budget)
        .and_then(|(toks, _)| Parser::new(&toks, &mut budget).parse_all());
    let e = match parsed {
        Ok(e) => e,
        Err(err) => return Judgement::new(false, Some(expression), false, err.to_string()),
    };
    let mut used = Vec::new();
    if let Err(why) = leaves(&e, &mut used) {
        return Judgement::new(false, Some(expression), false, why);
    }
    let mut available: Vec<BigRational> = puzzle
        .numbers
        .iter()
        .map(|&n| BigRational::from_integer(n.into()))
        .collect();
    for n in &used {
        match available.iter().position(|a| a == n) {
            Some(k) => {
                available.swap_remove(k);
            }
            None => {
                return Judgement::new(
                    false,
                    Some(expression),
                    true,
                    format!("uses {n} more often than it is given"),
                );
            }
        }
    }
    if !available.is_empty() {
        let missing: Vec<String> = available.iter().map(ToString::to_string).collect();
        return Judgement::new(
            false,
            Some(expression),
            true,
            format!("does not use {}", missing.join(", ")),
        );
    }
    match expr::eval(&e, &|_| None, &mut budget) {
        Ok(Num::Exact(v)) if v == BigRational::from_integer(puzzle.target.into()) => {
            Judgement::new(
                true,
                Some(expression),
                true,
                format!("uses every number once and equals {}", puzzle.target),
            )
        }
        Ok(Num::Exact(v)) => Judgement::new(
            false,
            Some(expression),
            true,
            format!(
                "equals {}, not {}",
                v.to_f64().map_or(v.to_string(), |f| format!("{f}")),
                puzzle.target
            ),
        ),
        Ok(Num::Float(_)) => Judgement::new(false, Some(expression), true, "not exact".into()),
        Err(err) => Judgement::new(false, Some(expression), true, err.to_string()),
    }
}

/// Judges `response` against a gold given as JSON `{"target": N, "numbers": [...]}`.
pub fn check_json(gold: &str, response: &str) -> Judgement {
    match serde_json::from_str::<Puzzle>(gold) {
        Ok(puzzle) => check(&puzzle, response),
        Err(e) => Judgement::new(
            false,
            None,
            false,
            format!("the gold is not `{{\"target\": N, \"numbers\": [...]}}`: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(target: i64, numbers: &[i64], response: &str) -> Judgement {
        check(
            &Puzzle {
                target,
                numbers: numbers.to_vec(),
            },
            response,
        )
    }

    #[test]
    fn countdown_cases() {
        let cases: &[(i64, &[i64], &str, bool)] = &[
            (24, &[1, 2, 3, 4], "<answer>(1 + 2 + 3) * 4</answer>", true),
            (24, &[1, 2, 3, 4], "<answer>1 * 2 * 3 * 4</answer>", true),
            (
                24,
                &[1, 2, 3, 4],
                "<answer>(1 + 2 + 3) * 4 = 24</answer>",
                true,
            ),
            (24, &[1, 2, 3, 4], "so \\boxed{4 \\times (3 + 2 + 1)}", true),
            (24, &[1, 2, 3, 4], "I try\n(1+2+3)*4", true),
            (24, &[4, 4, 4, 4], "<answer>4 * 4 + 4 + 4</answer>", true),
            (2, &[8, 4], "<answer>8 / 4</answer>", true),
            (3, &[7, 2, 1], "<answer>(7 - 1) / 2</answer>", true),
            (
                24,
                &[1, 2, 3, 4],
                "<answer>(1 + 2 + 3) * 4 * 1</answer>",
                false,
            ), // 1 twice
            (24, &[1, 2, 3, 4], "<answer>6 * 4</answer>", false), // 6 not given
            (24, &[1, 2, 3, 4], "<answer>2 * 3 * 4</answer>", false), // 1 unused
            (24, &[1, 2, 3, 4], "<answer>(1 + 2) * 3 + 4</answer>", false), // 13
            (24, &[2, 3, 4], "<answer>2^3 * 3</answer>", false),  // powers
            (5, &[2, 3], "<answer>-2 + 3 + 4</answer>", false),
            (
                1,
                &[3, 2],
                "<answer>3 - 2</answer> later <answer>oops</answer>",
                false,
            ),
            (1, &[3, 2], "no expression here", false),
            (2, &[5, 2], "<answer>5 / 2</answer>", false), // 2.5
            (7, &[14, 2], "<answer>14 / 2</answer>", true),
            (1, &[1, 0], "<answer>1 / 0</answer>", false),
        ];
        for &(target, numbers, response, expected) in cases {
            let v = judge(target, numbers, response);
            assert_eq!(
                v.correct, expected,
                "{target} {numbers:?} {response:?}: {}",
                v.reason
            );
        }
    }

    #[test]
    fn a_bad_gold_is_a_verdict_not_a_panic() {
        let v = check_json("24 from 1 2 3 4", "1+2");
        assert!(!v.parsed && v.reason.contains("target"), "{}", v.reason);
    }
}
