//! Reload (SPEC §7): changes in MariaDB take effect within one `database_reload`, and
//! announces keep being answered while reloads run.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const FAST: &str = r#""intervals": {"announce_drift": 0, "database_reload": 1}"#;
const NEW_PASSKEY: &str = "NewUserPasskey00000000000000000a";
const NEW_HASH: &str = "00112233445566778899AABBCCDDEEFF00112233";

async fn within_a_reload<F, Fut>(check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // One reload period plus the time a cycle takes.
    eventually(Duration::from_secs(4), check).await
}

#[tokio::test]
async fn users_added_changed_and_disabled() {
    let t = TestTracker::with_config(FAST).await;
    let new = Announce::new(NEW_PASSKEY, HASH_3, "n", 0);
    assert_eq!(
        t.announce(&new).await.text(),
        failure_body("Your passkey is invalid", 3600)
    );
    t.db.exec(&format!(
        "INSERT INTO users_main (ID, torrent_pass, Enabled) VALUES (4, '{NEW_PASSKEY}', '1')"
    ))
    .await;
    assert!(
        within_a_reload(|| async { t.announce(&new).await.text().starts_with("d8:complete") })
            .await
    );

    // User 2 loses its download restriction.
    let leech = Announce::new(PASSKEY_2, HASH_3, "l", 5);
    assert_eq!(
        t.announce(&leech).await.text(),
        failure_body("Your download privileges are disabled", 3600)
    );
    t.db.exec("UPDATE users_main SET DisableDownload = 0 WHERE ID = 2")
        .await;
    assert!(
        within_a_reload(|| async { t.announce(&leech).await.text().starts_with("d8:complete") })
            .await
    );

    // User 1 is disabled.
    let one = Announce::new(PASSKEY_1, HASH_3, "o", 0);
    assert!(t.announce(&one).await.text().starts_with("d8:complete"));
    t.db.exec("UPDATE users_main SET Enabled = '2' WHERE ID = 1")
        .await;
    assert!(
        within_a_reload(|| async {
            t.announce(&one).await.text() == failure_body("Your passkey is invalid", 3600)
        })
        .await
    );
    t.stop().await;
}

#[tokio::test]
async fn hit_and_runs_follow_the_users_whose_downloads_are_disabled() {
    // Only user 2's downloads are disabled: user 1's hit-and-runs change no answer and
    // are not loaded (a reload reads no user's rows but user 2's).
    let db = TestDb::new().await;
    db.exec("UPDATE transfer_history SET hnr = 1 WHERE uid = 1 AND fid = 1")
        .await;
    db.exec("INSERT INTO transfer_history (uid, fid, hnr) VALUES (1, 3, 1)")
        .await;
    let t = TestTracker::on(db, &format!(r#"{FAST}, "admin_token": "t0k3n""#)).await;
    let hnrs = || async {
        let r = get(t.addr, "/metrics", &[("Authorization", "Bearer t0k3n")]).await;
        prom::parse(&r.text()).value("chihaya_hnrs", &[])
    };
    assert_eq!(hnrs().await, Some(1.0));
    // User 1's downloads get disabled: it may still leech its hit-and-run (torrent 3),
    // and nothing else.
    t.db.exec("UPDATE users_main SET DisableDownload = 1 WHERE ID = 1")
        .await;
    let hnr = Announce::new(PASSKEY_1, HASH_3, "h", 5);
    let other = Announce::new(PASSKEY_1, HASH_2, "o", 5);
    assert!(
        within_a_reload(|| async {
            t.announce(&other).await.text()
                == failure_body("Your download privileges are disabled", 3600)
        })
        .await
    );
    assert!(within_a_reload(|| async { hnrs().await == Some(3.0) }).await);
    assert!(t.announce(&hnr).await.text().starts_with("d8:complete"));
    t.stop().await;
}

#[tokio::test]
async fn torrents_added_changed_and_removed_keep_swarms() {
    let t = TestTracker::with_config(FAST).await;
    let seed = Announce::new(PASSKEY_1, HASH_3, "s", 0);
    t.announce(&seed).await;

    let fresh = Announce::new(PASSKEY_1, NEW_HASH, "s", 0);
    assert_eq!(
        t.announce(&fresh).await.text(),
        failure_body("This torrent does not exist", 30)
    );
    t.db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash, Snatched) VALUES (9, 5, 'music', UNHEX('{NEW_HASH}'), 7)"
    ))
    .await;
    assert!(
        within_a_reload(|| async {
            t.announce(&fresh).await.body == announce_body(1, 7, 0, Some(b"0:"))
        })
        .await
    );

    // New metadata (snatched from the database) while the swarm stays.
    t.db.exec("UPDATE torrents SET Snatched = 40 WHERE ID = 3")
        .await;
    assert!(
        within_a_reload(|| async {
            t.announce(&seed).await.body == announce_body(1, 40, 0, Some(b"0:"))
        })
        .await
    );

    // Pruned by staff: seeders would unprune, leechers are refused.
    t.db.exec("UPDATE torrents SET Status = 1 WHERE ID = 9")
        .await;
    let fresh_leech = Announce::new(PASSKEY_1, NEW_HASH, "l", 5);
    assert!(
        within_a_reload(|| async {
            t.announce(&fresh_leech).await.text()
                == failure_body("This torrent does not exist (status: 1, left: 5)", 300)
        })
        .await
    );

    t.db.exec("DELETE FROM torrents WHERE ID = 9").await;
    assert!(
        within_a_reload(|| async {
            t.announce(&fresh).await.text() == failure_body("This torrent does not exist", 30)
        })
        .await
    );
    t.stop().await;
}

