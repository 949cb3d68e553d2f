//! Crashes: the real binary killed with SIGKILL at ten moments of its life under load
//! loses no acknowledged byte and counts none twice, once its journal is replayed; a
//! database reply lost after the server did the work does not make the tracker do the
//! work a second time.
//!
//! The ledger: every simulated peer remembers the first and the latest counters the
//! tracker acknowledged (HTTP 200 with a body that is not a `failure reason`), and its
//! acknowledged `completed` announces. An announce that got no answer is sent again,
//! with the same counters, until one is acknowledged: whether or not the tracker saw
//! the first one, the credited sum telescopes to latest minus first. A `completed`
//! cannot be sent twice that way, so none is in flight when the tracker is killed.
//!
//! `cargo test --test crash -- --nocapture` prints, for each kill, the bytes it lost
//! and counted twice (also printed when the test fails).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{pin_addr, ready_addr, Process, ANY_PORT};
use common::proxy::Proxy;
use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::mysql::MySqlPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Ids of the users and torrents these tests add (the fixtures' are lower).
const FIRST_USER: u32 = 1000;
const FIRST_TORRENT: u32 = 100;
const READY: &str = "Ready and accepting new connections";
const START_WITHIN: Duration = Duration::from_secs(20);
/// Many times the journal thread's 2 ms write cadence, for a loaded machine.
const JOURNAL_CATCH_UP: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------
// The swarm: users, torrents and peers of their own, every multiplier 1, so that the
// credited bytes are the raw ones.

/// One simulated client: a (user, peer_id) on one torrent, with an address of its own
/// (sent as `ip=`), so that each peer is one `transfer_ips` row.
#[derive(Clone, Debug)]
struct Spec {
    uid: u32,
    fid: u32,
    passkey: String,
    hash: String,
    tag: String,
    port: u16,
    ip: [u8; 4],
}

impl Spec {
    /// `transfer_ips.ip`: the address as ip2long gives it.
    fn ip_long(&self) -> u32 {
        u32::from_be_bytes(self.ip)
    }

    fn target(&self, up: u64, down: u64, left: u64, completed: bool) -> String {
        let [a, b, c, d] = self.ip;
        let mut announce = Announce::new(&self.passkey, &self.hash, &self.tag, left)
            .port(self.port)
            .transfer(up, down)
            .numwant(0)
            .extra(&format!("&ip={a}.{b}.{c}.{d}"));
        if completed {
            announce = announce.event("completed");
        }
        announce.target()
    }
}

fn passkey(uid: u32) -> String {
    format!("crashtest{uid:023}")
}

fn info_hash(fid: u32) -> String {
    format!("C4A54E{fid:034X}")
}

/// Adds `users` users and `torrents` torrents, and one peer per user and torrent
/// (two for every `double`-th user); returns the peers.
async fn create_swarm(db: &TestDb, users: u32, torrents: u32, double: u32) -> Vec<Spec> {
    let user_rows: Vec<String> = (0..users)
        .map(|u| {
            format!(
                "({}, '{}', '1', 0, 0, 0, 0, 1, 1)",
                FIRST_USER + u,
                passkey(FIRST_USER + u)
            )
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO users_main (ID, torrent_pass, Enabled, Uploaded, Downloaded, rawup, rawdl, \
         DownMultiplier, UpMultiplier) VALUES {}",
        user_rows.join(", ")
    ))
    .await;
    // Group 1 music has no group freeleech; the torrents' own multipliers are 1.
    let torrent_rows: Vec<String> = (0..torrents)
        .map(|t| {
            let fid = FIRST_TORRENT + t;
            format!("({fid}, 1, 'music', UNHEX('{}'), 1, 1, 0)", info_hash(fid))
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash, DownMultiplier, UpMultiplier, \
         Status) VALUES {}",
        torrent_rows.join(", ")
    ))
    .await;
    let mut specs = Vec::new();
    for u in 0..users {
        for t in 0..torrents {
            let copies = if double > 0 && u % double == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let n = u16::try_from(specs.len()).expect("fewer than 65536 peers");
                let [hi, lo] = n.to_be_bytes();
                specs.push(Spec {
                    uid: FIRST_USER + u,
                    fid: FIRST_TORRENT + t,
                    passkey: passkey(FIRST_USER + u),
                    hash: info_hash(FIRST_TORRENT + t),
                    tag: format!("crash{n:05}"),
                    port: 20_000 + n,
                    ip: [23, 16 + hi, lo, 7],
                });
            }
        }
    }
    specs
}

// ---------------------------------------------------------------------------------
// HTTP, without panics: a test that kills the server needs to tell the outcomes apart.

#[derive(Debug)]
enum Sent {
    /// 200 and a body that is not a failure: the tracker took it.
    Acked,
    /// No connection: the tracker never saw it.
    Unreached,
    /// Sent, but no (complete) answer: the tracker may or may not have taken it.
    Unanswered(String),
    /// Answered with a failure (or not 200): nothing was taken.
    Rejected(String),
}

async fn send(addr: SocketAddr, target: &str) -> Sent {
    let mut stream =
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => return Sent::Unreached,
        };
    let head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(head.as_bytes()).await {
        return Sent::Unanswered(format!("send: {e}"));
    }
    let mut raw = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Sent::Unanswered(format!("read: {e}")),
        Err(_) => return Sent::Unanswered("no answer within 5 s".to_owned()),
    }
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Sent::Unanswered(format!("{} bytes, no header end", raw.len()));
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    if length != Some(body.len()) {
        return Sent::Unanswered(format!("body cut short: {length:?} != {}", body.len()));
    }
    let text = String::from_utf8_lossy(body);
    if !head.starts_with("http/1.1 200") {
        return Sent::Rejected(format!("{} {text}", head.lines().next().unwrap_or("")));
    }
    if text.contains("failure reason") || !text.starts_with("d8:complete") {
        return Sent::Rejected(text.into_owned());
    }
    Sent::Acked
}

