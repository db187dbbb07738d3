//! Answer structures (numbers and expressions, tuples, sets, intervals, unions, inequalities,
//! text) and the equivalence test between a gold answer and a response's answer.
//!
//! Equivalence policy:
//! - two exact numbers (integers, fractions, decimals, and anything computed from them with
//!   `+ − × ÷`, integer powers and perfect roots) must be equal exactly: `0.5 = \frac12`,
//!   `72.0 = 72`, but `0.333 ≠ \frac13`;
//! - a value that went through an irrational operation (`\pi`, `\sqrt2`, `\sin`, ...) is compared
//!   in f64 with relative tolerance 1e-12 (both sides are computed, not rounded by hand, so this
//!   only absorbs float error: a hand-rounded `0.9165` does not match `\frac{\sqrt{21}}{5}`);
//! - a decimal literal of 15 or more significant digits (`0.3333333333333333`, a printed
//!   float) is read in f64 (see [`expr::LONG_DECIMAL_DIGITS`]), so it matches the rational it
//!   approximates within relative 1e-12; shorter decimals stay exact (`0.33 ≠ \frac13`);
//! - expressions with variables are equal when they agree (as two numbers above) at 6 seeded
//!   random points where both are defined, each variable of either side taking a value there:
//!   an identity equals its constant (`\sin^2 x + \cos^2 x = 1`, `x - x + 2 = 2`), and `2x ≠ 2y`;
//! - an equation whose first side is a single symbol (`x = 5`, `y_1 = 2x`, `f(1) = 3`, chains
//!   `x = 5+6 = 11`) is its last side; any other equation (`x + y = 5`, `2x = 10`) is kept
//!   whole and equals an equation with equal sides in the same or reversed order; a gold that is
//!   not an equation is compared with the last side of a response's equation (`2+3 = 5` is `5`),
//!   as in Math-Verify, but a gold equation never matches a bare value;
//! - tuples and intervals are ordered and keep their bracket kinds (openness matters); sets,
//!   bare comma lists and unions are unordered;
//! - an inequality in one variable becomes an interval (`x > 3` is `(3, \infty)`, `2 \le x < 5`
//!   is `[2, 5)`), so flipped sides match;
//! - anything else is compared as text (case-insensitive, spaces and braces ignored).

use num_rational::BigRational;

use super::expr::{self, Budget, Error, Expr, Num, Parser, Tok};

/// A parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A number or expression.
    Expr(Expr),
    /// `(a, b)`, `[a, b)`, ...: ordered items with their brackets.
    Bracketed {
        /// `(` or `[`.
        open: char,
        /// `)` or `]`.
        close: char,
        /// The items.
        items: Vec<Answer>,
    },
    /// `\{a, b\}` or a bare list `a, b`: unordered.
    Set(Vec<Answer>),
    /// `A \cup B`: unordered.
    Union(Vec<Answer>),
    /// `x + y = 5`: the sides of an equation whose first side is not a single symbol.
    Equation(Vec<Answer>),
    /// Plain text (normalized).
    Text(String),
}

/// Text for comparison: lowercase, without spaces, braces and backslashes.
pub fn canonical_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '{' | '}' | '\\'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn split_top(toks: &[Tok], is_sep: impl Fn(&Tok) -> bool) -> Vec<&[Tok]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Sym('(' | '[' | '{') | Tok::Cmd(_) if is_open(t) => depth += 1,
            Tok::Sym(')' | ']' | '}') => depth -= 1,
            Tok::Cmd(c) if c == "rbrace" => depth -= 1,
            _ => {}
        }
        if depth == 0 && is_sep(t) {
            parts.push(&toks[start..i]);
            start = i + 1;
        }
    }
    parts.push(&toks[start..]);
    parts
}

fn is_open(t: &Tok) -> bool {
    matches!(t, Tok::Sym('(' | '[' | '{')) || matches!(t, Tok::Cmd(c) if c == "lbrace")
}

fn is_relation(t: &Tok) -> bool {
    matches!(t, Tok::Sym('<' | '>' | '='))
        || matches!(t, Tok::Cmd(c) if c == "le" || c == "ge" || c == "ne")
}

