//! Several trackers behind HAProxy, one site database (issue 17): the shipped
//! `contrib/haproxy/chihaya.cfg`, with only its addresses changed, in a `haproxy` of our
//! own on 127.0.0.1, in front of two `chihaya` processes (instances "a" and "b") on one
//! MariaDB database holding 50 extra torrents. The torrents' hashes hold bytes a client
//! may send raw or escaped, in either case of hex (`~ - . _`, letters), a `+` (sent as
//! `%2B`) and a 0 byte; each peer of a swarm escapes the hash its own way.
//!
//! - HAProxy's sample (the shipped `balance hash` expression) is the 20 bytes the
//!   tracker decodes, whatever the escaping; and the facts the config's comments state.
//! - Every swarm lives on exactly one instance, both instances get a share, a seeder and
//!   a leecher escaping differently meet, and the tracker sees the client's own address
//!   (a spoofed `X-Real-IP` is replaced). Requests without an info_hash go round robin.
//!   A multi-hash scrape, routed to one instance, is right for every hash after one
//!   flush and one reload (SIGHUP).
//! - A killed instance's torrents are served by the other at once; the survivor's never
//!   fail.
//! - The same announces through HAProxy and two instances, and straight to one tracker
//!   without `instance`, leave identical accounting rows.
//!
//! `haproxy` comes from Debian's package (`make test` installs it when run as root,
//! `scripts/ensure-haproxy.sh`). Without it these tests say they are skipped, unless
//! `CI` is set, where that is a failure.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{Process, ANY_PORT};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SHIPPED: &str = "contrib/haproxy/chihaya.cfg";
const TOKEN: &str = "sc4le-0ut-adm1n-t0ken";
const WAIT: Duration = Duration::from_secs(20);
const TORRENTS: usize = 50;
const FIRST_ID: usize = 100;
/// The first this many torrents' hashes start with a 0 byte: were the sample cut at
/// a %00, they would all hash alike and land on one instance.
const NUL_FIRST: usize = 12;
/// Users of this test: seeders and leechers (never the same user in one swarm).
const SEEDERS: [u32; 2] = [10, 11];
const LEECHERS: [u32; 3] = [12, 13, 14];
/// Where the peers' requests come from (all of 127/8 is loopback).
const SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const LEECHER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// What a client sends as `X-Real-IP` through HAProxy: it must never reach the tracker.
const SPOOFED: &str = "203.0.113.7";

fn say(line: &str) {
    tools::say("scale_out", line);
}

