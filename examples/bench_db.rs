//! `bench_db`: what each accounting statement costs MariaDB per row (`make bench-db`,
//! bench/README.md "Statement shape and size").
//!
//! Against a dedicated database that holds `database/schema.sql` (bench/db.sh creates
//! it), it fills `users_main`, `torrents`, `transfer_history` and `transfer_ips` with
//! rows, then writes one fixed sequence of synthetic flushes (every flush a random,
//! key-sorted set of existing rows, as the tracker's are in steady state) into each
//! table once per variant:
//!
//! * `prepared`: the tracker's own statements, `chihaya::store::write::{users,
//!   torrents, history, transfer_ips}`, values bound, each size prepared once per
//!   connection, at 64 … 16384 rows per statement as far as MariaDB's 65,535
//!   placeholders allow;
//! * `text`: the same statements with the values written into the text as numbers and
//!   sent unprepared (COM_QUERY). These builders are bench-only, below; they copy the
//!   library's statements clause for clause, and the content check after every
//!   variant shows that both write the same;
//! * `autocommit`: every statement commits on its own (the tracker without
//!   `chihaya_commits`); `flush txn`: a flush's statements in one transaction that
//!   first locks the writer's commit marker and upserts it last
//!   (`chihaya::store::commits::{lock, mark}`, the tracker with `chihaya_commits`).
//!
//! Per variant: MariaDB's CPU (utime + stime of mariadbd from `/proc/<pid>/stat`, from
//! the first measured statement until the server has been idle for 250 ms, so purge
//! and flushing that the writes caused are counted), this process's CPU while it
//! writes (`getrusage`: building, encoding, sending the statements), both per row, and
//! rows/s over the writes. One flush before the measured ones prepares the statements
//! and warms the pages. After each variant every table's content is compared with
//! what the deltas should have made of it (row count and CRC32 of every row).
//!
//! ```text
//! bench_db --dsn DSN --mariadb-pid PID [--seed N] [--flushes N] [--flush-rows N]
//!          [--users N] [--torrents N] [--pairs N] [--tables users,torrents,history,ips]
//!          [--out FILE] [--max-seconds N]
//! ```

use std::collections::HashSet;
use std::fmt::{Display, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chihaya::config::Config;
use chihaya::metrics::Metrics;
use chihaya::store::limits::saturating_add;
use chihaya::store::{commits, connect_options, write, Store};
use chihaya::tracker::{
    ClientId, HistoryDelta, TorrentDelta, TorrentId, TransferIpDelta, UserDelta, UserId,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Row as _};

const USAGE: &str = "usage: bench_db --dsn DSN --mariadb-pid PID [--seed N] [--flushes N] \
    [--flush-rows N] [--users N] [--torrents N] [--pairs N] \
    [--tables users,torrents,history,ips] [--out FILE] [--max-seconds N]";

/// Rows per statement tried; prepared ones only up to MariaDB's placeholder limit.
const PREPARED_SIZES: [usize; 6] = [64, 256, 1024, 4096, 8192, 16384];
const TEXT_SIZES: [usize; 3] = [1024, 4096, 16384];
/// The first flush's clock (a Unix time); every flush moves it on by one.
const CLOCK0: i64 = 1_800_000_000;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/cpu.rs"]
mod cpu;
use cpu::{clock_ticks_per_second, host_ticks, own_cpu, process_ticks, wait_quiet, Error};

struct Options {
    dsn: String,
    mariadb_pid: u32,
    seed: u64,
    flushes: usize,
    flush_rows: usize,
    users: usize,
    torrents: usize,
    pairs: usize,
    tables: Vec<String>,
    out: Option<String>,
    max_seconds: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        dsn: String::new(),
        mariadb_pid: 0,
        seed: 1,
        flushes: 13,
        flush_rows: 16384,
        users: 20_000,
        torrents: 100_000,
        pairs: 200_000,
        tables: ["users", "torrents", "history", "ips"]
            .map(String::from)
            .to_vec(),
        out: None,
        max_seconds: 900,
    };
    for (arg, value) in cli::pairs(USAGE)? {
        let number = |v: &str| cli::positive(&arg, v);
        match arg.as_str() {
            "--dsn" => o.dsn = value,
            "--mariadb-pid" => o.mariadb_pid = number(&value)? as u32,
            "--seed" => o.seed = value.parse().map_err(|_| format!("--seed: {value}"))?,
            "--flushes" => o.flushes = number(&value)? as usize,
            "--flush-rows" => o.flush_rows = number(&value)? as usize,
            "--users" => o.users = number(&value)? as usize,
            "--torrents" => o.torrents = number(&value)? as usize,
            "--pairs" => o.pairs = number(&value)? as usize,
            "--tables" => o.tables = value.split(',').map(String::from).collect(),
            "--out" => o.out = Some(value),
            "--max-seconds" => o.max_seconds = number(&value)?,
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    if o.dsn.is_empty() || o.mariadb_pid == 0 {
        return Err(USAGE.to_owned());
    }
    if let Some(t) = o
        .tables
        .iter()
        .find(|t| !["users", "torrents", "history", "ips"].contains(&t.as_str()))
    {
        return Err(format!("--tables: unknown table {t}"));
    }
    if o.flush_rows > o.users.min(o.torrents).min(o.pairs) {
        return Err("--flush-rows must not exceed --users, --torrents, --pairs".to_owned());
    }
    if o.pairs as u64 > o.users as u64 * o.torrents as u64 / 2 {
        return Err("--pairs must be at most half of users × torrents".to_owned());
    }
    Ok(o)
}

// --------------------------------------------------------------- tables --

/// Saturating `column + value` as the statements compute it
/// (`chihaya::store::limits::saturating_add`).
fn sat(column: u64, value: u64, max: u64) -> u64 {
    if column > max - value {
        column.max(max)
    } else {
        column + value
    }
}

/// One accounting table: its stored rows (what the content check expects), its
/// deltas, the library's statement and the bench-only text statement.
trait Table {
    /// The rows as stored, in key order.
    type Stored: Clone;
    type Delta: Copy;
    /// Table name, also the commit marker's writer (prefixed `bench_`).
    const NAME: &'static str;
    /// Placeholders per row in the prepared statement (the tracker's `Row::BINDS`).
    const BINDS: usize;
    /// Rows affected per delta row: 1 for the UPDATE … JOIN (found rows), 2 for an
    /// upsert that changed an existing row.
    const AFFECTED: u64;
    /// `SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(',', <the checked columns>)))`.
    const FINGERPRINT: &'static str;

    fn generate(options: &Options, rng: &mut SmallRng) -> Vec<Self::Stored>;
    /// One multi-row INSERT of the initial rows.
    fn load_sql(rows: &[Self::Stored]) -> String;
    /// What the fingerprint's CONCAT_WS makes of a stored row.
    fn fingerprint_line(row: &Self::Stored, out: &mut String);
    fn delta(row: &Self::Stored, rng: &mut SmallRng) -> Self::Delta;
    /// The column every flush moves on (so that every row changes every time).
    fn set_clock(delta: &mut Self::Delta, clock: i64);
    /// What the statement makes of a stored row.
    fn apply(store: &Store, row: &mut Self::Stored, delta: &Self::Delta);
    /// The library's statement (prepared, cached per size on the connection).
    async fn prepared(
        store: &Store,
        conn: &mut MySqlConnection,
        rows: &[Self::Delta],
    ) -> Result<u64, sqlx::Error>;
    /// Bench-only: the same statement as text, values inlined.
    fn text(store: &Store, rows: &[Self::Delta]) -> String;
}

/// Bench-only: writes one row of a derived table or VALUES list into a text
/// statement, like `chihaya::store::write`'s `RowBinder` binds it.
struct Literals<'a> {
    sql: &'a mut String,
    names: Option<&'a [&'a str]>,
    column: usize,
}

