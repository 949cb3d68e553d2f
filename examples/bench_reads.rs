//! `bench_reads`: what the tracker's periodic reads cost MariaDB, on a database as a
//! run left it (`make bench` calls it on the bench database once the journal run's
//! tracker has stopped; bench/README.md "Reads").
//!
//! Each read is the library's own code, run as the tracker runs it:
//!
//! * the six snapshot loads of a reload cycle (`chihaya::store::load_*`), every
//!   `intervals.database_reload` seconds in the tracker, and the hit-and-run query
//!   the tracker ran before it read only download-disabled users' rows
//!   (`hit_and_runs_before`, every user's, reading the whole of `transfer_history`);
//! * the purge's update of `transfer_history.active`: over the whole table
//!   (`write::deactivate_history`, what every purge did before, and now the first
//!   purge and then one an hour) and by key (`write::deactivate_history_rows`, what a
//!   purge does now, per peer it took out of memory). Both with the cutoff a purge
//!   would use now (`--inactivity` seconds ago): on a database a run just wrote,
//!   nothing is that old, so they read what they read and change nothing.
//!
//! Per read: how often it ran (enough times for about a second of it), rows returned
//! or changed, rows MariaDB read for it (status `Rows_read`), MariaDB's CPU (utime +
//! stime of mariadbd from the first statement until the server is idle again) and
//! this process's CPU (decoding and building the snapshot), both per execution. Last
//! line: `BENCH-READS key=value …` for the harness.
//!
//! ```text
//! bench_reads --dsn DSN --mariadb-pid PID [--inactivity S] [--keys N] [--seed N]
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chihaya::config::Config;
use chihaya::metrics::Metrics;
use chihaya::store::{self, connect_options, write, Store};
use chihaya::tracker::{TorrentId, UserId};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sqlx::mysql::MySqlConnection;
use sqlx::{Connection, Row as _};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/cpu.rs"]
mod cpu;
use cpu::{clock_ticks_per_second, own_cpu, process_ticks, wait_quiet, Error};

const USAGE: &str =
    "usage: bench_reads --dsn DSN --mariadb-pid PID [--inactivity S] [--keys N] [--seed N]";

/// The hit-and-run load before issue 14: every enabled user's, which reads the whole of
/// `transfer_history` (no index on `hnr`).
const HIT_AND_RUNS_BEFORE: &str = "SELECT h.uid, h.fid FROM transfer_history AS h \
    JOIN users_main AS u ON u.ID = h.uid WHERE h.hnr = 1 AND u.Enabled = '1'";

/// Each read runs until about this much wall time has gone into it.
const TARGET: Duration = Duration::from_secs(1);
const MIN_RUNS: u32 = 3;
const MAX_RUNS: u32 = 500;

