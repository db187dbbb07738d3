//! Rewriting an extracted answer into the plain form the parser reads.
//!
//! What is removed or rewritten (each a documented behaviour of the math verifier):
//! - math delimiters `$`, `\(`, `\)`, `\[`, `\]`, `\displaystyle`, `\left`, `\right`, spacing
//!   commands (`\!`, `\;`, `\:`, `\quad`, `~`), a trailing period;
//! - `\dfrac` / `\tfrac` → `\frac`; `\frac13` → `\frac{1}{3}`; `\sqrt3` → `\sqrt{3}`;
//! - `\text{...}`, `\textnormal`, `\mathrm`, `\textbf`, `\mbox` → their content, then trailing
//!   unit words (`cm`, `dollars`, `degrees`, ...) after a number;
//! - degrees `^\circ`, `°`; currency `\$`, `$`; percent `\%`, `%`, "percent" (recorded: a
//!   percentage matches its number or its number / 100);
//! - thousands separators `1,000`, `1{,}000`, `11,\! 111`, only where every group after the
//!   first has exactly three digits and no space follows the comma (`32, 349` is a pair);
//! - thousands grouped by spaces ([`join_digit_groups`]): a space, a thin space (U+2009), a
//!   narrow no-break space (U+202F), a no-break space (U+00A0), `\,` or `\ ` between digit
//!   groups: `1 234 567` → `1234567`, only where the first group has 1-3 digits and every later
//!   group exactly three (`12 3456` and `1 2 345` stay as they are); elsewhere `\,` is a space;
//! - `x = 5` → `5` and chains `x = 5+5+1 = 11` → `11` (the last side) when the left side is a
//!   single symbol.

/// The normalized answer text and whether it was a percentage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The text for the parser.
    pub text: String,
    /// A `%`, `\%` or "percent" was removed.
    pub percent: bool,
}

const WRAPPERS: &[&str] = &[
    "\\textnormal",
    "\\textbf",
    "\\textit",
    "\\mathrm",
    "\\mathbf",
    "\\mathit",
    "\\operatorname",
    "\\text",
    "\\mbox",
    "\\hbox",
];

const UNITS: &[&str] = &[
    "cm",
    "mm",
    "km",
    "m",
    "meter",
    "meters",
    "metre",
    "metres",
    "centimeters",
    "inch",
    "inches",
    "in",
    "ft",
    "feet",
    "foot",
    "yd",
    "yard",
    "yards",
    "mile",
    "miles",
    "mi",
    "kg",
    "g",
    "gram",
    "grams",
    "lb",
    "lbs",
    "pound",
    "pounds",
    "oz",
    "ounce",
    "ounces",
    "s",
    "sec",
    "second",
    "seconds",
    "min",
    "minute",
    "minutes",
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "degree",
    "degrees",
    "unit",
    "units",
    "square",
    "sq",
    "cubic",
    "mph",
    "people",
    "students",
    "times",
    "ways",
    "points",
    "liters",
    "litres",
    "l",
    "ml",
    "mL",
    "gallons",
    "euros",
    "Hz",
    "kHz",
    "MHz",
    "GHz",
    "J",
    "kJ",
    "eV",
    "keV",
    "MeV",
    "K",
    "N",
    "W",
    "kW",
    "V",
    "Pa",
    "nm",
    "um",
    "km/s",
    "m/s",
    "cm/s",
];

/// Replaces each `command{content}` by `content` (for the `WRAPPERS`).
fn unwrap_commands(text: &str) -> String {
    let mut out = text.to_string();
    for command in WRAPPERS {
        let mut guard = 0;
        while let Some(start) = out.find(&format!("{command}{{")) {
            guard += 1;
            if guard > 1000 {
                break;
            }
            let open = start + command.len();
            match super::extract::balanced(&out, open) {
                Some((content, end)) => {
                    let content = content.to_string();
                    out.replace_range(start..end, &format!(" {content} "));
                }
                None => {
                    out.replace_range(start..open + 1, "");
                }
            }
        }
    }
    out
}

