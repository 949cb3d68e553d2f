//! The bencode [`Value`] tree, its strict decoder and its canonical encoder.
//!
//! Owns what counts as valid bencode (SPEC §11): no leading zeros, no `-0`, no empty
//! integers, byte-string keys only, no duplicate keys, lengths that fit the input,
//! exactly one value (trailing ASCII whitespace allowed). Keys need not be sorted on
//! input, and a dictionary keeps its input order; [`encode`] sorts keys by raw bytes.
//! Integers have no size limit. The decoder must not panic, must not allocate more
//! than the input length justifies, and stops at [`MAX_DEPTH`] levels of nesting.
//! JSON lives in `json.rs`; nothing here knows about it.

use std::collections::HashSet;
use std::fmt;

use super::MAX_DEPTH;

/// One bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `i<digits>e`, any size.
    Int(Integer),
    /// `<len>:<bytes>`, any bytes.
    Bytes(Vec<u8>),
    /// `l…e`.
    List(Vec<Value>),
    /// `d…e`, entries in input order. Values from [`decode`] and `from_json` never
    /// repeat a key; [`encode`] sorts the keys but does not remove repeats.
    Dict(Vec<(Vec<u8>, Value)>),
}

/// An integer of any size, kept as its canonical decimal text (sign + digits, no
/// leading zeros, no `-0`). The field is private so every `Integer` is canonical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integer(String);

impl Integer {
    /// `text` as an integer, if it is canonical: an optional `-`, then `0` or digits
    /// not starting with `0`, and not `-0`. Returns `None` otherwise.
    pub fn from_decimal(text: &str) -> Option<Integer> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let negative = digits.len() != text.len();
        match integer_problem(digits.as_bytes(), negative) {
            None => Some(Integer(text.to_owned())),
            Some(_) => None,
        }
    }

    /// The canonical decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, if it fits an `i64`.
    pub fn to_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl From<i64> for Integer {
    fn from(n: i64) -> Self {
        // i64's Display is already canonical: no leading zeros, no "-0".
        Integer(n.to_string())
    }
}

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the decimal digits of an integer are not canonical, if they are not.
/// `digits` excludes the sign.
fn integer_problem(digits: &[u8], negative: bool) -> Option<&'static str> {
    if digits.is_empty() {
        Some("integer has no digits")
    } else if !digits.iter().all(u8::is_ascii_digit) {
        Some("integer has a non-digit")
    } else if digits.len() > 1 && digits[0] == b'0' {
        Some("leading zero in integer")
    } else if negative && digits == b"0" {
        Some("negative zero")
    } else {
        None
    }
}

/// A bencode input that is not exactly one valid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What is wrong, in words, e.g. `leading zero in integer`.
    pub problem: String,
}

impl fmt::Display for DecodeError {
    /// `offset <n>: <problem>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes exactly one value. Trailing ASCII whitespace is ignored; any other
/// trailing byte is an error.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut decoder = Decoder { input, pos: 0 };
    let value = decoder.value(0)?;
    let rest = &input[decoder.pos..];
    match rest.iter().position(|b| !b.is_ascii_whitespace()) {
        None => Ok(value),
        Some(skip) => Err(DecodeError {
            offset: decoder.pos + skip,
            problem: format!("trailing data after the value: {}", show_byte(rest[skip])),
        }),
    }
}

/// Appends the canonical encoding of `value`: dictionary keys sorted by raw bytes
/// (a stable sort, so repeated keys, which a decoded value never has, keep their order).
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(n) => {
            out.push(b'i');
            out.extend_from_slice(n.as_str().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => super::bytes(out, b),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(entries) => {
            let mut sorted: Vec<&(Vec<u8>, Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'd');
            for (key, item) in sorted {
                super::bytes(out, key);
                encode(item, out);
            }
            out.push(b'e');
        }
    }
}

/// A byte as it appears in an error message: `'x'` if printable ASCII, else `0xNN`.
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", char::from(b))
    } else {
        format!("0x{b:02x}")
    }
}

