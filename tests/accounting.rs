//! What reaches MariaDB after a flush (SPEC §8): exact rows in every table the tracker
//! writes, coalescing, multipliers, freeleech, TrackerHide, snatches, unprune, group
//! times, no phantom rows, and the purge of inactive peers.

mod common;

use std::time::Duration;

use chihaya::accounting::Kind;
use chihaya::server::state::unix_now;
use common::*;

/// Flushes only when asked (or at half capacity): deltas coalesce until then.
const MANUAL: &str =
    r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#;

fn strings(values: &[&str]) -> Vec<Vec<String>> {
    vec![values.iter().map(|v| (*v).to_owned()).collect()]
}

async fn one_row(db: &TestDb, sql: &str) -> Vec<String> {
    let mut rows = db.rows(sql).await;
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows.remove(0)
}

fn int(text: &str) -> i64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not an integer: {text}"))
}

#[tokio::test]
async fn users_main_gets_credited_and_raw_bytes_with_every_multiplier() {
    let t = TestTracker::with_config(MANUAL).await;
    // User 2 (down ×2, up ×0.5) leeches torrent 2 (down ×2, up ×0.5): its hit-and-run.
    let a = Announce::new(PASSKEY_2, HASH_2, "a", 1000);
    t.announce(&a.clone().transfer(100, 100)).await;
    t.announce(&a.clone().transfer(1101, 1101)).await;
    // User 1 on torrent 3, group freeleech down ×0, up ×2.
    let b = Announce::new(PASSKEY_1, HASH_3, "b", 1000);
    t.announce(&b).await;
    t.announce(&b.clone().transfer(10, 10)).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT ID, Uploaded, Downloaded, rawup, rawdl FROM users_main ORDER BY ID")
            .await,
        vec![
            vec!["1", "20", "0", "10", "10"],
            // 2551 + trunc(1001 × 0.5 × 0.5), 5 + 1001 × 2 × 2, raw added as is.
            vec!["2", "2801", "4009", "3552", "1006"],
            vec!["3", "12", "0", "12", "0"],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(str::to_owned).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    t.stop().await;
}

#[tokio::test]
async fn float_multipliers_are_read_as_their_decimal() {
    let db = TestDb::new().await;
    // FLOAT 0.7 read as "0.7": trunc(10 × 0.7 × 2) = 14; widened from f32 it would be 13.
    db.exec("UPDATE users_main SET UpMultiplier = 0.7 WHERE ID = 1")
        .await;
    let t = TestTracker::on(db, MANUAL).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 1000);
    t.announce(&a).await;
    t.announce(&a.clone().transfer(10, 0)).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Uploaded, rawup FROM users_main WHERE ID = 1")
            .await,
        strings(&["14", "10"])
    );
    t.stop().await;
}

#[tokio::test]
async fn later_rows_of_a_batch_keep_values_wider_than_the_first() {
    // One users_main statement for both users: user 1's row names and types the
    // columns, user 2's follows in the VALUES list with a 62-bit credit (beyond any
    // believable rate, so the ceiling is off here).
    let t = TestTracker::with_config(&format!(
        r#"{MANUAL}, "limits": {{"max_transfer_rate": 0}}"#
    ))
    .await;
    let small = Announce::new(PASSKEY_1, HASH_3, "a", 1000);
    t.announce(&small).await;
    t.announce(&small.clone().transfer(10, 10)).await;
    // User 2 seeds torrent 3: up ×0.5 (user) ×2 (group freeleech).
    let big = Announce::new(PASSKEY_2, HASH_3, "b", 0);
    t.announce(&big).await;
    t.announce(&big.clone().transfer(1 << 61, 0)).await;
    t.flush().await;
    let credited = 2551 + (1u64 << 61);
    assert_eq!(
        t.db.rows("SELECT ID, Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID < 3 ORDER BY ID")
            .await,
        vec![
            vec!["1".to_owned(), "20".into(), "0".into(), "10".into(), "10".into()],
            vec!["2".to_owned(), credited.to_string(), "5".into(), credited.to_string(), "5".into()],
        ]
    );
    t.stop().await;
}

#[tokio::test]
async fn global_freeleech_from_a_reload_zeroes_credited_download_only() {
    let t = TestTracker::with_config(
        r#""intervals": {"announce_drift": 0, "database_reload": 1, "flush": 3600}"#,
    )
    .await;
    t.db.exec("UPDATE mod_core SET mod_setting = 1 WHERE mod_option = 'global_freeleech'")
        .await;
    let snapshots = &t.tracker().shared.snapshots;
    assert!(
        eventually(Duration::from_secs(5), || async {
            snapshots.global_freeleech()
        })
        .await
    );
    let a = Announce::new(PASSKEY_1, HASH_2, "a", 1000);
    t.announce(&a).await;
    t.announce(&a.clone().transfer(10, 10)).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID = 1")
            .await,
        strings(&["5", "0", "10", "10"])
    );
    t.stop().await;
}

