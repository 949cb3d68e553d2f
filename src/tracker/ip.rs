//! Which address an announcing peer gets (SPEC §5.2, §5.14): the client's own
//! `ipv4`/`ip` parameters when they are public IPv4, `ip` when it is public IPv6, else
//! the proxy header, else the TCP source. The result is IPv4 or IPv6: an IPv4-mapped
//! IPv6 address is IPv4 everywhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::failure::Failure;

/// Networks a client may not claim for itself through `ip`/`ipv4`: unroutable,
/// private, shared, loopback, link-local, multicast and reserved space.
const NON_PUBLIC_V4: [(u32, u32); 9] = [
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0xa9fe_0000, 16), // 169.254.0.0/16
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0xe000_0000, 4),  // 224.0.0.0/4
    (0xf000_0000, 4),  // 240.0.0.0/4
];

pub fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !NON_PUBLIC_V4
        .iter()
        .any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
}

/// Parses an IPv4 address in dotted-quad form (std rejects leading zeros and spaces)
/// or as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`).
pub fn parse_v4(text: &[u8]) -> Option<Ipv4Addr> {
    let text = std::str::from_utf8(text).ok()?;
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(v4);
    }
    text.parse::<Ipv6Addr>().ok()?.to_ipv4_mapped()
}

fn parse_public_v4(text: Option<&[u8]>) -> Option<Ipv4Addr> {
    parse_v4(text?).filter(|ip| is_public_v4(*ip))
}

/// IPv6 space a client may not claim for itself through `ip`: unspecified, loopback,
/// unique local (fc00::/7), link-local (fe80::/10), multicast (ff00::/8) and
/// documentation (2001:db8::/32). IPv4-mapped addresses are judged as IPv4 instead.
pub fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || first & 0xfe00 == 0xfc00
        || first & 0xffc0 == 0xfe80
        || first & 0xff00 == 0xff00
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// `ip` as a public IPv6 address (not IPv4-mapped), if it is one.
fn parse_public_v6(text: Option<&[u8]>) -> Option<Ipv6Addr> {
    let ip = std::str::from_utf8(text?).ok()?.parse::<Ipv6Addr>().ok()?;
    (ip.to_ipv4_mapped().is_none() && is_public_v6(ip)).then_some(ip)
}

/// Parses an address of either family; IPv4-mapped IPv6 comes back as IPv4.
fn parse_any(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_v4(text) {
        return Some(IpAddr::V4(v4));
    }
    let ip = std::str::from_utf8(text).ok()?.parse::<Ipv6Addr>().ok()?;
    Some(IpAddr::V6(ip))
}

/// Where the request came from, besides its query parameters.
pub struct Source<'a> {
    /// The configured proxy header's value, when `proxy` is set and the header is present.
    pub proxy_header: Option<&'a [u8]>,
    /// The TCP peer address, if the transport has one.
    pub tcp_peer: Option<IpAddr>,
}

