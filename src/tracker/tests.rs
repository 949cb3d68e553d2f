//! Unit tests of the announce rules, without I/O: a fixed clock and a seeded rng.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, MutexGuard};

use arc_swap::ArcSwap;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;

const HASH: InfoHash = InfoHash([7; 20]);
const ID: TorrentId = TorrentId(3);
const T0: i64 = 1_700_000_000;

struct World {
    clients: Clients,
    hit_and_runs: HitAndRuns,
    group_freeleech: GroupFreeleech,
    global_freeleech: bool,
    catalogue: ArcSwap<Catalogue>,
    swarms: Swarms,
    settings: Settings,
    rng: SmallRng,
    peers: PeerGauges,
}

fn user(id: u32) -> User {
    User {
        id: UserId(id),
        up_multiplier: 1.0,
        down_multiplier: 1.0,
        disable_download: false,
        tracker_hide: false,
    }
}

fn world_with(status: i32, up: f64, down: f64) -> World {
    let row = TorrentRow {
        id: TorrentId(3),
        info_hash: HASH,
        meta: TorrentMeta {
            group_id: GroupId(2),
            torrent_type: TorrentType::Anime,
            up_multiplier: up,
            down_multiplier: down,
        },
        snatched: 10,
        status,
        stored: Default::default(),
    };
    World {
        clients: Clients::new(vec![(b"-TR".to_vec().into(), ClientId(1))]),
        hit_and_runs: HitAndRuns::default(),
        group_freeleech: GroupFreeleech::default(),
        global_freeleech: false,
        catalogue: ArcSwap::from_pointee(Catalogue::from_rows(1, [0, 0], [row])),
        swarms: Swarms::default(),
        settings: Settings {
            announce_interval: 1800,
            min_announce_interval: 900,
            announce_drift: 0,
            peer_inactivity: 3900,
            default_numwant: 25,
            max_numwant: 50,
            scrape_interval: 900,
            peers_per_user: 10,
            max_transfer_rate: 10 << 30,
        },
        rng: SmallRng::seed_from_u64(1),
        peers: PeerGauges::default(),
    }
}

fn world() -> World {
    world_with(0, 1.0, 1.0)
}

fn request(n: u8, left: u64, up: u64, down: u64) -> AnnounceRequest {
    let mut peer_id = *b"-TR2940-000000000000";
    peer_id[19] = n;
    AnnounceRequest {
        info_hash: HASH,
        peer_id: PeerId(peer_id),
        port: 6881,
        uploaded: up,
        downloaded: down,
        left,
        event: Event::None,
        numwant: None,
        compact: true,
        no_peer_id: false,
        ip: IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
    }
}

impl World {
    fn announce_as(
        &mut self,
        who: &User,
        req: &AnnounceRequest,
        now: i64,
    ) -> Result<(Announced, Vec<SelectedPeer>), Failure> {
        let view = View {
            clients: &self.clients,
            hit_and_runs: &self.hit_and_runs,
            group_freeleech: &self.group_freeleech,
            global_freeleech: self.global_freeleech,
            catalogue: &self.catalogue,
            swarms: &self.swarms,
            peers: &self.peers,
        };
        let mut peers = Vec::new();
        let done = announce(
            &self.settings,
            &view,
            who,
            req,
            now,
            &mut self.rng,
            &mut peers,
        )?;
        Ok((done, peers))
    }

    fn ok(&mut self, who: &User, req: &AnnounceRequest, now: i64) -> Announced {
        match self.announce_as(who, req, now) {
            Ok((done, _)) => done,
            Err(failure) => panic!("announce failed: {failure:?}"),
        }
    }

    /// The shard of the world's torrent, locked.
    fn shard(&self) -> MutexGuard<'_, Shard> {
        self.swarms.shard(ID)
    }

    /// Something of the world's torrent's live state (None: it has none).
    fn live<R>(&self, read: impl FnOnce(&Live) -> R) -> Option<R> {
        self.shard().get(ID).map(read)
    }
}

