//! JSON <-> bencode [`Value`], with SPEC §11's collision-free binary convention.
//!
//! Owns the mapping and its own small JSON reader. serde_json (default features)
//! cannot be used to read: it turns big integers into floats and silently keeps the
//! last of two duplicate keys. serde_json's string escaping is matched on output and
//! checked in the tests. The convention:
//!
//! * a byte string that is not UTF-8 is `{"$hex":"<lowercase hex>"}`;
//! * a dictionary key that is not UTF-8 is `"$hex:<lowercase hex>"`;
//! * a key starting with `$` gets a second `$` (`$x` → `$$x`), so a key starting with a
//!   single `$` is never data.
//!
//! [`from_json`] reverses it, rejects anything else that starts with a single `$`, and
//! rejects two keys that name the same bytes. Like the bencode decoder it must not
//! panic on any input and stops at [`MAX_DEPTH`] levels of nesting. No I/O here.

use std::collections::HashSet;
use std::fmt;

use super::value::{Integer, Value};
use super::MAX_DEPTH;

/// A JSON text that is not exactly one value this mapping accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset in the JSON text where the problem was found.
    pub offset: usize,
    /// What is wrong, prefixed by the key path inside the document when there is one,
    /// e.g. `info.files[0]: fractions are not supported (integers only)`.
    pub problem: String,
}

impl fmt::Display for JsonError {
    /// `offset <n>: <problem>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for JsonError {}

/// Compact JSON for `value`: no whitespace, dictionary members in their order.
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Int(n) => out.push_str(n.as_str()),
        Value::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => write_string("", text, out),
            Err(_) => {
                out.push_str("{\"$hex\":\"");
                push_hex(bytes, out);
                out.push_str("\"}");
            }
        },
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Dict(entries) => {
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match std::str::from_utf8(key) {
                    Ok(text) if text.starts_with('$') => write_string("$", text, out),
                    Ok(text) => write_string("", text, out),
                    Err(_) => {
                        out.push_str("\"$hex:");
                        push_hex(key, out);
                        out.push('"');
                    }
                }
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

/// Writes `"<prefix><text>"`, escaping `text` the way serde_json does: `"` and `\`,
/// the short forms `\b \f \n \r \t`, `\u00xx` (lowercase) for other control
/// characters, everything else (DEL and non-ASCII included) as is.
fn write_string(prefix: &str, text: &str, out: &mut String) {
    out.push('"');
    out.push_str(prefix);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str("\\u00");
                // A control character is one byte.
                push_hex(&[u32::from(c) as u8], out);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The bytes spelled by `hex` (either case), or why it is not hex.
fn unhex(hex: &str) -> Result<Vec<u8>, String> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let raw = hex.as_bytes();
    let mut nibbles = Vec::with_capacity(raw.len());
    for (i, &b) in raw.iter().enumerate() {
        match nibble(b) {
            Some(n) => nibbles.push(n),
            // Every byte before `i` is an ASCII hex digit, so `i` is a char boundary.
            None => return Err(format!("{} is not a hex digit", show_char(hex, i))),
        }
    }
    if nibbles.len() % 2 == 1 {
        return Err("odd number of hex digits".to_owned());
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|p| (p[0] << 4) | p[1])
        .collect())
}

/// The character at byte `at` of `text` for a message (`'x'`, `'\n'`), or
/// `end of input`.
fn show_char(text: &str, at: usize) -> String {
    match text.get(at..).and_then(|rest| rest.chars().next()) {
        Some(c) => format!("{c:?}"),
        None => "end of input".to_owned(),
    }
}

/// Parses exactly one JSON value (whitespace around it allowed) into a [`Value`].
///
/// string → its UTF-8 bytes; integer literal of any size → integer (`-0` → `0`);
/// `true`/`false` → 1/0; array → list; object → dictionary in member order, after
/// undoing the `$` convention. `null`, fractions and exponents are errors.
pub fn from_json(text: &str) -> Result<Value, JsonError> {
    let mut parser = Parser {
        text,
        pos: 0,
        path: Vec::new(),
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return parser.fail(
            parser.pos,
            format!(
                "trailing characters after the JSON value: {}",
                show_char(text, parser.pos)
            ),
        );
    }
    Ok(value)
}