impl Literals<'_> {
    fn v(&mut self, value: impl Display) -> &mut Self {
        if self.column > 0 {
            self.sql.push_str(", ");
        }
        let _ = write!(self.sql, "{value}");
        if let Some(name) = self.names.and_then(|names| names.get(self.column)) {
            let _ = write!(self.sql, " AS {name}");
        }
        self.column += 1;
        self
    }
}

/// Bench-only text twin of `write::update_join`: `UPDATE <table> AS t JOIN (SELECT
/// <v> AS id, … UNION ALL VALUES (…), …) AS d ON t.<id> = d.id SET `.
fn text_update_join<R>(
    table: &str,
    id_column: &str,
    columns: &[&str],
    rows: &[R],
    mut row_literals: impl FnMut(&mut Literals<'_>, &R),
) -> String {
    let mut sql = String::with_capacity(64 + rows.len() * 16 * columns.len());
    let _ = write!(sql, "UPDATE {table} AS t JOIN (");
    for (n, row) in rows.iter().enumerate() {
        sql.push_str(match n {
            0 => "SELECT ",
            1 => " UNION ALL VALUES (",
            _ => ", (",
        });
        row_literals(
            &mut Literals {
                sql: &mut sql,
                names: (n == 0).then_some(columns),
                column: 0,
            },
            row,
        );
        if n > 0 {
            sql.push(')');
        }
    }
    let _ = write!(sql, ") AS d ON t.{id_column} = d.id SET ");
    sql
}

/// Bench-only text twin of `QueryBuilder::push_values`: `VALUES (…), (…)`.
fn text_values<R>(
    sql: &mut String,
    rows: &[R],
    mut row_literals: impl FnMut(&mut Literals<'_>, &R),
) {
    sql.push_str("VALUES ");
    for (n, row) in rows.iter().enumerate() {
        sql.push_str(if n == 0 { "(" } else { ", (" });
        row_literals(
            &mut Literals {
                sql,
                names: None,
                column: 0,
            },
            row,
        );
        sql.push(')');
    }
}

fn push_load_row(sql: &mut String, n: usize, values: std::fmt::Arguments<'_>) {
    sql.push_str(if n == 0 { "(" } else { ", (" });
    let _ = sql.write_fmt(values);
    sql.push(')');
}

#[derive(Clone)]
struct UserRow {
    id: u32,
    uploaded: u64,
    downloaded: u64,
    rawup: u64,
    rawdl: u64,
}

struct Users;

impl Table for Users {
    type Stored = UserRow;
    type Delta = UserDelta;
    const NAME: &'static str = "users_main";
    const BINDS: usize = 5;
    const AFFECTED: u64 = 1;
    const FINGERPRINT: &'static str = "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(',', \
        ID, Uploaded, Downloaded, rawup, rawdl))) FROM users_main";

    fn generate(options: &Options, rng: &mut SmallRng) -> Vec<UserRow> {
        (1..=options.users as u32)
            .map(|id| UserRow {
                id,
                uploaded: rng.random_range(0..1 << 40),
                downloaded: rng.random_range(0..1 << 40),
                rawup: rng.random_range(0..1 << 40),
                rawdl: rng.random_range(0..1 << 40),
            })
            .collect()
    }

    fn load_sql(rows: &[UserRow]) -> String {
        let mut sql = String::from(
            "INSERT INTO users_main (ID, Uploaded, Downloaded, Enabled, torrent_pass, rawup, rawdl) VALUES ",
        );
        for (n, r) in rows.iter().enumerate() {
            push_load_row(
                &mut sql,
                n,
                format_args!(
                    "{}, {}, {}, '1', MD5({}), {}, {}",
                    r.id, r.uploaded, r.downloaded, r.id, r.rawup, r.rawdl
                ),
            );
        }
        sql
    }

    fn fingerprint_line(r: &UserRow, out: &mut String) {
        let _ = write!(
            out,
            "{},{},{},{},{}",
            r.id, r.uploaded, r.downloaded, r.rawup, r.rawdl
        );
    }

    fn delta(r: &UserRow, rng: &mut SmallRng) -> UserDelta {
        let rawup = rng.random_range(1..1 << 26);
        let rawdl = rng.random_range(0..1 << 26);
        UserDelta {
            id: UserId(r.id),
            uploaded: rawup,
            downloaded: rawdl / 2,
            rawup,
            rawdl,
        }
    }

    fn set_clock(_: &mut UserDelta, _: i64) {}

    fn apply(store: &Store, r: &mut UserRow, d: &UserDelta) {
        let max = |column| store.limits.max("users_main", column);
        let add = |stored: &mut u64, value: u64, column| {
            let max = max(column);
            *stored = sat(*stored, value.min(max), max);
        };
        add(&mut r.uploaded, d.uploaded, "Uploaded");
        add(&mut r.downloaded, d.downloaded, "Downloaded");
        add(&mut r.rawup, d.rawup, "rawup");
        add(&mut r.rawdl, d.rawdl, "rawdl");
    }

    async fn prepared(
        store: &Store,
        conn: &mut MySqlConnection,
        rows: &[UserDelta],
    ) -> Result<u64, sqlx::Error> {
        write::users(store, conn, rows).await
    }

    /// Bench-only copy of `write::users` with the values inlined.
    fn text(store: &Store, rows: &[UserDelta]) -> String {
        let names = ["Uploaded", "Downloaded", "rawup", "rawdl"];
        let max = names.map(|column| store.limits.max("users_main", column));
        let columns = ["id", "uploaded", "downloaded", "rawup", "rawdl"];
        let mut sql = text_update_join("users_main", "ID", &columns, rows, |values, row| {
            values
                .v(row.id.0)
                .v(row.uploaded.min(max[0]))
                .v(row.downloaded.min(max[1]))
                .v(row.rawup.min(max[2]))
                .v(row.rawdl.min(max[3]));
        });
        let set: Vec<String> = names
            .iter()
            .zip(&columns[1..])
            .zip(max)
            .map(|((column, value), max)| {
                saturating_add(&format!("t.{column}"), &format!("d.{value}"), max)
            })
            .collect();
        sql.push_str(&set.join(", "));
        sql
    }
}

#[derive(Clone)]
struct TorrentRow {
    id: u32,
    snatched: u64,
    seeders: u64,
    leechers: u64,
    last_action: i64,
}

struct Torrents;

impl Table for Torrents {
    type Stored = TorrentRow;
    type Delta = TorrentDelta;
    const NAME: &'static str = "torrents";
    const BINDS: usize = 5;
    const AFFECTED: u64 = 1;
    const FINGERPRINT: &'static str = "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(',', \
        ID, Snatched, Seeders, Leechers, last_action))) FROM torrents";

    fn generate(options: &Options, rng: &mut SmallRng) -> Vec<TorrentRow> {
        (1..=options.torrents as u32)
            .map(|id| TorrentRow {
                id,
                snatched: rng.random_range(0..512),
                seeders: rng.random_range(0..100),
                leechers: rng.random_range(0..100),
                last_action: CLOCK0 - rng.random_range(0..86_400),
            })
            .collect()
    }

    fn load_sql(rows: &[TorrentRow]) -> String {
        let mut sql = String::from(
            "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash, Leechers, Seeders, \
             last_action, Snatched) VALUES ",
        );
        for (n, r) in rows.iter().enumerate() {
            let kind = if r.id.is_multiple_of(5) {
                "music"
            } else {
                "anime"
            };
            push_load_row(
                &mut sql,
                n,
                format_args!(
                    "{}, {}, '{kind}', UNHEX(SHA1({})), {}, {}, {}, {}",
                    r.id,
                    r.id.div_ceil(3),
                    r.id,
                    r.leechers,
                    r.seeders,
                    r.last_action,
                    r.snatched
                ),
            );
        }
        sql
    }

    fn fingerprint_line(r: &TorrentRow, out: &mut String) {
        let _ = write!(
            out,
            "{},{},{},{},{}",
            r.id, r.snatched, r.seeders, r.leechers, r.last_action
        );
    }

    fn delta(r: &TorrentRow, rng: &mut SmallRng) -> TorrentDelta {
        TorrentDelta {
            id: TorrentId(r.id),
            snatched: if rng.random_range(0..20) == 0 { 1 } else { 0 },
            seeders: rng.random_range(0..100),
            leechers: rng.random_range(0..100),
            last_action: 0,
        }
    }

    fn set_clock(d: &mut TorrentDelta, clock: i64) {
        d.last_action = clock;
    }

    fn apply(store: &Store, r: &mut TorrentRow, d: &TorrentDelta) {
        let max = |column| store.limits.max("torrents", column);
        let snatched = max("Snatched");
        r.snatched = sat(r.snatched, u64::from(d.snatched).min(snatched), snatched);
        r.seeders = u64::from(d.seeders).min(max("Seeders"));
        r.leechers = u64::from(d.leechers).min(max("Leechers"));
        r.last_action = r.last_action.max(d.last_action);
    }

    async fn prepared(
        store: &Store,
        conn: &mut MySqlConnection,
        rows: &[TorrentDelta],
    ) -> Result<u64, sqlx::Error> {
        write::torrents(store, conn, rows).await
    }

    /// Bench-only copy of `write::torrents` with the values inlined.
    fn text(store: &Store, rows: &[TorrentDelta]) -> String {
        let [snatched, seeders, leechers] =
            ["Snatched", "Seeders", "Leechers"].map(|column| store.limits.max("torrents", column));
        let columns = ["id", "snatched", "seeders", "leechers", "last_action"];
        let mut sql = text_update_join("torrents", "ID", &columns, rows, |values, row| {
            values
                .v(row.id.0)
                .v(u64::from(row.snatched).min(snatched))
                .v(u64::from(row.seeders).min(seeders))
                .v(u64::from(row.leechers).min(leechers))
                .v(row.last_action);
        });
        let _ = write!(
            sql,
            "{}, t.Seeders = d.seeders, t.Leechers = d.leechers, \
             t.last_action = GREATEST(t.last_action, d.last_action)",
            saturating_add("t.Snatched", "d.snatched", snatched)
        );
        sql
    }
}

#[derive(Clone)]
struct HistoryRow {
    uid: u32,
    fid: u32,
    uploaded: u64,
    downloaded: u64,
    seeding: u8,
    seedtime: u64,
    activetime: u64,
    remaining: u64,
    active: u8,
    starttime: i64,
    last_announce: i64,
    snatched: u64,
}

/// `(uid, fid)` pairs, distinct, in key order.
fn pairs(options: &Options, rng: &mut SmallRng) -> Vec<(u32, u32)> {
    let mut set = HashSet::with_capacity(options.pairs);
    while set.len() < options.pairs {
        set.insert((
            rng.random_range(1..=options.users as u32),
            rng.random_range(1..=options.torrents as u32),
        ));
    }
    let mut pairs: Vec<(u32, u32)> = set.into_iter().collect();
    pairs.sort_unstable();
    pairs
}

struct History;

impl Table for History {
    type Stored = HistoryRow;
    type Delta = HistoryDelta;
    const NAME: &'static str = "transfer_history";
    const BINDS: usize = 12;
    const AFFECTED: u64 = 2;
    const FINGERPRINT: &'static str = "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(',', \
        uid, fid, uploaded, downloaded, seeding, seedtime, activetime, remaining, active, \
        starttime, last_announce, snatched))) FROM transfer_history";

    fn generate(options: &Options, rng: &mut SmallRng) -> Vec<HistoryRow> {
        pairs(options, rng)
            .into_iter()
            .map(|(uid, fid)| {
                let activetime = rng.random_range(0..1 << 20);
                HistoryRow {
                    uid,
                    fid,
                    uploaded: rng.random_range(0..1 << 36),
                    downloaded: rng.random_range(0..1 << 36),
                    seeding: rng.random_range(0..2),
                    seedtime: activetime / 2,
                    activetime,
                    remaining: rng.random_range(0..1 << 32),
                    active: 1,
                    starttime: CLOCK0 - rng.random_range(86_400..10_000_000),
                    last_announce: CLOCK0 - rng.random_range(0..86_400),
                    snatched: rng.random_range(0..2),
                }
            })
            .collect()
    }

    fn load_sql(rows: &[HistoryRow]) -> String {
        let mut sql = String::from(
            "INSERT INTO transfer_history (uid, fid, uploaded, downloaded, seeding, seedtime, \
             activetime, remaining, active, starttime, last_announce, snatched) VALUES ",
        );
        for (n, r) in rows.iter().enumerate() {
            push_load_row(
                &mut sql,
                n,
                format_args!(
                    "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
                    r.uid,
                    r.fid,
                    r.uploaded,
                    r.downloaded,
                    r.seeding,
                    r.seedtime,
                    r.activetime,
                    r.remaining,
                    r.active,
                    r.starttime,
                    r.last_announce,
                    r.snatched
                ),
            );
        }
        sql
    }

    fn fingerprint_line(r: &HistoryRow, out: &mut String) {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.uid,
            r.fid,
            r.uploaded,
            r.downloaded,
            r.seeding,
            r.seedtime,
            r.activetime,
            r.remaining,
            r.active,
            r.starttime,
            r.last_announce,
            r.snatched
        );
    }

    fn delta(r: &HistoryRow, rng: &mut SmallRng) -> HistoryDelta {
        let active_time = rng.random_range(1..3600);
        let seeding = rng.random_range(0..10) < 3;
        HistoryDelta {
            user: UserId(r.uid),
            torrent: TorrentId(r.fid),
            uploaded: rng.random_range(0..1 << 26),
            downloaded: rng.random_range(0..1 << 26),
            seeding,
            start_time: r.starttime,
            last_announce: 0,
            active_time,
            seed_time: if seeding { active_time } else { 0 },
            active: true,
            snatched: u32::from(rng.random_range(0..200) == 0),
            remaining: if seeding {
                0
            } else {
                rng.random_range(0..1 << 32)
            },
        }
    }

    fn set_clock(d: &mut HistoryDelta, clock: i64) {
        d.last_announce = clock;
    }

    fn apply(store: &Store, r: &mut HistoryRow, d: &HistoryDelta) {
        let max = |column| store.limits.max("transfer_history", column);
        let time = |seconds: i64| u64::try_from(seconds).unwrap_or(0);
        let add = |stored: &mut u64, value: u64, column| {
            let max = max(column);
            *stored = sat(*stored, value.min(max), max);
        };
        add(&mut r.uploaded, d.uploaded, "uploaded");
        add(&mut r.downloaded, d.downloaded, "downloaded");
        add(&mut r.activetime, time(d.active_time), "activetime");
        add(&mut r.seedtime, time(d.seed_time), "seedtime");
        add(&mut r.snatched, u64::from(d.snatched), "snatched");
        r.seeding = u8::from(d.seeding);
        r.last_announce = d.last_announce;
        r.active = u8::from(d.active);
        r.remaining = d.remaining.min(max("remaining"));
    }

    async fn prepared(
        store: &Store,
        conn: &mut MySqlConnection,
        rows: &[HistoryDelta],
    ) -> Result<u64, sqlx::Error> {
        write::history(store, conn, rows).await
    }

    /// Bench-only copy of `write::history` with the values inlined.
    fn text(store: &Store, rows: &[HistoryDelta]) -> String {
        let [uploaded, downloaded, activetime, seedtime, snatched, remaining] = [
            "uploaded",
            "downloaded",
            "activetime",
            "seedtime",
            "snatched",
            "remaining",
        ]
        .map(|column| store.limits.max("transfer_history", column));
        let time = |seconds: i64| u64::try_from(seconds).unwrap_or(0);
        let mut sql = String::with_capacity(512 + rows.len() * 110);
        sql.push_str(
            "INSERT INTO transfer_history (uid, fid, uploaded, downloaded, seeding, starttime, last_announce, \
             activetime, seedtime, active, snatched, remaining) ",
        );
        text_values(&mut sql, rows, |values, row| {
            values
                .v(row.user.0)
                .v(row.torrent.0)
                .v(row.uploaded.min(uploaded))
                .v(row.downloaded.min(downloaded))
                .v(u8::from(row.seeding))
                .v(row.start_time)
                .v(row.last_announce)
                .v(time(row.active_time).min(activetime))
                .v(time(row.seed_time).min(seedtime))
                .v(u8::from(row.active))
                .v(u64::from(row.snatched).min(snatched))
                .v(row.remaining.min(remaining));
        });
        let add = |column, max| saturating_add(column, &format!("VALUES({column})"), max);
        let _ = write!(
            sql,
            " ON DUPLICATE KEY UPDATE {}, {}, seeding = VALUES(seeding), \
             last_announce = VALUES(last_announce), {}, {}, active = VALUES(active), \
             {}, remaining = VALUES(remaining)",
            add("uploaded", uploaded),
            add("downloaded", downloaded),
            add("activetime", activetime),
            add("seedtime", seedtime),
            add("snatched", snatched),
        );
        sql
    }
}

#[derive(Clone)]
struct IpRow {
    uid: u32,
    fid: u32,
    ip: u32,
    client: u32,
    uploaded: u64,
    downloaded: u64,
    port: u16,
    starttime: i64,
    last_announce: i64,
}

struct Ips;

impl Table for Ips {
    type Stored = IpRow;
    type Delta = TransferIpDelta;
    const NAME: &'static str = "transfer_ips";
    const BINDS: usize = 9;
    const AFFECTED: u64 = 2;
    const FINGERPRINT: &'static str = "SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS(',', \
        uid, fid, ip, client_id, uploaded, downloaded, port + 0, starttime, last_announce))) \
        FROM transfer_ips";

    /// One address and client per (uid, fid) pair: in key order as the pairs are.
    fn generate(options: &Options, rng: &mut SmallRng) -> Vec<IpRow> {
        pairs(options, rng)
            .into_iter()
            .map(|(uid, fid)| IpRow {
                uid,
                fid,
                ip: rng.random(),
                client: rng.random_range(0..8),
                uploaded: rng.random_range(0..1 << 36),
                downloaded: rng.random_range(0..1 << 36),
                port: rng.random_range(1024..=u16::MAX),
                starttime: CLOCK0 - rng.random_range(86_400..10_000_000),
                last_announce: CLOCK0 - rng.random_range(0..86_400),
            })
            .collect()
    }

    fn load_sql(rows: &[IpRow]) -> String {
        let mut sql = String::from(
            "INSERT INTO transfer_ips (uid, fid, ip, client_id, port, uploaded, downloaded, \
             starttime, last_announce) VALUES ",
        );
        for (n, r) in rows.iter().enumerate() {
            push_load_row(
                &mut sql,
                n,
                format_args!(
                    "{}, {}, {}, {}, {}, {}, {}, {}, {}",
                    r.uid,
                    r.fid,
                    r.ip,
                    r.client,
                    r.port,
                    r.uploaded,
                    r.downloaded,
                    r.starttime,
                    r.last_announce
                ),
            );
        }
        sql
    }

    fn fingerprint_line(r: &IpRow, out: &mut String) {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            r.uid,
            r.fid,
            r.ip,
            r.client,
            r.uploaded,
            r.downloaded,
            r.port,
            r.starttime,
            r.last_announce
        );
    }

    fn delta(r: &IpRow, rng: &mut SmallRng) -> TransferIpDelta {
        TransferIpDelta {
            user: UserId(r.uid),
            torrent: TorrentId(r.fid),
            client: ClientId(r.client),
            ip: r.ip,
            port: rng.random_range(1024..=u16::MAX),
            uploaded: rng.random_range(0..1 << 26),
            downloaded: rng.random_range(0..1 << 26),
            start_time: r.starttime,
            last_announce: 0,
        }
    }

    fn set_clock(d: &mut TransferIpDelta, clock: i64) {
        d.last_announce = clock;
    }

    fn apply(store: &Store, r: &mut IpRow, d: &TransferIpDelta) {
        let max = |column| store.limits.max("transfer_ips", column);
        let (up, down) = (max("uploaded"), max("downloaded"));
        r.uploaded = sat(r.uploaded, d.uploaded.min(up), up);
        r.downloaded = sat(r.downloaded, d.downloaded.min(down), down);
        r.port = d.port;
        r.last_announce = d.last_announce;
    }

    async fn prepared(
        store: &Store,
        conn: &mut MySqlConnection,
        rows: &[TransferIpDelta],
    ) -> Result<u64, sqlx::Error> {
        write::transfer_ips(store, conn, rows).await
    }

    /// Bench-only copy of `write::transfer_ips` with the values inlined.
    fn text(store: &Store, rows: &[TransferIpDelta]) -> String {
        let [uploaded, downloaded] =
            ["uploaded", "downloaded"].map(|column| store.limits.max("transfer_ips", column));
        let mut sql = String::with_capacity(512 + rows.len() * 90);
        sql.push_str(
            "INSERT INTO transfer_ips (uid, fid, ip, client_id, port, uploaded, downloaded, starttime, last_announce) ",
        );
        text_values(&mut sql, rows, |values, row| {
            values
                .v(row.user.0)
                .v(row.torrent.0)
                .v(row.ip)
                .v(row.client.0)
                .v(row.port)
                .v(row.uploaded.min(uploaded))
                .v(row.downloaded.min(downloaded))
                .v(row.start_time)
                .v(row.last_announce);
        });
        let add = |column, max| saturating_add(column, &format!("VALUES({column})"), max);
        let _ = write!(
            sql,
            " ON DUPLICATE KEY UPDATE {}, {}, port = VALUES(port), \
             last_announce = VALUES(last_announce)",
            add("uploaded", uploaded),
            add("downloaded", downloaded),
        );
        sql
    }
}

