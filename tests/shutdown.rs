//! Shutdown of the real binary (SPEC §9): a signal drains everything to MariaDB; when
//! MariaDB is unreachable the rows go to the spill file and come back at the next start.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::{pin_addr, Process, ANY_PORT};
use common::proxy::Proxy;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    dir: TempDir,
    config: PathBuf,
    spill: PathBuf,
    /// Bound by the first start (port 0), kept by the restarts.
    addr: std::sync::OnceLock<std::net::SocketAddr>,
}

impl Setup {
    /// A config that never flushes on its own: only the shutdown drain writes.
    fn new(tag: &str) -> Setup {
        Setup::with(tag, "")
    }

    fn with(tag: &str, extra: &str) -> Setup {
        let dir = TempDir::new(tag);
        let config = dir.0.join("config.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"addr": "{ANY_PORT}"{extra}, "intervals": {{"announce_drift": 0, "flush": 3600, "database_reload": 3600}}}}"#
            ),
        )
        .unwrap();
        Setup {
            spill: dir.0.join("spill.jsonl"),
            config,
            addr: std::sync::OnceLock::new(),
            dir,
        }
    }

    /// Where the tracker serves (once started).
    fn addr(&self) -> std::net::SocketAddr {
        *self.addr.get().expect("started once")
    }

    /// Started in the test's own directory (where `events/` goes with `record`).
    fn start(&self, dsn: &str, extra: &[&str]) -> Process {
        let spill = self.spill.to_str().unwrap();
        let cache = self.dir.0.join("peer-cache.bin");
        let mut args = vec!["--spill", spill, "--peer-cache", cache.to_str().unwrap()];
        args.extend_from_slice(extra);
        let cwd = self.dir.0.clone();
        let mut process = Process::start_with(&self.config, dsn, &args, |command| {
            command.current_dir(&cwd);
        });
        let bound = process.wait_ready(WAIT);
        if self.addr.set(bound).is_ok() {
            pin_addr(&self.config, bound);
        }
        process
    }
}

/// Transfer for users 1 and 2, a completion and an unprune.
async fn traffic(addr: std::net::SocketAddr) {
    let one = Announce::new(PASSKEY_1, HASH_3, "a", 50);
    for a in [
        one.clone(),
        one.clone().transfer(10, 50).left(0).event("completed"),
        Announce::new(PASSKEY_2, HASH_2, "b", 1000),
        Announce::new(PASSKEY_2, HASH_2, "b", 1000).transfer(100, 0),
        Announce::new(PASSKEY_1, HASH_1, "c", 0),
    ] {
        let r = get(addr, &a.target(), &[]).await;
        assert!(r.text().starts_with("d8:complete"), "{}", r.text());
    }
}

fn owned(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|v| (*v).to_owned()).collect())
        .collect()
}

async fn assert_traffic_written(db: &TestDb) {
    assert_eq!(
        db.rows("SELECT ID, Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID IN (1, 2) ORDER BY ID").await,
        owned(&[&["1", "20", "0", "10", "50"], &["2", "2576", "5", "2651", "5"]])
    );
    assert_eq!(
        db.rows(
            "SELECT uid, fid, uploaded, downloaded, seeding, snatched, snatched_time > 0 FROM transfer_history \
             WHERE (uid, fid) IN ((1, 3), (2, 2), (1, 1)) ORDER BY uid, fid"
        )
        .await,
        owned(&[
            &["1", "1", "0", "0", "1", "0", "0"],
            &["1", "3", "10", "50", "1", "1", "1"],
            &["2", "2", "100", "0", "0", "0", "0"],
        ])
    );
    assert_eq!(
        db.rows("SELECT ID, Status, Seeders, Leechers, Snatched FROM torrents ORDER BY ID")
            .await,
        owned(&[
            &["1", "0", "1", "0", "2"],
            &["2", "0", "0", "1", "0"],
            &["3", "0", "1", "0", "1"]
        ])
    );
}

