//! The tracker's configuration (SPEC §2): the JSON file, its defaults, its validation
//! and the `DB_DSN` override. This is the only place in the program that reads the
//! environment; everything else is handed a validated [`Config`]. It never logs:
//! a problem comes back as one [`ConfigError`], anything worth a warning in
//! [`Loaded::warnings`], and the caller reports both.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Largest value of an int key unless the key says lower.
const INT_MAX: i64 = 2_147_483_647;
/// MariaDB's port, used when a `DB_DSN` names a host without one.
const MYSQL_PORT: u16 = 3306;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub database: DatabaseConfig,
    pub channels: ChannelsConfig,
    pub intervals: IntervalsConfig,
    pub limits: LimitsConfig,
    pub journal: JournalConfig,
    /// Listen address.
    pub addr: ListenAddr,
    /// Bearer token for the admin metrics; empty disables them.
    pub admin_token: String,
    /// Bearer token for the push API; empty disables it.
    pub push_token: String,
    /// This tracker's name when several share the database behind a load balancer
    /// that routes by info_hash; empty: the only one.
    pub instance: String,
    /// Header carrying the client IP; empty: use the peer address.
    pub proxy: String,
    /// Run the recorder (SPEC §12).
    pub record: bool,
    /// Serve scrapes.
    pub scrape: bool,
    /// Log every flush.
    pub log_flushes: bool,
    /// Refuse announces with a port below 1024.
    pub strict_port: bool,
    /// Bump the group `Time` on flush (SPEC §8.2).
    pub flush_groups: bool,
    /// Peers returned when the client gives no valid `numwant`.
    pub numwant: u16,
    /// Cap on the peers returned.
    pub max_numwant: u16,
}

/// A host as written in an address: an IP literal, or a name resolved when it is used
/// (never at config time, so a config loads without DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// ASCII letters, digits, `-`, `.` and `_`.
    Name(String),
}

/// Without brackets: the form resolvers and sqlx take.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// A host and a port, both checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: Host,
    pub port: u16,
}

/// `host:port`, `[v6]:port`.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Where the tracker listens (`addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `:PORT`: every IPv4 and IPv6 address.
    Any(u16),
    /// `IPV4:PORT`, `[IPV6]:PORT` or `HOST:PORT`. Port 0 asks for any free port.
    At(HostPort),
}

impl ListenAddr {
    /// The one parser's listen rules: port required, 0 allowed, empty host = every address.
    pub(crate) fn parse(text: &str) -> Result<ListenAddr, String> {
        Ok(match parse_addr(text, AddrRule::Listen)? {
            (None, port) => ListenAddr::Any(port),
            (Some(host), port) => ListenAddr::At(HostPort { host, port }),
        })
    }
}

/// As written in the config, up to canonical IP and port text (`:PORT` for [`ListenAddr::Any`]).
impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Any(port) => write!(f, ":{port}"),
            ListenAddr::At(at) => write!(f, "{at}"),
        }
    }
}

/// How to reach MariaDB: `database.proto` and `database.addr` (or `DB_DSN`) together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbEndpoint {
    Tcp(HostPort),
    /// A socket path, taken as it is.
    Unix(PathBuf),
}

/// `database.proto` as read; it decides how `database.addr` is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbProto {
    Tcp,
    Unix,
}

/// The `database` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    pub username: String,
    pub password: String,
    /// Schema name.
    pub database: String,
    pub endpoint: DbEndpoint,
    /// Retry wait unit after a deadlock or lock timeout, seconds (SPEC §8.7).
    pub deadlock_pause: u32,
    /// Attempts until the retry wait stops growing.
    pub deadlock_retries: u32,
}

/// The `channels` section: how many pending rows each writer holds (SPEC §8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelsConfig {
    pub torrent: u32,
    pub user: u32,
    pub transfer_history: u32,
    pub transfer_ips: u32,
    pub snatch: u32,
}

/// The `intervals` section, all in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalsConfig {
    /// Base `interval` of an announce response.
    pub announce: u32,
    /// `min interval` of an announce response.
    pub min_announce: u32,
    /// Cap on credited seeding time, and the age at which peers are purged.
    pub peer_inactivity: u32,
    /// Upper bound of the random time added to `interval`.
    pub announce_drift: u32,
    /// Intervals given in scrape responses.
    pub scrape: u32,
    pub database_reload: u32,
    /// `database_reload` when the push API is on (`push_token` set): the site tells
    /// the tracker of its changes, and the reload only reconciles.
    pub database_reload_with_push: u32,
    /// Period of the peer-cache write.
    pub database_serialize: u32,
    pub purge_inactive_peers: u32,
    /// Period of every table's flush (an earlier one only past the memory guard,
    /// `accounting::table::EARLY_FLUSH_STATEMENTS`).
    pub flush: u32,
}

