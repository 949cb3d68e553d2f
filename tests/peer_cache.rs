//! The peer cache across restarts (SPEC §10.2) and the `cc` tool (SPEC §10.3).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{pin_addr, Process, ANY_PORT};
use common::*;

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    dir: TempDir,
    config: PathBuf,
    cache: PathBuf,
    /// Bound by the first start (port 0), kept by the restarts.
    addr: std::sync::OnceLock<std::net::SocketAddr>,
}

impl Setup {
    fn new(tag: &str, intervals: &str) -> Setup {
        let dir = TempDir::new(tag);
        let config = dir.0.join("config.json");
        std::fs::write(
            &config,
            format!(r#"{{"addr": "{ANY_PORT}", "intervals": {{"announce_drift": 0{intervals}}}}}"#),
        )
        .unwrap();
        Setup {
            cache: dir.0.join("peer-cache.bin"),
            config,
            addr: std::sync::OnceLock::new(),
            dir,
        }
    }

    fn start(&self, db: &TestDb) -> Process {
        let cache = self.cache.to_str().unwrap().to_owned();
        let spill = self.dir.0.join("spill.jsonl").to_str().unwrap().to_owned();
        let mut process = Process::start(
            &self.config,
            &db.dsn(),
            &["--peer-cache", &cache, "--spill", &spill],
        );
        let bound = process.wait_ready(WAIT);
        if self.addr.set(bound).is_ok() {
            pin_addr(&self.config, bound);
        }
        process
    }

    /// Where the tracker serves (once started).
    fn addr(&self) -> std::net::SocketAddr {
        *self.addr.get().expect("started once")
    }
}

async fn stop(mut process: Process) -> String {
    process.signal("TERM");
    let (status, log) =
        tokio::task::spawn_blocking(move || (process.wait(WAIT), process.log_text()))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    log
}

fn seeder() -> Announce {
    Announce::new(PASSKEY_1, HASH_2, "seed", 0)
        .port(7001)
        .extra("&ip=1.2.3.4")
}

fn leecher() -> Announce {
    Announce::new(PASSKEY_2, HASH_2, "leech", 100)
        .port(7002)
        .extra("&ip=5.6.7.8")
}

#[tokio::test]
async fn swarms_survive_a_restart_through_the_cache() {
    let db = TestDb::new().await;
    let setup = Setup::new("restart", "");
    let tracker = setup.start(&db);
    assert!(tracker.log_text().contains(&format!(
        "Peer cache {} missing, starting empty",
        setup.cache.display()
    )));
    let r = get(setup.addr(), &seeder().target(), &[]).await;
    assert_eq!(r.body, announce_body(1, 0, 0, Some(b"0:")));
    let log = stop(tracker).await;
    assert!(log.contains("Serializing database to cache file"), "{log}");
    assert!(log.contains("Done serializing ("), "{log}");
    assert!(setup.cache.exists());

    // While the tracker was down the site changed torrent 2's snatch count.
    db.exec("UPDATE torrents SET Snatched = 40 WHERE ID = 2")
        .await;
    let tracker = setup.start(&db);
    assert!(
        tracker
            .log_text()
            .contains("Loaded 2 users, 1 torrents, 1 peers ("),
        "{}",
        tracker.log_text()
    );
    // The leecher gets the seeder at once, without the seeder announcing again.
    let r = get(setup.addr(), &leecher().target(), &[]).await;
    assert_eq!(
        r.body,
        announce_body(1, 40, 1, Some(b"6:\x01\x02\x03\x04\x1b\x59"))
    );
    stop(tracker).await;
}

/// The seeder again, over IPv6: the same peer, a second endpoint.
fn seeder_over_ipv6() -> Announce {
    Announce::new(PASSKEY_1, HASH_2, "seed", 0)
        .port(7003)
        .extra("&ip=2001:4860::1")
}

#[tokio::test]
async fn a_dual_stack_peer_keeps_both_endpoints_across_a_restart() {
    let db = TestDb::new().await;
    let setup = Setup::new("dual", "");
    let tracker = setup.start(&db);
    get(setup.addr(), &seeder().target(), &[]).await;
    get(setup.addr(), &seeder_over_ipv6().target(), &[]).await;
    stop(tracker).await;

    // The file holds one peer with both endpoints, each with its own port.
    let cache = setup.cache.to_str().unwrap();
    let (code, dump, err) = cc(&["dump", cache]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(json["version"], 2);
    let seeders = json["torrents"][HASH_2.to_lowercase()]["seeders"]
        .as_object()
        .unwrap();
    assert_eq!(seeders.len(), 1, "{dump}");
    let peer = seeders.values().next().unwrap();
    assert_eq!(peer["ipv4"]["ip"], "1.2.3.4", "{dump}");
    assert_eq!(peer["ipv4"]["port"], 7001, "{dump}");
    assert_eq!(peer["ipv6"]["ip"], "2001:4860::1", "{dump}");
    assert_eq!(peer["ipv6"]["port"], 7003, "{dump}");
    let v4_seen = peer["ipv4"]["last_announce"].as_i64().unwrap();
    let v6_seen = peer["ipv6"]["last_announce"].as_i64().unwrap();
    assert!(v4_seen > 1_600_000_000 && v6_seen >= v4_seen, "{dump}");
    let (_, stats, _) = cc(&["stats", cache]);
    assert!(
        stats.ends_with(
            "\"peers\":1,\"seeders\":1,\"leechers\":0,\"ipv4_endpoints\":1,\"ipv6_endpoints\":1}\n"
        ),
        "{stats}"
    );

    // After the restart a leecher gets the seeder over both families at once.
    let tracker = setup.start(&db);
    assert!(
        tracker
            .log_text()
            .contains("Loaded 2 users, 1 torrents, 1 peers ("),
        "{}",
        tracker.log_text()
    );
    let r = get(setup.addr(), &leecher().target(), &[]).await;
    let mut v6 = b"6:peers618:".to_vec();
    v6.extend_from_slice(
        &"2001:4860::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6.extend_from_slice(&7003u16.to_be_bytes());
    let mut want = announce_body(1, 0, 1, Some(b"6:\x01\x02\x03\x04\x1b\x59"));
    want.pop();
    want.extend_from_slice(&v6);
    want.push(b'e');
    assert_eq!(r.body, want, "{}", r.text());
    stop(tracker).await;
}

/// A version 1 cache file (one address per peer) as an older build wrote it: no
/// users, torrent 2 with an IPv4 seeder of user 1 and an IPv6 seeder of user 3 (a
/// leecher gets one seeder per user).
fn version_1_cache(now: i64) -> Vec<u8> {
    let mut out = b"CHYPEERS".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // users
    out.extend_from_slice(&1u32.to_le_bytes()); // torrents
    out.extend_from_slice(&unhex(HASH_2));
    out.extend_from_slice(&2u32.to_le_bytes()); // id
    out.extend_from_slice(&1u32.to_le_bytes()); // group id
    out.push(5);
    out.extend_from_slice(b"music");
    out.extend_from_slice(&0i32.to_le_bytes()); // status
    out.extend_from_slice(&0u32.to_le_bytes()); // snatched
    out.extend_from_slice(&now.to_le_bytes()); // last_action
    out.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
    out.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes()); // peers
    let v6: std::net::Ipv6Addr = "2001:4860::2".parse().unwrap();
    for (user, tag, family, address, port) in [
        (1u32, b"four", 4u8, vec![1, 2, 3, 4], 7001u16),
        (3, b"six_", 6, v6.octets().to_vec(), 7005),
    ] {
        let mut peer_id = *b"-TR2940-000000000000";
        peer_id[16..].copy_from_slice(tag);
        out.extend_from_slice(&peer_id);
        out.extend_from_slice(&user.to_le_bytes());
        out.push(1); // seeding
        out.push(family);
        out.extend_from_slice(&address);
        out.extend_from_slice(&port.to_le_bytes());
        for counter in [0u64, 0, 0] {
            out.extend_from_slice(&counter.to_le_bytes());
        }
        out.extend_from_slice(&now.to_le_bytes()); // start_time
        out.extend_from_slice(&now.to_le_bytes()); // last_announce
        out.extend_from_slice(&0u32.to_le_bytes()); // client id
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[tokio::test]
async fn a_version_1_cache_still_loads() {
    let db = TestDb::new().await;
    let setup = Setup::new("v1", "");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    std::fs::write(&setup.cache, version_1_cache(now)).unwrap();
    // `cc stats` says which version the file is in.
    let (code, out, err) = cc(&["stats", setup.cache.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("{\"version\":1,"), "{out}");
    let tracker = setup.start(&db);
    assert!(
        tracker
            .log_text()
            .contains("Loaded 0 users, 1 torrents, 2 peers ("),
        "{}",
        tracker.log_text()
    );
    let r = get(setup.addr(), &leecher().target(), &[]).await;
    let mut want = announce_body(2, 0, 1, Some(b"6:\x01\x02\x03\x04\x1b\x59"));
    want.pop();
    want.extend_from_slice(b"6:peers618:");
    want.extend_from_slice(
        &"2001:4860::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    want.extend_from_slice(&7005u16.to_be_bytes());
    want.push(b'e');
    assert_eq!(r.body, want, "{}", r.text());
    stop(tracker).await;
    // Written again by this build: version 2.
    let bytes = std::fs::read(&setup.cache).unwrap();
    assert_eq!(&bytes[8..12], &[2, 0, 0, 0]);
}

#[tokio::test]
async fn cached_torrents_gone_from_the_database_are_dropped() {
    let db = TestDb::new().await;
    let setup = Setup::new("gone", "");
    let tracker = setup.start(&db);
    get(setup.addr(), &seeder().target(), &[]).await;
    stop(tracker).await;
    db.exec("DELETE FROM torrents WHERE ID = 2").await;
    let tracker = setup.start(&db);
    let r = get(setup.addr(), &leecher().target(), &[]).await;
    assert_eq!(r.text(), failure_body("This torrent does not exist", 30));
    // A new torrent with the old hash is a new swarm.
    db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash) VALUES (20, 1, 'music', UNHEX('{HASH_2}'))"
    ))
    .await;
    stop(tracker).await;
    let tracker = setup.start(&db);
    let r = get(
        setup.addr(),
        &Announce::new(PASSKEY_1, HASH_2, "new", 100).target(),
        &[],
    )
    .await;
    assert_eq!(r.body, announce_body(0, 0, 1, Some(b"0:")));
    stop(tracker).await;
}

#[tokio::test]
async fn an_unusable_cache_is_a_warning_not_a_crash() {
    let db = TestDb::new().await;
    let setup = Setup::new("corrupt", "");
    let tracker = setup.start(&db);
    get(setup.addr(), &seeder().target(), &[]).await;
    stop(tracker).await;
    let good = std::fs::read(&setup.cache).unwrap();
    let mut flipped = good.clone();
    flipped[30] ^= 1;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            "CRC mismatch",
        ),
        ("flipped", flipped, "CRC mismatch"),
        (
            "magic",
            [b"XXXXXXXX".as_ref(), &good[8..]].concat(),
            "bad magic",
        ),
        (
            "future",
            [&good[..8], &[9, 0, 0, 0][..], &good[12..]].concat(),
            "unsupported version 9",
        ),
    ];
    for (what, bytes, reason) in cases {
        std::fs::write(&setup.cache, bytes).unwrap();
        // The journal would bring the swarm back by itself: this is about the cache.
        let journal = setup.cache.parent().unwrap().join("journal");
        let _ = std::fs::remove_dir_all(journal);
        let tracker = setup.start(&db);
        let log = tracker.log_text();
        let warning = format!("[W] Peer cache {} unusable (offset", setup.cache.display());
        assert!(
            log.contains(&warning) && log.contains(reason),
            "{what}: {log}"
        );
        let r = get(setup.addr(), &leecher().target(), &[]).await;
        assert_eq!(
            r.body,
            announce_body(0, 0, 1, Some(b"0:")),
            "{what}: started empty"
        );
        stop(tracker).await;
    }
}

#[tokio::test]
async fn the_cache_is_written_periodically() {
    let db = TestDb::new().await;
    let setup = Setup::new("periodic", r#", "database_serialize": 1"#);
    let mut tracker = setup.start(&db);
    get(setup.addr(), &seeder().target(), &[]).await;
    tracker.wait_for("Done serializing", Duration::from_secs(5));
    let stats = cc(&["stats", setup.cache.to_str().unwrap()]);
    assert_eq!(stats.0, 0);
    assert!(
        stats
            .1
            .contains("\"torrents\":1,\"peers\":1,\"seeders\":1,\"leechers\":0,\"ipv4_endpoints\":1,\"ipv6_endpoints\":0}"),
        "{}",
        stats.1
    );
    stop(tracker).await;
}

/// Runs `cc`, returning exit code, stdout and stderr.
fn cc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cc_stdin(args: &[&str], input: &[u8]) -> (i32, Vec<u8>) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cc"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// A cache with a few peers, one of them dual-stack, written by the tracker itself.
async fn tracker_cache(dir_tag: &str) -> (Setup, TestDb) {
    let db = TestDb::new().await;
    let setup = Setup::new(dir_tag, "");
    let tracker = setup.start(&db);
    get(setup.addr(), &seeder().target(), &[]).await;
    get(setup.addr(), &seeder_over_ipv6().target(), &[]).await;
    get(setup.addr(), &leecher().target(), &[]).await;
    get(
        setup.addr(),
        &Announce::new(PASSKEY_1, HASH_3, "other", 10).target(),
        &[],
    )
    .await;
    stop(tracker).await;
    (setup, db)
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[tokio::test]
async fn cc_dump_restore_round_trip_is_byte_identical() {
    let (setup, _db) = tracker_cache("ccdump").await;
    let cache = setup.cache.to_str().unwrap();
    let dir = &setup.dir.0;
    let (code, dump, err) = cc(&["dump", cache]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty());
    assert!(dump.starts_with("{\n  \"torrents\": {\n"), "{dump}");
    assert!(dump.contains(&format!("\"{PASSKEY_1}\": {{")), "{dump}");
    assert!(
        dump.contains(
            "\"ipv4\": {\n            \"ip\": \"1.2.3.4\",\n            \"last_announce\": "
        ),
        "{dump}"
    );
    assert!(dump.contains("\"port\": 7001\n"), "{dump}");
    assert!(
        dump.contains("\"ipv6\": {\n            \"ip\": \"2001:4860::1\",\n"),
        "{dump}"
    );
    std::fs::write(dir.join("dump.json"), &dump).unwrap();

    let (code, out, err) = cc(&[
        "restore",
        &path(dir, "dump.json"),
        &path(dir, "restored.bin"),
    ]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", ""),
        "restore prints nothing"
    );
    let (_, again, _) = cc(&["dump", &path(dir, "restored.bin"), &path(dir, "again.json")]);
    assert!(again.is_empty());
    assert_eq!(
        std::fs::read_to_string(dir.join("again.json")).unwrap(),
        dump,
        "second dump identical"
    );

    // Through stdin and stdout too.
    let (code, bytes) = cc_stdin(&["restore", "-", "-"], dump.as_bytes());
    assert_eq!(code, 0);
    assert_eq!(bytes, std::fs::read(dir.join("restored.bin")).unwrap());
    let (code, text) = cc_stdin(&["dump", "-"], &bytes);
    assert_eq!((code, String::from_utf8(text).unwrap()), (0, dump.clone()));

    let (code, stats, _) = cc(&["stats", cache]);
    assert_eq!(code, 0);
    assert!(
        stats.ends_with(",\"users\":2,\"torrents\":2,\"peers\":3,\"seeders\":1,\"leechers\":2,\"ipv4_endpoints\":3,\"ipv6_endpoints\":1}\n"),
        "{stats}"
    );
}

#[tokio::test]
async fn cc_anonymize_scrubs_users_and_addresses() {
    let (setup, _db) = tracker_cache("ccanon").await;
    let dir = &setup.dir.0;
    let out = path(dir, "anon.bin");
    let (code, stdout, err) = cc(&["anonymize", setup.cache.to_str().unwrap(), &out]);
    assert_eq!((code, stdout.as_str(), err.as_str()), (0, "", ""));
    let (_, dump, _) = cc(&["dump", &out]);
    for secret in [
        PASSKEY_1,
        PASSKEY_2,
        "1.2.3.4",
        "5.6.7.8",
        "2001:4860::1",
        "\"tracker_hide\": true",
    ] {
        assert!(!dump.contains(secret), "{secret} left in {dump}");
    }
    let (_, stats, _) = cc(&["stats", &out]);
    assert!(
        stats.contains("\"users\":2,\"torrents\":2,\"peers\":3"),
        "{stats}"
    );
    // Each endpoint stays, with a new address of its family.
    assert!(
        stats.ends_with("\"ipv4_endpoints\":3,\"ipv6_endpoints\":1}\n"),
        "{stats}"
    );
}

#[test]
fn cc_errors_and_usage() {
    let dir = TempDir::new("ccerr");
    let missing = path(&dir.0, "missing.bin");
    let (code, out, err) = cc(&["stats", &missing]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.starts_with(&format!("cc: {missing}: ")), "{err}");

    std::fs::write(dir.0.join("junk.bin"), b"not a cache at all, clearly").unwrap();
    let (code, _, err) = cc(&["dump", &path(&dir.0, "junk.bin")]);
    assert_eq!(code, 1);
    assert!(err.contains("offset 0: bad magic"), "{err}");

    std::fs::write(
        dir.0.join("bad.json"),
        b"{\"torrents\": {}, \"users\": {}, \"version\": 2}",
    )
    .unwrap();
    let (code, _, err) = cc(&["restore", &path(&dir.0, "bad.json"), &path(&dir.0, "x.bin")]);
    assert_eq!(code, 1);
    assert!(err.contains("missing field `written_at`"), "{err}");
    assert!(!dir.0.join("x.bin").exists(), "nothing written on failure");

    for bad in [
        &["nope"][..],
        &[],
        &["restore", "only-one"],
        &["stats", "a", "b"],
    ] {
        let (code, out, err) = cc(bad);
        assert_eq!(code, 2, "{bad:?}");
        assert!(out.is_empty());
        assert!(err.contains("Usage"), "{bad:?}: {err}");
    }
    let (code, out, _) = cc(&["--help"]);
    assert_eq!(code, 0);
    for command in ["dump", "restore", "anonymize", "stats"] {
        assert!(out.contains(command));
    }
}