fn replayed_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("spill.jsonl.replayed-"))
        .collect()
}

#[tokio::test]
async fn a_signal_right_after_announces_writes_everything() {
    let db = TestDb::new().await;
    let setup = Setup::new("drain");
    let mut tracker = setup.start(&db.dsn(), &[]);
    traffic(setup.addr()).await;
    tracker.signal("TERM");
    let status = tokio::task::spawn_blocking(move || (tracker.wait(WAIT), tracker.log_text()))
        .await
        .unwrap();
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(status.1.contains("Shutdown complete"), "{}", status.1);
    assert!(!status.1.contains("Saved"), "nothing spilled: {}", status.1);
    for flush in [
        "{torrents} Flushing 3",
        "{users_main} Flushing 2",
        "{transfer_history} Flushing 3",
    ] {
        assert!(
            status.1.contains(flush),
            "log_flushes is on by default: {flush}"
        );
    }
    assert_traffic_written(&db).await;
    assert!(!setup.spill.exists());
}

/// Runs the traffic through a proxy, cuts MariaDB off and stops the tracker (SIGTERM,
/// a 2 s drain); returns its log after a clean exit.
async fn traffic_then_an_outage_at_shutdown(db: &TestDb, setup: &Setup) -> String {
    let proxy = Proxy::start(TestDb::server_addr()).await;
    let tracker = setup.start(&db.dsn_via(proxy.port), &["--drain-timeout", "2"]);
    traffic(setup.addr()).await;
    proxy.cut();
    let (status, log) = tracker.stop_with("TERM", WAIT).await;
    assert_eq!(status.code(), Some(0), "{log}");
    log
}

// Multi-threaded: the proxy's tasks run while this test blocks waiting for log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_at_shutdown_spills_and_the_next_start_replays() {
    let db = TestDb::new().await;
    // Without the marker table there is no journal: the spill file takes the rows.
    db.exec("DROP TABLE chihaya_commits").await;
    let setup = Setup::new("spill");
    let log = traffic_then_an_outage_at_shutdown(&db, &setup).await;
    let saved = format!("Saved 13 unwritten rows to {}", setup.spill.display());
    assert!(log.contains(&saved), "{saved:?} in\n{log}");

    let text = std::fs::read_to_string(&setup.spill).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: std::collections::BTreeMap<String, usize> =
        lines.iter().fold(Default::default(), |mut m, l| {
            *m.entry(l["kind"].as_str().unwrap().to_owned()).or_default() += 1;
            m
        });
    let want: std::collections::BTreeMap<String, usize> = [
        ("snatches", 1),
        ("torrents", 3),
        ("transfer_history", 3),
        ("transfer_ips", 3),
        ("unprune", 1),
        ("users", 2),
        ("groups", 0),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(kinds, want, "{text}");
    assert!(
        text.contains(
            r#"{"v":1,"kind":"users","id":1,"uploaded":20,"downloaded":0,"rawup":10,"rawdl":50}"#
        ),
        "{text}"
    );
    assert_eq!(
        db.rows("SELECT rawup FROM users_main WHERE ID = 1").await,
        owned(&[&["0"]])
    );

    // MariaDB is back; the next start replays the file before serving.
    let tracker = setup.start(&db.dsn(), &[]);
    let replayed = format!("Replayed 13 spilled rows from {}", setup.spill.display());
    assert!(
        tracker.log_text().contains(&replayed),
        "{}",
        tracker.log_text()
    );
    let (status, log) = tracker.stop_with("INT", WAIT).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert_traffic_written(&db).await;
    assert!(!setup.spill.exists(), "renamed after replay");
    assert_eq!(replayed_files(&setup.dir.0).len(), 1);
}