/// `\frac13` → `\frac{1}{3}`, `\frac{1}3` → `\frac{1}{3}`, `\sqrt3` → `\sqrt{3}`.
fn brace_short_arguments(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..chars.len().min(i + 6)].iter().collect();
        let (command, arguments) = if rest.starts_with("\\frac") {
            ("\\frac", 2)
        } else if rest.starts_with("\\sqrt") {
            ("\\sqrt", 1)
        } else {
            out.push(chars[i]);
            i += 1;
            continue;
        };
        out.push_str(command);
        i += command.len();
        // `\sqrt[n]{x}`: keep the index as it is.
        if command == "\\sqrt" && chars.get(i) == Some(&'[') {
            continue;
        }
        for _ in 0..arguments {
            while chars.get(i) == Some(&' ') {
                i += 1;
            }
            match chars.get(i) {
                Some('{') => {
                    // Copy the balanced group as it is.
                    let mut depth = 0;
                    while let Some(&c) = chars.get(i) {
                        out.push(c);
                        i += 1;
                        if c == '{' {
                            depth += 1;
                        } else if c == '}' {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                    }
                }
                Some(&c) if c.is_ascii_alphanumeric() => {
                    out.push('{');
                    out.push(c);
                    out.push('}');
                    i += 1;
                }
                _ => break,
            }
        }
    }
    out
}