/// Whether `toks[0]` opens a bracket that closes exactly at the last token.
fn wraps(toks: &[Tok]) -> bool {
    if toks.len() < 2 || !is_open(&toks[0]) {
        return false;
    }
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        if is_open(t) {
            depth += 1;
        } else if matches!(t, Tok::Sym(')' | ']' | '}'))
            || matches!(t, Tok::Cmd(c) if c == "rbrace")
        {
            depth -= 1;
            if depth == 0 && i + 1 < toks.len() {
                return false;
            }
        }
    }
    depth == 0
}

/// Parses normalized answer text.
pub fn parse(text: &str, budget: &mut Budget) -> Result<Answer, Error> {
    let (toks, wordy) = expr::lex(text, budget)?;
    if toks.is_empty() {
        return Err(Error::Syntax("empty answer".into()));
    }
    if wordy {
        return Ok(Answer::Text(canonical_text(text)));
    }
    Ok(parse_tokens(&toks, budget, 0).unwrap_or_else(|_| Answer::Text(canonical_text(text))))
}

fn parse_tokens(toks: &[Tok], budget: &mut Budget, depth: usize) -> Result<Answer, Error> {
    budget.tick()?;
    if depth > expr::MAX_DEPTH {
        return Err(Error::TooLarge("nesting".into()));
    }
    // `x \in [a, b]`: the set.
    if let Some(i) = toks
        .iter()
        .position(|t| matches!(t, Tok::Cmd(c) if c == "in"))
    {
        return parse_tokens(&toks[i + 1..], budget, depth + 1);
    }
    let union = split_top(toks, |t| matches!(t, Tok::Cmd(c) if c == "cup"));
    if union.len() > 1 {
        let items = union
            .into_iter()
            .map(|p| parse_tokens(p, budget, depth + 1))
            .collect::<Result<_, _>>()?;
        return Ok(Answer::Union(items));
    }
    if toks.iter().any(is_relation) {
        return relation(toks, budget, depth);
    }
    if wraps(toks) {
        let inner = &toks[1..toks.len() - 1];
        let first = &toks[0];
        let last = &toks[toks.len() - 1];
        let items = split_top(inner, |t| *t == Tok::Sym(','));
        if matches!(first, Tok::Cmd(c) if c == "lbrace") {
            let items = items
                .into_iter()
                .map(|p| parse_tokens(p, budget, depth + 1))
                .collect::<Result<_, _>>()?;
            return Ok(Answer::Set(items));
        }
        if let (Tok::Sym(open @ ('(' | '[')), Tok::Sym(close @ (')' | ']'))) = (first, last)
            && (items.len() > 1 || open != &'(' || close != &')')
        {
            let items = items
                .into_iter()
                .map(|p| parse_tokens(p, budget, depth + 1))
                .collect::<Result<_, _>>()?;
            return Ok(Answer::Bracketed {
                open: *open,
                close: *close,
                items,
            });
        }
    }
    let list = split_top(toks, |t| *t == Tok::Sym(',') || *t == Tok::Sym(';'));
    if list.len() > 1 {
        let items = list
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|p| parse_tokens(p, budget, depth + 1))
            .collect::<Result<_, _>>()?;
        return Ok(Answer::Set(items));
    }
    Ok(Answer::Expr(Parser::new(toks, budget).parse_all()?))
}

/// Whether an equation side is a single symbol: `x`, `x_1`, `\theta`, `y'`, `f(x)`, `f(1)`.
fn is_symbol(side: &[Tok]) -> bool {
    let [Tok::Ident(_), rest @ ..] = side else {
        return false;
    };
    rest.iter().all(|t| *t == Tok::Sym('\''))
        || (matches!(rest.first(), Some(Tok::Sym('('))) && wraps(rest))
}

