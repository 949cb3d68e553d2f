//! Between the tracker's in-memory state and the peer cache file: capture the swarms
//! torrent by torrent (each lock held only to copy that torrent's peers; encoding
//! happens after it is released) and rebuild them at start.

use std::net::IpAddr;
use std::sync::Arc;

use super::format::{
    decode_with, CachedPeer, CachedTorrent, CachedUser, DecodeError, EncodeError, Encoder,
};
use crate::tracker::{
    peer_time, ClientId, GroupId, InfoHash, Peer, PeerId, PeerKey, Snapshots, Swarm, Torrent,
    TorrentId, TorrentMeta, TorrentState, TorrentType, Torrents, UserId,
};

/// Encodes the current users and swarms as a cache file written at `now`.
pub fn capture(snapshots: &Snapshots, now: i64) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder::new(now);
    let users = snapshots.users.load();
    // The users section only serves `cc`; a passkey the format cannot hold is left out.
    let cached: Vec<CachedUser> = users
        .iter()
        .filter_map(|(passkey, user)| {
            let passkey = std::str::from_utf8(passkey.as_bytes()).ok()?;
            (!passkey.is_empty() && passkey.len() <= 255).then(|| CachedUser {
                passkey: passkey.to_owned(),
                id: user.id.0,
                disable_download: user.disable_download,
                tracker_hide: user.tracker_hide,
                up_multiplier: user.up_multiplier,
                down_multiplier: user.down_multiplier,
            })
        })
        .collect();
    drop(users);
    encoder.users(cached.iter())?;

    // Only torrents with peers: a peerless one holds nothing the database lacks (its
    // LastAction, the one value not loaded from it, is written there as a maximum),
    // and leaving them out keeps the file, and the start-up that reads it, in
    // proportion to the swarms rather than to the catalogue.
    let torrents = snapshots.torrents.load_full();
    encoder.open_torrents();
    let mut cached = CachedTorrent {
        info_hash: [0; 20],
        id: 0,
        group_id: 0,
        torrent_type: "".into(),
        status: 0,
        snatched: 0,
        last_action: 0,
        up_multiplier: 1.0,
        down_multiplier: 1.0,
        peers: Vec::new(),
    };
    for (info_hash, torrent) in torrents.iter() {
        {
            let state = torrent.lock();
            if state.swarm.is_empty() {
                continue;
            }
            cached.info_hash = info_hash.0;
            cached.id = torrent.id.0;
            cached.group_id = state.meta.group_id.0;
            cached.torrent_type = state.meta.torrent_type.name().into();
            cached.status = state.status;
            cached.snatched = state.snatched;
            cached.last_action = state.last_action;
            cached.up_multiplier = state.meta.up_multiplier;
            cached.down_multiplier = state.meta.down_multiplier;
            cached.peers.clear();
            cached
                .peers
                .extend(state.swarm.iter().map(|(key, peer, seeding)| CachedPeer {
                    peer_id: key.peer_id.0,
                    user_id: key.user.0,
                    seeding,
                    ip: peer.ip,
                    port: peer.port,
                    uploaded: peer.uploaded,
                    downloaded: peer.downloaded,
                    left: peer.left,
                    start_time: i64::from(peer.start_time),
                    last_announce: i64::from(peer.last_announce),
                    client_id: peer.client_id.0,
                }));
        }
        encoder.torrent(&cached)?;
    }
    encoder.finish()
}

/// What a cache file gave back.
pub struct Restored {
    /// The torrents with peers.
    pub torrents: Torrents,
    pub users: usize,
    /// Torrents in the file, with or without peers.
    pub torrents_in_file: usize,
    pub peers: usize,
}

/// Decodes a cache file into the torrents that have peers, with their swarms.
/// Metadata comes from the database load, which also creates the torrents without
/// peers, so nothing else is built.
pub fn restore(bytes: &[u8]) -> Result<Restored, DecodeError> {
    let mut torrents = Torrents::default();
    let (mut users, mut torrents_in_file, mut peers) = (0, 0, 0);
    decode_with(
        bytes,
        |_| users += 1,
        |cached| {
            torrents_in_file += 1;
            if cached.peers.is_empty() {
                return;
            }
            let mut swarm = Swarm::default();
            for peer in &cached.peers {
                peers += 1;
                let key = PeerKey {
                    user: UserId(peer.user_id),
                    peer_id: PeerId(peer.peer_id),
                };
                swarm.insert(key, to_peer(peer), peer.seeding);
            }
            let state = TorrentState {
                meta: TorrentMeta {
                    group_id: GroupId(cached.group_id),
                    torrent_type: TorrentType::from_name(&cached.torrent_type),
                    up_multiplier: cached.up_multiplier,
                    down_multiplier: cached.down_multiplier,
                },
                status: cached.status,
                snatched: cached.snatched,
                last_action: cached.last_action,
                unprune_pending: false,
                swarm,
            };
            torrents.insert(
                InfoHash(cached.info_hash),
                Arc::new(Torrent::with_state(TorrentId(cached.id), state)),
            );
        },
    )?;
    Ok(Restored {
        torrents,
        users,
        torrents_in_file,
        peers,
    })
}

/// Gives the restored swarms to the torrents of the freshly loaded snapshot that are
/// still the same torrent (same hash and id), with their last action; the database
/// keeps the say on everything else. Torrents gone from the database are dropped.
pub fn adopt(restored: Restored, current: &Torrents) -> usize {
    let mut adopted = 0;
    for (info_hash, cached) in restored.torrents.iter() {
        let Some(torrent) = current.get(info_hash).filter(|t| t.id == cached.id) else {
            continue;
        };
        let mut from = cached.lock();
        let mut to = torrent.lock();
        to.swarm = std::mem::take(&mut from.swarm);
        to.last_action = from.last_action;
        adopted += 1;
    }
    adopted
}

fn to_peer(peer: &CachedPeer) -> Peer {
    let ip: IpAddr = peer.ip;
    Peer {
        ip,
        port: peer.port,
        uploaded: peer.uploaded,
        downloaded: peer.downloaded,
        left: peer.left,
        start_time: peer_time(peer.start_time),
        last_announce: peer_time(peer.last_announce),
        client_id: ClientId(peer.client_id),
    }
}
