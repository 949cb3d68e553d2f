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
//!   The `bencode` tool's conversion is `cli::bencode`'s.
//!
//! Every decoder here treats its input as hostile: errors, never panics, never
//! allocates more than the input justifies, and stops at [`MAX_DEPTH`] nested
//! containers instead of overflowing the stack.

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
}
