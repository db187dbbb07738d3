//! A small LaTeX-math expression language: lexer, recursive-descent parser and evaluator.
//!
//! Numbers are exact rationals (`num-rational` over `num-bigint`) as long as every operation
//! keeps them rational (`+ − × ÷`, integer powers, perfect-square roots, small factorials);
//! anything else (`\pi`, `e`, irrational roots, `\sin`, `\log`, ...) continues in f64, and so
//! does a decimal literal of [`LONG_DECIMAL_DIGITS`] or more significant digits
//! (`0.3333333333333333`: a printed float, not an exact value).
//! Every loop and every recursion step ticks a [`Budget`], so no input can run long, recurse
//! deep or allocate huge numbers.

use std::time::Instant;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// Why an answer could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The text is not in the expression language.
    Syntax(String),
    /// A number, exponent or nesting beyond the caps.
    TooLarge(String),
    /// The per-call time budget ran out.
    Timeout,
    /// A value is undefined (division by zero, a root of a negative number, ...).
    Undefined(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Syntax(m) => write!(f, "cannot parse: {m}"),
            Error::TooLarge(m) => write!(f, "too large: {m}"),
            Error::Timeout => write!(f, "the time budget ran out"),
            Error::Undefined(m) => write!(f, "undefined: {m}"),
        }
    }
}

type R<T> = Result<T, Error>;

/// The most digits in one number literal.
pub const MAX_DIGITS: usize = 400;
/// The largest integer exponent evaluated exactly.
pub const MAX_EXACT_EXPONENT: u64 = 4096;
/// The most bits of an exact numerator or denominator before continuing in f64.
pub const MAX_EXACT_BITS: u64 = 16_384;
/// The deepest nesting of brackets and operators.
pub const MAX_DEPTH: usize = 96;
/// A decimal literal with a fractional part and at least this many significant digits is a
/// printed float (`0.3333333333333333`, `0.2857142857142857`) and evaluates in f64; integers
/// and shorter decimals stay exact.
pub const LONG_DECIMAL_DIGITS: usize = 15;

/// A deadline and a step counter, checked in every loop.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Instant,
    steps: u64,
}