struct Options {
    dsn: String,
    mariadb_pid: u32,
    inactivity: i64,
    keys: usize,
    seed: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        dsn: String::new(),
        mariadb_pid: 0,
        inactivity: 3900,
        keys: write::MAX_BATCH_ROWS,
        seed: 1,
    };
    for (arg, value) in cli::pairs(USAGE)? {
        let number = |v: &str| cli::positive(&arg, v);
        match arg.as_str() {
            "--dsn" => o.dsn = value,
            "--mariadb-pid" => o.mariadb_pid = u32::try_from(number(&value)?).unwrap_or(0),
            "--inactivity" => o.inactivity = i64::try_from(number(&value)?).unwrap_or(i64::MAX),
            "--keys" => o.keys = usize::try_from(number(&value)?).unwrap_or(usize::MAX),
            "--seed" => o.seed = value.parse().map_err(|_| format!("--seed: {value}"))?,
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    if o.dsn.is_empty() || o.mariadb_pid == 0 {
        return Err(USAGE.to_owned());
    }
    Ok(o)
}

/// One read's figures, per execution.
struct Measured {
    name: &'static str,
    runs: u32,
    /// Rows returned (a load) or changed (an update), by the last execution.
    rows: u64,
    rows_read: f64,
    mariadb_ms: f64,
    client_ms: f64,
}

struct Bench {
    /// For the status counter only: it reads no table rows.
    conn: MySqlConnection,
    pid: u32,
    ticks: f64,
}

impl Bench {
    async fn rows_read(&mut self) -> Result<u64, Error> {
        // (SHOW STATUS answers a prepared statement with no rows.)
        let row = sqlx::query(
            "SELECT CAST(VARIABLE_VALUE AS UNSIGNED) FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'ROWS_READ'",
        )
        .fetch_one(&mut self.conn)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Runs `read` (which returns its rows) once to warm up and to time it, then as
    /// often as fills [`TARGET`], and measures those runs.
    async fn measure<F, Fut>(&mut self, name: &'static str, read: F) -> Result<Measured, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
    {
        let once = Instant::now();
        read().await?;
        let once = once.elapsed().max(Duration::from_micros(100));
        let runs = (TARGET.as_secs_f64() / once.as_secs_f64()).ceil() as u32;
        let runs = runs.clamp(MIN_RUNS, MAX_RUNS);
        wait_quiet(self.pid).await?;
        let read0 = self.rows_read().await?;
        let (ticks0, own0) = (process_ticks(self.pid)?, own_cpu());
        let mut rows = 0;
        for _ in 0..runs {
            rows = read().await?;
        }
        let own = own_cpu() - own0;
        wait_quiet(self.pid).await?;
        let ticks = process_ticks(self.pid)? - ticks0;
        let rows_read = self.rows_read().await? - read0;
        let runs_f = f64::from(runs);
        let measured = Measured {
            name,
            runs,
            rows,
            rows_read: rows_read as f64 / runs_f,
            mariadb_ms: ticks as f64 / self.ticks * 1000.0 / runs_f,
            client_ms: own.as_secs_f64() * 1000.0 / runs_f,
        };
        eprintln!(
            "bench-reads: {:<18} {:>4} runs  {:>9} rows  {:>11.0} rows read  MariaDB {:>8.2} ms  client {:>8.2} ms (each)",
            measured.name,
            measured.runs,
            measured.rows,
            measured.rows_read,
            measured.mariadb_ms,
            measured.client_ms
        );
        Ok(measured)
    }
}

async fn run(options: Options) -> Result<(), Error> {
    let loaded = Config::from_parts(None, Some(&options.dsn))?;
    let config = loaded.config;
    let metrics = Metrics::new(&config.channels);
    let store = Store::new(&config.database, &metrics);
    let conn = MySqlConnection::connect_with(&connect_options(&config.database)).await?;
    let mut bench = Bench {
        conn,
        pid: options.mariadb_pid,
        ticks: clock_ticks_per_second(),
    };
    let history_rows: i64 = sqlx::query("SELECT COUNT(*) FROM transfer_history")
        .fetch_one(&mut bench.conn)
        .await?
        .try_get(0)?;
    // The purged peers' pairs: existing rows, picked at random.
    let mut pairs: Vec<(UserId, TorrentId)> = sqlx::query("SELECT uid, fid FROM transfer_history")
        .fetch_all(&mut bench.conn)
        .await?
        .iter()
        .filter_map(|row| {
            let uid: i64 = row.try_get(0).ok()?;
            let fid: i64 = row.try_get(1).ok()?;
            Some((
                UserId(u32::try_from(uid).ok()?),
                TorrentId(u32::try_from(fid).ok()?),
            ))
        })
        .collect();
    pairs.shuffle(&mut SmallRng::seed_from_u64(options.seed));
    pairs.truncate(options.keys);
    pairs.sort_unstable();
    let cutoff = chrono::Utc::now().timestamp() - options.inactivity;
    eprintln!(
        "bench-reads: {history_rows} transfer_history rows; purge cutoff {} s ago, {} keys",
        options.inactivity,
        pairs.len()
    );

    // As the tracker loads it: with the commit markers read in each part's snapshot
    // when the database has them.
    let marks = if store::commits::exists(&store).await? {
        store::Marks::Read(["torrents".to_owned(), "unprune".to_owned()])
    } else {
        store::Marks::Assumed(0)
    };
    let s = &store;
    let mut results = vec![
        bench
            .measure("users", || async {
                Ok(store::load_users(s).await?.len() as u64)
            })
            .await?,
        bench
            .measure("hit_and_runs", || async {
                Ok(store::load_hit_and_runs(s).await?.len() as u64)
            })
            .await?,
        bench
            .measure("torrents", || async {
                let (catalogue, _) = store::load_catalogue(s, 1, marks.clone(), 0).await?;
                Ok(catalogue.len() as u64)
            })
            .await?,
        bench
            .measure("group_freeleech", || async {
                Ok(store::load_group_freeleech(s).await?.len() as u64)
            })
            .await?,
        bench
            .measure("global_freeleech", || async {
                Ok(u64::from(store::load_global_freeleech(s).await?))
            })
            .await?,
        bench
            .measure("clients", || async {
                Ok(store::load_clients(s).await?.len() as u64)
            })
            .await?,
        bench
            .measure("purge_scan", || write::deactivate_history(s, cutoff))
            .await?,
        bench
            .measure("hit_and_runs_before", || async {
                Ok(sqlx::query(HIT_AND_RUNS_BEFORE)
                    .fetch_all(&s.pool)
                    .await?
                    .len() as u64)
            })
            .await?,
    ];
    let keys = &pairs;
    let by_key = bench
        .measure("purge_keys", || async {
            let mut conn = s.pool.acquire().await?;
            write::deactivate_history_rows(&mut conn, cutoff, keys).await
        })
        .await?;
    results.push(by_key);

    // A reload cycle is the six loads; before, with the old hit-and-run query.
    let reload: f64 = results[..6].iter().map(|m| m.mariadb_ms).sum();
    let reload_read: f64 = results[..6].iter().map(|m| m.rows_read).sum();
    let before = reload - results[1].mariadb_ms + results[7].mariadb_ms;
    let before_read = reload_read - results[1].rows_read + results[7].rows_read;
    let mut line = format!(
        "BENCH-READS history_rows={history_rows} keys={} reload_mariadb_ms={reload:.3} \
         reload_rows_read={reload_read:.0} reload_before_mariadb_ms={before:.3} \
         reload_before_rows_read={before_read:.0}",
        pairs.len()
    );
    for m in &results {
        let _ = write!(
            line,
            " {0}_runs={1} {0}_rows={2} {0}_rows_read={3:.0} {0}_mariadb_ms={4:.3} {0}_client_ms={5:.3}",
            m.name, m.runs, m.rows, m.rows_read, m.mariadb_ms, m.client_ms
        );
    }
    println!("{line}");
    bench.conn.close().await?;
    Ok(())
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    cli::main("bench-reads", parse_args(), runtime, run)
}