/// A key as it appears in an error message: quoted, non-printable bytes escaped,
/// cut after 64 bytes so a hostile key cannot make a huge message.
fn show_key(key: &[u8]) -> String {
    const SHOWN: usize = 64;
    let cut = key.len().min(SHOWN);
    let more = if key.len() > SHOWN { "…" } else { "" };
    format!("\"{}{more}\"", key[..cut].escape_ascii())
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn fail<T>(&self, offset: usize, problem: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset,
            problem: problem.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn end_of_input<T>(&self) -> Result<T, DecodeError> {
        self.fail(self.input.len(), "unexpected end of input")
    }

    /// One value starting at `pos`; `depth` counts the containers around it.
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        match self.peek() {
            None => self.end_of_input(),
            Some(b'i') => self.integer().map(Value::Int),
            Some(b'0'..=b'9') => self.string().map(|s| Value::Bytes(s.to_vec())),
            Some(b'l') => {
                self.open(depth)?;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        None => return self.end_of_input(),
                        Some(b'e') => break,
                        Some(_) => items.push(self.value(depth + 1)?),
                    }
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            Some(b'd') => {
                self.open(depth)?;
                let mut entries = Vec::new();
                let mut seen: HashSet<&'a [u8]> = HashSet::new();
                loop {
                    let key_start = self.pos;
                    let key = match self.peek() {
                        None => return self.end_of_input(),
                        Some(b'e') => break,
                        Some(b'0'..=b'9') => self.string()?,
                        Some(_) => {
                            return self.fail(key_start, "dictionary key is not a byte string")
                        }
                    };
                    if !seen.insert(key) {
                        return self.fail(
                            key_start,
                            format!("duplicate dictionary key {}", show_key(key)),
                        );
                    }
                    let item = self.value(depth + 1)?;
                    entries.push((key.to_vec(), item));
                }
                self.pos += 1;
                Ok(Value::Dict(entries))
            }
            Some(b) => self.fail(
                self.pos,
                format!(
                    "expected a value ('i', 'l', 'd' or a digit), found {}",
                    show_byte(b)
                ),
            ),
        }
    }

    /// Steps over the `l`/`d` at `pos`, refusing one level too many.
    fn open(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return self.fail(self.pos, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        self.pos += 1;
        Ok(())
    }

    /// Skips ASCII digits from `pos` and returns them.
    fn digits(&mut self) -> &'a [u8] {
        let start = self.pos;
        let input = self.input;
        while input.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        &input[start..self.pos]
    }

    /// `i<digits>e` at `pos`.
    fn integer(&mut self) -> Result<Integer, DecodeError> {
        self.pos += 1; // the 'i'
        let sign_at = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let digits = self.digits();
        if digits.is_empty() {
            return match self.peek() {
                None => self.end_of_input(),
                Some(b'e') => self.fail(digits_at, "integer has no digits"),
                Some(b) => self.fail(
                    digits_at,
                    format!("expected a digit in integer, found {}", show_byte(b)),
                ),
            };
        }
        if let Some(problem) = integer_problem(digits, negative) {
            let at = if negative && digits == b"0" {
                sign_at
            } else {
                digits_at
            };
            return self.fail(at, problem);
        }
        match self.peek() {
            None => self.end_of_input(),
            Some(b'e') => {
                self.pos += 1;
                // Only '-' and ASCII digits were accepted, so this never fails.
                let text = String::from_utf8_lossy(&self.input[sign_at..self.pos - 1]);
                Ok(Integer(text.into_owned()))
            }
            Some(b) => self.fail(
                self.pos,
                format!("expected a digit or 'e' in integer, found {}", show_byte(b)),
            ),
        }
    }

    /// `<len>:<bytes>` at `pos` (which holds a digit); returns the bytes, borrowed.
    /// The length is checked against the input before anything is allocated.
    fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let digits = self.digits();
        if digits.len() > 1 && digits[0] == b'0' {
            return self.fail(start, "leading zero in string length");
        }
        match self.peek() {
            None => return self.end_of_input(),
            Some(b':') => self.pos += 1,
            Some(b) => {
                return self.fail(
                    self.pos,
                    format!("expected ':' after string length, found {}", show_byte(b)),
                )
            }
        }
        let left = self.input.len() - self.pos;
        // Checked against what is left before anything is allocated. A length too big
        // for usize is past the end of any input.
        let len = digits.iter().try_fold(0usize, |n, d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        });
        let len = match len {
            Some(len) if len <= left => len,
            Some(len) => {
                return self.fail(
                    start,
                    format!("string length {len} runs past the end of input ({left} bytes left)"),
                )
            }
            None => {
                return self.fail(
                    start,
                    format!("string length of {} digits is too large", digits.len()),
                )
            }
        };
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn int(n: i64) -> Value {
        Value::Int(Integer::from(n))
    }

    fn bytes(b: &[u8]) -> Value {
        Value::Bytes(b.to_vec())
    }

    fn enc(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out);
        out
    }

    /// Asserts that `input` fails at `offset` with exactly `problem`.
    #[track_caller]
    fn fails(input: &[u8], offset: usize, problem: &str) {
        let e = decode(input).unwrap_err();
        assert_eq!(
            (e.offset, e.problem.as_str()),
            (offset, problem),
            "input {:?}",
            input.escape_ascii().to_string()
        );
    }

    #[test]
    fn integer_constructors() {
        assert_eq!(Integer::from(0).as_str(), "0");
        assert_eq!(Integer::from(-15).as_str(), "-15");
        assert_eq!(Integer::from(i64::MIN).as_str(), "-9223372036854775808");
        assert_eq!(Integer::from(i64::MIN).to_i64(), Some(i64::MIN));
        for good in ["0", "7", "-7", "10", "123456789012345678901234567890"] {
            assert_eq!(Integer::from_decimal(good).unwrap().as_str(), good);
        }
        for bad in [
            "", "-", "-0", "00", "01", "-01", "+1", "1a", " 1", "1 ", "--1", "1.0",
        ] {
            assert_eq!(Integer::from_decimal(bad), None, "{bad:?}");
        }
        let big = Integer::from_decimal("-123456789012345678901234567890").unwrap();
        assert_eq!(big.to_i64(), None);
        assert_eq!(big.to_string(), "-123456789012345678901234567890");
    }

    #[test]
    fn decodes_valid_samples() {
        assert_eq!(decode(b"i0e").unwrap(), int(0));
        assert_eq!(decode(b"i-42e").unwrap(), int(-42));
        assert_eq!(
            decode(b"i123456789012345678901234567890e").unwrap(),
            Value::Int(Integer::from_decimal("123456789012345678901234567890").unwrap())
        );
        assert_eq!(decode(b"0:").unwrap(), bytes(b""));
        assert_eq!(decode(b"4:spam").unwrap(), bytes(b"spam"));
        assert_eq!(decode(b"3:\xff\x00e").unwrap(), bytes(b"\xff\x00e"));
        assert_eq!(decode(b"le").unwrap(), Value::List(vec![]));
        assert_eq!(decode(b"de").unwrap(), Value::Dict(vec![]));
        assert_eq!(
            decode(b"l4:spami7elee").unwrap(),
            Value::List(vec![bytes(b"spam"), int(7), Value::List(vec![])])
        );
        // Unsorted keys are accepted and keep their order.
        assert_eq!(
            decode(b"d1:bi1e1:ad1:xleee").unwrap(),
            Value::Dict(vec![
                (b"b".to_vec(), int(1)),
                (
                    b"a".to_vec(),
                    Value::Dict(vec![(b"x".to_vec(), Value::List(vec![]))])
                ),
            ])
        );
    }

    #[test]
    fn trailing_whitespace_is_ignored() {
        assert_eq!(decode(b"i1e \t\r\n\x0c").unwrap(), int(1));
        assert_eq!(decode(b"le\n").unwrap(), Value::List(vec![]));
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        fails(b"i1ei2e", 3, "trailing data after the value: 'i'");
        fails(b"i1e \nx", 5, "trailing data after the value: 'x'");
        fails(b"4:spam\x00", 6, "trailing data after the value: 0x00");
        // Vertical tab is not ASCII whitespace in Rust's (and WHATWG's) sense.
        fails(b"i1e\x0b", 3, "trailing data after the value: 0x0b");
    }

    #[test]
    fn integer_errors() {
        fails(b"i03e", 1, "leading zero in integer");
        fails(b"i00e", 1, "leading zero in integer");
        fails(b"i-03e", 2, "leading zero in integer");
        fails(b"i-0e", 1, "negative zero");
        fails(b"ie", 1, "integer has no digits");
        fails(b"i-e", 2, "integer has no digits");
        fails(b"i--1e", 2, "expected a digit in integer, found '-'");
        fails(b"i+1e", 1, "expected a digit in integer, found '+'");
        fails(b"i1.5e", 2, "expected a digit or 'e' in integer, found '.'");
        fails(b"i 1e", 1, "expected a digit in integer, found ' '");
        fails(b"i12", 3, "unexpected end of input");
        fails(b"i", 1, "unexpected end of input");
        fails(b"i-", 2, "unexpected end of input");
    }

    #[test]
    fn string_errors() {
        fails(b"03:abc", 0, "leading zero in string length");
        fails(b"00:", 0, "leading zero in string length");
        fails(
            b"5:abc",
            0,
            "string length 5 runs past the end of input (3 bytes left)",
        );
        fails(
            b"l1:a3:be",
            4,
            "string length 3 runs past the end of input (2 bytes left)",
        );
        fails(b"3abc", 1, "expected ':' after string length, found 'a'");
        fails(b"3", 1, "unexpected end of input");
        fails(
            b"-3:abc",
            0,
            "expected a value ('i', 'l', 'd' or a digit), found '-'",
        );
    }

    #[test]
    fn huge_lengths_fail_without_allocating() {
        fails(
            b"99999999999:",
            0,
            "string length 99999999999 runs past the end of input (0 bytes left)",
        );
        fails(
            b"99999999999999999999999999999999999:x",
            0,
            "string length of 35 digits is too large",
        );
        fails(
            b"l18446744073709551615:e",
            1,
            "string length 18446744073709551615 runs past the end of input (1 bytes left)",
        );
    }

    #[test]
    fn structure_errors() {
        fails(b"", 0, "unexpected end of input");
        fails(b"l", 1, "unexpected end of input");
        fails(b"li1e", 4, "unexpected end of input");
        fails(b"d", 1, "unexpected end of input");
        fails(b"d1:a", 4, "unexpected end of input");
        fails(b"d1:ai1e", 7, "unexpected end of input");
        fails(
            b"x",
            0,
            "expected a value ('i', 'l', 'd' or a digit), found 'x'",
        );
        fails(
            b" i1e",
            0,
            "expected a value ('i', 'l', 'd' or a digit), found ' '",
        );
        fails(
            b"e",
            0,
            "expected a value ('i', 'l', 'd' or a digit), found 'e'",
        );
        fails(
            b"l\xffe",
            1,
            "expected a value ('i', 'l', 'd' or a digit), found 0xff",
        );
    }

    #[test]
    fn dictionary_errors() {
        fails(b"di1ei2ee", 1, "dictionary key is not a byte string");
        fails(b"dlei1ee", 1, "dictionary key is not a byte string");
        fails(b"d1:ai1e1:ai2ee", 7, "duplicate dictionary key \"a\"");
        fails(
            b"d1:ai1e1:bi2e1:ai3ee",
            13,
            "duplicate dictionary key \"a\"",
        );
        fails(
            b"d2:\xff\x00i1e2:\xff\x00i2ee",
            8,
            "duplicate dictionary key \"\\xff\\x00\"",
        );
        // The same key in different dictionaries is fine.
        assert!(decode(b"d1:ad1:ai1ee1:bd1:ai1eee").is_ok());
        // A duplicate key is reported even when its value is broken.
        fails(b"d1:ai1e1:a", 7, "duplicate dictionary key \"a\"");
    }

    #[test]
    fn long_keys_are_cut_in_messages() {
        let mut input = b"d".to_vec();
        for _ in 0..2 {
            input.extend_from_slice(b"100:");
            input.extend_from_slice(&[b'k'; 100]);
            input.extend_from_slice(b"i0e");
        }
        input.push(b'e');
        let e = decode(&input).unwrap_err();
        assert_eq!(e.offset, 108);
        assert_eq!(
            e.problem,
            format!("duplicate dictionary key \"{}…\"", "k".repeat(64))
        );
    }

    #[test]
    fn nesting_limit() {
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(decode(&ok).is_ok());

        let too_deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        fails(&too_deep, MAX_DEPTH, "nesting deeper than 512 levels");

        let mut dicts = Vec::new();
        for _ in 0..=MAX_DEPTH {
            dicts.extend_from_slice(b"d1:a");
        }
        fails(&dicts, 4 * MAX_DEPTH, "nesting deeper than 512 levels");

        // Far deeper than any stack would allow without the limit.
        fails(
            &vec![b'l'; 100_000],
            MAX_DEPTH,
            "nesting deeper than 512 levels",
        );
    }

    #[test]
    fn display() {
        let e = decode(b"i-0e").unwrap_err();
        assert_eq!(e.to_string(), "offset 1: negative zero");
    }

    #[test]
    fn encodes_exact_bytes() {
        assert_eq!(enc(&int(0)), b"i0e");
        assert_eq!(enc(&int(-3)), b"i-3e");
        assert_eq!(enc(&bytes(b"")), b"0:");
        assert_eq!(enc(&bytes(b"\x00\xff")), b"2:\x00\xff");
        let value = Value::List(vec![int(1), Value::List(vec![]), Value::Dict(vec![])]);
        assert_eq!(enc(&value), b"li1eledee");
    }

    #[test]
    fn encode_sorts_keys_by_raw_bytes() {
        let value = Value::Dict(vec![
            (b"b".to_vec(), int(1)),
            (b"a".to_vec(), int(2)),
            (b"B".to_vec(), int(3)),
            (b"$x".to_vec(), int(4)),
            (b"\xff".to_vec(), int(5)),
            (b"".to_vec(), int(6)),
            (b"aa".to_vec(), int(7)),
        ]);
        assert_eq!(
            enc(&value),
            b"d0:i6e2:$xi4e1:Bi3e1:ai2e2:aai7e1:bi1e1:\xffi5ee"
        );
        // Nested dictionaries are sorted too.
        let nested = Value::List(vec![Value::Dict(vec![
            (b"z".to_vec(), int(0)),
            (b"y".to_vec(), int(0)),
        ])]);
        assert_eq!(enc(&nested), b"ld1:yi0e1:zi0eee");
    }

    /// A reference encoding through bendy; integers are limited to what bendy prints.
    struct Ref<'a>(&'a Value);

    impl bendy::encoding::ToBencode for Ref<'_> {
        const MAX_DEPTH: usize = 64;

        fn encode(
            &self,
            e: bendy::encoding::SingleItemEncoder,
        ) -> Result<(), bendy::encoding::Error> {
            match self.0 {
                Value::Int(n) => e.emit_int(n.as_str().parse::<i128>().unwrap()),
                Value::Bytes(b) => e.emit_bytes(b),
                Value::List(items) => e.emit_list(|l| {
                    for item in items {
                        l.emit(Ref(item))?;
                    }
                    Ok(())
                }),
                Value::Dict(entries) => e.emit_unsorted_dict(|d| {
                    for (k, v) in entries {
                        d.emit_pair(k, Ref(v))?;
                    }
                    Ok(())
                }),
            }
        }
    }

    /// Random values; dictionaries have distinct keys in random order.
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i128>().prop_map(|n| Value::Int(Integer::from_decimal(&n.to_string()).unwrap())),
            any::<i64>().prop_map(int),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
            "[a-z$]{0,6}".prop_map(|s| Value::Bytes(s.into_bytes())),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..6),
                    inner,
                    0..8
                )
                .prop_map(|m| m.into_iter().collect::<Vec<_>>())
                .prop_shuffle()
                .prop_map(Value::Dict),
            ]
        })
    }

    /// Sorts every dictionary's keys, as canonical bencode has them.
    pub(crate) fn sorted(value: Value) -> Value {
        match value {
            Value::List(items) => Value::List(items.into_iter().map(sorted).collect()),
            Value::Dict(entries) => {
                let mut entries: Vec<_> =
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Dict(entries)
            }
            other => other,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn encode_matches_bendy(value in arb_value()) {
            use bendy::encoding::ToBencode;
            prop_assert_eq!(enc(&value), Ref(&value).to_bencode().unwrap());
        }

        #[test]
        fn decode_inverts_encode(value in arb_value()) {
            let encoded = enc(&value);
            prop_assert_eq!(decode(&encoded).unwrap(), sorted(value));
        }

        #[test]
        fn decode_never_panics(input in proptest::collection::vec(
            prop_oneof![Just(b'i'), Just(b'l'), Just(b'd'), Just(b'e'), Just(b':'),
                        Just(b'-'), Just(b'0'), Just(b'1'), Just(b'9'), any::<u8>()],
            0..40,
        )) {
            if let Ok(value) = decode(&input) {
                // Whatever decodes re-encodes to a decodable value.
                prop_assert!(decode(&enc(&value)).is_ok());
            }
        }
    }
}