#[tokio::test]
async fn many_announces_coalesce_into_one_row_per_key() {
    let t = TestTracker::with_config(MANUAL).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    for n in 0..30u64 {
        t.announce(&a.clone().transfer(n * 10, 0)).await;
    }
    t.flush().await;
    let sink = &t.tracker().shared.sink;
    for kind in [
        Kind::Users,
        Kind::TransferHistory,
        Kind::TransferIps,
        Kind::Torrents,
    ] {
        let stats = sink.stats(kind);
        assert_eq!(
            (
                stats.rows_written.get(),
                stats.flush_seconds.get_sample_count()
            ),
            (1, 1),
            "{kind:?}"
        );
    }
    assert_eq!(
        t.db.rows("SELECT Uploaded, rawup FROM users_main WHERE ID = 1")
            .await,
        strings(&["580", "290"])
    );
    assert_eq!(
        t.db.rows(
            "SELECT uploaded, seeding, active FROM transfer_history WHERE uid = 1 AND fid = 3"
        )
        .await,
        strings(&["290", "1", "1"])
    );
    t.stop().await;
}

#[tokio::test]
async fn history_ips_and_torrent_rows_after_a_download() {
    let t = TestTracker::with_config(MANUAL).await;
    let before = unix_now();
    let a = Announce::new(PASSKEY_1, HASH_2, "a", 100)
        .port(6881)
        .extra("&ip=1.2.3.4");
    t.announce(&a).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.announce(&a.clone().transfer(5, 50).left(50)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done = t
        .announce(&a.clone().transfer(5, 100).left(0).event("completed"))
        .await;
    assert_eq!(done.body, announce_body(1, 1, 0, Some(b"0:")));
    let after = unix_now();
    t.flush().await;

    let h = one_row(
        &t.db,
        "SELECT uploaded, downloaded, seeding, starttime, last_announce, activetime, seedtime, hnr, \
         remaining, active, snatched, snatched_time FROM transfer_history WHERE uid = 1 AND fid = 2",
    )
    .await;
    let (start, last) = (int(&h[3]), int(&h[4]));
    assert!(
        before <= start && start + 2 <= last && last <= after,
        "{h:?}"
    );
    assert_eq!(&h[..3], ["5", "100", "1"]);
    assert_eq!(int(&h[5]), last - start, "active the whole time");
    assert!(
        int(&h[6]) >= 1 && int(&h[6]) < int(&h[5]),
        "seed time only for the last interval: {h:?}"
    );
    assert_eq!(&h[7..11], ["0", "0", "1", "1"]);
    assert_eq!(int(&h[11]), last, "snatched at the completing announce");

    let ip = one_row(
        &t.db,
        "SELECT ip, client_id, port, uploaded, downloaded, starttime, last_announce FROM transfer_ips \
         WHERE uid = 1 AND fid = 2",
    )
    .await;
    assert_eq!(&ip[..5], ["16909060", "1", "06881", "5", "100"]);
    assert_eq!((int(&ip[5]), int(&ip[6])), (start, last));

    let torrent = one_row(
        &t.db,
        "SELECT Seeders, Leechers, Snatched, last_action FROM torrents WHERE ID = 2",
    )
    .await;
    assert_eq!(&torrent[..3], ["1", "0", "1"]);
    assert_eq!(int(&torrent[3]), last);
    // Credited with torrent 2's multipliers (down ×2, up ×0.5).
    assert_eq!(
        t.db.rows("SELECT Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID = 1")
            .await,
        strings(&["2", "200", "5", "100"])
    );
    t.stop().await;
}

#[tokio::test]
async fn stopped_marks_history_inactive_and_counts_drop() {
    let t = TestTracker::with_config(MANUAL).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    t.announce(&a).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Seeders FROM torrents WHERE ID = 3").await,
        strings(&["1"])
    );
    t.announce(&a.clone().event("stopped")).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Seeders, Leechers FROM torrents WHERE ID = 3")
            .await,
        strings(&["0", "0"])
    );
    assert_eq!(
        t.db.rows("SELECT active, seeding FROM transfer_history WHERE uid = 1 AND fid = 3")
            .await,
        strings(&["0", "1"])
    );
    t.stop().await;
}

