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

// ---------------------------------------------------------------------------
// A JSON tree that keeps every key, because serde_json::Value silently keeps only
// the last of duplicated keys and SPEC makes a duplicate an error.

enum Json {
    Null,
    Bool(bool),
    /// i64 and u64 literals both fit, so range checks need no casts.
    Int(i128),
    /// Any literal with a fraction or exponent, and integers too big for u64.
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// In document order, duplicates kept.
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Json>()? {
            entries.push(entry);
        }
        Ok(Json::Object(entries))
    }
}

/// Compact JSON text, for the `(got …)` part of a message.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde_json's Value does the escaping and float formatting for us.
        let text = |s: &str| serde_json::Value::from(s);
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(n) => write!(f, "{n}"),
            Json::Float(x) => write!(f, "{}", serde_json::Value::from(*x)),
            Json::Str(s) => write!(f, "{}", text(s)),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i == 0 { "" } else { "," })?;
                }
                f.write_str("]")
            }
            Json::Object(entries) => {
                f.write_str("{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    write!(f, "{}{}:{value}", if i == 0 { "" } else { "," }, text(key))?;
                }
                f.write_str("}")
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Applying the document. Entries are visited in document order and the first
// problem is returned, so the error a user sees does not depend on hash order.

type Entries = [(String, Json)];

/// The entries of `object` with their dotted keys; a repeated key is an error.
fn entries<'a>(
    prefix: &'a str,
    object: &'a Entries,
) -> impl Iterator<Item = Result<(&'a str, String, &'a Json), ConfigError>> + 'a {
    let mut seen = HashSet::new();
    object.iter().map(move |(key, value)| {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if seen.insert(key.as_str()) {
            Ok((key.as_str(), path, value))
        } else {
            Err(ConfigError::new(path, "duplicate key"))
        }
    })
}

fn apply_file(
    doc: &Entries,
    c: &mut Config,
    raw: &mut RawAddrs,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let (mut numwant, mut max_numwant) = (None, None);
    let mut aliases = Aliases::default();
    for entry in entries("", doc) {
        let (key, path, value) = entry?;
        match key {
            "database" => apply_database(&path, value, &mut c.database, raw, warnings)?,
            "channels" => apply_channels(&path, value, &mut c.channels, warnings)?,
            "intervals" => apply_intervals(&path, value, &mut c.intervals, &mut aliases, warnings)?,
            "limits" => apply_limits(&path, value, &mut c.limits, warnings)?,
            "journal" => apply_journal(&path, value, &mut c.journal, warnings)?,
            "addr" => raw.addr = Some(non_empty(&path, value)?),
            "admin_token" => c.admin_token = string(&path, value)?,
            "proxy" => c.proxy = string(&path, value)?,
            "record" => c.record = boolean(&path, value)?,
            "scrape" => c.scrape = boolean(&path, value)?,
            "log_flushes" => c.log_flushes = boolean(&path, value)?,
            "strict_port" => c.strict_port = boolean(&path, value)?,
            "flush_groups" => c.flush_groups = boolean(&path, value)?,
            "numwant" => numwant = Some(int(&path, value, 0, 65535)?),
            "max_numwant" => max_numwant = Some(int(&path, value, 0, 65535)?),
            _ => unknown(&path, value, warnings)?,
        }
    }
    // The top-level key wins wherever it appears, so the aliases are settled last.
    c.numwant = numwant.or(aliases.numwant).unwrap_or(c.numwant);
    c.max_numwant = max_numwant.or(aliases.max_numwant).unwrap_or(c.max_numwant);
    Ok(())
}

/// The deprecated `intervals.numwant` and `intervals.max_numwant`.
#[derive(Default)]
struct Aliases {
    numwant: Option<u16>,
    max_numwant: Option<u16>,
}

fn apply_database(
    prefix: &str,
    value: &Json,
    db: &mut DatabaseConfig,
    raw: &mut RawAddrs,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        match key {
            "username" => db.username = string(&path, value)?,
            "password" => db.password = string(&path, value)?,
            "database" => db.database = string(&path, value)?,
            "proto" => {
                raw.db_proto = Some(match value {
                    Json::Str(s) if s == "tcp" => DbProto::Tcp,
                    Json::Str(s) if s == "unix" => DbProto::Unix,
                    _ => return Err(wrong(&path, r#"must be "tcp" or "unix""#, value)),
                })
            }
            "addr" => raw.db_addr = Some(non_empty(&path, value)?),
            "deadlock_pause" => db.deadlock_pause = int(&path, value, 0, 3600)?,
            "deadlock_retries" => db.deadlock_retries = int(&path, value, 1, 1000)?,
            _ => unknown(&path, value, warnings)?,
        }
    }
    Ok(())
}

fn apply_channels(
    prefix: &str,
    value: &Json,
    ch: &mut ChannelsConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        let field = match key {
            "torrent" => &mut ch.torrent,
            "user" => &mut ch.user,
            "transfer_history" => &mut ch.transfer_history,
            "transfer_ips" => &mut ch.transfer_ips,
            "snatch" => &mut ch.snatch,
            _ => {
                unknown(&path, value, warnings)?;
                continue;
            }
        };
        *field = int(&path, value, 1, INT_MAX)?;
    }
    Ok(())
}

fn apply_intervals(
    prefix: &str,
    value: &Json,
    iv: &mut IntervalsConfig,
    aliases: &mut Aliases,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        let (field, min) = match key {
            "announce" => (&mut iv.announce, 1),
            "min_announce" => (&mut iv.min_announce, 1),
            "peer_inactivity" => (&mut iv.peer_inactivity, 1),
            "announce_drift" => (&mut iv.announce_drift, 0),
            "scrape" => (&mut iv.scrape, 1),
            "database_reload" => (&mut iv.database_reload, 1),
            "database_serialize" => (&mut iv.database_serialize, 1),
            "purge_inactive_peers" => (&mut iv.purge_inactive_peers, 1),
            "flush" => (&mut iv.flush, 1),
            // The original read these two here; they live at the top level now.
            "numwant" | "max_numwant" => {
                let n = int(&path, value, 0, 65535)?;
                if key == "numwant" {
                    aliases.numwant = Some(n);
                } else {
                    aliases.max_numwant = Some(n);
                }
                warnings.push(format!("config: {path}: deprecated, use {key}"));
                continue;
            }
            _ => {
                unknown(&path, value, warnings)?;
                continue;
            }
        };
        *field = int(&path, value, min, INT_MAX)?;
    }
    Ok(())
}

