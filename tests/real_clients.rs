//! Real BitTorrent clients against the real tracker and a real MariaDB: Transmission
//! (`transmission-daemon`, driven with `transmission-remote`) seeds a private torrent as
//! user 1, aria2 (`aria2c`) downloads it as user 2, both on 127.0.0.1, and the
//! accounting rows must say exactly what the clients reported.
//!
//! The clients come from Debian's packages (`transmission-daemon`, `transmission-cli`
//! for `transmission-remote`, `aria2`); `make test` installs them when it runs as root.
//! Without them this test says so and passes.
//!
//! Why these roles: Transmission will not dial peers on 127.0.0.0/8 (martian addresses
//! to it) but accepts their connections, and aria2 dials them. The daemon rather than
//! `transmission-cli`, because the latter quits without announcing `stopped`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chihaya::bencode::{bytes, int_entry};
use common::*;
use rand::{Rng, SeedableRng};

const SEEDER: &str = "transmission-daemon";
const REMOTE: &str = "transmission-remote";
const LEECHER: &str = "aria2c";
const PIECE_LENGTH: usize = 256 * 1024;
/// A few MB, not a multiple of the piece length, so the last piece is short.
const FILE_SIZE: usize = 4 * 1024 * 1024 + 12_345;
const FILE_NAME: &str = "payload.bin";
const TORRENT_ID: u32 = 4;
/// Client ids of the approved prefixes this test adds.
const TRANSMISSION_CLIENT: u32 = 4;
const ARIA2_CLIENT: u32 = 5;

/// The bencoded info dictionary of a one-file private torrent (keys in sorted order).
fn info_dictionary(data: &[u8]) -> Vec<u8> {
    let mut pieces = Vec::with_capacity(data.len().div_ceil(PIECE_LENGTH) * 20);
    for piece in data.chunks(PIECE_LENGTH) {
        pieces.extend_from_slice(&sha1_smol::Sha1::from(piece).digest().bytes());
    }
    let mut out = b"d".to_vec();
    int_entry(&mut out, "length", data.len() as i64);
    bytes(&mut out, b"name");
    bytes(&mut out, FILE_NAME.as_bytes());
    int_entry(&mut out, "piece length", PIECE_LENGTH as i64);
    bytes(&mut out, b"pieces");
    bytes(&mut out, &pieces);
    int_entry(&mut out, "private", 1);
    out.push(b'e');
    out
}

