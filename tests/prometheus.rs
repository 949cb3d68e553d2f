//! The monitoring files in `contrib/` against a real Prometheus: a tracker under a
//! little load (on a real MariaDB) is scraped every second by a `prometheus` of our
//! own on 127.0.0.1, with `contrib/prometheus/alerts.yml` loaded; then every query of
//! `contrib/grafana/chihaya.json` must answer with data, every rule must evaluate, and
//! none may fire. `promtool` checks the rules and runs their unit tests.
//!
//! `prometheus` and `promtool` come from Debian's package `prometheus`; `make test`
//! installs it when run as root (`scripts/ensure-prometheus.sh`). Without them these
//! tests say they are skipped, unless `CI` is set, where that is a failure.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const PROMETHEUS: &str = "prometheus";
const PROMTOOL: &str = "promtool";
const TOKEN: &str = "pr0m3th3us-t0k3n";
const DASHBOARD: &str = "contrib/grafana/chihaya.json";
const ALERTS: &str = "contrib/prometheus/alerts.yml";
const ALERTS_TEST: &str = "contrib/prometheus/alerts_test.yml";
/// What `$__rate_interval` stands for here: longer than the whole test, so every rate
/// covers all the samples Prometheus took.
const RATE_INTERVAL: &str = "1m";

fn say(line: &str) {
    tools::say("prometheus", line);
}

/// Whether `prometheus` and `promtool` are there ([`tools::present_or_skip`]).
fn tools_present() -> bool {
    tools::present_or_skip("prometheus", &[PROMETHEUS, PROMTOOL], "package prometheus")
}

/// Our own `prometheus`, killed when dropped (a failing test included).
struct Prometheus {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    /// Its config, data and log; removed after it is killed.
    _dir: TempDir,
}

impl Prometheus {
    /// Scrapes the tracker at `target` every second with the admin token, alert rules
    /// loaded; returns once it says it is ready.
    async fn start(target: SocketAddr) -> Prometheus {
        // The port may be taken between our look and Prometheus' bind: then it exits,
        // and another try takes another port.
        for _ in 0..3 {
            let mut prometheus = Prometheus::spawn(target);
            if prometheus.wait_ready(Duration::from_secs(20)).await {
                return prometheus;
            }
            say(&format!(
                "no ready prometheus on {}:\n{}",
                prometheus.addr,
                prometheus.log_text()
            ));
        }
        panic!("prometheus did not start");
    }