// ---------------------------------------------------------------------------------
// The ledger and the database's books.

/// What the tracker acknowledged of one peer.
#[derive(Clone, Debug, Default)]
struct Ledger {
    /// Counters of the first acknowledged announce: the baseline, credited nothing.
    first: Option<(u64, u64)>,
    /// Counters of the latest acknowledged announce.
    last: (u64, u64),
    completions: u64,
    /// The tracker process (round) that acknowledged the latest announce.
    round: u32,
}

impl Ledger {
    fn credited(&self) -> (u64, u64) {
        self.first
            .map_or((0, 0), |(up, down)| (self.last.0 - up, self.last.1 - down))
    }

    fn record(&mut self, up: u64, down: u64, completed: bool, round: u32) {
        self.first.get_or_insert((up, down));
        self.last = (up, down);
        self.completions += u64::from(completed);
        self.round = round;
    }
}

/// The accounting of our users and torrents, as the database holds it or the ledger
/// says it must. Rows of all zeros are left out of the per-peer tables.
#[derive(Clone, Debug, Default, PartialEq)]
struct Books {
    /// users_main: rawup, rawdl, Uploaded, Downloaded.
    users: BTreeMap<u32, [u64; 4]>,
    /// transfer_history per (uid, fid): uploaded, downloaded, snatched.
    history: BTreeMap<(u32, u32), [u64; 3]>,
    /// transfer_ips per (uid, fid, ip): uploaded, downloaded.
    ips: BTreeMap<(u32, u32, u32), [u64; 2]>,
    /// torrents.Snatched.
    snatched: BTreeMap<u32, u64>,
}

fn number(text: &str) -> u64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not a number from the database: {text:?}"))
}

fn uint(text: &str) -> u32 {
    u32::try_from(number(text)).expect("an id fits in u32")
}

impl Books {
    fn expected(specs: &[Spec], ledger: &[Ledger], users: u32, torrents: u32) -> Books {
        let mut books = Books::default();
        for uid in FIRST_USER..FIRST_USER + users {
            books.users.insert(uid, [0; 4]);
        }
        for fid in FIRST_TORRENT..FIRST_TORRENT + torrents {
            books.snatched.insert(fid, 0);
        }
        for (spec, entry) in specs.iter().zip(ledger) {
            let (up, down) = entry.credited();
            let user = books.users.entry(spec.uid).or_default();
            for (column, bytes) in user.iter_mut().zip([up, down, up, down]) {
                *column += bytes;
            }
            let history = books.history.entry((spec.uid, spec.fid)).or_default();
            history[0] += up;
            history[1] += down;
            history[2] += entry.completions;
            let ips = books
                .ips
                .entry((spec.uid, spec.fid, spec.ip_long()))
                .or_default();
            ips[0] += up;
            ips[1] += down;
            *books.snatched.entry(spec.fid).or_default() += entry.completions;
        }
        books.normalized()
    }

    async fn read(db: &TestDb) -> Books {
        let mut books = Books::default();
        let users = db
            .rows(&format!(
                "SELECT ID, rawup, rawdl, Uploaded, Downloaded FROM users_main WHERE ID >= {FIRST_USER}"
            ))
            .await;
        for r in users {
            books.users.insert(
                uint(&r[0]),
                [number(&r[1]), number(&r[2]), number(&r[3]), number(&r[4])],
            );
        }
        let history = db
            .rows(&format!(
                "SELECT uid, fid, uploaded, downloaded, snatched FROM transfer_history \
                 WHERE uid >= {FIRST_USER}"
            ))
            .await;
        for r in history {
            books.history.insert(
                (uint(&r[0]), uint(&r[1])),
                [number(&r[2]), number(&r[3]), number(&r[4])],
            );
        }
        let ips = db
            .rows(&format!(
                "SELECT uid, fid, ip, SUM(uploaded), SUM(downloaded) FROM transfer_ips \
                 WHERE uid >= {FIRST_USER} GROUP BY uid, fid, ip"
            ))
            .await;
        for r in ips {
            books.ips.insert(
                (uint(&r[0]), uint(&r[1]), uint(&r[2])),
                [number(&r[3]), number(&r[4])],
            );
        }
        let torrents = db
            .rows(&format!(
                "SELECT ID, Snatched FROM torrents WHERE ID >= {FIRST_TORRENT}"
            ))
            .await;
        for r in torrents {
            books.snatched.insert(uint(&r[0]), number(&r[1]));
        }
        books.normalized()
    }

    fn normalized(mut self) -> Books {
        self.history.retain(|_, v| v.iter().any(|&n| n > 0));
        self.ips.retain(|_, v| v.iter().any(|&n| n > 0));
        self
    }

    /// Bytes (up + down) of each peer beyond what the ledger says, from transfer_ips
    /// (one row per peer): negative is lost, positive counted twice.
    fn peer_errors(&self, specs: &[Spec], ledger: &[Ledger]) -> Vec<i128> {
        specs
            .iter()
            .zip(ledger)
            .map(|(spec, entry)| {
                let got = self
                    .ips
                    .get(&(spec.uid, spec.fid, spec.ip_long()))
                    .map_or(0, |v| i128::from(v[0]) + i128::from(v[1]));
                let (up, down) = entry.credited();
                got - i128::from(up) - i128::from(down)
            })
            .collect()
    }

    /// Snatches of each torrent beyond the ledger's.
    fn snatch_errors(&self, expected: &Books) -> BTreeMap<u32, i128> {
        expected
            .snatched
            .iter()
            .map(|(fid, want)| {
                let got = self.snatched.get(fid).copied().unwrap_or(0);
                (*fid, i128::from(got) - i128::from(*want))
            })
            .collect()
    }
}

