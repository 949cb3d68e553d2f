//! IPv6 peers (BEP 7, SPEC §5.14) through the real server on 127.0.0.1 and ::1 and a
//! real MariaDB: one peer per (user, peer_id) with an endpoint per family, `peers6`,
//! `transfer_ips6`, and a database without that table.

mod common;

use std::net::TcpListener;

use common::*;

/// Flushes only when asked: deltas coalesce until then.
const MANUAL: &str =
    r#""intervals": {"announce_drift": 0, "database_reload": 3600, "flush": 3600}"#;

fn rows(values: &[&[&str]]) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|row| row.iter().map(|v| (*v).to_owned()).collect())
        .collect()
}

const PASSKEY_4: &str = "v6v6v6v6v6v6v6v6v6v6v6v6v6v6v6v6";

/// A tracker listening on `[::1]:0`: its clients' TCP source is ::1.
async fn on_ipv6_loopback(db: TestDb, extra: &str) -> TestTracker {
    let listener = TcpListener::bind("[::1]:0").expect("bind [::1]:0");
    TestTracker::on_listener(db, extra, listener).await
}

/// `ip` bytes as MariaDB's HEX() prints them.
fn hex6(ip: &str) -> String {
    let ip: std::net::Ipv6Addr = ip.parse().unwrap();
    ip.octets().iter().map(|b| format!("{b:02X}")).collect()
}

fn compact6(ip: &str, port: u16) -> Vec<u8> {
    let ip: std::net::Ipv6Addr = ip.parse().unwrap();
    let mut out = ip.octets().to_vec();
    out.extend_from_slice(&port.to_be_bytes());
    out
}

#[tokio::test]
async fn a_dual_stack_client_is_one_peer_credited_once() {
    let t = on_ipv6_loopback(TestDb::new().await, &format!(r#""record": true, {MANUAL}"#)).await;
    // The same client over IPv4 (its public `ipv4`) and over IPv6 (the ::1 source),
    // as BEP 7 clients do: same peer_id, same counters.
    let over_v4 = Announce::new(PASSKEY_1, HASH_2, "dual", 1000).extra("&ipv4=1.2.3.4");
    let over_v6 = Announce::new(PASSKEY_1, HASH_2, "dual", 1000);
    for a in [&over_v4, &over_v6] {
        let r = t.announce(&a.clone().event("started")).await;
        assert_eq!(
            r.text(),
            "d8:completei0e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e5:peers0:e"
        );
    }
    for a in [&over_v4, &over_v6] {
        t.announce(&a.clone().transfer(100, 500).left(500)).await;
    }
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Seeders, Leechers FROM torrents WHERE ID = 2")
            .await,
        rows(&[&["0", "1"]])
    );
    // Torrent 2 multiplies download by 2 and upload by 0.5: the bytes once, not twice.
    assert_eq!(
        t.db.rows("SELECT Uploaded, Downloaded, rawup, rawdl FROM users_main WHERE ID = 1")
            .await,
        rows(&[&["50", "1000", "100", "500"]])
    );
    assert_eq!(
        t.db.rows(
            "SELECT uploaded, downloaded, remaining, active FROM transfer_history \
             WHERE uid = 1 AND fid = 2"
        )
        .await,
        rows(&[&["100", "500", "500", "1"]])
    );
    // Each family its per-IP row; the transfer went to the endpoint that reported it.
    assert_eq!(
        t.db.rows(
            "SELECT ip, client_id, port, uploaded, downloaded FROM transfer_ips \
             WHERE uid = 1 AND fid = 2"
        )
        .await,
        rows(&[&["16909060", "1", "51413", "100", "500"]])
    );
    assert_eq!(
        t.db.rows(
            "SELECT HEX(ip), client_id, port, uploaded, downloaded FROM transfer_ips6 \
             WHERE uid = 1 AND fid = 2"
        )
        .await,
        rows(&[&[&hex6("::1"), "1", "51413", "0", "0"]])
    );

    // The recorder names the endpoint each announce came over.
    let events = t.dir.files().events;
    let recorded = tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let text: String = std::fs::read_dir(&events)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect();
            if text.lines().count() >= 4 || std::time::Instant::now() > until {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        [
            r#"[2,1,"1.2.3.4",51413,"started",0,0,0,0,0,1000]"#,
            r#"[2,1,"::1",51413,"started",0,0,0,0,0,1000]"#,
            r#"[2,1,"1.2.3.4",51413,"",0,100,500,100,500,500]"#,
            r#"[2,1,"::1",51413,"",0,0,0,100,500,500]"#,
        ]
    );

    // Another user's seeder gets the peer once, in `peers` and in `peers6`.
    let seeder = Announce::new(PASSKEY_2, HASH_2, "seed", 0).port(7000);
    let r = t.announce(&seeder).await;
    let mut want = b"d8:completei1e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e5:peers6:\x01\x02\x03\x04\xc8\xd56:peers618:".to_vec();
    want.extend_from_slice(&compact6("::1", 51413));
    want.push(b'e');
    assert_eq!(r.body, want, "{}", r.text());
    // Non-compact: one dict per endpoint.
    let r = t.announce(&seeder.clone().extra("&compact=0")).await;
    assert_eq!(
        r.text(),
        "d8:completei1e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e5:peersld2:ip7:1.2.3.47:peer id20:-TR2940-00000000dual4:porti51413eed2:ip3:::17:peer id20:-TR2940-00000000dual4:porti51413eeee"
    );

    // It completes, and says so over both families: one snatch.
    for a in [&over_v4, &over_v6] {
        t.announce(&a.clone().transfer(100, 1000).left(0).event("completed"))
            .await;
    }
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT Snatched, Seeders, Leechers FROM torrents WHERE ID = 2")
            .await,
        rows(&[&["1", "2", "0"]])
    );
    assert_eq!(
        t.db.rows("SELECT snatched, downloaded FROM transfer_history WHERE uid = 1 AND fid = 2")
            .await,
        rows(&[&["1", "1000"]])
    );
    t.stop().await;
}

