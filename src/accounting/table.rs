//! The tables the tracker writes, as the writers see them: each row type knows its
//! key, its statement and its spill form; each [`Table`] holds the pending rows, the
//! wake-up for its writer and its counters.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::{Histogram, IntCounter};
use sqlx::mysql::{MySqlConnection, MySqlPool};
use tokio::sync::Notify;

use super::merge::{GroupBump, Unprune};
use super::pending::{Detached, Merge, Pending};
use super::spill::{Flag, SpillRow};
use super::Sink;
use crate::metrics::Metrics;
use crate::store::retry::Reason;
use crate::store::{write, Store};
use crate::tracker::{
    HistoryDelta, SnatchDelta, Swarms, Tag, TorrentDelta, TransferIp6Delta, TransferIpDelta,
    UserDelta, Written,
};

/// What a row is written to; the `type` label of the metrics and the spill `kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Torrents,
    Users,
    TransferHistory,
    TransferIps,
    TransferIps6,
    Snatches,
    Unprune,
    Groups,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Torrents,
        Kind::Users,
        Kind::TransferHistory,
        Kind::TransferIps,
        Kind::TransferIps6,
        Kind::Snatches,
        Kind::Unprune,
        Kind::Groups,
    ];

    /// The kind's place in [`Kind::ALL`]: its slot in the journal's flush numbers.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether announces' deltas for this table are journaled (group bumps follow
    /// from committed torrent rows and are not).
    pub fn journaled(self) -> bool {
        self != Kind::Groups
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Torrents => "torrents",
            Kind::Users => "users",
            Kind::TransferHistory => "transfer_history",
            Kind::TransferIps => "transfer_ips",
            Kind::TransferIps6 => "transfer_ips6",
            Kind::Snatches => "snatches",
            Kind::Unprune => "unprune",
            Kind::Groups => "groups",
        }
    }

    /// The `{table}` of `{table} Flushing <n>`.
    pub fn log_name(self) -> &'static str {
        match self {
            Kind::Torrents => "{torrents}",
            Kind::Users => "{users_main}",
            Kind::TransferHistory => "{transfer_history}",
            Kind::TransferIps => "{transfer_ips}",
            Kind::TransferIps6 => "{transfer_ips6}",
            Kind::Snatches => "{snatches}",
            Kind::Unprune => "{unprune}",
            Kind::Groups => "{groups}",
        }
    }
}

/// A pending row of one table.
pub trait Row: Merge + Copy + Send + Sync + 'static {
    type Key: Eq + Hash + Ord + Copy + Send + Sync + 'static;
    const KIND: Kind;
    /// Values bound per row, to keep statements under MariaDB's placeholder limit.
    const BINDS: usize;

    fn key(&self) -> Self::Key;

    /// This row type's table in the sink.
    fn table(sink: &Sink) -> &Table<Self>;

    /// Adjusts a batch just taken from the sink before it is written.
    fn prepare(_sink: &Sink, _rows: &mut [Self]) {}

    /// Runs after a batch committed.
    fn after_commit(_sink: &Sink, _batch: &[Self], _flush_groups: bool) {}

    /// The rows went into the flush tagged `tag`: the swarms follow the writes a
    /// catalogue can show (completions, unprunes) until one does.
    fn flushed(_swarms: &Swarms, _rows: &[Self], _tag: Tag) {}

    /// The row will never reach the database (it was refused).
    fn dropped(_swarms: &Swarms, _row: &Self) {}

    /// The pool this table's batches are written through.
    fn pool(store: &Store) -> &MySqlPool;

    /// Writes a batch (sorted by key) in one statement on `conn`.
    fn write<'a>(
        store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;

    fn to_spill(&self) -> SpillRow;
}

impl Row for TorrentDelta {
    type Key = crate::tracker::TorrentId;
    const KIND: Kind = Kind::Torrents;
    const BINDS: usize = 5;

    fn key(&self) -> Self::Key {
        self.id
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.torrents
    }

    /// With `flush_groups`, the committed torrents' groups get their `Time` bumped,
    /// as a write of its own.
    fn after_commit(sink: &Sink, batch: &[Self], flush_groups: bool) {
        if flush_groups {
            for row in batch {
                sink.groups.add(GroupBump(row.id));
            }
        }
    }

