//! The metrics endpoints (SPEC §13): every family with its type, the admin section
//! behind the token, and counters that move with what they count.

mod common;

use std::time::Duration;

use common::prom::{parse, Exposition};
use common::*;

const ADMIN: &str = r#""admin_token": "t0k3n", "intervals": {"announce_drift": 0, "database_reload": 1, "flush": 3600}"#;

async fn scrape(t: &TestTracker) -> Exposition {
    let r = get(t.addr, "/metrics", &[("Authorization", "Bearer t0k3n")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&r.text())
}

const NORMAL: [(&str, &str); 8] = [
    ("chihaya_uptime", "counter"),
    ("chihaya_users", "gauge"),
    ("chihaya_torrents", "gauge"),
    ("chihaya_clients", "gauge"),
    ("chihaya_hnrs", "gauge"),
    ("chihaya_peers", "gauge"),
    ("chihaya_peer_endpoints", "gauge"),
    ("chihaya_requests", "counter"),
];

const ADMIN_FAMILIES: [(&str, &str); 28] = [
    ("chihaya_deadlock_count", "counter"),
    ("chihaya_deadlock_aborted_count", "counter"),
    ("chihaya_deadlock_seconds_total", "counter"),
    ("chihaya_requests_fail", "counter"),
    ("chihaya_sql_errors_count", "counter"),
    ("chihaya_serialization_seconds", "histogram"),
    ("chihaya_reload_seconds", "histogram"),
    ("chihaya_flush_seconds", "histogram"),
    ("chihaya_torrents_channel_len", "histogram"),
    ("chihaya_users_channel_len", "histogram"),
    ("chihaya_transfer_history_channel_len", "histogram"),
    ("chihaya_transfer_ips_channel_len", "histogram"),
    ("chihaya_snatches_channel_len", "histogram"),
    ("chihaya_pending_rows", "gauge"),
    ("chihaya_pending_oldest_seconds", "gauge"),
    ("chihaya_flush_retries_total", "counter"),
    ("chihaya_spilled_rows_total", "counter"),
    ("chihaya_spill_replayed_rows_total", "counter"),
    ("chihaya_skipped_rows_total", "counter"),
    ("chihaya_recorder_dropped_total", "counter"),
    ("chihaya_announce_duration_seconds", "histogram"),
    ("chihaya_implausible_deltas_total", "counter"),
    ("chihaya_peers_evicted_total", "counter"),
    ("chihaya_rate_limited_total", "counter"),
    ("chihaya_refusals_total", "counter"),
    ("chihaya_reload_failures_total", "counter"),
    ("chihaya_client_errors_total", "counter"),
    ("process_cpu_seconds_total", "counter"),
];

#[tokio::test]
async fn every_family_is_there_with_its_type_and_help() {
    let t = TestTracker::with_config(ADMIN).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await;
    t.flush().await;
    let all = scrape(&t).await;
    for (name, kind) in NORMAL.iter().chain(&ADMIN_FAMILIES) {
        assert_eq!(all.kind(name), Some(*kind), "{name}");
    }
    let help = |name: &str| all.families[name].help.clone();
    assert_eq!(help("chihaya_uptime"), "System uptime in seconds");
    assert_eq!(
        help("chihaya_peers"),
        "Number of peers currently being tracked"
    );
    assert_eq!(
        help("chihaya_reload_seconds"),
        "Histogram of the time taken to reload data from database"
    );
    assert_eq!(
        help("chihaya_transfer_ips_channel_len"),
        "Histogram representing channel length for transfer ips during flush"
    );
    assert_eq!(
        help("chihaya_announce_duration_seconds"),
        "Histogram of the time taken to answer an announce"
    );
    // Buckets as SPEC lists them.
    let buckets = |name: &str| -> Vec<String> {
        all.families[name]
            .samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .filter(|s| s.labels.get("type").is_none_or(|t| t == "users"))
            .map(|s| s.labels["le"].clone())
            .collect()
    };
    assert_eq!(
        buckets("chihaya_reload_seconds"),
        ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
    );
    assert_eq!(
        buckets("chihaya_serialization_seconds"),
        ["0.25", "0.5", "1", "1.5", "2", "2.5", "3", "3.5", "4", "4.5", "5", "+Inf"]
    );
    let channel = buckets("chihaya_torrents_channel_len");
    assert_eq!(channel.len(), 21);
    assert_eq!(
        (
            channel[0].as_str(),
            channel[1].as_str(),
            channel[19].as_str()
        ),
        ("0", "250", "4750")
    );
    assert_eq!(buckets("chihaya_announce_duration_seconds").len(), 12);
    let types = |name: &str| -> std::collections::BTreeSet<String> {
        all.families[name]
            .samples
            .iter()
            .filter_map(|s| s.labels.get("type").cloned())
            .collect()
    };
    let tables = [
        "groups",
        "snatches",
        "torrents",
        "transfer_history",
        "transfer_ips",
        "transfer_ips6",
        "unprune",
        "users",
    ];
    assert_eq!(
        types("chihaya_pending_rows")
            .into_iter()
            .collect::<Vec<_>>(),
        tables
    );
    assert!(types("chihaya_flush_retries_total").contains("inactive_peers"));
    assert_eq!(
        types("chihaya_reload_seconds")
            .into_iter()
            .collect::<Vec<_>>(),
        [
            "clients",
            "group_freeleech",
            "hit_and_runs",
            "torrents",
            "users"
        ]
    );
    // A failure can be counted for every snapshot that is timed, and global freeleech.
    let mut failure_types = types("chihaya_reload_seconds");
    failure_types.insert("global_freeleech".to_owned());
    assert_eq!(types("chihaya_reload_failures_total"), failure_types);
    assert_eq!(all.sum("chihaya_reload_failures_total", &[]), 0.0);
    assert_eq!(
        all.families["chihaya_refusals_total"].samples.len(),
        chihaya::tracker::REFUSAL_REASONS.len()
    );
    assert_eq!(
        all.value("chihaya_peer_endpoints", &[("family", "ipv4")]),
        Some(1.0)
    );
    assert_eq!(
        all.value("chihaya_peer_endpoints", &[("family", "ipv6")]),
        Some(0.0)
    );
    assert_eq!(
        all.value("chihaya_skipped_rows_total", &[("type", "transfer_ips6")]),
        Some(0.0)
    );
    assert_eq!(all.value("chihaya_users", &[]), Some(2.0));
    assert_eq!(all.value("chihaya_torrents", &[]), Some(3.0));
    assert_eq!(all.value("chihaya_clients", &[]), Some(2.0));
    assert_eq!(all.value("chihaya_hnrs", &[]), Some(1.0));
    assert_eq!(all.value("chihaya_peers", &[]), Some(1.0));

    // A passkey without the token: the normal section only.
    let r = t.get(&format!("/{PASSKEY_1}/metrics")).await;
    let normal = parse(&r.text());
    assert_eq!(
        normal.families.len(),
        NORMAL.len(),
        "{:?}",
        normal.families.keys()
    );
    t.stop().await;
}

#[tokio::test]
async fn counters_move_with_what_they_count() {
    let t = TestTracker::with_config(ADMIN).await;
    let before = scrape(&t).await;
    let count =
        |e: &Exposition, name: &str, labels: &[(&str, &str)]| e.value(name, labels).unwrap_or(0.0);

    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0).transfer(5, 0))
        .await;
    t.get(&format!("/{PASSKEY_1}/announce?info_hash=%zz")).await; // refused, still answered
    t.get("/nowhere").await; // 404 counts too
    t.get("/nobody/announce").await; // passkey refusal: no announce timing
    t.flush().await;
    let reloaded = eventually(Duration::from_secs(5), || async {
        count(
            &scrape(&t).await,
            "chihaya_reload_seconds_count",
            &[("type", "users")],
        ) > count(
            &before,
            "chihaya_reload_seconds_count",
            &[("type", "users")],
        )
    })
    .await;
    assert!(reloaded, "a reload was timed");
    let after = scrape(&t).await;
    // Requests: the scrape before, 5 requests, and the eventually scrapes; at least 6 more.
    assert!(
        count(&after, "chihaya_requests", &[]) >= count(&before, "chihaya_requests", &[]) + 6.0
    );
    assert_eq!(
        count(&after, "chihaya_announce_duration_seconds_count", &[]),
        3.0
    );
    assert_eq!(
        count(&after, "chihaya_flush_seconds_count", &[("type", "users")]),
        1.0
    );
    assert_eq!(count(&after, "chihaya_users_channel_len_count", &[]), 1.0);
    assert_eq!(count(&after, "chihaya_users_channel_len_sum", &[]), 1.0);
    assert_eq!(
        count(
            &after,
            "chihaya_rows_written_total",
            &[("type", "transfer_history")]
        ),
        1.0
    );
    assert_eq!(
        count(&after, "chihaya_pending_rows", &[("type", "users")]),
        0.0
    );
    assert!(count(&after, "chihaya_uptime", &[]) > 0.0);
    t.stop().await;
}

