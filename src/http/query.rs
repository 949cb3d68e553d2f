//! The query-string parser of SPEC §4 and the announce parameter checks of SPEC §5.1
//! (#1–#9). Works on raw bytes; values without escapes are borrowed, not copied.

use std::borrow::Cow;
use std::net::IpAddr;

use smallvec::SmallVec;

use crate::percent::{self, Plus};
use crate::tracker::{AnnounceRequest, Event, Failure, InfoHash, PeerId};

/// Longest query string accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 8192;

/// The parameters the tracker reads. Others are ignored.
#[derive(Default, Debug)]
pub struct Query<'a> {
    /// Every `info_hash` value of exactly 20 bytes, in order, duplicates kept.
    pub info_hashes: SmallVec<[InfoHash; 1]>,
    pub peer_id: Option<PeerIdParam>,
    pub port: Option<Cow<'a, [u8]>>,
    pub uploaded: Option<Cow<'a, [u8]>>,
    pub downloaded: Option<Cow<'a, [u8]>>,
    pub left: Option<Cow<'a, [u8]>>,
    pub event: Option<Cow<'a, [u8]>>,
    pub ip: Option<Cow<'a, [u8]>>,
    pub ipv4: Option<Cow<'a, [u8]>>,
    pub numwant: Option<Cow<'a, [u8]>>,
    pub compact: Option<Cow<'a, [u8]>>,
    pub no_peer_id: Option<Cow<'a, [u8]>>,
}

/// The last `peer_id` value, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerIdParam {
    Empty,
    /// Not 20 bytes once decoded.
    Invalid,
    Valid([u8; 20]),
}

impl<'a> Query<'a> {
    /// Parses the bytes after the `?`. Refuses an over-long query (Q1) and any `%` not
    /// followed by two hex digits (Q2), in keys and values alike.
    pub fn parse(raw: &'a [u8]) -> Result<Query<'a>, Failure> {
        if raw.len() > MAX_QUERY_LEN {
            return Err(Failure::QueryTooLong);
        }
        let mut query = Query::default();
        for segment in raw.split(|&b| b == b'&') {
            if segment.is_empty() {
                continue;
            }
            let (key, value) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &b""[..]),
            };
            let key = decode(key)?;
            // `info_hash` is matched before lowercasing: `INFO_HASH` is just another key.
            // It and `peer_id` decode straight into 20-byte arrays, without allocating.
            if *key == *b"info_hash" {
                if let Some(hash) = decode_20(value)? {
                    query.info_hashes.push(InfoHash(hash));
                }
                continue;
            }
            if key.eq_ignore_ascii_case(b"peer_id") {
                query.peer_id = Some(match decode_20(value)? {
                    Some(id) => PeerIdParam::Valid(id),
                    None if value.is_empty() => PeerIdParam::Empty,
                    None => PeerIdParam::Invalid,
                });
                continue;
            }
            let value = decode(value)?;
            if let Some(slot) = query.slot(&key) {
                *slot = Some(value);
            }
        }
        Ok(query)
    }

    /// The field for a (case-insensitive) key, or None for keys we ignore.
    fn slot(&mut self, key: &[u8]) -> Option<&mut Option<Cow<'a, [u8]>>> {
        const NAMES: [&[u8]; 10] = [
            b"port",
            b"uploaded",
            b"downloaded",
            b"left",
            b"event",
            b"ip",
            b"ipv4",
            b"numwant",
            b"compact",
            b"no_peer_id",
        ];
        let index = NAMES
            .iter()
            .position(|name| name.eq_ignore_ascii_case(key))?;
        Some(match index {
            0 => &mut self.port,
            1 => &mut self.uploaded,
            2 => &mut self.downloaded,
            3 => &mut self.left,
            4 => &mut self.event,
            5 => &mut self.ip,
            6 => &mut self.ipv4,
            7 => &mut self.numwant,
            8 => &mut self.compact,
            _ => &mut self.no_peer_id,
        })
    }
}

/// Decodes a value that matters only when it is exactly 20 bytes (an info_hash or a
/// peer_id) into an array; escapes are checked all the same.
pub fn decode_20(input: &[u8]) -> Result<Option<[u8; 20]>, Failure> {
    let mut out = [0u8; 20];
    let mut len = 0usize;
    percent::decode_each(input, Plus::Space, |byte| {
        if let Some(slot) = out.get_mut(len) {
            *slot = byte;
        }
        len += 1;
    })
    .map_err(|_| Failure::InvalidQuery)?;
    Ok((len == 20).then_some(out))
}

/// `+` becomes a space and `%XX` (either case) a byte; other bytes stay.
pub fn decode(input: &[u8]) -> Result<Cow<'_, [u8]>, Failure> {
    percent::decode(input, Plus::Space).map_err(|_| Failure::InvalidQuery)
}