/// One step of the path to the value being read, for messages.
enum Step<'a> {
    /// An object member; the key as written between its quotes (still escaped).
    Key(&'a str),
    /// An array element.
    Index(usize),
}

struct Parser<'a> {
    text: &'a str,
    /// Always on a char boundary: the parser only steps over ASCII bytes or whole
    /// string contents.
    pos: usize,
    path: Vec<Step<'a>>,
}

impl<'a> Parser<'a> {
    fn error(&self, offset: usize, what: impl Into<String>) -> JsonError {
        let what = what.into();
        let problem = if self.path.is_empty() {
            what
        } else {
            format!("{}: {what}", self.path_text())
        };
        JsonError { offset, problem }
    }

    fn fail<T>(&self, offset: usize, what: impl Into<String>) -> Result<T, JsonError> {
        Err(self.error(offset, what))
    }

    fn end_of_input<T>(&self) -> Result<T, JsonError> {
        self.fail(self.text.len(), "unexpected end of input")
    }

    /// `a.b[2]`, or `["two words"][0]` for keys that are not plain words.
    fn path_text(&self) -> String {
        let mut text = String::new();
        for step in &self.path {
            match step {
                Step::Index(i) => {
                    text.push('[');
                    text.push_str(&i.to_string());
                    text.push(']');
                }
                Step::Key(key) => {
                    let plain = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | ':'));
                    if !plain {
                        text.push_str("[\"");
                        text.push_str(key);
                        text.push_str("\"]");
                    } else {
                        if !text.is_empty() {
                            text.push('.');
                        }
                        text.push_str(key);
                    }
                }
            }
        }
        text
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// One value at `pos` (whitespace already skipped); `depth` counts the
    /// containers around it.
    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        let rest = &self.text.as_bytes()[self.pos..];
        match self.peek() {
            None => self.end_of_input(),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|s| Value::Bytes(s.into_bytes())),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Int),
            Some(b't') if rest.starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Int(Integer::from(1)))
            }
            Some(b'f') if rest.starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Int(Integer::from(0)))
            }
            Some(b'n') if rest.starts_with(b"null") => self.fail(self.pos, "null is not supported"),
            Some(_) => self.fail(
                self.pos,
                format!(
                    "expected a JSON value, found {}",
                    show_char(self.text, self.pos)
                ),
            ),
        }
    }

    /// Steps over the `[`/`{` at `pos`, refusing one level too many.
    fn open(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return self.fail(self.pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.pos += 1;
        self.skip_whitespace();
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.open(depth)?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::List(items));
        }
        loop {
            self.path.push(Step::Index(items.len()));
            items.push(self.value(depth + 1)?);
            self.path.pop();
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::List(items));
                }
                None => return self.end_of_input(),
                Some(_) => {
                    return self.fail(
                        self.pos,
                        format!(
                            "expected ',' or ']' after an array element, found {}",
                            show_char(self.text, self.pos)
                        ),
                    )
                }
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        const ONLY_MEMBER: &str = "\"$hex\" must be the only member of its object";
        self.open(depth)?;
        let mut entries = Vec::new();
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Dict(entries));
        }
        loop {
            let key_at = self.pos;
            match self.peek() {
                Some(b'"') => {}
                None => return self.end_of_input(),
                Some(_) => {
                    return self.fail(
                        key_at,
                        format!(
                            "expected a string key, found {}",
                            show_char(self.text, key_at)
                        ),
                    )
                }
            }
            let key = self.string()?;
            // Between the quotes, as written; the closing quote is ASCII.
            let written = self.text.get(key_at + 1..self.pos - 1).unwrap_or_default();
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.pos += 1,
                None => return self.end_of_input(),
                Some(_) => {
                    return self.fail(
                        self.pos,
                        format!(
                            "expected ':' after an object key, found {}",
                            show_char(self.text, self.pos)
                        ),
                    )
                }
            }
            self.skip_whitespace();

            if key == "$hex" {
                // `{"$hex": "<hex>"}` is a byte string, and only as a lone member.
                if !entries.is_empty() {
                    return self.fail(key_at, ONLY_MEMBER);
                }
                self.path.push(Step::Key(written));
                let hex_at = self.pos;
                if self.peek() != Some(b'"') {
                    return self.fail(hex_at, "\"$hex\" must map to a string of hex digits");
                }
                let hex = self.string()?;
                let bytes = unhex(&hex)
                    .map_err(|why| self.error(hex_at, format!("bad \"$hex\" value: {why}")))?;
                self.path.pop();
                self.skip_whitespace();
                return match self.peek() {
                    Some(b'}') => {
                        self.pos += 1;
                        Ok(Value::Bytes(bytes))
                    }
                    Some(b',') => self.fail(key_at, ONLY_MEMBER),
                    None => self.end_of_input(),
                    Some(_) => self.fail(
                        self.pos,
                        format!(
                            "expected '}}' after the \"$hex\" member, found {}",
                            show_char(self.text, self.pos)
                        ),
                    ),
                };
            }

            let bytes = self.key_bytes(&key, written, key_at)?;
            if !seen.insert(bytes.clone()) {
                let what = if key.starts_with('$') {
                    format!("key \"{written}\" names the same bytes as an earlier key")
                } else {
                    format!("duplicate key \"{written}\"")
                };
                return self.fail(key_at, what);
            }
            self.path.push(Step::Key(written));
            let item = self.value(depth + 1)?;
            self.path.pop();
            entries.push((bytes, item));

            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Dict(entries));
                }
                None => return self.end_of_input(),
                Some(_) => {
                    return self.fail(
                        self.pos,
                        format!(
                            "expected ',' or '}}' after an object member, found {}",
                            show_char(self.text, self.pos)
                        ),
                    )
                }
            }
        }
    }

    /// The dictionary key named by the (unescaped) JSON key `key`: `$$…` loses a
    /// `$`, `$hex:<hex>` is those bytes, any other `$…` is an error.
    fn key_bytes(&self, key: &str, written: &str, key_at: usize) -> Result<Vec<u8>, JsonError> {
        if key.starts_with("$$") {
            Ok(key.as_bytes()[1..].to_vec())
        } else if let Some(hex) = key.strip_prefix("$hex:") {
            unhex(hex)
                .map_err(|why| self.error(key_at, format!("bad hex in key \"{written}\": {why}")))
        } else if key.starts_with('$') {
            self.fail(
                key_at,
                format!(
                    "key \"{written}\" starts with a single '$' (write \"${written}\" for a key that starts with '$')"
                ),
            )
        } else {
            Ok(key.as_bytes().to_vec())
        }
    }

    /// A JSON integer at `pos` (`-` or a digit): any size, `-0` becomes `0`.
    fn number(&mut self) -> Result<Integer, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
            None => return self.end_of_input(),
            Some(_) => {
                return self.fail(
                    self.pos,
                    format!(
                        "expected a digit after '-', found {}",
                        show_char(self.text, self.pos)
                    ),
                )
            }
        }
        match self.peek() {
            Some(b'0'..=b'9') => return self.fail(self.pos - 1, "leading zero in number"),
            Some(b'.') => {
                return self.fail(self.pos, "fractions are not supported (integers only)")
            }
            Some(b'e' | b'E') => {
                return self.fail(self.pos, "exponents are not supported (integers only)")
            }
            _ => {}
        }
        let literal = &self.text[start..self.pos];
        if literal == "-0" {
            return Ok(Integer::from(0));
        }
        // The grammar above only lets canonical integers through; the error is for
        // completeness, not an expected path.
        Integer::from_decimal(literal).ok_or_else(|| self.error(start, "invalid integer"))
    }

    /// A JSON string at `pos` (on its opening quote), unescaped.
    fn string(&mut self) -> Result<String, JsonError> {
        let bytes = self.text.as_bytes();
        self.pos += 1;
        let mut out = String::new();
        // Start of the run of plain characters not yet copied to `out`. Runs end
        // only at ASCII bytes, so every slice below is on char boundaries.
        let mut run = self.pos;
        loop {
            match bytes.get(self.pos) {
                None => return self.end_of_input(),
                Some(b'"') => {
                    out.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.text[run..self.pos]);
                    out.push(self.escape()?);
                    run = self.pos;
                }
                Some(&b) if b < 0x20 => {
                    return self.fail(
                        self.pos,
                        format!("control character U+{b:04X} must be escaped in a string"),
                    )
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// The escape at `pos` (on its backslash), as one character.
    fn escape(&mut self) -> Result<char, JsonError> {
        let at = self.pos;
        let simple = match self.text.as_bytes().get(at + 1) {
            None => return self.end_of_input(),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{08}',
            Some(b'f') => '\u{0c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            Some(_) => {
                return self.fail(
                    at,
                    format!(
                        "invalid escape '\\' followed by {}",
                        show_char(self.text, at + 1)
                    ),
                )
            }
        };
        self.pos += 2;
        Ok(simple)
    }

    /// `\uXXXX` at `pos`, or a `\uD8xx\uDCxx` surrogate pair; a lone surrogate is an
    /// error because it is no character and has no UTF-8 form.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let at = self.pos;
        let unit = self.hex4(at + 2)?;
        self.pos += 6;
        let code = match unit {
            0xd800..=0xdbff => {
                let paired = self.text.as_bytes()[self.pos..].starts_with(b"\\u");
                let low = if paired { self.hex4(self.pos + 2)? } else { 0 };
                if !(0xdc00..=0xdfff).contains(&low) {
                    return self.fail(
                        at,
                        format!(
                            "lone surrogate {} (a high surrogate must be followed by a \\u low surrogate)",
                            &self.text[at..at + 6]
                        ),
                    );
                }
                self.pos += 6;
                0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
            }
            0xdc00..=0xdfff => {
                return self.fail(
                    at,
                    format!(
                        "lone surrogate {} (a low surrogate must follow a high surrogate)",
                        &self.text[at..at + 6]
                    ),
                )
            }
            _ => unit,
        };
        // Not a surrogate and at most 0x10FFFF, so always a char.
        char::from_u32(code).ok_or_else(|| self.error(at, "invalid \\u escape"))
    }

    /// Four hex digits at byte `at`.
    fn hex4(&self, at: usize) -> Result<u32, JsonError> {
        let mut unit = 0;
        for i in at..at + 4 {
            let digit = match self.text.as_bytes().get(i) {
                None => return self.end_of_input(),
                Some(&b) => char::from(b).to_digit(16),
            };
            match digit {
                Some(d) => unit = unit * 16 + d,
                // The bytes before `i` are ASCII, so `i` is a char boundary.
                None => {
                    return self.fail(
                        i,
                        format!(
                            "expected 4 hex digits after \\u, found {}",
                            show_char(self.text, i)
                        ),
                    )
                }
            }
        }
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::value::tests::{arb_value, sorted};
    use crate::bencode::value::{decode, encode};
    use proptest::prelude::*;

    fn enc(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out);
        out
    }

    /// bencode → JSON text.
    #[track_caller]
    fn json_of(bencode: &[u8]) -> String {
        to_json(&decode(bencode).unwrap())
    }

    /// JSON text → canonical bencode.
    #[track_caller]
    fn bencode_of(json: &str) -> Vec<u8> {
        enc(&from_json(json).unwrap())
    }

    /// Asserts that `json` fails at `offset` with exactly `problem`.
    #[track_caller]
    fn fails(json: &str, offset: usize, problem: &str) {
        let e = from_json(json).unwrap_err();
        assert_eq!(
            (e.offset, e.problem.as_str()),
            (offset, problem),
            "json {json:?}"
        );
    }

    #[test]
    fn plain_values_to_json() {
        assert_eq!(json_of(b"i0e"), "0");
        assert_eq!(json_of(b"i-42e"), "-42");
        assert_eq!(json_of(b"4:spam"), "\"spam\"");
        assert_eq!(json_of(b"0:"), "\"\"");
        assert_eq!(json_of(b"l4:spami1ee"), "[\"spam\",1]");
        assert_eq!(json_of(b"le"), "[]");
        assert_eq!(json_of(b"de"), "{}");
        // Input key order is kept.
        assert_eq!(json_of(b"d1:bi1e1:ali2eee"), "{\"b\":1,\"a\":[2]}");
        assert_eq!(json_of("5:h\u{e9}\u{e9}".as_bytes()), "\"h\u{e9}\u{e9}\"");
    }

    #[test]
    fn big_integers_both_ways() {
        let big = "123456789012345678901234567890";
        assert_eq!(json_of(format!("i{big}e").as_bytes()), big);
        assert_eq!(json_of(format!("i-{big}e").as_bytes()), format!("-{big}"));
        assert_eq!(bencode_of(big), format!("i{big}e").as_bytes());
        assert_eq!(
            bencode_of(&format!("[-{big}]")),
            format!("li-{big}ee").as_bytes()
        );
    }

    #[test]
    fn json_scalars_to_bencode() {
        assert_eq!(bencode_of("0"), b"i0e");
        assert_eq!(bencode_of("-0"), b"i0e");
        assert_eq!(bencode_of("-7"), b"i-7e");
        assert_eq!(bencode_of("true"), b"i1e");
        assert_eq!(bencode_of("false"), b"i0e");
        assert_eq!(bencode_of("\"\""), b"0:");
        assert_eq!(bencode_of(" \t\r\n[ 1 , [ ] , { } ]\n"), b"li1eledee");
        assert_eq!(bencode_of("[true,false]"), b"li1ei0ee");
    }

    #[test]
    fn object_keys_are_sorted_on_encode() {
        assert_eq!(
            bencode_of(r#"{"b":1,"a":2,"B":3,"$$x":4,"$hex:ff":5}"#),
            b"d2:$xi4e1:Bi3e1:ai2e1:bi1e1:\xffi5ee"
        );
    }

    #[test]
    fn escapes_and_surrogates() {
        assert_eq!(
            bencode_of(r#""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00""#),
            "18:\"\\/\u{8}\u{c}\n\r\tA\u{e9}\u{20ac}\u{1f600}".as_bytes()
        );
        // Raw non-ASCII passes through.
        assert_eq!(bencode_of("\"\u{1f600}\""), "4:\u{1f600}".as_bytes());
        assert_eq!(bencode_of(r#""\u0000""#), b"1:\x00");
    }

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let value = Value::Bytes(b"\"\\/\x08\x0c\n\r\t\x00\x1f\x7f\xc3\xa9".to_vec());
        assert_eq!(
            to_json(&value),
            "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}\u{e9}\""
        );
    }

    #[test]
    fn dollar_convention_to_json() {
        // Non-UTF-8 value.
        assert_eq!(json_of(b"3:\xff\x00a"), r#"{"$hex":"ff0061"}"#);
        // Non-UTF-8 key.
        assert_eq!(json_of(b"d2:\xffai1ee"), r#"{"$hex:ff61":1}"#);
        // Keys starting with '$' get another one.
        assert_eq!(json_of(b"d2:$xi1ee"), r#"{"$$x":1}"#);
        assert_eq!(json_of(b"d3:$$xi1ee"), r#"{"$$$x":1}"#);
        assert_eq!(json_of(b"d1:$i1ee"), r#"{"$$":1}"#);
        assert_eq!(json_of(b"d7:$hex:ffi1ee"), r#"{"$$hex:ff":1}"#);
        // A real one-key dictionary whose key is "$hex" is not a byte string.
        assert_eq!(json_of(b"d4:$hex4:abcde"), r#"{"$$hex":"abcd"}"#);
        // Values starting with '$' are plain strings: only objects could collide.
        assert_eq!(json_of(b"5:$hex:"), r#""$hex:""#);
        // Non-UTF-8 inside containers.
        assert_eq!(json_of(b"l1:\x80e"), r#"[{"$hex":"80"}]"#);
        assert_eq!(
            json_of(b"d1:\x80d1:\x81i0eee"),
            r#"{"$hex:80":{"$hex:81":0}}"#
        );
    }

    #[test]
    fn dollar_convention_from_json() {
        assert_eq!(bencode_of(r#"{"$hex":"ff0061"}"#), b"3:\xff\x00a");
        assert_eq!(bencode_of(r#"{"$hex":"FFab"}"#), b"2:\xff\xab");
        assert_eq!(bencode_of(r#"{"$hex":""}"#), b"0:");
        assert_eq!(bencode_of(r#"{"$hex":"616263"}"#), b"3:abc");
        assert_eq!(bencode_of(r#"{ "$hex" : "80" }"#), b"1:\x80");
        assert_eq!(bencode_of(r#"{"$hex:ff61":1}"#), b"d2:\xffai1ee");
        assert_eq!(bencode_of(r#"{"$hex:":1}"#), b"d0:i1ee");
        assert_eq!(bencode_of(r#"{"$$x":1}"#), b"d2:$xi1ee");
        assert_eq!(bencode_of(r#"{"$$$x":1}"#), b"d3:$$xi1ee");
        assert_eq!(bencode_of(r#"{"$$":1}"#), b"d1:$i1ee");
        assert_eq!(bencode_of(r#"{"$$hex:ff":1}"#), b"d7:$hex:ffi1ee");
        assert_eq!(bencode_of(r#"{"$$hex":"abcd"}"#), b"d4:$hex4:abcde");
        // An escaped spelling of "$hex" is still "$hex".
        assert_eq!(bencode_of(r#"{"\u0024hex":"00"}"#), b"1:\x00");
        assert_eq!(bencode_of(r#""$hex:""#), b"5:$hex:");
    }

    #[test]
    fn syntax_errors() {
        fails("", 0, "unexpected end of input");
        fails("   ", 3, "unexpected end of input");
        fails("1 2", 2, "trailing characters after the JSON value: '2'");
        fails("{}x", 2, "trailing characters after the JSON value: 'x'");
        fails("\u{feff}1", 0, "expected a JSON value, found '\\u{feff}'");
        fails("tru", 0, "expected a JSON value, found 't'");
        fails("nul", 0, "expected a JSON value, found 'n'");
        fails("True", 0, "expected a JSON value, found 'T'");
        fails("'a'", 0, "expected a JSON value, found '\\''");
        fails("truex", 4, "trailing characters after the JSON value: 'x'");
        fails("[1,]", 3, "[1]: expected a JSON value, found ']'");
        fails(
            "[1 2]",
            3,
            "expected ',' or ']' after an array element, found '2'",
        );
        fails("[1", 2, "unexpected end of input");
        fails("[", 1, "[0]: unexpected end of input");
        fails("{", 1, "unexpected end of input");
        fails("{\"a\"", 4, "unexpected end of input");
        fails("{\"a\":", 5, "a: unexpected end of input");
        fails("{\"a\":1", 6, "unexpected end of input");
        fails(
            "{\"a\" 1}",
            5,
            "expected ':' after an object key, found '1'",
        );
        fails(
            "{\"a\":1 \"b\":2}",
            7,
            "expected ',' or '}' after an object member, found '\"'",
        );
        fails("{\"a\":1,}", 7, "expected a string key, found '}'");
        fails("{a:1}", 1, "expected a string key, found 'a'");
        fails("{1:1}", 1, "expected a string key, found '1'");
    }

    #[test]
    fn unsupported_values() {
        fails("null", 0, "null is not supported");
        fails("[1,null]", 3, "[1]: null is not supported");
        fails("1.5", 1, "fractions are not supported (integers only)");
        fails("1.0", 1, "fractions are not supported (integers only)");
        fails("1e3", 1, "exponents are not supported (integers only)");
        fails("-2E+3", 2, "exponents are not supported (integers only)");
        fails("01", 0, "leading zero in number");
        fails("-01", 1, "leading zero in number");
        fails("-", 1, "unexpected end of input");
        fails("-a", 1, "expected a digit after '-', found 'a'");
        fails("+1", 0, "expected a JSON value, found '+'");
        fails(".5", 0, "expected a JSON value, found '.'");
    }

    #[test]
    fn string_errors() {
        fails("\"abc", 4, "unexpected end of input");
        fails(
            "\"a\nb\"",
            2,
            "control character U+000A must be escaped in a string",
        );
        fails(
            "\"a\tb\"",
            2,
            "control character U+0009 must be escaped in a string",
        );
        fails(r#""\x""#, 1, "invalid escape '\\' followed by 'x'");
        fails(r#""\'""#, 1, "invalid escape '\\' followed by '\\''");
        fails("\"\\", 2, "unexpected end of input");
        fails(
            r#""\u12""#,
            5,
            "expected 4 hex digits after \\u, found '\"'",
        );
        fails(
            r#""\u12G4""#,
            5,
            "expected 4 hex digits after \\u, found 'G'",
        );
        fails("\"\\u12", 5, "unexpected end of input");
        fails(
            r#""\ud83d""#,
            1,
            "lone surrogate \\ud83d (a high surrogate must be followed by a \\u low surrogate)",
        );
        fails(
            r#""\ud83dx""#,
            1,
            "lone surrogate \\ud83d (a high surrogate must be followed by a \\u low surrogate)",
        );
        fails(
            r#""\ud83d\u0041""#,
            1,
            "lone surrogate \\ud83d (a high surrogate must be followed by a \\u low surrogate)",
        );
        fails(
            r#""\ud83d\ud83d""#,
            1,
            "lone surrogate \\ud83d (a high surrogate must be followed by a \\u low surrogate)",
        );
        fails(
            r#""a\uDE00""#,
            2,
            "lone surrogate \\uDE00 (a low surrogate must follow a high surrogate)",
        );
        fails(
            r#""\ud83d\u12""#,
            11,
            "expected 4 hex digits after \\u, found '\"'",
        );
    }

    #[test]
    fn dollar_errors() {
        fails(
            r#"{"$x":1}"#,
            1,
            "key \"$x\" starts with a single '$' (write \"$$x\" for a key that starts with '$')",
        );
        fails(
            r#"{"$HEX":"00"}"#,
            1,
            "key \"$HEX\" starts with a single '$' (write \"$$HEX\" for a key that starts with '$')",
        );
        fails(
            r#"{"$":1}"#,
            1,
            "key \"$\" starts with a single '$' (write \"$$\" for a key that starts with '$')",
        );
        fails(
            r#"{"$hex":"00","a":1}"#,
            1,
            "\"$hex\" must be the only member of its object",
        );
        fails(
            r#"{"a":1,"$hex":"00"}"#,
            7,
            "\"$hex\" must be the only member of its object",
        );
        fails(
            r#"{"$hex":1}"#,
            8,
            "$hex: \"$hex\" must map to a string of hex digits",
        );
        fails(
            r#"{"$hex":{"$hex":"00"}}"#,
            8,
            "$hex: \"$hex\" must map to a string of hex digits",
        );
        fails(
            r#"{"$hex":"abc"}"#,
            8,
            "$hex: bad \"$hex\" value: odd number of hex digits",
        );
        fails(
            r#"{"$hex":"zz"}"#,
            8,
            "$hex: bad \"$hex\" value: 'z' is not a hex digit",
        );
        fails(
            r#"{"$hex":"0\u00e9"}"#,
            8,
            "$hex: bad \"$hex\" value: '\u{e9}' is not a hex digit",
        );
        fails(
            r#"{"$hex":"00" x}"#,
            13,
            "expected '}' after the \"$hex\" member, found 'x'",
        );
        fails(
            r#"{"$hex:f":1}"#,
            1,
            "bad hex in key \"$hex:f\": odd number of hex digits",
        );
        fails(
            r#"{"$hex:0g":1}"#,
            1,
            "bad hex in key \"$hex:0g\": 'g' is not a hex digit",
        );
        fails(
            r#"{"$hex: 00":1}"#,
            1,
            "bad hex in key \"$hex: 00\": ' ' is not a hex digit",
        );
    }

    #[test]
    fn duplicate_keys() {
        fails(r#"{"a":1,"a":2}"#, 7, "duplicate key \"a\"");
        fails(r#"{"a":1,"\u0061":2}"#, 7, "duplicate key \"\\u0061\"");
        fails(
            r#"{"$$a":1,"$hex:2461":2}"#,
            9,
            "key \"$hex:2461\" names the same bytes as an earlier key",
        );
        fails(
            r#"{"a":1,"$hex:61":2}"#,
            7,
            "key \"$hex:61\" names the same bytes as an earlier key",
        );
        fails(
            r#"{"$hex:ff":1,"$hex:FF":2}"#,
            13,
            "key \"$hex:FF\" names the same bytes as an earlier key",
        );
        fails(
            r#"{"$$x":1,"$$x":2}"#,
            9,
            "key \"$$x\" names the same bytes as an earlier key",
        );
        // Same key in different objects is fine.
        assert_eq!(
            bencode_of(r#"{"a":{"a":1},"b":{"a":2}}"#),
            b"d1:ad1:ai1ee1:bd1:ai2eee"
        );
    }

    #[test]
    fn errors_name_the_key_path() {
        fails(
            r#"{"a":[{"b":1.5}]}"#,
            12,
            "a[0].b: fractions are not supported (integers only)",
        );
        fails(r#"{"a":{"x":1,"x":2}}"#, 12, "a: duplicate key \"x\"");
        fails(
            r#"[0,{"min interval":null}]"#,
            19,
            "[1][\"min interval\"]: null is not supported",
        );
        fails(
            r#"{"":[[1,{"$hex":"0"}]]}"#,
            16,
            "[\"\"][0][1].$hex: bad \"$hex\" value: odd number of hex digits",
        );
        fails(r#"{"a\"b":null}"#, 8, "[\"a\\\"b\"]: null is not supported");
        fails(r#"{"$$x":{"$y":1}}"#, 8, "$$x: key \"$y\" starts with a single '$' (write \"$$y\" for a key that starts with '$')");
        // The path is gone once the document is complete.
        fails(
            r#"{"a":[1]} 2"#,
            10,
            "trailing characters after the JSON value: '2'",
        );
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(from_json(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = from_json(&deep).unwrap_err();
        assert_eq!(e.offset, MAX_DEPTH);
        assert!(
            e.problem.ends_with(": nesting deeper than 512 levels"),
            "{}",
            e.problem
        );
        let e = from_json(&"{\"a\":".repeat(100_000)).unwrap_err();
        assert_eq!(e.offset, 5 * MAX_DEPTH);
        assert!(e.problem.ends_with(": nesting deeper than 512 levels"));
    }

    #[test]
    fn display() {
        let e = from_json("[1,null]").unwrap_err();
        assert_eq!(e.to_string(), "offset 3: [1]: null is not supported");
    }

    /// Values whose strings and keys lean towards the `$` convention's edge cases.
    fn arb_tricky() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            "\\$?\\$?(hex)?:?[0-9a-fA-F]{0,4}",
            "\\PC{0,6}",
            "[\"\\\\/\u{0}-\u{1f}\u{7f}]{0,4}",
        ];
        let blob = prop_oneof![
            text.clone().prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        let leaf = prop_oneof![
            blob.clone().prop_map(Value::Bytes),
            any::<i64>().prop_map(|n| Value::Int(Integer::from(n))),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(blob.clone(), inner, 0..6)
                    .prop_map(|m| Value::Dict(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// SPEC §11: `bencode -d | bencode` reproduces sorted-key input byte for byte.
        #[test]
        fn round_trip_through_json(value in prop_oneof![arb_value(), arb_tricky()]) {
            let input = enc(&sorted(value));
            let json = to_json(&decode(&input).unwrap());
            let back = from_json(&json).map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
            prop_assert_eq!(enc(&back), input);
        }

        /// The mapping is exact even for unsorted keys: order is kept both ways.
        #[test]
        fn from_json_inverts_to_json(value in prop_oneof![arb_value(), arb_tricky()]) {
            let json = to_json(&value);
            prop_assert_eq!(from_json(&json).unwrap(), value);
            // And it is valid JSON to anyone else.
            prop_assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok(), "{}", json);
        }

        #[test]
        fn string_escaping_matches_serde_json(text in "\\PC*|[\u{0}-\u{7f}]*") {
            let ours = to_json(&Value::Bytes(text.clone().into_bytes()));
            prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }

        /// serde_json-written strings read back to the same bytes.
        #[test]
        fn reads_serde_json_strings(text in "\\PC*|[\u{0}-\u{7f}]*") {
            let json = serde_json::to_string(&text).unwrap();
            prop_assert_eq!(from_json(&json).unwrap(), Value::Bytes(text.into_bytes()));
        }

        #[test]
        fn never_panics(text in "[\\[\\]{}\",:\\\\u0-9a-fA-F$.eE+ -]{0,24}") {
            let _ = from_json(&text);
        }
    }
}
