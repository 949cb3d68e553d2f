//! The tracker core: the catalogue, swarms, peer selection, announce and scrape,
//! deltas.
//!
//! Pure by design: no tokio, sqlx or actix here, and no clock or random source of its
//! own — callers pass `now` and an `Rng`. That keeps every rule of the announce
//! testable without a network or a database.

mod announce;
mod catalogue;
mod deltas;
mod failure;
pub mod hash;
pub mod ip;
mod limit;
mod pushed;
mod scrape;
mod snapshot;
mod swarm;
mod swarms;
mod types;

#[cfg(test)]
mod tests;

pub use announce::{
    announce, announce_with, credit, download_disabled, plausible, AnnounceRequest, Announced,
    Event, Implausible, PeerChange, Settings, View, MAX_COUNTER,
};
pub use catalogue::{
    Catalogue, CatalogueBuilder, Listing, PushedTorrent, Seen, StoredCounts, Tag, TorrentMeta,
    TorrentPushes, TorrentRow, Written,
};
pub use deltas::{
    AnnounceDeltas, HistoryDelta, SnatchDelta, TorrentDelta, TransferIp, TransferIp6Delta,
    TransferIpDelta, UserDelta,
};
pub use failure::{Failure, RATE_LIMIT_RETRY_SECS, REFUSAL_REASONS};
pub use limit::{RequestLimiter, RetryAfter};
pub use pushed::{Overlay, PushClock, Pushed};
pub use scrape::{scrape, Elsewhere, ScrapeFile, MAX_SCRAPE_HASHES};
pub use snapshot::{
    ClientChange, Clients, GroupFreeleech, HitAndRuns, Multipliers, PeerCounts, PeerGauges, Pushes,
    SmallPushes, Snapshots, User, Users,
};
pub use swarm::{
    peer_time, Endpoint, Family, Peer, PeerKey, SelectedPeer, Swarm, Tally, MAX_PEERS_PER_USER,
};
pub use swarms::{Live, Shard, Swarms, SHARDS};
pub use types::{ClientId, GroupId, InfoHash, Passkey, PeerId, TorrentId, TorrentType, UserId};