/// An inequality chain in one variable as an interval; an equation chain as its last side
/// when its first side is a single symbol, else as an [`Answer::Equation`].
fn relation(toks: &[Tok], budget: &mut Budget, depth: usize) -> Result<Answer, Error> {
    let mut sides: Vec<&[Tok]> = Vec::new();
    let mut ops: Vec<&Tok> = Vec::new();
    let mut start = 0;
    let mut level = 0i32;
    for (i, t) in toks.iter().enumerate() {
        if is_open(t) {
            level += 1;
        } else if matches!(t, Tok::Sym(')' | ']' | '}'))
            || matches!(t, Tok::Cmd(c) if c == "rbrace")
        {
            level -= 1;
        }
        if level == 0 && is_relation(t) {
            sides.push(&toks[start..i]);
            ops.push(t);
            start = i + 1;
        }
    }
    sides.push(&toks[start..]);
    if sides.iter().any(|s| s.is_empty()) {
        return Err(Error::Syntax("a relation with an empty side".into()));
    }
    if ops.iter().all(|o| **o == Tok::Sym('=')) {
        if ops.is_empty() || is_symbol(sides[0]) {
            return parse_tokens(sides[sides.len() - 1], budget, depth + 1);
        }
        let sides = sides
            .into_iter()
            .map(|s| parse_tokens(s, budget, depth + 1))
            .collect::<Result<_, _>>()?;
        return Ok(Answer::Equation(sides));
    }
    let is_var = |s: &[Tok]| matches!(s, [Tok::Ident(_)]);
    // (bound, is_lower, strict)
    let mut lower: Option<(Expr, bool)> = None;
    let mut upper: Option<(Expr, bool)> = None;
    let var_index = sides.iter().position(|s| is_var(s));
    let Some(v) = var_index else {
        return Err(Error::Syntax(
            "an inequality without a lone variable".into(),
        ));
    };
    for (k, op) in ops.iter().enumerate() {
        // The relation between sides[k] and sides[k + 1].
        let (less, strict) = match op {
            Tok::Sym('<') => (true, true),
            Tok::Sym('>') => (false, true),
            Tok::Cmd(c) if c == "le" => (true, false),
            Tok::Cmd(c) if c == "ge" => (false, false),
            _ => return Err(Error::Syntax("a mixed relation".into())),
        };
        let (bound, bound_is_left) = if k + 1 == v {
            (sides[k], true)
        } else if k == v {
            (sides[k + 1], false)
        } else {
            continue;
        };
        let bound = Parser::new(bound, budget).parse_all()?;
        // bound < x (bound on the left of `<`) is a lower bound.
        let is_lower = less == bound_is_left;
        let slot = if is_lower { &mut lower } else { &mut upper };
        *slot = Some((bound, strict));
    }
    let (lo, lo_open) = lower.map_or((Expr::Neg(Box::new(Expr::Inf)), true), |(e, s)| (e, s));
    let (hi, hi_open) = upper.map_or((Expr::Inf, true), |(e, s)| (e, s));
    Ok(Answer::Bracketed {
        open: if lo_open { '(' } else { '[' },
        close: if hi_open { ')' } else { ']' },
        items: vec![Answer::Expr(lo), Answer::Expr(hi)],
    })
}

// ---------------------------------------------------------------------------------------------
// Equivalence
// ---------------------------------------------------------------------------------------------

/// Two numbers: exact equality for two exact values, else relative 1e-12 (float error of
/// two computations of one value is ~1e-15).
pub fn numbers_equal(a: &Num, b: &Num) -> bool {
    match (a, b) {
        (Num::Exact(x), Num::Exact(y)) => x == y,
        _ => floats_close(a.to_f64(), b.to_f64(), 1e-12),
    }
}

