//! HTTP surface: methods, routes, status codes, headers, passkey checks (SPEC §3).

mod common;

use common::*;

#[tokio::test]
async fn methods_other_than_get_and_head_are_405_on_any_path() {
    let t = TestTracker::start().await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        for path in ["/check", "/nowhere", &format!("/{PASSKEY_1}/announce")] {
            let r = request(t.addr, method, path, &[("Content-Length", "0")]).await;
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
            assert!(r.body.is_empty());
        }
    }
    t.stop().await;
}

#[tokio::test]
async fn check_and_alive() {
    let t = TestTracker::start().await;
    let before = chihaya::server::state::unix_now();
    let r = t.get("/check").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.header("date").is_some());
    assert_eq!(r.header("server"), None);
    let now: i64 = r.text().parse().expect("decimal seconds");
    assert!(now >= before && now <= before + 5);

    let r = t.get("/alive").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert!(v["now"].as_i64().unwrap() >= before * 1000);
    assert!(v["uptime"].as_i64().is_some());
    assert!(!r.text().contains(' '), "no spaces: {}", r.text());
    t.stop().await;
}

#[tokio::test]
async fn head_is_get_without_body() {
    let t = TestTracker::start().await;
    let get = t.get("/check").await;
    let head = request(t.addr, "HEAD", "/check", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), get.header("content-length"));
    let a = Announce::new(PASSKEY_1, HASH_3, "h1", 0);
    let head = request(t.addr, "HEAD", &a.target(), &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // Same side effects as GET: the peer was added.
    let r = t.announce(&Announce::new(PASSKEY_1, HASH_3, "h2", 0)).await;
    assert_eq!(r.body, announce_body(2, 0, 0, Some(b"0:")));
    t.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_with_an_empty_text_body() {
    let t = TestTracker::start().await;
    for path in [
        "/",
        "/check/",
        "/announce",
        "/scrape",
        &format!("/{PASSKEY_1}"),
        &format!("/{PASSKEY_1}/"),
        &format!("/{PASSKEY_1}/announce/"),
        &format!("/{PASSKEY_1}/other"),
        &format!("/x/{PASSKEY_1}/announce"),
        "//announce",
        "/%zz/announce",
        "/metrics",
        "/nonexistent/other",
    ] {
        let r = t.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body.is_empty(), "{path}");
        assert_eq!(r.header("content-type"), Some("text/plain"), "{path}");
    }
    t.stop().await;
}

#[tokio::test]
async fn unknown_or_disabled_passkey_on_each_route() {
    let t = TestTracker::start().await;
    let invalid = failure_body("Your passkey is invalid", 3600);
    for passkey in ["nonexistent", PASSKEY_3, &PASSKEY_1.to_lowercase()] {
        for action in ["announce", "scrape", "metrics"] {
            let r = t.get(&format!("/{passkey}/{action}?info_hash=%zz")).await;
            assert_eq!(r.status, 200, "{passkey}/{action}");
            assert_eq!(r.text(), invalid, "{passkey}/{action}");
            assert_eq!(r.header("content-type"), Some("text/plain"));
        }
    }
    t.stop().await;
}

#[tokio::test]
async fn escaped_passkey_segment_is_decoded() {
    let t = TestTracker::start().await;
    let escaped: String = PASSKEY_1.bytes().map(|b| format!("%{b:02x}")).collect();
    let r = t.get(&format!("/{escaped}/scrape")).await;
    assert!(
        r.text().starts_with("d14:failure reason41:Scrape without"),
        "{}",
        r.text()
    );
    t.stop().await;
}

#[tokio::test]
async fn scrape_disabled_is_404_but_passkey_is_checked_first() {
    let t = TestTracker::with_config(r#""scrape": false"#).await;
    let r = t.get(&format!("/{PASSKEY_1}/scrape?info_hash=%zz")).await;
    assert_eq!((r.status, r.body.len()), (404, 0));
    let r = t.get("/nobody/scrape").await;
    assert_eq!(r.text(), failure_body("Your passkey is invalid", 3600));
    t.stop().await;
}

#[tokio::test]
async fn metrics_need_a_passkey_and_admin_needs_the_token() {
    let t = TestTracker::with_config(r#""admin_token": "s3cret""#).await;
    let r = t.get(&format!("/{PASSKEY_1}/metrics")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.text().contains("\nchihaya_users 2\n"), "{}", r.text());
    assert!(r.text().contains("\nchihaya_torrents 3\n"));
    assert!(!r.text().contains("chihaya_requests_fail"));
    let admin = get(
        t.addr,
        &format!("/{PASSKEY_1}/metrics"),
        &[("Authorization", "Bearer s3cret")],
    )
    .await;
    let text = admin.text();
    for sample in [
        "\nchihaya_requests_fail 0\n",
        "\nchihaya_deadlock_count 0\n",
        "\nchihaya_pending_rows{type=\"transfer_history\"} 0\n",
        "\nchihaya_pending_oldest_seconds{type=\"users\"} 0\n",
        "\nchihaya_flush_retries_total{reason=\"lock_wait_timeout\",type=\"inactive_peers\"} 0\n",
        "\nchihaya_spilled_rows_total{type=\"groups\"} 0\n",
        "\nchihaya_spill_replayed_rows_total{type=\"unprune\"} 0\n",
        "# TYPE chihaya_pending_rows gauge\n",
        "# HELP chihaya_flush_retries_total Number of failed database write attempts that were retried\n",
    ] {
        assert!(text.contains(sample), "{sample:?} in\n{text}");
    }
    for wrong in [
        "Bearer s3cre",
        "Bearer s3cret2",
        "bearer s3cret",
        "Bearer  s3cret",
        "s3cret",
    ] {
        let r = get(t.addr, "/metrics", &[("Authorization", wrong)]).await;
        assert_eq!(r.status, 404, "{wrong}");
    }
    let r = get(t.addr, "/metrics", &[("Authorization", "Bearer s3cret")]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("chihaya_requests_fail"));
    t.stop().await;

    let t = TestTracker::start().await;
    let r = get(t.addr, "/metrics", &[("Authorization", "Bearer ")]).await;
    assert_eq!(r.status, 404, "empty configured token disables admin");
    t.stop().await;
}
