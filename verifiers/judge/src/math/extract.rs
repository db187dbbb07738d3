//! Finding the final answer in a model's response.
//!
//! Priority levels, highest first; within a level the *last* occurrence wins (right to left):
//! 1. `\boxed{...}` (balanced braces), `\boxed x`, `\fbox{...}`;
//! 2. `#### x` (GSM8K);
//! 3. `Answer: x`, "the answer is x", "final answer is x" (case-insensitive, to the line end);
//! 4. the last LaTeX math environment: `$...$`, `$$...$$`, `\(...\)`, `\[...\]`;
//! 5. the last number (or the bare `\frac{a}{b}` around it), if the fallback is on; see
//!    `last_number` for what is and is not a number there.

/// How an answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `\boxed`, `\fbox`.
    Boxed,
    /// `#### x`.
    Hashes,
    /// `Answer: x` or "the answer is x".
    Phrase,
    /// A LaTeX math environment.
    Math,
    /// The last number in the text.
    LastNumber,
    /// The whole (short) response.
    Whole,
}

impl Method {
    /// A short name for verdict reasons.
    pub fn name(self) -> &'static str {
        match self {
            Method::Boxed => "\\boxed",
            Method::Hashes => "####",
            Method::Phrase => "an `Answer:` phrase",
            Method::Math => "the last math environment",
            Method::LastNumber => "the last number",
            Method::Whole => "the whole response",
        }
    }
}

