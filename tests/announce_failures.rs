//! Every refusal of SPEC §5.1 with its exact bytes and interval, and the query-string
//! rules of SPEC §4 as seen through the real server.

mod common;

use common::*;

fn hash3() -> String {
    escape(&unhex(HASH_3))
}

const PEER: &str = "-TR2940-abcdefghijkl";

async fn expect(t: &TestTracker, query: &str, reason: &str, interval: u32) {
    let r = t.get(&format!("/{PASSKEY_1}/announce?{query}")).await;
    assert_eq!(r.status, 200, "{query}");
    assert_eq!(r.text(), failure_body(reason, interval), "{query}");
}

#[tokio::test]
async fn malformed_requests_in_check_order() {
    let t = TestTracker::start().await;
    let h = hash3();
    let full = format!("info_hash={h}&peer_id={PEER}&port=6881&uploaded=0&downloaded=0&left=0");
    let long = format!("{full}&pad={}", "x".repeat(8192));
    expect(&t, &long, "Malformed request - query string too long", 3600).await;
    expect(
        &t,
        &format!("{full}&x=%zz"),
        "Malformed request - invalid query string",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("{full}&x=%4"),
        "Malformed request - invalid query string",
        3600,
    )
    .await;
    expect(
        &t,
        "info_hash=%zz&peer_id=x",
        "Malformed request - invalid query string",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("{full}&x=%"),
        "Malformed request - invalid query string",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("peer_id={PEER}&port=1"),
        "Malformed request - missing info_hash",
        3600,
    )
    .await;
    expect(
        &t,
        "info_hash=abc&peer_id=x",
        "Malformed request - missing info_hash",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("INFO_HASH={h}&peer_id=x"),
        "Malformed request - missing info_hash",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&info_hash={h}&peer_id={PEER}"),
        "Malformed request - multiple info_hash values provided",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&port=1"),
        "Malformed request - missing peer_id",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id="),
        "Malformed request - missing peer_id",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id=-TR2940-abc"),
        "Malformed request - invalid peer_id",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id={PEER}"),
        "Malformed request - missing port",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id={PEER}&port=65536"),
        "Malformed request - missing port",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id={PEER}&port=-1"),
        "Malformed request - missing port",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id={PEER}&port=1"),
        "Malformed request - missing uploaded",
        3600,
    )
    .await;
    expect(
        &t,
        &format!("info_hash={h}&peer_id={PEER}&port=1&uploaded=1&downloaded=x"),
        "Malformed request - missing downloaded",
        3600,
    )
    .await;
    expect(
        &t,
        &format!(
            "info_hash={h}&peer_id={PEER}&port=1&uploaded=1&downloaded=1&left=18446744073709551616"
        ),
        "Malformed request - missing left",
        3600,
    )
    .await;
    // Keys are case-insensitive (except info_hash) and the last occurrence wins.
    let r = t
        .get(&format!(
            "/{PASSKEY_1}/announce?info_hash={h}&PEER_ID={PEER}&Port=x&port=6881&UPLOADED=0&downloaded=0&left=0;"
        ))
        .await;
    assert_eq!(
        r.text(),
        failure_body("Malformed request - missing left", 3600)
    );
    let r = t
        .get(&format!("/{PASSKEY_1}/announce?info_hash={h}&PEER_ID={PEER}&Port=x&port=6881&UPLOADED=0&downloaded=0&left=0"))
        .await;
    assert_eq!(r.body, announce_body(1, 0, 0, Some(b"0:")));
    t.stop().await;
}

#[tokio::test]
async fn strict_port_refuses_privileged_ports() {
    let t = TestTracker::with_config(r#""strict_port": true"#).await;
    for port in [0u16, 80, 1023] {
        let r = t
            .announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0).port(port))
            .await;
        let reason = format!("Malformed request - port outside of acceptable range (port: {port})");
        assert_eq!(r.text(), failure_body(&reason, 3600));
    }
    let r = t
        .announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0).port(1024))
        .await;
    assert_eq!(r.body, announce_body(1, 0, 0, Some(b"0:")));
    t.stop().await;

    let lax = TestTracker::start().await;
    let r = lax
        .announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0).port(0))
        .await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 0, Some(b"0:")),
        "port 0 passes without strict_port"
    );
    lax.stop().await;
}