#[test]
fn first_announce_has_zero_deltas_then_deltas_follow_the_baseline() {
    let mut w = world();
    let u = user(1);
    let first = w.ok(&u, &request(1, 100, 5_000, 7_000), T0);
    assert_eq!(first.deltas.user, None);
    assert_eq!(first.deltas.history.active_time, 0);
    assert_eq!(first.deltas.history.start_time, T0);
    assert_eq!(
        (first.complete, first.incomplete, first.downloaded),
        (0, 1, 10)
    );

    let second = w.ok(&u, &request(1, 50, 6_000, 7_500), T0 + 60);
    assert_eq!(
        second.deltas.user,
        Some(UserDelta {
            id: UserId(1),
            uploaded: 1000,
            downloaded: 500,
            rawup: 1000,
            rawdl: 500
        })
    );
    let h = second.deltas.history;
    assert_eq!(
        (h.uploaded, h.downloaded, h.active_time, h.seed_time),
        (1000, 500, 60, 0)
    );
    assert_eq!(
        (
            h.start_time,
            h.last_announce,
            h.remaining,
            h.seeding,
            h.active
        ),
        (T0, T0 + 60, 50, false, true)
    );
    let TransferIp::V4(ip) = second.deltas.transfer_ip else {
        panic!("an IPv4 announce gives a transfer_ips row");
    };
    assert_eq!(
        (ip.ip, ip.port, ip.client, ip.start_time),
        (0x0102_0304, 6881, ClientId(1), T0)
    );
}

#[test]
fn counters_going_backwards_give_zero_not_negative() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 100, 5_000, 7_000), T0);
    let after_restart = w.ok(&u, &request(1, 100, 10, 20), T0 + 30);
    assert_eq!(after_restart.deltas.user, None);
    // The baseline moved to the reported values, so the next delta counts from there.
    let next = w.ok(&u, &request(1, 100, 110, 20), T0 + 60);
    assert_eq!(next.deltas.user.map(|d| d.rawup), Some(100));
}

#[test]
fn leecher_to_seeder_credits_the_interval_as_seed_time_and_moves_the_peer() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 100, 0, 0), T0);
    let done = w.ok(&u, &request(1, 0, 0, 100), T0 + 120);
    assert_eq!((done.complete, done.incomplete), (1, 0));
    assert_eq!(
        (
            done.deltas.history.seed_time,
            done.deltas.history.active_time
        ),
        (120, 120)
    );
    assert!(done.seeding);
    assert_eq!(done.deltas.torrent.last_action, T0 + 120);
    assert_eq!(
        done.deltas.history.start_time, T0,
        "start time kept across the move"
    );

    // Seeder -> leecher (e.g. a re-check found missing pieces): moved back, no seed time.
    let back = w.ok(&u, &request(1, 10, 0, 100), T0 + 180);
    assert_eq!((back.complete, back.incomplete), (0, 1));
    assert_eq!(
        (
            back.deltas.history.seed_time,
            back.deltas.history.active_time
        ),
        (0, 60)
    );
    assert_eq!(
        w.live(|live| live.last_action),
        Some(T0 + 120),
        "only seeders refresh last action"
    );
}

#[test]
fn inactivity_cap_zeroes_time_and_clock_skew_is_not_negative() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 0, 0, 0), T0);
    let late = w.ok(&u, &request(1, 0, 0, 0), T0 + 3901);
    assert_eq!(
        (
            late.deltas.history.active_time,
            late.deltas.history.seed_time
        ),
        (0, 0)
    );
    let at_cap = w.ok(&u, &request(1, 0, 0, 0), T0 + 3901 + 3900);
    assert_eq!(at_cap.deltas.history.active_time, 3900);
    let skewed = w.ok(&u, &request(1, 0, 0, 0), T0);
    assert_eq!(skewed.deltas.history.active_time, 0);
}

#[test]
fn multipliers_and_group_freeleech_and_global_freeleech() {
    // User 2 of the fixtures: down 2, up 0.5; torrent 2: down 2, up 0.5.
    let mut w = world_with(0, 0.5, 2.0);
    let mut u = user(2);
    u.up_multiplier = 0.5;
    u.down_multiplier = 2.0;
    w.ok(&u, &request(1, 1000, 0, 0), T0);
    let d = w
        .ok(&u, &request(1, 1000, 1001, 1001), T0 + 1)
        .deltas
        .user
        .unwrap();
    assert_eq!(
        (d.uploaded, d.downloaded, d.rawup, d.rawdl),
        (250, 4004, 1001, 1001)
    );

    w.group_freeleech.insert(
        GroupId(2),
        TorrentType::Anime,
        Multipliers { down: 0.0, up: 2.0 },
    );
    let d = w
        .ok(&u, &request(1, 1000, 2001, 2001), T0 + 2)
        .deltas
        .user
        .unwrap();
    assert_eq!(
        (d.uploaded, d.downloaded, d.rawup, d.rawdl),
        (500, 0, 1000, 1000)
    );

    w.group_freeleech = GroupFreeleech::default();
    w.global_freeleech = true;
    let d = w
        .ok(&u, &request(1, 1000, 3001, 3001), T0 + 3)
        .deltas
        .user
        .unwrap();
    assert_eq!(
        (d.uploaded, d.downloaded),
        (250, 0),
        "global freeleech spares upload"
    );
}

