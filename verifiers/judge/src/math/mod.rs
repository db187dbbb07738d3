//! The math-answer verifier for LLM outputs: extraction ([`extract`]), normalization
//! ([`normalize`]), parsing and exact comparison ([`answer`], [`expr`]).
//!
//! It never panics and never runs long: the response is capped (its last
//! [`MathConfig::max_response_chars`] characters are read: answers come last), the extracted
//! answer is capped, numbers, exponents and nesting are capped, and every step ticks a per-call
//! time budget.
//!
//! # Rules for the hard cases
//!
//! - **Numbers glued inside words.** The last-number fallback skips a number with a letter (or
//!   `_`) right before *and* right after it (`abc123def`, `x2y`, `var1a`: code or names, not
//!   answers); a letter on one side only keeps it (`5kg`, `12cm`, `x=5`, `5 apples`).
//! - **Leading-dot decimals.** `.5`, `-.25`, "the answer is .75" read as 0.5, −0.25, 0.75, in
//!   the fallback as everywhere else; a dot right after a letter or a dot is punctuation there
//!   (`end.5` and `so...5` are 5).
//! - **Thousands grouped by spaces.** A space, thin space (U+2009), narrow no-break space
//!   (U+202F), no-break space (U+00A0), `\,` or `\ ` between digit groups joins them into one
//!   number (`1 234 567` = 1234567), in answers and in the fallback, only when the first group
//!   has 1-3 digits and every later group exactly three, and the first group does not follow a
//!   letter, `.`, `^`, `_` or a comma group; any other chain is kept as it is (`12 3456`,
//!   `1 2 345`, `10 100 1000`). So `3 456` is 3456: a lone pair of such groups is read as one
//!   grouped number ([`normalize::join_digit_groups`]). Commas (`1,234`, `1{,}234`) follow the
//!   same 3-digit rule, without a space after the comma (`32, 349` is a pair).
//! - **Bare fractions.** When the last number lies inside the arguments of `\frac`, `\dfrac`,
//!   `\tfrac` or `\cfrac` written outside math delimiters, the fallback takes the outermost such
//!   fraction (with a `-` right before it), not its denominator.
//! - **Equations.** An equation whose first side is a single symbol (`x`, `k`, `y_1`, `\theta`,
//!   `y'`, a call `f(x)` / `f(1)`, or a short name such as `AB`) is its last side: `x = 5` is 5.
//!   Any other equation (`x + y = 5`, `2x = 10`) is compared whole, side by side (in the same or
//!   reversed order), so a bare `5` does not match it. A response's equation against a gold
//!   that is not one is read as its last side (`2 + 3 = 5` matches 5), as in Math-Verify.
//! - **Long decimals.** A decimal literal with 15 or more significant digits
//!   ([`expr::LONG_DECIMAL_DIGITS`]) is a printed float: it matches a value within relative
//!   1e-12 (`0.3333333333333333` = 1/3, `0.2857142857142857` = 2/7). Shorter decimals and all
//!   integers are exact: `0.33`, `0.3333333` and `0.33333333333333` (14 digits) ≠ 1/3.
//! - **Identities.** When the two sides have different variables, both are evaluated at the
//!   seeded sample points over the union of their variables: `\sin^2 x + \cos^2 x` = 1 and
//!   `x - x + 2` = 2, while `2x` ≠ 2 and `x` ≠ `y`.
//! - **Time budget.** A verdict whose time budget runs out is incorrect (score 0): while parsing,
//!   with `parsed: false` and the reason "the time budget ran out"; while comparing two parsed
//!   answers, with `parsed: true` and the reason "comparison: the time budget ran out".

pub mod answer;
pub mod expr;
pub mod extract;
pub mod normalize;

use std::time::{Duration, Instant};

use crate::Judgement;
use serde::{Deserialize, Serialize};

use answer::{Answer, canonical_text};
use expr::{Budget, Error};
use extract::Method;

/// A response without answer markers this short is also tried as a whole.
const WHOLE_RESPONSE_CHARS: usize = 400;

/// Settings of the math verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MathConfig {
    /// Use the last number of the response when nothing else marks an answer.
    pub last_number_fallback: bool,
    /// Read only the last this many characters of a response.
    pub max_response_chars: usize,
    /// Refuse extracted answers longer than this.
    pub max_answer_chars: usize,
    /// The time budget of one verdict, in milliseconds.
    pub time_budget_ms: u64,
}

impl Default for MathConfig {
    fn default() -> Self {
        Self {
            last_number_fallback: true,
            max_response_chars: 20_000,
            max_answer_chars: 1_000,
            time_budget_ms: 200,
        }
    }
}

/// The math-answer verifier.
#[derive(Debug, Clone, Default)]
pub struct MathJudge {
    /// Its settings.
    pub config: MathConfig,
}

/// The last `n` characters of `s`.
fn tail(s: &str, n: usize) -> &str {
    match s.char_indices().rev().nth(n.saturating_sub(1)) {
        Some((i, _)) if n > 0 => &s[i..],
        _ => s,
    }
}