// ------------------------------------------------------------- variants --

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Prepared,
    Text,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Each statement commits on its own.
    Auto,
    /// The flush in one transaction with its commit marker.
    Flush,
}

#[derive(Clone, Copy)]
struct Variant {
    shape: Shape,
    commit: Commit,
    batch: usize,
    /// The same variant measured a second time, at the end of its table.
    repeat: bool,
}

impl Variant {
    fn shape_name(&self) -> &'static str {
        match self.shape {
            Shape::Prepared => "prepared",
            Shape::Text => "text",
        }
    }

    fn commit_name(&self) -> &'static str {
        match self.commit {
            Commit::Auto => "autocommit",
            Commit::Flush => "flush txn",
        }
    }
}

struct Measured {
    table: &'static str,
    variant: Variant,
    rows: u64,
    statements: u64,
    mariadb: f64,
    client: f64,
    write_seconds: f64,
    tail: f64,
    other_cores: f64,
}

impl Measured {
    fn mariadb_us(&self) -> f64 {
        self.mariadb * 1e6 / self.rows as f64
    }
    fn client_us(&self) -> f64 {
        self.client * 1e6 / self.rows as f64
    }
    fn rows_per_s(&self) -> f64 {
        self.rows as f64 / self.write_seconds
    }
    fn is_today(&self) -> bool {
        self.variant.shape == Shape::Prepared && self.variant.batch == write::MAX_BATCH_ROWS
    }
}