#[test]
fn credit_truncates_and_uses_absolute_values_and_saturates() {
    assert_eq!(credit(10, [0.7, 2.0, 1.0]), 14);
    assert_eq!(credit(3, [0.5, 1.0, 1.0]), 1);
    assert_eq!(credit(100, [-2.0, 1.0, 1.0]), 200);
    assert_eq!(credit(MAX_COUNTER, [4.0, 1.0, 1.0]), MAX_COUNTER);
    assert_eq!(credit(100, [f64::NAN, 1.0, 1.0]), 0);
}

#[test]
fn huge_counters_saturate_without_a_rate_ceiling() {
    let mut w = world();
    w.settings.max_transfer_rate = 0;
    let u = user(1);
    w.ok(&u, &request(1, u64::MAX, 0, 0), T0);
    let d = w
        .ok(&u, &request(1, u64::MAX, u64::MAX, u64::MAX), T0 + 1)
        .deltas;
    assert_eq!(
        d.user.map(|d| (d.rawup, d.uploaded)),
        Some((MAX_COUNTER, MAX_COUNTER))
    );
    assert_eq!(d.history.remaining, MAX_COUNTER);
}

#[test]
fn a_jump_beyond_the_rate_ceiling_is_not_credited_and_the_baseline_moves_on() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 500, 0, 0), T0);
    let done = w.ok(&u, &request(1, 500, u64::MAX, 7), T0 + 60);
    assert_eq!(
        done.implausible,
        Implausible {
            up: true,
            down: false
        }
    );
    assert_eq!((done.reported_up, done.reported_down), (MAX_COUNTER, 7));
    let d = done.deltas;
    assert_eq!((d.history.uploaded, d.history.downloaded), (0, 7));
    assert_eq!(
        d.user.map(|u| (u.uploaded, u.rawup, u.downloaded, u.rawdl)),
        Some((0, 0, 7, 7))
    );
    match d.transfer_ip {
        TransferIp::V4(row) => assert_eq!((row.uploaded, row.downloaded), (0, 7)),
        other => panic!("{other:?}"),
    }
    // Time and the rest of the announce count as usual.
    assert_eq!(d.history.active_time, 60);
    // The claimed counter is the new baseline: what follows is credited normally.
    let next = w.ok(&u, &request(1, 500, u64::MAX, 7 + 1000), T0 + 120);
    assert!(!next.implausible.any());
    assert_eq!(next.deltas.history.downloaded, 1000);
    assert_eq!(next.deltas.history.uploaded, 0);
}

#[test]
fn the_ceiling_is_rate_times_elapsed_and_at_least_one_interval() {
    let mut w = world();
    w.settings.max_transfer_rate = 1 << 20;
    let u = user(1);
    let interval = u64::from(w.settings.announce_interval) << 20;
    w.ok(&u, &request(1, 500, 0, 0), T0);
    // One second later, up to one announce interval's worth is believable.
    let done = w.ok(&u, &request(1, 500, interval, 0), T0 + 1);
    assert_eq!(
        (done.implausible.up, done.deltas.history.uploaded),
        (false, interval)
    );
    let done = w.ok(&u, &request(1, 500, 2 * interval + 1, 0), T0 + 2);
    assert!(done.implausible.up);
    assert_eq!(done.deltas.history.uploaded, 0);
    // Two intervals later, two intervals' worth.
    let at = T0 + 2 + 2 * i64::from(w.settings.announce_interval);
    let done = w.ok(&u, &request(1, 500, 4 * interval + 1, 2 * interval), at);
    assert!(!done.implausible.any());
    assert_eq!(
        (done.deltas.history.uploaded, done.deltas.history.downloaded),
        (2 * interval, 2 * interval)
    );
    let at = at + 1;
    let done = w.ok(&u, &request(1, 500, 4 * interval + 1, 3 * interval + 1), at);
    assert_eq!(
        done.implausible,
        Implausible {
            up: false,
            down: true
        }
    );
    assert!(plausible(u64::MAX, 0, 1, 0), "0 turns the ceiling off");
    assert!(
        plausible(10, -5, 10, 1),
        "a clock going back allows an interval"
    );
    assert!(!plausible(11, -5, 10, 1));
}