    fn flushed(swarms: &Swarms, rows: &[Self], tag: Tag) {
        for row in rows.iter().filter(|row| row.snatched > 0) {
            swarms.flushed(Written::Snatched, row.id, row.snatched, tag);
        }
    }

    fn dropped(swarms: &Swarms, row: &Self) {
        if row.snatched > 0 {
            swarms.dropped(Written::Snatched, row.id, row.snatched);
        }
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.tables.torrents
    }

    fn write<'a>(
        store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        write::torrents(store, conn, rows)
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::Torrents {
            id: self.id.0,
            snatched: self.snatched,
            seeders: self.seeders,
            leechers: self.leechers,
            last_action: self.last_action,
        }
    }
}

impl Row for UserDelta {
    type Key = crate::tracker::UserId;
    const KIND: Kind = Kind::Users;
    const BINDS: usize = 5;

    fn key(&self) -> Self::Key {
        self.id
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.users
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.tables.users
    }

    fn write<'a>(
        store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        write::users(store, conn, rows)
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::Users {
            id: self.id.0,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            rawup: self.rawup,
            rawdl: self.rawdl,
        }
    }
}

impl Row for HistoryDelta {
    type Key = (crate::tracker::UserId, crate::tracker::TorrentId);
    const KIND: Kind = Kind::TransferHistory;
    const BINDS: usize = 12;

    fn key(&self) -> Self::Key {
        (self.user, self.torrent)
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.history
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.tables.transfer_history
    }

    fn write<'a>(
        store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        write::history(store, conn, rows)
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::TransferHistory {
            uid: self.user.0,
            fid: self.torrent.0,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            seeding: Flag(self.seeding),
            starttime: self.start_time,
            last_announce: self.last_announce,
            activetime: self.active_time,
            seedtime: self.seed_time,
            active: Flag(self.active),
            snatched: self.snatched,
            remaining: self.remaining,
        }
    }
}

impl Row for TransferIpDelta {
    type Key = super::TransferIpKey;
    const KIND: Kind = Kind::TransferIps;
    const BINDS: usize = 9;

    fn key(&self) -> Self::Key {
        (self.user, self.torrent, self.ip, self.client)
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.transfer_ips
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.tables.transfer_ips
    }

    fn write<'a>(
        store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        write::transfer_ips(store, conn, rows)
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::TransferIps {
            uid: self.user.0,
            fid: self.torrent.0,
            client_id: self.client.0,
            ip: self.ip,
            port: self.port,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            starttime: self.start_time,
            last_announce: self.last_announce,
        }
    }
}

impl Row for TransferIp6Delta {
    type Key = super::TransferIp6Key;
    const KIND: Kind = Kind::TransferIps6;
    const BINDS: usize = 9;

    fn key(&self) -> Self::Key {
        (self.user, self.torrent, self.ip, self.client)
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.transfer_ips6
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.tables.transfer_ips6
    }

    fn write<'a>(
        store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        write::transfer_ips6(store, conn, rows)
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::TransferIps6 {
            uid: self.user.0,
            fid: self.torrent.0,
            client_id: self.client.0,
            ip: std::net::Ipv6Addr::from(self.ip),
            port: self.port,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            starttime: self.start_time,
            last_announce: self.last_announce,
        }
    }
}

impl Row for SnatchDelta {
    type Key = (crate::tracker::UserId, crate::tracker::TorrentId);
    const KIND: Kind = Kind::Snatches;
    const BINDS: usize = 4;

    fn key(&self) -> Self::Key {
        (self.user, self.torrent)
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.snatches
    }

    /// A snatch that creates the transfer_history row gives it the earliest start time
    /// known for the pair, so it matches what the pending history row would insert.
    fn prepare(sink: &Sink, rows: &mut [Self]) {
        for row in rows {
            if let Some(history) = sink.history.peek(&row.key()) {
                row.start_time = row.start_time.min(history.start_time);
            }
        }
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.tables.snatches
    }

    fn write<'a>(
        _store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        write::snatches(conn, rows)
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::Snatches {
            uid: self.user.0,
            fid: self.torrent.0,
            snatched_time: self.snatched_time,
            starttime: self.start_time,
        }
    }
}

impl Row for Unprune {
    type Key = crate::tracker::TorrentId;
    const KIND: Kind = Kind::Unprune;
    const BINDS: usize = 1;