fn floats_close(a: f64, b: f64, rel: f64) -> bool {
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

/// The value of `e` without variables.
pub fn value(e: &Expr, budget: &mut Budget) -> Result<Num, Error> {
    expr::eval(e, &|_| None, budget)
}

fn exprs_equal(a: &Expr, b: &Expr, budget: &mut Budget) -> Result<bool, Error> {
    // Every variable of either side gets a value: `x - x + 2` is compared with `2` by value.
    let mut va = expr::variables(a);
    va.extend(expr::variables(b));
    va.sort();
    va.dedup();
    if va.is_empty() {
        let (x, y) = (value(a, budget), value(b, budget));
        return Ok(match (x, y) {
            (Ok(x), Ok(y)) => numbers_equal(&x, &y),
            (Err(Error::Timeout), _) | (_, Err(Error::Timeout)) => return Err(Error::Timeout),
            _ => false,
        });
    }
    // Seeded exact rational points in [0.55, 2.45], away from 0 and 1 where many identities
    // are degenerate: rational expressions are then compared exactly.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut agreeing = 0;
    for _ in 0..64 {
        let point: Vec<Num> = va
            .iter()
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let numerator = 550 + (state >> 11) % 1901; // 0.550 ..= 2.450
                Num::Exact(BigRational::new(numerator.into(), 1000.into()))
            })
            .collect();
        let env = |name: &str| va.iter().position(|v| v == name).map(|k| point[k].clone());
        let x = expr::eval(a, &env, budget);
        let y = expr::eval(b, &env, budget);
        match (x, y) {
            (Ok(x), Ok(y)) => {
                if !x.to_f64().is_finite() || !y.to_f64().is_finite() {
                    continue;
                }
                if !numbers_equal(&x, &y) {
                    return Ok(false);
                }
                agreeing += 1;
                if agreeing == 6 {
                    return Ok(true);
                }
            }
            (Err(Error::Timeout), _) | (_, Err(Error::Timeout)) => return Err(Error::Timeout),
            _ => continue,
        }
    }
    // A narrow domain (`\arcsin(1.3 \sin θ)`): fewer points, but all of them agree.
    Ok(agreeing >= 3)
}

/// Whether every item of `a` pairs with a distinct equal item of `b`.
fn unordered_equal(a: &[Answer], b: &[Answer], budget: &mut Budget) -> Result<bool, Error> {
    if a.len() != b.len() {
        return Ok(false);
    }
    let mut used = vec![false; b.len()];
    for x in a {
        let mut found = false;
        for (j, y) in b.iter().enumerate() {
            if !used[j] && equal(x, y, budget)? {
                used[j] = true;
                found = true;
                break;
            }
        }
        if !found {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the sides `a` equal the sides `b` in order.
fn sides_equal<'a>(
    a: &[Answer],
    b: impl ExactSizeIterator<Item = &'a Answer>,
    budget: &mut Budget,
) -> Result<bool, Error> {
    if a.len() != b.len() {
        return Ok(false);
    }
    for (x, y) in a.iter().zip(b) {
        if !equal(x, y, budget)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `response` is equivalent to `gold` (see the module docs).
pub fn equal(gold: &Answer, response: &Answer, budget: &mut Budget) -> Result<bool, Error> {
    budget.tick()?;
    Ok(match (gold, response) {
        (Answer::Expr(a), Answer::Expr(b)) => exprs_equal(a, b, budget)?,
        (
            Answer::Bracketed {
                open: o1,
                close: c1,
                items: a,
            },
            Answer::Bracketed {
                open: o2,
                close: c2,
                items: b,
            },
        ) => {
            if o1 != o2 || c1 != c2 || a.len() != b.len() {
                return Ok(false);
            }
            for (x, y) in a.iter().zip(b) {
                if !equal(x, y, budget)? {
                    return Ok(false);
                }
            }
            true
        }
        (Answer::Set(a), Answer::Set(b)) | (Answer::Union(a), Answer::Union(b)) => {
            unordered_equal(a, b, budget)?
        }
        (Answer::Text(a), Answer::Text(b)) => a == b,
        (Answer::Equation(a), Answer::Equation(b)) => {
            sides_equal(a, b.iter(), budget)? || sides_equal(a, b.iter().rev(), budget)?
        }
        // A response's computation `2 + 3 = 5` against a gold `5`: its last side.
        (gold, Answer::Equation(sides)) => match sides.last() {
            Some(last) => equal(gold, last, budget)?,
            None => false,
        },
        _ => false,
    })
}
