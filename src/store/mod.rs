//! Everything SQL: the connection pool, the snapshot loaders, the writers and the
//! retry policy. Knows nothing of HTTP.

pub mod commits;
pub mod limits;
mod load;
pub mod retry;
mod row;
pub mod write;

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::config::{DatabaseConfig, DbEndpoint};
use crate::metrics::Metrics;
pub use load::{
    load_catalogue, load_clients, load_global_freeleech, load_group_freeleech, load_hit_and_runs,
    load_users, Marks,
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
    /// What the accounting columns hold (read at start, [`limits::load`]).
    pub limits: std::sync::Arc<limits::ColumnLimits>,
    /// Whether the database has the commit-marker table ([`commits`]); known at start.
    pub commits: bool,
    /// This tracker's name among those sharing the database (`instance`; empty: the
    /// only one): its commit markers are its own ([`Store::marker`]).
    pub instance: String,
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
            limits: Default::default(),
            commits: false,
            instance: String::new(),
        }
    }

    /// The `chihaya_commits` row of this tracker's `writer`: the writer's name, prefixed
    /// with the instance's (`a/users`) when trackers share the database, whose flush
    /// numbers and journals are each their own.
    pub fn marker(&self, writer: &str) -> String {
        if self.instance.is_empty() {
            writer.to_owned()
        } else {
            format!("{}/{}", self.instance, writer)
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

/// Whether the database has the table `name` (for the optional ones).
pub async fn table_exists(store: &Store, name: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(name)
    .fetch_optional(&store.pool)
    .await?;
    Ok(found.is_some())
}

/// How sqlx reaches the server of `config`.
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
    // The endpoint was parsed and checked with the config; nothing is left to guess.
    match &config.endpoint {
        DbEndpoint::Unix(path) => options.socket(path),
        DbEndpoint::Tcp(at) => options.host(&at.host.to_string()).port(at.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn options(dsn: &str) -> MySqlConnectOptions {
        let config = Config::from_parts(None, Some(dsn)).expect("dsn");
        connect_options(&config.config.database)
    }

    #[test]
    fn connect_options_take_the_parsed_endpoint() {
        let o = options("u@tcp([::1]:3310)/d");
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_socket()),
            ("::1", 3310, None)
        );
        let o = options("u@tcp(db.example)/d");
        assert_eq!((o.get_host(), o.get_port()), ("db.example", 3306));
        let o = options("u@unix(/run/my:sql.sock)/d");
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()).as_deref(),
            Some("/run/my:sql.sock")
        );
        assert_eq!((o.get_username(), o.get_database()), ("u", Some("d")));
    }
}