struct Bench {
    options: Options,
    store: Store,
    conn: MySqlConnection,
    max_packet: usize,
    ticks: f64,
    deadline: Instant,
    epoch: u64,
    clock: i64,
    results: Vec<Measured>,
}

/// One statement in the variant's shape; rows affected.
async fn statement<T: Table>(
    store: &Store,
    conn: &mut MySqlConnection,
    shape: Shape,
    rows: &[T::Delta],
) -> Result<u64, sqlx::Error> {
    match shape {
        Shape::Prepared => T::prepared(store, conn, rows).await,
        Shape::Text => {
            let sql = T::text(store, rows);
            Ok(sqlx::raw_sql(&sql).execute(conn).await?.rows_affected())
        }
    }
}

impl Bench {
    /// Writes one flush as the variant says; (statements, rows affected).
    async fn write_flush<T: Table>(
        &mut self,
        variant: Variant,
        rows: &[T::Delta],
    ) -> Result<(u64, u64), Error> {
        let writer = format!("bench_{}", T::NAME);
        let (mut statements, mut affected) = (0, 0);
        match variant.commit {
            Commit::Auto => {
                for batch in rows.chunks(variant.batch) {
                    affected +=
                        statement::<T>(&self.store, &mut self.conn, variant.shape, batch).await?;
                    statements += 1;
                }
            }
            Commit::Flush => {
                self.epoch += 1;
                let mut transaction = self.conn.begin().await?;
                commits::lock(&mut transaction, &writer).await?;
                for batch in rows.chunks(variant.batch) {
                    affected +=
                        statement::<T>(&self.store, &mut transaction, variant.shape, batch).await?;
                    statements += 1;
                }
                commits::mark(&mut transaction, &writer, self.epoch).await?;
                transaction.commit().await?;
                statements += 2;
            }
        }
        Ok((statements, affected))
    }