#[tokio::test]
async fn the_token_gates_the_admin_section() {
    let t = TestTracker::with_config(ADMIN).await;
    for (headers, status) in [
        (vec![], 404),
        (vec![("Authorization", "Bearer wrong")], 404),
        (vec![("Authorization", "t0k3n")], 404),
        (vec![("Authorization", "Bearer t0k3n")], 200),
    ] {
        let r = get(t.addr, "/metrics", &headers).await;
        assert_eq!(r.status, status, "{headers:?}");
        let passkey = get(t.addr, &format!("/{PASSKEY_1}/metrics"), &headers).await;
        let families = parse(&passkey.text());
        assert_eq!(
            families.families.contains_key("chihaya_requests_fail"),
            status == 200,
            "{headers:?}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn refusals_are_counted_by_reason_and_failed_reloads_by_type() {
    const ASKED: &str = r#""admin_token": "t0k3n", "intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#;
    let t = TestTracker::with_config(ASKED).await;
    let refusals =
        |e: &Exposition, reason: &str| e.value("chihaya_refusals_total", &[("reason", reason)]);
    let before = scrape(&t).await;
    for reason in [
        "passkey_invalid",
        "unregistered_torrent",
        "client_not_approved",
    ] {
        assert_eq!(refusals(&before, reason), Some(0.0), "{reason}");
    }

    t.get("/nobody/announce").await;
    t.get("/nobody/scrape").await;
    let unknown = "00112233445566778899AABBCCDDEEFF00112233";
    let r = t.announce(&Announce::new(PASSKEY_1, unknown, "u", 0)).await;
    assert_eq!(
        r.body,
        failure_body("This torrent does not exist", 30).into_bytes()
    );
    let mut unapproved = Announce::new(PASSKEY_1, HASH_3, "c", 0);
    unapproved.peer_id = *b"-XX0001-000000000000";
    t.announce(&unapproved).await;
    t.get(&format!("/{PASSKEY_1}/announce?info_hash=%zz")).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "ok", 0)).await; // answered, not refused

    let after = scrape(&t).await;
    for (reason, count) in [
        ("passkey_invalid", 2.0),
        ("unregistered_torrent", 1.0),
        ("client_not_approved", 1.0),
        ("query_invalid", 1.0),
        ("rate_limited", 0.0),
    ] {
        assert_eq!(refusals(&after, reason), Some(count), "{reason}");
    }
    assert_eq!(after.sum("chihaya_refusals_total", &[]), 5.0);

    // The clients' table gone: that load fails, the others do not.
    assert_eq!(
        after.sum("chihaya_reload_failures_total", &[]),
        0.0,
        "no failure yet"
    );
    t.db.exec("RENAME TABLE approved_clients TO approved_clients_kept")
        .await;
    t.tracker().reload_now().await;
    let failed = scrape(&t).await;
    assert_eq!(
        failed.value("chihaya_reload_failures_total", &[("type", "clients")]),
        Some(1.0)
    );
    assert_eq!(failed.sum("chihaya_reload_failures_total", &[]), 1.0);
    for kind in [
        "users",
        "hit_and_runs",
        "torrents",
        "group_freeleech",
        "global_freeleech",
    ] {
        assert_eq!(
            failed.value("chihaya_reload_failures_total", &[("type", kind)]),
            Some(0.0),
            "{kind}"
        );
    }
    t.db.exec("RENAME TABLE approved_clients_kept TO approved_clients")
        .await;
    t.tracker().reload_now().await;
    assert_eq!(
        scrape(&t).await.sum("chihaya_reload_failures_total", &[]),
        1.0,
        "a successful reload adds nothing"
    );
    t.stop().await;
}