#[tokio::test]
async fn a_leecher_that_stops_finished_snatched_without_completed() {
    // aria2 with --seed-time=0 announces `started` with data left, then `stopped` with
    // left=0, and never `completed`.
    let t = TestTracker::with_config(MANUAL).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 1000);
    t.announce(&a.clone().event("started")).await;
    let stop = t
        .announce(&a.clone().transfer(0, 1000).left(0).event("stopped"))
        .await;
    assert_eq!(
        stop.text(),
        "d8:completei0e10:downloadedi1e10:incompletei0e8:intervali1800e12:min intervali900ee"
    );
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Snatched, Seeders, Leechers FROM torrents WHERE ID = 3")
            .await,
        strings(&["1", "0", "0"])
    );
    let row = one_row(
        &t.db,
        "SELECT snatched, snatched_time > 0, downloaded, remaining, active \
         FROM transfer_history WHERE uid = 1 AND fid = 3",
    )
    .await;
    assert_eq!(row, ["1", "1", "1000", "0", "0"]);
    t.stop().await;
}

#[tokio::test]
async fn tracker_hide_rows_record_localhost() {
    let t = TestTracker::with_config(MANUAL).await;
    t.announce(
        &Announce::new(PASSKEY_2, HASH_2, "a", 5)
            .port(7000)
            .extra("&ip=1.2.3.4"),
    )
    .await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT uid, fid, ip, client_id, port FROM transfer_ips WHERE uid = 2 AND fid = 2 ORDER BY client_id").await,
        vec![
            vec!["2", "2", "2130706433", "1", "07000"],
            vec!["2", "2", "2130706433", "2", "24727"],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(str::to_owned).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    t.stop().await;
}

#[tokio::test]
async fn the_first_snatch_time_stays() {
    let t = TestTracker::with_config(MANUAL).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 10);
    t.announce(&a).await;
    t.announce(&a.clone().left(0).event("completed")).await;
    t.flush().await;
    let first = one_row(
        &t.db,
        "SELECT snatched, snatched_time, starttime FROM transfer_history WHERE uid = 1 AND fid = 3",
    )
    .await;
    assert_eq!(first[0], "1");
    assert!(
        int(&first[1]) >= int(&first[2]) && int(&first[2]) > 0,
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.announce(&a.clone().left(0).event("completed")).await;
    t.flush().await;
    let second = one_row(
        &t.db,
        "SELECT snatched, snatched_time, starttime FROM transfer_history WHERE uid = 1 AND fid = 3",
    )
    .await;
    assert_eq!(
        second,
        vec!["2".to_owned(), first[1].clone(), first[2].clone()]
    );
    // An existing row's start time is not touched by a snatch.
    t.announce(&Announce::new(PASSKEY_2, HASH_2, "b", 0).event("completed"))
        .await;
    t.flush().await;
    let fixture = one_row(&t.db, "SELECT starttime, snatched, snatched_time > 0 FROM transfer_history WHERE uid = 2 AND fid = 2").await;
    assert_eq!(fixture, ["1585080851", "1", "1"]);
    assert_eq!(
        t.db.rows("SELECT Snatched FROM torrents WHERE ID = 3")
            .await,
        strings(&["2"])
    );
    t.stop().await;
}

#[tokio::test]
async fn deleted_users_and_torrents_get_no_phantom_rows() {
    let t = TestTracker::with_config(MANUAL).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    t.announce(&a).await;
    t.announce(&a.clone().transfer(10, 10)).await;
    t.db.exec("DELETE FROM users_main WHERE ID = 1; DELETE FROM torrents WHERE ID = 3")
        .await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT COUNT(*) FROM users_main WHERE ID = 1")
            .await,
        strings(&["0"])
    );
    assert_eq!(
        t.db.rows("SELECT COUNT(*) FROM torrents WHERE ID = 3")
            .await,
        strings(&["0"])
    );
    t.stop().await;
}

#[tokio::test]
async fn flush_groups_bumps_the_group_time_of_each_type() {
    let t = TestTracker::with_config(&format!(r#"{MANUAL}, "flush_groups": true"#)).await;
    let before = unix_now();
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await; // anime, group 2
    t.announce(&Announce::new(PASSKEY_1, HASH_2, "b", 0)).await; // music, group 1
    t.flush().await;
    let anime =
        t.db.rows("SELECT ID, Time FROM torrents_group ORDER BY ID")
            .await;
    assert_eq!(
        anime[0],
        ["1", "1592659152"],
        "group 1 holds no anime torrent that changed"
    );
    assert!(int(&anime[1][1]) >= before, "{anime:?}");
    let music = one_row(&t.db, "SELECT Time FROM torrents_group2 WHERE ID = 1").await;
    assert!(int(&music[0]) >= before);
    t.stop().await;

    let off = TestTracker::with_config(MANUAL).await;
    off.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0))
        .await;
    off.flush().await;
    assert_eq!(
        off.db
            .rows("SELECT Time FROM torrents_group WHERE ID = 2")
            .await,
        strings(&["1609032772"])
    );
    off.stop().await;
}

/// Purges only when asked (and once 2 s after start); peers go after a minute of
/// silence, which the tests make pass with the clock.
const PURGE_ASKED: &str = r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600, "peer_inactivity": 60, "purge_inactive_peers": 3600}"#;

