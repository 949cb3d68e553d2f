//! What the request handlers and the background tasks share: the configuration, the
//! snapshots, the accounting sink and the metrics. Passed around as an
//! `Arc<Shared>`; there are no globals.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::accounting::Sink;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::record::Recorder;
use crate::tracker::{Settings, Snapshots};

pub struct Shared {
    pub config: Arc<Config>,
    pub settings: Settings,
    pub snapshots: Snapshots,
    pub sink: Arc<Sink>,
    pub metrics: Arc<Metrics>,
    /// The announce recorder, when `record` is on (set once at start).
    pub recorder: OnceLock<Recorder>,
    pub started: Instant,
}

impl Shared {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Shared {
        Shared {
            settings: settings(&config),
            sink: Arc::new(Sink::new(&config.channels, &metrics)),
            config,
            snapshots: Snapshots::default(),
            metrics,
            recorder: OnceLock::new(),
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
