//! The database misbehaving (SPEC §8.7): an outage under load, a deadlock, a lock
//! wait timeout and a row the database refuses. Nothing is lost, announces never wait.
//! These tests share server-wide settings, so they run one at a time.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chihaya::accounting::Kind;
use chihaya::store::retry::Reason;
use common::proxy::Proxy;
use common::*;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn strings(values: &[&str]) -> Vec<Vec<String>> {
    vec![values.iter().map(|v| (*v).to_owned()).collect()]
}

/// One simulated client: announces with growing counters, remembers what it sent.
struct Client {
    announce: Announce,
    uploaded: u64,
    /// Bytes reported beyond the first announce: what the database must end up with.
    sent: u64,
}

impl Client {
    fn new(passkey: &str, hash: &str, tag: &str, left: u64) -> Client {
        Client {
            announce: Announce::new(passkey, hash, tag, left),
            uploaded: 0,
            sent: 0,
        }
    }

    async fn step(&mut self, addr: std::net::SocketAddr, add: u64, latency: &AtomicU64) -> bool {
        let first = self.uploaded == 0 && self.sent == 0;
        self.uploaded += add;
        if !first {
            self.sent += add;
        }
        let started = Instant::now();
        let r = get(
            addr,
            &self.announce.clone().transfer(self.uploaded, 0).target(),
            &[],
        )
        .await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        latency.fetch_max(micros, Ordering::Relaxed);
        r.status == 200 && r.text().starts_with("d8:complete")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_load_slows_nothing_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new().await;
    let proxy = Proxy::start(TestDb::server_addr()).await;
    let dsn = db.dsn_via(proxy.port);
    let t = TestTracker::with_dsn(
        db,
        &dsn,
        r#""admin_token": "t", "intervals": {"announce_drift": 0, "database_reload": 1, "flush": 1}"#,
        TempDir::new("outage"),
    )
    .await;
    let failures = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for n in 0..4u8 {
        let (failures, latency, stop, addr) =
            (failures.clone(), latency.clone(), stop.clone(), t.addr);
        load.push(tokio::spawn(async move {
            // User 1 seeds torrent 3; user 2 leeches torrent 2 (its hit-and-run).
            let mut client = if n % 2 == 0 {
                Client::new(PASSKEY_1, HASH_3, &format!("c{n}"), 0)
            } else {
                Client::new(PASSKEY_2, HASH_2, &format!("c{n}"), 1000)
            };
            let mut add = 1 + u64::from(n);
            while !stop.load(Ordering::Relaxed) {
                if !client.step(addr, add, &latency).await {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                add = add % 997 + 13;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (n % 2 == 0, client.sent)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut user1, mut user2) = (0, 0);
    for task in load {
        let (is_user1, sent) = task.await.unwrap();
        if is_user1 {
            user1 += sent;
        } else {
            user2 += sent;
        }
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "every announce answered"
    );
    let worst = Duration::from_micros(latency.load(Ordering::Relaxed));
    assert!(
        worst < Duration::from_secs(1),
        "announces never waited for the database: {worst:?}"
    );
    t.flush().await;
    let sink = &t.tracker().shared.sink;
    let connection_retries: u64 = Kind::ALL
        .iter()
        .map(|&k| sink.stats(k).retries(Reason::Connection))
        .sum();
    assert!(connection_retries > 0, "the outage was felt by the writers");
    let r = get(t.addr, "/metrics", &[("Authorization", "Bearer t")]).await;
    let exposed = common::prom::parse(&r.text());
    assert_eq!(
        exposed.sum("chihaya_flush_retries_total", &[("reason", "connection")]),
        connection_retries as f64
    );
    assert!(
        exposed
            .value("chihaya_sql_errors_count", &[])
            .unwrap_or(0.0)
            >= connection_retries as f64
    );
    assert!(user1 > 0 && user2 > 0);
    assert_eq!(
        t.db.rows("SELECT rawup FROM users_main WHERE ID = 1").await,
        strings(&[&user1.to_string()])
    );
    assert_eq!(
        t.db.rows("SELECT rawup FROM users_main WHERE ID = 2").await,
        strings(&[&(2551 + user2).to_string()])
    );
    assert_eq!(
        t.db.rows("SELECT uploaded FROM transfer_history WHERE uid = 1 AND fid = 3")
            .await,
        strings(&[&user1.to_string()])
    );
    assert_eq!(
        t.db.rows("SELECT SUM(uploaded) FROM transfer_ips WHERE uid = 2 AND fid = 2")
            .await,
        strings(&[&user2.to_string()])
    );
    t.stop().await;
}

/// Two users with bytes pending for users_main (rows 1 and 2).
async fn pending_users(t: &TestTracker) {
    let one = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    t.announce(&one).await;
    t.announce(&one.clone().transfer(10, 0)).await;
    let two = Announce::new(PASSKEY_2, HASH_2, "b", 1000);
    t.announce(&two).await;
    t.announce(&two.clone().transfer(100, 0)).await;
}

async fn users_are_exact(t: &TestTracker) {
    assert_eq!(
        t.db.rows("SELECT ID, Uploaded, rawup FROM users_main WHERE ID IN (1, 2) ORDER BY ID")
            .await,
        vec![
            vec!["1".to_owned(), "20".to_owned(), "10".to_owned()],
            vec!["2".to_owned(), "2576".to_owned(), "2651".to_owned()],
        ]
    );
}

const MANUAL: &str =
    r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_retried_and_nothing_is_lost() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new().await;
    db.exec(
        "CREATE TABLE scratch (id INT PRIMARY KEY, v INT NOT NULL); \
         INSERT INTO scratch SELECT seq, 0 FROM seq_1_to_2000",
    )
    .await;
    let t = TestTracker::on(db, MANUAL).await;
    // transfer_history rows (1, 3), new, and (2, 2), existing: the writer's upsert
    // takes them in key order.
    pending_users(&t).await;

    // Another session holds (2, 2) in a transaction that has changed many rows, so
    // InnoDB picks the tracker's small transaction as the deadlock victim.
    let mut other = t.db.pool.begin().await.unwrap();
    sqlx::raw_sql("UPDATE scratch SET v = v + 1")
        .execute(&mut *other)
        .await
        .unwrap();
    sqlx::raw_sql("SELECT uid FROM transfer_history WHERE uid = 2 AND fid = 2 FOR UPDATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let tracker_waits = eventually(Duration::from_secs(10), || async {
        t.tracker().shared.sink.wake_all();
        t.db.rows(
            "SELECT COUNT(*) FROM information_schema.processlist \
             WHERE INFO LIKE 'INSERT INTO transfer_history%' AND TIME_MS > 300",
        )
        .await
            == strings(&["1"])
    })
    .await;
    assert!(
        tracker_waits,
        "the transfer_history writer waits for (2, 2) holding (1, 3)"
    );
    // Now ask for the row the writer inserted: a cycle.
    sqlx::raw_sql("SELECT uid FROM transfer_history WHERE uid = 1 AND fid = 3 FOR UPDATE")
        .execute(&mut *other)
        .await
        .expect("the other session survives the deadlock");
    other.rollback().await.unwrap();

    t.flush().await;
    users_are_exact(&t).await;
    assert_eq!(
        t.db.rows("SELECT uid, fid, uploaded FROM transfer_history WHERE (uid, fid) IN ((1, 3), (2, 2)) ORDER BY uid").await,
        vec![
            vec!["1".to_owned(), "3".to_owned(), "10".to_owned()],
            vec!["2".to_owned(), "2".to_owned(), "100".to_owned()],
        ]
    );
    let sink = &t.tracker().shared.sink;
    assert_eq!(
        sink.stats(Kind::TransferHistory).retries(Reason::Deadlock),
        1,
        "one deadlock, retried once"
    );
    let deadlocks = &t.tracker().shared.metrics.deadlocks;
    assert_eq!(deadlocks.get(), 1, "chihaya_deadlock_count");
    t.stop().await;
}

/// Sets a server-wide variable and puts the old value back when dropped.
struct GlobalSetting {
    name: &'static str,
    old: String,
}

impl GlobalSetting {
    async fn set(db: &TestDb, name: &'static str, value: &str) -> GlobalSetting {
        let old = db.rows(&format!("SELECT @@GLOBAL.{name}")).await[0][0].clone();
        db.exec(&format!("SET GLOBAL {name} = {value}")).await;
        GlobalSetting { name, old }
    }
}

impl Drop for GlobalSetting {
    fn drop(&mut self) {
        let sql = format!("SET GLOBAL {} = {}", self.name, self.old);
        let url = database_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .unwrap();
                sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_timeout_is_retried_and_nothing_is_lost() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new().await;
    // Sessions opened from now on give up on a row lock after one second.
    let _timeout = GlobalSetting::set(&db, "innodb_lock_wait_timeout", "1").await;
    let t = TestTracker::on(db, MANUAL).await;
    pending_users(&t).await;
    let mut other = t.db.pool.begin().await.unwrap();
    sqlx::raw_sql("SELECT ID FROM users_main WHERE ID = 2 FOR UPDATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let stats = &t.tracker().shared.sink;
    let timed_out = eventually(Duration::from_secs(10), || async {
        stats.wake_all();
        stats.stats(Kind::Users).retries(Reason::LockWaitTimeout) >= 1
    })
    .await;
    assert!(timed_out, "the writer met a lock wait timeout");
    other.commit().await.unwrap();
    t.flush().await;
    users_are_exact(&t).await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_is_set_aside_and_the_rest_is_written() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new().await;
    // transfer_history.uid is a signed INT: this user's rows are out of its range.
    db.exec("INSERT INTO users_main (ID, torrent_pass, Enabled) VALUES (3000000000, 'PoisonedPasskey00000000000000000', '1')")
        .await;
    let t = TestTracker::on(db, r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}, "database": {"deadlock_retries": 1}"#).await;
    for passkey in [PASSKEY_1, "PoisonedPasskey00000000000000000"] {
        let a = Announce::new(passkey, HASH_3, "a", 0);
        t.announce(&a).await;
        t.announce(&a.clone().transfer(10, 0)).await;
    }
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT uid, uploaded FROM transfer_history WHERE fid = 3")
            .await,
        strings(&["1", "10"])
    );
    assert_eq!(
        t.db.rows("SELECT rawup FROM users_main WHERE ID = 3000000000")
            .await,
        strings(&["10"]),
        "the user's other rows were written"
    );
    let spill = std::fs::read_to_string(&t.dir.files().spill).expect("spill file");
    let lines: Vec<serde_json::Value> = spill
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{spill}");
    assert_eq!(lines[0]["kind"], "transfer_history");
    assert_eq!(lines[0]["uid"], 3_000_000_000u64);
    assert_eq!(lines[0]["uploaded"], 10);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("1264"),
        "{spill}"
    );
    assert_eq!(
        t.tracker()
            .shared
            .sink
            .stats(Kind::TransferHistory)
            .spilled
            .get(),
        1
    );
    t.stop().await;
}