#[test]
fn a_user_over_the_peer_cap_loses_its_least_recently_seen_peer() {
    let mut w = world();
    w.settings.peers_per_user = 2;
    let (u, other) = (user(1), user(2));
    w.ok(&u, &request(1, 500, 0, 0), T0);
    w.ok(&u, &request(2, 500, 0, 0), T0 + 1);
    w.ok(&other, &request(9, 500, 0, 0), T0 + 1);
    // Peer 1 announces again: it is now seen after peer 2.
    let again = w.ok(&u, &request(1, 500, 10, 0), T0 + 2);
    assert_eq!((again.evicted, again.incomplete), (0, 3));
    let third = w.ok(&u, &request(3, 500, 0, 0), T0 + 3);
    assert_eq!((third.evicted, third.incomplete), (1, 3));
    {
        let shard = w.shard();
        let state = shard.get(ID).unwrap();
        let mine = |n: u8| {
            let mut id = *b"-TR2940-000000000000";
            id[19] = n;
            PeerKey {
                user: UserId(1),
                peer_id: PeerId(id),
            }
        };
        assert!(state.swarm.get(&mine(1)).is_some());
        assert!(state.swarm.get(&mine(2)).is_none(), "the stalest went");
        assert!(state.swarm.get(&mine(3)).is_some());
    }
    // The evicted peer comes back as a new peer (zero deltas), evicting the next.
    let back = w.ok(&u, &request(2, 500, 1_000_000, 0), T0 + 4);
    assert_eq!(back.evicted, 1);
    assert_eq!(back.deltas.history.uploaded, 0);
    // The other user's peer was never touched.
    assert_eq!(w.ok(&other, &request(9, 500, 5, 0), T0 + 5).evicted, 0);
    assert_eq!(w.peers.counts().peers, 3);
    // A `stopped` from a peer_id the swarm does not know makes no room.
    let mut stray = request(7, 500, 0, 0);
    stray.event = Event::Stopped;
    assert_eq!(w.ok(&u, &stray, T0 + 6).evicted, 0);
    assert_eq!(w.peers.counts().peers, 3);
}

/// Peers and endpoints of the world's torrent, counted by walking its swarm.
fn recount(w: &World) -> (usize, usize, usize) {
    w.live(|live| {
        live.swarm
            .iter()
            .fold((0, 0, 0), |(p, v4, v6), (_, peer, _)| {
                (
                    p + 1,
                    v4 + usize::from(peer.v4.is_some()),
                    v6 + usize::from(peer.v6.is_some()),
                )
            })
    })
    .unwrap_or((0, 0, 0))
}

#[test]
fn the_peer_gauges_follow_every_change_to_the_swarm() {
    let mut w = world();
    w.settings.peers_per_user = 2;
    let (u, other) = (user(1), user(2));
    let v6 = |mut r: AnnounceRequest| {
        r.ip = IpAddr::V6(Ipv6Addr::new(0x2a00, 0, 0, 0, 0, 0, 0, 9));
        r
    };
    let stopped = |mut r: AnnounceRequest| {
        r.event = Event::Stopped;
        r
    };
    let steps: Vec<(&User, AnnounceRequest)> = vec![
        (&u, request(1, 500, 0, 0)),
        (&u, v6(request(1, 500, 0, 0))), // the same peer gains an IPv6 endpoint
        (&u, request(2, 0, 0, 0)),
        (&u, request(3, 500, 0, 0)), // evicts a dual-stack peer
        (&other, v6(request(4, 500, 0, 0))),
        (&other, stopped(v6(request(4, 500, 0, 0)))),
        (&u, stopped(request(9, 500, 0, 0))), // a stop from a peer never seen
        (&u, request(2, 500, 0, 0)),          // seeder to leecher
    ];
    for (n, (who, req)) in steps.into_iter().enumerate() {
        w.ok(who, &req, T0 + n as i64);
        let counts = w.peers.counts();
        assert_eq!(
            (counts.peers, counts.ipv4, counts.ipv6),
            recount(&w),
            "after step {n}"
        );
    }
    assert_eq!(recount(&w), (2, 2, 0));
}