fn total_traffic(ledger: &[Ledger]) -> u128 {
    ledger
        .iter()
        .map(|e| {
            let (up, down) = e.credited();
            u128::from(up) + u128::from(down)
        })
        .sum()
}

fn percent(part: u128, whole: u128) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.3}%", part as f64 * 100.0 / whole as f64)
    }
}

/// What differs between the books the ledger wants and the database's, readably.
fn describe_difference(want: &Books, got: &Books, traffic: u128) -> String {
    let mut out = String::new();
    let mut user_lines = Vec::new();
    let (mut signed, mut off) = (0i128, 0u128);
    for (uid, w) in &want.users {
        let g = got.users.get(uid).copied().unwrap_or_default();
        if g != *w {
            for (gv, wv) in g.iter().zip(w.iter()).take(2) {
                let d = i128::from(*gv) - i128::from(*wv);
                signed += d;
                off += d.unsigned_abs();
            }
            user_lines.push(format!(
                "  user {uid}: rawup/rawdl/Uploaded/Downloaded expected {w:?}, got {g:?} \
                 (up {:+}, down {:+})",
                i128::from(g[0]) - i128::from(w[0]),
                i128::from(g[1]) - i128::from(w[1])
            ));
        }
    }
    out.push_str(&format!(
        "users_main: {} of {} users differ; raw bytes off {off} in all ({} of {traffic} bytes \
         of traffic), net {signed:+}\n",
        user_lines.len(),
        want.users.len(),
        percent(off, traffic),
    ));
    for line in user_lines.iter().take(15) {
        out.push_str(line);
        out.push('\n');
    }
    if user_lines.len() > 15 {
        out.push_str(&format!("  ... and {} more users\n", user_lines.len() - 15));
    }
    out.push_str(&table_difference(
        "transfer_history (up, down, snatched)",
        &want.history,
        &got.history,
    ));
    out.push_str(&table_difference(
        "transfer_ips (up, down)",
        &want.ips,
        &got.ips,
    ));
    out.push_str(&table_difference(
        "torrents.Snatched",
        &want.snatched,
        &got.snatched,
    ));
    out
}

fn table_difference<K: Ord + std::fmt::Debug, V: PartialEq + Default + std::fmt::Debug>(
    name: &str,
    want: &BTreeMap<K, V>,
    got: &BTreeMap<K, V>,
) -> String {
    let empty = V::default();
    let mut keys: Vec<&K> = want.keys().chain(got.keys()).collect();
    keys.sort();
    keys.dedup();
    let wrong: Vec<String> = keys
        .into_iter()
        .filter_map(|k| {
            let (w, g) = (want.get(k).unwrap_or(&empty), got.get(k).unwrap_or(&empty));
            (w != g).then(|| format!("  {k:?}: expected {w:?}, got {g:?}"))
        })
        .collect();
    let mut out = format!("{name}: {} rows differ\n", wrong.len());
    for line in wrong.iter().take(8) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------
// The binary.

/// Runs `f` off the async workers (it blocks on the child's log); its panic is the
/// test's.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A config, files and an address for the real binary, kept across its restarts.
struct Binary {
    dir: TempDir,
    config: PathBuf,
    /// Bound by the first start (port 0), kept by the restarts.
    addr: std::sync::OnceLock<SocketAddr>,
}

impl Binary {
    fn new(tag: &str, intervals: &str) -> Binary {
        let dir = TempDir::new(tag);
        let config = dir.0.join("config.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"addr": "{ANY_PORT}", "log_flushes": true,
                    "limits": {{"user_requests_per_second": 0, "user_request_burst": 0}},
                    "intervals": {{"announce_drift": 0, "database_reload": 3600,
                                   "announce": 100000, "min_announce": 100000,
                                   "peer_inactivity": 100000, "purge_inactive_peers": 3600,
                                   {intervals}}}}}"#
            ),
        )
        .expect("write the config");
        Binary {
            addr: std::sync::OnceLock::new(),
            config,
            dir,
        }
    }

    /// Where the tracker serves (once started).
    fn addr(&self) -> SocketAddr {
        *self.addr.get().expect("started once")
    }

    /// The files the tracker keeps across restarts, all in the test's directory.
    fn args(&self) -> Vec<String> {
        let path = |name: &str| self.dir.0.join(name).display().to_string();
        vec![
            "--peer-cache".to_owned(),
            path("peers.cache"),
            "--spill".to_owned(),
            path("spill.jsonl"),
            "--journal".to_owned(),
            path("journal"),
        ]
    }

    /// Starts it and waits for it to listen (panics with its log if it does not); the
    /// first start's address is kept for the restarts.
    async fn start(&self, dsn: &str) -> Process {
        let args = self.args();
        let (config, dsn) = (self.config.clone(), dsn.to_owned());
        let (process, bound) = blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut process = Process::start(&config, &dsn, &args);
            let bound = process
                .try_wait_for(READY, START_WITHIN)
                .and_then(|line| ready_addr(&line));
            let Some(bound) = bound else {
                let status = process.kill();
                panic!(
                    "chihaya did not get ready ({status}); log:\n{}",
                    process.log_text()
                );
            };
            (process, bound)
        })
        .await;
        if self.addr.set(bound).is_ok() {
            pin_addr(&self.config, bound);
        }
        process
    }
}

// ---------------------------------------------------------------------------------
// Test 1: ten kills under load.

/// The moment of a round at which the tracker is killed.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// Right after the n-th `{users_main} Flushing` since the load resumed: the
    /// writers are sending their batches.
    Flushing(u32),
    /// Right after the n-th `Serializing database to cache file` since the load
    /// resumed: the peer cache is being written.
    Serializing(u32),
    /// This long after the load resumed.
    After(Duration),
}