fn apply_limits(
    prefix: &str,
    value: &Json,
    limits: &mut LimitsConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        match key {
            // At most the swarm's own bound (MAX_PEERS_PER_USER): a user's peers share
            // one hash in a swarm's index.
            "user_peers_per_torrent" => {
                limits.user_peers_per_torrent = int(&path, value, 1, 1000)?;
            }
            "user_requests_per_second" => {
                limits.user_requests_per_second = int(&path, value, 0, 1_000_000)?;
            }
            "user_request_burst" => limits.user_request_burst = int(&path, value, 0, INT_MAX)?,
            "max_transfer_rate" => limits.max_transfer_rate = int(&path, value, 0, i64::MAX)?,
            _ => unknown(&path, value, warnings)?,
        }
    }
    Ok(())
}

fn apply_journal(
    prefix: &str,
    value: &Json,
    journal: &mut JournalConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        match key {
            "fsync_interval_ms" => journal.fsync_interval_ms = int(&path, value, 0, 60_000)?,
            _ => unknown(&path, value, warnings)?,
        }
    }
    Ok(())
}

fn section<'a>(path: &str, value: &'a Json) -> Result<&'a Entries, ConfigError> {
    match value {
        Json::Object(entries) => Ok(entries),
        _ => Err(wrong(path, "must be an object", value)),
    }
}

/// Warns about an unknown key. Its value is not interpreted, but a duplicate in it is
/// still an error: SPEC rejects duplicates at any level.
fn unknown(path: &str, value: &Json, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    no_duplicates(path, value)?;
    warnings.push(format!("config: {path}: unknown key ignored"));
    Ok(())
}

fn no_duplicates(path: &str, value: &Json) -> Result<(), ConfigError> {
    match value {
        Json::Object(object) => entries(path, object).try_for_each(|entry| {
            let (_, path, value) = entry?;
            no_duplicates(&path, value)
        }),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| no_duplicates(&format!("{path}[{i}]"), item)),
        _ => Ok(()),
    }
}

fn wrong(path: &str, rule: &str, got: &Json) -> ConfigError {
    ConfigError::new(path, format!("{rule} (got {got})"))
}

fn string(path: &str, value: &Json) -> Result<String, ConfigError> {
    match value {
        Json::Str(s) => Ok(s.clone()),
        _ => Err(wrong(path, "must be a string", value)),
    }
}

fn non_empty(path: &str, value: &Json) -> Result<String, ConfigError> {
    let s = string(path, value)?;
    if s.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    Ok(s)
}

fn boolean(path: &str, value: &Json) -> Result<bool, ConfigError> {
    match value {
        Json::Bool(b) => Ok(*b),
        _ => Err(wrong(path, "must be true or false", value)),
    }
}

/// An integer literal in `min..=max`. Wrong types get the same message as bad values,
/// so the user learns what is wanted either way.
fn int<T: TryFrom<i128>>(path: &str, value: &Json, min: i64, max: i64) -> Result<T, ConfigError> {
    let (min, max) = (i128::from(min), i128::from(max));
    if let Json::Int(n) = value {
        if (min..=max).contains(n) {
            if let Ok(v) = T::try_from(*n) {
                return Ok(v);
            }
        }
    }
    // The implicit maximum is only worth naming to someone who went past it.
    let too_big = matches!(value, Json::Int(n) if *n > max);
    let rule = if max < i128::from(INT_MAX) || too_big {
        format!("must be an integer between {min} and {max}")
    } else {
        format!("must be an integer >= {min}")
    };
    Err(wrong(path, &rule, value))
}

// ---------------------------------------------------------------------------
// DB_DSN. Problems never quote the user info, as it holds the password.

/// The database keys a `DB_DSN` replaces, plus the parameters it ignores.
struct Dsn {
    username: String,
    password: String,
    database: String,
    endpoint: DbEndpoint,
    params: String,
}

fn parse_dsn(dsn: &str) -> Result<Dsn, String> {
    const SCHEME: &str = "mysql://";
    match dsn.get(..SCHEME.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => parse_url_dsn(&dsn[SCHEME.len()..]),
        _ => parse_go_dsn(dsn),
    }
}