#[tokio::test]
async fn an_ipv6_seeder_reaches_ipv4_leechers_through_peers6_only() {
    // A fourth user seeds over IPv4: a leecher gets one seeder per user.
    let db = TestDb::new().await;
    db.exec(&format!(
        "INSERT INTO users_main (ID, torrent_pass, Enabled) VALUES (4, '{PASSKEY_4}', '1')"
    ))
    .await;
    let t = TestTracker::on(db, MANUAL).await;
    // Over 127.0.0.1, but `ip` names a public IPv6 address: the peer is IPv6 only.
    let seeder = Announce::new(PASSKEY_2, HASH_2, "seed6", 0)
        .port(7000)
        .extra("&ip=2a00:1450::1");
    t.announce(&seeder).await;
    let ipv4_seeder = Announce::new(PASSKEY_4, HASH_2, "seed4", 0).port(7001);
    t.announce(&ipv4_seeder).await;

    // An IPv4-only leecher: the IPv6 seeder in peers6, the IPv4 one in peers.
    let leecher = Announce::new(PASSKEY_1, HASH_2, "leech", 100).numwant(1);
    let mut got6 = false;
    let mut got4 = false;
    for _ in 0..40 {
        let body = t.announce(&leecher).await.body;
        let head = b"d8:completei2e10:downloadedi0e10:incompletei1e8:intervali1800e12:min intervali900e5:peers";
        assert!(body.starts_with(head), "{}", String::from_utf8_lossy(&body));
        let rest = &body[head.len()..];
        // numwant=1 counts peers: one peer, whichever family it has.
        let mut v6 = b"0:6:peers618:".to_vec();
        v6.extend_from_slice(&compact6("2a00:1450::1", 7000));
        v6.push(b'e');
        if rest == v6 {
            got6 = true;
        } else {
            assert_eq!(rest, b"6:\x7f\x00\x00\x01\x1b\x59e");
            got4 = true;
        }
    }
    assert!(got6 && got4, "random selection picks either seeder");

    // A dual-stack leecher (over 127.0.0.1, then naming its IPv6 address) is one
    // leecher, and with room for both it gets the IPv4 seeder in `peers` and the IPv6
    // one in `peers6`.
    let dual = Announce::new(PASSKEY_1, HASH_2, "dual", 100).numwant(2);
    t.announce(&dual).await;
    let body = t
        .announce(&dual.clone().extra("&ip=2a00:1450::77"))
        .await
        .body;
    let mut want = b"d8:completei2e10:downloadedi0e10:incompletei2e8:intervali1800e12:min intervali900e5:peers6:\x7f\x00\x00\x01\x1b\x596:peers618:".to_vec();
    want.extend_from_slice(&compact6("2a00:1450::1", 7000));
    want.push(b'e');
    assert_eq!(body, want, "{}", String::from_utf8_lossy(&body));
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT HEX(ip), port FROM transfer_ips6 WHERE uid = 2 AND fid = 2")
            .await,
        rows(&[&[&hex6("::1"), "07000"]]),
        "user 2 has TrackerHide: ::1 is stored"
    );
    t.stop().await;
}

