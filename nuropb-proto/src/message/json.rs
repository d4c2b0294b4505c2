//! JSON as Python's `json.dumps` writes it, and a reader that accepts what Python sends.
//!
//! Python NuroPb encodes bodies with `json.dumps(payload)`: `", "` and `": "` separators, every
//! non-ASCII character escaped as `\uXXXX` (astral characters as surrogate pairs), floats in
//! `repr` form (`1e+16`, `1.5e-05`, `100.0`). [`to_vec`] writes any `Serialize` value that way, so
//! our bodies are byte-identical to Python's. [`from_slice`] reads standard JSON, compact or not, and
//! also Python's bare `NaN`, `Infinity` and `-Infinity` tokens, which it reads as `null` — JSON has no
//! other value for them, and `serde_json::Value` cannot hold them.
//!
//! Nesting: Python's `json` reads about 995 levels before its recursion limit stops it, so
//! [`from_slice`] reads up to [`MAX_DEPTH`] levels and refuses deeper input with an error saying
//! so. `serde_json` reads 128 levels on the thread's stack; a document deeper than that is read on
//! a stack that grows as needed (`serde_stacker`), so no input can overflow the stack of the
//! thread that reads it, and memory stays bounded by the input's size. [`from_value`] does the
//! same for typed values taken from a deep `Value`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::ser::{CharEscape, Formatter};
use std::io::{self, Write};

/// A `serde_json` formatter that writes what Python's `json.dumps` writes with its defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        if s.is_ascii() {
            return w.write_all(s.as_bytes());
        }
        let mut start = 0;
        for (at, ch) in s.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            w.write_all(&s.as_bytes()[start..at])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = at + ch.len_utf8();
        }
        w.write_all(&s.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let short: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(w, "\\u{byte:04x}"),
        };
        w.write_all(short)
    }

    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        // Python has only doubles; widen as `float(numpy.float32)` would.
        self.write_f64(w, value as f64)
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        write_python_float(w, value)
    }
}

/// Writes `value` as Python's `repr(float)`: the shortest round-trip digits, in positional form
/// when the decimal exponent is in `-4..16`, scientific (`1e+16`, `1.5e-05`) otherwise.
fn write_python_float<W: ?Sized + Write>(w: &mut W, value: f64) -> io::Result<()> {
    if value.is_nan() {
        return w.write_all(b"NaN");
    }
    if value.is_infinite() {
        return w.write_all(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Python switches to scientific notation when the exponent is < -4 or >= 16.
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return write!(w, "{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        write!(w, "{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        let zeros = "0".repeat(point as usize - digits.len());
        write!(w, "{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at(point as usize);
        write!(w, "{sign}{int}.{frac}")
    }
}

/// Serializes `value` as Python's `json.dumps` would.
///
/// ```
/// use serde_json::json;
/// let body = nuropb_proto::message::json::to_vec(&json!({"word": "café 😀", "n": [1, 1e16, 0.5]}));
/// assert_eq!(body, br#"{"word": "caf\u00e9 \ud83d\ude00", "n": [1, 1e+16, 0.5]}"#);
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write(&mut out, value);
    out
}

/// Appends `value`, serialized as Python's `json.dumps` would, to `out`.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
    // Writing into a Vec cannot fail, and our payload types have only string keys; a user type
    // whose Serialize impl fails is written as far as it got, which the reader then refuses.
    let _ = value.serialize(&mut ser);
}

/// Why bytes are not a JSON document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    /// `serde_json`'s description, with line and column.
    pub message: String,
}

/// How deep [`from_slice`] reads arrays and objects nested in one another: more than Python's
/// `json` module reads (about 995 levels; a Python NuroPb service, about 990).
pub const MAX_DEPTH: usize = 1024;

/// Parses `bytes` as JSON, accepting Python's `NaN`, `Infinity` and `-Infinity` (read as `null`),
/// nested up to [`MAX_DEPTH`] levels.
///
/// ```
/// use serde_json::{json, Value};
/// use nuropb_proto::message::json::{from_slice, MAX_DEPTH};
///
/// let v: Value = from_slice(br#"{"nan": NaN, "inf": -Infinity}"#).unwrap();
/// assert_eq!(v, json!({"nan": null, "inf": null}));
///
/// let deep = |n| format!("{}{}", "[".repeat(n), "]".repeat(n));
/// assert!(from_slice::<Value>(deep(MAX_DEPTH).as_bytes()).is_ok());
/// let too_deep = from_slice::<Value>(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
/// assert!(too_deep.message.contains("nested deeper than 1024 levels"));
/// ```
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    // One UTF-8 check of the whole body is cheaper than serde_json's check of every string in
    // it; a body that is not UTF-8 goes the byte way, for serde_json's error and position.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    let first = match parsed {
        Ok(value) => return Ok(value),
        Err(first) => first,
    };
    let standard = replace_non_finite(bytes);
    let bytes = standard.as_deref().unwrap_or(bytes);
    let retried = if is_too_deep(&first) {
        from_deep_slice(bytes)
    } else if standard.is_some() {
        serde_json::from_slice(bytes).or_else(|e| match is_too_deep(&e) {
            true => from_deep_slice(bytes),
            false => Err(e),
        })
    } else {
        Err(first)
    };
    retried.map_err(|e| JsonError {
        message: e.to_string(),
    })
}

