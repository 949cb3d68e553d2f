//! What the request handlers and the background tasks share: the configuration, the
//! snapshots, the accounting sink and the request counters. Passed around as an
//! `Arc<Shared>`; there are no globals.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::accounting::Sink;
use crate::config::Config;
use crate::store::retry::RetryStats;
use crate::tracker::{Settings, Snapshots};

/// Request counters (exported as metrics).
#[derive(Default, Debug)]
pub struct Counters {
    /// Responses with status 200 or 404.
    pub requests: AtomicU64,
    /// Requests that hit an internal error (HTTP 500).
    pub requests_fail: AtomicU64,
}

pub struct Shared {
    pub config: Arc<Config>,
    pub settings: Settings,
    pub snapshots: Snapshots,
    pub sink: Arc<Sink>,
    pub counters: Counters,
    /// Database retry counters, shared with the store.
    pub retry_stats: Arc<RetryStats>,
    pub started: Instant,
}

impl Shared {
    pub fn new(config: Arc<Config>, retry_stats: Arc<RetryStats>) -> Shared {
        Shared {
            settings: settings(&config),
            sink: Arc::new(Sink::new(&config.channels)),
            config,
            snapshots: Snapshots::default(),
            counters: Counters::default(),
            retry_stats,
            started: Instant::now(),
        }
    }
}

/// The announce rules' part of the configuration.
pub fn settings(config: &Config) -> Settings {
    let intervals = &config.intervals;
    Settings {
        announce_interval: intervals.announce,
        min_announce_interval: intervals.min_announce,
        announce_drift: intervals.announce_drift,
        peer_inactivity: intervals.peer_inactivity,
        default_numwant: config.numwant,
        max_numwant: config.max_numwant,
        scrape_interval: intervals.scrape,
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
