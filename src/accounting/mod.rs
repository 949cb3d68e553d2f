//! The accounting sink: announces hand it their deltas, it coalesces them per key
//! (one pending row per table key) and the writer tasks hand batches to `store`.
//! Nothing here waits for the database while an announce is being answered.

mod merge;
mod pending;
pub mod writer;

use std::sync::atomic::{AtomicU64, Ordering};

pub use merge::Unprune;
pub use pending::{Merge, Pending};

use crate::tracker::{
    AnnounceDeltas, ClientId, HistoryDelta, SnatchDelta, TorrentDelta, TorrentId, TransferIpDelta,
    UserDelta, UserId,
};

/// `transfer_ips` key: user, torrent, IPv4 as u32, client.
pub type TransferIpKey = (UserId, TorrentId, u32, ClientId);

/// Pending rows of every table the tracker writes.
#[derive(Default)]
pub struct Sink {
    pub torrents: Pending<TorrentId, TorrentDelta>,
    pub users: Pending<UserId, UserDelta>,
    pub history: Pending<(UserId, TorrentId), HistoryDelta>,
    pub transfer_ips: Pending<TransferIpKey, TransferIpDelta>,
    pub snatches: Pending<(UserId, TorrentId), SnatchDelta>,
    pub unprune: Pending<TorrentId, Unprune>,
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
        self.history.add((h.user, h.torrent), *h);
        if let Some(user) = deltas.user {
            self.users.add(user.id, user);
        }
        let ip = &deltas.transfer_ip;
        self.transfer_ips
            .add((ip.user, ip.torrent, ip.ip, ip.client), *ip);
        if let Some(snatch) = deltas.snatch {
            self.snatches.add((snatch.user, snatch.torrent), snatch);
        }
        if let Some(id) = deltas.unprune {
            self.unprune.add(id, Unprune);
        }
    }

    /// Queues new counts for a torrent (announces, and the purge of inactive peers).
    pub fn torrent(&self, delta: &TorrentDelta) {
        self.torrents.add(delta.id, *delta);
    }
}
