//! Finding the final answer in a model's response.
//!
//! Priority levels, highest first; within a level the *last* occurrence wins (right to left):
//! 1. `\boxed{...}` (balanced braces), `\boxed x`, `\fbox{...}`;
//! 2. `#### x` (GSM8K);
//! 3. `Answer: x`, "the answer is x", "final answer is x" (case-insensitive, to the line end);
//! 4. the last LaTeX math environment: `$...$`, `$$...$$`, `\(...\)`, `\[...\]`;
//! 5. the last number, if the fallback is on.

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

/// The last number (`-1,234.5`, `3/4`) in the text.
fn last_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut end = chars.len();
    while end > 0 {
        if chars[end - 1].is_ascii_digit() {
            let mut start = end;
            while start > 0
                && (chars[start - 1].is_ascii_digit()
                    || (matches!(chars[start - 1], '.' | ',' | '/')
                        && start >= 2
                        && chars[start - 2].is_ascii_digit()))
            {
                start -= 1;
            }
            if start > 0 && chars[start - 1] == '-' {
                start -= 1;
            }
            return Some(chars[start..end].iter().collect());
        }
        end -= 1;
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