/// The haproxy to run; None (the test is skipped) without one, except on CI, where
/// that fails the test.
fn haproxy_or_skip() -> Option<PathBuf> {
    tools::present_or_skip("scale_out", &["haproxy"], "package haproxy")
        .then(|| tools::find("haproxy"))
        .flatten()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 50 info_hashes, always the same: random bytes, plus in each an unreserved
/// punctuation byte, a lower- and an upper-case letter, a `+` and a 0 byte.
fn hashes() -> Vec<[u8; 20]> {
    let mut state = 17;
    let mut out: Vec<[u8; 20]> = Vec::new();
    while out.len() < TORRENTS {
        let i = out.len();
        let mut hash = [0u8; 20];
        for byte in hash.iter_mut() {
            *byte = (splitmix(&mut state) >> 32) as u8;
        }
        hash[3] = b"~-._"[i % 4];
        hash[7] = b'a' + (i % 26) as u8;
        hash[8] = b'Z' - (i % 26) as u8;
        hash[11] = b'+';
        hash[15] = 0;
        if i < NUL_FIRST {
            hash[0] = 0;
        }
        if !out.contains(&hash) {
            out.push(hash);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// How a client writes the hash in its query.
#[derive(Clone, Copy, Debug)]
enum Escaping {
    /// Every byte `%XX`, upper-case hex (what libtorrent and the tests elsewhere send).
    Upper,
    /// Unreserved bytes raw, the others `%xx` in lower case.
    RawLower,
    /// Byte by byte in turn: raw when unreserved (else `%XX`), then `%xx`.
    Mixed,
}

const ESCAPINGS: [Escaping; 3] = [Escaping::Upper, Escaping::RawLower, Escaping::Mixed];

fn escaped(bytes: &[u8], how: Escaping) -> String {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| match how {
            Escaping::Upper => format!("%{b:02X}"),
            Escaping::RawLower if unreserved(b) => (b as char).to_string(),
            Escaping::RawLower => format!("%{b:02x}"),
            Escaping::Mixed if i % 2 == 0 && unreserved(b) => (b as char).to_string(),
            Escaping::Mixed if i % 2 == 0 => format!("%{b:02X}"),
            Escaping::Mixed => format!("%{b:02x}"),
        })
        .collect()
}

/// The announce's request target, its hash escaped `how`.
fn target(a: &Announce, how: Escaping) -> String {
    let plain = format!("info_hash={}", escape(&a.info_hash));
    let target = a.target();
    assert!(target.contains(&plain));
    target.replacen(
        &plain,
        &format!("info_hash={}", escaped(&a.info_hash, how)),
        1,
    )
}

// ---- the site: users and torrents ----

fn passkey(user: u32) -> String {
    format!("scaleout{user:024}")
}

/// A test database with the fixtures, users 10–14 and torrents 100–149 (some with
/// multipliers; with `pruned`, every tenth one pruned, for the seeder to unprune).
async fn site_db(hashes: &[[u8; 20]], pruned: bool) -> TestDb {
    let db = TestDb::new().await;
    let users: Vec<String> = SEEDERS
        .iter()
        .chain(&LEECHERS)
        .map(|&id| {
            let up = if id == 11 { 2 } else { 1 };
            format!("({id}, '{}', '1', 0, 0, 0, 0, 1, {up}, 0, 0)", passkey(id))
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO users_main (ID, torrent_pass, Enabled, Uploaded, Downloaded, rawup, rawdl, \
         DownMultiplier, UpMultiplier, DisableDownload, TrackerHide) VALUES {}",
        users.join(", ")
    ))
    .await;
    let torrents: Vec<String> = hashes
        .iter()
        .enumerate()
        .map(|(i, hash)| {
            let down = if i % 5 == 0 { 0 } else { 1 };
            let up = if i % 7 == 0 { 2 } else { 1 };
            let status = i32::from(pruned && i % 10 == 3);
            format!(
                "({}, 1, 'anime', UNHEX('{}'), 0, 0, 0, 0, {down}, {up}, {status})",
                FIRST_ID + i,
                hex(hash)
            )
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash, Leechers, Seeders, \
         last_action, Snatched, DownMultiplier, UpMultiplier, Status) VALUES {}",
        torrents.join(", ")
    ))
    .await;
    db
}

// ---- trackers ----

/// One `chihaya` process with its own working directory, journal, peer cache and
/// spill file, reading the client address from `X-Real-IP`.
struct Tracker {
    process: Process,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Tracker {
    /// An instance named `instance`, or with None a lone tracker (no `instance` key).
    fn start(db: &TestDb, instance: Option<&str>) -> Tracker {
        let dir = TempDir::new(&format!("scale-out-{}", instance.unwrap_or("single")));
        let config = dir.0.join("config.json");
        let instance_key = instance
            .map(|name| format!(r#""instance": "{name}", "#))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                r#"{{"addr": "{ANY_PORT}", {instance_key}"proxy": "X-Real-IP", "admin_token": "{TOKEN}", "intervals": {{"announce_drift": 0, "flush": 1, "database_reload": 3600}}}}"#
            ),
        )
        .expect("write the config");
        let spill = dir.0.join("spill.jsonl");
        let cache = dir.0.join("peer-cache.bin");
        let cwd = dir.0.clone();
        let mut process = Process::start_with(
            &config,
            &db.dsn(),
            &[
                "--spill",
                spill.to_str().unwrap(),
                "--peer-cache",
                cache.to_str().unwrap(),
            ],
            |command| {
                command.current_dir(&cwd);
            },
        );
        let addr = process.wait_ready(WAIT);
        Tracker {
            process,
            addr,
            _dir: dir,
        }
    }

    /// SIGHUP, then waits for the torrents' reload it starts.
    fn reload(&mut self) {
        self.process.skip_written_lines();
        self.process.signal("HUP");
        self.process.wait_for("Torrent load complete", WAIT);
    }

    /// The log lines so far of flushes taken as already committed: what instances
    /// sharing their commit markers (no distinct `instance`) do to each other's.
    fn flushes_taken_as_committed(&mut self) -> Vec<String> {
        self.process.skip_written_lines();
        let log = self.process.log_text();
        log.lines()
            .filter(|line| line.contains("although its reply was lost"))
            .map(str::to_owned)
            .collect()
    }

    /// SIGTERM (the drain writes everything), the exit status and the log.
    async fn stop(self) -> (std::process::ExitStatus, String) {
        self.process.terminate(WAIT).await
    }

    /// `chihaya_refusals_total{reason}` as the instance itself reports it.
    async fn refusals(&self, reason: &str) -> f64 {
        let bearer = format!("Bearer {TOKEN}");
        let response = get(self.addr, "/metrics", &[("Authorization", &bearer)]).await;
        assert_eq!(response.status, 200);
        common::prom::parse(&response.text())
            .value("chihaya_refusals_total", &[("reason", reason)])
            .expect("the refusal counter")
    }
}

// ---- haproxy ----

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The shipped config, ready to run here: its `bind :80` on `front`, its two server
/// addresses on the instances'. Not root, it runs as whoever runs the test, so the
/// lines that drop root (`chroot`, `user`, `group`) go.
fn concrete_config(front: SocketAddr, servers: [SocketAddr; 2]) -> String {
    let shipped =
        std::fs::read_to_string(tools::repo_path(SHIPPED)).expect("read the shipped config");
    let mut text = shipped;
    for (from, to) in [
        ("    bind :80\n".to_owned(), format!("    bind {front}\n")),
        ("10.0.0.11:34000".to_owned(), servers[0].to_string()),
        ("10.0.0.12:34000".to_owned(), servers[1].to_string()),
    ] {
        assert_eq!(
            text.matches(&from).count(),
            1,
            "{SHIPPED} has exactly one {from:?}: the test puts its addresses there"
        );
        text = text.replace(&from, &to);
    }
    if !is_root() {
        text = text
            .lines()
            .filter(|line| {
                let word = line.split_whitespace().next().unwrap_or("");
                !["chroot", "user", "group"].contains(&word)
            })
            .map(|line| format!("{line}\n"))
            .collect();
    }
    text
}

/// The shipped backend's `balance hash` expression.
fn balance_expression() -> String {
    let shipped =
        std::fs::read_to_string(tools::repo_path(SHIPPED)).expect("read the shipped config");
    let lines: Vec<&str> = shipped
        .lines()
        .filter_map(|line| line.trim().strip_prefix("balance hash "))
        .collect();
    assert_eq!(lines.len(), 1, "one `balance hash` line in {SHIPPED}");
    lines[0].trim().to_owned()
}

/// A second config file for the same haproxy: a frontend that answers with what
/// `url_param(info_hash)` and the shipped expression make of the request (raw value,
/// then the expression's bytes in hex, then their length; an empty line for no
/// sample). It inherits the shipped `defaults`.
fn probe_config(probe: SocketAddr) -> String {
    let expression = balance_expression();
    format!(
        "frontend scale_out_probe\n    bind {probe}\n    no log\n    http-request return status 200 \
         content-type text/plain lf-string \"%[url_param(info_hash)]\\n%[{expression},hex]\\n%[{expression},length]\\n\"\n"
    )
}

/// The number of connections haproxy may take here: the shipped `maxconn` needs about
/// two descriptors per connection, more than a test box may allow (`-n` overrides it).
fn maxconn_override() -> Option<u64> {
    let shipped =
        std::fs::read_to_string(tools::repo_path(SHIPPED)).expect("read the shipped config");
    let maxconn: u64 = shipped
        .lines()
        .find_map(|line| line.trim().strip_prefix("maxconn "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a global maxconn");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (!ok || limit.rlim_max < 2 * maxconn + 1000).then_some(4000)
}

/// Our own haproxy in the foreground (`-db`), killed when dropped.
struct Haproxy {
    child: Option<Child>,
    /// The shipped frontend.
    addr: SocketAddr,
    /// The probe frontend ([`probe_config`]).
    probe: SocketAddr,
    /// Every stderr line so far, with the time it was read.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts in front of `servers` (instances a and b); returns once both frontends
    /// accept connections.
    async fn start(program: &Path, servers: [SocketAddr; 2]) -> Haproxy {
        // A port may be taken between our look and haproxy's bind: then it exits, and
        // another try takes other ports.
        for _ in 0..3 {
            let mut haproxy = Haproxy::spawn(program, servers);
            if haproxy.wait_ready(WAIT).await {
                return haproxy;
            }
            say(&format!("no ready haproxy:\n{}", haproxy.log_text()));
        }
        panic!("haproxy did not start");
    }

    fn spawn(program: &Path, servers: [SocketAddr; 2]) -> Haproxy {
        let dir = TempDir::new("haproxy");
        let (addr, probe) = (tools::free_addr(), tools::free_addr());
        let config = dir.0.join("chihaya.cfg");
        let probe_file = dir.0.join("probe.cfg");
        std::fs::write(&config, concrete_config(addr, servers)).expect("write the config");
        std::fs::write(&probe_file, probe_config(probe)).expect("write the probe");
        let mut command = Command::new(program);
        command
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .arg("-f")
            .arg(&probe_file);
        if let Some(maxconn) = maxconn_override() {
            command.arg("-n").arg(maxconn.to_string());
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        });
        Haproxy {
            child: Some(child),
            addr,
            probe,
            log,
            _dir: dir,
        }
    }

    async fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && tokio::net::TcpStream::connect(self.probe).await.is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn log_text(&self) -> String {
        let log = self.log.lock().unwrap();
        let lines: Vec<&str> = log.iter().map(|(_, line)| line.as_str()).collect();
        lines.join("\n")
    }

    /// When the first log line containing `text` was read, if there is one yet.
    fn line_time(&self, text: &str) -> Option<Instant> {
        let log = self.log.lock().unwrap();
        log.iter()
            .find(|(_, l)| l.contains(text))
            .map(|(at, _)| *at)
    }

    /// What the probe frontend makes of `query`: (raw value, decoded bytes in hex,
    /// their length), each "" when there is no sample.
    async fn probe(&self, query: &str) -> (String, String, String) {
        let response = get(self.probe, &format!("/probe/announce?{query}"), &[]).await;
        assert_eq!(response.status, 200, "{query}");
        let text = response.text();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 4, "{query}: {text:?}");
        (lines[0].into(), lines[1].into(), lines[2].into())
    }

    /// Kills haproxy and asserts its log never shows a passkey or a query string.
    fn assert_log_clean(&mut self) {
        self.kill();
        let log = self.log_text();
        for user in SEEDERS.iter().chain(&LEECHERS) {
            assert!(
                !log.contains(&passkey(*user)),
                "a passkey in the log:\n{log}"
            );
        }
        assert!(!log.contains(PASSKEY_1), "a passkey in the log:\n{log}");
        assert!(!log.contains("info_hash"), "a query in the log:\n{log}");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The reader thread takes the last lines once the pipe closes.
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- haproxy log ---\n{}", self.log_text());
        }
    }
}

/// Two instances on `db` and haproxy in front of them.
struct Cluster {
    a: Tracker,
    b: Tracker,
    haproxy: Haproxy,
}

impl Cluster {
    async fn start(program: &Path, db: &TestDb) -> Cluster {
        let a = Tracker::start(db, Some("a"));
        let b = Tracker::start(db, Some("b"));
        let haproxy = Haproxy::start(program, [a.addr, b.addr]).await;
        Cluster { a, b, haproxy }
    }
}

// ---- requests ----

/// Sends one request from `from` (a loopback address of the client's) and reads the
/// whole response.
async fn send(to: SocketAddr, from: Ipv4Addr, target: &str, headers: &[(&str, &str)]) -> Response {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let mut stream = socket.connect(to).await.expect("connect");
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: tracker\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .expect("read");
    parse_response(&raw, false)
}

/// How a request reaches a tracker.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Through haproxy, from the peer's address, with a spoofed `X-Real-IP` that
    /// haproxy must replace.
    Haproxy(SocketAddr),
    /// Straight to a lone tracker, the test playing the proxy: `X-Real-IP` is the
    /// peer's address.
    Direct(SocketAddr),
}

async fn announce(via: Via, from: Ipv4Addr, a: &Announce, how: Escaping) -> Response {
    let target = target(a, how);
    match via {
        Via::Haproxy(addr) => send(addr, from, &target, &[("X-Real-IP", SPOOFED)]).await,
        Via::Direct(addr) => {
            let ip = from.to_string();
            send(addr, Ipv4Addr::LOCALHOST, &target, &[("X-Real-IP", &ip)]).await
        }
    }
}

fn seeder(hashes: &[[u8; 20]], i: usize) -> Announce {
    Announce::new(
        &passkey(SEEDERS[i % SEEDERS.len()]),
        &hex(&hashes[i]),
        &format!("s{i:03}"),
        0,
    )
    .port(20_000 + i as u16)
}

fn leecher(hashes: &[[u8; 20]], i: usize) -> Announce {
    Announce::new(
        &passkey(LEECHERS[i % LEECHERS.len()]),
        &hex(&hashes[i]),
        &format!("l{i:03}"),
        5000,
    )
    .port(30_000 + i as u16)
}

/// A compact peer list of one peer.
fn compact(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut out = b"6:".to_vec();
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&port.to_be_bytes());
    out
}

