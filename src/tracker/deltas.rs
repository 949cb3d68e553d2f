//! What one announce changes in the site's accounting tables (SPEC §5.11). The tracker
//! produces these; `accounting` coalesces them per key and `store` writes them.
//! Byte counts and times are already clamped to 0…2^63−1, the range of the
//! database's signed BIGINT columns.

use super::types::{ClientId, TorrentId, UserId};

/// `torrents`: counts after the announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TorrentDelta {
    pub id: TorrentId,
    /// Completions to add to `Snatched`.
    pub snatched: u32,
    pub seeders: u32,
    pub leechers: u32,
    pub last_action: i64,
}

/// `users_main`: credited (multiplied) and raw transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserDelta {
    pub id: UserId,
    pub uploaded: u64,
    pub downloaded: u64,
    pub rawup: u64,
    pub rawdl: u64,
}

impl UserDelta {
    pub fn is_zero(&self) -> bool {
        self.uploaded == 0 && self.downloaded == 0 && self.rawup == 0 && self.rawdl == 0
    }
}

/// `transfer_history`: one row per (user, torrent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryDelta {
    pub user: UserId,
    pub torrent: TorrentId,
    /// Raw bytes.
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeding: bool,
    pub start_time: i64,
    pub last_announce: i64,
    pub active_time: i64,
    pub seed_time: i64,
    pub active: bool,
    pub snatched: u32,
    pub remaining: u64,
}

/// `transfer_ips` (and, with `A` = the 16 address bytes, `transfer_ips6`): one row per
/// (user, torrent, address, client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferIpDelta<A = u32> {
    pub user: UserId,
    pub torrent: TorrentId,
    pub client: ClientId,
    /// IPv4: big-endian as PHP's `ip2long`, 127.0.0.1 for users with TrackerHide.
    /// IPv6: the address bytes in network order, `::1` with TrackerHide.
    pub ip: A,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub start_time: i64,
    pub last_announce: i64,
}

impl<A> TransferIpDelta<A> {
    /// The same row with another address.
    pub fn with_ip<B>(self, ip: B) -> TransferIpDelta<B> {
        TransferIpDelta {
            user: self.user,
            torrent: self.torrent,
            client: self.client,
            ip,
            port: self.port,
            uploaded: self.uploaded,
            downloaded: self.downloaded,
            start_time: self.start_time,
            last_announce: self.last_announce,
        }
    }
}

/// A `transfer_ips6` row: an IPv6 endpoint's transfer.
pub type TransferIp6Delta = TransferIpDelta<[u8; 16]>;

/// The per-address row of one announce, in the table of the endpoint's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferIp {
    V4(TransferIpDelta),
    V6(TransferIp6Delta),
}

/// A completed download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnatchDelta {
    pub user: UserId,
    pub torrent: TorrentId,
    pub snatched_time: i64,
    pub start_time: i64,
}

/// Everything one successful announce queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceDeltas {
    pub torrent: TorrentDelta,
    pub history: HistoryDelta,
    /// None when all four values are zero.
    pub user: Option<UserDelta>,
    pub transfer_ip: TransferIp,
    pub snatch: Option<SnatchDelta>,
    /// The torrent this announce unpruned.
    pub unprune: Option<TorrentId>,
}
