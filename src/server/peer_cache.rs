//! The peer cache of the running tracker (SPEC §10.2): read at start beside the first
//! database load, written every `database_serialize` seconds and at shutdown. Capture
//! walks the live swarms shard by shard (each lock held only to copy that shard's
//! peers; encoding happens after it is released); restore rebuilds them at start.

use std::net::IpAddr;

use crate::cache::format::{
    decode_with, CachedEndpoint, CachedPeer, CachedTorrent, CachedUser, DecodeError, EncodeError,
    Encoder,
};
use crate::tracker::{
    peer_time, Catalogue, ClientId, InfoHash, Peer, PeerGauges, PeerId, PeerKey, Snapshots, Swarm,
    Swarms, TorrentId, UserId, SHARDS,
};

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::log::fmt_duration;

/// Reads the cache at start (SPEC §10.2). A missing or unusable file is a warning,
/// never a failure. Runs beside the initial database load; [`adopt`] then hands
/// the swarms to the loaded torrents.
pub fn read(path: &Path) -> Option<Restored> {
    let started = Instant::now();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("Peer cache {} missing, starting empty", path.display());
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "Peer cache {} unusable ({}), starting empty",
                path.display(),
                e
            );
            return None;
        }
    };
    match restore(&bytes) {
        Ok(restored) => {
            tracing::info!(
                "Loaded {} users, {} torrents, {} peers ({})",
                restored.users,
                restored.torrents_in_file,
                restored.peers,
                fmt_duration(started.elapsed())
            );
            Some(restored)
        }
        Err(e) => {
            tracing::warn!(
                "Peer cache {} unusable ({}), starting empty",
                path.display(),
                e
            );
            None
        }
    }
}

/// Writes the cache file (SPEC §10.2); a failure is logged and the tracker goes on.
pub fn save(path: &Path, shared: &crate::server::state::Shared, now: i64) -> bool {
    let snapshots = &shared.snapshots;
    let started = Instant::now();
    tracing::info!("Serializing database to cache file");
    // With a journal: what follows the capture's start goes to a new segment, and the
    // file is put in place only once the journal holds every change it shows, so
    // that the segments before can go once the database has them too.
    let journal = shared.sink.journal();
    let segment = journal.map(|journal| journal.rotate());
    let written = capture(snapshots, now)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            if let Some(journal) = journal {
                if !journal.reached_within(journal.position(), journal.patience()) {
                    return Err("the journal could not be written in time".to_owned());
                }
            }
            crate::cache::file::write_atomic(path, &bytes).map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => {
            if let (Some(journal), Some(segment)) = (journal, segment) {
                journal.cache_written(segment);
            }
            let took = started.elapsed();
            shared
                .metrics
                .serialization_seconds
                .observe(took.as_secs_f64());
            tracing::info!("Done serializing ({})", fmt_duration(took));
            true
        }
        Err(e) => {
            tracing::error!("Failed to write peer cache {}: {}", path.display(), e);
            false
        }
    }
}

/// Writes the cache every `period` (the first time one period after start) until
/// `stop` turns true. Capture and write run on a blocking thread.
pub async fn run_serializer(
    shared: Arc<crate::server::state::Shared>,
    path: std::path::PathBuf,
    period: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let (shared, path) = (Arc::clone(&shared), path.clone());
        let now = shared.clock.now();
        let _ = tokio::task::spawn_blocking(move || save(&path, &shared, now)).await;
    }
}

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
    // proportion to the swarms rather than to the catalogue. The metadata written
    // beside the peers is the catalogue's (`cc` shows it; a start takes the
    // database's).
    let catalogue = snapshots.catalogue.load_full();
    encoder.open_torrents();
    let mut copied: Vec<CachedTorrent> = Vec::new();
    for index in 0..SHARDS {
        copied.clear();
        if let Some(shard) = snapshots.swarms.shard_at(index) {
            for (&id, live) in shard.iter() {
                if live.swarm.is_empty() {
                    continue;
                }
                let Some(listing) = catalogue.get(&live.info_hash).filter(|l| l.id == id) else {
                    continue;
                };
                copied.push(CachedTorrent {
                    info_hash: live.info_hash.0,
                    id: id.0,
                    group_id: listing.meta.group_id.0,
                    torrent_type: listing.meta.torrent_type.name().into(),
                    status: live.status(&catalogue, &listing),
                    snatched: live.downloaded(&catalogue, &listing),
                    last_action: live.last_action,
                    up_multiplier: listing.meta.up_multiplier,
                    down_multiplier: listing.meta.down_multiplier,
                    peers: live
                        .swarm
                        .iter()
                        .filter_map(|(key, peer, seeding)| to_cached(key, peer, seeding))
                        .collect(),
                });
            }
        }
        // Encoded once the shard's lock is released.
        for torrent in &copied {
            encoder.torrent(torrent)?;
        }
    }
    encoder.finish()
}

/// One torrent's swarm from a cache file.
pub struct RestoredTorrent {
    pub info_hash: InfoHash,
    pub id: TorrentId,
    pub last_action: i64,
    pub swarm: Swarm,
}