/// A seeder's first announce and then its leecher's, each escaping the hash its own
/// way: every announce succeeds, and the leecher is handed the seeder (its address as
/// the client connected from, its port).
async fn seeder_then_leecher(via: Via, hashes: &[[u8; 20]], i: usize) {
    let (seed, leech) = (seeder(hashes, i), leecher(hashes, i));
    let how = [ESCAPINGS[i % 3], ESCAPINGS[(i + 1) % 3]];
    let r = announce(via, SEEDER_IP, &seed, how[0]).await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 0, Some(b"0:")),
        "torrent {i} seeder ({:?}): {}",
        how[0],
        r.text()
    );
    let r = announce(via, LEECHER_IP, &leech, how[1]).await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 1, Some(&compact(SEEDER_IP, seed.port))),
        "torrent {i} leecher ({:?}) sees the seeder ({:?}): {}",
        how[1],
        how[0],
        r.text()
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn scrape(addr: SocketAddr, hashes: &[&[u8; 20]], how: Escaping) -> Response {
    let query: Vec<String> = hashes
        .iter()
        .map(|h| format!("info_hash={}", escaped(&h[..], how)))
        .collect();
    get(
        addr,
        &format!("/{PASSKEY_1}/scrape?{}", query.join("&")),
        &[],
    )
    .await
}

