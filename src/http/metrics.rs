//! The metrics endpoints (SPEC §13): Prometheus text exposition of the tracker's state.
//! The admin section is shown only to a request carrying the configured admin token.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::accounting::Kind;
use crate::server::state::Shared;

/// Whether the request carries the admin token ([`bearer_is`]).
pub fn is_admin(request: &HttpRequest, admin_token: &str) -> bool {
    bearer_is(request, admin_token)
}

/// Whether the request carries `Authorization: Bearer <token>` (exact case, one
/// space) for a non-empty configured token, compared in constant time so the token
/// cannot be guessed byte by byte from response times.
pub fn bearer_is(request: &HttpRequest, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    !given.is_empty() && constant_time_eq(given, token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Brings the gauges that mirror the tracker's state up to date, then encodes.
pub fn respond(shared: &Shared, admin: bool) -> HttpResponse {
    let metrics = &shared.metrics;
    let snapshots = &shared.snapshots;
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    metrics.users.set(count(snapshots.users.load().len()));
    metrics
        .torrents
        .set(count(snapshots.catalogue.load().len()));
    metrics.clients.set(count(snapshots.clients.load().len()));
    metrics.hnrs.set(count(snapshots.hit_and_runs.load().len()));
    let peers = snapshots.peers.counts();
    metrics.peers.set(count(peers.peers));
    for (family, n) in [("ipv4", peers.ipv4), ("ipv6", peers.ipv6)] {
        metrics
            .peer_endpoints
            .with_label_values(&[family])
            .set(count(n));
    }
    if admin {
        for kind in Kind::ALL {
            let table = shared.sink.table(kind);
            metrics
                .pending_rows
                .with_label_values(&[kind.name()])
                .set(count(table.unwritten()));
            metrics
                .pending_oldest_seconds
                .with_label_values(&[kind.name()])
                .set(table.oldest_age());
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.encode(admin))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