/// Runs the tracker of `setup` until it exits, which it must do with status 1 and a
/// log line containing `reason`; returns the log.
async fn failed_start(setup: &Setup, dsn: &str, extra: &[&str], reason: &str) -> String {
    let spill = setup.spill.to_str().unwrap().to_owned();
    let cache = setup.dir.0.join("peer-cache.bin");
    let mut args = vec!["--spill".to_owned(), spill, "--peer-cache".to_owned()];
    args.push(cache.to_str().unwrap().to_owned());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let (config, dsn, cwd) = (setup.config.clone(), dsn.to_owned(), setup.dir.0.clone());
    let (status, log) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = Process::start_with(&config, &dsn, &args, |command| {
            command.current_dir(&cwd);
        });
        (process.wait(WAIT), process.log_text())
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains(reason), "{reason:?} in\n{log}");
    log
}

// Multi-threaded: the proxy's tasks run while this test blocks waiting for log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_loses_no_spilled_row() {
    let db = TestDb::new().await;
    db.exec("DROP TABLE chihaya_commits").await;
    let setup = Setup::with("failedstart", r#", "record": true"#);
    traffic_then_an_outage_at_shutdown(&db, &setup).await;
    assert!(setup.spill.exists());
    // The port is taken: the start fails before the spill file is read.
    // SO_REUSEADDR, as the tracker's own: the connections of its previous run may
    // linger in TIME_WAIT on that port; a second listener is refused all the same.
    let taken = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    taken.set_reuse_address(true).unwrap();
    taken.bind(&setup.addr().into()).unwrap();
    taken.listen(1).unwrap();
    let log = failed_start(&setup, &db.dsn(), &[], "Couldn't listen on 127.0.0.1:").await;
    assert!(!log.contains("Replayed"), "{log}");
    drop(taken);
    // The recorder's folder cannot be made (a file has its name): the same.
    let events = setup.dir.0.join("events");
    std::fs::remove_dir_all(&events).ok();
    std::fs::write(&events, "not a folder").unwrap();
    failed_start(
        &setup,
        &db.dsn(),
        &[],
        "Couldn't create the recorder directory",
    )
    .await;
    assert!(setup.spill.exists(), "still there for the next start");
    assert!(replayed_files(&setup.dir.0).is_empty());
    std::fs::remove_file(&events).unwrap();
    // The next start that can serve replays the file, once.
    let tracker = setup.start(&db.dsn(), &[]);
    assert!(tracker.log_text().contains("Replayed 13 spilled rows"));
    let (status, log) = tracker.stop_with("INT", WAIT).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert_traffic_written(&db).await;
    assert_eq!(replayed_files(&setup.dir.0).len(), 1);
}

