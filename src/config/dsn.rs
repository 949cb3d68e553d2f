//! DB_DSN. Problems never quote the user info, as it holds the password.

use super::*;
use crate::percent::{self, Plus};

/// `%XX` in the user info decoded (a `+` stays one), as UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = percent::decode(text.as_bytes(), Plus::Literal).ok()?;
    String::from_utf8(bytes.into_owned()).ok()
}

/// The database keys a `DB_DSN` replaces, plus the parameters it ignores.
pub(super) struct Dsn {
    pub(super) username: String,
    pub(super) password: String,
    pub(super) database: String,
    pub(super) endpoint: DbEndpoint,
    pub(super) params: String,
}

pub(super) fn parse_dsn(dsn: &str) -> Result<Dsn, String> {
    const SCHEME: &str = "mysql://";
    match dsn.get(..SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => parse_url_dsn(&dsn[SCHEME.len()..]),
        _ => parse_go_dsn(dsn),
    }
}

/// `USER[:PASS]@PROTO(ADDR)/DB[?PARAMS]`, as the Go MySQL driver reads it.
pub(super) fn parse_go_dsn(dsn: &str) -> Result<Dsn, String> {
    // A password or a socket path may hold a '/', a database name may not.
    let slash = dsn.rfind('/').ok_or(r#"missing "/DB""#)?;
    let head = dsn[..slash]
        .strip_suffix(')')
        .ok_or(r#"missing "/DB" after "PROTO(ADDR)""#)?;
    let at = head.rfind('@').ok_or(r#"missing "USER@""#)?;
    let (username, password) = split_user(&head[..at]);
    let net = &head[at + 1..];
    let open = net.find('(').ok_or(r#"missing "(" in "PROTO(ADDR)""#)?;
    let proto = match &net[..open] {
        "" | "tcp" => DbProto::Tcp,
        "unix" => DbProto::Unix,
        other => {
            return Err(format!(
                r#"unknown protocol "{other}" (expected tcp or unix)"#
            ))
        }
    };
    let addr = &net[open + 1..];
    if addr.is_empty() {
        return Err("empty address".to_owned());
    }
    let endpoint = match proto {
        DbProto::Tcp => DbEndpoint::Tcp(database_host_port(addr)?),
        DbProto::Unix => DbEndpoint::Unix(addr.into()),
    };
    let (database, params) = split_params(&dsn[slash + 1..]);
    finish(
        username.to_owned(),
        password.to_owned(),
        database,
        endpoint,
        params,
    )
}

/// `mysql://USER[:PASS]@HOST[:PORT]/DB[?PARAMS]`, user and password percent-encoded.
pub(super) fn parse_url_dsn(rest: &str) -> Result<Dsn, String> {
    let slash = rest.find('/').ok_or(r#"missing "/DB""#)?;
    let authority = &rest[..slash];
    // The last '@' so that an unencoded '@' in the password still works.
    let at = authority.rfind('@').ok_or(r#"missing "USER@""#)?;
    let (user, pass) = split_user(&authority[..at]);
    let username = percent_decode(user).ok_or("bad percent-encoding in user")?;
    let password = percent_decode(pass).ok_or("bad percent-encoding in password")?;
    let endpoint = DbEndpoint::Tcp(database_host_port(&authority[at + 1..])?);
    let (database, params) = split_params(&rest[slash + 1..]);
    if database.contains('/') {
        return Err(format!(r#"bad database name "{database}""#));
    }
    finish(username, password, database, endpoint, params)
}

pub(super) fn finish(
    username: String,
    password: String,
    database: &str,
    endpoint: DbEndpoint,
    params: &str,
) -> Result<Dsn, String> {
    if username.is_empty() {
        return Err("empty user".to_owned());
    }
    if database.is_empty() {
        return Err("empty database name".to_owned());
    }
    Ok(Dsn {
        username,
        password,
        database: database.to_owned(),
        endpoint,
        params: params.to_owned(),
    })
}

/// The password starts after the first ':', so it may hold more of them.
pub(super) fn split_user(info: &str) -> (&str, &str) {
    info.split_once(':').unwrap_or((info, ""))
}

pub(super) fn split_params(s: &str) -> (&str, &str) {
    s.split_once('?').unwrap_or((s, ""))
}
