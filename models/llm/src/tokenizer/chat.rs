//! Chat templates rendered with `minijinja`, configured like transformers' renderer
//! (`transformers/utils/chat_template_utils.py`, `_cached_compile_jinja_template`):
//! `trim_blocks`, `lstrip_blocks`, loop controls, no auto-escaping, Python string and dict
//! methods, booleans and `none` printed as Python does, and the globals `raise_exception` and `strftime_now` plus a `tojson` filter that
//! behaves like `json.dumps(ensure_ascii=False)`.

use std::fmt::Write as _;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Value};

/// The name templates are compiled under (it shows in error messages).
const NAME: &str = "chat_template";

/// A chat template source with the environment that renders it.
#[derive(Debug)]
pub(crate) struct ChatTemplate {
    source: String,
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Checks that `source` compiles.
    pub(crate) fn new(source: String) -> Result<Self, String> {
        let env = environment().map_err(|e| describe(&e))?;
        env.template_from_named_str(NAME, &source)
            .map_err(|e| describe(&e))?;
        Ok(ChatTemplate { source, env })
    }

    /// The template text.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template with `context` (a map value).
    pub(crate) fn render(&self, context: Value) -> Result<String, String> {
        self.env
            .render_named_str(NAME, &self.source, context)
            .map_err(|e| describe(&e))
    }
}

/// A one-line description of a template error: its message (for `raise_exception`, the
/// template's own words) and where it happened.
fn describe(e: &Error) -> String {
    let mut text = match e.detail() {
        Some(detail) if e.kind() == ErrorKind::InvalidOperation => detail.to_string(),
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        let _ = write!(text, " (template line {line})");
    }
    text
}

/// The environment transformers' `ImmutableSandboxedEnvironment` corresponds to.
fn environment() -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // Jinja2 prints Python's `str()`: `True`, `False`, `None`.
    env.set_formatter(|out, state, value| match value.kind() {
        ValueKind::Bool => out
            .write_str(if value.is_true() { "True" } else { "False" })
            .map_err(Error::from),
        ValueKind::None => out.write_str("None").map_err(Error::from),
        _ => minijinja::escape_formatter(out, state, value),
    });
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    Ok(env)
}

/// `raise_exception(message)`: fails the render with the template's message.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// The date `strftime_now` reports: Friday 26 July 2024, 00:00:00. Fixed (instead of the clock
/// transformers reads) so that a prompt renders the same on every run; it is the date Llama 3.x's
/// template falls back to when `strftime_now` is missing.
const FIXED_DATE: (i32, u32, u32) = (2024, 7, 26);

/// `strftime_now(format)`: Python's `datetime.now().strftime(format)` at the fixed date
/// [`FIXED_DATE`] (midnight). Supports `%a %A %b %B %d %-d %e %m %-m %y %Y %H %I %M %S %p %j %%`;
/// other directives are kept as written.
fn strftime_now(format: String) -> String {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let (year, month, day) = FIXED_DATE;
    let weekday = DAYS[4]; // 2024-07-26 is a Friday
    let month_name = MONTHS[month as usize - 1];
    let day_of_year = [31, 29, 31, 30, 31, 30][..month as usize - 1]
        .iter()
        .sum::<u32>()
        + day;
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let number = |n: u32, width: usize| {
            if no_pad {
                n.to_string()
            } else {
                format!("{n:0width$}")
            }
        };
        match d {
            'a' => out.push_str(&weekday[..3]),
            'A' => out.push_str(weekday),
            'b' | 'h' => out.push_str(&month_name[..3]),
            'B' => out.push_str(month_name),
            'd' => out.push_str(&number(day, 2)),
            'e' => out.push_str(&format!("{day:>2}")),
            'm' => out.push_str(&number(month, 2)),
            'y' => out.push_str(&number(year as u32 % 100, 2)),
            'Y' => out.push_str(&year.to_string()),
            'H' | 'M' | 'S' => out.push_str(&number(0, 2)),
            'I' => out.push_str("12"),
            'p' => out.push_str("AM"),
            'j' => out.push_str(&number(day_of_year, 3)),
            '%' => out.push('%'),
            other => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
        }
    }
    out
}

/// `value | tojson`: Python's `json.dumps(value, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, the filter transformers installs (no HTML escaping,
/// Python's `", "` and `": "` separators). Positional arguments follow that signature.
fn tojson(value: Value, positional: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    if positional.len() > 4 {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            "tojson takes at most 4 positional arguments",
        ));
    }
    let mut positional = positional.0.into_iter();
    let ensure_ascii = positional.next();
    let indent = positional.next();
    let separators = positional.next();
    let sort_keys = positional.next();
    let ensure_ascii = pick(ensure_ascii, &kwargs, "ensure_ascii")?;
    let indent = pick(indent, &kwargs, "indent")?;
    let separators = pick(separators, &kwargs, "separators")?;
    let sort_keys = pick(sort_keys, &kwargs, "sort_keys")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => {
            if let Some(text) = v.as_str() {
                Some(text.to_string())
            } else if let Some(n) = v.as_i64() {
                Some(" ".repeat(n.max(0) as usize))
            } else {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: indent must be an integer or a string, got {v}"),
                ));
            }
        }
    };
    let (item_sep, key_sep) = match separators.filter(|v| !v.is_none()) {
        Some(v) => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => (
                    a.as_str().unwrap_or_default().to_string(),
                    b.as_str().unwrap_or_default().to_string(),
                ),
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be two strings",
                    ));
                }
            }
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let writer = JsonWriter {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
    };
    let mut out = String::new();
    writer.write(&mut out, &value, 0)?;
    Ok(Value::from(out))
}