    fn key(&self) -> Self::Key {
        self.0
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.unprune
    }

    fn flushed(swarms: &Swarms, rows: &[Self], tag: Tag) {
        for row in rows {
            swarms.flushed(Written::Unprune, row.0, 1, tag);
        }
    }

    fn dropped(swarms: &Swarms, row: &Self) {
        swarms.dropped(Written::Unprune, row.0, 1);
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.pool
    }

    fn write<'a>(
        _store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        let ids: Vec<_> = rows.iter().map(|row| row.0).collect();
        async move { write::unprune(conn, &ids).await }
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::Unprune { id: self.0 .0 }
    }
}

impl Row for GroupBump {
    type Key = crate::tracker::TorrentId;
    const KIND: Kind = Kind::Groups;
    const BINDS: usize = 1;

    fn key(&self) -> Self::Key {
        self.0
    }

    fn table(sink: &Sink) -> &Table<Self> {
        &sink.groups
    }

    fn pool(store: &Store) -> &MySqlPool {
        &store.pool
    }

    fn write<'a>(
        _store: &'a Store,
        conn: &'a mut MySqlConnection,
        rows: &'a [Self],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        let ids: Vec<_> = rows.iter().map(|row| row.0).collect();
        async move { write::bump_groups(conn, &ids).await }
    }

    fn to_spill(&self) -> SpillRow {
        SpillRow::Groups {
            torrent_id: self.0 .0,
        }
    }
}

/// `chihaya_flush_retries_total` for one `type`, by reason.
#[derive(Clone)]
pub struct RetryCounters([IntCounter; 5]);

impl RetryCounters {
    pub fn new(metrics: &Metrics, kind: &str) -> RetryCounters {
        RetryCounters(Reason::ALL.map(|reason| {
            metrics
                .flush_retries
                .with_label_values(&[kind, reason.label()])
        }))
    }

    pub fn retry(&self, reason: Reason) {
        self.0[reason.index()].inc();
    }

    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason.index()].get()
    }
}

/// The metrics of one table.
#[derive(Clone)]
pub struct TableStats {
    pub retries: RetryCounters,
    pub spilled: IntCounter,
    pub replayed: IntCounter,
    pub rows_written: IntCounter,
    /// Write statements sent (each batch, each attempt).
    pub statements: IntCounter,
    /// One observation per committed batch (`chihaya_flush_seconds`).
    pub flush_seconds: Histogram,
    /// Rows per committed batch (`chihaya_<x>_channel_len`), for the five main tables.
    pub channel_len: Option<Histogram>,
}

impl TableStats {
    pub fn new(metrics: &Metrics, kind: Kind) -> TableStats {
        let name = kind.name();
        let channel_len = crate::metrics::CHANNELS
            .iter()
            .position(|&(channel, _)| channel == name)
            .and_then(|i| metrics.channel_len.get(i).cloned());
        TableStats {
            retries: RetryCounters::new(metrics, name),
            spilled: metrics.spilled_rows.with_label_values(&[name]),
            replayed: metrics.replayed_rows.with_label_values(&[name]),
            rows_written: metrics.rows_written.with_label_values(&[name]),
            statements: metrics.statements.with_label_values(&[name]),
            flush_seconds: metrics.flush_seconds.with_label_values(&[name]),
            channel_len,
        }
    }

    pub fn retry(&self, reason: Reason) {
        self.retries.retry(reason);
    }

    pub fn retries(&self, reason: Reason) -> u64 {
        self.retries.get(reason)
    }

    /// Counts a committed batch of `rows` rows that took `seconds`.
    pub fn committed(&self, rows: usize, seconds: f64) {
        self.flush_seconds.observe(seconds);
        self.rows_written.inc_by(rows as u64);
        if let Some(histogram) = &self.channel_len {
            histogram.observe(rows as f64);
        }
    }
}

/// What is common to every table, whatever its row type: what the sink's per-kind
/// questions and the shutdown spill need.
pub trait AnyTable: Send + Sync {
    fn kind(&self) -> Kind;
    /// Rows pending or being written.
    fn unwritten(&self) -> usize;
    /// Seconds the oldest pending delta has waited (0 when nothing is pending).
    fn oldest_age(&self) -> f64;
    fn stats(&self) -> &TableStats;
    fn wake(&self);
    /// Takes every pending row in its spill form.
    fn take_spill(&self) -> Vec<SpillRow>;
}