    fn spawn(target: SocketAddr) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [\"{}\"]\n\
                 scrape_configs:\n  - job_name: chihaya\n    authorization: {{ credentials: \"{TOKEN}\" }}\n    static_configs: [{{ targets: [\"{target}\"] }}]\n",
                tools::repo_path(ALERTS).display()
            ),
        )
        .expect("write prometheus.yml");
        let addr = tools::free_addr();
        let log = dir.0.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("prometheus log");
        let err = out.try_clone().expect("prometheus log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {PROMETHEUS}: {e}"));
        Prometheus {
            child: Some(child),
            addr,
            log,
            _dir: dir,
        }
    }

    /// Polls `/-/ready` until it answers 200; false if the process exits or `within`
    /// passes.
    async fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && get(self.addr, "/-/ready", &[]).await.status == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs an API path and returns its `data`, asserting `"status": "success"`.
    async fn api(&self, target: &str) -> Value {
        let response = get(self.addr, target, &[]).await;
        let body = if response.header("transfer-encoding") == Some("chunked") {
            dechunk(&response.body)
        } else {
            response.body.clone()
        };
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{target}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(
            (response.status, json["status"].as_str()),
            (200, Some("success")),
            "{target}: {json}"
        );
        json["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self
            .api(&format!("/api/v1/query?query={}", url_encode(promql)))
            .await;
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The first value of `promql`'s result, or None while it has none.
    async fn scalar(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await;
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log_text());
        }
    }
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&raw[..line_end]).expect("chunk size");
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).expect("hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every string under a key `key`, anywhere in `value`.
fn strings_under(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

/// A dashboard query with its template variables as Grafana would fill them in for
/// this tracker.
fn substitute(expr: &str, instance: &str) -> String {
    let filled = expr
        .replace("$__rate_interval", RATE_INTERVAL)
        .replace("$instance", &regex_escape(instance))
        .replace("$job", "chihaya");
    assert!(
        !filled.contains('$'),
        "a template variable the test does not know in {expr}"
    );
    filled
}

/// `instance` as a regular expression matching itself (the dashboard uses `=~`),
/// inside a PromQL string: a backslash there is written twice, as Grafana does.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if matches!(c, '.' | '[' | ']' | '(' | ')' | '*' | '+' | '?' | '|') {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// A few dozen announces over a few seconds: seeders and leechers on two torrents,
/// one completion, and refusals (unknown torrent, unknown passkey, unapproved client).
async fn load(t: &TestTracker) -> (u32, u32) {
    let (mut answered, mut refused) = (0, 0);
    let unknown = "00112233445566778899AABBCCDDEEFF00112233";
    for round in 0..8u64 {
        // User 2 may not download: it seeds, user 1 leeches.
        for (i, (passkey, hash)) in [
            (PASSKEY_2, HASH_3),
            (PASSKEY_1, HASH_3),
            (PASSKEY_2, HASH_2),
            (PASSKEY_1, HASH_2),
        ]
        .into_iter()
        .enumerate()
        {
            let tag = format!("p{i}");
            let left = if i % 2 == 0 { 0 } else { 1000 - round * 100 };
            let mut a =
                Announce::new(passkey, hash, &tag, left).transfer(round * 4096, round * 2048);
            if round == 0 {
                a = a.event("started");
            } else if round == 7 && left > 0 {
                a = a.left(0).event("completed");
            }
            let r = t.announce(&a).await;
            assert!(r.text().starts_with("d8:complete"), "{}", r.text());
            answered += 1;
        }
        let r = t.announce(&Announce::new(PASSKEY_1, unknown, "u", 0)).await;
        assert_eq!(
            r.body,
            failure_body("This torrent does not exist", 30).into_bytes()
        );
        refused += 1;
        if round % 2 == 0 {
            t.get("/nobody/announce").await;
            let mut unapproved = Announce::new(PASSKEY_2, HASH_3, "c", 0);
            unapproved.peer_id = *b"-XX0001-000000000000";
            t.announce(&unapproved).await;
            refused += 2;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    (answered, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_answers_and_no_alert_fires_on_a_healthy_tracker() {
    if !tools_present() {
        return;
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(tools::repo_path(DASHBOARD)).expect(DASHBOARD),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    strings_under(&dashboard["panels"], "expr", &mut exprs);
    assert!(
        exprs.len() >= 20,
        "{} queries in the dashboard",
        exprs.len()
    );

    let t = TestTracker::with_config(&format!(
        r#""admin_token": "{TOKEN}", "intervals": {{"announce_drift": 0, "database_reload": 1, "flush": 1}}"#
    ))
    .await;
    let prometheus = Prometheus::start(t.addr).await;
    // Targets are applied a few seconds after start: the load comes after the first
    // scrape, so that the rates see it.
    let first = eventually(Duration::from_secs(30), || async {
        prometheus
            .scalar(r#"up{job="chihaya"}"#)
            .await
            .is_some_and(|up| up == 1.0)
    })
    .await;
    assert!(
        first,
        "Prometheus scraped the tracker; targets: {}",
        prometheus.api("/api/v1/targets").await
    );
    let (answered, refused) = load(&t).await;
    let instance = t.addr.to_string();

    // Enough scrapes for every rate to have several points, the last ones after the load.
    let scraped = eventually(Duration::from_secs(30), || async {
        prometheus
            .scalar(r#"sum_over_time(up{job="chihaya"}[1m])"#)
            .await
            .is_some_and(|n| n >= 8.0)
            && prometheus
                .scalar(r#"sum(chihaya_refusals_total{job="chihaya"})"#)
                .await
                .is_some_and(|n| n >= f64::from(refused))
    })
    .await;
    assert!(
        scraped,
        "Prometheus scraped the tracker 8 times and saw the {refused} refusals; targets: {}",
        prometheus.api("/api/v1/targets").await
    );

    for expr in &exprs {
        let promql = substitute(expr, &instance);
        let result = prometheus.query(&promql).await;
        assert!(
            !result.is_empty(),
            "no data for the dashboard query {promql}"
        );
    }

    // The numbers mean what the panels say.
    let value = |result: &[Value], label: &str, name: &str| -> f64 {
        result
            .iter()
            .find(|s| s["metric"][label] == name)
            .and_then(|s| s["value"][1].as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("no {label}={name} in {result:?}"))
    };
    // Every announce past the passkey check is timed: all but the unknown passkeys.
    let announces = prometheus
        .scalar(r#"max(chihaya_announce_duration_seconds_count{job="chihaya"})"#)
        .await
        .expect("announces");
    assert_eq!(announces, f64::from(answered + refused - 4));
    let announces_panel = exprs
        .iter()
        .find(|e| e.contains("rate(chihaya_announce_duration_seconds_count"))
        .expect("an announces per second query");
    let per_second = prometheus
        .scalar(&substitute(announces_panel, &instance))
        .await
        .expect("announces per second");
    assert!(per_second > 0.0, "announces per second {per_second}");
    let reasons = prometheus
        .query(r#"sum by (reason) (chihaya_refusals_total{job="chihaya"})"#)
        .await;
    assert_eq!(value(&reasons, "reason", "unregistered_torrent"), 8.0);
    assert_eq!(value(&reasons, "reason", "passkey_invalid"), 4.0);
    assert_eq!(value(&reasons, "reason", "client_not_approved"), 4.0);
    assert_eq!(value(&reasons, "reason", "rate_limited"), 0.0);
    let p99 = prometheus
        .scalar(&substitute(
            r#"histogram_quantile(0.99, sum by (le) (rate(chihaya_announce_duration_seconds_bucket{job="$job",instance=~"$instance"}[$__rate_interval])))"#,
            &instance,
        ))
        .await
        .expect("p99");
    assert!(p99 > 0.0 && p99 <= 0.25, "announce p99 {p99}");
    let peers = prometheus
        .scalar(r#"max(chihaya_peers{job="chihaya"})"#)
        .await
        .expect("peers");
    assert_eq!(peers, 4.0);

    // The template variables' choices.
    let jobs = prometheus
        .api("/api/v1/label/job/values?match[]=chihaya_uptime")
        .await;
    assert_eq!(jobs, serde_json::json!(["chihaya"]));
    let instances = prometheus
        .api(&format!(
            "/api/v1/label/instance/values?match[]={}",
            url_encode(r#"chihaya_uptime{job="chihaya"}"#)
        ))
        .await;
    assert_eq!(instances, serde_json::json!([instance]));

    // Every alert rule evaluates on the real series, and none is pending or firing.
    let evaluated = eventually(Duration::from_secs(10), || async {
        let groups = prometheus.api("/api/v1/rules").await;
        let mut health = Vec::new();
        strings_under(&groups, "health", &mut health);
        health.len() == 5 && health.iter().all(|h| h == "ok")
    })
    .await;
    assert!(
        evaluated,
        "every rule evaluated: {}",
        prometheus.api("/api/v1/rules").await
    );
    let alerts = prometheus.api("/api/v1/alerts").await;
    assert_eq!(alerts["alerts"], serde_json::json!([]), "{alerts}");

    drop(prometheus);
    t.stop().await;
}

fn promtool(args: &[&str]) {
    let output = Command::new(PROMTOOL)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run {PROMTOOL}: {e}"));
    assert!(
        output.status.success(),
        "{PROMTOOL} {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    if !tools_present() {
        return;
    }
    promtool(&["check", "rules", ALERTS]);
    promtool(&["test", "rules", ALERTS_TEST]);
}
