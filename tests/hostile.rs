//! A member with a valid passkey trying what the tracker lets them: absurd counters,
//! rows the database refuses, peer floods, request floods, and the metrics endpoint as
//! a CPU amplifier. None of it may delay or cost any other member. Real server on
//! 127.0.0.1, real MariaDB.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use chihaya::accounting::Kind;
use common::prom::{parse, Exposition};
use common::*;

fn strings(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| row.iter().map(|v| (*v).to_owned()).collect())
        .collect()
}

async fn metrics(t: &TestTracker) -> Exposition {
    let r = get(t.addr, "/metrics", &[("Authorization", "Bearer t")]).await;
    assert_eq!(r.status, 200);
    parse(&r.text())
}

fn ok(r: &Response) -> bool {
    r.status == 200 && r.text().starts_with("d8:complete")
}

/// Flushes every 2 s, with the default retry settings.
const FAST_FLUSH: &str = r#""admin_token": "t", "intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 2}"#;

/// Two flush periods: how late an honest delta may land, whatever another member did.
const TWO_FLUSHES: Duration = Duration::from_secs(4);

/// Polls `sql` every 50 ms until it returns `want`; panics after `within`.
async fn rows_within(t: &TestTracker, sql: &str, want: &[&[&str]], within: Duration) {
    let want = strings(want);
    let deadline = Instant::now() + within;
    loop {
        let rows = t.db.rows(sql).await;
        if rows == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {rows:?} after {within:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_counters_are_not_credited_and_never_delay_anyone() {
    let t = TestTracker::with_config(FAST_FLUSH).await;
    let before =
        t.db.rows("SELECT Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID = 1")
            .await;
    // Two new peers of user 1, each jumping from 0 to 2^64 - 1, a flush apart.
    for tag in ["x1", "x2"] {
        let a = Announce::new(PASSKEY_1, HASH_3, tag, 1000);
        assert!(ok(&t.announce(&a).await));
        assert!(ok(&t
            .announce(&a.clone().transfer(u64::MAX, u64::MAX))
            .await));
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    // Another member's honest transfer lands within two flushes.
    let v = Announce::new(PASSKEY_2, HASH_3, "v", 0);
    t.announce(&v).await;
    t.announce(&v.clone().transfer(1000, 0)).await;
    rows_within(
        &t,
        "SELECT uploaded FROM transfer_history WHERE uid = 2 AND fid = 3",
        &[&["1000"]],
        TWO_FLUSHES,
    )
    .await;
    // The fixtures give user 2 rawup 2551 already.
    rows_within(
        &t,
        "SELECT rawup FROM users_main WHERE ID = 2",
        &[&["3551"]],
        TWO_FLUSHES,
    )
    .await;
    t.flush().await;
    // The claims were not credited, and nothing was refused or set aside.
    assert_eq!(
        t.db.rows("SELECT Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID = 1")
            .await,
        before
    );
    assert_eq!(
        t.db.rows("SELECT uploaded, downloaded FROM transfer_history WHERE uid = 1 AND fid = 3")
            .await,
        strings(&[&["0", "0"]])
    );
    let m = metrics(&t).await;
    assert_eq!(
        m.value("chihaya_implausible_deltas_total", &[("direction", "up")]),
        Some(2.0)
    );
    assert_eq!(
        m.value("chihaya_implausible_deltas_total", &[("direction", "down")]),
        Some(2.0)
    );
    assert_eq!(
        m.sum("chihaya_flush_retries_total", &[("reason", "data")]),
        0.0
    );
    assert!(!t.dir.files().spill.exists());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_saturate_at_what_each_column_holds() {
    let db = TestDb::new().await;
    db.exec(
        "UPDATE users_main SET Uploaded = 18446744073709551000, rawup = 18446744073709551000 \
         WHERE ID = 1",
    )
    .await;
    db.exec(
        "INSERT INTO transfer_history (uid, fid, uploaded, seedtime, activetime, snatched) \
         VALUES (1, 3, 9223372036854775000, 2147483646, 2147483646, 2147483647)",
    )
    .await;
    // The site's own narrower column: the limit comes from information_schema.
    db.exec("ALTER TABLE transfer_ips MODIFY uploaded int unsigned NOT NULL DEFAULT 0")
        .await;
    // No rate ceiling: the sums themselves must saturate.
    let t = TestTracker::on(
        db,
        r#""admin_token": "t", "limits": {"max_transfer_rate": 0}, "intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#,
    )
    .await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    t.announce(&a).await;
    // Two seconds of seeding, and 2^40 bytes (credited 2^41 under the group's up ×2).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(ok(&t
        .announce(&a.clone().transfer(1 << 40, 0).event("completed"))
        .await));
    t.flush().await;
    // The same again, on existing rows.
    assert!(ok(&t.announce(&a.clone().transfer(2 << 40, 0)).await));
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Uploaded, rawup FROM users_main WHERE ID = 1")
            .await,
        strings(&[&["18446744073709551615", "18446744073709551615"]])
    );
    assert_eq!(
        t.db.rows(
            "SELECT uploaded, seedtime, activetime, snatched FROM transfer_history \
             WHERE uid = 1 AND fid = 3"
        )
        .await,
        strings(&[&[
            "9223372036854775807",
            "2147483647",
            "2147483647",
            "2147483647"
        ]])
    );
    assert_eq!(
        t.db.rows("SELECT uploaded FROM transfer_ips WHERE uid = 1 AND fid = 3")
            .await,
        strings(&[&["4294967295"]])
    );
    let m = metrics(&t).await;
    assert_eq!(m.sum("chihaya_flush_retries_total", &[]), 0.0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_database_refuses_is_set_aside_at_once() {
    let db = TestDb::new().await;
    // transfer_history.uid is a signed INT: this user's rows are out of its range.
    db.exec("INSERT INTO users_main (ID, torrent_pass, Enabled) VALUES (3000000000, 'PoisonedPasskey00000000000000000', '1')")
        .await;
    let t = TestTracker::on(db, FAST_FLUSH).await;
    let poison = Announce::new("PoisonedPasskey00000000000000000", HASH_3, "p", 0);
    let honest = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    for a in [&poison, &honest] {
        t.announce(a).await;
    }
    for a in [&poison, &honest] {
        t.announce(&a.clone().transfer(10, 0)).await;
    }
    // In the same batch as the refused row, and still within two flushes: no back-off.
    rows_within(
        &t,
        "SELECT uid, uploaded FROM transfer_history WHERE fid = 3",
        &[&["1", "10"]],
        TWO_FLUSHES,
    )
    .await;
    t.flush().await;
    let spill = std::fs::read_to_string(&t.dir.files().spill).expect("spill file");
    let lines: Vec<serde_json::Value> = spill
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{spill}");
    assert_eq!(lines[0]["uid"], 3_000_000_000u64);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("1264"),
        "{spill}"
    );
    let stats = t.tracker().shared.sink.stats(Kind::TransferHistory);
    assert_eq!(stats.spilled.get(), 1);
    t.stop().await;
}

#[tokio::test]
async fn a_member_cannot_flood_a_swarm_with_peers() {
    let t = TestTracker::with_config(
        r#""admin_token": "t", "limits": {"user_peers_per_torrent": 3}, "intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#,
    )
    .await;
    let mut last = None;
    for n in 0..10 {
        let a = Announce::new(PASSKEY_1, HASH_3, &format!("p{n}"), 1000);
        last = Some(t.announce(&a).await);
    }
    // The flood only churned the flooder's own peers: three leechers remain.
    assert_eq!(
        last.map(|r| r.body),
        Some(announce_body(0, 0, 3, Some(b"0:")))
    );
    // Everyone else sees three of them.
    let seeder = t
        .announce(&Announce::new(PASSKEY_2, HASH_3, "s", 0).numwant(50))
        .await;
    let peer = [127, 0, 0, 1, 0xC8, 0xD5]; // 127.0.0.1:51413
    assert_eq!(
        seeder.body,
        announce_body(
            1,
            0,
            3,
            Some(&[b"18:".as_ref(), &peer, &peer, &peer].concat())
        )
    );
    let m = metrics(&t).await;
    assert_eq!(m.value("chihaya_peers_evicted_total", &[]), Some(7.0));
    assert_eq!(m.value("chihaya_peers", &[]), Some(4.0));
    t.stop().await;
}

#[tokio::test]
async fn a_member_over_its_request_budget_is_told_to_come_back_later() {
    let t = TestTracker::with_config(
        r#""admin_token": "t", "limits": {"user_requests_per_second": 1, "user_request_burst": 3}, "intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#,
    )
    .await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 1000);
    for _ in 0..3 {
        assert!(ok(&t.announce(&a).await));
    }
    let limited =
        b"d14:failure reason29:Too many requests - slow down8:intervali60e12:min intervali60e8:retry ini1ee";
    let r = t.announce(&a).await;
    assert_eq!((r.status, r.body.as_slice()), (200, limited.as_slice()));
    let scrape = t
        .get(&format!(
            "/{PASSKEY_1}/scrape?info_hash={}",
            escape(&unhex(HASH_3))
        ))
        .await;
    assert_eq!(scrape.body, limited);
    let own_metrics = t.get(&format!("/{PASSKEY_1}/metrics")).await;
    assert_eq!(own_metrics.status, 429);
    assert_eq!(own_metrics.header("retry-after"), Some("60"));
    // Another member is not affected.
    assert!(ok(&t
        .announce(&Announce::new(PASSKEY_2, HASH_3, "b", 0))
        .await));
    // A second later the budget has one request again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(ok(&t.announce(&a).await));
    assert_eq!(t.announce(&a).await.body, limited);
    let m = metrics(&t).await;
    assert_eq!(m.value("chihaya_rate_limited_total", &[]), Some(4.0));
    t.stop().await;
}

/// Holds the lock of every swarm shard (so of every torrent) on a thread of its own
/// until the returned sender is dropped.
fn hold_every_torrent(t: &TestTracker) -> mpsc::Sender<()> {
    let swarms = std::sync::Arc::clone(&t.tracker().shared.snapshots.swarms);
    let (locked_tx, locked) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let guards: Vec<_> = (0..chihaya::tracker::SHARDS)
            .filter_map(|at| swarms.shard_at(at))
            .collect();
        let _ = locked_tx.send(guards.len());
        let _ = released.recv();
    });
    assert_eq!(
        locked.recv().ok(),
        Some(chihaya::tracker::SHARDS),
        "every shard locked"
    );
    release
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_without_touching_any_torrent() {
    let t = TestTracker::with_config(FAST_FLUSH).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 1000))
        .await;
    t.announce(&Announce::new(PASSKEY_2, HASH_3, "b", 0).extra("&ip=2a00:1450:4001::1"))
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_2, "c", 1000))
        .await;
    // If a scrape of the metrics locked any torrent, it would wait for this thread.
    let release = hold_every_torrent(&t);
    let scrape = |target: String, admin: bool| {
        let addr = t.addr;
        async move {
            let auth = [("Authorization", "Bearer t")];
            let headers: &[(&str, &str)] = if admin { &auth } else { &[] };
            tokio::time::timeout(Duration::from_secs(3), get(addr, &target, headers))
                .await
                .expect("answered while every torrent is locked")
        }
    };
    let admin = parse(&scrape("/metrics".to_owned(), true).await.text());
    let user = parse(&scrape(format!("/{PASSKEY_1}/metrics"), false).await.text());
    drop(release);
    for m in [&admin, &user] {
        assert_eq!(m.value("chihaya_peers", &[]), Some(3.0));
        assert_eq!(
            m.value("chihaya_peer_endpoints", &[("family", "ipv4")]),
            Some(2.0)
        );
        assert_eq!(
            m.value("chihaya_peer_endpoints", &[("family", "ipv6")]),
            Some(1.0)
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_gauges_follow_a_torrent_leaving_the_catalogue() {
    let t = TestTracker::with_config(
        r#""admin_token": "t", "intervals": {"announce_drift": 0, "database_reload": 1, "flush": 3600}"#,
    )
    .await;
    for (hash, tag) in [(HASH_2, "a"), (HASH_2, "b"), (HASH_3, "c")] {
        assert!(ok(&t
            .announce(&Announce::new(PASSKEY_1, hash, tag, 1000))
            .await));
    }
    assert_eq!(metrics(&t).await.value("chihaya_peers", &[]), Some(3.0));
    t.db.exec("DELETE FROM torrents WHERE ID = 2").await;
    let gone = eventually(Duration::from_secs(5), || async {
        metrics(&t).await.value("chihaya_peers", &[]) == Some(1.0)
    })
    .await;
    assert!(gone, "torrent 2's peers left the gauge after the reload");
    let r = t
        .announce(&Announce::new(PASSKEY_1, HASH_2, "a", 1000))
        .await;
    assert_eq!(r.text(), failure_body("This torrent does not exist", 30));
    let counts = t.tracker().shared.snapshots.recount_peers();
    assert_eq!((counts.peers, counts.ipv4, counts.ipv6), (1, 1, 0));
    assert_eq!(metrics(&t).await.value("chihaya_peers", &[]), Some(1.0));
    t.stop().await;
}
