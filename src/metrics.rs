//! The Prometheus registry (SPEC §13): every family's name, type, help text, labels
//! and buckets live here. Other modules hold handles to the metrics they move; the
//! metrics endpoint encodes the normal registry, and the admin one for the token holder.

use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter as CounterSample, Metric, MetricFamily, MetricType};
use prometheus::{
    Counter, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::ChannelsConfig;
use crate::tracker::{Failure, REFUSAL_REASONS};

/// A counter whose value is read when scraped (`chihaya_uptime`, and counts kept
/// outside the registry).
struct Sampled {
    read: Box<dyn Fn() -> f64 + Send + Sync>,
    desc: Desc,
}

impl Sampled {
    fn register(
        registry: &Registry,
        name: &str,
        help: &str,
        read: Box<dyn Fn() -> f64 + Send + Sync>,
    ) {
        let desc = Desc::new(name.to_owned(), help.to_owned(), vec![], Default::default())
            .unwrap_or_else(|e| invalid(name, e));
        if let Err(e) = registry.register(Box::new(Sampled { read, desc })) {
            tracing::error!("metrics: {}", e);
        }
    }
}

impl Collector for Sampled {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut sample = CounterSample::default();
        sample.set_value((self.read)());
        let mut metric = Metric::default();
        metric.set_counter(sample);
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::COUNTER);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

const SECONDS_BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The `type` label of the per-table channel length histograms, with the words their
/// help text uses.
pub const CHANNELS: [(&str, &str); 5] = [
    ("torrents", "torrents"),
    ("users", "users"),
    ("transfer_history", "transfer history"),
    ("transfer_ips", "transfer ips"),
    ("snatches", "snatches"),
];

/// The `type` label of `chihaya_push_drift_total`.
pub const PUSH_DRIFT_TYPES: [&str; 5] = [
    "users",
    "hit_and_runs",
    "torrents",
    "clients",
    "global_freeleech",
];

/// The `type` label of `chihaya_reload_failures_total`: the snapshots a reload loads,
/// named as in `chihaya_reload_seconds`, plus `global_freeleech`, which has no timing.
pub const RELOAD_TYPES: [&str; 6] = [
    "users",
    "hit_and_runs",
    "torrents",
    "group_freeleech",
    "global_freeleech",
    "clients",
];

pub struct Metrics {
    normal: Registry,
    admin: Registry,

    pub users: IntGauge,
    pub torrents: IntGauge,
    pub clients: IntGauge,
    pub hnrs: IntGauge,
    pub peers: IntGauge,
    /// Peer endpoints by `family` (`ipv4`, `ipv6`): a dual-stack peer counts in both.
    pub peer_endpoints: IntGaugeVec,
    pub requests: IntCounter,

    pub deadlocks: IntCounter,
    pub deadlocks_aborted: IntCounter,
    pub deadlock_seconds: Counter,
    pub requests_fail: IntCounter,
    pub sql_errors: IntCounter,
    pub serialization_seconds: Histogram,
    pub reload_seconds: HistogramVec,
    pub flush_seconds: HistogramVec,
    /// `chihaya_<x>_channel_len`, in [`CHANNELS`] order.
    pub channel_len: Vec<Histogram>,

    pub pending_rows: IntGaugeVec,
    pub pending_oldest_seconds: GaugeVec,
    pub flush_retries: IntCounterVec,
    pub spilled_rows: IntCounterVec,
    pub replayed_rows: IntCounterVec,
    pub rows_written: IntCounterVec,
    /// Write statements sent to the database, by table (retries included).
    pub statements: IntCounterVec,
    pub skipped_rows: IntCounterVec,
    pub recorder_dropped: IntCounter,
    pub announce_duration: Histogram,
    /// Reported transfers not credited, by `direction` (`up`, `down`).
    pub implausible_deltas: IntCounterVec,
    /// Peers that made room for a newer peer of the same user in the same swarm.
    pub peers_evicted: IntCounter,
    /// Requests refused because the user's request budget was used up.
    pub rate_limited: IntCounter,
    /// `chihaya_refusals_total`, one counter per [`REFUSAL_REASONS`] entry, resolved
    /// once so that a refusal costs one atomic add.
    refusals: [IntCounter; REFUSAL_REASONS.len()],
    /// Reloads whose load failed (the old snapshot stays), by [`RELOAD_TYPES`] `type`.
    pub reload_failures: IntCounterVec,
    /// Bytes of records the journal wrote, and its segment files on disk.
    pub journal_bytes: IntCounter,
    pub journal_segments: IntGauge,
    /// Failed journal writes or syncs (each retried).
    pub journal_errors: IntCounter,
    /// Push operations applied, by `op`.
    pub push_operations: IntCounterVec,
    /// Push requests refused (bad token, bad input).
    pub push_refused: IntCounter,
    /// Rows a reload changed that no push had, by snapshot `type`.
    pub push_drift: IntCounterVec,
}

/// Registers `metric` and hands it back. Names are constants of this module, so a
/// failure is a programming error caught by the tests, never by operators.
fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::error!("metrics: {}", e);
    }
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).unwrap_or_else(|e| invalid(name, e));
    register(registry, metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).unwrap_or_else(|e| invalid(name, e));
    register(registry, metric)
}