/// The `limits` section: what one member may make the tracker do, so that no member
/// can cost the others (0 turns a limit off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Most peers (distinct peer_ids) one user may have in one swarm, 1–1000; a new one
    /// beyond it replaces the user's least recently seen peer there.
    pub user_peers_per_torrent: u32,
    /// Requests (announce, scrape, `/{passkey}/metrics`) one user may make per second,
    /// sustained...
    pub user_requests_per_second: u32,
    /// ...and at once, after being quiet for a while (a client restarting with all its
    /// torrents).
    pub user_request_burst: u32,
    /// Bytes per second above which a reported transfer is not credited.
    pub max_transfer_rate: u64,
}

/// The `journal` section: how the local journal of accepted announces meets the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Milliseconds between fsyncs of the journal (0: never, the operating system
    /// writes it when it likes). A flush reaches the database only once the journal
    /// holding it is synced, so this bounds what a power cut can lose, and adds up to
    /// as much to the time a delta waits for the database.
    pub fsync_interval_ms: u32,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            fsync_interval_ms: 1000,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            user_peers_per_torrent: 10,
            user_requests_per_second: 50,
            user_request_burst: 30_000,
            max_transfer_rate: 10 * 1024 * 1024 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: DatabaseConfig::default(),
            channels: ChannelsConfig::default(),
            intervals: IntervalsConfig::default(),
            limits: LimitsConfig::default(),
            journal: JournalConfig::default(),
            addr: ListenAddr::Any(34000),
            admin_token: String::new(),
            push_token: String::new(),
            instance: String::new(),
            proxy: String::new(),
            record: false,
            scrape: true,
            log_flushes: true,
            strict_port: false,
            flush_groups: false,
            numwant: 25,
            max_numwant: 50,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            username: "chihaya".to_owned(),
            password: String::new(),
            database: "chihaya".to_owned(),
            endpoint: DbEndpoint::Tcp(HostPort {
                host: Host::Ip(Ipv4Addr::LOCALHOST.into()),
                port: MYSQL_PORT,
            }),
            deadlock_pause: 1,
            deadlock_retries: 5,
        }
    }
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            torrent: 5000,
            user: 5000,
            transfer_history: 5000,
            transfer_ips: 5000,
            snatch: 25,
        }
    }
}

impl Default for IntervalsConfig {
    fn default() -> Self {
        IntervalsConfig {
            announce: 1800,
            min_announce: 900,
            peer_inactivity: 3900,
            announce_drift: 300,
            scrape: 900,
            database_reload: 45,
            database_reload_with_push: 600,
            database_serialize: 68,
            purge_inactive_peers: 120,
            flush: 3,
        }
    }
}