/// Whether `serde_json` gave up for its own recursion limit (128 levels).
fn is_too_deep(e: &serde_json::Error) -> bool {
    e.classify() == serde_json::error::Category::Syntax
        && e.to_string().starts_with("recursion limit exceeded")
}

/// Reads a document nested deeper than `serde_json`'s own limit, up to [`MAX_DEPTH`], on a stack
/// that grows as needed.
fn from_deep_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    use serde::de::Error;
    let depth = nesting_depth(bytes);
    if depth > MAX_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "JSON nested deeper than {MAX_DEPTH} levels ({depth})"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// How deep arrays and objects nest in `bytes`, counting brackets outside strings (a bracket
/// inside a string, escaped quotes included, is not one).
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Takes a typed value out of `value` as `serde_json::from_value` does, on a stack that grows
/// as needed: a value read by [`from_slice`] may nest [`MAX_DEPTH`] levels.
///
/// ```
/// use serde_json::json;
/// let pair: (u8, String) = nuropb_proto::message::json::from_value(json!([1, "a"])).unwrap();
/// assert_eq!(pair, (1, "a".to_owned()));
/// ```
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, serde_json::Error> {
    T::deserialize(serde_stacker::Deserializer::new(value))
}

/// Rewrites the bare tokens `NaN`, `Infinity` and `-Infinity` outside strings as `null`; `None`
/// when there are none.
fn replace_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if let Some(token) = TOKENS.iter().find(|t| bytes[i..].starts_with(t)) {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            buf.extend_from_slice(&bytes[copied..i]);
            buf.extend_from_slice(b"null");
            i += token.len();
            copied = i;
            continue;
        }
        i += 1;
    }
    let mut buf = out?;
    buf.extend_from_slice(&bytes[copied..]);
    Some(buf)
}

