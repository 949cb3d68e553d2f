//! The announce algorithm (SPEC §5.3–5.13) from a validated request to a response and
//! the accounting deltas. Pure: time and randomness come in as arguments.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, MutexGuard};

use arc_swap::{ArcSwap, Guard};
use rand::Rng;

use super::catalogue::Catalogue;
use super::deltas::{
    AnnounceDeltas, HistoryDelta, SnatchDelta, TorrentDelta, TransferIp, TransferIpDelta, UserDelta,
};
use super::failure::Failure;
use super::snapshot::{Clients, GroupFreeleech, HitAndRuns, PeerGauges, User};
use super::swarm::{Family, Peer, PeerKey, SelectedPeer, Tally};
use super::swarms::{Shard, Swarms};
use super::types::{InfoHash, PeerId, TorrentId};

/// Largest value the database's signed BIGINT columns hold.
pub const MAX_COUNTER: u64 = i64::MAX as u64;

/// The announce-related configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub announce_interval: u32,
    pub min_announce_interval: u32,
    pub announce_drift: u32,
    pub peer_inactivity: u32,
    pub default_numwant: u16,
    pub max_numwant: u16,
    pub scrape_interval: u32,
    /// Most peers one user may have in one swarm (at most
    /// [`super::MAX_PEERS_PER_USER`]).
    pub peers_per_user: usize,
    /// Bytes per second beyond which a reported transfer is not credited (0: no
    /// ceiling); see [`plausible`].
    pub max_transfer_rate: u64,
}

/// The `event` parameter, compared case-sensitively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Absent, empty, `started` or anything else: a plain announce.
    None,
    Completed,
    Stopped,
}

impl Event {
    pub fn from_raw(raw: &[u8]) -> Event {
        match raw {
            b"completed" => Event::Completed,
            b"stopped" => Event::Stopped,
            _ => Event::None,
        }
    }
}

/// An announce whose parameters passed checks 1–10.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    pub numwant: Option<u16>,
    pub compact: bool,
    pub no_peer_id: bool,
    /// Resolved (SPEC §5.2, §5.14): IPv4, or IPv6 that is not IPv4-mapped.
    pub ip: IpAddr,
}

/// The snapshots an announce reads.
pub struct View<'a> {
    pub clients: &'a Clients,
    pub hit_and_runs: &'a HitAndRuns,
    pub group_freeleech: &'a GroupFreeleech,
    pub global_freeleech: bool,
    /// The catalogue in service; an announce that finds it replaced while it waited
    /// for its swarm's lock reads it again (see [`lock_swarm`]).
    pub catalogue: &'a ArcSwap<Catalogue>,
    pub swarms: &'a Swarms,
    /// The peer gauges, moved as this announce changes the swarm.
    pub peers: &'a PeerGauges,
}

/// The catalogue and the locked shard of the torrent `info_hash` names, once the
/// shard is swept to that catalogue or to none newer: a reload swaps a catalogue in,
/// then sweeps every shard to it (dropping the swarms of torrents it lost), so a
/// request that took the catalogue before the swap must not act on a shard swept
/// after. It takes the catalogue again instead, once (a newer one is never older
/// than the one the shards are swept to).
pub fn lock_swarm<'v>(
    view: &View<'v>,
    info_hash: &InfoHash,
) -> Result<(Guard<Arc<Catalogue>>, MutexGuard<'v, Shard>), Failure> {
    let catalogue = view.catalogue.load();
    let id = catalogue.get(info_hash).ok_or(Failure::UnknownTorrent)?.id;
    let shard = view.swarms.shard(id);
    if catalogue.load() >= view.swarms.in_service() {
        return Ok((catalogue, shard));
    }
    drop(shard);
    let catalogue = view.catalogue.load();
    let id = catalogue.get(info_hash).ok_or(Failure::UnknownTorrent)?.id;
    Ok((catalogue, view.swarms.shard(id)))
}