/// A .torrent file: the same info dictionary, the announce URL of one user.
fn metainfo(announce: &str, info: &[u8]) -> Vec<u8> {
    let mut out = b"d".to_vec();
    bytes(&mut out, b"announce");
    bytes(&mut out, announce.as_bytes());
    bytes(&mut out, b"info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A client process with its output in a file; killed if the test ends early.
struct Client {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Client {
    fn start(name: &'static str, command: &mut Command, log: PathBuf) -> Client {
        let out = std::fs::File::create(&log).expect("client log");
        let err = out.try_clone().expect("client log");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Client {
            name,
            child: Some(child),
            log,
        }
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let mut raw = Vec::new();
            let _ = file.read_to_end(&mut raw);
            // Progress lines end in \r; keep the last few KB readable.
            text = String::from_utf8_lossy(&raw).replace('\r', "\n");
        }
        let tail = text.len().saturating_sub(6000);
        let start = (tail..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Waits for the process to end by itself; its exit code, or None after `within`.
    fn wait(&mut self, within: Duration) -> Option<i32> {
        let until = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the process to end.
    fn terminate(&mut self, within: Duration) -> Option<i32> {
        // SAFETY: kill takes plain integers; the pid is our own unreaped child.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        self.wait(within)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("--- {} log (killed) ---\n{}", self.name, self.log_text());
        }
    }
}

/// The recorder's lines so far, parsed: [torrent, user, ip, port, event, seeding,
/// deltaUp, deltaDown, up, down, left].
fn recorded(events: &Path) -> Vec<serde_json::Value> {
    let Ok(dir) = std::fs::read_dir(events) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn events_of(lines: &[serde_json::Value], user: u64) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l[0] == TORRENT_ID && l[1] == user)
        .map(|l| l[4].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// The last (uploaded, downloaded, left) the user's client reported.
fn last_report(lines: &[serde_json::Value], user: u64) -> (u64, u64, u64) {
    let line = lines
        .iter()
        .rev()
        .find(|l| l[0] == TORRENT_ID && l[1] == user)
        .unwrap_or_else(|| panic!("no announce of user {user} recorded: {lines:?}"));
    let n = |i: usize| line[i].as_u64().unwrap_or(u64::MAX);
    (n(8), n(9), n(10))
}

async fn wait_until<F: AsyncFnMut() -> bool>(within: Duration, mut done: F) -> bool {
    let until = Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `transmission-remote 127.0.0.1:<rpc> args...`; its output, or the error.
fn remote(rpc: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new(REMOTE)
        .arg(format!("127.0.0.1:{rpc}"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// A line on the real stderr, past the test harness's capture: whether this test ran,
/// and with which clients, belongs in every `make test` log.
fn say(line: &str) {
    tools::say("real_clients", line);
}

fn version(program: &str, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_seeds_to_aria2_and_every_byte_is_accounted() {
    let packages = "packages transmission-daemon, transmission-cli and aria2";
    if !tools::present_or_skip("real_clients", &[SEEDER, REMOTE, LEECHER], packages) {
        return;
    }
    say(&format!(
        "{} seeding to {}",
        version(SEEDER, "--version"),
        version(LEECHER, "--version")
    ));

    // The payload and its torrent.
    let work = TempDir::new("clients");
    let seed_dir = work.0.join("seed");
    let leech_dir = work.0.join("leech");
    for dir in [&seed_dir, &leech_dir] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut data = vec![0u8; FILE_SIZE];
    rand::rngs::SmallRng::seed_from_u64(7).fill(&mut data[..]);
    std::fs::write(seed_dir.join(FILE_NAME), &data).unwrap();
    let info = info_dictionary(&data);
    let info_hash = sha1_smol::Sha1::from(&info).digest().bytes();

    // The site: the torrent, both clients approved, user 2 allowed to download (the
    // fixtures forbid it). User 2 keeps its down multiplier of 2.
    let db = TestDb::new().await;
    db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash) \
         VALUES ({TORRENT_ID}, 1, 'anime', UNHEX('{}'));
         INSERT INTO approved_clients (id, peer_id, archived) \
         VALUES ({TRANSMISSION_CLIENT}, '-TR3', 0), ({ARIA2_CLIENT}, 'A2-', 0);
         UPDATE users_main SET DisableDownload = 0 WHERE ID = 2;",
        hex(&info_hash)
    ))
    .await;
    let t = TestTracker::on(db, r#""record": true"#).await;
    let events = t.dir.files().events;
    let tracker = format!("http://127.0.0.1:{}", t.addr.port());
    let seed_torrent = work.0.join("seed.torrent");
    let leech_torrent = work.0.join("leech.torrent");
    std::fs::write(
        &seed_torrent,
        metainfo(&format!("{tracker}/{PASSKEY_1}/announce"), &info),
    )
    .unwrap();
    std::fs::write(
        &leech_torrent,
        metainfo(&format!("{tracker}/{PASSKEY_2}/announce"), &info),
    )
    .unwrap();
    let scrape = format!("/{PASSKEY_1}/scrape?info_hash={}", escape(&info_hash));

    // The seeder checks its data, announces, and is in the swarm as a seeder.
    let rpc = tools::free_addr().port();
    let mut seeder = Client::start(
        "transmission-daemon",
        Command::new(SEEDER)
            .arg("--foreground")
            .arg("--config-dir")
            .arg(work.0.join("transmission"))
            .arg("--download-dir")
            .arg(&seed_dir)
            .args([
                "--port",
                &rpc.to_string(),
                "--rpc-bind-address",
                "127.0.0.1",
            ])
            .args(["--peerport", &tools::free_addr().port().to_string()])
            .args([
                "--bind-address-ipv4",
                "127.0.0.1",
                "--bind-address-ipv6",
                "::1",
            ])
            .args([
                "--no-portmap",
                "--no-dht",
                "--no-lpd",
                "--no-auth",
                "--log-info",
            ])
            .env("HOME", &work.0),
        work.0.join("transmission.log"),
    );
    let rpc_up = wait_until(Duration::from_secs(20), async || {
        remote(rpc, &["-l"]).is_ok()
    })
    .await;
    assert!(
        rpc_up,
        "transmission-daemon's RPC never answered\n{}",
        seeder.log_text()
    );
    let added = remote(rpc, &["--add", &seed_torrent.display().to_string()]);
    assert!(added.is_ok(), "transmission-remote --add: {added:?}");
    let seeding = wait_until(Duration::from_secs(60), async || {
        let body = t.get(&scrape).await.body;
        body.windows(12).any(|w| w == b"8:completei1")
    })
    .await;
    assert!(
        seeding,
        "the seeder never showed up as a seeder: scrape {:?}; recorded {:?}\n{}",
        t.get(&scrape).await.text(),
        recorded(&events),
        seeder.log_text()
    );

    // The leecher downloads everything, seeds for 6 s (long enough to announce
    // `completed`; with --seed-time=0 aria2 goes straight to `stopped`, which the
    // tracker also counts as a snatch), and leaves.
    let mut leecher = Client::start(
        "aria2c",
        Command::new(LEECHER)
            .arg(format!("--dir={}", leech_dir.display()))
            .args([
                "--seed-time=0.1",
                &format!("--listen-port={}", tools::free_addr().port()),
                "--interface=127.0.0.1",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--summary-interval=0",
                "--console-log-level=notice",
                "--no-conf=true",
            ])
            .arg(&leech_torrent),
        work.0.join("aria2.log"),
    );
    let exit = leecher.wait(Duration::from_secs(120));
    assert_eq!(
        exit,
        Some(0),
        "aria2c did not finish the download\n{}\n--- seeder ---\n{}",
        leecher.log_text(),
        seeder.log_text()
    );
    let downloaded = std::fs::read(leech_dir.join(FILE_NAME)).expect("downloaded file");
    assert!(
        downloaded == data,
        "the downloaded file differs from the seeded one"
    );

    // The leecher's `stopped` is in; the seeder still seeds.
    t.flush().await;
    let lines = recorded(&events);
    assert_eq!(
        t.db.rows(&format!(
            "SELECT Seeders, Leechers, Snatched FROM torrents WHERE ID = {TORRENT_ID}"
        ))
        .await,
        [["1", "0", "1"]],
        "recorded: {lines:?}"
    );

    // Transmission read our answers as answers, not as errors.
    let trackers = remote(rpc, &["--torrent", "all", "--info-trackers"]).unwrap_or_default();
    assert!(
        trackers.contains("Got a list of") && !trackers.to_lowercase().contains("error"),
        "transmission's view of the tracker: {trackers}"
    );
    // The seeder stops the torrent (announcing `stopped`), then the daemon quits.
    let stop = remote(rpc, &["--torrent", "all", "--stop"]);
    assert!(stop.is_ok(), "transmission-remote --stop: {stop:?}");
    let stopped = wait_until(Duration::from_secs(20), async || {
        events_of(&recorded(&events), 1).last().map(String::as_str) == Some("stopped")
    })
    .await;
    assert!(
        stopped,
        "no `stopped` from the seeder: {:?}\n{}",
        recorded(&events),
        seeder.log_text()
    );
    let exit = seeder.terminate(Duration::from_secs(30));
    assert!(
        exit.is_some(),
        "transmission-daemon did not quit on SIGTERM"
    );
    t.flush().await;

    let lines = recorded(&events);
    let leecher_events = events_of(&lines, 2);
    for event in ["started", "completed", "stopped"] {
        assert!(
            leecher_events.iter().any(|e| e == event),
            "aria2 events {leecher_events:?}"
        );
    }
    let seeder_events = events_of(&lines, 1);
    assert_eq!(seeder_events.first().map(String::as_str), Some("started"));
    assert_eq!(seeder_events.last().map(String::as_str), Some("stopped"));

    // What each client said it moved, and that it is the file's size (give or take
    // blocks requested twice).
    let (seeder_up, seeder_down, seeder_left) = last_report(&lines, 1);
    let (leecher_up, leecher_down, leecher_left) = last_report(&lines, 2);
    let size = FILE_SIZE as u64;
    let slack = 2 * PIECE_LENGTH as u64;
    assert!(
        (size..=size + slack).contains(&seeder_up),
        "seeder reported {seeder_up} uploaded"
    );
    assert!(
        (size..=size + slack).contains(&leecher_down),
        "leecher reported {leecher_down} downloaded"
    );
    assert_eq!((seeder_down, seeder_left, leecher_left), (0, 0, 0));

    // Users: raw bytes as reported; user 2's download counts double (its multiplier),
    // on top of the fixture's 2551 up / 5 down.
    assert_eq!(
        t.db.rows("SELECT ID, Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID IN (1, 2) ORDER BY ID")
            .await,
        [
            [
                "1".to_owned(),
                seeder_up.to_string(),
                "0".to_owned(),
                seeder_up.to_string(),
                "0".to_owned()
            ],
            [
                "2".to_owned(),
                (2551 + leecher_up / 2).to_string(),
                (5 + 2 * leecher_down).to_string(),
                (2551 + leecher_up).to_string(),
                (5 + leecher_down).to_string()
            ]
        ]
    );
    // History: both users, user 2's snatch, nobody active any more.
    assert_eq!(
        t.db.rows(&format!(
            "SELECT uid, uploaded, downloaded, remaining, active, snatched, snatched_time > 0 \
             FROM transfer_history WHERE fid = {TORRENT_ID} ORDER BY uid"
        ))
        .await,
        [
            [
                "1".to_owned(),
                seeder_up.to_string(),
                "0".to_owned(),
                "0".to_owned(),
                "0".to_owned(),
                "0".to_owned(),
                "0".to_owned()
            ],
            [
                "2".to_owned(),
                leecher_up.to_string(),
                leecher_down.to_string(),
                "0".to_owned(),
                "0".to_owned(),
                "1".to_owned(),
                "1".to_owned()
            ]
        ]
    );
    // Per-IP rows: 127.0.0.1 (2130706433) with each client's approved id.
    assert_eq!(
        t.db.rows(&format!(
            "SELECT uid, ip, client_id, uploaded, downloaded FROM transfer_ips \
             WHERE fid = {TORRENT_ID} ORDER BY uid"
        ))
        .await,
        [
            [
                "1".to_owned(),
                "2130706433".to_owned(),
                TRANSMISSION_CLIENT.to_string(),
                seeder_up.to_string(),
                "0".to_owned()
            ],
            [
                "2".to_owned(),
                "2130706433".to_owned(),
                ARIA2_CLIENT.to_string(),
                leecher_up.to_string(),
                leecher_down.to_string()
            ]
        ]
    );
    assert_eq!(
        t.db.rows(&format!(
            "SELECT Seeders, Leechers, Snatched FROM torrents WHERE ID = {TORRENT_ID}"
        ))
        .await,
        [["0", "0", "1"]]
    );
    t.stop().await;
}