impl Budget {
    /// A budget that ends at `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self { deadline, steps: 0 }
    }

    /// One unit of work; an error once the deadline has passed.
    pub fn tick(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps.is_multiple_of(64) && Instant::now() > self.deadline {
            return Err(Error::Timeout);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

/// A token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A decimal number literal.
    Num(String),
    /// A variable (`x`, `x_1`, `alpha`).
    Ident(String),
    /// A command without its backslash (`frac`, `pi`, `le`, `lbrace`).
    Cmd(String),
    /// Any other character.
    Sym(char),
}

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// The tokens of `text`, and whether it holds a run of three or more plain letters (a word,
/// which the caller compares as text rather than as a product of variables).
pub fn lex(text: &str, budget: &mut Budget) -> R<(Vec<Tok>, bool)> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut wordy = false;
    let mut letter_run = 0usize;
    let mut i = 0;
    while i < chars.len() {
        budget.tick()?;
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            letter_run += 1;
            wordy |= letter_run >= 3;
        } else {
            letter_run = 0;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            let mut seen_dot = false;
            while i < chars.len() && (chars[i].is_ascii_digit() || (chars[i] == '.' && !seen_dot)) {
                seen_dot |= chars[i] == '.';
                i += 1;
            }
            // `5.` at the end of a number: not part of it.
            let mut literal: String = chars[start..i].iter().collect();
            if literal.ends_with('.') {
                literal.pop();
                i -= 1;
            }
            if literal.len() > MAX_DIGITS {
                return Err(Error::TooLarge(format!(
                    "a number of {} digits",
                    literal.len()
                )));
            }
            toks.push(Tok::Num(literal));
            continue;
        }
        if c.is_ascii_alphabetic() {
            i += 1;
            let name = subscript(&chars, &mut i, c.to_string());
            toks.push(Tok::Ident(name));
            continue;
        }
        if c == '\\' {
            i += 1;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i == start {
                // `\{`, `\}`, `\|`, `\\`, `\,`.
                let tok = match chars.get(i) {
                    Some('{') => Some(Tok::Cmd("lbrace".into())),
                    Some('}') => Some(Tok::Cmd("rbrace".into())),
                    Some('|') => Some(Tok::Sym('|')),
                    _ => None,
                };
                toks.extend(tok);
                i += 1;
                continue;
            }
            let name: String = chars[start..i].iter().collect();
            let tok = match name.as_str() {
                "cdot" | "times" | "ast" => Tok::Sym('*'),
                "div" => Tok::Sym('/'),
                "lt" => Tok::Sym('<'),
                "gt" => Tok::Sym('>'),
                "leq" | "leqslant" | "le" => Tok::Cmd("le".into()),
                "geq" | "geqslant" | "ge" => Tok::Cmd("ge".into()),
                "neq" | "ne" => Tok::Cmd("ne".into()),
                "lbrace" => Tok::Cmd("lbrace".into()),
                "rbrace" => Tok::Cmd("rbrace".into()),
                "vert" | "mid" | "lvert" | "rvert" => Tok::Sym('|'),
                "langle" => Tok::Sym('('),
                "rangle" => Tok::Sym(')'),
                n if GREEK.contains(&n) => Tok::Ident(subscript(&chars, &mut i, name.clone())),
                _ => Tok::Cmd(name),
            };
            toks.push(tok);
            continue;
        }
        let tok = match c {
            'π' => Tok::Cmd("pi".into()),
            '∞' => Tok::Cmd("infty".into()),
            '≤' => Tok::Cmd("le".into()),
            '≥' => Tok::Cmd("ge".into()),
            '≠' => Tok::Cmd("ne".into()),
            '√' => Tok::Cmd("sqrt".into()),
            '∪' => Tok::Cmd("cup".into()),
            '×' | '·' | '⋅' => Tok::Sym('*'),
            '÷' => Tok::Sym('/'),
            '−' | '–' => Tok::Sym('-'),
            other => Tok::Sym(other),
        };
        toks.push(tok);
        i += 1;
    }
    Ok((toks, wordy))
}

