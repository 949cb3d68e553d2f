//! The `bencode` tool's work on an in-memory input (SPEC §11): JSON to canonical
//! bencode, or bencode to JSON. Its `main` only reads the input and writes the output.

use std::fmt;

use crate::bencode::{json, value, DecodeError, JsonError};

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