/// Resolves the peer's address, or failure #10 with the candidate that did not parse.
pub fn resolve(
    ipv4_param: Option<&[u8]>,
    ip_param: Option<&[u8]>,
    source: &Source<'_>,
) -> Result<IpAddr, Failure> {
    let a = parse_public_v4(ipv4_param);
    let b = parse_public_v4(ip_param);
    match (a, b) {
        (Some(a), Some(b)) if a != b => return Err(Failure::BadAddress(Vec::new())),
        (Some(ip), _) | (None, Some(ip)) => return Ok(IpAddr::V4(ip)),
        (None, None) => {}
    }
    if let Some(v6) = parse_public_v6(ip_param) {
        return Ok(IpAddr::V6(v6));
    }
    if let Some(header) = source.proxy_header {
        let first = header.split(|&b| b == b',').next().unwrap_or(header);
        let first = trim_blanks(first);
        return parse_any(first).ok_or_else(|| Failure::BadAddress(first.to_vec()));
    }
    match source.tcp_peer {
        Some(IpAddr::V4(ip)) => Ok(IpAddr::V4(ip)),
        Some(IpAddr::V6(ip)) => Ok(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)),
        None => Err(Failure::BadAddress(Vec::new())),
    }
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(ip: &str) -> Source<'static> {
        Source {
            proxy_header: None,
            tcp_peer: Some(ip.parse().unwrap()),
        }
    }

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().unwrap())
    }

    #[test]
    fn public_ranges() {
        for private in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public_v4(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.2.3.4",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "223.255.255.255",
            "9.255.255.255",
            "11.0.0.0",
        ] {
            assert!(is_public_v4(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn parsing_is_strict() {
        let ip = "1.2.3.4".parse().ok();
        assert_eq!(parse_v4(b"1.2.3.4"), ip);
        assert_eq!(parse_v4(b"::ffff:1.2.3.4"), ip);
        assert_eq!(parse_v4(b"01.2.3.4"), None);
        assert_eq!(parse_v4(b" 1.2.3.4"), None);
        assert_eq!(parse_v4(b"1.2.3.4 "), None);
        assert_eq!(parse_v4(b"1.2.3"), None);
        assert_eq!(parse_v4(b"256.1.1.1"), None);
        assert_eq!(parse_v4(b"2001:db8::1"), None);
        assert_eq!(parse_v4(b"\xff"), None);
    }

    #[test]
    fn parameters_first_then_proxy_then_tcp() {
        let src = tcp("9.9.9.9");
        assert_eq!(resolve(Some(b"1.2.3.4"), None, &src), Ok(v4("1.2.3.4")));
        assert_eq!(resolve(None, Some(b"1.2.3.4"), &src), Ok(v4("1.2.3.4")));
        // Same address in two spellings is not a conflict.
        assert_eq!(
            resolve(Some(b"1.2.3.4"), Some(b"::ffff:1.2.3.4"), &src),
            Ok(v4("1.2.3.4"))
        );
        assert_eq!(
            resolve(Some(b"1.2.3.4"), Some(b"5.6.7.8"), &src),
            Err(Failure::BadAddress(Vec::new()))
        );
        // Non-public parameters are ignored, not refused.
        assert_eq!(
            resolve(Some(b"10.0.0.1"), Some(b"127.0.0.1"), &src),
            Ok(v4("9.9.9.9"))
        );
        assert_eq!(resolve(Some(b"garbage"), None, &src), Ok(v4("9.9.9.9")));
        assert_eq!(
            resolve(Some(b"10.0.0.1"), Some(b"5.6.7.8"), &src),
            Ok(v4("5.6.7.8"))
        );
    }

    #[test]
    fn proxy_header_first_element_trimmed_without_public_check() {
        let src = Source {
            proxy_header: Some(b" \t10.1.2.3 , 1.2.3.4"),
            tcp_peer: Some("9.9.9.9".parse().unwrap()),
        };
        assert_eq!(resolve(None, None, &src), Ok(v4("10.1.2.3")));
        let bad = Source {
            proxy_header: Some(b" nonsense ,1.2.3.4"),
            tcp_peer: Some("9.9.9.9".parse().unwrap()),
        };
        assert_eq!(
            resolve(None, None, &bad),
            Err(Failure::BadAddress(b"nonsense".to_vec()))
        );
        // Either family, no public check; mapped IPv6 is IPv4.
        for (header, ip) in [
            (&b"2001:db8::1"[..], v6("2001:db8::1")),
            (b"::ffff:10.1.2.3", v4("10.1.2.3")),
        ] {
            let src = Source {
                proxy_header: Some(header),
                tcp_peer: None,
            };
            assert_eq!(resolve(None, None, &src), Ok(ip));
        }
    }

    #[test]
    fn tcp_source() {
        assert_eq!(resolve(None, None, &tcp("127.0.0.1")), Ok(v4("127.0.0.1")));
        assert_eq!(
            resolve(None, None, &tcp("::ffff:10.0.0.1")),
            Ok(v4("10.0.0.1"))
        );
        assert_eq!(resolve(None, None, &tcp("::1")), Ok(v6("::1")));
        assert_eq!(
            resolve(None, None, &tcp("2001:db8::1")),
            Ok(v6("2001:db8::1"))
        );
        let none = Source {
            proxy_header: None,
            tcp_peer: None,
        };
        assert_eq!(
            resolve(None, None, &none),
            Err(Failure::BadAddress(Vec::new()))
        );
    }

    #[test]
    fn public_v6_ranges() {
        for private in [
            "::",
            "::1",
            "fc00::1",
            "fdff:ffff::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
        ] {
            assert!(!is_public_v6(private.parse().unwrap()), "{private}");
        }
        for public in ["2001:4860::8888", "2a00:1450::1", "fec0::1", "2001:db9::1"] {
            assert!(is_public_v6(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn ip_may_name_a_public_ipv6_endpoint() {
        let src = tcp("9.9.9.9");
        assert_eq!(
            resolve(None, Some(b"2a00:1450::1"), &src),
            Ok(v6("2a00:1450::1"))
        );
        // A public IPv4 in `ipv4` wins over an IPv6 `ip`.
        assert_eq!(
            resolve(Some(b"1.2.3.4"), Some(b"2a00:1450::1"), &src),
            Ok(v4("1.2.3.4"))
        );
        // Non-public IPv6 is ignored like private IPv4: the source is used.
        for claimed in [
            &b"::1"[..],
            b"fd00::1",
            b"fe80::1",
            b"ff02::1",
            b"2001:db8::1",
            b"::",
        ] {
            assert_eq!(resolve(None, Some(claimed), &src), Ok(v4("9.9.9.9")));
        }
        // A mapped address in `ip` is IPv4, judged as IPv4.
        assert_eq!(
            resolve(None, Some(b"::ffff:10.0.0.1"), &src),
            Ok(v4("9.9.9.9"))
        );
        assert_eq!(
            resolve(None, Some(b"::ffff:1.2.3.4"), &src),
            Ok(v4("1.2.3.4"))
        );
    }
}