#[test]
fn a_torrent_gone_from_the_catalogue_takes_no_more_peers() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 500, 0, 0), T0);
    // A reload without it: the catalogue is swapped, then the swarms swept to it.
    let next = Arc::new(Catalogue::from_rows(2, [0, 0], []));
    w.catalogue.store(Arc::clone(&next));
    assert_eq!(w.swarms.sweep(&next, &w.peers), 1);
    assert_eq!(w.peers.counts().peers, 0);
    assert_eq!(w.swarms.count(), 0);
    assert_eq!(
        w.announce_as(&u, &request(2, 500, 0, 0), T0 + 1).err(),
        Some(Failure::UnknownTorrent)
    );
    assert_eq!(w.peers.counts().peers, 0);
}

/// User 1's peer, a leecher since T0, finished at `at`: one snatch, counted at once.
fn assert_one_snatch_at(done: &Announced, at: i64) {
    assert_eq!(done.downloaded, 11);
    assert_eq!(
        (done.deltas.torrent.snatched, done.deltas.history.snatched),
        (1, 1)
    );
    assert_eq!(
        done.deltas.snatch,
        Some(SnatchDelta {
            user: UserId(1),
            torrent: TorrentId(3),
            snatched_time: at,
            start_time: T0
        })
    );
}

#[test]
fn completed_counts_every_time_and_queues_a_snatch() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 100, 0, 0), T0);
    let mut req = request(1, 0, 0, 100);
    req.event = Event::Completed;
    assert_one_snatch_at(&w.ok(&u, &req, T0 + 10), T0 + 10);
    // A repeat from a known seeder counts again but keeps its baseline.
    let again = w.ok(&u, &req, T0 + 20);
    assert_eq!(again.downloaded, 12);
    assert_eq!(again.deltas.history.start_time, T0);
    let plain = w.ok(&u, &request(1, 0, 0, 100), T0 + 30);
    assert_eq!(
        (plain.deltas.torrent.snatched, plain.deltas.snatch),
        (0, None)
    );
}

#[test]
fn a_leecher_stopping_with_nothing_left_snatched() {
    // aria2 with --seed-time=0: `started` with left > 0, then `stopped` with left = 0
    // and never `completed`.
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 100, 0, 0), T0);
    let mut req = request(1, 0, 0, 100);
    req.event = Event::Stopped;
    assert_one_snatch_at(&w.ok(&u, &req, T0 + 10), T0 + 10);
}

#[test]
fn stopping_without_finishing_is_no_snatch() {
    let mut w = world();
    let u = user(1);
    // A seeder that stops, a leecher that stops with data left, a stranger that stops
    // with nothing left, and a leecher that finishes without an event (it may still
    // send `completed`, which alone counts).
    w.ok(&u, &request(1, 0, 0, 0), T0);
    w.ok(&u, &request(2, 100, 0, 0), T0);
    w.ok(&u, &request(4, 100, 0, 0), T0);
    let cases = [(1, 0), (2, 50), (3, 0)];
    for (n, left) in cases {
        let mut req = request(n, left, 0, 0);
        req.event = Event::Stopped;
        let done = w.ok(&u, &req, T0 + 10);
        assert_eq!(
            (
                done.deltas.torrent.snatched,
                done.deltas.snatch,
                done.downloaded
            ),
            (0, None, 10),
            "peer {n}"
        );
    }
    let finished = w.ok(&u, &request(4, 0, 0, 100), T0 + 10);
    assert_eq!(
        (finished.deltas.torrent.snatched, finished.downloaded),
        (0, 10)
    );
}

#[test]
fn stopped_removes_the_peer_but_still_queues_rows() {
    let mut w = world();
    let u = user(1);
    w.ok(&u, &request(1, 100, 0, 0), T0);
    let mut req = request(1, 100, 50, 0);
    req.event = Event::Stopped;
    let (done, peers) = w.announce_as(&u, &req, T0 + 5).unwrap();
    assert!(!done.include_peers);
    assert!(peers.is_empty());
    assert_eq!((done.complete, done.incomplete), (0, 0));
    assert!(!done.deltas.history.active);
    assert_eq!(done.deltas.user.map(|d| d.rawup), Some(50));
    // A never-seen peer that stops is created and removed at once, rows still queued.
    let mut stranger = request(2, 0, 0, 0);
    stranger.event = Event::Stopped;
    let done = w.ok(&user(5), &stranger, T0 + 6);
    assert_eq!(
        (done.complete, done.incomplete, done.deltas.history.active),
        (0, 0, false)
    );
}