/// A positional argument, or the keyword argument of that name.
fn pick(positional: Option<Value>, kwargs: &Kwargs, name: &str) -> Result<Option<Value>, Error> {
    let keyword: Option<Value> = kwargs.get(name)?;
    Ok(keyword.or(positional))
}

/// Python's `json.dumps` output format.
struct JsonWriter {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

impl JsonWriter {
    fn write(&self, out: &mut String, value: &Value, depth: usize) -> Result<(), Error> {
        match value.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => out.push_str(&number(value)),
            ValueKind::String => self.string(out, value.as_str().unwrap_or_default()),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = value.try_iter()?.collect();
                self.container(out, '[', ']', depth, &items, |out, item| {
                    self.write(out, item, depth + 1)
                })?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    entries.push((key_text(&key)?, item));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container(out, '{', '}', depth, &entries, |out, (key, item)| {
                    self.string(out, key);
                    out.push_str(&self.key_sep);
                    self.write(out, item, depth + 1)
                })?;
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: a value of type {kind} is not JSON serializable"),
                ));
            }
        }
        Ok(())
    }

    fn container<T>(
        &self,
        out: &mut String,
        open: char,
        close: char,
        depth: usize,
        items: &[T],
        mut each: impl FnMut(&mut String, &T) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return Ok(());
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            if let Some(indent) = &self.indent {
                out.push('\n');
                out.push_str(&indent.repeat(depth + 1));
            }
            each(out, item)?;
        }
        if let Some(indent) = &self.indent {
            out.push('\n');
            out.push_str(&indent.repeat(depth));
        }
        out.push(close);
        Ok(())
    }

    fn string(&self, out: &mut String, text: &str) {
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !(' '..='~').contains(&c)) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// A dictionary key as Python's `json.dumps` writes it: strings as they are, numbers, booleans
/// and None as their JSON text.
fn key_text(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Number => Ok(number(key)),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::None => Ok("null".to_string()),
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
        )),
    }
}

/// A number as Python's `json.dumps` writes it (`repr` of int and float).
fn number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    let Ok(x) = f64::try_from(value.clone()) else {
        return value.to_string();
    };
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let exponent = if x == 0.0 {
        0
    } else {
        x.abs().log10().floor() as i32
    };
    if (-4..16).contains(&exponent) {
        let text = format!("{x}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        // Python: shortest mantissa, `e`, sign, at least two exponent digits.
        let text = format!("{x:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, context: Value) -> Result<String, String> {
        ChatTemplate::new(source.to_string())?.render(context)
    }

    #[test]
    fn tojson_writes_python_json_without_html_escaping() {
        let messages = Value::from_iter([Value::from_pairs([
            ("role", Value::from("user")),
            ("content", Value::from("<b> & 'x' é \"q\"\n")),
        ])]);
        let context = Value::from_pairs([("messages", messages)]);
        assert_eq!(
            render("{{ messages | tojson }}", context.clone()).unwrap(),
            r#"[{"role": "user", "content": "<b> & 'x' é \"q\"\n"}]"#
        );
        assert_eq!(
            render(
                "{{ {'a': [1, 2.5, none, true], 'b': {}} | tojson(indent=2) }}",
                context.clone()
            )
            .unwrap(),
            "{\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"b\": {}\n}"
        );
        assert_eq!(
            render(
                "{{ {'b': 1, 'a': 'é'} | tojson(sort_keys=true, ensure_ascii=true) }}",
                context
            )
            .unwrap(),
            r#"{"a": "\u00e9", "b": 1}"#
        );
    }

    #[test]
    fn python_number_format() {
        let cases = [
            (Value::from(3), "3"),
            (Value::from(1.0), "1.0"),
            (Value::from(0.1), "0.1"),
            (Value::from(1e-7), "1e-07"),
            (Value::from(1.5e20), "1.5e+20"),
        ];
        for (value, expected) in cases {
            assert_eq!(number(&value), expected);
        }
    }

    #[test]
    fn strftime_now_is_a_fixed_date() {
        let out = render(
            "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %-d %B %y %j %H:%M %%') }}",
            Value::from(()),
        )
        .unwrap();
        assert_eq!(out, "26 Jul 2024|Friday 26 July 24 208 00:00 %");
    }

    #[test]
    fn raise_exception_passes_the_message() {
        let err = render(
            "{% if true %}{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}",
            Value::from(()),
        )
        .unwrap_err();
        assert!(
            err.starts_with("Conversation roles must alternate user/assistant"),
            "{err}"
        );
    }

    #[test]
    fn blocks_are_trimmed_like_transformers() {
        let source = "{% for m in messages %}\n    {{ m }}\n{% endfor %}\n";
        let context = Value::from_pairs([("messages", Value::from_iter(["a", "b"]))]);
        assert_eq!(render(source, context).unwrap(), "    a\n    b\n");
    }

    #[test]
    fn python_string_methods() {
        let out = render(
            "{{ ' x\\n'.strip() }}|{{ 'a</think>b'.split('</think>')[-1] }}|{{ 'abc'.startswith('ab') }}|{{ '\\nq'.lstrip('\\n') }}",
            Value::from(()),
        )
        .unwrap();
        assert_eq!(out, "x|b|True|q");
    }
}
