//! The accounting sink: announces hand it their deltas, it coalesces them per key
//! (one pending row per table key) and one writer task per table hands batches to
//! `store`, retrying until they are written. Nothing here waits for the database
//! while an announce is being answered; what the database never took by the end of a
//! shutdown goes to the spill file and comes back at the next start.

mod inactive;
mod merge;
mod pending;
pub mod spill;
mod table;
pub mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub use inactive::{Deactivation, MAX_PENDING_KEYS};
pub use merge::{GroupBump, Unprune};
pub use pending::{Merge, Pending};
pub use table::{AnyTable, Kind, RetryCounters, Row, Table, TableStats};

use crate::config::ChannelsConfig;
use crate::journal::{self, Journal};
use crate::metrics::Metrics;
use crate::tracker::{
    AnnounceDeltas, ClientId, HistoryDelta, PeerChange, SnatchDelta, TorrentDelta, TorrentId,
    TransferIp, TransferIp6Delta, TransferIpDelta, UserDelta, UserId,
};
use spill::{SpillLine, SpillRow};

/// `transfer_ips` key: user, torrent, IPv4 as u32, client.
pub type TransferIpKey = (UserId, TorrentId, u32, ClientId);
/// `transfer_ips6` key: user, torrent, IPv6 address bytes, client.
pub type TransferIp6Key = (UserId, TorrentId, [u8; 16], ClientId);

/// Pending rows of every table the tracker writes.
pub struct Sink {
    pub torrents: Table<TorrentDelta>,
    pub users: Table<UserDelta>,
    pub history: Table<HistoryDelta>,
    pub transfer_ips: Table<TransferIpDelta>,
    pub transfer_ips6: Table<TransferIp6Delta>,
    /// False when the site's database has no `transfer_ips6` table: IPv6 per-IP rows
    /// are then counted in `skipped_ipv6_rows` instead of queued.
    transfer_ips6_exists: AtomicBool,
    skipped_ipv6_rows: prometheus::IntCounter,
    pub snatches: Table<SnatchDelta>,
    pub unprune: Table<Unprune>,
    pub groups: Table<GroupBump>,
    /// Announces whose deltas were handed in.
    pub announces: AtomicU64,
    /// Retries of the purge's `active = 0` update (type `inactive_peers`).
    pub inactive_peers: RetryCounters,
    /// What purges asked of `transfer_history.active` and was not applied yet.
    inactive: Mutex<inactive::Pending>,
    /// The journal, when the database has commit markers (set once at start).
    journal: OnceLock<Arc<Journal>>,
}

impl Sink {
    pub fn new(channels: &ChannelsConfig, metrics: &Metrics) -> Sink {
        Sink {
            torrents: Table::new(channels.torrent, metrics),
            users: Table::new(channels.user, metrics),
            history: Table::new(channels.transfer_history, metrics),
            transfer_ips: Table::new(channels.transfer_ips, metrics),
            transfer_ips6: Table::new(channels.transfer_ips, metrics),
            transfer_ips6_exists: AtomicBool::new(true),
            skipped_ipv6_rows: metrics
                .skipped_rows
                .with_label_values(&[Kind::TransferIps6.name()]),
            snatches: Table::new(channels.snatch, metrics),
            unprune: Table::new(channels.torrent, metrics),
            groups: Table::new(channels.torrent, metrics),
            announces: AtomicU64::new(0),
            inactive_peers: RetryCounters::new(metrics, "inactive_peers"),
            inactive: Mutex::new(inactive::Pending::default()),
            journal: OnceLock::new(),
        }
    }

