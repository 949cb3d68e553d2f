//! Between the tracker's in-memory state and the peer cache file: capture the swarms
//! torrent by torrent (each lock held only to copy that torrent's peers; encoding
//! happens after it is released) and rebuild them at start.

use std::net::IpAddr;
use std::sync::Arc;

use super::format::{
    decode_with, CachedEndpoint, CachedPeer, CachedTorrent, CachedUser, DecodeError, EncodeError,
    Encoder,
};
use crate::tracker::{
    peer_time, ClientId, GroupId, InfoHash, Peer, PeerGauges, PeerId, PeerKey, Snapshots, Swarm,
    Torrent, TorrentId, TorrentMeta, TorrentState, TorrentType, Torrents, UserId,
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
            cached.peers.extend(
                state
                    .swarm
                    .iter()
                    .filter_map(|(key, peer, seeding)| to_cached(key, peer, seeding)),
            );
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
                if let Some(restored) = to_peer(peer) {
                    swarm.insert(key, restored, peer.seeding);
                }
            }
            let state = TorrentState {
                meta: TorrentMeta {
                    group_id: GroupId(cached.group_id),
                    // Only the swarm and last action outlive `adopt`; the database
                    // gives the metadata. A name new to the process is not interned:
                    // the file could fill the process-wide table of type names (each
                    // leaked) and leave the database's own types without a name.
                    torrent_type: TorrentType::known(&cached.torrent_type)
                        .unwrap_or(TorrentType::UNNAMED),
                    up_multiplier: cached.up_multiplier,
                    down_multiplier: cached.down_multiplier,
                },
                status: cached.status,
                snatched: cached.snatched,
                last_action: cached.last_action,
                unprune_pending: false,
                retired: false,
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
/// The adopted peers are added to `gauges`.
pub fn adopt(restored: Restored, current: &Torrents, gauges: &PeerGauges) -> usize {
    let mut adopted = 0;
    for (info_hash, cached) in restored.torrents.iter() {
        let Some(torrent) = current.get(info_hash).filter(|t| t.id == cached.id) else {
            continue;
        };
        let mut from = cached.lock();
        let mut to = torrent.lock();
        let replaced = std::mem::replace(&mut to.swarm, std::mem::take(&mut from.swarm));
        gauges.apply(to.swarm.tally() - replaced.tally());
        to.last_action = from.last_action;
        adopted += 1;
    }
    adopted
}

/// A peer as the cache holds it: both endpoints, each with its own last announce. A
/// peer without an endpoint (none is kept in a swarm) is left out.
fn to_cached(key: &PeerKey, peer: &Peer, seeding: bool) -> Option<CachedPeer> {
    let v4 = peer.v4.map(|e| CachedEndpoint {
        ip: e.ip,
        port: e.port,
        last_announce: i64::from(e.seen.get()),
    });
    // A swarm keeps IPv4-mapped addresses as IPv4; the file refuses them as IPv6.
    let v6 = peer
        .v6
        .filter(|e| e.ip.to_ipv4_mapped().is_none())
        .map(|e| CachedEndpoint {
            ip: e.ip,
            port: e.port,
            last_announce: i64::from(e.seen.get()),
        });
    (v4.is_some() || v6.is_some()).then_some(CachedPeer {
        peer_id: key.peer_id.0,
        user_id: key.user.0,
        seeding,
        v4,
        v6,
        uploaded: peer.uploaded,
        downloaded: peer.downloaded,
        left: peer.left,
        start_time: i64::from(peer.start_time),
        client_id: peer.client_id.0,
    })
}

/// The tracker's peer for a cached one, with both endpoints; `None` without an
/// endpoint (the decoder refuses such a peer).
fn to_peer(peer: &CachedPeer) -> Option<Peer> {
    let v4 = peer.v4.map(|e| (IpAddr::V4(e.ip), e.port, e.last_announce));
    let v6 = peer.v6.map(|e| (IpAddr::V6(e.ip), e.port, e.last_announce));
    let mut endpoints = v4.into_iter().chain(v6);
    let (ip, port, seen) = endpoints.next()?;
    let mut restored = Peer::at(ip, port, seen);
    for (ip, port, seen) in endpoints {
        restored.set_endpoint(ip, port, seen);
    }
    restored.uploaded = peer.uploaded;
    restored.downloaded = peer.downloaded;
    restored.left = peer.left;
    restored.start_time = peer_time(peer.start_time);
    restored.client_id = ClientId(peer.client_id);
    Some(restored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::format::decode;

    fn key(user: u32, tag: u8) -> PeerKey {
        PeerKey {
            user: UserId(user),
            peer_id: PeerId([tag; 20]),
        }
    }

    fn peer(ip: &str, port: u16, now: i64) -> Peer {
        let mut peer = Peer::at(ip.parse().unwrap(), port, now);
        peer.uploaded = 100;
        peer.downloaded = 200;
        peer.left = 300;
        peer.start_time = 1_600_000_000;
        peer.client_id = ClientId(4);
        peer
    }

    /// Snapshots holding one torrent with a dual-stack seeder, an IPv4 leecher and an
    /// IPv6 leecher, and one torrent without peers.
    fn snapshots() -> (Snapshots, Vec<(PeerKey, Peer, bool)>) {
        let mut dual = peer("1.2.3.4", 6881, 1_700_000_100);
        dual.set_endpoint("2001:db8::1".parse().unwrap(), 6882, 1_700_000_200);
        let peers = vec![
            (key(1, 1), dual, true),
            (
                key(2, 2),
                peer("::ffff:5.6.7.8", 7000, 1_700_000_300),
                false,
            ),
            (key(3, 3), peer("2001:db8::3", 7001, 1_700_000_400), false),
        ];
        let mut swarm = Swarm::default();
        for (key, peer, seeding) in &peers {
            swarm.insert(*key, peer.clone(), *seeding);
        }
        let state = |swarm| TorrentState {
            meta: TorrentMeta {
                group_id: GroupId(2),
                torrent_type: TorrentType::from_name("music"),
                up_multiplier: 1.0,
                down_multiplier: 0.5,
            },
            status: 0,
            snatched: 5,
            last_action: 1_700_000_000,
            unprune_pending: false,
            retired: false,
            swarm,
        };
        let mut torrents = Torrents::default();
        torrents.insert(
            InfoHash([7; 20]),
            Arc::new(Torrent::with_state(TorrentId(3), state(swarm))),
        );
        torrents.insert(
            InfoHash([8; 20]),
            Arc::new(Torrent::with_state(TorrentId(4), state(Swarm::default()))),
        );
        let snapshots = Snapshots::default();
        snapshots.torrents.store(Arc::new(torrents));
        (snapshots, peers)
    }

    #[test]
    fn capture_keeps_both_endpoints() {
        let (snapshots, _) = snapshots();
        let file = decode(&capture(&snapshots, 1_700_001_000).unwrap()).unwrap();
        assert_eq!(file.written_at, 1_700_001_000);
        assert_eq!(file.torrents.len(), 1, "only torrents with peers");
        let mut peers = file.torrents[0].peers.clone();
        peers.sort_by_key(|p| p.user_id);
        let endpoint = |ip: &str, port, last_announce| (ip.to_owned(), port, last_announce);
        let v4 = |p: &CachedPeer| {
            p.v4.map(|e| endpoint(&e.ip.to_string(), e.port, e.last_announce))
        };
        let v6 = |p: &CachedPeer| {
            p.v6.map(|e| endpoint(&e.ip.to_string(), e.port, e.last_announce))
        };
        assert_eq!(
            v4(&peers[0]),
            Some(endpoint("1.2.3.4", 6881, 1_700_000_100))
        );
        assert_eq!(
            v6(&peers[0]),
            Some(endpoint("2001:db8::1", 6882, 1_700_000_200))
        );
        assert_eq!(
            v4(&peers[1]),
            Some(endpoint("5.6.7.8", 7000, 1_700_000_300))
        );
        assert_eq!(v6(&peers[1]), None);
        assert_eq!(v4(&peers[2]), None);
        assert_eq!(
            v6(&peers[2]),
            Some(endpoint("2001:db8::3", 7001, 1_700_000_400))
        );
        assert!(peers[0].seeding && !peers[1].seeding);
        assert_eq!(
            (peers[0].uploaded, peers[0].downloaded, peers[0].left),
            (100, 200, 300)
        );
        assert_eq!(
            (peers[0].start_time, peers[0].client_id),
            (1_600_000_000, 4)
        );
    }

    #[test]
    fn restore_rebuilds_the_swarms_exactly() {
        let (snapshots, peers) = snapshots();
        let restored = restore(&capture(&snapshots, 1_700_001_000).unwrap()).unwrap();
        assert_eq!(
            (restored.users, restored.torrents_in_file, restored.peers),
            (0, 1, 3)
        );
        let torrent = restored.torrents.get(&InfoHash([7; 20])).unwrap();
        assert_eq!(torrent.id, TorrentId(3));
        let state = torrent.lock();
        assert_eq!((state.swarm.seeders(), state.swarm.leechers()), (1, 2));
        for (key, peer, seeding) in &peers {
            let (got, got_seeding) = state.swarm.get(key).unwrap();
            assert_eq!((got, got_seeding), (peer, *seeding), "{key:?}");
        }
        let (dual, _) = state.swarm.get(&key(1, 1)).unwrap();
        assert_eq!(dual.last_announce(), 1_700_000_200);
    }

    /// Found by tests/fuzz.rs: each new torrent type name in a cache file was interned
    /// for good (the table grew across files, up to 65 535 leaked names).
    #[test]
    fn restore_interns_no_type_names() {
        let restored_type = |name: &'static str| {
            let mut encoder = Encoder::new(0);
            encoder.users([].iter()).unwrap();
            encoder.torrent_count(1).unwrap();
            let (_, peer, seeding) = &snapshots().1[0];
            let peer = to_cached(&key(1, 1), peer, *seeding).unwrap();
            encoder
                .torrent(&CachedTorrent {
                    info_hash: [9; 20],
                    id: 3,
                    group_id: 2,
                    torrent_type: name.into(),
                    status: 0,
                    snatched: 0,
                    last_action: 0,
                    up_multiplier: 1.0,
                    down_multiplier: 1.0,
                    peers: vec![peer],
                })
                .unwrap();
            let restored = restore(&encoder.finish().unwrap()).unwrap();
            let torrent = restored.torrents.get(&InfoHash([9; 20])).unwrap();
            let torrent_type = torrent.lock().meta.torrent_type;
            torrent_type
        };
        let name = "type-only-in-a-cache-file";
        assert_eq!(restored_type(name), TorrentType::UNNAMED);
        assert_eq!(TorrentType::known(name), None);
        assert_eq!(restored_type("anime"), TorrentType::Anime);
    }
}