/// `name` followed by `_1`, `_{12}` or `_x`: one identifier `name_12`.
fn subscript(chars: &[char], i: &mut usize, mut name: String) -> String {
    if chars.get(*i) != Some(&'_') {
        return name;
    }
    match chars.get(*i + 1) {
        Some('{') => {
            let mut j = *i + 2;
            let mut inner = String::new();
            while let Some(&c) = chars.get(j) {
                if c == '}' {
                    break;
                }
                if !c.is_whitespace() {
                    inner.push(c);
                }
                j += 1;
            }
            if chars.get(j) == Some(&'}') && !inner.is_empty() && inner.len() <= 16 {
                name.push('_');
                name.push_str(&inner);
                *i = j + 1;
            }
        }
        Some(&c) if c.is_ascii_alphanumeric() => {
            name.push('_');
            name.push(c);
            *i += 2;
        }
        _ => {}
    }
    name
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`
    Add,
    /// `−`
    Sub,
    /// `×`
    Mul,
    /// `÷`
    Div,
    /// `^`
    Pow,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// An exact number.
    Num(BigRational),
    /// A decimal literal of [`LONG_DECIMAL_DIGITS`] or more significant digits, evaluated in
    /// f64.
    LongDecimal(BigRational),
    /// `\pi`.
    Pi,
    /// Euler's number `e`.
    E,
    /// `\infty`.
    Inf,
    /// A variable.
    Var(String),
    /// `−x`.
    Neg(Box<Expr>),
    /// `a op b`.
    Bin(Op, Box<Expr>, Box<Expr>),
    /// A function of one argument (`sqrt`, `sin`, `ln`, `abs`, ...).
    Call(String, Box<Expr>),
    /// `\sqrt[n]{x}`: (index, radicand).
    Root(Box<Expr>, Box<Expr>),
    /// `\log_b x`: (base, argument).
    Log(Box<Expr>, Box<Expr>),
    /// `n!`.
    Fact(Box<Expr>),
}

const FUNCTIONS: &[&str] = &[
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "ln", "log", "exp",
];

/// A parser over a token slice.
pub struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    depth: usize,
    budget: &'a mut Budget,
}

impl<'a> Parser<'a> {
    /// A parser at the start of `toks`.
    pub fn new(toks: &'a [Tok], budget: &'a mut Budget) -> Self {
        Self {
            toks,
            pos: 0,
            depth: 0,
            budget,
        }
    }

    /// Parses all of the tokens as one expression.
    pub fn parse_all(mut self) -> R<Expr> {
        let e = self.expr()?;
        match self.peek() {
            None => Ok(e),
            Some(t) => Err(Error::Syntax(format!("unexpected {t:?}"))),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat_sym(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, c: char) -> R<()> {
        if self.eat_sym(c) {
            Ok(())
        } else {
            Err(Error::Syntax(format!(
                "expected `{c}`, found {:?}",
                self.peek()
            )))
        }
    }

    fn enter(&mut self) -> R<()> {
        self.budget.tick()?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::TooLarge("nesting".into()));
        }
        Ok(())
    }

    /// `expr := term (('+' | '−') term)*`
    pub fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let mut lhs = self.term()?;
        loop {
            self.budget.tick()?;
            let op = match self.peek() {
                Some(Tok::Sym('+')) => Op::Add,
                Some(Tok::Sym('-')) => Op::Sub,
                _ => break,
            };
            self.pos += 1;
            let rhs = self.term()?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn starts_atom(tok: Option<&Tok>) -> bool {
        match tok {
            Some(Tok::Num(_) | Tok::Ident(_)) => true,
            Some(Tok::Sym('(' | '{')) => true,
            Some(Tok::Cmd(c)) => {
                matches!(c.as_str(), "pi" | "infty" | "frac" | "sqrt" | "cfrac")
                    || FUNCTIONS.contains(&c.as_str())
            }
            _ => false,
        }
    }

    /// `term := unary (('×' | '÷' | implicit) power)*`
    fn term(&mut self) -> R<Expr> {
        self.enter()?;
        let mut lhs = self.unary()?;
        loop {
            self.budget.tick()?;
            let (op, rhs) = match self.peek() {
                Some(Tok::Sym('*')) => {
                    self.pos += 1;
                    (Op::Mul, self.unary()?)
                }
                Some(Tok::Sym('/')) => {
                    self.pos += 1;
                    (Op::Div, self.unary()?)
                }
                t if Self::starts_atom(t) => (Op::Mul, self.power()?),
                _ => break,
            };
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> R<Expr> {
        self.enter()?;
        let e = if self.eat_sym('-') {
            Expr::Neg(Box::new(self.unary()?))
        } else if self.eat_sym('+') {
            self.unary()?
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(e)
    }

    /// `power := postfix ('^' exponent)?`, right-associative.
    fn power(&mut self) -> R<Expr> {
        self.enter()?;
        let base = self.postfix()?;
        let e = if self.eat_sym('^') {
            let exponent = self.exponent()?;
            Expr::Bin(Op::Pow, Box::new(base), Box::new(exponent))
        } else {
            base
        };
        self.depth -= 1;
        Ok(e)
    }

    fn exponent(&mut self) -> R<Expr> {
        self.enter()?;
        let e = if self.eat_sym('-') {
            Expr::Neg(Box::new(self.exponent()?))
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn postfix(&mut self) -> R<Expr> {
        let mut a = self.atom()?;
        while self.eat_sym('!') {
            self.budget.tick()?;
            a = Expr::Fact(Box::new(a));
        }
        Ok(a)
    }

    /// A `{...}` group, or a single atom (`\frac12` after normalization is braced anyway).
    fn group(&mut self) -> R<Expr> {
        self.enter()?;
        let e = if self.eat_sym('{') {
            let e = self.expr()?;
            self.expect_sym('}')?;
            e
        } else {
            self.postfix()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn atom(&mut self) -> R<Expr> {
        self.enter()?;
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| Error::Syntax("unexpected end".into()))?;
        self.pos += 1;
        let e = match tok {
            Tok::Num(s) if is_long_decimal(&s) => Expr::LongDecimal(parse_decimal(&s)?),
            Tok::Num(s) => Expr::Num(parse_decimal(&s)?),
            Tok::Ident(name) if name == "e" => Expr::E,
            Tok::Ident(name) => Expr::Var(name),
            Tok::Sym('(') => {
                let e = self.expr()?;
                self.expect_sym(')')?;
                e
            }
            Tok::Sym('{') => {
                let e = self.expr()?;
                self.expect_sym('}')?;
                e
            }
            Tok::Sym('|') => {
                let e = self.expr()?;
                self.expect_sym('|')?;
                Expr::Call("abs".into(), Box::new(e))
            }
            Tok::Cmd(c) => match c.as_str() {
                "pi" => Expr::Pi,
                "infty" => Expr::Inf,
                "frac" | "cfrac" => {
                    let n = self.group()?;
                    let d = self.group()?;
                    Expr::Bin(Op::Div, Box::new(n), Box::new(d))
                }
                "sqrt" => {
                    if self.eat_sym('[') {
                        let index = self.expr()?;
                        self.expect_sym(']')?;
                        let x = self.group()?;
                        Expr::Root(Box::new(index), Box::new(x))
                    } else {
                        Expr::Call("sqrt".into(), Box::new(self.group()?))
                    }
                }
                f if FUNCTIONS.contains(&f) => self.function(f)?,
                other => return Err(Error::Syntax(format!("unknown command `\\{other}`"))),
            },
            other => return Err(Error::Syntax(format!("unexpected {other:?}"))),
        };
        self.depth -= 1;
        Ok(e)
    }

    /// `\sin x`, `\sin(x)`, `\sin^2 x`, `\log_2 8`.
    fn function(&mut self, name: &str) -> R<Expr> {
        let base = if name == "log" && self.eat_sym('_') {
            Some(self.group()?)
        } else {
            None
        };
        let power = if self.eat_sym('^') {
            Some(self.exponent()?)
        } else {
            None
        };
        let argument = if self.peek() == Some(&Tok::Sym('(')) {
            self.pos += 1;
            let e = self.expr()?;
            self.expect_sym(')')?;
            e
        } else {
            self.power()?
        };
        let call = match base {
            Some(b) => Expr::Log(Box::new(b), Box::new(argument)),
            None => Expr::Call(name.to_string(), Box::new(argument)),
        };
        Ok(match power {
            Some(p) => Expr::Bin(Op::Pow, Box::new(call), Box::new(p)),
            None => call,
        })
    }
}

/// Whether a number literal has a fractional part and [`LONG_DECIMAL_DIGITS`] or more
/// significant digits (leading and trailing zeros do not count: `5.000000000000000` is short).
pub fn is_long_decimal(s: &str) -> bool {
    let Some((int, frac)) = s.split_once('.') else {
        return false;
    };
    let digits = format!("{int}{frac}");
    digits.trim_matches('0').len() >= LONG_DECIMAL_DIGITS
}

/// `"12.50"` → 25/2, exactly.
pub fn parse_decimal(s: &str) -> R<BigRational> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = format!("{int}{frac}");
    let numerator: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits
            .parse()
            .map_err(|_| Error::Syntax(format!("bad number `{s}`")))?
    };
    let denominator = num_traits::pow(BigInt::from(10), frac.len());
    Ok(BigRational::new(numerator, denominator))
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// A value: exact while possible.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// An exact rational.
    Exact(BigRational),
    /// A float (from an irrational operation).
    Float(f64),
}

impl Num {
    /// The value as f64 (infinite when it does not fit).
    pub fn to_f64(&self) -> f64 {
        match self {
            Num::Exact(r) => r.to_f64().unwrap_or(if r.is_negative() {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
            Num::Float(f) => *f,
        }
    }
}

fn small_enough(r: &BigRational) -> bool {
    r.numer().bits() <= MAX_EXACT_BITS && r.denom().bits() <= MAX_EXACT_BITS
}

fn exact_or_float(r: BigRational) -> Num {
    if small_enough(&r) {
        Num::Exact(r)
    } else {
        Num::Float(r.to_f64().unwrap_or(f64::NAN))
    }
}

/// The exact `n`-th root of a non-negative rational, if it is rational.
fn exact_root(r: &BigRational, n: u32) -> Option<BigRational> {
    if r.is_negative() || n == 0 {
        return None;
    }
    let (p, q) = (r.numer().nth_root(n), r.denom().nth_root(n));
    let candidate = BigRational::new(p, q);
    (num_traits::pow(candidate.clone(), n as usize) == *r).then_some(candidate)
}

fn float(x: f64, what: &str) -> R<Num> {
    if x.is_nan() {
        Err(Error::Undefined(what.to_string()))
    } else {
        Ok(Num::Float(x))
    }
}

/// Evaluates `e` with variables from `env`.
pub fn eval(e: &Expr, env: &dyn Fn(&str) -> Option<Num>, budget: &mut Budget) -> R<Num> {
    budget.tick()?;
    Ok(match e {
        Expr::Num(r) => Num::Exact(r.clone()),
        Expr::LongDecimal(r) => Num::Float(Num::Exact(r.clone()).to_f64()),
        Expr::Pi => Num::Float(std::f64::consts::PI),
        Expr::E => Num::Float(std::f64::consts::E),
        Expr::Inf => Num::Float(f64::INFINITY),
        Expr::Var(v) => {
            env(v).ok_or_else(|| Error::Undefined(format!("the variable `{v}` has no value")))?
        }
        Expr::Neg(a) => match eval(a, env, budget)? {
            Num::Exact(r) => Num::Exact(-r),
            Num::Float(f) => Num::Float(-f),
        },
        Expr::Bin(op, a, b) => {
            let (x, y) = (eval(a, env, budget)?, eval(b, env, budget)?);
            binary(*op, x, y)?
        }
        Expr::Call(f, a) => {
            let x = eval(a, env, budget)?;
            call(f, x)?
        }
        Expr::Root(n, x) => {
            let (n, x) = (eval(n, env, budget)?, eval(x, env, budget)?);
            match (&n, &x) {
                (Num::Exact(k), Num::Exact(r)) if k.is_integer() => {
                    let k = k.to_integer().to_u32().filter(|&k| (1..=64).contains(&k));
                    match k.and_then(|k| exact_root(r, k)) {
                        Some(root) => Num::Exact(root),
                        None => float(x.to_f64().powf(1.0 / n.to_f64()), "root")?,
                    }
                }
                _ => float(x.to_f64().powf(1.0 / n.to_f64()), "root")?,
            }
        }
        Expr::Log(b, x) => {
            let (b, x) = (eval(b, env, budget)?, eval(x, env, budget)?);
            float(x.to_f64().ln() / b.to_f64().ln(), "log")?
        }
        Expr::Fact(a) => match eval(a, env, budget)? {
            Num::Exact(r) if r.is_integer() && !r.is_negative() => {
                let n = r
                    .to_integer()
                    .to_u32()
                    .filter(|&n| n <= 500)
                    .ok_or_else(|| Error::TooLarge("a factorial above 500!".into()))?;
                let mut acc = BigInt::one();
                for k in 2..=n {
                    budget.tick()?;
                    acc *= k;
                }
                Num::Exact(BigRational::from_integer(acc))
            }
            // `d!` for a variable: Γ(d + 1).
            other => float(gamma(other.to_f64() + 1.0), "a factorial")?,
        },
    })
}

/// Γ(x) by the Lanczos approximation (g = 7, 9 terms; relative error ~1e-15), with the
/// reflection formula below 1/2.
pub fn gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let s = (std::f64::consts::PI * x).sin();
        return std::f64::consts::PI / (s * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |acc, (k, c)| acc + c / (x + k as f64 + 1.0));
    (2.0 * std::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * series
}

fn binary(op: Op, x: Num, y: Num) -> R<Num> {
    if let (Num::Exact(a), Num::Exact(b)) = (&x, &y) {
        match op {
            Op::Add => return Ok(exact_or_float(a + b)),
            Op::Sub => return Ok(exact_or_float(a - b)),
            Op::Mul => return Ok(exact_or_float(a * b)),
            Op::Div => {
                if b.is_zero() {
                    return Err(Error::Undefined("division by zero".into()));
                }
                return Ok(exact_or_float(a / b));
            }
            Op::Pow => {
                if let Some(r) = exact_pow(a, b)? {
                    return Ok(r);
                }
            }
        }
    }
    let (a, b) = (x.to_f64(), y.to_f64());
    let v = match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
        Op::Pow => a.powf(b),
    };
    float(v, "an operation")
}

/// `a^b` exactly, when `b` is an integer (or `1/n` of a perfect power) within the caps.
fn exact_pow(a: &BigRational, b: &BigRational) -> R<Option<Num>> {
    if b.is_integer() {
        let n = b.to_integer();
        let magnitude = n.abs().to_u64().unwrap_or(u64::MAX);
        let bits = a.numer().bits().max(a.denom().bits()).max(1);
        if magnitude > MAX_EXACT_EXPONENT || bits.saturating_mul(magnitude) > MAX_EXACT_BITS {
            return Ok(None); // continue in f64
        }
        if a.is_zero() && n.is_negative() {
            return Err(Error::Undefined("zero to a negative power".into()));
        }
        let p = num_traits::pow(a.clone(), magnitude as usize);
        return Ok(Some(Num::Exact(if n.is_negative() {
            p.recip()
        } else {
            p
        })));
    }
    // a^(p/q) with a perfect q-th power.
    let (p, q) = (b.numer().to_i64(), b.denom().to_u32());
    if let (Some(p), Some(q)) = (p, q)
        && q <= 64
        && p.unsigned_abs() <= MAX_EXACT_EXPONENT
        && let Some(root) = exact_root(a, q)
    {
        return exact_pow(&root, &BigRational::from_integer(BigInt::from(p)));
    }
    Ok(None)
}

fn call(f: &str, x: Num) -> R<Num> {
    if f == "sqrt"
        && let Num::Exact(r) = &x
    {
        if r.is_negative() {
            return Err(Error::Undefined(
                "the square root of a negative number".into(),
            ));
        }
        if let Some(root) = exact_root(r, 2) {
            return Ok(Num::Exact(root));
        }
    }
    if f == "abs"
        && let Num::Exact(r) = &x
    {
        return Ok(Num::Exact(r.abs()));
    }
    let v = x.to_f64();
    let y = match f {
        "sqrt" => v.sqrt(),
        "abs" => v.abs(),
        "sin" => v.sin(),
        "cos" => v.cos(),
        "tan" => v.tan(),
        "sec" => 1.0 / v.cos(),
        "csc" => 1.0 / v.sin(),
        "cot" => 1.0 / v.tan(),
        "arcsin" => v.asin(),
        "arccos" => v.acos(),
        "arctan" => v.atan(),
        "sinh" => v.sinh(),
        "cosh" => v.cosh(),
        "tanh" => v.tanh(),
        "ln" => v.ln(),
        "log" => v.log10(),
        "exp" => v.exp(),
        other => return Err(Error::Syntax(format!("unknown function `{other}`"))),
    };
    float(y, f)
}

/// The variables of `e`, sorted and deduplicated.
pub fn variables(e: &Expr) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Var(v) => out.push(v.clone()),
            Expr::Neg(a) | Expr::Call(_, a) | Expr::Fact(a) => walk(a, out),
            Expr::Bin(_, a, b) | Expr::Root(a, b) | Expr::Log(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out.sort();
    out.dedup();
    out
}