#[tokio::test]
async fn address_failures() {
    let t = TestTracker::start().await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    let r = t
        .announce(&a.clone().extra("&ipv4=1.2.3.4&ip=5.6.7.8"))
        .await;
    assert_eq!(
        r.text(),
        failure_body("Failed to parse IP address (ip: )", 3600)
    );
    // The same address written two ways is no conflict; private values are ignored.
    let r = t
        .announce(&a.clone().extra("&ipv4=1.2.3.4&ip=::ffff:1.2.3.4"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("d8:complete"), "{}", r.text());
    let r = t
        .announce(&a.clone().extra("&ipv4=10.0.0.1&ip=192.168.0.1"))
        .await;
    assert!(r.text().starts_with("d8:complete"), "{}", r.text());
    t.stop().await;
}

#[tokio::test]
async fn proxy_header_decides_when_configured() {
    let t = TestTracker::with_config(r#""proxy": "X-Real-IP""#).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    let r = get(t.addr, &a.target(), &[("x-real-ip", " nonsense , 1.2.3.4")]).await;
    assert_eq!(
        r.text(),
        failure_body("Failed to parse IP address (ip: nonsense)", 3600)
    );
    let r = get(
        t.addr,
        &a.target(),
        &[("X-REAL-IP", "\t9.8.7.6 , 10.0.0.1")],
    )
    .await;
    assert!(r.text().starts_with("d8:complete"), "{}", r.text());
    // A leecher sees the seeder at the proxy's address.
    let leech = Announce::new(PASSKEY_2, HASH_2, "b", 5);
    let seed = Announce::new(PASSKEY_1, HASH_2, "c", 0).port(6881);
    get(t.addr, &seed.target(), &[("X-Real-IP", "9.8.7.6")]).await;
    let r = get(t.addr, &leech.target(), &[("X-Real-IP", "9.8.7.5")]).await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 1, Some(b"6:\x09\x08\x07\x06\x1a\xe1"))
    );
    t.stop().await;
}

#[tokio::test]
async fn client_torrent_status_and_download_refusals() {
    let t = TestTracker::start().await;
    let mut archived = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    archived.peer_id = *b"-qB4250-abcdefghijkl";
    let r = t.announce(&archived).await;
    assert_eq!(
        r.text(),
        failure_body(
            "Your client is not approved (peer_id: -qB4250-abcdefghijkl)",
            3600
        )
    );
    let mut binary = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    binary.peer_id = *b"\xffXX\x00-abcdefghijklmno";
    let r = t.announce(&binary).await;
    let mut want = b"d14:failure reason59:Your client is not approved (peer_id: ".to_vec();
    want.extend_from_slice(b"\xffXX\x00-abcdefghijklmno)8:intervali3600e12:min intervali3600ee");
    assert_eq!(r.body, want);
    let mut deluge = Announce::new(PASSKEY_1, HASH_3, "a", 0);
    deluge.peer_id = *b"-DE13F0-abcdefghijkl";
    assert_eq!(
        t.announce(&deluge).await.body,
        announce_body(1, 0, 0, Some(b"0:"))
    );

    let r = t
        .announce(&Announce::new(
            PASSKEY_1,
            "0000000000000000000000000000000000000000",
            "a",
            0,
        ))
        .await;
    assert_eq!(r.text(), failure_body("This torrent does not exist", 30));
    let r = t
        .announce(&Announce::new(PASSKEY_1, HASH_1, "a", 123))
        .await;
    assert_eq!(
        r.text(),
        failure_body("This torrent does not exist (status: 1, left: 123)", 300)
    );
    // User 2 is download-disabled; torrent 3 is not one of its hit-and-runs.
    let r = t.announce(&Announce::new(PASSKEY_2, HASH_3, "a", 1)).await;
    assert_eq!(
        r.text(),
        failure_body("Your download privileges are disabled", 3600)
    );
    t.stop().await;
}

#[tokio::test]
async fn other_statuses_refuse_everyone() {
    let t = TestTracker::start().await;
    t.db.exec("UPDATE torrents SET Status = 2 WHERE ID = 3")
        .await;
    let reloaded = TestTracker::on(t.stop().await, "").await;
    let r = reloaded
        .announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0))
        .await;
    assert_eq!(
        r.text(),
        failure_body("This torrent does not exist (status: 2, left: 0)", 300)
    );
    reloaded.stop().await;
}

#[tokio::test]
async fn a_failed_announce_changes_nothing() {
    let t = TestTracker::start().await;
    let sink = &t.tracker().shared.sink;
    t.announce(&Announce::new(PASSKEY_2, HASH_3, "a", 1).transfer(10, 10))
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_1, "a", 1)).await;
    assert_eq!(sink.announces.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(sink.history.is_empty() && sink.torrents.is_empty() && sink.transfer_ips.is_empty());
    let r = t
        .get(&format!("/{PASSKEY_1}/scrape?info_hash={}", hash3()))
        .await;
    assert!(
        r.text()
            .contains("8:completei0e10:downloadedi0e10:incompletei0e"),
        "{}",
        r.text()
    );
    t.stop().await;
}
