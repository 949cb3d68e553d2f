//! What announces hand to the accounting sink (SPEC §5.8–5.11), with the fixture
//! scenarios: multipliers, group and global freeleech, hit-and-runs, TrackerHide,
//! FLOAT multipliers, unprune written to the database.

mod common;

use std::time::Duration;

use chihaya::tracker::{TorrentId, TransferIpDelta, UserDelta, UserId};
use common::*;

/// Takes the pending users_main row of `id` (and drops the others).
fn user_row(t: &TestTracker, id: u32) -> Option<UserDelta> {
    t.tracker()
        .shared
        .sink
        .users
        .take()
        .into_iter()
        .find(|(key, _)| *key == UserId(id))
        // Compared without the key, which `credited` leaves at 0.
        .map(|(_, row)| UserDelta {
            id: UserId(0),
            ..row
        })
}

fn credited(uploaded: u64, downloaded: u64, rawup: u64, rawdl: u64) -> Option<UserDelta> {
    Some(UserDelta {
        id: UserId(0),
        uploaded,
        downloaded,
        rawup,
        rawdl,
    })
}

#[tokio::test]
async fn user_and_torrent_multipliers_multiply() {
    let t = TestTracker::start().await;
    // User 2 (down 2, up 0.5) leeches torrent 2 (down 2, up 0.5), allowed by its hit-and-run.
    let a = Announce::new(PASSKEY_2, HASH_2, "a", 1000);
    t.announce(&a.clone().transfer(100, 100)).await;
    assert_eq!(
        user_row(&t, 2),
        None,
        "a new peer's first announce credits nothing"
    );
    t.announce(&a.clone().transfer(1101, 1101)).await;
    assert_eq!(user_row(&t, 2), credited(250, 4004, 1001, 1001));
    t.stop().await;
}

#[tokio::test]
async fn group_freeleech_and_float_multipliers() {
    let t = TestTracker::start().await;
    // Torrent 3: group freeleech down 0, up 2.
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 1000);
    t.announce(&a).await;
    t.announce(&a.clone().transfer(10, 10)).await;
    assert_eq!(user_row(&t, 1), credited(20, 0, 10, 10));
    let db = t.stop().await;

    // 0.7 is stored as the FLOAT nearest 0.7; read as the decimal "0.7" it credits
    // trunc(10 × 0.7 × 2) = 14, where widening the f32 would give 13.
    db.exec("UPDATE users_main SET UpMultiplier = 0.7 WHERE ID = 1")
        .await;
    let t = TestTracker::on(db, "").await;
    t.announce(&a).await;
    t.announce(&a.clone().transfer(10, 0)).await;
    assert_eq!(user_row(&t, 1), credited(14, 0, 10, 0));
    t.stop().await;
}