/// The content of the balanced `{...}` group starting at byte `open` (which holds `{`), and the
/// byte after its closing brace; `None` if it never closes.
pub fn balanced(text: &str, open: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(open) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1, // skip an escaped character such as `\{`
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((&text[open + 1..i], i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The last `\boxed{...}` / `\boxed x` / `\fbox{...}` content.
fn last_boxed(text: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for command in ["\\boxed", "\\fbox"] {
        for (start, _) in text.match_indices(command) {
            let after = start + command.len();
            let rest = &text[after..];
            // `\boxedx` is another command, not `\boxed x`.
            if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            let trimmed = rest.trim_start();
            let offset = after + rest.len() - trimmed.len();
            let content = if trimmed.starts_with('{') {
                balanced(text, offset).map(|(c, _)| c.to_string())
            } else if rest.starts_with(' ') {
                // `\boxed 5`: up to the next space, `$` or line end.
                let word: String = trimmed
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '$')
                    .collect();
                (!word.is_empty()).then_some(word)
            } else {
                None
            };
            if let Some(content) = content
                && best.as_ref().is_none_or(|(s, _)| start > *s)
            {
                best = Some((start, content));
            }
        }
    }
    best.map(|(_, c)| c)
}

/// The rest of the line after the last `####`.
fn last_hashes(text: &str) -> Option<String> {
    let start = text.rfind("####")?;
    let line = text[start + 4..].lines().next().unwrap_or("").trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// The rest of the line after the last answer phrase.
fn last_phrase(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<usize> = None;
    for phrase in ["answer:", "answer is", "answer is:"] {
        if let Some(i) = lower.rfind(phrase) {
            let end = i + phrase.len();
            if best.is_none_or(|b| end > b) {
                best = Some(end);
            }
        }
    }
    let rest = text.get(best?..)?;
    let line = rest.lines().next().unwrap_or("").trim();
    let line = line.trim_end_matches(['.', '!']).trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// The last math environment's content.
fn last_math(text: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |start: usize, content: &str| {
        let content = content.trim();
        if !content.is_empty() && best.as_ref().is_none_or(|(s, _)| start > *s) {
            best = Some((start, content.to_string()));
        }
    };
    for (open, close) in [("\\(", "\\)"), ("\\[", "\\]")] {
        let mut from = 0;
        while let Some(i) = text[from..].find(open) {
            let start = from + i;
            let body = start + open.len();
            match text[body..].find(close) {
                Some(j) => {
                    consider(start, &text[body..body + j]);
                    from = body + j + close.len();
                }
                None => break,
            }
        }
    }
    // `$...$` and `$$...$$`, skipping escaped `\$`.
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut open: Option<(usize, usize)> = None; // (start, width)
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == b'$' {
            let width = if bytes.get(i + 1) == Some(&b'$') {
                2
            } else {
                1
            };
            match open {
                None => open = Some((i, width)),
                Some((start, w)) => {
                    consider(start, &text[start + w..i]);
                    open = None;
                    i += width;
                    continue;
                }
            }
            i += width;
            continue;
        }
        i += 1;
    }
    best.map(|(_, c)| c)
}

/// The most characters of a bare fraction taken by the last-number fallback.
const MAX_FRACTION_CHARS: usize = 200;

/// The end (exclusive) of the two arguments of a fraction command whose name ends before
/// `chars[i]`: `{3}{4}`, `34`, `{3}4`; `None` if they are malformed or reach `limit`.
fn fraction_end(chars: &[char], mut i: usize, limit: usize) -> Option<usize> {
    for _ in 0..2 {
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        match *chars.get(i)? {
            '{' => {
                let mut depth = 0usize;
                loop {
                    if i >= limit {
                        return None;
                    }
                    match *chars.get(i)? {
                        '\\' => i += 1, // `\{` is not a brace
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphanumeric() => i += 1,
            _ => return None,
        }
    }
    (i <= limit).then_some(i)
}

/// The outermost `\frac` / `\dfrac` / `\tfrac` / `\cfrac` (at most [`MAX_FRACTION_CHARS`]
/// long) around `chars[start..end]`, as a character range.
fn enclosing_fraction(chars: &[char], start: usize, end: usize) -> Option<(usize, usize)> {
    let from = start.saturating_sub(MAX_FRACTION_CHARS);
    (from..start).find_map(|k| {
        if chars[k] != '\\' {
            return None;
        }
        let name_end = ["frac", "dfrac", "tfrac", "cfrac"]
            .iter()
            .find_map(|name| {
                let n = name.len();
                let matches = chars.len() >= k + 1 + n
                    && chars[k + 1..k + 1 + n].iter().copied().eq(name.chars())
                    && !chars.get(k + 1 + n).is_some_and(char::is_ascii_alphabetic);
                matches.then_some(k + 1 + n)
            })?;
        let fraction_end = fraction_end(chars, name_end, k + MAX_FRACTION_CHARS)?;
        (fraction_end >= end).then_some((k, fraction_end))
    })
}

/// The last number in the text (`-1,234.5`, `3/4`, `.5`, `1 234 567`), or the bare fraction
/// around it (`\frac{3}{4}`, `-\dfrac34`).
///
/// - A number glued inside a word, with a letter (or `_`) right before and right after it
///   (`abc123def`, `x2y`, `var1a`), is no candidate: the search goes on to its left. A number
///   with a letter on one side only stays one (`5kg`, `12cm`, `x=5`).
/// - A `.` before the digits that does not follow a letter, digit or `.` is a decimal point:
///   `.5`, `-.25` (but `end.5` and `so...5` are `5`).
/// - Thousands grouped by spaces join as in [`super::normalize::join_digit_groups`].
/// - A number inside the arguments of a fraction command (`\frac{3}{4}` written outside math
///   delimiters) gives the outermost such fraction, with a `-` right before it.
fn last_number(text: &str) -> Option<String> {
    let text = super::normalize::join_digit_groups(&text.replace("{,}", ","));
    let chars: Vec<char> = text.chars().collect();
    let in_word = |c: char| c.is_alphabetic() || c == '_';
    let mut end = chars.len();
    while end > 0 {
        if !chars[end - 1].is_ascii_digit() {
            end -= 1;
            continue;
        }
        let mut start = end;
        while start > 0
            && (chars[start - 1].is_ascii_digit()
                || (matches!(chars[start - 1], '.' | ',' | '/')
                    && start >= 2
                    && chars[start - 2].is_ascii_digit()))
        {
            start -= 1;
        }
        if start > 0
            && chars[start - 1] == '.'
            && !(start >= 2 && (chars[start - 2].is_alphanumeric() || chars[start - 2] == '.'))
        {
            start -= 1;
        }
        if start > 0 && in_word(chars[start - 1]) && chars.get(end).is_some_and(|&c| in_word(c)) {
            end = start;
            continue;
        }
        if let Some((f_start, f_end)) = enclosing_fraction(&chars, start, end) {
            start = f_start;
            end = f_end;
        }
        if start > 0 && chars[start - 1] == '-' {
            start -= 1;
        }
        return Some(chars[start..end].iter().collect());
    }
    None
}

/// The answer of `text` and how it was found.
pub fn extract(text: &str, last_number_fallback: bool) -> Option<(String, Method)> {
    if let Some(a) = last_boxed(text) {
        return Some((a, Method::Boxed));
    }
    if let Some(a) = last_hashes(text) {
        return Some((a, Method::Hashes));
    }
    if let Some(a) = last_phrase(text) {
        // "Answer: $8$, $4$" → all of it (the normalizer drops the delimiters);
        // "the answer is x = $5$" → the math inside.
        let inner = if a.starts_with('$') || a.starts_with("\\(") || a.starts_with("\\[") {
            a
        } else {
            last_math(&a).unwrap_or(a)
        };
        return Some((inner, Method::Phrase));
    }
    if let Some(a) = last_math(text) {
        return Some((a, Method::Math));
    }
    if last_number_fallback && let Some(a) = last_number(text) {
        return Some((a, Method::LastNumber));
    }
    None
}
