//! The `chihaya` binary: flags, exit codes, start-up failures and a signal-driven
//! shutdown (SPEC §1.1, §2, §9).

mod common;

use std::time::Duration;

use common::process::{chihaya, Process, ANY_PORT};
use common::*;

/// Every log line must have the SPEC shape `YYYY/MM/DD HH:MM:SS [L] message`.
fn assert_log_shape(stderr: &str) {
    for line in stderr.lines() {
        let bytes = line.as_bytes();
        assert!(bytes.len() > 24, "short log line {line:?}");
        let shape_ok = bytes[4] == b'/'
            && bytes[7] == b'/'
            && bytes[10] == b' '
            && bytes[13] == b':'
            && bytes[16] == b':';
        assert!(
            shape_ok && matches!(&line[19..23], " [I]" | " [W]" | " [E]"),
            "log line {line:?}"
        );
    }
}

#[test]
fn version_help_and_usage_errors() {
    let out = chihaya().arg("-V").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("chihaya {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = chihaya().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--peer-cache",
        "--spill",
        "--journal",
        "--drain-timeout",
        "--version",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    for bad in [
        &["--nope"][..],
        &["positional"],
        &["--drain-timeout", "-1"],
        &["--drain-timeout=x"],
        &["--config"],
    ] {
        let out = chihaya().args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage"),
            "{bad:?}"
        );
    }
}

#[test]
fn bad_config_exits_1_naming_the_key() {
    let dir = TempDir::new("badconfig");
    let path = dir.0.join("config.json");
    std::fs::write(&path, r#"{"channels": {"snatch": 0}}"#).unwrap();
    let out = chihaya().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[E] config: channels.snatch: must be an integer >= 1 (got 0)"),
        "{stderr}"
    );
    assert_log_shape(&stderr);
    assert!(out.stdout.is_empty());

    let out = chihaya()
        .arg("--config=/nonexistent/chihaya.json")
        .env("DB_DSN", "nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[E] config: DB_DSN: "), "{stderr}");
}

#[test]
fn bad_database_port_exits_1_before_connecting() {
    let dir = TempDir::new("badaddr");
    let path = dir.0.join("config.json");
    for port in ["99999", "33x6"] {
        let json = format!(r#"{{"database": {{"addr": "127.0.0.1:{port}"}}}}"#);
        std::fs::write(&path, json).unwrap();
        let out = chihaya().arg("--config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{port}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_log_shape(&stderr);
        // The one line is the config error: no ping was tried (that would log its own).
        let lines: Vec<&str> = stderr.lines().collect();
        let expected = format!(r#"[E] config: database.addr: bad port "{port}""#);
        assert!(
            lines.len() == 1 && lines[0].ends_with(&format!(" {expected}")),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn unreachable_database_exits_1() {
    // Port 1 on loopback: nothing listens there, the connection is refused.
    let out = chihaya()
        .arg("--config=/nonexistent/chihaya.json")
        .env("DB_DSN", "root@tcp(127.0.0.1:1)/chihaya")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[E] Couldn't ping database - "), "{stderr}");
    assert_log_shape(&stderr);
}

#[tokio::test]
async fn failed_initial_load_exits_1() {
    let db = TestDb::new().await;
    db.exec("DROP TABLE approved_clients").await;
    let dsn = db.dsn();
    let out = tokio::task::spawn_blocking(move || {
        chihaya()
            .arg("--config=/nonexistent/chihaya.json")
            .env("DB_DSN", dsn)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[E] Failed to load clients from database: "),
        "{stderr}"
    );
}

#[tokio::test]
async fn serves_then_drains_on_sigterm_and_exits_0() {
    let db = TestDb::new().await;
    let dir = TempDir::new("sigterm");
    let config = dir.0.join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"addr": "{ANY_PORT}", "intervals": {{"announce_drift": 0}}}}"#),
    )
    .unwrap();
    let spill = dir.0.join("spill.jsonl");
    let mut tracker = Process::start(&config, &db.dsn(), &["--spill", spill.to_str().unwrap()]);
    // Port 0: the Ready line names the port the system chose.
    let addr = tracker.wait_ready(Duration::from_secs(20));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    // Pruned torrent 1: the unprune is queued, and must be written by the drain.
    let r = get(
        addr,
        &Announce::new(PASSKEY_1, HASH_1, "s", 0).target(),
        &[],
    )
    .await;
    assert_eq!(r.body, announce_body(1, 2, 0, Some(b"0:")));

    tracker.signal("TERM");
    let (exit, text) = tokio::task::spawn_blocking(move || {
        (tracker.wait(Duration::from_secs(20)), tracker.log_text())
    })
    .await
    .unwrap();
    assert_eq!(exit.code(), Some(0), "{text}");
    assert_log_shape(&text);
    let order = [
        "Unpruning torrent 1",
        "Caught interrupt, shutting down...",
        "Now closed and not accepting any new connections",
        "Shutdown complete",
    ];
    let mut at = 0;
    for step in order {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} after byte {at} in\n{text}"));
        at += found + step.len();
    }
    assert_eq!(
        db.rows("SELECT Status FROM torrents WHERE ID = 1").await,
        vec![vec!["0".to_owned()]]
    );
}