/// The option letter of a multiple-choice answer: `C`, `(C)`, `\text{(C)}`, `C)`.
pub fn choice_letter(answer: &str) -> Option<char> {
    let text = normalize::normalize(answer).text;
    let bare: String = text
        .chars()
        .filter(|c| !matches!(c, '(' | ')' | '{' | '}' | ' ' | '.' | ':'))
        .collect();
    let mut chars = bare.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_uppercase() && c <= 'J' => Some(c),
        _ => None,
    }
}

impl MathJudge {
    /// Parses normalized text, with the percent alternative (`value / 100`) when marked.
    fn parse(text: &str, budget: &mut Budget) -> Result<(Answer, Option<Answer>), Error> {
        let n = normalize::normalize(text);
        let main = answer::parse(&n.text, budget)?;
        let alternative = if n.percent {
            answer::parse(&format!("({})/100", n.text), budget).ok()
        } else {
            None
        };
        Ok((main, alternative))
    }

    /// Judges `response` against the gold answer text `gold`.
    pub fn check(&self, gold: &str, response: &str) -> Judgement {
        let c = &self.config;
        let text = tail(response, c.max_response_chars);
        let found = extract::extract(text, c.last_number_fallback);
        // A short response without `\boxed`, `####` or an answer phrase may be the answer
        // itself (`\frac{1}{8}`, `$(1,1)$, $(3,2)$`): try it whole before its last math
        // environment or number.
        let whole = text.trim();
        let bare = matches!(found, None | Some((_, Method::Math | Method::LastNumber)));
        if bare && !whole.is_empty() && whole.chars().count() <= WHOLE_RESPONSE_CHARS {
            let v = self.compare(gold, whole.to_string(), Method::Whole, c);
            if v.correct {
                return v;
            }
        }
        let Some((extracted, method)) = found else {
            return Judgement::new(
                false,
                None,
                false,
                "no answer found: no \\boxed{}, `####`, `Answer:`, math environment or number"
                    .into(),
            );
        };
        self.compare(gold, extracted, method, c)
    }

    /// Judges one extracted answer against the gold text.
    fn compare(&self, gold: &str, extracted: String, method: Method, c: &MathConfig) -> Judgement {
        let mut budget = Budget::until(Instant::now() + Duration::from_millis(c.time_budget_ms));
        if extracted.chars().count() > c.max_answer_chars {
            return Judgement::new(
                false,
                Some(tail(&extracted, 80).to_string()),
                false,
                format!(
                    "the extracted answer is longer than {} characters",
                    c.max_answer_chars
                ),
            );
        }
        // Multiple choice: a gold option letter is compared with the response's letter.
        if let Some(letter) = choice_letter(gold) {
            return match choice_letter(&extracted) {
                Some(l) => Judgement::new(
                    l == letter,
                    Some(extracted),
                    true,
                    format!("option ({l}) from {} vs gold ({letter})", method.name()),
                ),
                None => Judgement::new(
                    false,
                    Some(extracted),
                    false,
                    format!("no option letter in the answer; gold is ({letter})"),
                ),
            };
        }
        let gold_parsed = Self::parse(gold, &mut budget);
        let response_parsed = Self::parse(&extracted, &mut budget);
        let (gold_main, gold_alt, response_main, response_alt) =
            match (gold_parsed, response_parsed) {
                (Ok((g, ga)), Ok((r, ra))) => (g, ga, r, ra),
                (_, Err(Error::Timeout)) | (Err(Error::Timeout), _) => {
                    return Judgement::new(
                        false,
                        Some(extracted),
                        false,
                        "the time budget ran out".into(),
                    );
                }
                (Err(e), _) => {
                    // An unparseable gold is compared as text.
                    let correct = canonical_text(&normalize::normalize(gold).text)
                        == canonical_text(&normalize::normalize(&extracted).text);
                    return Judgement::new(
                        correct,
                        Some(extracted),
                        true,
                        format!("gold {e}; compared as text"),
                    );
                }
                (_, Err(e)) => {
                    return Judgement::new(
                        false,
                        Some(extracted),
                        false,
                        format!("the answer {e}"),
                    );
                }
            };
        let mut pairs = vec![(&gold_main, &response_main)];
        if let Some(alt) = &response_alt {
            pairs.push((&gold_main, alt));
        }
        if let Some(alt) = &gold_alt {
            pairs.push((alt, &response_main));
        }
        for (g, r) in pairs {
            match answer::equal(g, r, &mut budget) {
                Ok(true) => {
                    return Judgement::new(
                        true,
                        Some(extracted.clone()),
                        true,
                        format!("equals the gold answer (found by {})", method.name()),
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    return Judgement::new(
                        false,
                        Some(extracted),
                        true,
                        format!("comparison: {e}"),
                    );
                }
            }
        }
        Judgement::new(
            false,
            Some(extracted.clone()),
            true,
            format!(
                "`{}` (found by {}) differs from the gold `{gold}`",
                normalize::normalize(&extracted).text,
                method.name()
            ),
        )
    }
}

#[cfg(test)]
mod tests;