/// Which instance holds torrent `i`'s swarm, asked of each directly: the one whose
/// scrape shows `counts` (complete, downloaded, incomplete); the other, holding no
/// swarm for it, shows zeros. Returns 0 for a, 1 for b.
async fn owner(cluster: &Cluster, hashes: &[[u8; 20]], i: usize, counts: (u32, u32, u32)) -> usize {
    let held = scrape_body(&[scrape_entry(&hashes[i], counts.0, counts.1, counts.2)]);
    let none = scrape_body(&[scrape_entry(&hashes[i], 0, 0, 0)]);
    let mut bodies = Vec::new();
    for addr in [cluster.a.addr, cluster.b.addr] {
        bodies.push(scrape(addr, &[&hashes[i]], Escaping::Upper).await.body);
    }
    match (bodies[0] == held, bodies[1] == held) {
        (true, false) if bodies[1] == none => 0,
        (false, true) if bodies[0] == none => 1,
        _ => panic!(
            "torrent {i}: exactly one instance holds its swarm; a: {}, b: {}",
            String::from_utf8_lossy(&bodies[0]),
            String::from_utf8_lossy(&bodies[1])
        ),
    }
}

/// The owner (0 = a, 1 = b) of every torrent; both must have a fair share, and the
/// hashes starting with a 0 byte must not all go one way.
async fn owners(cluster: &Cluster, hashes: &[[u8; 20]], counts: (u32, u32, u32)) -> Vec<usize> {
    let mut out = Vec::new();
    for i in 0..hashes.len() {
        out.push(owner(cluster, hashes, i, counts).await);
    }
    let on_a = out.iter().filter(|&&o| o == 0).count();
    say(&format!(
        "instance a holds {on_a} torrents, b {}",
        out.len() - on_a
    ));
    assert!(
        on_a >= 5 && out.len() - on_a >= 5,
        "each instance holds at least 5 of the {} torrents: {out:?}",
        out.len()
    );
    let nul_first = &out[..NUL_FIRST];
    assert!(
        nul_first.contains(&0) && nul_first.contains(&1),
        "hashes that start with %00 spread over both instances (the bytes after a 0 count): {nul_first:?}"
    );
    out
}

