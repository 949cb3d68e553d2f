//! The metrics endpoints (SPEC §13): Prometheus text exposition of the tracker's state.
//! The admin section is shown only to a request carrying the configured admin token.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::state::Shared;

/// Whether the request carries `Authorization: Bearer <admin_token>` for a non-empty
/// configured token, compared in constant time so the token cannot be guessed byte by
/// byte from response times.
pub fn is_admin(request: &HttpRequest, admin_token: &str) -> bool {
    if admin_token.is_empty() {
        return false;
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    !given.is_empty() && constant_time_eq(given, admin_token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

pub fn respond(shared: &Shared, admin: bool) -> HttpResponse {
    let snapshots = &shared.snapshots;
    let mut out = String::with_capacity(1024);
    family(
        &mut out,
        "chihaya_uptime",
        "counter",
        "System uptime in seconds",
        shared.started.elapsed().as_secs_f64(),
    );
    family(
        &mut out,
        "chihaya_users",
        "gauge",
        "Number of active users in database",
        snapshots.users.load().len(),
    );
    family(
        &mut out,
        "chihaya_torrents",
        "gauge",
        "Number of torrents currently being tracked",
        snapshots.torrents.load().len(),
    );
    family(
        &mut out,
        "chihaya_clients",
        "gauge",
        "Number of approved clients",
        snapshots.clients.load().len(),
    );
    family(
        &mut out,
        "chihaya_hnrs",
        "gauge",
        "Number of active hit and runs registered",
        snapshots.hit_and_runs.load().len(),
    );
    family(
        &mut out,
        "chihaya_peers",
        "gauge",
        "Number of peers currently being tracked",
        snapshots.peer_count(),
    );
    family(
        &mut out,
        "chihaya_requests",
        "counter",
        "Number of successful requests handled",
        shared.counters.requests.load(Ordering::Relaxed),
    );
    if admin {
        family(
            &mut out,
            "chihaya_requests_fail",
            "counter",
            "Number of failed requests",
            shared.counters.requests_fail.load(Ordering::Relaxed),
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
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
