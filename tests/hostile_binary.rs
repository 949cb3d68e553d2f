//! What a client can do to the real binary's log and files: unparsable requests are
//! counted, not logged one by one; oversized requests get the documented answers; the
//! files holding passkeys and addresses are private whatever the umask.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::process::{Process, ANY_PORT};
use common::prom::parse;
use common::proxy::Proxy;
use common::*;

const WAIT: Duration = Duration::from_secs(20);

/// Writes a config listening on a port the system picks; returns its path.
fn config(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    let path = dir.0.join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"addr": "{ANY_PORT}", "admin_token": "t"{extra}, "intervals": {{"announce_drift": 0, "database_reload": 3600}}}}"#
        ),
    )
    .unwrap();
    path
}

/// Sends `raw` on a connection of its own and reads until the server closes it.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn get_raw(addr: SocketAddr, target: &str) -> Vec<u8> {
    exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_requests_are_counted_and_summed_up_in_one_line() {
    let db = TestDb::new().await;
    let dir = TempDir::new("client-errors");
    let config = config(&dir, "");
    let spill = dir.0.join("spill.jsonl");
    let cache = dir.0.join("peer-cache.bin");
    let mut tracker = Process::start(
        &config,
        &db.dsn(),
        &[
            "--spill",
            spill.to_str().unwrap(),
            "--peer-cache",
            cache.to_str().unwrap(),
        ],
    );
    let addr = tracker.wait_ready(WAIT);
    let announce = format!("/{PASSKEY_1}/announce?");
    let run = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            let answer = exchange(addr, b"GARBAGE\r\n\r\n");
            assert!(answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        }
        // A request target longer than the HTTP layer parses (65,534 bytes): 400.
        let padding = "a=".to_owned() + &"x".repeat(70_000);
        for _ in 0..3 {
            let answer = get_raw(addr, &format!("{announce}{padding}"));
            let text = String::from_utf8_lossy(&answer);
            assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
            assert!(text.ends_with("\r\n\r\n"), "an empty body: {text}");
        }
        // Below that, but over 8192 bytes: the bencoded failure.
        let padding = "a=".to_owned() + &"x".repeat(65_000 - announce.len());
        let answer = get_raw(addr, &format!("{announce}{padding}"));
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.ends_with(&failure_body(
                "Malformed request - query string too long",
                3600
            )),
            "{text}"
        );
    });
    run.await.unwrap();
    let metrics = common::get(addr, "/metrics", &[("Authorization", "Bearer t")]).await;
    let metrics = parse(&metrics.text());
    assert_eq!(
        metrics.value("chihaya_client_errors_total", &[]),
        Some(103.0)
    );
    let (status, log) = tracker.terminate(WAIT).await;
    assert_eq!(status.code(), Some(0), "{log}");
    let summaries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client errors since the last report"))
        .collect();
    assert_eq!(summaries.len(), 1, "{log}");
    assert!(
        summaries[0].contains("[W] 1 client errors since the last report (latest: stream error: request parse error: "),
        "{log}"
    );
    assert!(
        !log.contains("stream error: request parse error: URI error"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_with_passkeys_and_addresses_are_private_whatever_the_umask() {
    let db = TestDb::new().await;
    // No marker table, so no journal: the rows unwritten at shutdown go to the spill
    // file (the journal's own modes are checked in tests/shutdown.rs).
    db.exec("DROP TABLE chihaya_commits").await;
    let dir = TempDir::new("modes");
    let config = config(&dir, r#", "record": true"#);
    let proxy = Proxy::start(TestDb::server_addr()).await;
    let workdir = dir.0.clone();
    let args = ["--drain-timeout", "1"];
    let mut tracker = Process::start_with(&config, &db.dsn_via(proxy.port), &args, |command| {
        use std::os::unix::process::CommandExt;
        command.current_dir(&workdir);
        // SAFETY: umask is async-signal-safe and touches nothing but the child.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
    });
    let addr = tracker.wait_ready(WAIT);
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 1000);
    assert_eq!(common::get(addr, &a.target(), &[]).await.status, 200);
    assert_eq!(
        common::get(addr, &a.clone().transfer(10, 0).target(), &[])
            .await
            .status,
        200
    );
    // MariaDB is gone at shutdown: the rows go to the spill file.
    proxy.cut();
    let (status, log) = tracker.terminate(WAIT).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("unwritten rows to"), "{log}");
    assert_eq!(mode(&dir.0.join("peer-cache.bin")), 0o600);
    assert_eq!(mode(&dir.0.join("accounting-spill.jsonl")), 0o600);
    // The recorder's files keep the modes the README gives them.
    assert_eq!(mode(&dir.0.join("events")), 0o755);
    let events: Vec<_> = std::fs::read_dir(dir.0.join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(mode(&events[0]), 0o644);
}
