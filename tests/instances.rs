//! Several trackers on one database (`instance`, README "Scaling out"): each keeps its
//! own commit markers and journal id, so that a restart of one replays its own journal
//! against its own markers, and the users' rows they both write add up.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::process::{pin_addr, Process, ANY_PORT};
use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// One instance's files: its config (flushing every second) and working directory.
struct Instance {
    dir: TempDir,
    config: PathBuf,
}

impl Instance {
    fn new(name: &'static str) -> Instance {
        let dir = TempDir::new(&format!("instance-{name}"));
        let config = dir.0.join("config.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"addr": "{ANY_PORT}", "instance": "{name}", "intervals": {{"announce_drift": 0, "flush": 1, "database_reload": 3600}}}}"#
            ),
        )
        .unwrap();
        Instance { dir, config }
    }

    /// Starts in its own directory, with `journal` as its journal.
    fn start_with_journal(&self, dsn: &str, journal: &str) -> Process {
        let cwd = self.dir.0.clone();
        Process::start_with(&self.config, dsn, &["--journal", journal], |command| {
            command.current_dir(&cwd);
        })
    }

    /// Starts and waits until it serves; the first start pins its port for the next.
    fn start(&self, dsn: &str) -> (Process, std::net::SocketAddr) {
        let mut process = self.start_with_journal(dsn, "journal");
        let addr = process.wait_ready(WAIT);
        pin_addr(&self.config, addr);
        (process, addr)
    }
}

async fn answered(addr: std::net::SocketAddr, announce: &Announce) {
    let text = get(addr, &announce.target(), &[]).await.text();
    assert!(text.starts_with("d8:complete"), "{text}");
}

async fn user_1(db: &TestDb) -> Vec<Vec<String>> {
    db.rows("SELECT Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID = 1")
        .await
}

#[tokio::test]
async fn instances_keep_their_own_markers_and_journals_and_a_crash_counts_nothing_twice() {
    let db = TestDb::new().await;
    let (a, b) = (Instance::new("a"), Instance::new("b"));
    let (mut tracker_a, addr_a) = a.start(&db.dsn());
    let (mut tracker_b, addr_b) = b.start(&db.dsn());

    // User 1 transfers on torrent 3 through a and on torrent 2 through b.
    let on_3 = Announce::new(PASSKEY_1, HASH_3, "a", 100);
    let on_2 = Announce::new(PASSKEY_1, HASH_2, "b", 100);
    answered(addr_a, &on_3).await;
    answered(addr_b, &on_2).await;
    answered(addr_a, &on_3.clone().transfer(100, 10)).await;
    answered(addr_b, &on_2.clone().transfer(1000, 20)).await;
    // Torrent 3: up ×2, down ×0 (group freeleech); torrent 2: up ×0.5, down ×2.
    let expected = [["700", "40", "1100", "30"]];
    let written = eventually(WAIT, || async { user_1(&db).await == expected }).await;
    assert!(written, "{:?}", user_1(&db).await);

    // Each instance has its own markers and journal id; no unnamed ones.
    let writers = db
        .rows("SELECT writer FROM chihaya_commits WHERE writer LIKE '%users' OR writer LIKE '%journal_id' ORDER BY writer")
        .await;
    assert_eq!(
        writers,
        [["a/journal_id"], ["a/users"], ["b/journal_id"], ["b/users"]]
    );
    let ids = db
        .rows("SELECT epoch FROM chihaya_commits WHERE writer LIKE '%/journal_id'")
        .await;
    assert_ne!(ids[0], ids[1], "one journal id per instance");

    // Both die; each restart replays its own journal and writes nothing twice.
    tracker_a.kill();
    tracker_b.kill();
    let (mut tracker_a, _) = a.start(&db.dsn());
    let (mut tracker_b, _) = b.start(&db.dsn());
    for tracker in [&mut tracker_a, &mut tracker_b] {
        tracker.signal("TERM");
    }
    let (status_a, log_a) =
        tokio::task::spawn_blocking(move || (tracker_a.wait(WAIT), tracker_a.log_text()))
            .await
            .unwrap();
    let (status_b, log_b) =
        tokio::task::spawn_blocking(move || (tracker_b.wait(WAIT), tracker_b.log_text()))
            .await
            .unwrap();
    assert_eq!(status_a.code(), Some(0), "{log_a}");
    assert_eq!(status_b.code(), Some(0), "{log_b}");
    assert_eq!(user_1(&db).await, expected);

    // One instance's journal is not another's: a given b's journal refuses to start.
    let journal_b = b.dir.0.join("journal");
    let mut wrong = a.start_with_journal(&db.dsn(), journal_b.to_str().unwrap());
    let log = tokio::task::spawn_blocking(move || (wrong.wait(WAIT), wrong.log_text()))
        .await
        .unwrap();
    assert_eq!(log.0.code(), Some(1), "{}", log.1);
    assert!(log.1.contains("belongs to another database"), "{}", log.1);
}

/// Reloads and flushes only when asked.
fn sharded(name: &str) -> String {
    format!(
        r#"{{"instance": "{name}", "intervals": {{"announce_drift": 0, "flush": 3600, "database_reload": 3600}}}}"#
    )
}

#[tokio::test]
async fn an_instance_back_from_an_absence_credits_nothing_another_credited() {
    let db = TestDb::new().await;
    let dsn = db.dsn();
    let a = TestTracker::on(db, &sharded("a")[1..sharded("a").len() - 1]).await;
    // b shares a's database.
    let loaded = chihaya::config::Config::from_parts(Some(&sharded("b")), Some(&dsn)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b_dir = TempDir::new("instance-b");
    let b = chihaya::server::app::Tracker::start(loaded.config, b_dir.files(), Some(listener))
        .await
        .unwrap();

    // A seeder on torrent 3 announces to a, then (a out of the ring) twice to b, which
    // credits its second announce; then to a again, once a's clock is min_announce on.
    let seed = Announce::new(PASSKEY_1, HASH_3, "s", 0);
    answered(a.addr, &seed.clone().transfer(0, 0)).await;
    answered(a.addr, &seed.clone().transfer(1000, 0)).await;
    answered(b.addr, &seed.clone().transfer(2000, 0)).await;
    answered(b.addr, &seed.clone().transfer(3000, 0)).await;
    a.tracker().shared.clock.advance(Duration::from_secs(900));
    answered(a.addr, &seed.clone().transfer(4000, 0)).await;
    a.flush().await;
    assert!(b.flush(WAIT).await);
    // 1,000 through a, 1,000 through b; not the 3,000 a's stale baseline would give.
    let rawup = a.db.rows("SELECT rawup FROM users_main WHERE ID = 1").await;
    assert_eq!(rawup, [["2000"]]);

    // A peer announcing within min_announce keeps its baseline (the test's own
    // seconds count too).
    a.tracker().shared.clock.advance(Duration::from_secs(800));
    answered(a.addr, &seed.clone().transfer(4500, 0)).await;
    a.flush().await;
    let rawup = a.db.rows("SELECT rawup FROM users_main WHERE ID = 1").await;
    assert_eq!(rawup, [["2500"]]);
    b.shutdown(WAIT).await;
    a.stop().await;
}