// ---- the tests ----

/// What HAProxy 2.6 makes of the info_hash, with the shipped expression: the raw value
/// as sent, and after `url_dec(1)` the same 20 bytes the tracker decodes, whichever way
/// each byte is written; and the edge cases the config's comments describe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_hashes_the_info_hash_the_tracker_decodes() {
    let Some(program) = haproxy_or_skip() else {
        return;
    };
    let check = Command::new(&program)
        .arg("-c")
        .arg("-f")
        .arg(tools::repo_path(SHIPPED))
        .output()
        .expect("haproxy -c");
    assert!(
        check.status.success(),
        "the shipped file is valid as it is: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // No trackers behind it: only the probe frontend is asked.
    let haproxy = Haproxy::start(&program, [tools::free_addr(), tools::free_addr()]).await;
    for hash in hashes() {
        for how in ESCAPINGS {
            let sent = escaped(&hash, how);
            let got = haproxy
                .probe(&format!("peer_id=x&info_hash={sent}&port=1"))
                .await;
            assert_eq!(
                got,
                (sent.clone(), hex(&hash), "20".to_owned()),
                "{how:?} {sent}"
            );
        }
    }
    for (query, raw, decoded) in [
        // + is a space, as the tracker reads it; %2B is a +.
        ("info_hash=a+b%2B", "a+b%2B", "6120622B"),
        // Upper- and lower-case hex and the raw byte are one byte.
        ("info_hash=%7e%7E~", "%7e%7E~", "7E7E7E"),
        // A 0 byte is kept, and the bytes after it count.
        ("info_hash=%00%00x", "%00%00x", "000078"),
        // The first of several values: a multi-hash scrape goes by its first hash.
        ("info_hash=%01&info_hash=%02", "%01", "01"),
        // The value ends at a ; as at a & (the tracker splits on & only; clients
        // escape ; in a hash).
        ("info_hash=%03;x=y", "%03", "03"),
    ] {
        let got = haproxy.probe(query).await;
        let length = (decoded.len() / 2).to_string();
        assert_eq!(got, (raw.into(), decoded.into(), length), "{query}");
    }
    // Nothing to hash (HAProxy then goes round robin): no info_hash, a bad escape.
    for query in ["peer_id=x", "info_hash=%g0", "INFO_HASH=%01"] {
        let got = haproxy.probe(query).await;
        assert_eq!(
            (got.1.as_str(), got.2.as_str()),
            ("", ""),
            "{query}: {got:?}"
        );
    }
}

