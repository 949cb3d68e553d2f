//! Bencode (BEP 3), shared by the server's responses and the `bencode` tool (SPEC §11).
//!
//! This module owns the byte-level bencode format and nothing else: no I/O, no
//! argument parsing, no printing. Two layers live here:
//!
//! * The server's primitives below ([`int`], [`bytes`], [`int_entry`], [`decimal`]).
//!   The response encoder writes its few fixed shapes straight into a reused buffer
//!   with them; callers are responsible for emitting dictionary keys in sorted order.
//! * A general [`Value`] with a strict decoder and a canonical encoder ([`value`]),
//!   and the JSON mapping with its collision-free binary convention ([`json`]).
//!   [`run`] is the whole `bencode` tool minus file handling, so its `main` stays thin.
//!
//! Every decoder here treats its input as hostile: errors, never panics, never
//! allocates more than the input justifies, and stops at [`MAX_DEPTH`] nested
//! containers instead of overflowing the stack.

use std::fmt;

pub mod json;
pub mod value;

pub use json::{from_json, to_json, JsonError};
pub use value::{decode, encode, DecodeError, Integer, Value};

/// Deepest nesting of lists and dictionaries (JSON arrays and objects) the decoders
/// accept; a top-level list is depth 1. Both decoders recurse once per level, and 512
/// levels stay far below the 2 MiB stack of a spawned thread.
pub const MAX_DEPTH: usize = 512;

/// Appends `i<n>e`.
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    decimal(out, n);
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    // A slice never holds more than isize::MAX bytes, so this cannot saturate.
    decimal(out, i64::try_from(value.len()).unwrap_or(i64::MAX));
    out.push(b':');
    out.extend_from_slice(value);
}

/// Appends the byte-string form of `key` followed by the integer `n`: one dictionary entry.
pub fn int_entry(out: &mut Vec<u8>, key: &str, n: i64) {
    bytes(out, key.as_bytes());
    int(out, n);
}

/// Appends the ASCII decimal of `n` (no allocation).
pub fn decimal(out: &mut Vec<u8>, n: i64) {
    // 19 digits hold i64::MAX; the sign is pushed separately. unsigned_abs keeps
    // i64::MIN exact where negation would overflow.
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Why [`run`] failed: the input was not valid for the chosen direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `-d`: the input is not one valid bencode value.
    Bencode(DecodeError),
    /// Encode: the input is not one valid JSON value, or breaks the `$` convention.
    Json(JsonError),
}

impl Error {
    /// Byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        match self {
            Error::Bencode(e) => e.offset,
            Error::Json(e) => e.offset,
        }
    }
}

impl fmt::Display for Error {
    /// `offset <n>: <problem>`, as the tool prints it after `bencode: <file>: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bencode(e) => e.fmt(f),
            Error::Json(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bencode(e) => Some(e),
            Error::Json(e) => Some(e),
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Bencode(e)
    }
}

impl From<JsonError> for Error {
    fn from(e: JsonError) -> Self {
        Error::Json(e)
    }
}

/// The `bencode` tool on an in-memory input (SPEC §11).
///
/// `decode == false`: `input` is one JSON value (UTF-8); the result is its canonical
/// bencode, no trailing newline. `decode == true`: `input` is one bencode value; the
/// result is compact JSON followed by exactly one `\n`.
pub fn run(decode: bool, input: &[u8]) -> Result<Vec<u8>, Error> {
    if decode {
        let value = value::decode(input)?;
        let mut out = json::to_json(&value).into_bytes();
        out.push(b'\n');
        Ok(out)
    } else {
        let text = std::str::from_utf8(input).map_err(|e| JsonError {
            offset: e.valid_up_to(),
            problem: "JSON text is not valid UTF-8".to_owned(),
        })?;
        let value = json::from_json(text)?;
        let mut out = Vec::new();
        value::encode(&value, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives() {
        let mut out = Vec::new();
        int(&mut out, 0);
        int(&mut out, -42);
        int(&mut out, i64::MIN);
        int(&mut out, i64::MAX);
        bytes(&mut out, b"spam");
        bytes(&mut out, b"");
        int_entry(&mut out, "interval", 1800);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "i0ei-42ei-9223372036854775808ei9223372036854775807e4:spam0:8:intervali1800e"
        );
    }

    #[test]
    fn decimal_appends_without_clearing() {
        let mut out = b"x".to_vec();
        decimal(&mut out, 10);
        decimal(&mut out, -7);
        assert_eq!(out, b"x10-7");
    }

    #[test]
    fn run_encodes_json_without_newline() {
        let out = run(false, br#" {"b":[1,"x"],"a":true} "#).unwrap();
        assert_eq!(out, b"d1:ai1e1:bli1e1:xee");
    }

    #[test]
    fn run_decodes_to_json_with_one_newline() {
        let out = run(true, b"d1:bli1e1:xe1:ai1ee\n").unwrap();
        assert_eq!(out, b"{\"b\":[1,\"x\"],\"a\":1}\n");
    }

    #[test]
    fn run_reports_offsets() {
        let e = run(true, b"i03e").unwrap_err();
        assert!(matches!(e, Error::Bencode(_)));
        assert_eq!(e.offset(), 1);
        assert_eq!(e.to_string(), "offset 1: leading zero in integer");

        let e = run(false, b"[1, 2.5]").unwrap_err();
        assert!(matches!(e, Error::Json(_)));
        assert_eq!(e.offset(), 5);
    }

    #[test]
    fn run_rejects_non_utf8_json() {
        let e = run(false, b"\"ab\xffc\"").unwrap_err();
        assert_eq!(e.to_string(), "offset 3: JSON text is not valid UTF-8");
    }
}