/// The Python type name of a JSON value, as `type(json.loads(…)).__name__` reports it.
pub fn python_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Runs `f` on a thread with a stack of `kib` KiB.
    fn on_small_stack<T: Send + 'static>(kib: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(kib << 10)
            .spawn(f)
            .unwrap()
            .join()
            .expect("the thread finished")
    }

    /// `{"s": "[{\"", "a": {"s": …, "a": leaf}}`: `levels` objects, each with a string full of
    /// brackets and an escaped quote beside the next.
    fn nested_objects(levels: usize, leaf: &str) -> String {
        let open = r#"{"s": "[{\"", "a": "#;
        format!("{}{leaf}{}", open.repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn nesting_as_deep_as_python_reads_on_a_small_stack() {
        // Python's json reads about 995 levels; so do we, and more, on 1 MiB of stack (half a
        // runtime worker's): a debug build takes ~2.5 KiB a level, so 1024 levels would need
        // two and a half times that.
        let (value, text) = on_small_stack(1024, || {
            let text = nested_objects(MAX_DEPTH - 1, "[NaN]");
            let value: Value = from_slice(text.as_bytes()).unwrap();
            let mut depth = 0;
            let mut at = &value;
            while let Some(inner) = at.get("a") {
                depth += 1;
                at = inner;
            }
            assert_eq!(depth, MAX_DEPTH - 1);
            assert_eq!(at, &json!([null]));
            // Typed values out of it too.
            #[derive(serde::Deserialize)]
            struct Outer {
                a: Value,
            }
            let outer: Outer = from_value(value).unwrap();
            // Dropping 1023 levels recurses too, but in frames small enough for this stack.
            (outer.a, text)
        });
        assert!(value.is_object());
        assert!(text.contains(r#""[{\"""#));
    }

    #[test]
    fn deeper_than_max_depth_is_refused_with_the_reason() {
        for text in [
            nested_objects(MAX_DEPTH + 1, "1"),
            format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1)),
            // Never closed: refused for its depth before the parser sees the end.
            "[".repeat(100_000),
        ] {
            let e = on_small_stack(1024, move || from_slice::<Value>(text.as_bytes()).err());
            let e = e.expect("refused").message;
            assert!(e.contains("nested deeper than 1024 levels"), "{e}");
        }
        // Brackets inside strings are not nesting.
        let text = format!(r#"["{}"]"#, "[{".repeat(5000));
        assert_eq!(
            from_slice::<Value>(text.as_bytes()).unwrap()[0]
                .as_str()
                .unwrap()
                .len(),
            10_000
        );
        assert_eq!(nesting_depth(br#"[{"a": "]\"[[", "b": [[1]]}]"#), 4);
    }

    #[test]
    fn a_deep_document_that_is_not_json_is_still_an_error() {
        let text = format!("{}x{}", "[".repeat(500), "]".repeat(500));
        let e = from_slice::<Value>(text.as_bytes()).unwrap_err();
        assert!(e.message.contains("expected value"), "{e}");
    }

    fn float(value: f64) -> String {
        String::from_utf8(to_vec(&value)).unwrap()
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        let cases = [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.1805916207174113e21, "1.1805916207174113e+21"),
            (-2.5e300, "-2.5e+300"),
            (123.456, "123.456"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (value, python) in cases {
            assert_eq!(float(value), python, "{value:e}");
        }
    }

    #[test]
    fn strings_are_escaped_as_python_ensure_ascii() {
        let v = json!("q\"b\\s/\u{8}\u{c}\n\r\t\u{1f}\u{7f}é☃😀");
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#""q\"b\\s/\b\f\n\r\t\u001f\u007fé☃😀""#
                .replace('é', "\\u00e9")
                .replace('☃', "\\u2603")
                .replace('😀', "\\ud83d\\ude00")
                .replace("\\u007f", "\u{7f}")
        );
    }

    #[test]
    fn separators_are_pythons() {
        let v = json!({"a": [1, 2, {}], "b": {"c": []}});
        assert_eq!(to_vec(&v), br#"{"a": [1, 2, {}], "b": {"c": []}}"#);
    }

    #[test]
    fn non_finite_tokens_are_read_only_outside_strings() {
        let v: Value =
            from_slice(br#"{"s": "NaN \" Infinity", "x": [NaN, Infinity, -Infinity]}"#).unwrap();
        assert_eq!(v, json!({"s": "NaN \" Infinity", "x": [null, null, null]}));
        assert!(from_slice::<Value>(b"{\"a\": Nan}").is_err());
    }
}