    async fn fingerprint_matches<T: Table>(&mut self, stored: &[T::Stored]) -> Result<bool, Error> {
        let row = sqlx::query(T::FINGERPRINT)
            .fetch_one(&mut self.conn)
            .await?;
        let count: i64 = row.try_get(0)?;
        let hash: u64 = row.try_get(1)?;
        let mut line = String::new();
        let mut expected = 0u64;
        for r in stored {
            line.clear();
            T::fingerprint_line(r, &mut line);
            expected ^= u64::from(crc32fast::hash(line.as_bytes()));
        }
        Ok(count == stored.len() as i64 && hash == expected)
    }

    /// Every size in both commit modes side by side (prepared, then text), then
    /// today's statement once more: its two figures show the run's own noise.
    fn variants<T: Table>(&self, sample: &[T::Delta]) -> Vec<Variant> {
        let mut variants = Vec::new();
        let both = |variants: &mut Vec<Variant>, shape, batch| {
            for commit in [Commit::Auto, Commit::Flush] {
                variants.push(Variant {
                    shape,
                    commit,
                    batch,
                    repeat: false,
                });
            }
        };
        for &batch in &PREPARED_SIZES {
            if batch * T::BINDS <= write::MAX_BINDS {
                both(&mut variants, Shape::Prepared, batch);
            }
        }
        for &batch in &TEXT_SIZES {
            let take = batch.min(sample.len());
            let bytes = T::text(&self.store, &sample[..take]).len();
            if bytes < self.max_packet {
                both(&mut variants, Shape::Text, batch);
            } else {
                eprintln!(
                    "bench-db: {} text {batch}: {bytes} bytes exceed max_allowed_packet, skipped",
                    T::NAME
                );
            }
        }
        variants.push(Variant {
            shape: Shape::Prepared,
            commit: Commit::Flush,
            batch: write::MAX_BATCH_ROWS,
            repeat: true,
        });
        variants
    }