impl Moment {
    /// The log line to wait for, and which one of them.
    fn line(self) -> Option<(&'static str, u32)> {
        match self {
            Moment::Flushing(n) => Some(("{users_main} Flushing", n)),
            Moment::Serializing(n) => Some(("Serializing database to cache file", n)),
            Moment::After(_) => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Moment::Flushing(n) => format!("after `{{users_main}} Flushing` #{n}"),
            Moment::Serializing(n) => format!("after `Serializing database` #{n}"),
            Moment::After(d) => format!("{:.2} s into the load", d.as_secs_f64()),
        }
    }
}

/// What the load tasks share with the test.
struct Load {
    addr: SocketAddr,
    ledger: Mutex<Vec<Ledger>>,
    /// The tracker process now running (or about to): 0 for the first start.
    round: AtomicU32,
    /// Workers announce while this is set; `busy` counts those inside an announce.
    go: AtomicBool,
    busy: AtomicUsize,
    stop: AtomicBool,
    /// `completed` is sent only while this is set; `completing` counts those in flight.
    completions_open: AtomicBool,
    completing: AtomicUsize,
    acked: AtomicU64,
    unreached: AtomicU64,
    unanswered: AtomicU64,
    rejected: AtomicU64,
    /// The latest unanswered and rejected announce's story, for the failure message.
    last_unanswered: Mutex<String>,
    /// `completed` announces that got no answer while the tracker ran: whether they
    /// counted is unknown (and the test may then be wrong, not the tracker).
    ambiguous_completions: AtomicU64,
    last_rejection: Mutex<String>,
}

impl Load {
    fn new(addr: SocketAddr, peers: usize) -> Load {
        Load {
            addr,
            ledger: Mutex::new(vec![Ledger::default(); peers]),
            round: AtomicU32::new(0),
            go: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            completions_open: AtomicBool::new(false),
            completing: AtomicUsize::new(0),
            acked: AtomicU64::new(0),
            unreached: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_unanswered: Mutex::default(),
            ambiguous_completions: AtomicU64::new(0),
            last_rejection: Mutex::default(),
        }
    }

    fn ledger(&self) -> Vec<Ledger> {
        self.ledger.lock().expect("ledger").clone()
    }