#[test]
fn peers_never_include_own_and_numwant_is_capped() {
    let mut w = world();
    for n in 0..60u8 {
        w.ok(&user(100 + u32::from(n)), &request(n, 0, 0, 0), T0);
    }
    w.ok(&user(1), &request(200, 0, 0, 0), T0);
    let mut leech = request(201, 10, 0, 0);
    leech.numwant = Some(500);
    let (done, peers) = w.announce_as(&user(1), &leech, T0).unwrap();
    assert_eq!(peers.len(), 50, "capped at max_numwant");
    assert!(
        peers.iter().all(|p| p.peer_id.0[19] < 60),
        "own seeder never returned"
    );
    assert_eq!((done.complete, done.incomplete), (61, 1));
    leech.numwant = None;
    assert_eq!(w.announce_as(&user(1), &leech, T0).unwrap().1.len(), 25);
    leech.numwant = Some(0);
    let (done, peers) = w.announce_as(&user(1), &leech, T0).unwrap();
    assert!(!done.include_peers && peers.is_empty());
}

#[test]
fn interval_drift_stays_in_range() {
    let mut w = world();
    w.settings.announce_drift = 5;
    let mut seen = std::collections::HashSet::new();
    for i in 0..200 {
        let done = w.ok(&user(1), &request(1, 0, 0, 0), T0 + i);
        assert!((1800..=1805).contains(&done.interval));
        assert_eq!(done.min_interval, 900);
        seen.insert(done.interval);
    }
    assert_eq!(seen.len(), 6, "both ends reachable");
}

#[test]
fn unknown_client_and_torrent() {
    let mut w = world();
    let mut req = request(1, 0, 0, 0);
    req.peer_id = PeerId(*b"-qB4250-000000000000");
    assert_eq!(
        w.announce_as(&user(1), &req, T0).unwrap_err(),
        Failure::ClientNotApproved(req.peer_id)
    );
    let mut req = request(1, 0, 0, 0);
    req.info_hash = InfoHash([9; 20]);
    assert_eq!(
        w.announce_as(&user(1), &req, T0).unwrap_err(),
        Failure::UnknownTorrent
    );
}

#[test]
fn pruned_torrent_refuses_leechers_and_a_seeder_unprunes_it() {
    let mut w = world_with(1, 1.0, 1.0);
    assert_eq!(
        w.announce_as(&user(1), &request(1, 42, 0, 0), T0)
            .unwrap_err(),
        Failure::TorrentStatus {
            status: 1,
            left: 42
        }
    );
    let mut stop = request(2, 0, 0, 0);
    stop.event = Event::Stopped;
    let done = w.ok(&user(2), &stop, T0);
    assert_eq!(done.deltas.unprune, Some(TorrentId(3)));
    let catalogue = w.catalogue.load_full();
    let listing = catalogue.get(&HASH).unwrap();
    assert_eq!(
        listing.status, 1,
        "the catalogue says what the database said"
    );
    assert_eq!(
        w.live(|live| live.status(&catalogue, &listing)),
        Some(0),
        "revived here until the catalogue shows the write"
    );
    let next = w.ok(&user(1), &request(1, 42, 0, 0), T0);
    assert_eq!(next.deltas.unprune, None);

    let mut gone = world_with(2, 1.0, 1.0);
    assert_eq!(
        gone.announce_as(&user(1), &request(1, 0, 0, 0), T0)
            .unwrap_err(),
        Failure::TorrentStatus { status: 2, left: 0 }
    );
}

#[test]
fn download_disabled_except_on_hit_and_runs() {
    let mut w = world();
    let mut u = user(2);
    u.disable_download = true;
    assert_eq!(
        w.announce_as(&u, &request(1, 5, 0, 0), T0).unwrap_err(),
        Failure::DownloadDisabled
    );
    w.ok(&u, &request(1, 0, 0, 0), T0); // seeding is always allowed
    w.hit_and_runs.insert(UserId(2), TorrentId(3));
    w.ok(&u, &request(1, 5, 0, 0), T0);
}

