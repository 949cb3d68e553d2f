//! Micro-benchmarks of the announce hot path, without network or database:
//! query parsing, the announce itself on a large swarm, response encoding, and the
//! accounting sink. `cargo bench --bench hot_path`.

use std::net::Ipv4Addr;

use arc_swap::ArcSwap;
use chihaya::accounting::Sink;
use chihaya::config::ChannelsConfig;
use chihaya::http::query::{announce_request, Query};
use chihaya::http::response::{self, PeerFormat};
use chihaya::metrics::Metrics;
use chihaya::tracker::{
    announce, announce_with, Catalogue, ClientId, Clients, GroupFreeleech, GroupId, HitAndRuns,
    InfoHash, Peer, PeerChange, PeerGauges, PeerId, PeerKey, Settings, Swarms, TorrentId,
    TorrentMeta, TorrentRow, TorrentType, TransferIp, User, UserId, View,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const HASH: InfoHash = InfoHash([0x5a; 20]);
const PEERS: u32 = 3000;

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn peer_id(n: u32) -> [u8; 20] {
    let mut id = *b"-TR2940-000000000000";
    id[12..16].copy_from_slice(&n.to_be_bytes());
    id
}

/// The query a real client sends for peer `n`.
fn query(n: u32, uploaded: u64) -> String {
    format!(
        "info_hash={}&peer_id={}&port={}&uploaded={uploaded}&downloaded=0&left={}&corrupt=0&key=ABCDEF&numwant=50&compact=1&no_peer_id=1",
        escape(&HASH.0),
        escape(&peer_id(n)),
        6881 + (n % 1000),
        if n % 10 < 7 { 1000 } else { 0 },
    )
}

struct World {
    clients: Clients,
    hit_and_runs: HitAndRuns,
    group_freeleech: GroupFreeleech,
    catalogue: ArcSwap<Catalogue>,
    swarms: Swarms,
    peers: PeerGauges,
    settings: Settings,
}

fn world() -> World {
    let row = TorrentRow {
        id: TorrentId(1),
        info_hash: HASH,
        meta: TorrentMeta {
            group_id: GroupId(1),
            torrent_type: TorrentType::Anime,
            up_multiplier: 1.0,
            down_multiplier: 1.0,
        },
        snatched: 0,
        status: 0,
        stored: Default::default(),
    };
    World {
        clients: Clients::new(vec![(b"-TR".to_vec().into(), ClientId(1))]),
        hit_and_runs: HitAndRuns::default(),
        group_freeleech: GroupFreeleech::default(),
        catalogue: ArcSwap::from_pointee(Catalogue::from_rows(1, [0, 0], [row])),
        swarms: Swarms::default(),
        peers: PeerGauges::default(),
        settings: Settings {
            announce_interval: 1800,
            min_announce_interval: 900,
            announce_drift: 300,
            peer_inactivity: 3900,
            default_numwant: 25,
            max_numwant: 50,
            scrape_interval: 900,
            peers_per_user: 10,
            max_transfer_rate: 10 << 30,
        },
    }
}

fn user(n: u32) -> User {
    User {
        id: UserId(n),
        up_multiplier: 1.0,
        down_multiplier: 1.0,
        disable_download: false,
        tracker_hide: false,
    }
}

fn hot_path(c: &mut Criterion) {
    let w = world();
    let view = View {
        clients: &w.clients,
        hit_and_runs: &w.hit_and_runs,
        group_freeleech: &w.group_freeleech,
        global_freeleech: false,
        catalogue: &w.catalogue,
        swarms: &w.swarms,
        peers: &w.peers,
    };
    let metrics = Metrics::new(&ChannelsConfig::default());
    let sink = Sink::new(&ChannelsConfig::default(), &metrics);
    let mut rng = SmallRng::seed_from_u64(7);
    let queries: Vec<String> = (0..PEERS).map(|n| query(n, 0)).collect();
    // Fill the swarm: every peer announces once.
    let mut peers = Vec::new();
    for (n, q) in queries.iter().enumerate() {
        let parsed = Query::parse(q.as_bytes()).unwrap();
        let (request, _) =
            announce_request(&parsed, false, || Ok(Ipv4Addr::new(10, 0, 0, 1).into())).unwrap();
        peers.clear();
        announce(
            &w.settings,
            &view,
            &user(n as u32 % 500),
            &request,
            1,
            &mut rng,
            &mut peers,
        )
        .unwrap();
    }

    c.bench_function("parse_query", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 1) % queries.len();
            let parsed = Query::parse(black_box(queries[n].as_bytes())).unwrap();
            black_box(announce_request(&parsed, false, || Ok(Ipv4Addr::LOCALHOST.into())).unwrap());
        })
    });

    c.bench_function("announce_3000_peer_swarm", |b| {
        let mut n = 0usize;
        let mut now = 2;
        b.iter(|| {
            n = (n + 1) % queries.len();
            now += 1;
            let parsed = Query::parse(queries[n].as_bytes()).unwrap();
            let (request, _) =
                announce_request(&parsed, false, || Ok(Ipv4Addr::new(10, 0, 0, 1).into())).unwrap();
            peers.clear();
            black_box(
                announce(
                    &w.settings,
                    &view,
                    &user(n as u32 % 500),
                    &request,
                    now,
                    &mut rng,
                    &mut peers,
                )
                .unwrap(),
            );
        })
    });

    c.bench_function("full_path_parse_announce_encode_record", |b| {
        let mut n = 0usize;
        let mut now = 1_000_000;
        let mut body = Vec::with_capacity(512);
        b.iter(|| {
            n = (n + 1) % queries.len();
            now += 1;
            let parsed = Query::parse(queries[n].as_bytes()).unwrap();
            let (request, _) =
                announce_request(&parsed, false, || Ok(Ipv4Addr::new(10, 0, 0, 1).into())).unwrap();
            peers.clear();
            let done = announce_with(
                &w.settings,
                &view,
                &user(n as u32 % 500),
                &request,
                now,
                &mut rng,
                &mut peers,
                |change, deltas| sink.record(change, deltas),
            )
            .unwrap();
            body.clear();
            response::announce(&mut body, &done, &peers, PeerFormat::Compact);
            black_box(&body);
        })
    });

    // Keep the sink from growing without bound across the benchmark.
    for _ in sink.users.take() {}

    let done = {
        let parsed = Query::parse(queries[1].as_bytes()).unwrap();
        let (request, _) =
            announce_request(&parsed, false, || Ok(Ipv4Addr::LOCALHOST.into())).unwrap();
        peers.clear();
        announce(
            &w.settings,
            &view,
            &user(1),
            &request,
            5_000_000,
            &mut rng,
            &mut peers,
        )
        .unwrap()
    };
    c.bench_function("encode_response_50_compact_peers", |b| {
        let mut body = Vec::with_capacity(512);
        b.iter(|| {
            body.clear();
            response::announce(&mut body, black_box(&done), &peers, PeerFormat::Compact);
            black_box(&body);
        })
    });

    c.bench_function("sink_record", |b| {
        let sink = Sink::new(&ChannelsConfig::default(), &metrics);
        let peer = Peer::at(Ipv4Addr::LOCALHOST.into(), 6881, 5_000_000);
        let change = PeerChange {
            torrent: TorrentId(1),
            key: PeerKey {
                user: UserId(1),
                peer_id: PeerId([7; 20]),
            },
            peer: Some((&peer, false)),
            evicted: &[],
        };
        let mut deltas = done.deltas;
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) % 100_000;
            deltas.history.user = UserId(n);
            if let TransferIp::V4(row) = &mut deltas.transfer_ip {
                row.user = UserId(n);
            }
            deltas.torrent.id = TorrentId(n % 10_000);
            sink.record(&change, black_box(&deltas));
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = hot_path
}
criterion_main!(benches);