impl<R: Row> AnyTable for Table<R> {
    fn kind(&self) -> Kind {
        R::KIND
    }

    fn unwritten(&self) -> usize {
        self.len() + self.writing.load(Ordering::SeqCst)
    }

    fn oldest_age(&self) -> f64 {
        self.pending
            .oldest()
            .map_or(0.0, |at| at.elapsed().as_secs_f64())
    }

    fn stats(&self) -> &TableStats {
        &self.stats
    }

    fn wake(&self) {
        self.wake.notify_one();
    }

    fn take_spill(&self) -> Vec<SpillRow> {
        self.take().iter().map(Row::to_spill).collect()
    }
}

/// Marks rows as being written while it lives.
pub struct InFlight<'a> {
    counter: &'a AtomicUsize,
    rows: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.rows, Ordering::SeqCst);
    }
}

/// A table is written every `intervals.flush` seconds, so that each key's deltas of
/// the whole interval coalesce into one row (the database's cost goes by rows and
/// statements, not by announces). Only when this many statements' worth of keys
/// (`channels.*` rows each) is pending does it flush before its period, to bound the
/// memory of a burst of distinct keys: 320,000 rows at the default 5,000.
pub const EARLY_FLUSH_STATEMENTS: usize = 64;

/// One table's pending rows, its writer's wake-up and its counters.
pub struct Table<R: Row> {
    pending: Pending<R::Key, R>,
    /// Most rows per statement.
    pub capacity: usize,
    /// Pending keys at which the writer flushes without waiting for its period: a
    /// memory guard ([`EARLY_FLUSH_STATEMENTS`] statements' worth), not the usual
    /// trigger.
    threshold: usize,
    pub wake: Notify,
    pub stats: TableStats,
    /// Rows taken by the writer and not yet written (or put back).
    writing: AtomicUsize,
}

impl<R: Row> Table<R> {
    pub fn new(capacity: u32, metrics: &Metrics) -> Table<R> {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        Table {
            pending: Pending::new(),
            capacity,
            threshold: capacity.saturating_mul(EARLY_FLUSH_STATEMENTS),
            wake: Notify::new(),
            stats: TableStats::new(metrics, R::KIND),
            writing: AtomicUsize::new(0),
        }
    }

    /// Merges a row into the pending ones; wakes the writer past the memory guard.
    pub fn add(&self, row: R) {
        if self.pending.add(row.key(), row) >= self.threshold {
            self.wake.notify_one();
        }
    }

    /// Takes every pending row for writing, sorted by key; they count as in flight
    /// until the guard is dropped.
    pub fn take_for_writing(&self) -> (Vec<R>, InFlight<'_>) {
        let (detached, guard) = self.detach_for_writing();
        (Self::sorted(detached), guard)
    }

    /// Takes every pending row for writing as they are, in no time (the journal's cut
    /// holds announces off meanwhile); [`Table::sorted`] then orders them.
    pub fn detach_for_writing(&self) -> (Detached<R::Key, R>, InFlight<'_>) {
        let detached = self.pending.detach();
        self.writing.fetch_add(detached.len(), Ordering::SeqCst);
        let guard = InFlight {
            counter: &self.writing,
            rows: detached.len(),
        };
        (detached, guard)
    }

    /// Detached rows, sorted by key.
    pub fn sorted(detached: Detached<R::Key, R>) -> Vec<R> {
        let mut rows: Vec<R> = detached.into_rows().map(|(_, row)| row).collect();
        rows.sort_unstable_by_key(Row::key);
        rows
    }

    /// Takes every pending row, sorted by key.
    pub fn take(&self) -> Vec<R> {
        Self::sorted(self.pending.detach())
    }

    /// Puts rows that were not written back under any newer ones.
    pub fn restore(&self, rows: Vec<R>) {
        self.pending
            .restore(rows.into_iter().map(|row| (row.key(), row)).collect());
    }

    /// The pending row of `key`, if any.
    pub fn peek(&self, key: &R::Key) -> Option<R> {
        self.pending.get(key)
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Seconds the oldest pending delta has waited (0 when nothing is pending).
    pub fn oldest_age(&self) -> f64 {
        self.pending
            .oldest()
            .map_or(0.0, |at| at.elapsed().as_secs_f64())
    }
}