/// Moves the tracker's clock past the inactivity of [`PURGE_ASKED`], purges, and
/// writes what the purge queued.
async fn a_minute_later_purge(t: &TestTracker) {
    t.tracker().shared.clock.advance(Duration::from_secs(61));
    t.tracker().purge_now().await;
    t.flush().await;
}

#[tokio::test]
async fn inactive_peers_are_purged_from_memory_and_marked_in_the_database() {
    let t = TestTracker::with_config(PURGE_ASKED).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await;
    t.flush().await;
    let active = "SELECT active FROM transfer_history WHERE uid = 1 AND fid = 3";
    assert_eq!(t.db.rows(active).await, strings(&["1"]));
    // Not yet idle for a minute: it stays.
    t.tracker().purge_now().await;
    t.flush().await;
    assert_eq!(t.db.rows(active).await, strings(&["1"]));
    a_minute_later_purge(&t).await;
    assert_eq!(t.db.rows(active).await, strings(&["0"]));
    assert_eq!(
        t.db.rows("SELECT Seeders FROM torrents WHERE ID = 3").await,
        strings(&["0"])
    );
    let r = t
        .get(&format!(
            "/{PASSKEY_1}/scrape?info_hash={}",
            escape(&unhex(HASH_3))
        ))
        .await;
    assert!(r.text().contains("8:completei0e"), "{}", r.text());
    assert_eq!(
        t.tracker().shared.snapshots.swarms.count(),
        0,
        "nothing live left"
    );
    t.stop().await;
}

#[tokio::test]
async fn the_purge_reads_only_its_own_rows_after_one_pass_over_the_table() {
    // Rows (1, 1) and (2, 1) were left active by an earlier process: no peer of theirs
    // is in memory, so no purge names them. The first purge's pass over the whole
    // table reaches them.
    let db = TestDb::new().await;
    db.exec("UPDATE transfer_history SET active = 1 WHERE fid = 1")
        .await;
    let t = TestTracker::on(db, PURGE_ASKED).await;
    let active = |uid: u32, fid: u32| {
        let db = &t.db;
        async move {
            db.rows(&format!(
                "SELECT active FROM transfer_history WHERE uid = {uid} AND fid = {fid}"
            ))
            .await
        }
    };
    t.tracker().purge_now().await;
    t.flush().await;
    assert_eq!(
        active(1, 1).await,
        strings(&["0"]),
        "the first purge's pass"
    );
    assert_eq!(active(2, 1).await, strings(&["0"]));
    // From now on a purge updates the rows of the peers it took out of memory, and
    // no other: an idle row it does not name stays as it is (until the next pass, an
    // hour later).
    t.db.exec("UPDATE transfer_history SET active = 1 WHERE uid = 1 AND fid = 1")
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await;
    t.announce(&Announce::new(PASSKEY_2, HASH_3, "b", 0)).await;
    t.flush().await;
    assert_eq!(active(1, 3).await, strings(&["1"]));
    a_minute_later_purge(&t).await;
    assert_eq!(
        active(1, 3).await,
        strings(&["0"]),
        "the purged peers' rows"
    );
    assert_eq!(active(2, 3).await, strings(&["0"]));
    assert_eq!(active(1, 1).await, strings(&["1"]), "a row no purge named");
    t.stop().await;
}

#[tokio::test]
async fn a_seeder_unprunes_and_the_row_is_updated() {
    let t = TestTracker::with_config(MANUAL).await;
    let leech = Announce::new(PASSKEY_1, HASH_1, "l", 9);
    let r = t.announce(&leech).await;
    assert_eq!(
        r.text(),
        failure_body("This torrent does not exist (status: 1, left: 9)", 300)
    );
    // Any event unprunes, even stopped.
    let r = t
        .announce(&Announce::new(PASSKEY_1, HASH_1, "s", 0).event("stopped"))
        .await;
    assert_eq!(r.body, announce_body(0, 2, 0, None));
    // Active at once in memory: leechers welcome.
    let r = t.announce(&leech).await;
    assert_eq!(r.body, announce_body(0, 2, 1, Some(b"0:")));
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Status FROM torrents WHERE ID = 1").await,
        strings(&["0"])
    );
    t.stop().await;
}

#[tokio::test]
async fn unprune_only_changes_a_torrent_still_pruned() {
    let t = TestTracker::with_config(MANUAL).await;
    // Staff set another status after the tracker loaded; the queued unprune must not
    // overwrite it.
    t.db.exec("UPDATE torrents SET Status = 5 WHERE ID = 1")
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_1, "s", 0)).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Status FROM torrents WHERE ID = 1").await,
        strings(&["5"])
    );
    t.stop().await;
}