// Multi-threaded: the proxy's tasks run while this test blocks waiting for log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_at_shutdown_leaves_the_rows_in_the_journal_for_the_next_start() {
    let db = TestDb::new().await;
    let setup = Setup::new("journal");
    let log = traffic_then_an_outage_at_shutdown(&db, &setup).await;
    let journal = setup.dir.0.join("journal");
    let kept = format!(
        "13 unwritten rows stay in the journal {}; the next start writes them",
        journal.display()
    );
    assert!(log.contains(&kept), "{kept:?} in\n{log}");
    assert!(!setup.spill.exists(), "{log}");
    assert_eq!(
        db.rows("SELECT rawup FROM users_main WHERE ID = 1").await,
        owned(&[&["0"]])
    );

    // MariaDB is back; the next start replays the journal before serving, and a
    // second start after it finds nothing left to write.
    for round in 0..2 {
        let tracker = setup.start(&db.dsn(), &[]);
        let log = tracker.log_text();
        let recovered = log.contains("rows the database does not have yet");
        assert_eq!(recovered, round == 0, "{log}");
        if round == 0 {
            assert!(
                log.contains(", 13 rows the database does not have yet)"),
                "{log}"
            );
        }
        let (status, log) = tracker.stop_with("INT", WAIT).await;
        assert_eq!(status.code(), Some(0), "{log}");
        assert_traffic_written(&db).await;
    }
    assert!(!setup.spill.exists());
    // What the database and the last peer cache cover is gone: what is left is the
    // last run's (its first segment, and the one its shutdown's cache write began).
    let files: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let segments: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert!((1..=2).contains(&segments.len()), "{files:?}");
    assert_eq!(files.len(), segments.len() + 1, "the lock file: {files:?}");
    // It holds passkey-free but member-identifying data: the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&journal), 0o700);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn a_bad_spill_line_stops_start_up_but_a_torn_last_line_does_not() {
    let db = TestDb::new().await;
    let setup = Setup::new("badspill");
    std::fs::write(&setup.spill, "{\"v\":1,\"kind\":\"users\",\"id\":1}\n").unwrap();
    let mut process = Process::start(
        &setup.config,
        &db.dsn(),
        &["--spill", setup.spill.to_str().unwrap()],
    );
    let (status, log) =
        tokio::task::spawn_blocking(move || (process.wait(WAIT), process.log_text()))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    let message = format!(
        "[E] spill file {} line 1: missing field `uploaded`",
        setup.spill.display()
    );
    assert!(log.contains(&message), "{message:?} in\n{log}");
    assert!(!log.contains("Ready"), "{log}");

    std::fs::write(
        &setup.spill,
        "{\"v\":1,\"kind\":\"users\",\"id\":1,\"uploaded\":7,\"downloaded\":0,\"rawup\":5,\"rawdl\":0}\n{\"v\":1,\"ki",
    )
    .unwrap();
    let mut tracker = setup.start(&db.dsn(), &[]);
    let log = tracker.log_text();
    assert!(
        log.contains("line 2: unterminated last line ignored"),
        "{log}"
    );
    assert!(log.contains("Replayed 1 spilled rows"), "{log}");
    tracker.signal("TERM");
    let status = tokio::task::spawn_blocking(move || tracker.wait(WAIT))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        db.rows("SELECT Uploaded, rawup FROM users_main WHERE ID = 1")
            .await,
        owned(&[&["7", "5"]])
    );
}

#[tokio::test]
async fn log_flushes_false_keeps_flushes_out_of_the_log() {
    let db = TestDb::new().await;
    let setup = Setup::with("quiet", r#", "log_flushes": false"#);
    let tracker = setup.start(&db.dsn(), &[]);
    traffic(setup.addr()).await;
    let (status, log) = tracker.stop_with("TERM", WAIT).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!log.contains("Flushing"), "{log}");
    assert_traffic_written(&db).await;
}

#[tokio::test]
async fn a_hangup_reloads_from_the_database_and_the_tracker_keeps_running() {
    const NEW_HASH: &str = "00112233445566778899AABBCCDDEEFF00112233";
    let db = TestDb::new().await;
    let setup = Setup::new("hangup");
    let mut tracker = setup.start(&db.dsn(), &[]);
    let seed = Announce::new(PASSKEY_1, NEW_HASH, "s", 0);
    let unknown = failure_body("This torrent does not exist", 30);
    assert_eq!(get(setup.addr(), &seed.target(), &[]).await.text(), unknown);
    db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash) \
         VALUES (4, 1, 'anime', UNHEX('{NEW_HASH}'))"
    ))
    .await;
    // `database_reload` is an hour: only the hangup can bring the new torrent.
    tracker.signal("HUP");
    let log = tokio::task::spawn_blocking(move || {
        let log = tracker.wait_for("Caught hangup, reloading from database", WAIT);
        (tracker, log)
    })
    .await
    .unwrap();
    let mut tracker = log.0;
    let answered = eventually(WAIT, || async {
        get(setup.addr(), &seed.target(), &[])
            .await
            .text()
            .starts_with("d8:complete")
    })
    .await;
    assert!(answered, "{}", tracker.log_text());
    assert!(tracker.is_running());
    tracker.signal("TERM");
    let (status, log) =
        tokio::task::spawn_blocking(move || (tracker.wait(WAIT), tracker.log_text()))
            .await
            .unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("Shutdown complete"), "{log}");
}
