//! The accounting sink: announces hand it their deltas, it coalesces them per key
//! (one pending row per table key) and the writer tasks hand batches to `store`.
//! Nothing here waits for the database while an announce is being answered.

mod pending;
pub mod rows;
pub mod writer;

use std::sync::atomic::{AtomicU64, Ordering};

pub use pending::{Merge, Pending};
use rows::{HistoryRow, SnatchRow, TorrentRow, TransferIpRow, UnpruneRow, UserRow};

use crate::tracker::{AnnounceDeltas, ClientId, TorrentDelta, TorrentId, UserId};

/// `transfer_ips` key: user, torrent, IPv4 as u32, client.
pub type TransferIpKey = (UserId, TorrentId, u32, ClientId);

/// Pending rows of every table the tracker writes.
#[derive(Default)]
pub struct Sink {
    pub torrents: Pending<TorrentId, TorrentRow>,
    pub users: Pending<UserId, UserRow>,
    pub history: Pending<(UserId, TorrentId), HistoryRow>,
    pub transfer_ips: Pending<TransferIpKey, TransferIpRow>,
    pub snatches: Pending<(UserId, TorrentId), SnatchRow>,
    pub unprune: Pending<TorrentId, UnpruneRow>,
    /// Announces whose deltas were handed in.
    pub announces: AtomicU64,
}

impl Sink {
    pub fn new() -> Sink {
        Sink::default()
    }

    /// Queues everything one successful announce changed (SPEC §5.11).
    pub fn record(&self, deltas: &AnnounceDeltas) {
        self.announces.fetch_add(1, Ordering::Relaxed);
        self.torrent(&deltas.torrent);
        let h = &deltas.history;
        self.history.add((h.user, h.torrent), HistoryRow::from(h));
        if let Some(user) = &deltas.user {
            self.users.add(user.id, UserRow::from(user));
        }
        let ip = &deltas.transfer_ip;
        self.transfer_ips.add(
            (ip.user, ip.torrent, ip.ip, ip.client),
            TransferIpRow::from(ip),
        );
        if let Some(snatch) = &deltas.snatch {
            self.snatches
                .add((snatch.user, snatch.torrent), SnatchRow::from(snatch));
        }
        if let Some(id) = deltas.unprune {
            self.unprune.add(id, UnpruneRow);
        }
    }

    /// Queues new counts for a torrent (announces, and the purge of inactive peers).
    pub fn torrent(&self, delta: &TorrentDelta) {
        self.torrents.add(delta.id, TorrentRow::from(delta));
    }
}
