//! The metrics endpoints (SPEC §13): Prometheus text exposition of the tracker's state.
//! The admin section is shown only to a request carrying the configured admin token.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

use crate::accounting::Kind;
use crate::state::Shared;
use crate::store::retry::Reason;

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

/// Text exposition; writing to a String cannot fail, hence the ignored results.
struct Exposition(String);

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn family(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    /// One sample per accounting table, labelled `type`.
    fn per_kind(&mut self, name: &str, kind: &str, help: &str, value: impl Fn(Kind) -> String) {
        self.header(name, kind, help);
        for table in Kind::ALL {
            let _ = writeln!(
                self.0,
                "{name}{{type=\"{}\"}} {}",
                table.name(),
                value(table)
            );
        }
    }
}

pub fn respond(shared: &Shared, admin: bool) -> HttpResponse {
    let snapshots = &shared.snapshots;
    let mut out = Exposition(String::with_capacity(4096));
    out.family(
        "chihaya_uptime",
        "counter",
        "System uptime in seconds",
        shared.started.elapsed().as_secs_f64(),
    );
    out.family(
        "chihaya_users",
        "gauge",
        "Number of active users in database",
        snapshots.users.load().len(),
    );
    out.family(
        "chihaya_torrents",
        "gauge",
        "Number of torrents currently being tracked",
        snapshots.torrents.load().len(),
    );
    out.family(
        "chihaya_clients",
        "gauge",
        "Number of approved clients",
        snapshots.clients.load().len(),
    );
    out.family(
        "chihaya_hnrs",
        "gauge",
        "Number of active hit and runs registered",
        snapshots.hit_and_runs.load().len(),
    );
    out.family(
        "chihaya_peers",
        "gauge",
        "Number of peers currently being tracked",
        snapshots.peer_count(),
    );
    out.family(
        "chihaya_requests",
        "counter",
        "Number of successful requests handled",
        shared.counters.requests.load(Ordering::Relaxed),
    );
    if admin {
        admin_families(shared, &mut out);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out.0)
}

fn admin_families(shared: &Shared, out: &mut Exposition) {
    let retry = &shared.retry_stats;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    out.family(
        "chihaya_deadlock_count",
        "counter",
        "Number of unique database deadlocks encountered",
        load(&retry.deadlocks),
    );
    out.family(
        "chihaya_deadlock_aborted_count",
        "counter",
        "Number of times deadlock retries were exceeded",
        load(&retry.deadlocks_aborted),
    );
    out.family(
        "chihaya_deadlock_seconds_total",
        "counter",
        "Total time wasted awaiting to free deadlock",
        load(&retry.deadlock_wait_ms) as f64 / 1000.0,
    );
    out.family(
        "chihaya_requests_fail",
        "counter",
        "Number of failed requests",
        load(&shared.counters.requests_fail),
    );
    out.family(
        "chihaya_sql_errors_count",
        "counter",
        "Number of SQL errors",
        load(&retry.sql_errors),
    );
    let sink = &shared.sink;
    out.per_kind(
        "chihaya_pending_rows",
        "gauge",
        "Number of coalesced rows waiting to be written to database",
        |kind| sink.unwritten(kind).to_string(),
    );
    out.per_kind(
        "chihaya_pending_oldest_seconds",
        "gauge",
        "Age in seconds of the oldest delta waiting to be written to database",
        |kind| sink.oldest_age(kind).to_string(),
    );
    out.header(
        "chihaya_flush_retries_total",
        "counter",
        "Number of failed database write attempts that were retried",
    );
    let tables = Kind::ALL
        .iter()
        .map(|&kind| (kind.name(), sink.stats(kind)))
        .chain([("inactive_peers", &sink.inactive_peers)]);
    for (name, stats) in tables {
        for reason in Reason::ALL {
            let _ = writeln!(
                out.0,
                "chihaya_flush_retries_total{{type=\"{name}\",reason=\"{}\"}} {}",
                reason.label(),
                stats.retries(reason)
            );
        }
    }
    out.per_kind(
        "chihaya_spilled_rows_total",
        "counter",
        "Number of rows saved to the spill file instead of the database",
        |kind| load(&sink.stats(kind).spilled).to_string(),
    );
    out.per_kind(
        "chihaya_spill_replayed_rows_total",
        "counter",
        "Number of rows replayed from the spill file at start-up",
        |kind| load(&sink.stats(kind).replayed).to_string(),
    );
    out.per_kind(
        "chihaya_rows_written_total",
        "counter",
        "Number of coalesced rows written to database",
        |kind| load(&sink.stats(kind).rows_written).to_string(),
    );
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
