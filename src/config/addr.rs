//! Addresses: the one host:port parser, for `addr`, `database.addr` and `DB_DSN`.
//! Problems quote the bad part; an address holds no password.

use super::*;

/// What an address may leave out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AddrRule {
    /// The listen address: the port is required and may be 0 (any free port); an empty
    /// host (`:PORT`) means every address.
    Listen,
    /// A MariaDB server: the host is required, the port is 1–65535 and 3306 if left out.
    Database,
}

/// A tcp `database.addr` or `DB_DSN` address: `HOST[:PORT]` or `[V6][:PORT]`.
pub(super) fn database_host_port(text: &str) -> Result<HostPort, String> {
    match parse_addr(text, AddrRule::Database)? {
        (Some(host), port) => Ok(HostPort { host, port }),
        // parse_addr gives no host only to AddrRule::Listen.
        (None, _) => Err("missing host".to_owned()),
    }
}

/// `HOST[:PORT]`, `[V6][:PORT]`, and for [`AddrRule::Listen`] `:PORT` (no host).
pub(super) fn parse_addr(text: &str, rule: AddrRule) -> Result<(Option<Host>, u16), String> {
    let bad = || format!(r#"bad address "{text}""#);
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (v6, rest) = inner.split_once(']').ok_or_else(bad)?;
        if v6.is_empty() {
            return Err("missing host".to_owned());
        }
        let ip = v6
            .parse::<Ipv6Addr>()
            .map_err(|_| format!(r#"bad IPv6 address "[{v6}]""#))?;
        let port = match rest {
            "" => None,
            rest => Some(rest.strip_prefix(':').ok_or_else(bad)?),
        };
        (Some(Host::Ip(ip.into())), port)
    } else {
        let (host, port) = match text.split_once(':') {
            None => (text, None),
            // Bare IPv6 would make "which colon starts the port" a guess.
            Some((_, port)) if port.contains(':') => {
                return Err(format!("{} (IPv6 hosts need [brackets])", bad()))
            }
            Some((host, port)) => (host, Some(port)),
        };
        let host = match host {
            "" if rule == AddrRule::Listen => None,
            "" => return Err("missing host".to_owned()),
            host => Some(parse_host(host)?),
        };
        (host, port)
    };
    let port = match (port, rule) {
        (None, AddrRule::Listen) => return Err(format!(r#"missing port in "{text}""#)),
        (None, AddrRule::Database) => MYSQL_PORT,
        (Some(p), rule) => Some(p)
            // Digits only: u16's parser also takes a leading '+'.
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&n| n != 0 || rule == AddrRule::Listen)
            .ok_or_else(|| format!(r#"bad port "{p}""#))?,
    };
    Ok((host, port))
}

/// An IPv4 literal or a host name; no lookup.
pub(super) fn parse_host(host: &str) -> Result<Host, String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(ip.into()));
    }
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if host.bytes().all(name_byte) {
        Ok(Host::Name(host.to_owned()))
    } else {
        Err(format!(r#"bad host "{host}""#))
    }
}