#[test]
fn tracker_hide_only_changes_the_transfer_ips_address() {
    let mut w = world();
    let mut u = user(2);
    u.tracker_hide = true;
    let done = w.ok(&u, &request(1, 0, 0, 0), T0);
    assert!(matches!(done.deltas.transfer_ip, TransferIp::V4(row) if row.ip == 2_130_706_433));
    let (_, peers) = w.announce_as(&user(3), &request(2, 5, 0, 0), T0).unwrap();
    assert_eq!(peers[0].v4, Some((Ipv4Addr::new(1, 2, 3, 4), 6881)));
    // Over IPv6 the row goes to transfer_ips6 and hides behind ::1.
    let mut over_v6 = request(1, 0, 0, 0);
    over_v6.ip = IpAddr::V6("2a00::1".parse().unwrap());
    let done = w.ok(&u, &over_v6, T0 + 1);
    assert!(
        matches!(done.deltas.transfer_ip, TransferIp::V6(row) if row.ip == Ipv6Addr::LOCALHOST.octets())
    );
}

#[test]
fn a_mapped_address_is_ipv4_in_the_swarm_and_the_rows() {
    let mut w = world();
    let mut req = request(1, 0, 0, 0);
    req.ip = IpAddr::V6("::ffff:5.6.7.8".parse().unwrap());
    let done = w.ok(&user(1), &req, T0);
    assert!(matches!(done.deltas.transfer_ip, TransferIp::V4(row) if row.ip == 0x0506_0708));
    let (_, peers) = w.announce_as(&user(2), &request(2, 5, 0, 0), T0).unwrap();
    assert_eq!(
        (peers[0].v4, peers[0].v6),
        (Some((Ipv4Addr::new(5, 6, 7, 8), 6881)), None)
    );
}

#[test]
fn a_dual_stack_client_is_one_peer_counted_once() {
    // BEP 7: the same peer_id and counters announced over IPv4 and then IPv6.
    let mut w = world();
    let u = user(1);
    let v4 = request(1, 100, 0, 0);
    let mut v6 = v4.clone();
    v6.ip = IpAddr::V6("2a00::1".parse().unwrap());
    w.ok(&u, &v4, T0);
    let first = w.ok(&u, &v6, T0 + 1);
    assert_eq!((first.complete, first.incomplete), (0, 1));
    assert_eq!(first.deltas.user, None, "nothing new to credit");
    assert!(
        matches!(first.deltas.transfer_ip, TransferIp::V6(row) if row.ip == Ipv6Addr::from([0x2a00, 0, 0, 0, 0, 0, 0, 1]).octets())
    );
    // 60 s later both announce the same new counters: credited once, timed once.
    let mut v4_later = request(1, 50, 10, 50);
    v4_later.ip = v4.ip;
    let mut v6_later = v4_later.clone();
    v6_later.ip = v6.ip;
    let a = w.ok(&u, &v4_later, T0 + 60);
    let b = w.ok(&u, &v6_later, T0 + 61);
    assert_eq!(a.deltas.user.map(|d| (d.rawup, d.rawdl)), Some((10, 50)));
    assert_eq!(b.deltas.user, None);
    assert_eq!(
        (a.deltas.history.active_time, b.deltas.history.active_time),
        (59, 1)
    );
    // `completed` over both families is one completion; a repeat over the family
    // that counted it counts again (SPEC §5.10).
    let mut done_v4 = request(1, 0, 10, 100);
    done_v4.event = Event::Completed;
    let mut done_v6 = done_v4.clone();
    done_v6.ip = v6.ip;
    let snatches = [
        w.ok(&u, &done_v4, T0 + 70),
        w.ok(&u, &done_v6, T0 + 71),
        w.ok(&u, &done_v4, T0 + 72),
    ]
    .map(|a| {
        (
            a.deltas.torrent.snatched,
            a.deltas.snatch.is_some(),
            a.downloaded,
        )
    });
    assert_eq!(snatches, [(1, true, 11), (0, false, 11), (1, true, 12)]);
    // A leecher asking sees the peer once, with both endpoints.
    let (_, peers) = w
        .announce_as(&user(2), &request(9, 5, 0, 0), T0 + 62)
        .unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].v4, Some((Ipv4Addr::new(1, 2, 3, 4), 6881)));
    assert_eq!(peers[0].v6, Some(("2a00::1".parse().unwrap(), 6881)));
}