/// `USER[:PASS]@PROTO(ADDR)/DB[?PARAMS]`, as the Go MySQL driver reads it.
fn parse_go_dsn(dsn: &str) -> Result<Dsn, String> {
    // A password or a socket path may hold a '/', a database name may not.
    let slash = dsn.rfind('/').ok_or(r#"missing "/DB""#)?;
    let head = dsn[..slash]
        .strip_suffix(')')
        .ok_or(r#"missing "/DB" after "PROTO(ADDR)""#)?;
    let at = head.rfind('@').ok_or(r#"missing "USER@""#)?;
    let (username, password) = split_user(&head[..at]);
    let net = &head[at + 1..];
    let open = net.find('(').ok_or(r#"missing "(" in "PROTO(ADDR)""#)?;
    let proto = match &net[..open] {
        "" | "tcp" => DbProto::Tcp,
        "unix" => DbProto::Unix,
        other => {
            return Err(format!(
                r#"unknown protocol "{other}" (expected tcp or unix)"#
            ))
        }
    };
    let addr = &net[open + 1..];
    if addr.is_empty() {
        return Err("empty address".to_owned());
    }
    let endpoint = match proto {
        DbProto::Tcp => DbEndpoint::Tcp(database_host_port(addr)?),
        DbProto::Unix => DbEndpoint::Unix(addr.into()),
    };
    let (database, params) = split_params(&dsn[slash + 1..]);
    finish(
        username.to_owned(),
        password.to_owned(),
        database,
        endpoint,
        params,
    )
}

/// `mysql://USER[:PASS]@HOST[:PORT]/DB[?PARAMS]`, user and password percent-encoded.
fn parse_url_dsn(rest: &str) -> Result<Dsn, String> {
    let slash = rest.find('/').ok_or(r#"missing "/DB""#)?;
    let authority = &rest[..slash];
    // The last '@' so that an unencoded '@' in the password still works.
    let at = authority.rfind('@').ok_or(r#"missing "USER@""#)?;
    let (user, pass) = split_user(&authority[..at]);
    let username = percent_decode(user).ok_or("bad percent-encoding in user")?;
    let password = percent_decode(pass).ok_or("bad percent-encoding in password")?;
    let endpoint = DbEndpoint::Tcp(database_host_port(&authority[at + 1..])?);
    let (database, params) = split_params(&rest[slash + 1..]);
    if database.contains('/') {
        return Err(format!(r#"bad database name "{database}""#));
    }
    finish(username, password, database, endpoint, params)
}

fn finish(
    username: String,
    password: String,
    database: &str,
    endpoint: DbEndpoint,
    params: &str,
) -> Result<Dsn, String> {
    if username.is_empty() {
        return Err("empty user".to_owned());
    }
    if database.is_empty() {
        return Err("empty database name".to_owned());
    }
    Ok(Dsn {
        username,
        password,
        database: database.to_owned(),
        endpoint,
        params: params.to_owned(),
    })
}

/// The password starts after the first ':', so it may hold more of them.
fn split_user(info: &str) -> (&str, &str) {
    info.split_once(':').unwrap_or((info, ""))
}

fn split_params(s: &str) -> (&str, &str) {
    s.split_once('?').unwrap_or((s, ""))
}

// ---------------------------------------------------------------------------
// Addresses: the one host:port parser, for `addr`, `database.addr` and `DB_DSN`.
// Problems quote the bad part; an address holds no password.

/// What an address may leave out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AddrRule {
    /// The listen address: the port is required and may be 0 (any free port); an empty
    /// host (`:PORT`) means every address.
    Listen,
    /// A MariaDB server: the host is required, the port is 1–65535 and 3306 if left out.
    Database,
}

/// A tcp `database.addr` or `DB_DSN` address: `HOST[:PORT]` or `[V6][:PORT]`.
fn database_host_port(text: &str) -> Result<HostPort, String> {
    match parse_addr(text, AddrRule::Database)? {
        (Some(host), port) => Ok(HostPort { host, port }),
        // parse_addr gives no host only to AddrRule::Listen.
        (None, _) => Err("missing host".to_owned()),
    }
}

/// `HOST[:PORT]`, `[V6][:PORT]`, and for [`AddrRule::Listen`] `:PORT` (no host).
fn parse_addr(text: &str, rule: AddrRule) -> Result<(Option<Host>, u16), String> {
    let bad = || format!(r#"bad address "{text}""#);
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (v6, rest) = inner.split_once(']').ok_or_else(bad)?;
        if v6.is_empty() {
            return Err("missing host".to_owned());
        }
        let ip = v6
            .parse::<Ipv6Addr>()
            .map_err(|_| format!(r#"bad IPv6 address "[{v6}]""#))?;
        let port = match rest {
            "" => None,
            rest => Some(rest.strip_prefix(':').ok_or_else(bad)?),
        };
        (Some(Host::Ip(ip.into())), port)
    } else {
        let (host, port) = match text.split_once(':') {
            None => (text, None),
            // Bare IPv6 would make "which colon starts the port" a guess.
            Some((_, port)) if port.contains(':') => {
                return Err(format!("{} (IPv6 hosts need [brackets])", bad()))
            }
            Some((host, port)) => (host, Some(port)),
        };
        let host = match host {
            "" if rule == AddrRule::Listen => None,
            "" => return Err("missing host".to_owned()),
            host => Some(parse_host(host)?),
        };
        (host, port)
    };
    let port = match (port, rule) {
        (None, AddrRule::Listen) => return Err(format!(r#"missing port in "{text}""#)),
        (None, AddrRule::Database) => MYSQL_PORT,
        (Some(p), rule) => Some(p)
            // Digits only: u16's parser also takes a leading '+'.
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&n| n != 0 || rule == AddrRule::Listen)
            .ok_or_else(|| format!(r#"bad port "{p}""#))?,
    };
    Ok((host, port))
}

/// An IPv4 literal or a host name; no lookup.
fn parse_host(host: &str) -> Result<Host, String> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(ip.into()));
    }
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if host.bytes().all(name_byte) {
        Ok(Host::Name(host.to_owned()))
    } else {
        Err(format!(r#"bad host "{host}""#))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(high * 16 + low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(json: &str) -> Loaded {
        Config::parse_json(json).unwrap()
    }

    fn err(json: &str) -> String {
        Config::parse_json(json).unwrap_err().to_string()
    }

    fn dsn(dsn: &str) -> Loaded {
        Config::from_parts(None, Some(dsn)).unwrap()
    }

    fn dsn_err(dsn: &str) -> String {
        Config::from_parts(None, Some(dsn)).unwrap_err().to_string()
    }

    fn db(username: &str, password: &str, database: &str, endpoint: DbEndpoint) -> DatabaseConfig {
        DatabaseConfig {
            username: username.to_owned(),
            password: password.to_owned(),
            database: database.to_owned(),
            endpoint,
            ..DatabaseConfig::default()
        }
    }

    /// Built without the parser under test.
    fn host(text: &str) -> Host {
        text.parse()
            .map_or_else(|_| Host::Name(text.to_owned()), Host::Ip)
    }

    fn tcp(text: &str, port: u16) -> DbEndpoint {
        DbEndpoint::Tcp(HostPort {
            host: host(text),
            port,
        })
    }

    fn unix(path: &str) -> DbEndpoint {
        DbEndpoint::Unix(path.into())
    }

    fn listen(text: &str, port: u16) -> ListenAddr {
        ListenAddr::At(HostPort {
            host: host(text),
            port,
        })
    }

    #[test]
    fn defaults_are_the_spec_table() {
        let expected = Config {
            database: db("chihaya", "", "chihaya", tcp("127.0.0.1", 3306)),
            channels: ChannelsConfig {
                torrent: 5000,
                user: 5000,
                transfer_history: 5000,
                transfer_ips: 5000,
                snatch: 25,
            },
            intervals: IntervalsConfig {
                announce: 1800,
                min_announce: 900,
                peer_inactivity: 3900,
                announce_drift: 300,
                scrape: 900,
                database_reload: 45,
                database_serialize: 68,
                purge_inactive_peers: 120,
                flush: 3,
            },
            limits: LimitsConfig {
                user_peers_per_torrent: 10,
                user_requests_per_second: 50,
                user_request_burst: 30_000,
                max_transfer_rate: 10_737_418_240,
            },
            journal: JournalConfig {
                fsync_interval_ms: 1000,
            },
            addr: ListenAddr::Any(34000),
            admin_token: String::new(),
            proxy: String::new(),
            record: false,
            scrape: true,
            log_flushes: true,
            strict_port: false,
            flush_groups: false,
            numwant: 25,
            max_numwant: 50,
        };
        assert_eq!(expected.database.deadlock_pause, 1);
        assert_eq!(expected.database.deadlock_retries, 5);
        assert_eq!(Config::default(), expected);
        let empty = Loaded {
            config: expected,
            warnings: vec![],
        };
        assert_eq!(ok("{}"), empty);
        assert_eq!(ok(" \n{ }\n"), empty);
        assert_eq!(Config::from_parts(None, None).unwrap(), empty);
    }

    #[test]
    fn the_example_config_is_the_defaults() {
        let example = include_str!("../config.example.json");
        assert_eq!(ok(example).config, Config::default());
        assert_eq!(ok(example).warnings, Vec::<String>::new());
    }

    #[test]
    fn every_key_can_be_set() {
        let json = r#"{
            "database": {"username": "u", "password": "p", "database": "d", "proto": "unix",
                         "addr": "/run/db.sock", "deadlock_pause": 0, "deadlock_retries": 9},
            "channels": {"torrent": 1, "user": 2, "transfer_history": 3, "transfer_ips": 4,
                         "snatch": 5},
            "intervals": {"announce": 11, "min_announce": 12, "peer_inactivity": 13,
                          "announce_drift": 0, "scrape": 15, "database_reload": 16,
                          "database_serialize": 17, "purge_inactive_peers": 18, "flush": 19},
            "limits": {"user_peers_per_torrent": 1000, "user_requests_per_second": 7,
                       "user_request_burst": 8, "max_transfer_rate": 9223372036854775807},
            "journal": {"fsync_interval_ms": 0},
            "addr": "127.0.0.1:8080", "admin_token": "t0k", "proxy": "X-Real-IP",
            "record": true, "scrape": false, "log_flushes": false, "strict_port": true,
            "flush_groups": true, "numwant": 0, "max_numwant": 65535
        }"#;
        let expected = Config {
            database: DatabaseConfig {
                deadlock_pause: 0,
                deadlock_retries: 9,
                ..db("u", "p", "d", unix("/run/db.sock"))
            },
            channels: ChannelsConfig {
                torrent: 1,
                user: 2,
                transfer_history: 3,
                transfer_ips: 4,
                snatch: 5,
            },
            intervals: IntervalsConfig {
                announce: 11,
                min_announce: 12,
                peer_inactivity: 13,
                announce_drift: 0,
                scrape: 15,
                database_reload: 16,
                database_serialize: 17,
                purge_inactive_peers: 18,
                flush: 19,
            },
            limits: LimitsConfig {
                user_peers_per_torrent: 1000,
                user_requests_per_second: 7,
                user_request_burst: 8,
                max_transfer_rate: 9_223_372_036_854_775_807,
            },
            journal: JournalConfig {
                fsync_interval_ms: 0,
            },
            addr: listen("127.0.0.1", 8080),
            admin_token: "t0k".to_owned(),
            proxy: "X-Real-IP".to_owned(),
            record: true,
            scrape: false,
            log_flushes: false,
            strict_port: true,
            flush_groups: true,
            numwant: 0,
            max_numwant: 65535,
        };
        assert_eq!(
            ok(json),
            Loaded {
                config: expected,
                warnings: vec![]
            }
        );
        assert_eq!(
            ok(r#"{"database": {"proto": "tcp"}}"#).config,
            Config::default()
        );
    }

    #[test]
    fn wrong_types() {
        #[rustfmt::skip]
        let cases = [
            (r#"{"addr": 5}"#, "config: addr: must be a string (got 5)"),
            (r#"{"proxy": null}"#, "config: proxy: must be a string (got null)"),
            (r#"{"database": {"password": ["a"]}}"#, r#"config: database.password: must be a string (got ["a"])"#),
            (r#"{"record": "yes"}"#, r#"config: record: must be true or false (got "yes")"#),
            (r#"{"scrape": 1}"#, "config: scrape: must be true or false (got 1)"),
            (r#"{"database": {"proto": "udp"}}"#, r#"config: database.proto: must be "tcp" or "unix" (got "udp")"#),
            (r#"{"database": {"proto": "TCP"}}"#, r#"config: database.proto: must be "tcp" or "unix" (got "TCP")"#),
            (r#"{"intervals": []}"#, "config: intervals: must be an object (got [])"),
            (r#"{"database": "x"}"#, r#"config: database: must be an object (got "x")"#),
            (r#"{"channels": null}"#, "config: channels: must be an object (got null)"),
            (r#"{"addr": {"a": "\"q\""}}"#, r#"config: addr: must be a string (got {"a":"\"q\""})"#),
        ];
        for (json, message) in cases {
            assert_eq!(err(json), message, "{json}");
        }
    }

    #[test]
    fn empty_strings() {
        assert_eq!(err(r#"{"addr": ""}"#), "config: addr: must not be empty");
        assert_eq!(
            err(r#"{"database": {"addr": ""}}"#),
            "config: database.addr: must not be empty"
        );
        let loaded = ok(r#"{"admin_token": "", "proxy": "", "database": {"password": ""}}"#);
        assert_eq!(loaded.config, Config::default());
    }

    #[test]
    fn int_keys_take_only_integer_literals() {
        #[rustfmt::skip]
        let cases = [
            ("5.0", "5.0"),
            ("5e0", "5.0"),
            ("\"5\"", "\"5\""),
            ("null", "null"),
            ("true", "true"),
            ("99999999999999999999", "1e+20"),
        ];
        for (literal, shown) in cases {
            assert_eq!(
                err(&format!(r#"{{"channels": {{"snatch": {literal}}}}}"#)),
                format!("config: channels.snatch: must be an integer >= 1 (got {shown})"),
            );
        }
        assert_eq!(
            err(r#"{"numwant": -99999999999999999999}"#),
            "config: numwant: must be an integer between 0 and 65535 (got -1e+20)"
        );
        assert_eq!(
            err(r#"{"intervals": {"flush": 18446744073709551615}}"#),
            "config: intervals.flush: must be an integer between 1 and 2147483647 (got 18446744073709551615)"
        );
    }

    #[test]
    fn range_bounds() {
        #[rustfmt::skip]
        let cases = [
            (r#"{"database": {"deadlock_pause": -1}}"#, "config: database.deadlock_pause: must be an integer between 0 and 3600 (got -1)"),
            (r#"{"database": {"deadlock_pause": 3601}}"#, "config: database.deadlock_pause: must be an integer between 0 and 3600 (got 3601)"),
            (r#"{"database": {"deadlock_pause": 5000}}"#, "config: database.deadlock_pause: must be an integer between 0 and 3600 (got 5000)"),
            (r#"{"database": {"deadlock_retries": 0}}"#, "config: database.deadlock_retries: must be an integer between 1 and 1000 (got 0)"),
            (r#"{"database": {"deadlock_retries": 1001}}"#, "config: database.deadlock_retries: must be an integer between 1 and 1000 (got 1001)"),
            (r#"{"numwant": -1}"#, "config: numwant: must be an integer between 0 and 65535 (got -1)"),
            (r#"{"max_numwant": 65536}"#, "config: max_numwant: must be an integer between 0 and 65535 (got 65536)"),
            (r#"{"channels": {"snatch": 0}}"#, "config: channels.snatch: must be an integer >= 1 (got 0)"),
            (r#"{"intervals": {"announce_drift": -1}}"#, "config: intervals.announce_drift: must be an integer >= 0 (got -1)"),
            (r#"{"intervals": {"flush": 2147483648}}"#, "config: intervals.flush: must be an integer between 1 and 2147483647 (got 2147483648)"),
            (r#"{"limits": {"user_peers_per_torrent": 1001}}"#, "config: limits.user_peers_per_torrent: must be an integer between 1 and 1000 (got 1001)"),
            (r#"{"limits": {"user_peers_per_torrent": 0}}"#, "config: limits.user_peers_per_torrent: must be an integer between 1 and 1000 (got 0)"),
            (r#"{"limits": {"user_requests_per_second": -1}}"#, "config: limits.user_requests_per_second: must be an integer between 0 and 1000000 (got -1)"),
            (r#"{"limits": {"user_request_burst": 1.5}}"#, "config: limits.user_request_burst: must be an integer >= 0 (got 1.5)"),
            (r#"{"limits": {"max_transfer_rate": 9223372036854775808}}"#, "config: limits.max_transfer_rate: must be an integer between 0 and 9223372036854775807 (got 9223372036854775808)"),
            (r#"{"limits": 5}"#, "config: limits: must be an object (got 5)"),
            (r#"{"journal": {"fsync_interval_ms": 60001}}"#, "config: journal.fsync_interval_ms: must be an integer between 0 and 60000 (got 60001)"),
        ];
        for (json, message) in cases {
            assert_eq!(err(json), message, "{json}");
        }
        let db = ok(r#"{"database": {"deadlock_pause": 3600, "deadlock_retries": 1000}}"#)
            .config
            .database;
        assert_eq!((db.deadlock_pause, db.deadlock_retries), (3600, 1000));
        let db = ok(r#"{"database": {"deadlock_pause": 0, "deadlock_retries": 1}}"#)
            .config
            .database;
        assert_eq!((db.deadlock_pause, db.deadlock_retries), (0, 1));
        let c = ok(r#"{"numwant": 65535, "max_numwant": 0}"#).config;
        assert_eq!((c.numwant, c.max_numwant), (65535, 0));
        let c = ok(r#"{"channels": {"snatch": 1}, "intervals": {"flush": 2147483647, "announce_drift": 0}}"#).config;
        assert_eq!(
            (
                c.channels.snatch,
                c.intervals.flush,
                c.intervals.announce_drift
            ),
            (1, 2147483647, 0)
        );
    }

    #[test]
    fn duplicate_keys() {
        #[rustfmt::skip]
        let cases = [
            (r#"{"addr": ":1", "addr": ":2"}"#, "config: addr: duplicate key"),
            (r#"{"database": {"addr": "a:1", "addr": "b:1"}}"#, "config: database.addr: duplicate key"),
            (r#"{"intervals": {}, "intervals": {}}"#, "config: intervals: duplicate key"),
            (r#"{"foo": 1, "foo": 2}"#, "config: foo: duplicate key"),
            (r#"{"foo": {"a": 1, "a": 1}}"#, "config: foo.a: duplicate key"),
            (r#"{"channels": {"x": [{}, {"b": {"c": 1, "c": 2}}]}}"#, "config: channels.x[1].b.c: duplicate key"),
        ];
        for (json, message) in cases {
            assert_eq!(err(json), message, "{json}");
        }
    }

    #[test]
    fn first_error_in_document_order() {
        assert_eq!(
            err(r#"{"record": 1, "addr": 2}"#),
            "config: record: must be true or false (got 1)"
        );
        assert_eq!(
            err(r#"{"addr": 2, "record": 1}"#),
            "config: addr: must be a string (got 2)"
        );
        assert_eq!(
            err(r#"{"scrape": 1, "scrape": true}"#),
            "config: scrape: must be true or false (got 1)"
        );
    }

    #[test]
    fn unknown_keys_warn_and_validation_goes_on() {
        let loaded = ok(
            r#"{"foo": 1, "database": {"hostname": "x", "username": "me"},
                            "channels": {"peers": {}}, "intervals": {"x": null}, "addr": ":1"}"#,
        );
        assert_eq!(
            loaded.warnings,
            [
                "config: foo: unknown key ignored",
                "config: database.hostname: unknown key ignored",
                "config: channels.peers: unknown key ignored",
                "config: intervals.x: unknown key ignored",
            ]
        );
        assert_eq!(loaded.config.database.username, "me");
        assert_eq!(loaded.config.addr, ListenAddr::Any(1));
        assert_eq!(
            err(r#"{"foo": 1, "addr": 5}"#),
            "config: addr: must be a string (got 5)"
        );
    }

    #[test]
    fn deprecated_numwant_aliases() {
        let loaded = ok(r#"{"intervals": {"numwant": 7, "max_numwant": 8}}"#);
        assert_eq!((loaded.config.numwant, loaded.config.max_numwant), (7, 8));
        assert_eq!(
            loaded.warnings,
            [
                "config: intervals.numwant: deprecated, use numwant",
                "config: intervals.max_numwant: deprecated, use max_numwant",
            ]
        );
        // The top-level key wins whichever comes first.
        for json in [
            r#"{"numwant": 1, "intervals": {"numwant": 7, "max_numwant": 8}, "max_numwant": 2}"#,
            r#"{"intervals": {"numwant": 7, "max_numwant": 8}, "numwant": 1, "max_numwant": 2}"#,
        ] {
            let loaded = ok(json);
            assert_eq!((loaded.config.numwant, loaded.config.max_numwant), (1, 2));
            assert_eq!(loaded.warnings.len(), 2);
        }
        assert_eq!(
            err(r#"{"numwant": 1, "intervals": {"numwant": 70000}}"#),
            "config: intervals.numwant: must be an integer between 0 and 65535 (got 70000)"
        );
        assert_eq!(
            err(r#"{"intervals": {"max_numwant": "9"}}"#),
            r#"config: intervals.max_numwant: must be an integer between 0 and 65535 (got "9")"#
        );
    }

    #[test]
    fn invalid_json() {
        #[rustfmt::skip]
        let cases = [
            (r#"{"addr": }"#, "config: <config>: invalid JSON at line 1 column 10: expected value"),
            ("{\n\"addr\": \":1\",\n}", "config: <config>: invalid JSON at line 3 column 1: trailing comma"),
            ("", "config: <config>: invalid JSON at line 1 column 0: EOF while parsing a value"),
            ("{} {}", "config: <config>: invalid JSON at line 1 column 4: trailing characters"),
            ("[]", "config: <config>: must be an object (got [])"),
            ("null", "config: <config>: must be an object (got null)"),
        ];
        for (json, message) in cases {
            assert_eq!(err(json), message, "{json}");
        }
    }

    #[test]
    fn load_reports_the_path() {
        let dir = std::env::temp_dir().join(format!("chihaya-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.json");
        std::fs::write(&file, "{").unwrap();
        let e = Config::load(&file).unwrap_err();
        assert_eq!(e.key, file.display().to_string());
        assert!(
            e.problem.starts_with("invalid JSON at line 1 column 1: "),
            "{e}"
        );
        // A directory is a read error other than "not found".
        assert_eq!(
            Config::load(&dir).unwrap_err().key,
            dir.display().to_string()
        );

        let missing = dir.join("missing.json");
        let loaded = Config::load(&missing).unwrap();
        let expected = format!(
            "Unable to open config file {}, defaults will be used! (",
            missing.display()
        );
        assert!(
            loaded.warnings[0].starts_with(&expected),
            "{}",
            loaded.warnings[0]
        );
        assert!(loaded.warnings[0].ends_with(')'));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn go_dsn() {
        #[rustfmt::skip]
        let cases = [
            ("chihaya:s3cr:et@tcp(db.example:3307)/tracker", db("chihaya", "s3cr:et", "tracker", tcp("db.example", 3307))),
            ("u:p@ss:w@rd@tcp(h:1)/d", db("u", "p@ss:w@rd", "d", tcp("h", 1))),
            ("u:a/b)c@tcp(h:1)/d", db("u", "a/b)c", "d", tcp("h", 1))),
            ("root@unix(/run/mysqld/mysqld.sock)/chihaya", db("root", "", "chihaya", unix("/run/mysqld/mysqld.sock"))),
            ("root@(10.0.0.1:3308)/db", db("root", "", "db", tcp("10.0.0.1", 3308))),
            ("root@tcp(db.example)/db", db("root", "", "db", tcp("db.example", 3306))),
            ("root:@tcp([::1]:3307)/db", db("root", "", "db", tcp("::1", 3307))),
            ("root@tcp([::1])/db", db("root", "", "db", tcp("::1", 3306))),
        ];
        for (s, expected) in cases {
            let loaded = dsn(s);
            assert_eq!(loaded.config.database, expected, "{s}");
            assert!(loaded.warnings.is_empty());
        }
        let loaded = dsn("u@tcp(h:1)/d?parseTime=true&loc=UTC");
        assert_eq!(loaded.config.database.database, "d");
        assert_eq!(
            loaded.warnings,
            ["config: DB_DSN: parameters ignored (parseTime=true&loc=UTC)"]
        );
        assert!(dsn("u@tcp(h:1)/d?").warnings.is_empty());
    }

    #[test]
    fn url_dsn() {
        #[rustfmt::skip]
        let cases = [
            ("mysql://chihaya:pw@db.example:3307/tracker", db("chihaya", "pw", "tracker", tcp("db.example", 3307))),
            ("mysql://us%65r:p%40ss%3Aw%2Fd@h/d", db("user", "p@ss:w/d", "d", tcp("h", 3306))),
            ("mysql://u:p@ss:x@h:1/d", db("u", "p@ss:x", "d", tcp("h", 1))),
            ("mysql://u@[::1]/d", db("u", "", "d", tcp("::1", 3306))),
            ("mysql://u@[2001:db8::5]:3310/d", db("u", "", "d", tcp("2001:db8::5", 3310))),
            ("MySQL://u@127.0.0.1/d", db("u", "", "d", tcp("127.0.0.1", 3306))),
            ("mysql://u:a+b@h/d", db("u", "a+b", "d", tcp("h", 3306))),
        ];
        for (s, expected) in cases {
            let loaded = dsn(s);
            assert_eq!(loaded.config.database, expected, "{s}");
            assert!(loaded.warnings.is_empty());
        }
        let loaded = dsn("mysql://u@h/d?ssl-mode=REQUIRED");
        assert_eq!(loaded.config.database.endpoint, tcp("h", 3306));
        assert_eq!(
            loaded.warnings,
            ["config: DB_DSN: parameters ignored (ssl-mode=REQUIRED)"]
        );
    }

    #[test]
    fn malformed_dsn() {
        #[rustfmt::skip]
        let cases = [
            ("u@tcp(h:1)", r#"missing "/DB""#),
            ("u@unix(/run/db.sock)", r#"missing "/DB" after "PROTO(ADDR)""#),
            ("tcp(h:1)/d", r#"missing "USER@""#),
            ("u@tcp)/d", r#"missing "(" in "PROTO(ADDR)""#),
            ("u:pw@udp(h:1)/d", r#"unknown protocol "udp" (expected tcp or unix)"#),
            ("@tcp(h:1)/d", "empty user"),
            (":pw@tcp(h:1)/d", "empty user"),
            ("u@tcp(h:1)/", "empty database name"),
            ("u@tcp(h:1)/?x=1", "empty database name"),
            ("u@tcp()/d", "empty address"),
            ("u@tcp(h:x)/d", r#"bad port "x""#),
            ("u@tcp(h:)/d", r#"bad port """#),
            ("u@tcp(h:0)/d", r#"bad port "0""#),
            ("u@tcp(h:65536)/d", r#"bad port "65536""#),
            ("u@tcp(h:+1)/d", r#"bad port "+1""#),
            ("u@tcp(:3306)/d", "missing host"),
            ("u@tcp(::1)/d", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
            ("u@tcp([::1)/d", r#"bad address "[::1""#),
            ("u@tcp([::1]x)/d", r#"bad address "[::1]x""#),
            ("mysql://u@h", r#"missing "/DB""#),
            ("mysql://h/d", r#"missing "USER@""#),
            ("mysql://u@/d", "missing host"),
            ("mysql://u@[]:1/d", "missing host"),
            ("mysql://@h/d", "empty user"),
            ("mysql://u@h/", "empty database name"),
            ("mysql://u@h/a/b", r#"bad database name "a/b""#),
            ("mysql://u@h:x/d", r#"bad port "x""#),
            ("mysql://u%zz@h/d", "bad percent-encoding in user"),
            ("mysql://u:secret%4@h/d", "bad percent-encoding in password"),
            ("mysql://u:%ff@h/d", "bad percent-encoding in password"),
        ];
        for (s, problem) in cases {
            assert_eq!(dsn_err(s), format!("config: DB_DSN: {problem}"), "{s}");
        }
        // The password never shows in a message.
        for s in [
            "u:hunter2@udp(h)/d",
            "u:hunter2@tcp(h:x)/d",
            "mysql://u:hunter2%@h/d",
        ] {
            assert!(!dsn_err(s).contains("hunter2"), "{s}");
        }
    }

    #[test]
    fn dsn_replaces_the_connection_keys_only() {
        let json = r#"{"database": {"username": "a", "password": "b", "database": "c",
                       "proto": "unix", "addr": "/s", "deadlock_pause": 7, "deadlock_retries": 8}}"#;
        let loaded = Config::from_parts(Some(json), Some("u:p@tcp(h:1)/d")).unwrap();
        let expected = DatabaseConfig {
            deadlock_pause: 7,
            deadlock_retries: 8,
            ..db("u", "p", "d", tcp("h", 1))
        };
        assert_eq!(loaded.config.database, expected);
        // An empty DB_DSN counts as unset.
        let loaded = Config::from_parts(Some(json), Some("")).unwrap();
        assert_eq!(loaded.config.database.endpoint, unix("/s"));
        // The file is checked first.
        let e = Config::from_parts(Some(r#"{"addr": 1}"#), Some("bad")).unwrap_err();
        assert_eq!(e.key, "addr");
    }

    #[test]
    fn database_addr_is_checked_at_load() {
        #[rustfmt::skip]
        let cases = [
            ("127.0.0.1:99999", r#"bad port "99999""#),
            ("127.0.0.1:33x6", r#"bad port "33x6""#),
            ("127.0.0.1:0", r#"bad port "0""#),
            ("127.0.0.1:", r#"bad port """#),
            ("127.0.0.1:+3306", r#"bad port "+3306""#),
            ("127.0.0.1:-1", r#"bad port "-1""#),
            ("::1", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
            ("::1:3306", r#"bad address "::1:3306" (IPv6 hosts need [brackets])"#),
            ("[::1]:99999", r#"bad port "99999""#),
            ("[::1", r#"bad address "[::1""#),
            ("[::1]3306", r#"bad address "[::1]3306""#),
            ("[db.example]:3306", r#"bad IPv6 address "[db.example]""#),
            ("[]:3306", "missing host"),
            (":3306", "missing host"),
            ("db example:3306", r#"bad host "db example""#),
            ("/run/mysqld/mysqld.sock", r#"bad host "/run/mysqld/mysqld.sock" (a socket path needs database.proto "unix")"#),
        ];
        for (addr, problem) in cases {
            let json = format!(r#"{{"database": {{"addr": "{addr}"}}}}"#);
            assert_eq!(
                err(&json),
                format!("config: database.addr: {problem}"),
                "{addr}"
            );
        }
        #[rustfmt::skip]
        let good = [
            ("[::1]", tcp("::1", 3306)),
            ("[::1]:3307", tcp("::1", 3307)),
            ("127.0.0.1", tcp("127.0.0.1", 3306)),
            ("127.0.0.1:65535", tcp("127.0.0.1", 65535)),
            ("db.example:1", tcp("db.example", 1)),
            ("mariadb_1", tcp("mariadb_1", 3306)),
        ];
        for (addr, endpoint) in good {
            let json = format!(r#"{{"database": {{"proto": "tcp", "addr": "{addr}"}}}}"#);
            assert_eq!(ok(&json).config.database.endpoint, endpoint, "{addr}");
        }
    }

    #[test]
    fn database_addr_is_read_as_proto_says_wherever_proto_is() {
        // A socket path is taken as it is, even one with a colon, whichever key comes first.
        for json in [
            r#"{"database": {"proto": "unix", "addr": "/run/my:sql/x.sock"}}"#,
            r#"{"database": {"addr": "/run/my:sql/x.sock", "proto": "unix"}}"#,
        ] {
            assert_eq!(
                ok(json).config.database.endpoint,
                unix("/run/my:sql/x.sock"),
                "{json}"
            );
        }
        // The default address is a tcp one.
        assert_eq!(
            err(r#"{"database": {"proto": "unix"}}"#),
            r#"config: database.addr: must be a socket path when database.proto is "unix""#
        );
        // proto tcp after a bad addr still reports the addr.
        assert_eq!(
            err(r#"{"database": {"addr": "h:99999", "proto": "tcp"}}"#),
            r#"config: database.addr: bad port "99999""#
        );
        // DB_DSN replaces both keys, so the file's are not looked at.
        let json = r#"{"database": {"addr": "h:99999"}}"#;
        let loaded = Config::from_parts(Some(json), Some("u@unix(/s)/d")).unwrap();
        assert_eq!(loaded.config.database.endpoint, unix("/s"));
        let json = r#"{"database": {"proto": "unix"}}"#;
        let loaded = Config::from_parts(Some(json), Some("u@tcp(h)/d")).unwrap();
        assert_eq!(loaded.config.database.endpoint, tcp("h", 3306));
    }

    #[test]
    fn dsn_addresses_follow_the_same_rules() {
        for (port, problem) in [("99999", "99999"), ("33x6", "33x6"), ("0", "0"), ("", "")] {
            let expected = format!(r#"config: DB_DSN: bad port "{problem}""#);
            assert_eq!(dsn_err(&format!("u@tcp(127.0.0.1:{port})/d")), expected);
            assert_eq!(dsn_err(&format!("mysql://u@127.0.0.1:{port}/d")), expected);
        }
        #[rustfmt::skip]
        let cases = [
            ("u@tcp([::1]:99999)/d", r#"bad port "99999""#),
            ("mysql://u@::1/d", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
            ("mysql://u@[h]/d", r#"bad IPv6 address "[h]""#),
            ("u@tcp(a b)/d", r#"bad host "a b""#),
        ];
        for (s, problem) in cases {
            assert_eq!(dsn_err(s), format!("config: DB_DSN: {problem}"), "{s}");
        }
        // A unix socket path is not an address.
        assert_eq!(
            dsn("u@unix(/run/a:b.sock)/d").config.database.endpoint,
            unix("/run/a:b.sock")
        );
    }

    #[test]
    fn listen_addr_is_checked_at_load() {
        #[rustfmt::skip]
        let cases = [
            (":99999", r#"bad port "99999""#),
            (":33x6", r#"bad port "33x6""#),
            (":", r#"bad port """#),
            (":+80", r#"bad port "+80""#),
            ("127.0.0.1:", r#"bad port """#),
            ("127.0.0.1", r#"missing port in "127.0.0.1""#),
            ("localhost", r#"missing port in "localhost""#),
            ("[::1]", r#"missing port in "[::1]""#),
            ("::1", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
            ("::1:80", r#"bad address "::1:80" (IPv6 hosts need [brackets])"#),
            ("[::1]:x", r#"bad port "x""#),
            ("[]:80", "missing host"),
            ("[1.2.3.4]:80", r#"bad IPv6 address "[1.2.3.4]""#),
            ("a/b:80", r#"bad host "a/b""#),
        ];
        for (addr, problem) in cases {
            let json = format!(r#"{{"addr": "{addr}"}}"#);
            assert_eq!(err(&json), format!("config: addr: {problem}"), "{addr}");
        }
        #[rustfmt::skip]
        let good = [
            (":0", ListenAddr::Any(0), ":0"),
            (":34000", ListenAddr::Any(34000), ":34000"),
            ("0.0.0.0:80", listen("0.0.0.0", 80), "0.0.0.0:80"),
            ("127.0.0.1:0", listen("127.0.0.1", 0), "127.0.0.1:0"),
            ("[::1]:65535", listen("::1", 65535), "[::1]:65535"),
            ("[::]:80", listen("::", 80), "[::]:80"),
            ("localhost:8080", listen("localhost", 8080), "localhost:8080"),
            ("tracker.example:080", listen("tracker.example", 80), "tracker.example:80"),
        ];
        for (text, addr, shown) in good {
            let json = format!(r#"{{"addr": "{text}"}}"#);
            let config = ok(&json).config;
            assert_eq!(config.addr, addr, "{text}");
            assert_eq!(config.addr.to_string(), shown);
        }
        // The listen address is checked after DB_DSN, which cannot change it.
        let e = Config::from_parts(Some(r#"{"addr": ":x"}"#), Some("u@tcp(h)/d")).unwrap_err();
        assert_eq!(e.to_string(), r#"config: addr: bad port "x""#);
    }
}
