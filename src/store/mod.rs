//! Everything SQL: the connection pool, the snapshot loaders, the writers and the
//! retry policy. Knows nothing of HTTP.

mod load;
pub mod retry;
mod row;
pub mod write;

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::config::{DatabaseConfig, DbProto};
use crate::metrics::Metrics;
pub use load::{
    load_clients, load_global_freeleech, load_group_freeleech, load_hit_and_runs, load_torrents,
    load_users,
};
use retry::{RetryPolicy, RetryStats};

/// The pools plus the retry settings every statement follows.
#[derive(Clone)]
pub struct Store {
    /// Loaders and the occasional writes (unprune, group times, deactivation).
    pub pool: MySqlPool,
    /// The accounting tables' batches.
    pub tables: TablePools,
    pub policy: RetryPolicy,
    pub stats: RetryStats,
}

/// One single-connection pool per accounting table. A table's writer works
/// sequentially, so one connection is all it can use; and its statements, prepared
/// once for each batch size, are then kept on that one connection rather than on
/// every connection of a shared pool (each copy costs memory on both sides).
#[derive(Clone)]
pub struct TablePools {
    pub torrents: MySqlPool,
    pub users: MySqlPool,
    pub transfer_history: MySqlPool,
    pub transfer_ips: MySqlPool,
    pub transfer_ips6: MySqlPool,
    pub snatches: MySqlPool,
}

/// A pool that connects on first use.
fn lazy_pool(config: &DatabaseConfig, connections: u32) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(connections)
        .min_connections(0)
        // A statement waiting for a connection during an outage fails after this
        // and is retried by its caller, rather than queueing forever.
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(connect_options(config))
}

impl Store {
    /// Builds the pools without connecting; `ping` tells whether the server answers.
    pub fn new(config: &DatabaseConfig, metrics: &Metrics) -> Store {
        Store {
            pool: lazy_pool(config, 8),
            tables: TablePools {
                torrents: lazy_pool(config, 1),
                users: lazy_pool(config, 1),
                transfer_history: lazy_pool(config, 1),
                transfer_ips: lazy_pool(config, 1),
                transfer_ips6: lazy_pool(config, 1),
                snatches: lazy_pool(config, 1),
            },
            policy: RetryPolicy {
                pause: Duration::from_secs(u64::from(config.deadlock_pause)),
                retries: config.deadlock_retries,
            },
            stats: RetryStats::new(metrics),
        }
    }

    /// One connection attempt and a ping: fails at once when nothing answers, where
    /// the pool would keep retrying until its acquire timeout.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        let mut connection = MySqlConnection::connect_with(&self.pool.connect_options()).await?;
        connection.ping().await?;
        connection.close().await
    }

    /// Closes every connection (shutdown).
    pub async fn close(&self) {
        let tables = &self.tables;
        for pool in [
            &self.pool,
            &tables.torrents,
            &tables.users,
            &tables.transfer_history,
            &tables.transfer_ips,
            &tables.transfer_ips6,
            &tables.snatches,
        ] {
            pool.close().await;
        }
    }
}

pub fn connect_options(config: &DatabaseConfig) -> MySqlConnectOptions {
    let mut options = MySqlConnectOptions::new()
        .username(&config.username)
        .database(&config.database)
        // Statement text is ours and constant; logging every one would flood the log.
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(5))
        // Every batch size of every table, and the loaders, stay prepared.
        .statement_cache_capacity(256);
    // An empty password must be sent as no password at all: sqlx would otherwise
    // scramble the empty string and the server refuses it.
    if !config.password.is_empty() {
        options = options.password(&config.password);
    }
    match config.proto {
        DbProto::Unix => options.socket(&config.addr),
        DbProto::Tcp => {
            let (host, port) = split_host_port(&config.addr);
            options.host(host).port(port)
        }
    }
}

/// `host:port`, `[v6]:port`, or a bare host (port 3306).
fn split_host_port(addr: &str) -> (&str, u16) {
    if let Some(rest) = addr.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(3306);
            return (host, port);
        }
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().unwrap_or(3306)),
        _ => (addr, 3306),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:3307"), ("127.0.0.1", 3307));
        assert_eq!(split_host_port("db.example"), ("db.example", 3306));
        assert_eq!(split_host_port("[::1]:3310"), ("::1", 3310));
        assert_eq!(split_host_port("[::1]"), ("::1", 3306));
        assert_eq!(split_host_port("::1"), ("::1", 3306));
    }
}