    /// Stops the workers' announces and waits for those in flight.
    async fn pause(&self) {
        self.go.store(false, SeqCst);
        while self.busy.load(SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops new `completed` announces and waits for those in flight (blocking).
    fn close_completions(&self) {
        self.completions_open.store(false, SeqCst);
        while self.completing.load(SeqCst) > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits until every peer has been acknowledged by the current process.
    async fn all_acked_this_round(&self, within: Duration) -> bool {
        let round = self.round.load(SeqCst);
        eventually(within, || async {
            self.ledger
                .lock()
                .expect("ledger")
                .iter()
                .all(|e| e.round >= round && e.first.is_some())
        })
        .await
    }

    fn counts(&self) -> String {
        format!(
            "{} acknowledged, {} unreached, {} unanswered (latest: {:?}), {} rejected \
             (latest: {:?}), {} completions without an answer",
            self.acked.load(SeqCst),
            self.unreached.load(SeqCst),
            self.unanswered.load(SeqCst),
            self.last_unanswered.lock().expect("unanswered").clone(),
            self.rejected.load(SeqCst),
            self.last_rejection.lock().expect("rejection").clone(),
            self.ambiguous_completions.load(SeqCst),
        )
    }
}

/// One peer as its worker drives it: the announce it is trying to get acknowledged.
struct Peer {
    index: usize,
    spec: Spec,
    up: u64,
    down: u64,
    left: u64,
    completed: bool,
    /// The next announce is the `completed` one.
    completing: bool,
    acks: u32,
    /// It sends `completed` once this many announces have been acknowledged.
    complete_at: u32,
}

impl Peer {
    fn new(index: usize, spec: Spec, rng: &mut SmallRng) -> Peer {
        Peer {
            index,
            spec,
            // A client resuming with counters from an earlier session.
            up: rng.random_range(0..50_000_000),
            down: rng.random_range(0..50_000_000),
            left: 4_000_000_000 + rng.random_range(0..1_000_000),
            completed: false,
            completing: false,
            acks: 0,
            complete_at: rng.random_range(2..=30),
        }
    }

    fn target(&self) -> String {
        let left = if self.completing || self.completed {
            0
        } else {
            self.left
        };
        self.spec.target(self.up, self.down, left, self.completing)
    }

    /// The tracker took the announce: into the ledger, and on to the next one.
    fn acknowledged(&mut self, load: &Load, round: u32, rng: &mut SmallRng) {
        load.ledger.lock().expect("ledger")[self.index].record(
            self.up,
            self.down,
            self.completing,
            round,
        );
        self.acks += 1;
        if self.completing {
            self.completed = true;
            self.completing = false;
        }
        if rng.random_bool(0.85) {
            self.up += rng.random_range(1..4_000_000);
        }
        if !self.completed || rng.random_bool(0.2) {
            self.down += rng.random_range(1..6_000_000);
        }
        self.completing = !self.completed && self.acks >= self.complete_at;
    }
}

/// Announces its peers in turn until told to stop; hands them back.
async fn worker(load: Arc<Load>, mut peers: Vec<Peer>, seed: u64) -> Vec<Peer> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut next = 0;
    while !load.stop.load(SeqCst) {
        load.busy.fetch_add(1, SeqCst);
        if !load.go.load(SeqCst) {
            load.busy.fetch_sub(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let count = peers.len();
        let peer = &mut peers[next % count];
        next += 1;
        let completing = peer.completing;
        if completing {
            load.completing.fetch_add(1, SeqCst);
            if !load.completions_open.load(SeqCst) {
                // Not now: the tracker is about to die or not up yet.
                load.completing.fetch_sub(1, SeqCst);
                load.busy.fetch_sub(1, SeqCst);
                continue;
            }
        }
        let round = load.round.load(SeqCst);
        let sent = send(load.addr, &peer.target()).await;
        if completing {
            if matches!(sent, Sent::Unanswered(_)) {
                load.ambiguous_completions.fetch_add(1, SeqCst);
            }
            load.completing.fetch_sub(1, SeqCst);
        }
        load.busy.fetch_sub(1, SeqCst);
        match sent {
            Sent::Acked => {
                load.acked.fetch_add(1, SeqCst);
                peer.acknowledged(&load, round, &mut rng);
            }
            Sent::Unreached => {
                load.unreached.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Sent::Unanswered(why) => {
                load.unanswered.fetch_add(1, SeqCst);
                *load.last_unanswered.lock().expect("unanswered") = why;
            }
            Sent::Rejected(why) => {
                load.rejected.fetch_add(1, SeqCst);
                *load.last_rejection.lock().expect("rejection") = why;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    peers
}

/// Waits for `moment`, then kills the tracker with SIGKILL (no `completed` in flight).
async fn kill_at(mut process: Process, moment: Moment, load: Arc<Load>) -> (Process, Duration) {
    blocking(move || {
        let started = Instant::now();
        if let Some((line, nth)) = moment.line() {
            process.skip_written_lines();
            for _ in 0..nth {
                if process.try_wait_for(line, Duration::from_secs(8)).is_none() {
                    let status = process.kill();
                    panic!(
                        "no {line:?} within 8 s ({status}); log:\n{}",
                        process.log_text()
                    );
                }
            }
        }
        if let Moment::After(delay) = moment {
            std::thread::sleep(delay);
        }
        load.close_completions();
        // The journal thread writes what gathered every 2 ms: an acknowledged
        // `completed` younger than that may not be in the file yet, and the README's
        // guarantees say such a one is lost to a SIGKILL (bytes are not: the peer's next
        // announce credits them). Give the last one time to reach the file, so that the
        // ledger's books are what the tracker promises.
        std::thread::sleep(JOURNAL_CATCH_UP);
        assert!(
            process.is_running(),
            "chihaya exited before it was killed; log:\n{}",
            process.log_text()
        );
        let status = process.kill();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "killed by SIGKILL; log:\n{}",
            process.log_text()
        );
        (process, started.elapsed())
    })
    .await
}

/// Whether the log shows the last peer cache write finished before the kill.
fn serializing_finished(log: &str) -> bool {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .iter()
        .rposition(|l| l.contains("Serializing database to cache file"))
        .is_some_and(|at| lines[at..].iter().any(|l| l.contains("Done serializing")))
}

/// Waits until the database holds what a paused load gave the tracker: the ledger's
/// books, or books that stayed the same for longer than a flush takes (the writers'
/// interval plus the journal's sync cadence).
async fn settled_books(db: &TestDb, want: &Books) -> Books {
    let started = Instant::now();
    let mut previous = Books::read(db).await;
    let mut changed = Instant::now();
    loop {
        if previous == *want
            || started.elapsed() > Duration::from_secs(8)
            || changed.elapsed() > Duration::from_millis(2500)
        {
            return previous;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let books = Books::read(db).await;
        if books != previous {
            changed = Instant::now();
        }
        previous = books;
    }
}

/// How the database stood relative to the ledger at one quiet point.
struct Checkpoint {
    peer_errors: Vec<i128>,
    snatch_errors: BTreeMap<u32, i128>,
    traffic: u128,
}

impl Checkpoint {
    fn of(books: &Books, specs: &[Spec], ledger: &[Ledger], want: &Books) -> Checkpoint {
        Checkpoint {
            peer_errors: books.peer_errors(specs, ledger),
            snatch_errors: books.snatch_errors(want),
            traffic: total_traffic(ledger),
        }
    }
}

/// What one kill did: the change in every peer's error between the quiet points
/// before and after it (the restart's first announces included).
fn kill_line(
    n: usize,
    moment: &str,
    before: &Checkpoint,
    after: &Checkpoint,
) -> (String, u128, u128) {
    let (mut lost, mut doubled, mut peers_lost, mut peers_doubled) = (0u128, 0u128, 0, 0);
    for (b, a) in before.peer_errors.iter().zip(&after.peer_errors) {
        let change = a - b;
        if change < 0 {
            lost += change.unsigned_abs();
            peers_lost += 1;
        } else if change > 0 {
            doubled += change.unsigned_abs();
            peers_doubled += 1;
        }
    }
    let (mut snatches_lost, mut snatches_doubled) = (0u128, 0u128);
    for (fid, a) in &after.snatch_errors {
        let change = a - before.snatch_errors.get(fid).copied().unwrap_or(0);
        if change < 0 {
            snatches_lost += change.unsigned_abs();
        } else {
            snatches_doubled += change.unsigned_abs();
        }
    }
    let traffic = after.traffic - before.traffic;
    let line = format!(
        "kill {n:>2} {moment:<32} traffic {traffic:>12}  lost {lost:>11} ({:>7}, {peers_lost:>3} peers)  \
         doubled {doubled:>11} ({:>7}, {peers_doubled:>3} peers)  snatches lost {snatches_lost} doubled {snatches_doubled}",
        percent(lost, traffic),
        percent(doubled, traffic),
    );
    (line, lost, doubled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_ten_moments_loses_nothing_and_counts_nothing_twice() {
    const USERS: u32 = 40;
    const TORRENTS: u32 = 3;
    const WORKERS: usize = 4;
    let started = Instant::now();
    let db = TestDb::new().await;
    let specs = create_swarm(&db, USERS, TORRENTS, 4).await;
    let binary = Binary::new("crash", r#""flush": 1, "database_serialize": 2"#);
    let mut process = binary.start(&db.dsn()).await;
    let load = Arc::new(Load::new(binary.addr(), specs.len()));

    let mut rng = SmallRng::seed_from_u64(0xC4A5_0009);
    let mut lanes: Vec<Vec<Peer>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (index, spec) in specs.iter().enumerate() {
        lanes[index % WORKERS].push(Peer::new(index, spec.clone(), &mut rng));
    }
    let workers: Vec<_> = lanes
        .into_iter()
        .enumerate()
        .map(|(n, peers)| tokio::spawn(worker(load.clone(), peers, 0xC4A5 + n as u64)))
        .collect();

    // Ten moments, fixed by the seed: three during a flush, three during a peer cache
    // write (each a different number of them into the round, so that they fall at
    // different points of the other's cycle), four anywhere in between.
    let mut random_moment = || Moment::After(Duration::from_millis(rng.random_range(300..=2500)));
    let moments = [
        random_moment(),
        Moment::Flushing(1),
        Moment::Serializing(1),
        random_moment(),
        Moment::Flushing(2),
        Moment::Serializing(2),
        random_moment(),
        Moment::Flushing(3),
        random_moment(),
        Moment::Serializing(1),
    ];

    let mut logs = Vec::new();
    load.completions_open.store(true, SeqCst);
    load.go.store(true, SeqCst);
    let mut checkpoints = Vec::new();
    let mut kills = Vec::new();
    for (n, &moment) in moments.iter().enumerate() {
        // Every peer announced to this process; with the load paused, whatever the
        // previous kill and this start did shows in the database.
        assert!(
            load.all_acked_this_round(Duration::from_secs(10)).await,
            "round {n}: not every peer got an announce through within 10 s: {}\nlog:\n{}",
            load.counts(),
            process.log_text()
        );
        load.pause().await;
        let ledger = load.ledger();
        let want = Books::expected(&specs, &ledger, USERS, TORRENTS);
        let books = settled_books(&db, &want).await;
        checkpoints.push(Checkpoint::of(&books, &specs, &ledger, &want));
        load.go.store(true, SeqCst);

        let (killed, waited) = kill_at(process, moment, load.clone()).await;
        let cache = match moment {
            Moment::Serializing(_) if serializing_finished(&killed.log_text()) => {
                ", after the cache write"
            }
            Moment::Serializing(_) => ", during the cache write",
            _ => "",
        };
        kills.push(format!(
            "{} ({:.2} s after the load resumed{cache})",
            moment.describe(),
            waited.as_secs_f64()
        ));
        logs.push(killed.log_text());
        load.round
            .store(u32::try_from(n + 1).expect("few rounds"), SeqCst);
        process = binary.start(&db.dsn()).await;
        load.completions_open.store(true, SeqCst);
    }

    // The last start: every peer through once more, then the workers stop, then one
    // last acknowledged announce of every peer, then a clean shutdown.
    assert!(
        load.all_acked_this_round(Duration::from_secs(10)).await,
        "after the last start: not every peer got an announce through: {}",
        load.counts()
    );
    load.stop.store(true, SeqCst);
    let mut peers = Vec::new();
    for w in workers {
        peers.extend(w.await.expect("load worker"));
    }
    let round = load.round.load(SeqCst);
    let mut final_rng = SmallRng::seed_from_u64(0xF1A1);
    for peer in &mut peers {
        assert!(peer.completed, "peer {} never sent `completed`", peer.index);
        let mut tries = 0;
        loop {
            match send(load.addr, &peer.target()).await {
                Sent::Acked => break,
                other => {
                    tries += 1;
                    assert!(tries < 20, "peer {}'s last announce: {other:?}", peer.index);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        peer.acknowledged(&load, round, &mut final_rng);
    }
    let (status, log) = process.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "clean shutdown; log:\n{log}");
    logs.push(log);

    let ledger = load.ledger();
    let want = Books::expected(&specs, &ledger, USERS, TORRENTS);
    let got = Books::read(&db).await;
    checkpoints.push(Checkpoint::of(&got, &specs, &ledger, &want));
    let off_before: u128 = checkpoints[0]
        .peer_errors
        .iter()
        .map(|e| e.unsigned_abs())
        .sum();
    let mut report = format!(
        "before any kill: {off_before} bytes off in {} bytes of traffic\n",
        checkpoints[0].traffic
    );
    let (mut lost, mut doubled) = (0, 0);
    for (n, pair) in checkpoints.windows(2).enumerate() {
        let (line, l, d) = kill_line(n + 1, &kills[n], &pair[0], &pair[1]);
        lost += l;
        doubled += d;
        report.push_str(&line);
        report.push('\n');
    }
    let traffic = total_traffic(&ledger);
    report.push_str(&format!(
        "all kills: lost {lost} bytes ({}), doubled {doubled} bytes ({}) of {traffic}; \
         per kill: lost {}, doubled {}\nrequests: {}\ntook {:.1} s\n",
        percent(lost, traffic),
        percent(doubled, traffic),
        lost / 10,
        doubled / 10,
        load.counts(),
        started.elapsed().as_secs_f64()
    ));
    eprintln!("{report}");
    assert!(
        load.acked.load(SeqCst) > 20 * specs.len() as u64,
        "enough load to mean something: {}",
        load.counts()
    );
    if got != want {
        let last_log: Vec<&str> = logs.iter().flat_map(|l| l.lines()).collect();
        let tail = &last_log[last_log.len().saturating_sub(40)..];
        panic!(
            "the database does not hold exactly what the tracker acknowledged\n{}\n{report}\n\
             last log lines:\n{}",
            describe_difference(&want, &got, traffic),
            tail.join("\n")
        );
    }
    assert_eq!(
        load.ambiguous_completions.load(SeqCst),
        0,
        "no `completed` went unanswered while the tracker ran"
    );
}

// ---------------------------------------------------------------------------------
// Test 2: a reply the tracker never hears.

/// The proxy itself, against MariaDB with sqlx: a swallowed reply is an error for the
/// client although the server did the work, one swallow disarms, and prepared
/// statements are recognised by the text they were prepared from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_swallows_one_reply_after_the_server_did_the_work() {
    let db = TestDb::new().await;
    let proxy = Proxy::start(TestDb::server_addr()).await;
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&db.dsn_via(proxy.port))
        .await
        .expect("connect through the proxy");
    let rawup = || async {
        db.rows("SELECT rawup, rawdl FROM users_main WHERE ID = 1")
            .await
            .concat()
            .join(" ")
    };
    let bump = "UPDATE users_main SET rawup = rawup + ? WHERE ID = 1";

    // Prepared on this connection first, then executed by id.
    sqlx::query(bump)
        .bind(1)
        .execute(&pool)
        .await
        .expect("through the proxy");
    proxy.swallow_reply_once("update USERS_MAIN");
    assert!(proxy.is_armed());
    let lost = sqlx::query(bump).bind(2).execute(&pool).await;
    assert!(lost.is_err(), "the client hears nothing: {lost:?}");
    assert!(!proxy.is_armed(), "one swallow disarms");
    assert_eq!(proxy.swallowed(), 1);
    assert_eq!(rawup().await, "3 0", "the server did it");
    sqlx::query(bump)
        .bind(4)
        .execute(&pool)
        .await
        .expect("a new connection works");
    assert_eq!(rawup().await, "7 0");

    // A transaction's COMMIT (a COM_QUERY): committed, though the client cannot know.
    proxy.swallow_reply_once("COMMIT");
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query(bump)
        .bind(10)
        .execute(&mut *tx)
        .await
        .expect("update");
    let lost = tx.commit().await;
    assert!(lost.is_err(), "{lost:?}");
    assert!(proxy.swallowed_at_least(2, Duration::from_secs(1)).await);
    assert_eq!(rawup().await, "17 0", "committed");

    // A text never prepared before: the PREPARE goes through, its EXECUTE is swallowed.
    proxy.swallow_reply_once("UPDATE users_main SET rawdl");
    let lost = sqlx::query("UPDATE users_main SET rawdl = rawdl + ? WHERE ID = 1")
        .bind(5)
        .execute(&pool)
        .await;
    assert!(lost.is_err(), "{lost:?}");
    // The text protocol too; leading whitespace does not hide a statement.
    proxy.swallow_reply_once("update users_main set rawdl");
    let lost = sqlx::raw_sql("\n  UPDATE users_main SET rawdl = rawdl + 1 WHERE ID = 1")
        .execute(&pool)
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(rawup().await, "17 6");
    assert_eq!(proxy.swallowed(), 4);
    assert!(proxy.swallowed_sql()[1].starts_with("COMMIT"));
    pool.close().await;
}

/// The tracker (the binary, through the proxy) loses the reply to a COMMIT, then to an
/// `UPDATE users_main`: the server did the work, the tracker cannot know, and it must
/// not do it again. Every table is checked, since the swallowed COMMIT may be any
/// writer's. A tracker that writes without transactions (autocommit) sends no COMMIT:
/// the first phase then fails for want of one to swallow, rather than passing vacuously.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_reply_counts_nothing_twice() {
    const USERS: u32 = 4;
    const TORRENTS: u32 = 2;
    let db = TestDb::new().await;
    let specs = create_swarm(&db, USERS, TORRENTS, 0).await;
    let proxy = Proxy::start(TestDb::server_addr()).await;
    let dsn = db.dsn_via(proxy.port);
    let binary = Binary::new("lostreply", r#""flush": 1, "database_serialize": 3600"#);
    let mut ledger = vec![Ledger::default(); specs.len()];
    let mut counters: Vec<(u64, u64)> = (0..specs.len()).map(|i| (i as u64 * 7, 0)).collect();

    async fn announce_all(
        addr: SocketAddr,
        specs: &[Spec],
        counters: &[(u64, u64)],
        ledger: &mut [Ledger],
        round: u32,
    ) {
        for ((spec, &(up, down)), entry) in specs.iter().zip(counters).zip(ledger.iter_mut()) {
            match send(addr, &spec.target(up, down, 1_000_000, false)).await {
                Sent::Acked => entry.record(up, down, false, round),
                other => panic!("announce of {spec:?}: {other:?}"),
            }
        }
    }

    let mut outcomes = Vec::new();
    for (round, prefix) in [(0u32, "COMMIT"), (1, "UPDATE users_main")] {
        let process = binary.start(&dsn).await;
        if round == 0 {
            // Baselines first, written before the proxy is armed.
            announce_all(binary.addr(), &specs, &counters, &mut ledger, round).await;
            let baselines = eventually(Duration::from_secs(10), || async {
                db.rows(&format!(
                    "SELECT COUNT(*) FROM transfer_history WHERE uid >= {FIRST_USER}"
                ))
                .await
                    == vec![vec![specs.len().to_string()]]
            })
            .await;
            assert!(
                baselines,
                "the baselines' transfer_history rows are written"
            );
        }
        let before = proxy.swallowed();
        proxy.swallow_reply_once(prefix);
        for (n, (up, down)) in counters.iter_mut().enumerate() {
            *up += 1_000 * (n as u64 + 1) + u64::from(round);
            *down += 100 * (n as u64 + 1);
        }
        announce_all(binary.addr(), &specs, &counters, &mut ledger, round).await;
        let swallowed = proxy
            .swallowed_at_least(before + 1, Duration::from_secs(5))
            .await;
        proxy.disarm();
        // The tracker goes on retrying what it did not hear about; the shutdown drain
        // writes whatever is still pending.
        let (status, log) = process.terminate(Duration::from_secs(30)).await;
        assert_eq!(status.code(), Some(0), "clean shutdown; log:\n{log}");
        let want = Books::expected(&specs, &ledger, USERS, TORRENTS);
        let got = Books::read(&db).await;
        let mut problems = Vec::new();
        if !swallowed {
            problems.push(format!(
                "the proxy saw no {prefix:?} statement within 5 s, so nothing was swallowed"
            ));
        }
        if got != want {
            problems.push(describe_difference(&want, &got, total_traffic(&ledger)));
        }
        // The writer learned from the marker that the lost COMMIT had gone through.
        if prefix == "COMMIT" && !log.contains("was committed although its reply was lost") {
            problems.push("no writer read a committed marker after the lost reply".to_owned());
        }
        outcomes.push((prefix, problems, log));
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|(_, problems, _)| !problems.is_empty())
        .map(|(prefix, problems, log)| {
            format!(
                "with the reply to {prefix:?} lost:\n{}\nlog:\n{log}",
                problems.join("\n")
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "swallowed: {:?}\n{}",
        proxy.swallowed_sql(),
        failed.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------
// Test 3: the journal's torn tail.

/// A crash in the middle of a journal append leaves a torn last frame: the next start
/// skips it with a warning naming the file and offset, replays every record before
/// it, and goes on. Nothing is flushed before the kill, so every byte credited comes
/// from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_tail_is_skipped_with_a_warning() {
    let db = TestDb::new().await;
    let binary = Binary::new("torn", r#""flush": 3600, "database_serialize": 3600"#);
    let process = binary.start(&db.dsn()).await;
    let seeder = Announce::new(PASSKEY_1, HASH_3, "torn-a", 0);
    for a in [seeder.clone(), seeder.clone().transfer(700, 0)] {
        let r = get(binary.addr(), &a.target(), &[]).await;
        assert!(r.text().starts_with("d8:complete"), "{}", r.text());
    }
    // The journal thread writes within milliseconds; then the process dies.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut process = process;
    blocking(move || process.kill()).await;

    let journal = binary.dir.0.join("journal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&journal)
        .expect("the journal directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment").clone();
    let whole = std::fs::metadata(&last).expect("segment").len();
    // A frame announcing 100 payload bytes, of which 10 made it to disk.
    let mut torn = 100u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xAB; 8 + 10]);
    let mut bytes = std::fs::read(&last).expect("read the segment");
    bytes.extend_from_slice(&torn);
    std::fs::write(&last, &bytes).expect("write the torn tail");

    let process = binary.start(&db.dsn()).await;
    let log = process.log_text();
    let warning = format!(
        "[W] Journal {}: {} bytes from offset {} were not completely written (a crash); skipped",
        last.display(),
        torn.len(),
        whole
    );
    assert!(log.contains(&warning), "{warning:?} in\n{log}");
    assert!(log.contains("Journal: replayed 2 records"), "{log}");
    let r = get(
        binary.addr(),
        &seeder.clone().transfer(1000, 0).target(),
        &[],
    )
    .await;
    assert!(r.text().starts_with("d8:complete"), "{}", r.text());
    let (status, log) = process.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(
        db.rows("SELECT rawup, rawdl FROM users_main WHERE ID = 1")
            .await,
        [["1000", "0"]]
    );
    assert_eq!(
        db.rows("SELECT uploaded FROM transfer_history WHERE uid = 1 AND fid = 3")
            .await,
        [["1000"]]
    );
}

// ---------------------------------------------------------------------------------
// Test 4: a journal that is not this tracker's to replay.

/// A journal belongs to one database and one process: pointed at another database it
/// stops start-up rather than replaying that database's deltas into this one, and a
/// second tracker on the same journal directory stops too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_another_database_or_in_use_stops_start_up() {
    let first = TestDb::new().await;
    let binary = Binary::new("foreign", r#""flush": 1"#);
    let process = binary.start(&first.dsn()).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "foreign-a", 0);
    assert!(get(binary.addr(), &a.target(), &[])
        .await
        .text()
        .starts_with("d8:complete"));

    // Same files, same config, a second process: the journal is taken.
    let failed = |dsn: String| {
        let (config, args) = (binary.config.clone(), binary.args());
        blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut second = Process::start(&config, &dsn, &args);
            let status = second.wait(Duration::from_secs(20));
            (status, second.log_text())
        })
    };
    let (status, log) = failed(first.dsn()).await;
    assert_eq!(status.code(), Some(1), "{log}");
    let journal = binary.dir.0.join("journal");
    let held = format!(
        "[E] Couldn't take the journal {} - another process holds {}",
        journal.display(),
        journal.join("lock").display()
    );
    assert!(log.contains(&held), "{held:?} in\n{log}");
    let (status, log) = process.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{log}");

    // Another database: refused, and nothing of the first one's traffic lands in it.
    let other = TestDb::new().await;
    let history = "SELECT uid, fid, uploaded, downloaded FROM transfer_history ORDER BY uid, fid";
    let before = other.rows(history).await;
    let (status, log) = failed(other.dsn()).await;
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("belongs to another database (journal id ")
            && log.contains("move the journal away or point --journal elsewhere"),
        "{log}"
    );
    assert!(!log.contains(READY), "{log}");
    assert_eq!(other.rows(history).await, before);
}