/// Drops thousands separators: `1,234,567` → `1234567` where every group after the first
/// has exactly three digits and the comma is not followed by a space.
fn drop_thousands_separators(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ',' && i > 0 && chars[i - 1].is_ascii_digit() {
            // Three digits, then not a digit.
            let three = (1..=3).all(|k| chars.get(i + k).is_some_and(char::is_ascii_digit));
            let fourth = chars.get(i + 4).is_some_and(char::is_ascii_digit);
            // The digits before: a run of 1-3 digits not preceded by `.` (not a decimal part).
            let mut start = i;
            while start > 0 && chars[start - 1].is_ascii_digit() {
                start -= 1;
            }
            let leading_ok = i - start <= 3 || out.ends_with(|d: char| d.is_ascii_digit());
            let decimal_before = start > 0 && chars[start - 1] == '.';
            if three && !fourth && leading_ok && !decimal_before {
                i += 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The width of the digit-group separator at `chars[i]`: a space, a thin space (U+2009), a
/// narrow no-break space (U+202F), a no-break space (U+00A0), or LaTeX `\,` or `\ `.
fn group_separator(chars: &[char], i: usize) -> Option<usize> {
    match chars.get(i)? {
        ' ' | '\u{2009}' | '\u{202F}' | '\u{00A0}' => Some(1),
        '\\' if matches!(chars.get(i + 1), Some(',' | ' ')) => Some(2),
        _ => None,
    }
}

/// Joins thousands grouped by spaces: `1 234 567` → `1234567`, `-12\,345.5` → `-12345.5`.
///
/// A chain is a run of digits followed by one or more (single separator, run of digits). It is
/// joined only when its first run has 1-3 digits, every later run exactly three, and the first
/// run starts a number (it does not follow a letter, a digit group `1,`, `.`, `^` or `_`: not
/// `\frac12 345`, `0.123 456`, `10^3 000`). Any other chain is kept whole as it is, so that
/// unrelated numbers are never merged: `12 3456`, `1 2 345`, `10 100 1000`.
pub fn join_digit_groups(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let run_end = |mut j: usize| {
        while chars.get(j).is_some_and(char::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !c.is_ascii_digit() {
            out.push(c);
            i += 1;
            continue;
        }
        // `i` starts a run of digits (the previous character is not a digit).
        let mut groups = vec![(i, run_end(i))];
        let mut j = groups[0].1;
        while let Some(width) = group_separator(&chars, j) {
            if !chars.get(j + width).is_some_and(char::is_ascii_digit) {
                break;
            }
            let end = run_end(j + width);
            groups.push((j + width, end));
            j = end;
        }
        let starts_number = match i.checked_sub(1).map(|k| chars[k]) {
            None => true,
            Some(',') => !(i >= 2 && chars[i - 2].is_ascii_digit()),
            Some(p) => !(p.is_alphanumeric() || matches!(p, '.' | '^' | '_')),
        };
        let joined = groups.len() > 1
            && starts_number
            && (1..=3).contains(&(groups[0].1 - groups[0].0))
            && groups[1..].iter().all(|(s, e)| e - s == 3);
        if joined {
            for &(s, e) in &groups {
                out.extend(&chars[s..e]);
            }
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}

/// Strips trailing unit words after a number: `5 cm` → `5`, `12 square feet` → `12`.
fn strip_units(text: &str) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let mut stripped = false;
    while words.len() > 1 {
        let last = words[words.len() - 1];
        // `cm ^2`: an exponent on the unit goes with it.
        if last.starts_with('^') && words.len() > 2 {
            let unit = words[words.len() - 2];
            if UNITS.contains(&unit) {
                words.truncate(words.len() - 2);
                stripped = true;
                continue;
            }
        }
        let bare = last.trim_end_matches(['.', ',']);
        let bare = bare.split('^').next().unwrap_or(bare);
        if UNITS.contains(&bare) || UNITS.contains(&bare.to_ascii_lowercase().as_str()) {
            words.pop();
            stripped = true;
        } else {
            break;
        }
    }
    let joined = words.join(" ");
    let has_digit = joined.chars().any(|c| c.is_ascii_digit());
    if stripped && has_digit {
        joined
    } else {
        text.to_string()
    }
}

/// Normalizes an extracted answer for parsing.
pub fn normalize(answer: &str) -> Normalized {
    let mut s = answer.trim().to_string();
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\displaystyle", ""),
        ("\\left", ""),
        ("\\right", ""),
        ("\\bigl", ""),
        ("\\bigr", ""),
        ("\\big", ""),
        ("\\Bigl", ""),
        ("\\Bigr", ""),
        ("\\{,\\}", ","),
        ("{,}", ","),
        (",\\! ", ","),
        (",\\!", ","),
        ("\\!", ""),
        ("\\,", "\u{2009}"),
        ("\\;", " "),
        ("\\:", " "),
        ("\\quad", " "),
        ("\\qquad", " "),
        ("\\ ", " "),
        ("~", " "),
        ("\\(", ""),
        ("\\)", ""),
        ("\\[", ""),
        ("\\]", ""),
        ("\\$", ""),
        ("$", ""),
        ("−", "-"),
    ] {
        s = s.replace(from, to);
    }
    s = unwrap_commands(&s);
    // Degrees.
    for degree in ["^{\\circ}", "^\\circ", "^{\\circ }", "\\circ", "°", "^{o}"] {
        s = s.replace(degree, "");
    }
    // Percent.
    let mut percent = false;
    for mark in ["\\%", "%", "percent"] {
        if s.contains(mark) {
            percent = true;
            s = s.replace(mark, "");
        }
    }
    s = strip_units(s.trim());
    s = s.trim().trim_end_matches('.').trim().to_string();
    s = brace_short_arguments(&s);
    s = join_digit_groups(&s);
    s = drop_thousands_separators(&s);
    // `x = 5`, `x = 5 + 6 = 11`: the last side when the first is a single symbol.
    if let Some(first) = s.split('=').next()
        && s.contains('=')
        && !s.contains("\\le")
        && !s.contains("\\ge")
        && is_simple_symbol(first.trim())
    {
        s = s.rsplit('=').next().unwrap_or("").trim().to_string();
    }
    Normalized {
        text: s.trim().to_string(),
        percent,
    }
}

/// `x`, `y_1`, `\theta`, `f(x)`, `AB`: a left side to drop from `lhs = value`.
fn is_simple_symbol(lhs: &str) -> bool {
    let lhs = lhs.trim();
    if lhs.is_empty() || lhs.len() > 12 {
        return false;
    }
    let body = lhs.strip_prefix('\\').unwrap_or(lhs);
    let function_call = body.ends_with(')') && body.contains('(');
    let simple = body
        .chars()
        .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '{' || c == '}' || c.is_ascii_digit());
    let starts_alpha = body.starts_with(|c: char| c.is_ascii_alphabetic());
    starts_alpha && (simple || function_call)
}