/// A successful announce: the response fields (peers go to the caller's buffer) and
/// what to queue for the database.
#[derive(Clone, Debug, PartialEq)]
pub struct Announced {
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
    pub interval: u32,
    pub min_interval: u32,
    /// Whether the response carries a `peers` key (numwant > 0 and not stopped).
    pub include_peers: bool,
    pub seeding: bool,
    pub deltas: AnnounceDeltas,
    /// The raw transfer the client reported since its previous announce, credited or
    /// not (the recorder shows what was claimed).
    pub reported_up: u64,
    pub reported_down: u64,
    /// Which of those were too large to be real and were not credited.
    pub implausible: Implausible,
    /// Peers of this user that left the swarm to make room for this one.
    pub evicted: u32,
}

/// Reported transfers the tracker refused to credit, by direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Implausible {
    pub up: bool,
    pub down: bool,
}

impl Implausible {
    pub fn any(self) -> bool {
        self.up || self.down
    }
}

/// Whether `bytes` moved in `elapsed` seconds is believable at `max_rate` bytes per
/// second. Two announces may come seconds apart (a dual-stack client, a restart), so
/// the allowance never falls below one announce interval's worth; 0 turns the check off.
pub fn plausible(bytes: u64, elapsed: i64, announce_interval: u32, max_rate: u64) -> bool {
    if max_rate == 0 {
        return true;
    }
    let seconds = u64::try_from(elapsed)
        .unwrap_or(0)
        .max(u64::from(announce_interval));
    bytes <= max_rate.saturating_mul(seconds)
}

/// Whether `user` may not download `torrent`: download-disabled users may still leech
/// torrents on which they have a hit-and-run, so they can repair it.
pub fn download_disabled(user: &User, torrent: TorrentId, hit_and_runs: &HitAndRuns) -> bool {
    user.disable_download && !hit_and_runs.contains(user.id, torrent)
}

/// Runs checks 11–14, updates the swarm and computes the deltas. Selected peers are
/// appended to `peers`.
pub fn announce(
    settings: &Settings,
    view: &View<'_>,
    user: &User,
    request: &AnnounceRequest,
    now: i64,
    rng: &mut impl Rng,
    peers: &mut Vec<SelectedPeer>,
) -> Result<Announced, Failure> {
    announce_with(settings, view, user, request, now, rng, peers, |_, _| {})
}

/// What one announce did to its swarm, handed over (with the deltas) while the
/// torrent is still locked: a journal that writes it then holds every peer's changes
/// in the order they happened.
#[derive(Debug)]
pub struct PeerChange<'a> {
    pub torrent: TorrentId,
    pub key: PeerKey,
    /// The peer as it is now and whether it seeds; None when it left (`stopped`).
    pub peer: Option<(&'a Peer, bool)>,
    /// The same user's peers that left to make room for this one.
    pub evicted: &'a [PeerId],
}

