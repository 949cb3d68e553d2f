//! What the request handlers and the background tasks share: the configuration, the
//! snapshots, the accounting sink and the metrics. Passed around as an
//! `Arc<Shared>`; there are no globals.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};

use crate::accounting::Sink;
use crate::config::Config;
use crate::log::Throttle;
use crate::metrics::Metrics;
use crate::record::Recorder;
use crate::tracker::{RequestLimiter, Settings, Snapshots, MAX_PEERS_PER_USER};

pub struct Shared {
    pub config: Arc<Config>,
    /// Asks for a reload cycle now, rather than at the end of its period.
    pub reload_trigger: Trigger,
    /// Asks for a purge now.
    pub purge_trigger: Trigger,
    pub settings: Settings,
    pub snapshots: Snapshots,
    pub sink: Arc<Sink>,
    pub metrics: Arc<Metrics>,
    /// The announce recorder, when `record` is on (set once at start).
    pub recorder: OnceLock<Recorder>,
    /// Every user's request budget (`limits.user_requests_per_second`).
    pub limiter: RequestLimiter,
    /// Reported transfers not credited, logged at most once a minute.
    pub implausible_log: Throttle,
    pub started: Instant,
    /// The time every part of the process goes by.
    pub clock: Clock,
    /// When the last announce was answered (with `instance`: [`crate::server::absence`]).
    pub absence: crate::server::absence::Absence,
}

impl Shared {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Shared {
        Shared {
            reload_trigger: Trigger::default(),
            purge_trigger: Trigger::default(),
            settings: settings(&config),
            sink: Arc::new(Sink::new(&config.channels, &metrics)),
            limiter: RequestLimiter::new(
                config.limits.user_requests_per_second,
                config.limits.user_request_burst,
            ),
            config,
            snapshots: Snapshots::default(),
            metrics,
            recorder: OnceLock::new(),
            implausible_log: Throttle::new(Duration::from_secs(60)),
            started: Instant::now(),
            clock: Clock::default(),
            absence: Default::default(),
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
        peers_per_user: usize::try_from(config.limits.user_peers_per_torrent)
            .unwrap_or(MAX_PEERS_PER_USER)
            .min(MAX_PEERS_PER_USER),
        max_transfer_rate: config.limits.max_transfer_rate,
    }
}

impl Shared {
    /// Microseconds since start: the limiter's clock (monotonic, moved by the clock's
    /// offset too).
    pub fn micros(&self) -> u64 {
        let elapsed = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let ahead = u64::try_from(self.clock.offset_ms()).unwrap_or(0);
        elapsed.saturating_add(ahead.saturating_mul(1000))
    }
}

/// The process's clock: the system's time, plus an offset that only tests move
/// ([`Clock::advance`]), so that they drive time (a peer's inactivity, say) instead of
/// sleeping through it. Announces, purges, peer cache writes, `/check` and the request
/// limiter all read it; the core (`tracker`) is handed its `now`.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        unix_now_ms().saturating_add(self.offset_ms())
    }

    /// Moves the clock forward (tests).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
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

/// A periodic task's "now, please": the task runs when its period ends or when asked,
/// whichever comes first, and numbers the runs it begins and finishes, so that
/// whoever asks can wait for a run that began after asking.
#[derive(Debug)]
pub struct Trigger {
    asked: Notify,
    begun: AtomicU64,
    finished: watch::Sender<u64>,
}

impl Default for Trigger {
    fn default() -> Trigger {
        Trigger {
            asked: Notify::new(),
            begun: AtomicU64::new(0),
            finished: watch::Sender::new(0),
        }
    }
}

impl Trigger {
    /// Resolves when the task is asked to run (for the task's own wait).
    pub async fn asked(&self) {
        self.asked.notified().await;
    }

    /// The task begins a run.
    pub fn begin(&self) {
        self.begun.fetch_add(1, Ordering::SeqCst);
    }

    /// The task finished the run it began.
    pub fn finish(&self) {
        self.finished.send_modify(|runs| *runs += 1);
    }

    /// Asks for a run without waiting for it. Asks made while the task waits or
    /// runs make one run, the next.
    pub fn ask(&self) {
        self.asked.notify_one();
    }

    /// Asks for a run and waits until one that began after this call has finished
    /// (the task running, and runs finishing in the order they began).
    pub async fn run_now(&self) {
        let mut finished = self.finished.subscribe();
        let begun = self.begun.load(Ordering::SeqCst);
        self.asked.notify_one();
        let _ = finished.wait_for(|runs| *runs > begun).await;
    }
}
