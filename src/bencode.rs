//! Bencode (BEP 3), shared by the server's responses and the `bencode` tool.
//!
//! The server writes its few fixed shapes straight into a byte buffer with these
//! primitives; callers are responsible for emitting dictionary keys in sorted order.

/// Appends `i<n>e`.
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    decimal(out, n);
    out.push(b'e');
}

/// Appends `<len>:<bytes>`.
pub fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    decimal(out, value.len() as i64);
    out.push(b':');
    out.extend_from_slice(value);
}

/// Appends the byte-string form of `key` followed by the integer `n`: one dictionary entry.
pub fn int_entry(out: &mut Vec<u8>, key: &str, n: i64) {
    bytes(out, key.as_bytes());
    int(out, n);
}

/// Appends the ASCII decimal of `n`.
pub fn decimal(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let negative = n < 0;
    let mut rest = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if negative {
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
        bytes(&mut out, b"spam");
        bytes(&mut out, b"");
        int_entry(&mut out, "interval", 1800);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "i0ei-42ei-9223372036854775808e4:spam0:8:intervali1800e"
        );
    }
}