#[tokio::test]
async fn global_freeleech_is_picked_up_by_reload() {
    let t = TestTracker::with_config(r#""intervals": {"announce_drift": 0, "database_reload": 1}"#)
        .await;
    let a = Announce::new(PASSKEY_1, HASH_2, "a", 1000);
    t.announce(&a).await;
    t.announce(&a.clone().transfer(10, 10)).await;
    assert_eq!(user_row(&t, 1), credited(5, 20, 10, 10));

    t.db.exec("UPDATE mod_core SET mod_setting = 1 WHERE mod_option = 'global_freeleech'")
        .await;
    let mut total = 10;
    let tracker = &t;
    let on = eventually(Duration::from_secs(5), || {
        total += 10;
        let next = a.clone().transfer(total, total);
        async move {
            tracker.announce(&next).await.status == 200
                && user_row(tracker, 1) == credited(5, 0, 10, 10)
        }
    })
    .await;
    assert!(
        on,
        "global freeleech within one reload: download free, upload still credited"
    );

    // No row at all means off.
    t.db.exec("DELETE FROM mod_core").await;
    let off = eventually(Duration::from_secs(5), || {
        total += 10;
        let next = a.clone().transfer(total, total);
        async move {
            tracker.announce(&next).await.status == 200
                && user_row(tracker, 1) == credited(5, 20, 10, 10)
        }
    })
    .await;
    assert!(off);
    t.stop().await;
}

#[tokio::test]
async fn tracker_hide_records_localhost_in_transfer_ips() {
    let t = TestTracker::start().await;
    t.announce(&Announce::new(PASSKEY_2, HASH_2, "a", 5).extra("&ip=1.2.3.4"))
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_2, "b", 5).extra("&ip=1.2.3.4"))
        .await;
    let mut rows = t.tracker().shared.sink.transfer_ips.take();
    rows.sort_by_key(|(key, _)| key.0);
    let keys: Vec<(u32, u32, u32, u32)> = rows
        .iter()
        .map(|((u, f, ip, c), _)| (u.0, f.0, *ip, c.0))
        .collect();
    assert_eq!(keys, vec![(1, 2, 16_909_060, 1), (2, 2, 2_130_706_433, 1)]);
    let row: &TransferIpDelta = &rows[1].1;
    assert_eq!(row.port, 51413);
    // TrackerHide hides nothing else: other peers get the real address.
    let r = t
        .announce(&Announce::new(PASSKEY_1, HASH_2, "b", 5).extra("&ip=1.2.3.4"))
        .await;
    assert!(
        r.body
            .windows(8)
            .any(|w| w == b"6:\x01\x02\x03\x04\xc8\xd5"),
        "{}",
        r.text()
    );
    t.stop().await;
}

#[tokio::test]
async fn every_successful_announce_queues_history_and_torrent_rows() {
    let t = TestTracker::start().await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 500);
    t.announce(&a).await;
    t.announce(&a.clone().left(0).event("completed").transfer(0, 500))
        .await;
    let sink = &t.tracker().shared.sink;
    let history = sink.history.take();
    assert_eq!(history.len(), 1);
    let (key, row) = history[0];
    assert_eq!(key, (UserId(1), TorrentId(3)));
    assert_eq!(
        (
            row.downloaded,
            row.snatched,
            row.seeding,
            row.remaining,
            row.active
        ),
        (500, 1, true, 0, true)
    );
    let torrents = sink.torrents.take();
    assert_eq!(torrents.len(), 1);
    let (id, row) = torrents[0];
    assert_eq!(
        (id, row.snatched, row.seeders, row.leechers),
        (TorrentId(3), 1, 1, 0)
    );
    assert!(row.last_action > 0);
    let snatches = sink.snatches.take();
    assert_eq!(snatches.len(), 1);
    assert_eq!(snatches[0].0, (UserId(1), TorrentId(3)));
    assert_eq!(
        snatches[0].1.start_time, row.last_action,
        "snatch carries the peer's start time"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_seeder_unprunes_and_the_row_is_updated() {
    let t = TestTracker::with_config(
        r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 1}"#,
    )
    .await;
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
    let written = eventually(Duration::from_secs(5), || async {
        t.db.rows("SELECT Status FROM torrents WHERE ID = 1").await == vec![vec!["0".to_owned()]]
    })
    .await;
    assert!(
        written,
        "Status written to the database within a flush period"
    );
    t.stop().await;
}

#[tokio::test]
async fn unprune_only_changes_a_torrent_still_pruned() {
    let t = TestTracker::with_config(
        r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 1}"#,
    )
    .await;
    // Staff set another status after the tracker loaded; the queued unprune must not
    // overwrite it.
    t.db.exec("UPDATE torrents SET Status = 5 WHERE ID = 1")
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_1, "s", 0)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        t.db.rows("SELECT Status FROM torrents WHERE ID = 1").await,
        vec![vec!["5".to_owned()]]
    );
    assert!(
        t.tracker().shared.sink.unprune.is_empty(),
        "written (as a no-op), not retried forever"
    );
    t.stop().await;
}