/// What a cache file gave back.
pub struct Restored {
    /// The torrents with peers.
    pub torrents: Vec<RestoredTorrent>,
    pub users: usize,
    /// Torrents in the file, with or without peers.
    pub torrents_in_file: usize,
    pub peers: usize,
}

/// Decodes a cache file into the swarms of the torrents that have peers. Their
/// metadata in the file is not kept: the database load gives it (and a type name new
/// to the process is therefore never interned: a file could otherwise fill the
/// process-wide table of type names, each leaked).
pub fn restore(bytes: &[u8]) -> Result<Restored, DecodeError> {
    let mut torrents = Vec::new();
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
            torrents.push(RestoredTorrent {
                info_hash: InfoHash(cached.info_hash),
                id: TorrentId(cached.id),
                last_action: cached.last_action,
                swarm,
            });
        },
    )?;
    Ok(Restored {
        torrents,
        users,
        torrents_in_file,
        peers,
    })
}

/// Gives the restored swarms, with their last action, to the torrents of the freshly
/// loaded catalogue that are still the same torrent (same hash and id); the database
/// keeps the say on everything else. Torrents gone from the database are dropped.
/// The adopted peers are added to `gauges`. Returns how many swarms were adopted.
pub fn adopt(
    restored: Restored,
    catalogue: &Catalogue,
    swarms: &Swarms,
    gauges: &PeerGauges,
) -> usize {
    let mut adopted = 0;
    for torrent in restored.torrents {
        if !catalogue.has(&torrent.info_hash, torrent.id) {
            continue;
        }
        let mut shard = swarms.shard(torrent.id);
        let live = shard.enter(torrent.id, torrent.info_hash);
        let replaced = std::mem::replace(&mut live.swarm, torrent.swarm);
        gauges.apply(live.swarm.tally() - replaced.tally());
        live.last_action = torrent.last_action;
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
    use std::sync::Arc;

    use super::*;
    use crate::cache::format::decode;
    use crate::tracker::{GroupId, TorrentMeta, TorrentRow, TorrentType};

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
        let snapshots = Snapshots::default();
        let row = |id: u32, hash: u8| TorrentRow {
            id: TorrentId(id),
            info_hash: InfoHash([hash; 20]),
            meta: TorrentMeta {
                group_id: GroupId(2),
                torrent_type: TorrentType::from_name("music"),
                up_multiplier: 1.0,
                down_multiplier: 0.5,
            },
            snatched: 5,
            status: 0,
            stored: Default::default(),
        };
        snapshots.catalogue.store(Arc::new(Catalogue::from_rows(
            1,
            [0, 0],
            [row(3, 7), row(4, 8)],
        )));
        {
            let mut shard = snapshots.swarms.shard(TorrentId(3));
            let live = shard.enter(TorrentId(3), InfoHash([7; 20]));
            live.last_action = 1_700_000_000;
            for (key, peer, seeding) in &peers {
                live.swarm.insert(*key, peer.clone(), *seeding);
            }
        }
        // A live entry without peers (a pending write, say) is not written.
        snapshots
            .swarms
            .shard(TorrentId(4))
            .enter(TorrentId(4), InfoHash([8; 20]))
            .completed(1);
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
        assert_eq!(restored.torrents.len(), 1);
        let torrent = &restored.torrents[0];
        assert_eq!(
            (torrent.info_hash, torrent.id, torrent.last_action),
            (InfoHash([7; 20]), TorrentId(3), 1_700_000_000)
        );
        let swarm = &torrent.swarm;
        assert_eq!((swarm.seeders(), swarm.leechers()), (1, 2));
        for (key, peer, seeding) in &peers {
            let (got, got_seeding) = swarm.get(key).unwrap();
            assert_eq!((got, got_seeding), (peer, *seeding), "{key:?}");
        }
        let (dual, _) = swarm.get(&key(1, 1)).unwrap();
        assert_eq!(dual.last_announce(), 1_700_000_200);

        // Adopted by the torrents the database still has, under the same id.
        let again = Snapshots::default();
        again.catalogue.store(snapshots.catalogue.load_full());
        let adopted = adopt(
            restore(&capture(&snapshots, 1_700_001_000).unwrap()).unwrap(),
            &again.catalogue.load(),
            &again.swarms,
            &again.peers,
        );
        assert_eq!(adopted, 1);
        assert_eq!(again.peers.counts().peers, 3);
        let moved = Snapshots::default();
        moved
            .catalogue
            .store(Arc::new(Catalogue::from_rows(2, [0, 0], [])));
        let adopted = adopt(
            restore(&capture(&snapshots, 1_700_001_000).unwrap()).unwrap(),
            &moved.catalogue.load(),
            &moved.swarms,
            &moved.peers,
        );
        assert_eq!((adopted, moved.swarms.count()), (0, 0));
    }

    /// Found by tests/fuzz.rs: each new torrent type name in a cache file was interned
    /// for good (the table grew across files, up to 65 535 leaked names).
    #[test]
    fn restore_interns_no_type_names() {
        let name = "type-only-in-a-cache-file";
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
        assert_eq!(restored.torrents.len(), 1);
        assert_eq!(TorrentType::known(name), None);
    }
}