fn invalid<T>(name: &str, error: prometheus::Error) -> T {
    // Only reachable with a malformed constant name or label, which the unit test of
    // this module would show at once.
    panic!("metric {name}: {error}")
}

impl Metrics {
    pub fn new(channels: &ChannelsConfig) -> Metrics {
        let normal = Registry::new();
        let admin = Registry::new();
        let started = Instant::now();
        Sampled::register(
            &normal,
            "chihaya_uptime",
            "System uptime in seconds",
            Box::new(move || started.elapsed().as_secs_f64()),
        );
        let users = gauge(
            &normal,
            "chihaya_users",
            "Number of active users in database",
        );
        let torrents = gauge(
            &normal,
            "chihaya_torrents",
            "Number of torrents currently being tracked",
        );
        let clients = gauge(&normal, "chihaya_clients", "Number of approved clients");
        let hnrs = gauge(
            &normal,
            "chihaya_hnrs",
            "Number of active hit and runs registered",
        );
        let peers = gauge(
            &normal,
            "chihaya_peers",
            "Number of peers currently being tracked",
        );
        let peer_endpoints = register(
            &normal,
            IntGaugeVec::new(
                Opts::new(
                    "chihaya_peer_endpoints",
                    "Number of peer endpoints currently being tracked, by address family",
                ),
                &["family"],
            )
            .unwrap_or_else(|e| invalid("chihaya_peer_endpoints", e)),
        );
        let requests = counter(
            &normal,
            "chihaya_requests",
            "Number of successful requests handled",
        );

        let deadlocks = counter(
            &admin,
            "chihaya_deadlock_count",
            "Number of unique database deadlocks encountered",
        );
        let deadlocks_aborted = counter(
            &admin,
            "chihaya_deadlock_aborted_count",
            "Number of times deadlock retries were exceeded",
        );
        let deadlock_seconds = register(
            &admin,
            Counter::new(
                "chihaya_deadlock_seconds_total",
                "Total time wasted awaiting to free deadlock",
            )
            .unwrap_or_else(|e| invalid("chihaya_deadlock_seconds_total", e)),
        );
        let requests_fail = counter(&admin, "chihaya_requests_fail", "Number of failed requests");
        let sql_errors = counter(&admin, "chihaya_sql_errors_count", "Number of SQL errors");
        let serialization_seconds = register(
            &admin,
            Histogram::with_opts(
                HistogramOpts::new(
                    "chihaya_serialization_seconds",
                    "Histogram of the time taken to serialize database",
                )
                .buckets(vec![0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]),
            )
            .unwrap_or_else(|e| invalid("chihaya_serialization_seconds", e)),
        );
        let reload_seconds = register(
            &admin,
            HistogramVec::new(
                HistogramOpts::new(
                    "chihaya_reload_seconds",
                    "Histogram of the time taken to reload data from database",
                )
                .buckets(SECONDS_BUCKETS.to_vec()),
                &["type"],
            )
            .unwrap_or_else(|e| invalid("chihaya_reload_seconds", e)),
        );
        let flush_seconds = register(
            &admin,
            HistogramVec::new(
                HistogramOpts::new(
                    "chihaya_flush_seconds",
                    "Histogram of the time taken to flush data from channels to database",
                )
                .buckets(SECONDS_BUCKETS.to_vec()),
                &["type"],
            )
            .unwrap_or_else(|e| invalid("chihaya_flush_seconds", e)),
        );
        let capacities = [
            channels.torrent,
            channels.user,
            channels.transfer_history,
            channels.transfer_ips,
            channels.snatch,
        ];
        let channel_len = CHANNELS
            .iter()
            .zip(capacities)
            .map(|(&(kind, words), capacity)| {
                let name = format!("chihaya_{kind}_channel_len");
                let help =
                    format!("Histogram representing channel length for {words} during flush");
                // 20 linear buckets from 0, each 5 % of the capacity wide.
                let width = (f64::from(capacity) * 0.05).max(f64::MIN_POSITIVE);
                let buckets = prometheus::linear_buckets(0.0, width, 20)
                    .unwrap_or_else(|e| invalid(&name, e));
                let opts = HistogramOpts::new(name.clone(), help).buckets(buckets);
                register(
                    &admin,
                    Histogram::with_opts(opts).unwrap_or_else(|e| invalid(&name, e)),
                )
            })
            .collect();

        let pending_rows = register(
            &admin,
            IntGaugeVec::new(
                Opts::new(
                    "chihaya_pending_rows",
                    "Number of coalesced rows waiting to be written to database",
                ),
                &["type"],
            )
            .unwrap_or_else(|e| invalid("chihaya_pending_rows", e)),
        );
        let pending_oldest_seconds = register(
            &admin,
            GaugeVec::new(
                Opts::new(
                    "chihaya_pending_oldest_seconds",
                    "Age in seconds of the oldest delta waiting to be written to database",
                ),
                &["type"],
            )
            .unwrap_or_else(|e| invalid("chihaya_pending_oldest_seconds", e)),
        );
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &admin,
                IntCounterVec::new(Opts::new(name, help), labels)
                    .unwrap_or_else(|e| invalid(name, e)),
            )
        };
        let flush_retries = counter_vec(
            "chihaya_flush_retries_total",
            "Number of failed database write attempts that were retried",
            &["type", "reason"],
        );
        let spilled_rows = counter_vec(
            "chihaya_spilled_rows_total",
            "Number of rows saved to the spill file instead of the database",
            &["type"],
        );
        let replayed_rows = counter_vec(
            "chihaya_spill_replayed_rows_total",
            "Number of rows replayed from the spill file at start-up",
            &["type"],
        );
        let skipped_rows = counter_vec(
            "chihaya_skipped_rows_total",
            "Number of rows not written because their table is missing from the database",
            &["type"],
        );
        let rows_written = counter_vec(
            "chihaya_rows_written_total",
            "Number of coalesced rows written to database",
            &["type"],
        );
        let statements = counter_vec(
            "chihaya_statements_total",
            "Number of write statements sent to database, retries included",
            &["type"],
        );
        let recorder_dropped = counter(
            &admin,
            "chihaya_recorder_dropped_total",
            "Number of announce events the recorder dropped",
        );
        let announce_duration = register(
            &admin,
            Histogram::with_opts(
                HistogramOpts::new(
                    "chihaya_announce_duration_seconds",
                    "Histogram of the time taken to answer an announce",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                ]),
            )
            .unwrap_or_else(|e| invalid("chihaya_announce_duration_seconds", e)),
        );
        let implausible_deltas = counter_vec(
            "chihaya_implausible_deltas_total",
            "Number of reported transfers not credited because they exceed limits.max_transfer_rate",
            &["direction"],
        );
        // Both directions are shown from the start, at 0.
        for direction in ["up", "down"] {
            implausible_deltas.with_label_values(&[direction]);
        }
        let peers_evicted = counter(
            &admin,
            "chihaya_peers_evicted_total",
            "Number of peers removed to keep a user within limits.user_peers_per_torrent",
        );
        let rate_limited = counter(
            &admin,
            "chihaya_rate_limited_total",
            "Number of requests refused because the user exceeded its request budget",
        );
        let refusal_counts = counter_vec(
            "chihaya_refusals_total",
            "Number of announces and scrapes refused with a failure reason, by reason",
            &["reason"],
        );
        // Every reason shown from the start, at 0, so rates exist before the first one.
        let refusals = REFUSAL_REASONS.map(|reason| refusal_counts.with_label_values(&[reason]));
        let reload_failures = counter_vec(
            "chihaya_reload_failures_total",
            "Number of snapshot reloads that failed (the previous snapshot is kept)",
            &["type"],
        );
        for kind in RELOAD_TYPES {
            reload_failures.with_label_values(&[kind]);
        }
        let journal_bytes = counter(
            &admin,
            "chihaya_journal_bytes_total",
            "Bytes of announce records written to the journal",
        );
        let journal_segments = gauge(
            &admin,
            "chihaya_journal_segments",
            "Journal segment files on disk",
        );
        let journal_errors = counter(
            &admin,
            "chihaya_journal_errors_total",
            "Journal writes or syncs that failed (they are retried)",
        );
        let push_operations = counter_vec(
            "chihaya_push_operations_total",
            "Number of push API operations applied",
            &["op"],
        );
        for op in crate::push::OPERATIONS {
            push_operations.with_label_values(&[op]);
        }
        let push_refused = counter(
            &admin,
            "chihaya_push_refused_total",
            "Number of push API requests refused (bad token or bad input)",
        );
        let push_drift = counter_vec(
            "chihaya_push_drift_total",
            "Number of rows a reload changed that no push had brought",
            &["type"],
        );
        for kind in PUSH_DRIFT_TYPES {
            push_drift.with_label_values(&[kind]);
        }
        Sampled::register(
            &admin,
            "chihaya_client_errors_total",
            "Number of requests the HTTP layer could not parse",
            Box::new(|| crate::log::client_errors() as f64),
        );
        #[cfg(target_os = "linux")]
        if let Err(e) = admin.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::error!("metrics: {}", e);
        }
        Metrics {
            normal,
            admin,
            users,
            torrents,
            clients,
            hnrs,
            peers,
            peer_endpoints,
            requests,
            deadlocks,
            deadlocks_aborted,
            deadlock_seconds,
            requests_fail,
            sql_errors,
            serialization_seconds,
            reload_seconds,
            flush_seconds,
            channel_len,
            pending_rows,
            pending_oldest_seconds,
            flush_retries,
            spilled_rows,
            replayed_rows,
            rows_written,
            statements,
            skipped_rows,
            recorder_dropped,
            announce_duration,
            implausible_deltas,
            peers_evicted,
            rate_limited,
            refusals,
            reload_failures,
            journal_bytes,
            journal_segments,
            journal_errors,
            push_operations,
            push_refused,
            push_drift,
        }
    }

    /// Counts one refused announce or scrape under its reason.
    pub fn refused(&self, failure: &Failure) {
        if let Some(counter) = self.refusals.get(failure.reason_index()) {
            counter.inc();
        }
    }

    /// The text exposition: normal families, then the admin ones if asked.
    pub fn encode(&self, admin: bool) -> Vec<u8> {
        let mut families = self.normal.gather();
        if admin {
            families.extend(self.admin.gather());
        }
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!("metrics: {}", e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers_once_with_its_type() {
        let metrics = Metrics::new(&ChannelsConfig::default());
        metrics
            .flush_seconds
            .with_label_values(&["users"])
            .observe(0.01);
        metrics
            .flush_retries
            .with_label_values(&["users", "deadlock"])
            .inc();
        metrics.pending_rows.with_label_values(&["users"]).set(3);
        let text = String::from_utf8(metrics.encode(true)).unwrap();
        for (name, kind) in [
            ("chihaya_uptime", "counter"),
            ("chihaya_users", "gauge"),
            ("chihaya_requests", "counter"),
            ("chihaya_deadlock_seconds_total", "counter"),
            ("chihaya_serialization_seconds", "histogram"),
            ("chihaya_flush_seconds", "histogram"),
            ("chihaya_transfer_history_channel_len", "histogram"),
            ("chihaya_pending_rows", "gauge"),
            ("chihaya_flush_retries_total", "counter"),
            ("chihaya_announce_duration_seconds", "histogram"),
        ] {
            let line = format!("# TYPE {name} {kind}\n");
            assert_eq!(text.matches(&line).count(), 1, "{line} in {text}");
        }
        assert!(text.contains("# HELP chihaya_transfer_history_channel_len Histogram representing channel length for transfer history during flush\n"));
        // 5 % of the default capacity 5000 is 250.
        assert!(
            text.contains("chihaya_users_channel_len_bucket{le=\"250\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("chihaya_snatches_channel_len_bucket{le=\"1.25\"} 0\n"),
            "{text}"
        );
        let normal = String::from_utf8(metrics.encode(false)).unwrap();
        assert!(normal.contains("# TYPE chihaya_peers gauge\n"));
        assert!(!normal.contains("chihaya_requests_fail"));
    }

    #[test]
    fn refusals_and_reload_failures_start_at_zero_per_label() {
        let metrics = Metrics::new(&ChannelsConfig::default());
        metrics.refused(&Failure::UnknownTorrent);
        metrics.refused(&Failure::UnknownTorrent);
        metrics.refused(&Failure::rate_limited(1));
        let text = String::from_utf8(metrics.encode(true)).unwrap();
        assert!(text.contains("# TYPE chihaya_refusals_total counter\n"));
        assert!(text.contains("# TYPE chihaya_reload_failures_total counter\n"));
        for reason in REFUSAL_REASONS {
            let value = match reason {
                "unregistered_torrent" => 2,
                "rate_limited" => 1,
                _ => 0,
            };
            let line = format!("chihaya_refusals_total{{reason=\"{reason}\"}} {value}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        for kind in RELOAD_TYPES {
            let line = format!("chihaya_reload_failures_total{{type=\"{kind}\"}} 0\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        // Both are admin families.
        let normal = String::from_utf8(metrics.encode(false)).unwrap();
        assert!(!normal.contains("chihaya_refusals_total"));
    }
}