#[tokio::test]
async fn clients_added_and_archived() {
    let t = TestTracker::with_config(FAST).await;
    let mut qbit = Announce::new(PASSKEY_1, HASH_3, "q", 0);
    qbit.peer_id = *b"-qB4250-abcdefghijkl";
    let refused = failure_body(
        "Your client is not approved (peer_id: -qB4250-abcdefghijkl)",
        3600,
    );
    assert_eq!(t.announce(&qbit).await.text(), refused);
    t.db.exec("UPDATE approved_clients SET archived = 0 WHERE id = 2")
        .await;
    assert!(
        within_a_reload(|| async { t.announce(&qbit).await.text().starts_with("d8:complete") })
            .await
    );
    t.db.exec("UPDATE approved_clients SET archived = 1 WHERE id = 1")
        .await;
    let transmission = Announce::new(PASSKEY_1, HASH_3, "t", 0);
    assert!(
        within_a_reload(|| async {
            t.announce(&transmission).await.text()
                == failure_body(
                    "Your client is not approved (peer_id: -TR2940-00000000000t)",
                    3600,
                )
        })
        .await
    );
    t.stop().await;
}

#[tokio::test]
async fn announces_are_answered_while_reloads_run() {
    let t = TestTracker::with_config(FAST).await;
    // Enough torrents that a reload takes a noticeable moment.
    let mut sql =
        String::from("INSERT INTO torrents (ID, GroupID, TorrentType, info_hash) VALUES ");
    for id in 100..20_100u32 {
        if id > 100 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "({id}, {id}, 'anime', UNHEX('{:040X}'))",
            u128::from(id) << 16
        ));
    }
    t.db.exec(&sql).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for worker in 0..4u8 {
        let (stop, ok, bad, addr) = (stop.clone(), ok.clone(), bad.clone(), t.addr);
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let a = Announce::new(PASSKEY_1, HASH_3, &format!("w{worker}"), 0).transfer(n, 0);
                let r = get(addr, &a.target(), &[]).await;
                if r.status == 200 && r.text().starts_with("d8:complete") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Several reload cycles of the 20k-torrent table happen meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let grew =
        within_a_reload(|| async { t.tracker().shared.snapshots.catalogue.load().len() == 20_003 })
            .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(grew, "the big table was loaded");
    assert_eq!(bad.load(Ordering::Relaxed), 0);
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "announces kept flowing: {}",
        ok.load(Ordering::Relaxed)
    );
    // The swarm survived every reload.
    let r = t.announce(&Announce::new(PASSKEY_1, HASH_3, "w0", 0)).await;
    assert_eq!(r.body, announce_body(4, 0, 0, Some(b"0:")));
    t.stop().await;
}