#[tokio::test]
async fn client_supplied_addresses_follow_the_public_rules() {
    let t = TestTracker::with_config(MANUAL).await;
    let leecher = Announce::new(PASSKEY_1, HASH_2, "a", 100);
    // Non-public IPv6 in `ip` is ignored like private IPv4: the TCP source is used.
    for ip in ["::1", "fd00::1", "fe80::1", "ff02::1", "2001:db8::1", "::"] {
        let r = t
            .announce(&leecher.clone().extra(&format!("&ip={ip}")))
            .await;
        assert_eq!(r.status, 200, "{ip}: {}", r.text());
    }
    // An IPv4-mapped address is IPv4; `ipv6=` is not an address source.
    t.announce(
        &Announce::new(PASSKEY_1, HASH_2, "b", 100).extra("&ip=::ffff:1.2.3.4&ipv6=2a00:1450::9"),
    )
    .await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT ip FROM transfer_ips WHERE uid = 1 AND fid = 2 ORDER BY ip")
            .await,
        rows(&[&["16909060"], &["2130706433"]])
    );
    assert_eq!(
        t.db.rows("SELECT COUNT(*) FROM transfer_ips6").await,
        rows(&[&["0"]])
    );
    t.stop().await;
}

#[tokio::test]
async fn without_transfer_ips6_ipv6_rows_are_skipped_and_counted() {
    let db = TestDb::new().await;
    db.exec("DROP TABLE transfer_ips6").await;
    let t = on_ipv6_loopback(db, &format!(r#""admin_token": "t0k3n", {MANUAL}"#)).await;
    let a = Announce::new(PASSKEY_1, HASH_2, "v6", 100);
    t.announce(&a.clone().event("started")).await;
    t.announce(&a.clone().transfer(10, 20).left(80)).await;
    t.flush().await;
    assert_eq!(
        t.db.rows("SELECT rawup, rawdl FROM users_main WHERE ID = 1")
            .await,
        rows(&[&["10", "20"]])
    );
    assert_eq!(
        t.db.rows("SELECT uploaded, downloaded FROM transfer_history WHERE uid = 1 AND fid = 2")
            .await,
        rows(&[&["10", "20"]])
    );
    let metrics = get(t.addr, "/metrics", &[("Authorization", "Bearer t0k3n")])
        .await
        .text();
    assert!(
        metrics.contains("chihaya_skipped_rows_total{type=\"transfer_ips6\"} 2"),
        "{metrics}"
    );
    t.stop().await;
}