    /// From now on every announce is journaled before its deltas are merged.
    pub fn set_journal(&self, journal: Arc<Journal>) {
        let _ = self.journal.set(journal);
    }

    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.get()
    }

    /// Queues everything one successful announce changed (SPEC §5.11), journaled
    /// first when there is a journal. Called while the announce's torrent is locked.
    pub fn record(&self, change: &PeerChange<'_>, deltas: &AnnounceDeltas) {
        self.announces.fetch_add(1, Ordering::Relaxed);
        match self.journal.get() {
            Some(journal) => {
                let _shared = journal.gate();
                journal.append(|out| journal::record::announce(out, change, deltas));
                self.merge(deltas, |_| true);
            }
            None => self.merge(deltas, |_| true),
        }
    }

    /// Merges the deltas of an announce read back from the journal, for the tables
    /// where `pending` says the database does not have them yet.
    pub fn recover(&self, deltas: &AnnounceDeltas, pending: impl Fn(Kind) -> bool) {
        self.merge(deltas, pending);
    }

    fn merge(&self, deltas: &AnnounceDeltas, pending: impl Fn(Kind) -> bool) {
        if pending(Kind::Torrents) {
            self.torrents.add(deltas.torrent);
        }
        if pending(Kind::TransferHistory) {
            self.history.add(deltas.history);
        }
        if let Some(user) = deltas.user.filter(|_| pending(Kind::Users)) {
            self.users.add(user);
        }
        match deltas.transfer_ip {
            TransferIp::V4(row) if pending(Kind::TransferIps) => self.transfer_ips.add(row),
            TransferIp::V6(row) if pending(Kind::TransferIps6) => self.add_ipv6_row(row),
            _ => {}
        }
        if let Some(snatch) = deltas.snatch.filter(|_| pending(Kind::Snatches)) {
            self.snatches.add(snatch);
        }
        if let Some(id) = deltas.unprune.filter(|_| pending(Kind::Unprune)) {
            self.unprune.add(Unprune(id));
        }
    }

    /// Merges a row of the spill file, journaled first when there is a journal, so
    /// that a crash before it is written does not lose it with the renamed file.
    pub fn replay_line(&self, line: SpillLine) -> Kind {
        match self.journal.get() {
            Some(journal) => {
                let _shared = journal.gate();
                match serde_json::to_vec(&SpillLine::new(line.row.clone(), None)) {
                    Ok(text) => journal.append(|out| journal::record::row(out, &text)),
                    Err(e) => tracing::error!("Journal: cannot encode a spill row: {}", e),
                }
                self.replay(line.row)
            }
            None => self.replay(line.row),
        }
    }

    /// Queues new counts for a torrent (the purge of inactive peers).
    pub fn torrent(&self, delta: TorrentDelta) {
        self.torrents.add(delta);
    }

    /// Asks the transfer_history writer to mark inactive the rows of `keys` (users
    /// and torrents whose peers a purge took out of memory), or with `scan` every
    /// row, where idle since before `cutoff`. Requests not yet applied merge.
    pub fn deactivate(
        &self,
        cutoff: i64,
        keys: impl IntoIterator<Item = (UserId, TorrentId)>,
        scan: bool,
    ) {
        self.inactive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(cutoff, keys, scan);
        self.history.wake.notify_one();
    }

    /// What purges asked for, in flight until [`Sink::deactivation_done`].
    pub(crate) fn take_deactivation(&self) -> Option<Deactivation> {
        self.inactive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The request taken is applied, or given up at the drain deadline.
    pub(crate) fn deactivation_done(&self) {
        self.inactive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .done();
    }

    /// Tells the sink whether the database has a `transfer_ips6` table (checked at
    /// start; it is optional).
    pub fn set_transfer_ips6_exists(&self, exists: bool) {
        self.transfer_ips6_exists.store(exists, Ordering::Relaxed);
    }

    fn add_ipv6_row(&self, row: TransferIp6Delta) {
        if self.transfer_ips6_exists.load(Ordering::Relaxed) {
            self.transfer_ips6.add(row);
        } else {
            self.skipped_ipv6_rows.inc();
        }
    }

    /// A table by kind, for what does not depend on its row type.
    pub fn table(&self, kind: Kind) -> &dyn AnyTable {
        match kind {
            Kind::Torrents => &self.torrents,
            Kind::Users => &self.users,
            Kind::TransferHistory => &self.history,
            Kind::TransferIps => &self.transfer_ips,
            Kind::TransferIps6 => &self.transfer_ips6,
            Kind::Snatches => &self.snatches,
            Kind::Unprune => &self.unprune,
            Kind::Groups => &self.groups,
        }
    }

    /// Rows of a table pending or being written.
    pub fn unwritten(&self, kind: Kind) -> usize {
        self.table(kind).unwritten()
    }

    /// Seconds the oldest pending delta of a table has waited.
    pub fn oldest_age(&self, kind: Kind) -> f64 {
        self.table(kind).oldest_age()
    }

    pub fn stats(&self, kind: Kind) -> &TableStats {
        self.table(kind).stats()
    }

    /// Whether nothing waits to be written: no pending or in-flight row and no purge
    /// request left to apply.
    pub fn is_idle(&self) -> bool {
        Kind::ALL.iter().all(|&kind| self.unwritten(kind) == 0)
            && self
                .inactive
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_idle()
    }

    /// Wakes every writer to flush now instead of at its next period.
    pub fn wake_all(&self) {
        for kind in Kind::ALL {
            self.table(kind).wake();
        }
    }

    /// Merges a row read back from the spill file, by the same rules as a new delta.
    pub fn replay(&self, row: SpillRow) -> Kind {
        let kind = match row {
            SpillRow::Torrents {
                id,
                snatched,
                seeders,
                leechers,
                last_action,
            } => {
                self.torrents.add(TorrentDelta {
                    id: TorrentId(id),
                    snatched,
                    seeders,
                    leechers,
                    last_action,
                });
                Kind::Torrents
            }
            SpillRow::Users {
                id,
                uploaded,
                downloaded,
                rawup,
                rawdl,
            } => {
                self.users.add(UserDelta {
                    id: UserId(id),
                    uploaded,
                    downloaded,
                    rawup,
                    rawdl,
                });
                Kind::Users
            }
            SpillRow::TransferHistory {
                uid,
                fid,
                uploaded,
                downloaded,
                seeding,
                starttime,
                last_announce,
                activetime,
                seedtime,
                active,
                snatched,
                remaining,
            } => {
                self.history.add(HistoryDelta {
                    user: UserId(uid),
                    torrent: TorrentId(fid),
                    uploaded,
                    downloaded,
                    seeding: seeding.0,
                    start_time: starttime,
                    last_announce,
                    active_time: activetime,
                    seed_time: seedtime,
                    active: active.0,
                    snatched,
                    remaining,
                });
                Kind::TransferHistory
            }
            SpillRow::TransferIps {
                uid,
                fid,
                client_id,
                ip,
                port,
                uploaded,
                downloaded,
                starttime,
                last_announce,
            } => {
                self.transfer_ips.add(TransferIpDelta {
                    user: UserId(uid),
                    torrent: TorrentId(fid),
                    client: ClientId(client_id),
                    ip,
                    port,
                    uploaded,
                    downloaded,
                    start_time: starttime,
                    last_announce,
                });
                Kind::TransferIps
            }
            SpillRow::TransferIps6 {
                uid,
                fid,
                client_id,
                ip,
                port,
                uploaded,
                downloaded,
                starttime,
                last_announce,
            } => {
                self.add_ipv6_row(TransferIpDelta {
                    user: UserId(uid),
                    torrent: TorrentId(fid),
                    client: ClientId(client_id),
                    ip: ip.octets(),
                    port,
                    uploaded,
                    downloaded,
                    start_time: starttime,
                    last_announce,
                });
                Kind::TransferIps6
            }
            SpillRow::Snatches {
                uid,
                fid,
                snatched_time,
                starttime,
            } => {
                self.snatches.add(SnatchDelta {
                    user: UserId(uid),
                    torrent: TorrentId(fid),
                    snatched_time,
                    start_time: starttime,
                });
                Kind::Snatches
            }
            SpillRow::Unprune { id } => {
                self.unprune.add(Unprune(TorrentId(id)));
                Kind::Unprune
            }
            SpillRow::Groups { torrent_id } => {
                self.groups.add(GroupBump(TorrentId(torrent_id)));
                Kind::Groups
            }
        };
        self.stats(kind).replayed.inc();
        kind
    }
}