    async fn table<T: Table>(&mut self, seed: u64) -> Result<(), Error> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut stored = T::generate(&self.options, &mut rng);
        let started = Instant::now();
        let mut transaction = self.conn.begin().await?;
        for chunk in stored.chunks(2000) {
            sqlx::raw_sql(&T::load_sql(chunk))
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        sqlx::query("INSERT IGNORE INTO chihaya_commits (writer, epoch) VALUES (?, 0)")
            .bind(format!("bench_{}", T::NAME))
            .execute(&mut self.conn)
            .await?;
        if !self.fingerprint_matches::<T>(&stored).await? {
            return Err(format!("{}: the loaded rows do not match", T::NAME).into());
        }
        eprintln!(
            "bench-db: {}: {} rows loaded in {:.1} s",
            T::NAME,
            stored.len(),
            started.elapsed().as_secs_f64()
        );

        // One warm-up flush, then the measured ones; the same for every variant.
        let flushes: Vec<(Vec<usize>, Vec<T::Delta>)> = (0..=self.options.flushes)
            .map(|_| {
                let mut picked =
                    rand::seq::index::sample(&mut rng, stored.len(), self.options.flush_rows)
                        .into_vec();
                picked.sort_unstable();
                let deltas = picked.iter().map(|&i| T::delta(&stored[i], &mut rng));
                let deltas = deltas.collect();
                (picked, deltas)
            })
            .collect();

        for variant in self.variants::<T>(&flushes[0].1) {
            if Instant::now() > self.deadline {
                return Err(format!(
                    "over --max-seconds {} before {} {} {} {}",
                    self.options.max_seconds,
                    T::NAME,
                    variant.shape_name(),
                    variant.commit_name(),
                    variant.batch
                )
                .into());
            }
            let pid = self.options.mariadb_pid;
            wait_quiet(pid).await?;
            let mut measured = Measured {
                table: T::NAME,
                variant,
                rows: 0,
                statements: 0,
                mariadb: 0.0,
                client: 0.0,
                write_seconds: 0.0,
                tail: 0.0,
                other_cores: 0.0,
            };
            let (mut mariadb0, mut host0, mut own0, mut wall0) =
                (0, (0, 0), Duration::ZERO, Instant::now());
            let mut client = Duration::ZERO;
            let mut writing = Duration::ZERO;
            for (n, (picked, deltas)) in flushes.iter().enumerate() {
                if n == 1 {
                    // The warm-up flush is in; measure from here.
                    wait_quiet(pid).await?;
                    mariadb0 = process_ticks(pid)?;
                    host0 = host_ticks()?;
                    own0 = own_cpu();
                    wall0 = Instant::now();
                }
                self.clock += 1;
                let mut deltas = deltas.clone();
                for d in &mut deltas {
                    T::set_clock(d, self.clock);
                }
                let (cpu0, t0) = (own_cpu(), Instant::now());
                let (statements, affected) = self.write_flush::<T>(variant, &deltas).await?;
                if n > 0 {
                    writing += t0.elapsed();
                    client += own_cpu() - cpu0;
                    measured.rows += deltas.len() as u64;
                    measured.statements += statements;
                }
                if affected != T::AFFECTED * deltas.len() as u64 {
                    return Err(format!(
                        "{}: {affected} rows affected by {} rows (want {} each): \
                         not every row existed and changed",
                        T::NAME,
                        deltas.len(),
                        T::AFFECTED
                    )
                    .into());
                }
                for (&i, d) in picked.iter().zip(&deltas) {
                    T::apply(&self.store, &mut stored[i], d);
                }
            }
            measured.tail = wait_quiet(pid).await?.as_secs_f64();
            let mariadb = process_ticks(pid)? - mariadb0;
            let host = host_ticks()?;
            let own = own_cpu() - own0;
            let wall = wall0.elapsed().as_secs_f64();
            measured.mariadb = mariadb as f64 / self.ticks;
            measured.client = client.as_secs_f64();
            measured.write_seconds = writing.as_secs_f64();
            let host_busy = (host.0 - host0.0) as f64 / self.ticks;
            measured.other_cores =
                ((host_busy - measured.mariadb - own.as_secs_f64()) / wall).max(0.0);
            if !self.fingerprint_matches::<T>(&stored).await? {
                return Err(format!(
                    "{} after {} {} {}: the table does not hold what the deltas make",
                    T::NAME,
                    variant.shape_name(),
                    variant.commit_name(),
                    variant.batch
                )
                .into());
            }
            print_measured(&measured);
            self.results.push(measured);
        }
        Ok(())
    }
}