/// Reloads only when a test asks (`reload_now`), flushes only when asked.
const ASKED: &str = r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#;

/// The `downloaded` a scrape of `hash` shows.
async fn downloaded(t: &TestTracker, hash: &str) -> String {
    let r = t
        .get(&format!(
            "/{PASSKEY_1}/scrape?info_hash={}",
            escape(&unhex(hash))
        ))
        .await;
    let text = r.text();
    let at = text.find("10:downloadedi").expect("a downloaded count") + 14;
    text[at..].split('e').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_torrent_load_that_fails_halfway_changes_nothing() {
    let t = TestTracker::with_config(ASKED).await;
    assert_eq!(downloaded(&t, HASH_3).await, "0");
    // The torrents query fails on the row of torrent 2, after the part holding
    // torrent 3 (each torrent is a part of its own here) has been read: the view
    // reads the real table and raises an error for ID 2.
    for sql in [
        "CREATE FUNCTION chihaya_test_fail(id INT) RETURNS INT DETERMINISTIC \
         BEGIN IF id = 2 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no torrent 2'; \
         END IF; RETURN 0; END",
        "RENAME TABLE torrents TO torrents_kept",
        "CREATE VIEW torrents AS SELECT ID, GroupID, TorrentType, info_hash, Leechers, \
         Seeders, last_action, Snatched + chihaya_test_fail(ID) AS Snatched, \
         DownMultiplier, UpMultiplier, Status FROM torrents_kept",
        // What the failing load would bring: torrent 3 pruned, and 77 snatches.
        "UPDATE torrents_kept SET Status = 1, Snatched = 77 WHERE ID = 3",
    ] {
        t.db.exec(sql).await;
    }
    t.tracker().reload_now().await;
    // Nothing of the load is taken: not the snatches, not the status.
    assert_eq!(downloaded(&t, HASH_3).await, "0");
    let leech = Announce::new(PASSKEY_1, HASH_3, "l", 5);
    assert!(t.announce(&leech).await.text().starts_with("d8:complete"));
    // Once the load succeeds, all of it is.
    t.db.exec("DROP VIEW torrents").await;
    t.db.exec("RENAME TABLE torrents_kept TO torrents").await;
    t.tracker().reload_now().await;
    assert_eq!(downloaded(&t, HASH_3).await, "77");
    assert_eq!(
        t.announce(&leech.clone().left(4)).await.text(),
        failure_body("This torrent does not exist (status: 1, left: 4)", 300)
    );
    t.stop().await;
}

#[tokio::test]
async fn downloaded_never_decreases_across_a_reload_with_a_completion_pending() {
    let t = TestTracker::with_config(ASKED).await;
    let peer = Announce::new(PASSKEY_1, HASH_3, "c", 5);
    t.announce(&peer).await;
    t.announce(&peer.clone().left(0).event("completed")).await;
    assert_eq!(downloaded(&t, HASH_3).await, "1");
    // The completion is not written yet: the catalogue says 0, and shows 1 anyway.
    t.tracker().reload_now().await;
    assert_eq!(downloaded(&t, HASH_3).await, "1");
    // Written; the catalogue of the reload after says 1: it is counted once.
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Snatched FROM torrents WHERE ID = 3")
            .await,
        vec![vec!["1".to_owned()]]
    );
    assert_eq!(downloaded(&t, HASH_3).await, "1");
    t.tracker().reload_now().await;
    assert_eq!(downloaded(&t, HASH_3).await, "1");
    // The site adds snatches of its own: they show after the next reload.
    t.db.exec("UPDATE torrents SET Snatched = Snatched + 5 WHERE ID = 3")
        .await;
    t.tracker().reload_now().await;
    assert_eq!(downloaded(&t, HASH_3).await, "6");
    t.stop().await;
}