/// Issue 17's sharding: each torrent on one instance whatever the escaping, the real
/// client address, round robin without a hash, and a multi-hash scrape that is right
/// for every hash after a flush and a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarms_are_sharded_by_decoded_info_hash() {
    let Some(program) = haproxy_or_skip() else {
        return;
    };
    let hashes = hashes();
    let db = site_db(&hashes, false).await;
    let mut cluster = Cluster::start(&program, &db).await;
    let via = Via::Haproxy(cluster.haproxy.addr);

    // (a) A seeder and a leecher per torrent, each escaping differently.
    for i in 0..TORRENTS {
        seeder_then_leecher(via, &hashes, i).await;
    }
    // (b) Each swarm on exactly one instance, seeder and leecher together, asked of
    // the instances directly before any reload: the other one has no counts for it.
    let owners = owners(&cluster, &hashes, (1, 0, 1)).await;

    // Without an info_hash there is nothing to hash: round robin over both.
    let before = [
        cluster.a.refusals("info_hash_missing").await,
        cluster.b.refusals("info_hash_missing").await,
    ];
    let missing = format!(
        "/{PASSKEY_1}/announce?peer_id=-TR2940-000000000000&port=1&uploaded=0&downloaded=0&left=0"
    );
    for _ in 0..40 {
        let r = get(cluster.haproxy.addr, &missing, &[]).await;
        assert_eq!(
            r.text(),
            failure_body("Malformed request - missing info_hash", 3600)
        );
    }
    let took = [
        cluster.a.refusals("info_hash_missing").await - before[0],
        cluster.b.refusals("info_hash_missing").await - before[1],
    ];
    say(&format!(
        "40 announces without info_hash: a took {}, b {}",
        took[0], took[1]
    ));
    assert_eq!(took[0] + took[1], 40.0);
    assert!(took[0] >= 5.0 && took[1] >= 5.0, "round robin: {took:?}");
    assert_eq!(get(cluster.haproxy.addr, "/check", &[]).await.status, 200);

    // (c) One flush (the owners write the counts), one reload of both, then a scrape
    // of all 50 hashes through haproxy, once routed to each instance (by its first
    // hash): right for every hash.
    let flushed = eventually(Duration::from_secs(10), || async {
        db.rows("SELECT COUNT(*) FROM torrents WHERE ID >= 100 AND Seeders = 1 AND Leechers = 1")
            .await
            == vec![vec![TORRENTS.to_string()]]
    })
    .await;
    assert!(
        flushed,
        "the owners wrote every torrent's counts within 10 s; flushes taken as already \
         committed: a {:?}, b {:?}",
        cluster.a.flushes_taken_as_committed(),
        cluster.b.flushes_taken_as_committed()
    );
    // The tracker saw the clients' own addresses, not the spoofed header.
    let ips =
        "SELECT INET_NTOA(ip), COUNT(*) FROM transfer_ips WHERE fid >= 100 GROUP BY ip ORDER BY ip";
    let want_ips = vec![
        vec!["127.0.0.2".to_owned(), TORRENTS.to_string()],
        vec!["127.0.0.3".to_owned(), TORRENTS.to_string()],
    ];
    assert!(
        eventually(Duration::from_secs(10), || async {
            db.rows(ips).await == want_ips
        })
        .await,
        "{:?}",
        db.rows(ips).await
    );
    cluster.a.reload();
    cluster.b.reload();
    let mut sorted: Vec<&[u8; 20]> = hashes.iter().collect();
    sorted.sort();
    let want = scrape_body(
        &sorted
            .iter()
            .map(|h| scrape_entry(h, 1, 0, 1))
            .collect::<Vec<_>>(),
    );
    for first_on in [0, 1] {
        let first = owners.iter().position(|&o| o == first_on).unwrap();
        let mut order: Vec<&[u8; 20]> = vec![&hashes[first]];
        order.extend(
            hashes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != first)
                .map(|(_, h)| h),
        );
        let r = scrape(cluster.haproxy.addr, &order, Escaping::RawLower).await;
        if r.body != want {
            let wrong: Vec<(usize, &str)> = (0..TORRENTS)
                .filter(|&i| !contains(&r.body, &scrape_entry(&hashes[i], 1, 0, 1)))
                .map(|i| (FIRST_ID + i, ["a", "b"][owners[i]]))
                .collect();
            panic!(
                "a scrape of every hash, routed to instance {}, shows complete 1, incomplete 1 \
                 for every torrent; wrong for (torrent, its owner) {wrong:?}",
                ["a", "b"][first_on]
            );
        }
    }
    cluster.haproxy.assert_log_clean();
}

