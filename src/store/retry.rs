//! The retry policy of SPEC §8.7: how a failed statement is classified, how long to
//! wait before the next attempt, what to log, and the counters behind the metrics.

use std::time::Duration;

use prometheus::{Counter, IntCounter};
use sqlx::mysql::MySqlDatabaseError;

use crate::log::fmt_duration;
use crate::metrics::Metrics;

/// Why an attempt failed; the `reason` label of `chihaya_flush_retries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// 1213: InnoDB picked this transaction as the deadlock victim.
    Deadlock,
    /// 1205: a row lock was held longer than `innodb_lock_wait_timeout`.
    LockWaitTimeout,
    /// The server could not be reached, or the connection broke.
    Connection,
    /// A value the column refuses (out of range, NULL, bad date...).
    Data,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Deadlock,
        Reason::LockWaitTimeout,
        Reason::Connection,
        Reason::Data,
        Reason::Other,
    ];

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        match self {
            Reason::Deadlock => 0,
            Reason::LockWaitTimeout => 1,
            Reason::Connection => 2,
            Reason::Data => 3,
            Reason::Other => 4,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Reason::Deadlock => "deadlock",
            Reason::LockWaitTimeout => "lock_wait_timeout",
            Reason::Connection => "connection",
            Reason::Data => "data",
            Reason::Other => "other",
        }
    }

    /// Lock conflicts clear by themselves, so they are retried on the short schedule.
    pub fn is_lock_conflict(self) -> bool {
        matches!(self, Reason::Deadlock | Reason::LockWaitTimeout)
    }
}

/// The MariaDB error number, when the error came from the server.
pub fn error_code(error: &sqlx::Error) -> Option<u16> {
    match error {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(|e| e.number()),
        _ => None,
    }
}

/// The server's own words for a database error (without sqlx's prefix and code), or
/// the whole error otherwise.
pub fn server_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

pub fn classify(error: &sqlx::Error) -> Reason {
    match error {
        sqlx::Error::Database(_) => match error_code(error) {
            Some(1213) => Reason::Deadlock,
            Some(1205) => Reason::LockWaitTimeout,
            // Gone away, lost during query, shutdown in progress, connection killed.
            Some(2006 | 2013 | 1053 | 1927) => Reason::Connection,
            Some(1048 | 1264 | 1265 | 1292 | 1366 | 1406 | 1690) => Reason::Data,
            _ => Reason::Other,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Reason::Connection,
        _ => Reason::Other,
    }
}

/// The database-error counters shared by all writers and loaders (SPEC §13).
#[derive(Clone)]
pub struct RetryStats {
    /// Statements that met 1213/1205 (`chihaya_deadlock_count`).
    pub deadlocks: IntCounter,
    /// Statements that reached `deadlock_retries` failures and kept retrying.
    pub deadlocks_aborted: IntCounter,
    /// Seconds waited after 1213/1205.
    pub deadlock_seconds: Counter,
    /// Failed attempts of the other classes.
    pub sql_errors: IntCounter,
}

impl RetryStats {
    pub fn new(metrics: &Metrics) -> RetryStats {
        RetryStats {
            deadlocks: metrics.deadlocks.clone(),
            deadlocks_aborted: metrics.deadlocks_aborted.clone(),
            deadlock_seconds: metrics.deadlock_seconds.clone(),
            sql_errors: metrics.sql_errors.clone(),
        }
    }
}

/// The failed attempts of one statement so far.
#[derive(Default, Debug)]
pub struct Attempts {
    pub failures: u32,
    /// Whether a deadlock or lock wait timeout was among them (counted once).
    met_lock_conflict: bool,
}

/// Linear back-off: `pause × min(n, retries)` after the n-th failure, at least a
/// second for failures that are not lock conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub pause: Duration,
    pub retries: u32,
}

impl RetryPolicy {
    pub fn wait(&self, failures: u32, reason: Reason) -> Duration {
        let wait = self.pause * failures.min(self.retries);
        if reason.is_lock_conflict() {
            wait
        } else {
            wait.max(Duration::from_secs(1))
        }
    }

    /// Logs a failure of one statement, counts it in `attempts` and `stats`, and returns
    /// its class and how long to wait before the next attempt.
    pub fn on_failure(
        &self,
        stats: &RetryStats,
        attempts: &mut Attempts,
        error: &sqlx::Error,
    ) -> (Reason, Duration) {
        attempts.failures = attempts.failures.saturating_add(1);
        let failures = attempts.failures;
        let reason = classify(error);
        let wait = self.wait(failures, reason);
        match reason {
            Reason::Deadlock | Reason::LockWaitTimeout => {
                if !attempts.met_lock_conflict {
                    attempts.met_lock_conflict = true;
                    stats.deadlocks.inc();
                }
                stats.deadlock_seconds.inc_by(wait.as_secs_f64());
                tracing::warn!(
                    "Deadlock found! Retrying in {} ({}/{})",
                    fmt_duration(wait),
                    failures,
                    self.retries
                );
            }
            Reason::Connection => {
                stats.sql_errors.inc();
                tracing::error!("Database error: {}", error);
            }
            Reason::Data | Reason::Other => {
                stats.sql_errors.inc();
                let code = error_code(error).map_or_else(|| "-".to_owned(), |c| c.to_string());
                tracing::error!("SQL error {}: {}", code, server_message(error));
            }
        }
        // A data error is not retried as it is (the batch is split at once).
        if failures == self.retries && reason != Reason::Data {
            stats.deadlocks_aborted.inc();
            tracing::error!(
                "Deadlocked {} times, still retrying every {}",
                failures,
                fmt_duration(wait)
            );
        }
        (reason, wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_then_constant_with_a_floor_for_non_lock_errors() {
        let policy = RetryPolicy {
            pause: Duration::from_secs(2),
            retries: 3,
        };
        let waits: Vec<u64> = (1..=5)
            .map(|n| policy.wait(n, Reason::Deadlock).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 6, 6, 6]);
        let zero = RetryPolicy {
            pause: Duration::ZERO,
            retries: 5,
        };
        assert_eq!(zero.wait(1, Reason::LockWaitTimeout), Duration::ZERO);
        assert_eq!(zero.wait(1, Reason::Connection), Duration::from_secs(1));
        assert_eq!(zero.wait(3, Reason::Data), Duration::from_secs(1));
    }

    #[test]
    fn transport_errors_are_connection_errors() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Reason::Connection);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&sqlx::Error::Io(io)), Reason::Connection);
        assert_eq!(classify(&sqlx::Error::RowNotFound), Reason::Other);
    }
}
