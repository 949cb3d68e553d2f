//! Shared test scaffolding: a throw-away MariaDB database per test (schema and
//! fixtures loaded, dropped afterwards), the tracker started in-process on 127.0.0.1
//! port 0, and a minimal HTTP client that shows the exact bytes on the wire.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod process;
pub mod prom;
pub mod proxy;
pub mod tools;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chihaya::config::Config;
use chihaya::server::app::{Files, Tracker};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PASSKEY_1: &str = "mUztWMpBYNCqzmge6vGeEUGSrctJbgpQ";
pub const PASSKEY_2: &str = "tbHfQDQ9xDaQdsNv5CZBtHPfk7KGzaCw";
/// User 3 is disabled.
pub const PASSKEY_3: &str = "sGJPs8FPzp7t8tgqd2ypVyKTpWfqqmdt";
/// Torrent 1, pruned (Status 1).
pub const HASH_1: &str = "72EF20EDDCB5438F73B6D88D78C4DFC1667B8938";
/// Torrent 2: down 2, up 0.5.
pub const HASH_2: &str = "16A82DDD57E18CB15E22F2E1C4EADE2EBB83B19B";
/// Torrent 3: group 2 anime, group freeleech down 0 up 2.
pub const HASH_3: &str = "59FC5431B11C761C94CD3EB90825EA6E6DC8A5F1";

/// The server the tests use: `DATABASE_URL` (as `make test` sets it), else the local
/// MariaDB as root without a password.
pub fn database_url() -> String {
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned());
    // Keep scheme, credentials and host; the database part is ours to choose.
    match url.strip_prefix("mysql://") {
        Some(rest) => format!("mysql://{}", rest.split(['/', '?']).next().unwrap_or(rest)),
        None => url,
    }
}

/// A database of its own for one test, with `database/schema.sql` and the fixtures.
pub struct TestDb {
    pub name: String,
    pub pool: MySqlPool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn repo_file(path: &str) -> String {
    let full = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!(
            "chihaya_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let server: MySqlConnectOptions = database_url().parse().expect("DATABASE_URL");
        let admin = MySqlPoolOptions::new()
            .max_connections(1)
            .connect_with(server.clone())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach MariaDB at {} ({e}); run `make test`",
                    database_url()
                )
            });
        sqlx::raw_sql(&format!("CREATE DATABASE `{name}`"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .connect_with(server.database(&name))
            .await
            .expect("connect to test database");
        sqlx::raw_sql("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
            .execute(&pool)
            .await
            .expect("sql_mode");
        sqlx::raw_sql(&repo_file("database/schema.sql"))
            .execute(&pool)
            .await
            .expect("load schema");
        sqlx::raw_sql(&repo_file("fixtures/fixtures.sql"))
            .execute(&pool)
            .await
            .expect("load fixtures");
        TestDb { name, pool }
    }

    /// The `DB_DSN` (URL form) that points the tracker at this database.
    pub fn dsn(&self) -> String {
        format!("{}/{}", database_url(), self.name)
    }

    /// The `DB_DSN` that reaches this database through a proxy on 127.0.0.1:`port`.
    pub fn dsn_via(&self, port: u16) -> String {
        let url = database_url();
        let credentials = url
            .strip_prefix("mysql://")
            .and_then(|rest| rest.rsplit_once('@'))
            .map_or("root", |(user, _)| user);
        format!("mysql://{credentials}@127.0.0.1:{port}/{}", self.name)
    }

    /// The server's TCP address, for a proxy in front of it.
    pub fn server_addr() -> SocketAddr {
        let url = database_url();
        let host_port = url
            .strip_prefix("mysql://")
            .and_then(|rest| rest.rsplit_once('@').map(|(_, host)| host).or(Some(rest)))
            .unwrap_or("127.0.0.1:3306");
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:3306")
        };
        std::net::ToSocketAddrs::to_socket_addrs(&host_port)
            .ok()
            .and_then(|mut addrs| addrs.next())
            .expect("DATABASE_URL host:port")
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every row of a query, each column as the server renders it in text (NULL as
    /// "NULL"): the text protocol, so numbers arrive as their decimal strings.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let rows = sqlx::raw_sql(sql)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| match row.try_get_unchecked::<Option<String>, _>(i) {
                        Ok(Some(s)) => s,
                        Ok(None) => "NULL".to_owned(),
                        Err(_) => format!("{:?}", row.try_get_unchecked::<Option<Vec<u8>>, _>(i)),
                    })
                    .collect()
            })
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside async context and possibly while a runtime is shutting down:
        // do the DROP on a thread of its own with its own small runtime.
        let name = self.name.clone();
        let url = database_url();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(options) = url.parse::<MySqlConnectOptions>() {
                    if let Ok(pool) = MySqlPoolOptions::new()
                        .max_connections(1)
                        .connect_with(options)
                        .await
                    {
                        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                }
            });
        })
        .join();
    }
}