/// Decodes `%XX` in one path segment (`+` stays as is in paths); None on a bad escape.
pub fn decode_path_segment(input: &[u8]) -> Option<Cow<'_, [u8]>> {
    percent::decode(input, Plus::Literal).ok()
}

/// ASCII digits only, at least one, fitting in u64; anything else counts as absent.
pub fn parse_u64(value: Option<&[u8]>) -> Option<u64> {
    let value = value?;
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

pub fn parse_u16(value: Option<&[u8]>) -> Option<u16> {
    parse_u64(value).and_then(|n| u16::try_from(n).ok())
}

/// Checks #1–#10 of SPEC §5.1 in order, first failure wins; `address` resolves the
/// peer's address (#10) once the parameters passed. Returns the request and the raw
/// `event` value (empty when absent), which the recorder keeps as sent.
pub fn announce_request<'q>(
    query: &'q Query<'_>,
    strict_port: bool,
    address: impl FnOnce() -> Result<IpAddr, Failure>,
) -> Result<(AnnounceRequest, &'q [u8]), Failure> {
    let info_hash = match query.info_hashes.as_slice() {
        [] => return Err(Failure::MissingInfoHash),
        [one] => *one,
        _ => return Err(Failure::MultipleInfoHashes),
    };
    let peer_id = match query.peer_id {
        None | Some(PeerIdParam::Empty) => return Err(Failure::MissingPeerId),
        Some(PeerIdParam::Invalid) => return Err(Failure::InvalidPeerId),
        Some(PeerIdParam::Valid(id)) => PeerId(id),
    };
    let port = parse_u16(query.port.as_deref()).ok_or(Failure::MissingPort)?;
    if strict_port && port < 1024 {
        return Err(Failure::PortOutOfRange(port));
    }
    let uploaded = parse_u64(query.uploaded.as_deref()).ok_or(Failure::MissingUploaded)?;
    let downloaded = parse_u64(query.downloaded.as_deref()).ok_or(Failure::MissingDownloaded)?;
    let left = parse_u64(query.left.as_deref()).ok_or(Failure::MissingLeft)?;
    let ip = address()?;
    let event_raw = query.event.as_deref().unwrap_or_default();
    let request = AnnounceRequest {
        info_hash,
        peer_id,
        port,
        uploaded,
        downloaded,
        left,
        event: Event::from_raw(event_raw),
        numwant: parse_u16(query.numwant.as_deref()),
        compact: query.compact.as_deref() != Some(b"0"),
        no_peer_id: query.no_peer_id.as_deref() == Some(b"1"),
        ip,
    };
    Ok((request, event_raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_ESC: &str = "%12%34%56%78%9a%BC%de%F0%00%ff%20%2B+abcdefg";

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(1, 2, 3, 4));

    fn announce(q: &str) -> Result<AnnounceRequest, Failure> {
        check(q, false)
    }

    fn check(q: &str, strict_port: bool) -> Result<AnnounceRequest, Failure> {
        let query = Query::parse(q.as_bytes())?;
        announce_request(&query, strict_port, || Ok(IP)).map(|(request, _)| request)
    }

    #[test]
    fn fixed_decoding_agrees_with_decode() {
        for input in [
            &b"%12%34%56%78%9a%BC%de%F0%00%ff%20%2B+abcdefg"[..],
            b"-TR2940-abcdefghijkl",
            b"short",
            b"",
            b"-TR2940-abcdefghijklm",
            b"%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41",
        ] {
            let general = decode(input).unwrap();
            let fixed = decode_20(input).unwrap();
            assert_eq!(
                fixed.map(|f| f.to_vec()),
                (general.len() == 20).then(|| general.to_vec()),
                "{input:?}"
            );
        }
        for bad in [&b"%"[..], b"%4", b"%zz", b"%%41"] {
            assert_eq!(decode_20(bad), Err(Failure::InvalidQuery));
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(&*decode(b"a+b%20c%2b%2B").unwrap(), b"a b c++");
        assert_eq!(&*decode(b"%fF%00").unwrap(), b"\xff\x00");
        for bad in [&b"%"[..], b"%4", b"%zz", b"a%g0", b"%%41"] {
            assert_eq!(decode(bad), Err(Failure::InvalidQuery), "{bad:?}");
        }
        assert!(matches!(decode(b"plain;text"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn info_hash_rules() {
        let q = format!(
            "info_hash={HASH_ESC}&info_hash=short&INFO_HASH={HASH_ESC}&info_hash={HASH_ESC}"
        );
        let query = Query::parse(q.as_bytes()).unwrap();
        assert_eq!(query.info_hashes.len(), 2);
        assert_eq!(query.info_hashes[0].0[..4], [0x12, 0x34, 0x56, 0x78]);
        assert_eq!(&query.info_hashes[0].0[10..13], b" + ");
    }

    #[test]
    fn keys_are_case_insensitive_last_wins_and_semicolon_is_ordinary() {
        let query = Query::parse(b"EvEnT=started&event=completed&&port&left=1;x=2&ip").unwrap();
        assert_eq!(query.event.as_deref(), Some(&b"completed"[..]));
        assert_eq!(query.port.as_deref(), Some(&b""[..]));
        assert_eq!(query.left.as_deref(), Some(&b"1;x=2"[..]));
        assert_eq!(query.ip.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn limits_and_bad_escapes_anywhere() {
        let long = "a".repeat(MAX_QUERY_LEN + 1);
        assert_eq!(
            Query::parse(long.as_bytes()).unwrap_err(),
            Failure::QueryTooLong
        );
        assert!(Query::parse("a".repeat(MAX_QUERY_LEN).as_bytes()).is_ok());
        assert_eq!(
            Query::parse(b"unused%zz=1").unwrap_err(),
            Failure::InvalidQuery
        );
        assert_eq!(
            Query::parse(b"unused=%4").unwrap_err(),
            Failure::InvalidQuery
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(Some(b"0")), Some(0));
        assert_eq!(parse_u64(Some(b"007")), Some(7));
        assert_eq!(parse_u64(Some(b"18446744073709551615")), Some(u64::MAX));
        assert_eq!(parse_u64(Some(b"18446744073709551616")), None);
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1 ", b"1e3", b"0x10"] {
            assert_eq!(parse_u64(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_u16(Some(b"65535")), Some(65535));
        assert_eq!(parse_u16(Some(b"65536")), None);
    }

    #[test]
    fn announce_checks_in_order() {
        let base = format!("info_hash={HASH_ESC}&peer_id=-TR2940-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3");
        let ok = announce(&base).unwrap();
        assert_eq!(
            (ok.port, ok.uploaded, ok.downloaded, ok.left),
            (6881, 1, 2, 3)
        );
        assert_eq!(
            (ok.event, ok.numwant, ok.compact, ok.no_peer_id),
            (Event::None, None, true, false)
        );

        let cases: &[(&str, Failure)] = &[
            ("peer_id=x", Failure::MissingInfoHash),
            (&format!("info_hash={HASH_ESC}&info_hash={HASH_ESC}"), Failure::MultipleInfoHashes),
            (&format!("info_hash={HASH_ESC}&peer_id="), Failure::MissingPeerId),
            (&format!("info_hash={HASH_ESC}&peer_id=short"), Failure::InvalidPeerId),
            (&format!("info_hash={HASH_ESC}&peer_id=-TR2940-abcdefghijkl&port=70000"), Failure::MissingPort),
            (&format!("info_hash={HASH_ESC}&peer_id=-TR2940-abcdefghijkl&port=1"), Failure::MissingUploaded),
            (&format!("info_hash={HASH_ESC}&peer_id=-TR2940-abcdefghijkl&port=1&uploaded=0"), Failure::MissingDownloaded),
            (
                &format!("info_hash={HASH_ESC}&peer_id=-TR2940-abcdefghijkl&port=1&uploaded=0&downloaded=0&left=-1"),
                Failure::MissingLeft,
            ),
        ];
        for (q, want) in cases {
            assert_eq!(announce(q).unwrap_err(), *want, "{q}");
        }
        let port_zero = base.replace("port=6881", "port=0");
        assert!(
            check(&port_zero, false).is_ok(),
            "port 0 passes without strict_port"
        );
        assert_eq!(
            check(&port_zero, true).unwrap_err(),
            Failure::PortOutOfRange(0)
        );
        // The address is resolved only after every parameter check passed.
        let query = Query::parse(b"peer_id=x").unwrap();
        let refused = announce_request(&query, false, || Err(Failure::BadAddress(Vec::new())));
        assert_eq!(refused.unwrap_err(), Failure::MissingInfoHash);
        let query = Query::parse(base.as_bytes()).unwrap();
        let refused = announce_request(&query, false, || Err(Failure::BadAddress(Vec::new())));
        assert_eq!(refused.unwrap_err(), Failure::BadAddress(Vec::new()));
        assert_eq!(announce(&base).unwrap().ip, IP);
    }

    #[test]
    fn flags() {
        let base = format!("info_hash={HASH_ESC}&peer_id=-TR2940-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3");
        let p = announce(&format!(
            "{base}&compact=0&no_peer_id=1&numwant=7&event=stopped"
        ))
        .unwrap();
        assert_eq!(
            (p.compact, p.no_peer_id, p.numwant, p.event),
            (false, true, Some(7), Event::Stopped)
        );
        let p = announce(&format!(
            "{base}&compact=00&no_peer_id=01&numwant=x&event=Stopped"
        ))
        .unwrap();
        assert_eq!(
            (p.compact, p.no_peer_id, p.numwant, p.event),
            (true, false, None, Event::None)
        );
        let raw = format!("{base}&event=Stopped");
        let query = Query::parse(raw.as_bytes()).unwrap();
        let (_, event_raw) = announce_request(&query, false, || Ok(IP)).unwrap();
        assert_eq!(event_raw, b"Stopped");
    }
}