#[test]
fn same_peer_id_for_two_users_is_two_peers() {
    let mut w = world();
    w.ok(&user(1), &request(1, 0, 0, 0), T0);
    let done = w.ok(&user(2), &request(1, 0, 0, 0), T0);
    assert_eq!(done.complete, 2);
}

#[test]
fn scrape_filters_unknown_and_download_disabled_and_dedups() {
    let w = world_with(1, 1.0, 1.0);
    let mut files = Vec::new();
    scrape(
        &w.catalogue.load(),
        &w.swarms,
        &w.hit_and_runs,
        &user(1),
        &[HASH, InfoHash([1; 20]), HASH],
        Elsewhere::Nowhere,
        &mut files,
    );
    assert_eq!(
        files,
        vec![ScrapeFile {
            info_hash: HASH,
            complete: 0,
            downloaded: 10,
            incomplete: 0
        }]
    );
    let mut blocked = user(2);
    blocked.disable_download = true;
    files.clear();
    scrape(
        &w.catalogue.load(),
        &w.swarms,
        &w.hit_and_runs,
        &blocked,
        &[HASH],
        Elsewhere::Nowhere,
        &mut files,
    );
    assert!(files.is_empty());
}

#[test]
fn a_tracker_among_several_scrapes_the_torrents_others_hold_from_the_database() {
    let mut w = world();
    let stored = StoredCounts {
        seeders: 7,
        leechers: 3,
    };
    let mut row = crate::tracker::catalogue::tests::row(3, 7, 0, 10);
    row.stored = stored;
    w.catalogue
        .store(Arc::new(Catalogue::from_rows(1, [0, 0], [row])));
    let scraped = |w: &World, elsewhere| {
        let mut files = Vec::new();
        let catalogue = w.catalogue.load();
        scrape(
            &catalogue,
            &w.swarms,
            &w.hit_and_runs,
            &user(1),
            &[HASH],
            elsewhere,
            &mut files,
        );
        files
            .iter()
            .map(|f| (f.complete, f.downloaded, f.incomplete))
            .collect::<Vec<_>>()
    };
    // No peers here: the counts its holder wrote; a lone tracker knows there are none.
    assert_eq!(scraped(&w, Elsewhere::Stored), [(7, 10, 3)]);
    assert_eq!(scraped(&w, Elsewhere::Nowhere), [(0, 10, 0)]);
    // Once this tracker holds the swarm, its own peers count, and its completion.
    let mut completed = request(1, 0, 0, 0);
    completed.event = Event::Completed;
    w.ok(&user(1), &completed, T0);
    assert_eq!(scraped(&w, Elsewhere::Stored), [(1, 11, 0)]);
}

mod gauges {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever mix of announces (new peers, other families, stops, completions,
        /// evictions) and purges, the gauges equal a count of the swarm.
        #[test]
        fn the_gauges_equal_a_recount(
            steps in proptest::collection::vec(
                (0u32..3, 0u8..8, any::<bool>(), 0u8..4, any::<bool>(), 0u8..10),
                1..150,
            )
        ) {
            let mut w = world();
            w.settings.peers_per_user = 3;
            for (n, (who, peer, v6, event, seeding, purge)) in steps.into_iter().enumerate() {
                let now = T0 + n as i64 * 10;
                if purge == 0 {
                    // Peers not seen for 200 s go.
                    let gone = w.shard().get_mut(ID).map(|live| live.swarm.purge(now - 200));
                    w.peers.remove(gone.unwrap_or_default());
                } else {
                    let mut req = request(peer, if seeding { 0 } else { 500 }, 0, 0);
                    if v6 {
                        req.ip = IpAddr::V6(Ipv6Addr::new(0x2a00, 0, 0, 0, 0, 0, 0, 1));
                    }
                    req.event = match event {
                        0 => Event::Stopped,
                        1 => Event::Completed,
                        _ => Event::None,
                    };
                    w.ok(&user(who), &req, now);
                }
                let counts = w.peers.counts();
                prop_assert_eq!((counts.peers, counts.ipv4, counts.ipv6), recount(&w), "step {}", n);
            }
        }
    }
}
