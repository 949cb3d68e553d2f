//! Percent-decoding (`%XX`, either case, RFC 3986), the one decoder of the crate: for
//! query values (where `+` is a space), path segments and the user info of a
//! `DB_DSN` (where it is a `+`). A `%` not followed by two hex digits is an error.

use std::borrow::Cow;

/// What a `+` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plus {
    /// A space (`application/x-www-form-urlencoded`: query strings).
    Space,
    /// Itself (paths, URLs' user info).
    Literal,
}

/// A `%` without two hex digits after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEscape;

/// Hands every decoded byte of `input` to `emit`, in order, without allocating.
pub fn decode_each(input: &[u8], plus: Plus, mut emit: impl FnMut(u8)) -> Result<(), BadEscape> {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' if plus == Plus::Space => emit(b' '),
            b'%' => {
                let hi = input.get(i + 1).and_then(|&b| hex_value(b));
                let lo = input.get(i + 2).and_then(|&b| hex_value(b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => emit(hi << 4 | lo),
                    _ => return Err(BadEscape),
                }
                i += 2;
            }
            other => emit(other),
        }
        i += 1;
    }
    Ok(())
}

/// The decoded bytes of `input`, borrowed when nothing needs decoding.
pub fn decode(input: &[u8], plus: Plus) -> Result<Cow<'_, [u8]>, BadEscape> {
    let special = |&b: &u8| b == b'%' || (b == b'+' && plus == Plus::Space);
    if !input.iter().any(special) {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(input.len());
    decode_each(input, plus, |b| out.push(b))?;
    Ok(Cow::Owned(out))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_of_either_case_and_plus_by_context() {
        assert_eq!(decode(b"a%2Fb%2f+c", Plus::Space).unwrap(), &b"a/b/ c"[..]);
        assert_eq!(decode(b"a%2Fb+c", Plus::Literal).unwrap(), &b"a/b+c"[..]);
        assert!(matches!(
            decode(b"plain", Plus::Space),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            decode(b"a+b", Plus::Literal),
            Ok(Cow::Borrowed(_))
        ));
        assert_eq!(decode(b"%FF%00", Plus::Literal).unwrap(), &[0xFF, 0][..]);
    }

    #[test]
    fn a_broken_escape_is_an_error_wherever_it_is() {
        for bad in [&b"%"[..], b"%4", b"%G0", b"%0G", b"ab%", b"%%41"] {
            assert_eq!(decode(bad, Plus::Space), Err(BadEscape), "{bad:?}");
            assert_eq!(decode_each(bad, Plus::Literal, |_| {}), Err(BadEscape));
        }
    }
}