/// The config the tests start from: exact intervals (no drift) plus `extra` keys.
pub fn config_json(extra: &str) -> String {
    let base = r#""intervals": {"announce_drift": 0, "database_reload": 3600}"#;
    if extra.is_empty() {
        format!("{{{base}}}")
    } else {
        format!("{{{base}, {extra}}}")
    }
}

/// A directory of its own for one test, removed afterwards.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "chihaya-test-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn files(&self) -> Files {
        Files {
            peer_cache: self.0.join("peer-cache.bin"),
            spill: self.0.join("accounting-spill.jsonl"),
            journal: self.0.join("journal"),
            events: self.0.join("events"),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tracker running in-process against its own database.
pub struct TestTracker {
    pub tracker: Option<Tracker>,
    pub addr: SocketAddr,
    pub db: TestDb,
    pub dir: TempDir,
}

impl TestTracker {
    /// Starts with the default test config.
    pub async fn start() -> TestTracker {
        TestTracker::with_config("").await
    }

    /// Starts with extra top-level JSON (e.g. `"strict_port": true`); an `intervals`
    /// object in `json` replaces the default one.
    pub async fn with_config(extra: &str) -> TestTracker {
        let db = TestDb::new().await;
        TestTracker::on(db, extra).await
    }

    pub async fn on(db: TestDb, extra: &str) -> TestTracker {
        TestTracker::on_in(db, extra, TempDir::new("tracker")).await
    }

    /// Starts with its files (spill, peer cache) in `dir`, e.g. one a previous run used.
    pub async fn on_in(db: TestDb, extra: &str, dir: TempDir) -> TestTracker {
        let dsn = db.dsn();
        TestTracker::with_dsn(db, &dsn, extra, dir).await
    }

    /// Starts against `dsn`, which may lead to `db` through a proxy.
    pub async fn with_dsn(db: TestDb, dsn: &str, extra: &str, dir: TempDir) -> TestTracker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        TestTracker::listening(db, dsn, extra, dir, listener).await
    }

    /// Starts serving on `listener` (e.g. one bound to `[::1]:0`).
    pub async fn on_listener(db: TestDb, extra: &str, listener: TcpListener) -> TestTracker {
        let dsn = db.dsn();
        TestTracker::listening(db, &dsn, extra, TempDir::new("tracker"), listener).await
    }

    async fn listening(
        db: TestDb,
        dsn: &str,
        extra: &str,
        dir: TempDir,
        listener: TcpListener,
    ) -> TestTracker {
        let json = if extra.contains("\"intervals\"") {
            format!("{{{extra}}}")
        } else {
            config_json(extra)
        };
        let loaded = Config::from_parts(Some(&json), Some(dsn)).expect("test config");
        let tracker = Tracker::start(loaded.config, dir.files(), Some(listener))
            .await
            .expect("tracker start");
        TestTracker {
            addr: tracker.addr,
            tracker: Some(tracker),
            db,
            dir,
        }
    }

    /// Waits until every pending row is in the database.
    pub async fn flush(&self) {
        assert!(
            self.tracker().flush(Duration::from_secs(15)).await,
            "writers idle within 15 s"
        );
    }

    pub fn tracker(&self) -> &Tracker {
        self.tracker.as_ref().expect("running")
    }

    pub async fn get(&self, target: &str) -> Response {
        get(self.addr, target, &[]).await
    }

    pub async fn announce(&self, a: &Announce) -> Response {
        self.get(&a.target()).await
    }

    pub async fn stop(self) -> TestDb {
        self.stop_keeping_files().await.0
    }

    /// Stops, handing back the database and the directory of the tracker's files.
    pub async fn stop_keeping_files(mut self) -> (TestDb, TempDir) {
        if let Some(tracker) = self.tracker.take() {
            tracker.shutdown(Duration::from_secs(10)).await;
        }
        (self.db, self.dir)
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request (`GET` unless given) and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    request_with_body(addr, method, target, headers, None).await
}

/// Sends one request with `body` (and its `Content-Length`) and reads the response.
pub async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw_request = head.into_bytes();
    raw_request.extend_from_slice(body.unwrap_or_default());
    stream.write_all(&raw_request).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .expect("read");
    parse_response(&raw, method == "HEAD")
}

pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", target, headers).await
}

pub fn parse_response(raw: &[u8], head_only: bool) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = raw[end + 4..].to_vec();
    if !head_only {
        if let Some(len) = headers.iter().find(|(n, _)| n == "content-length") {
            assert_eq!(
                len.1.parse::<usize>().ok(),
                Some(body.len()),
                "content-length matches body"
            );
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Percent-encodes every byte (what clients do for info_hash and peer_id).
pub fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

pub fn unhex(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

/// An announce request, built field by field.
#[derive(Clone, Debug)]
pub struct Announce {
    pub passkey: String,
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Option<String>,
    pub numwant: Option<u32>,
    /// Appended verbatim (`&key=value...`).
    pub extra: String,
}

impl Announce {
    /// An approved `-TR2940-` client announcing `left` bytes to go.
    pub fn new(passkey: &str, hash_hex: &str, peer_tag: &str, left: u64) -> Announce {
        let mut peer_id = *b"-TR2940-000000000000";
        let tag = peer_tag.as_bytes();
        peer_id[20 - tag.len()..].copy_from_slice(tag);
        Announce {
            passkey: passkey.to_owned(),
            info_hash: unhex(hash_hex),
            peer_id,
            port: 51413,
            uploaded: 0,
            downloaded: 0,
            left,
            event: None,
            numwant: None,
            extra: String::new(),
        }
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn transfer(mut self, uploaded: u64, downloaded: u64) -> Self {
        self.uploaded = uploaded;
        self.downloaded = downloaded;
        self
    }

    pub fn left(mut self, left: u64) -> Self {
        self.left = left;
        self
    }

    pub fn event(mut self, event: &str) -> Self {
        self.event = Some(event.to_owned());
        self
    }

    pub fn numwant(mut self, n: u32) -> Self {
        self.numwant = Some(n);
        self
    }

    pub fn extra(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self
    }

    pub fn target(&self) -> String {
        let mut target = format!(
            "/{}/announce?info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}",
            self.passkey,
            escape(&self.info_hash),
            escape(&self.peer_id),
            self.port,
            self.uploaded,
            self.downloaded,
            self.left
        );
        if let Some(event) = &self.event {
            target.push_str(&format!("&event={event}"));
        }
        if let Some(n) = self.numwant {
            target.push_str(&format!("&numwant={n}"));
        }
        target.push_str(&self.extra);
        target
    }
}

/// One entry of a scrape's `files`, as the tracker writes it.
pub fn scrape_entry(hash: &[u8; 20], complete: u32, downloaded: u32, incomplete: u32) -> Vec<u8> {
    let mut out = b"20:".to_vec();
    out.extend_from_slice(hash);
    out.extend_from_slice(
        format!("d8:completei{complete}e10:downloadedi{downloaded}e10:incompletei{incomplete}ee")
            .as_bytes(),
    );
    out
}

/// A scrape's body with these `files` entries (in the order given) and the default
/// scrape interval.
pub fn scrape_body(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"d5:filesd".to_vec();
    for entry in entries {
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(
        b"e5:flagsd20:min_request_intervali900ee8:intervali900e12:min intervali900ee",
    );
    out
}

/// The bencoded failure body for `reason` and `interval`.
pub fn failure_body(reason: &str, interval: u32) -> String {
    format!(
        "d14:failure reason{}:{}8:intervali{interval}e12:min intervali{interval}ee",
        reason.len(),
        reason
    )
}

/// The success body without peers key content: counts, then `peers` as given.
pub fn announce_body(
    complete: u32,
    downloaded: u32,
    incomplete: u32,
    peers: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!(
        "d8:completei{complete}e10:downloadedi{downloaded}e10:incompletei{incomplete}e8:intervali1800e12:min intervali900e"
    )
    .into_bytes();
    if let Some(peers) = peers {
        out.extend_from_slice(b"5:peers");
        out.extend_from_slice(peers);
    }
    out.push(b'e');
    out
}

/// Polls `check` every 50 ms until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