/// [`announce`], calling `changed` with the swarm's change and the deltas before the
/// torrent's lock is released.
#[allow(clippy::too_many_arguments)]
pub fn announce_with(
    settings: &Settings,
    view: &View<'_>,
    user: &User,
    request: &AnnounceRequest,
    now: i64,
    rng: &mut impl Rng,
    peers: &mut Vec<SelectedPeer>,
    changed: impl FnOnce(&PeerChange<'_>, &AnnounceDeltas),
) -> Result<Announced, Failure> {
    let client = view
        .clients
        .matching(&request.peer_id)
        .ok_or(Failure::ClientNotApproved(request.peer_id))?;
    let seeding = request.left == 0;
    let stopped = request.event == Event::Stopped;
    let completed = request.event == Event::Completed;

    let (catalogue, mut shard) = lock_swarm(view, &request.info_hash)?;
    let listing = catalogue
        .get(&request.info_hash)
        .ok_or(Failure::UnknownTorrent)?;
    let id = listing.id;
    let status = shard
        .get(id)
        .map_or(listing.status, |live| live.status(&catalogue, &listing));
    let revive = status == 1 && seeding;
    if status != 0 && !revive {
        return Err(Failure::TorrentStatus {
            status,
            left: request.left,
        });
    }
    if !seeding && download_disabled(user, id, view.hit_and_runs) {
        return Err(Failure::DownloadDisabled);
    }
    let live = shard.enter(id, request.info_hash);
    live.settle(&catalogue, &listing);
    let mut unprune = None;
    if revive {
        live.unprune();
        unprune = Some(id);
    }

    let group = view
        .group_freeleech
        .get(listing.meta.group_id, listing.meta.torrent_type);
    let (torrent_up, torrent_down) = (listing.meta.up_multiplier, listing.meta.down_multiplier);

    let key = PeerKey {
        user: user.id,
        peer_id: request.peer_id,
    };
    // An IPv4-mapped IPv6 address is the IPv4 endpoint, here as everywhere.
    let ip = request.ip.to_canonical();
    // What this announce does to the peer gauges: the evicted peers and the peer's
    // endpoints before it leave, the peer as it ends up comes in.
    let mut change = Tally::default();
    let mut evicted = 0u32;
    // Their ids, for the journal; allocated only when someone is evicted.
    let mut evicted_ids: Vec<PeerId> = Vec::new();
    // A `stopped` from a peer the swarm does not know leaves at once: it makes no room
    // (for a moment the user may have one peer more than the cap).
    let cap = if stopped {
        super::swarm::MAX_PEERS_PER_USER
    } else {
        settings.peers_per_user
    };
    let (peer, existed) = live.swarm.place(
        key,
        seeding,
        cap,
        |gone_key, gone| {
            change = change - Tally::of(&gone);
            evicted += 1;
            evicted_ids.push(gone_key.peer_id);
        },
        || {
            let mut peer = Peer::at(ip, request.port, now);
            (peer.uploaded, peer.downloaded, peer.left) =
                (request.uploaded, request.downloaded, request.left);
            peer.client_id = client;
            peer
        },
    );
    if existed {
        change = change - Tally::of(peer);
    }

    // A leecher whose `stopped` reports left = 0 finished the download and is leaving
    // without having sent `completed` (aria2 with --seed-time=0 does exactly this): it
    // snatched. Only on `stopped`: a peer that stays may still send `completed`, and
    // that must not count a second time. (`peer.left` is still the previous report.)
    let finished_while_leaving = stopped && seeding && existed && peer.left > 0;
    // `completed` counts every time it is sent (SPEC §5.10), except the copy a
    // dual-stack client sends over its other family for the same completion.
    let family = Family::of(ip);
    let completion_echo = peer.completed_over.is_some_and(|counted| counted != family);
    let snatch = (completed && !completion_echo) || finished_while_leaving;
    if snatch {
        peer.completed_over = Some(family);
    }

    let reported_up = request
        .uploaded
        .saturating_sub(peer.uploaded)
        .min(MAX_COUNTER);
    let reported_down = request
        .downloaded
        .saturating_sub(peer.downloaded)
        .min(MAX_COUNTER);
    // A counter that jumps further than any link could carry since the last announce
    // is a lie or a client bug: the baseline moves on, the jump is not credited.
    let elapsed = now - i64::from(peer.last_announce());
    let believable = |bytes| {
        plausible(
            bytes,
            elapsed,
            settings.announce_interval,
            settings.max_transfer_rate,
        )
    };
    let implausible = Implausible {
        up: !believable(reported_up),
        down: !believable(reported_down),
    };
    let raw_up = if implausible.up { 0 } else { reported_up };
    let raw_down = if implausible.down { 0 } else { reported_down };
    let credited_up = credit(raw_up, [user.up_multiplier, group.up, torrent_up]);
    let credited_down = if view.global_freeleech {
        0
    } else {
        credit(raw_down, [user.down_multiplier, group.down, torrent_down])
    };

    // One baseline per peer, whichever family it announces over: a dual-stack client's
    // two announces split its transfer and time between them, never double them.
    let since_last = (now - i64::from(peer.last_announce())).max(0);
    let active_time = if since_last > i64::from(settings.peer_inactivity) {
        0
    } else {
        since_last
    };
    // Seed time goes by the state after this announce, so the announce that turns a
    // leecher into a seeder credits the interval before it as seeding.
    let seed_time = if seeding { active_time } else { 0 };

    peer.uploaded = request.uploaded;
    peer.downloaded = request.downloaded;
    peer.left = request.left;
    peer.set_endpoint(ip, request.port, now);
    peer.client_id = client;
    let start_time = i64::from(peer.start_time);
    let placed = Tally::of(peer);
    let after = (!stopped).then(|| peer.clone());

    if seeding {
        live.last_action = now;
    }
    if stopped {
        live.swarm.remove(&key);
    } else {
        change += placed;
    }
    view.peers.apply(change);
    if snatch {
        live.completed(1);
    }
    let snatched = u32::from(snatch);
    let complete = count(live.swarm.seeders());
    let incomplete = count(live.swarm.leechers());
    let numwant = usize::from(
        request
            .numwant
            .unwrap_or(settings.default_numwant)
            .min(settings.max_numwant),
    );
    let include_peers = numwant > 0 && !stopped;
    if include_peers {
        live.swarm.select(user.id, seeding, numwant, rng, peers);
    }
    let torrent_delta = TorrentDelta {
        id,
        snatched,
        seeders: complete,
        leechers: incomplete,
        last_action: live.last_action,
    };
    let downloaded = live.downloaded(&catalogue, &listing);

    let user_delta = UserDelta {
        id: user.id,
        uploaded: credited_up,
        downloaded: credited_down,
        rawup: raw_up,
        rawdl: raw_down,
    };
    let deltas = AnnounceDeltas {
        torrent: torrent_delta,
        history: HistoryDelta {
            user: user.id,
            torrent: id,
            uploaded: raw_up,
            downloaded: raw_down,
            seeding,
            start_time,
            last_announce: now,
            active_time,
            seed_time,
            active: !stopped,
            snatched,
            remaining: request.left.min(MAX_COUNTER),
        },
        user: (!user_delta.is_zero()).then_some(user_delta),
        transfer_ip: {
            // TrackerHide stores the loopback address of the endpoint's family.
            let row = TransferIpDelta {
                user: user.id,
                torrent: id,
                client,
                ip: (),
                port: request.port,
                uploaded: raw_up,
                downloaded: raw_down,
                start_time,
                last_announce: now,
            };
            match ip {
                IpAddr::V4(_) if user.tracker_hide => {
                    TransferIp::V4(row.with_ip(u32::from(Ipv4Addr::LOCALHOST)))
                }
                IpAddr::V4(ip) => TransferIp::V4(row.with_ip(u32::from(ip))),
                IpAddr::V6(_) if user.tracker_hide => {
                    TransferIp::V6(row.with_ip(Ipv6Addr::LOCALHOST.octets()))
                }
                IpAddr::V6(ip) => TransferIp::V6(row.with_ip(ip.octets())),
            }
        },
        snatch: snatch.then_some(SnatchDelta {
            user: user.id,
            torrent: id,
            snatched_time: now,
            start_time,
        }),
        unprune,
    };
    changed(
        &PeerChange {
            torrent: id,
            key,
            peer: after.as_ref().map(|peer| (peer, seeding)),
            evicted: &evicted_ids,
        },
        &deltas,
    );
    if stopped {
        shard.leave_if_idle(id);
    }
    drop(shard);
    Ok(Announced {
        complete,
        downloaded,
        incomplete,
        interval: settings
            .announce_interval
            .saturating_add(rng.random_range(0..=settings.announce_drift)),
        min_interval: settings.min_announce_interval,
        include_peers,
        seeding,
        deltas,
        reported_up,
        reported_down,
        implausible,
        evicted,
    })
}

/// Bytes credited for `raw` bytes under the given multipliers (their absolute values),
/// multiplied left to right in f64 and truncated toward zero, within 0…2^63−1.
pub fn credit(raw: u64, multipliers: [f64; 3]) -> u64 {
    let product = multipliers
        .iter()
        .fold(raw as f64, |acc, multiplier| acc * multiplier.abs());
    // `as` saturates (and maps NaN to 0), which is the clamping we want.
    (product.trunc() as u64).min(MAX_COUNTER)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