fn print_measured(m: &Measured) {
    let v = &m.variant;
    eprintln!(
        "bench-db: {:<16} {:<8} {:<10} {:>5} rows/stmt: MariaDB {:6.2} µs/row  client {:5.2} µs/row  \
         {:>7.0} rows/s  ({} rows, {} statements, tail {:.2} s, other load {:.2} cores)",
        m.table,
        v.shape_name(),
        v.commit_name(),
        v.batch,
        m.mariadb_us(),
        m.client_us(),
        m.rows_per_s(),
        m.rows,
        m.statements,
        m.tail,
        m.other_cores
    );
    println!(
        "BENCHDB table={} shape={} commit={} batch={} repeat={} rows={} statements={} \
         mariadb_us_per_row={:.3} client_us_per_row={:.3} rows_per_s={:.0} \
         write_s={:.3} tail_s={:.2} other_cores={:.2}",
        m.table,
        v.shape_name(),
        v.commit_name().replace(' ', "_"),
        v.batch,
        u8::from(v.repeat),
        m.rows,
        m.statements,
        m.mariadb_us(),
        m.client_us(),
        m.rows_per_s(),
        m.write_seconds,
        m.tail,
        m.other_cores
    );
}

/// `1234567` as `1,234,567`.
fn thousands(n: f64) -> String {
    let digits = (n.round() as u64).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// The results as a markdown table, one line per table, statement and size with both
/// commit modes side by side, then one conclusion line per table.
fn markdown(results: &[Measured]) -> String {
    let mut out = String::from(
        "| table | statement | rows/statement | MariaDB µs/row, autocommit | \
         MariaDB µs/row, flush txn | client µs/row, autocommit | client µs/row, flush txn | \
         rows/s, autocommit | rows/s, flush txn |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let same = |a: &Measured, b: &Measured| {
        (a.table, a.variant.shape, a.variant.batch, a.variant.repeat)
            == (b.table, b.variant.shape, b.variant.batch, b.variant.repeat)
    };
    for (i, m) in results.iter().enumerate() {
        if results[..i].iter().any(|earlier| same(earlier, m)) {
            continue;
        }
        let of = |commit| {
            results
                .iter()
                .find(|other| same(other, m) && other.variant.commit == commit)
        };
        let cell = |m: Option<&Measured>, value: fn(&Measured) -> String| {
            m.map_or_else(|| "–".to_owned(), value)
        };
        let (auto, flush) = (of(Commit::Auto), of(Commit::Flush));
        let mark = match (m.is_today(), m.variant.repeat) {
            (true, true) => " (today, again)",
            (true, false) => " (today)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {}{mark} | {} | {} | {} | {} | {} | {} |",
            m.table,
            m.variant.shape_name(),
            m.variant.batch,
            cell(auto, |m| format!("{:.2}", m.mariadb_us())),
            cell(flush, |m| format!("{:.2}", m.mariadb_us())),
            cell(auto, |m| format!("{:.2}", m.client_us())),
            cell(flush, |m| format!("{:.2}", m.client_us())),
            cell(auto, |m| thousands(m.rows_per_s())),
            cell(flush, |m| thousands(m.rows_per_s())),
        );
    }
    out.push('\n');
    let mut tables: Vec<&str> = results.iter().map(|m| m.table).collect();
    tables.dedup();
    for table in tables {
        let of: Vec<&Measured> = results
            .iter()
            .filter(|m| m.table == table && !m.variant.repeat)
            .collect();
        let Some(best) = of
            .iter()
            .min_by(|a, b| a.mariadb_us().total_cmp(&b.mariadb_us()))
        else {
            continue;
        };
        let mut line = format!(
            "* `{table}`: cheapest for MariaDB: {} {} rows, {}, {:.2} µs/row (client {:.2})",
            best.variant.shape_name(),
            best.variant.batch,
            best.variant.commit_name(),
            best.mariadb_us(),
            best.client_us()
        );
        for commit in [Commit::Flush, Commit::Auto] {
            if let Some(t) = of
                .iter()
                .find(|m| m.is_today() && m.variant.commit == commit)
            {
                let _ = write!(
                    line,
                    "; today's prepared {} {}: {:.2} µs/row ({:+.0} %), client {:.2}",
                    t.variant.batch,
                    t.variant.commit_name(),
                    t.mariadb_us(),
                    (t.mariadb_us() / best.mariadb_us() - 1.0) * 100.0,
                    t.client_us()
                );
            }
        }
        let today = of
            .iter()
            .find(|m| m.is_today() && m.variant.commit == Commit::Flush);
        let again = results
            .iter()
            .find(|m| m.table == table && m.variant.repeat);
        if let (Some(first), Some(again)) = (today, again) {
            let _ = write!(
                line,
                "; measured again at the end: {:.2} µs/row ({:+.0} %: the run's noise)",
                again.mariadb_us(),
                (again.mariadb_us() / first.mariadb_us() - 1.0) * 100.0
            );
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

async fn run(options: Options) -> Result<(), Error> {
    let loaded = Config::from_parts(None, Some(&options.dsn))?;
    let config = loaded.config;
    let metrics = Metrics::new(&config.channels);
    // The library's statements take their column maxima from the store: those of
    // database/schema.sql, which is what the bench database holds.
    let store = Store::new(&config.database, &metrics);
    let conn = MySqlConnection::connect_with(&connect_options(&config.database)).await?;
    let mut bench = Bench {
        deadline: Instant::now() + Duration::from_secs(options.max_seconds),
        options,
        store,
        conn,
        max_packet: 0,
        ticks: clock_ticks_per_second(),
        epoch: 0,
        clock: CLOCK0,
        results: Vec::new(),
    };
    let row = sqlx::query(
        "SELECT VERSION(), CAST(@@innodb_flush_log_at_trx_commit AS SIGNED), \
         CAST(@@max_allowed_packet AS SIGNED), CAST(@@innodb_buffer_pool_size AS SIGNED), \
         CAST(@@log_bin AS SIGNED), CAST(@@sync_binlog AS SIGNED)",
    )
    .fetch_one(&mut bench.conn)
    .await?;
    let version: String = row.try_get(0)?;
    let flush_log: i64 = row.try_get(1)?;
    let max_packet: i64 = row.try_get(2)?;
    let pool: i64 = row.try_get(3)?;
    let log_bin: i64 = row.try_get(4)?;
    let sync_binlog: i64 = row.try_get(5)?;
    bench.max_packet = max_packet as usize;
    let o = &bench.options;
    eprintln!(
        "bench-db: MariaDB {version} (pid {}): innodb_flush_log_at_trx_commit {flush_log}, \
         buffer pool {} MB, max_allowed_packet {} MB, log_bin {log_bin}, sync_binlog {sync_binlog}",
        o.mariadb_pid,
        pool >> 20,
        max_packet >> 20
    );
    eprintln!(
        "bench-db: {} users, {} torrents, {} transfer_history and transfer_ips rows; \
         per variant 1 warm-up + {} measured flushes of {} existing rows (seed {})",
        o.users, o.torrents, o.pairs, o.flushes, o.flush_rows, o.seed
    );
    let tables = o.tables.clone();
    let seed = o.seed;
    for (n, table) in tables.iter().enumerate() {
        let seed = seed.wrapping_mul(1000).wrapping_add(n as u64);
        match table.as_str() {
            "users" => bench.table::<Users>(seed).await?,
            "torrents" => bench.table::<Torrents>(seed).await?,
            "history" => bench.table::<History>(seed).await?,
            _ => bench.table::<Ips>(seed).await?,
        }
    }
    let table = markdown(&bench.results);
    println!("\n{table}");
    if let Some(path) = &bench.options.out {
        std::fs::write(path, &table)?;
    }
    let worst = bench
        .results
        .iter()
        .map(|m| m.other_cores)
        .fold(0.0, f64::max);
    if worst > 0.3 {
        eprintln!(
            "bench-db: WARNING: up to {worst:.2} cores of other load during a variant: \
             the machine was not quiet, compare with care"
        );
    }
    bench.conn.close().await?;
    Ok(())
}

fn main() -> ExitCode {
    // One thread: the client CPU measured is the writer's alone.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    cli::main("bench-db", parse_args(), runtime, run)
}