/// A crashed instance (SIGKILL): its torrents' announces go to the other at once
/// (haproxy retries the refused connection on the next server of the ring, and marks
/// the instance down after `fall` failed checks), and the survivor's never fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_torrents_move_to_the_other() {
    let Some(program) = haproxy_or_skip() else {
        return;
    };
    let hashes = hashes();
    let db = site_db(&hashes, false).await;
    let mut cluster = Cluster::start(&program, &db).await;
    let via = Via::Haproxy(cluster.haproxy.addr);
    for i in 0..TORRENTS {
        let r = announce(via, SEEDER_IP, &seeder(&hashes, i), Escaping::Upper).await;
        assert_eq!(r.body, announce_body(1, 0, 0, Some(b"0:")), "{}", r.text());
    }
    let owners = owners(&cluster, &hashes, (1, 0, 0)).await;
    let (on_a, on_b): (Vec<usize>, Vec<usize>) = (0..TORRENTS).partition(|&i| owners[i] == 0);

    let killed = Instant::now();
    cluster.a.process.kill();
    // Until haproxy has marked a down and one round more: the leechers of a's
    // torrents announce, each until it is answered (by b, which never saw the seeder:
    // a swarm of one leecher) and then every round, which must succeed from then on;
    // the survivor's torrents' seeders announce in between, and must succeed always.
    let mut answered: Vec<Option<Duration>> = vec![None; TORRENTS];
    let mut down: Option<Duration> = None;
    let mut rounds_after_down = 0;
    while rounds_after_down < 2 {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "within 10 s of the kill, haproxy marked a down ({down:?}) and every torrent \
             of a was answered: {:?}",
            on_a.iter()
                .filter(|&&i| answered[i].is_none())
                .collect::<Vec<_>>()
        );
        for (n, &i) in on_a.iter().enumerate() {
            let r = announce(via, LEECHER_IP, &leecher(&hashes, i), Escaping::RawLower).await;
            if r.status == 200 && r.body == announce_body(0, 0, 1, Some(b"0:")) {
                answered[i].get_or_insert(killed.elapsed());
            } else {
                assert!(
                    answered[i].is_none() && down.is_none(),
                    "torrent {i} was answered {:?} after the kill, a down {down:?}; \
                     after {:?}: {} {}",
                    answered[i],
                    killed.elapsed(),
                    r.status,
                    r.text()
                );
                say(&format!(
                    "torrent {i}, {:?} after the kill: {} {}",
                    killed.elapsed(),
                    r.status,
                    r.text()
                ));
            }
            let j = on_b[n % on_b.len()];
            let r = announce(via, SEEDER_IP, &seeder(&hashes, j), Escaping::Mixed).await;
            assert!(
                r.status == 200 && r.text().starts_with("d8:complete"),
                "the survivor's torrent {j} is served throughout, {:?} after the kill: {} {}",
                killed.elapsed(),
                r.status,
                r.text()
            );
        }
        if down.is_none() {
            // inter 1s, fall 2: down after two failed checks, about 2 s after the kill.
            down = cluster
                .haproxy
                .line_time("chihaya/a is DOWN")
                .map(|at| at.duration_since(killed));
        }
        if down.is_some() && on_a.iter().all(|&i| answered[i].is_some()) {
            rounds_after_down += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slowest = on_a.iter().filter_map(|&i| answered[i]).max();
    say(&format!(
        "after the kill: every one of a's {} torrents answered within {slowest:?}, a marked down after {down:?}",
        on_a.len()
    ));
    let down = down.expect("a marked down");
    assert!(down < Duration::from_secs(5), "a down within 5 s: {down:?}");
    // A request redispatched from a is logged (a retry is not "normal"), as "/*/announce".
    assert!(
        cluster.haproxy.log_text().contains(r#"GET "/*/announce""#),
        "{}",
        cluster.haproxy.log_text()
    );

    // The swarms rebuild on b as their seeders re-announce.
    for &i in &on_a {
        let seed = seeder(&hashes, i);
        let r = announce(via, SEEDER_IP, &seed, Escaping::Upper).await;
        assert_eq!(
            r.body,
            announce_body(
                1,
                0,
                1,
                Some(&compact(LEECHER_IP, leecher(&hashes, i).port))
            ),
            "torrent {i}'s seeder, back, meets its leecher on b: {}",
            r.text()
        );
    }
    cluster.haproxy.assert_log_clean();
}

/// A row of each database at the same position, if there is one.
type Pair<'a> = (Option<&'a Vec<String>>, Option<&'a Vec<String>>);

/// The same announces, with transfer and completions, through haproxy and two
/// instances on one database, and straight to one lone tracker on another: once every
/// tracker drained (SIGTERM), the accounting rows are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_account_like_one_tracker() {
    let Some(program) = haproxy_or_skip() else {
        return;
    };
    let hashes = hashes();
    let (db1, db2) = (site_db(&hashes, true).await, site_db(&hashes, true).await);
    let cluster = Cluster::start(&program, &db1).await;
    let single = Tracker::start(&db2, None);

    let mut bodies = Vec::new();
    for via in [Via::Haproxy(cluster.haproxy.addr), Via::Direct(single.addr)] {
        let mut run = Vec::new();
        for i in 0..TORRENTS {
            seeder_then_leecher(via, &hashes, i).await;
            let seed = seeder(&hashes, i).transfer(4000 + i as u64, 0);
            let leech = leecher(&hashes, i)
                .transfer(100 + i as u64, 5000)
                .left(0)
                .event("completed");
            run.push(
                announce(via, SEEDER_IP, &seed, ESCAPINGS[(i + 2) % 3])
                    .await
                    .body,
            );
            run.push(
                announce(via, LEECHER_IP, &leech, ESCAPINGS[i % 3])
                    .await
                    .body,
            );
        }
        bodies.push(run);
    }
    assert_eq!(
        bodies[0], bodies[1],
        "the same answers through haproxy and from one tracker"
    );
    // Both instances took part.
    owners(&cluster, &hashes, (2, 1, 0)).await;

    let Cluster { a, b, haproxy } = cluster;
    drop(haproxy);
    let (a, b, single) = tokio::join!(a.stop(), b.stop(), single.stop());
    let mut skipped = String::new();
    for (name, (status, log)) in [("a", a), ("b", b), ("single", single)] {
        assert_eq!(status.code(), Some(0), "{name} drained and exited:\n{log}");
        // Instances that shared their commit markers would take each other's flushes
        // for their own: say so if rows differ.
        for line in log
            .lines()
            .filter(|l| l.contains("although its reply was lost"))
        {
            skipped.push_str(&format!("{name}: {line}\n"));
        }
    }

    let queries = [
        "SELECT ID, Uploaded, Downloaded, rawup, rawdl FROM users_main ORDER BY ID",
        "SELECT ID, Seeders, Leechers, Snatched, Status FROM torrents ORDER BY ID",
        "SELECT uid, fid, uploaded, downloaded, seeding, snatched, active, hnr, remaining, \
         snatched_time > 0 FROM transfer_history ORDER BY uid, fid",
        "SELECT uid, fid, INET_NTOA(ip), port, client_id, uploaded, downloaded FROM transfer_ips \
         ORDER BY uid, fid, ip, client_id",
    ];
    for query in queries {
        let (sharded, single) = (db1.rows(query).await, db2.rows(query).await);
        // Row number: (two instances, one tracker), for the rows that differ.
        let differ: BTreeMap<usize, Pair<'_>> = (0..sharded.len().max(single.len()))
            .filter(|&n| sharded.get(n) != single.get(n))
            .map(|n| (n, (sharded.get(n), single.get(n))))
            .collect();
        assert!(
            differ.is_empty(),
            "{query}: rows differ (row: (two instances, one tracker)):\n{differ:#?}\n\
             flushes taken as already committed:\n{skipped}"
        );
    }
    // And the rows say what the announces did: every torrent seeded by two, snatched
    // once, unpruned.
    assert_eq!(
        db1.rows("SELECT Seeders, Leechers, Snatched, Status, COUNT(*) FROM torrents WHERE ID >= 100 GROUP BY 1, 2, 3, 4")
            .await,
        vec![vec!["2".into(), "0".into(), "1".into(), "0".into(), TORRENTS.to_string()]]
    );
    assert_eq!(
        db1.rows("SELECT COUNT(*), SUM(snatched), SUM(uploaded) > 0 FROM transfer_history WHERE fid >= 100")
            .await,
        vec![vec![(2 * TORRENTS).to_string(), TORRENTS.to_string(), "1".into()]]
    );
}

/// The `instance` key is known (no "unknown key" warning) and checked: 1 to 15
/// characters of `[A-Za-z0-9_-]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_is_a_config_key() {
    let db = TestDb::new().await;
    let mut a = Tracker::start(&db, Some("tracker-a_15chr"));
    a.process.skip_written_lines();
    let log = a.process.log_text();
    assert!(
        !log.contains("unknown key"),
        "`instance` is a config key:\n{log}"
    );
    drop(a);
    for bad in ["a b", "sixteen-chars-16", "ü"] {
        let dir = TempDir::new("scale-out-bad-instance");
        let config = dir.0.join("config.json");
        std::fs::write(
            &config,
            format!(r#"{{"addr": "{ANY_PORT}", "instance": "{bad}"}}"#),
        )
        .unwrap();
        let mut process = Process::start(&config, &db.dsn(), &[]);
        let status = tokio::task::spawn_blocking(move || {
            let status = process.wait(Duration::from_secs(10));
            (status, process.log_text())
        })
        .await
        .unwrap();
        assert_eq!(
            status.0.code(),
            Some(1),
            "instance {bad:?} refused:\n{}",
            status.1
        );
        assert!(status.1.contains("config: instance:"), "{}", status.1);
    }
}