/// A config error: Display is exactly `config: <key>: <problem>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key (`database.addr`), the file path, or `DB_DSN`.
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// A loaded config plus the warnings to log (the caller logs them; this module never prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether the push API is on.
    pub fn push_enabled(&self) -> bool {
        !self.push_token.is_empty()
    }

    /// Seconds between full reloads: longer when the site pushes its changes.
    pub fn reload_period(&self) -> u32 {
        if self.push_enabled() {
            self.intervals.database_reload_with_push
        } else {
            self.intervals.database_reload
        }
    }

    /// Reads the file at `path` and the `DB_DSN` environment variable (the only
    /// environment read in the program).
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let name = path.display().to_string();
        let (text, warning) = match std::fs::read_to_string(path) {
            Ok(text) => (Some(text), None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                None,
                Some(format!(
                    "Unable to open config file {name}, defaults will be used! ({e})"
                )),
            ),
            Err(e) => return Err(ConfigError::new(name, e.to_string())),
        };
        let mut loaded = Self::parse(&name, text.as_deref(), read_db_dsn()?.as_deref())?;
        if let Some(warning) = warning {
            loaded.warnings.insert(0, warning);
        }
        Ok(loaded)
    }

    /// Same rules without touching the file system or environment: `json` is the file
    /// text (None = file not found → defaults), `db_dsn` the DB_DSN value.
    pub fn from_parts(json: Option<&str>, db_dsn: Option<&str>) -> Result<Loaded, ConfigError> {
        Self::parse("<config>", json, db_dsn)
    }

    /// Shorthand for tests: `from_parts(Some(json), None)`. (Not `from_str`: clippy would
    /// take it for `FromStr`, which it is not, as it returns `Loaded`.)
    pub fn parse_json(json: &str) -> Result<Loaded, ConfigError> {
        Self::from_parts(Some(json), None)
    }

    /// `source` names the file in errors about the document as a whole. Order: the
    /// file's types and ranges, then `DB_DSN`, then the addresses, which need both.
    fn parse(
        source: &str,
        json: Option<&str>,
        db_dsn: Option<&str>,
    ) -> Result<Loaded, ConfigError> {
        let mut config = Config::default();
        let mut raw = RawAddrs::default();
        let mut warnings = Vec::new();
        if let Some(text) = json {
            let doc: Json = serde_json::from_str(text)
                .map_err(|e| ConfigError::new(source, json_problem(&e)))?;
            let Json::Object(entries) = &doc else {
                return Err(ConfigError::new(
                    source,
                    format!("must be an object (got {doc})"),
                ));
            };
            apply_file(entries, &mut config, &mut raw, &mut warnings)?;
        }
        if let Some(dsn) = db_dsn.filter(|s| !s.is_empty()) {
            let dsn = parse_dsn(dsn).map_err(|problem| ConfigError::new("DB_DSN", problem))?;
            let db = &mut config.database;
            db.username = dsn.username;
            db.password = dsn.password;
            db.database = dsn.database;
            db.endpoint = dsn.endpoint;
            // Replaced, so whatever the file said is neither parsed nor reported.
            (raw.db_proto, raw.db_addr) = (None, None);
            if !dsn.params.is_empty() {
                warnings.push(format!(
                    "config: DB_DSN: parameters ignored ({})",
                    dsn.params
                ));
            }
        }
        raw.validate(&mut config)?;
        Ok(Loaded { config, warnings })
    }
}

/// The address keys as read, None where not given (the parsed default then stays).
/// Parsed only once the whole file and `DB_DSN` are in: `database.proto` may come after
/// `database.addr`, and `DB_DSN` replaces both.
#[derive(Default)]
struct RawAddrs {
    addr: Option<String>,
    db_proto: Option<DbProto>,
    db_addr: Option<String>,
}

impl RawAddrs {
    fn validate(self, config: &mut Config) -> Result<(), ConfigError> {
        if let Some(addr) = self.addr {
            config.addr = ListenAddr::parse(&addr).map_err(|p| ConfigError::new("addr", p))?;
        }
        let key = "database.addr";
        match (self.db_proto.unwrap_or(DbProto::Tcp), self.db_addr) {
            (DbProto::Tcp, None) => {}
            (DbProto::Tcp, Some(addr)) => {
                let host_port = database_host_port(&addr).map_err(|mut problem| {
                    if addr.starts_with('/') {
                        problem.push_str(r#" (a socket path needs database.proto "unix")"#);
                    }
                    ConfigError::new(key, problem)
                })?;
                config.database.endpoint = DbEndpoint::Tcp(host_port);
            }
            // The default address is a tcp one.
            (DbProto::Unix, None) => {
                return Err(ConfigError::new(
                    key,
                    r#"must be a socket path when database.proto is "unix""#,
                ))
            }
            // A socket path is taken as it is (it was checked to be non-empty).
            (DbProto::Unix, Some(path)) => config.database.endpoint = DbEndpoint::Unix(path.into()),
        }
        Ok(())
    }
}

fn read_db_dsn() -> Result<Option<String>, ConfigError> {
    match std::env::var("DB_DSN") {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ConfigError::new("DB_DSN", "not valid UTF-8"))
        }
    }
}

/// serde_json's message without its own position suffix, so the position is said once.
fn json_problem(e: &serde_json::Error) -> String {
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let message = full
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&full);
    format!("invalid JSON at line {line} column {column}: {message}")
}

mod addr;
mod apply;
mod dsn;
pub(crate) mod json;
#[cfg(test)]
mod tests;

use addr::{database_host_port, parse_addr, AddrRule};
use apply::apply_file;
use dsn::parse_dsn;
use json::Json;
