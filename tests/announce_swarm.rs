//! Swarm behaviour through the real server: transitions, peer lists in every format,
//! numwant, peer selection rules, stopped (SPEC §5.6–5.13).

mod common;

use common::*;

/// 6 compact bytes for 1.2.3.`last`:`port`.
fn compact(last: u8, port: u16) -> Vec<u8> {
    let mut v = vec![1, 2, 3, last];
    v.extend_from_slice(&port.to_be_bytes());
    v
}

/// A peer of `passkey` announcing from 1.2.3.`last`.
fn peer(passkey: &str, hash: &str, tag: &str, left: u64, last: u8) -> Announce {
    Announce::new(passkey, hash, tag, left)
        .port(6000 + u16::from(last))
        .extra(&format!("&ip=1.2.3.{last}"))
}

/// Splits a compact `peers` string of an announce body into sorted 6-byte entries.
fn compact_entries(body: &[u8]) -> Vec<Vec<u8>> {
    let start = body
        .windows(7)
        .position(|w| w == b"5:peers")
        .expect("peers key")
        + 7;
    let rest = &body[start..];
    let colon = rest.iter().position(|&b| b == b':').unwrap();
    let len: usize = std::str::from_utf8(&rest[..colon])
        .unwrap()
        .parse()
        .unwrap();
    let mut entries: Vec<Vec<u8>> = rest[colon + 1..colon + 1 + len]
        .chunks(6)
        .map(<[u8]>::to_vec)
        .collect();
    entries.sort();
    entries
}

#[tokio::test]
async fn compact_dict_and_no_peer_id_bytes() {
    let t = TestTracker::start().await;
    t.announce(&peer(PASSKEY_1, HASH_3, "s1", 0, 7)).await;
    let leech = peer(PASSKEY_2, HASH_2, "l1", 10, 8);
    // Torrent 2 is leechable by user 2 (hit-and-run); user 1 seeds it.
    t.announce(&peer(PASSKEY_1, HASH_2, "s1", 0, 7)).await;
    let r = t.announce(&leech).await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 1, Some(&[b"6:".as_ref(), &compact(7, 6007)].concat()))
    );

    let r = t.announce(&leech.clone().extra("&compact=0")).await;
    let dict = b"ld2:ip7:1.2.3.77:peer id20:-TR2940-0000000000s14:porti6007eee";
    assert_eq!(r.body, announce_body(1, 0, 1, Some(dict)));

    let r = t
        .announce(&leech.clone().extra("&compact=0&no_peer_id=1"))
        .await;
    let no_id = b"ld2:ip7:1.2.3.74:porti6007eee";
    assert_eq!(r.body, announce_body(1, 0, 1, Some(no_id)));

    // Only exactly "0" and exactly "1" count.
    let r = t
        .announce(&leech.clone().extra("&compact=false&no_peer_id=true"))
        .await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 1, Some(&[b"6:".as_ref(), &compact(7, 6007)].concat()))
    );

    // No peers at all: `0:` compact, `le` as dicts.
    let lone = peer(PASSKEY_1, HASH_3, "s2", 0, 9);
    let r = t.announce(&lone).await;
    assert_eq!(r.body, announce_body(2, 0, 0, Some(b"0:")));
    let r = t.announce(&lone.clone().extra("&compact=0")).await;
    assert_eq!(r.body, announce_body(2, 0, 0, Some(b"le")));
    t.stop().await;
}

#[tokio::test]
async fn numwant_default_cap_and_zero() {
    let t = TestTracker::with_config(r#""numwant": 2, "max_numwant": 3"#).await;
    for n in 0..6u8 {
        let passkey = if n % 2 == 0 { PASSKEY_1 } else { PASSKEY_2 };
        t.announce(&peer(passkey, HASH_2, &format!("l{n}"), 100, 10 + n))
            .await;
    }
    // User 1 seeds: gets user 2's leechers only.
    let seeder = peer(PASSKEY_1, HASH_2, "s", 0, 50);
    let r = t.announce(&seeder).await;
    assert_eq!(compact_entries(&r.body).len(), 2, "default numwant");
    let r = t.announce(&seeder.clone().numwant(100)).await;
    assert_eq!(
        compact_entries(&r.body),
        vec![compact(11, 6011), compact(13, 6013), compact(15, 6015)],
        "capped at max_numwant, only the other user's leechers"
    );
    let r = t.announce(&seeder.clone().numwant(0)).await;
    assert_eq!(
        r.body,
        announce_body(1, 0, 6, None),
        "numwant=0: no peers key"
    );
    t.stop().await;
}

#[tokio::test]
async fn leechers_get_one_seeder_per_user_and_never_their_own_peers() {
    let t = TestTracker::start().await;
    // User 1 seeds torrent 2 from three clients, and leeches it from a fourth.
    for n in 0..3u8 {
        t.announce(&peer(PASSKEY_1, HASH_2, &format!("s{n}"), 0, 20 + n))
            .await;
    }
    t.announce(&peer(PASSKEY_1, HASH_2, "own", 5, 30)).await;
    // User 2 leeches: one of user 1's seeders, plus user 1's leecher.
    let r = t.announce(&peer(PASSKEY_2, HASH_2, "l", 5, 40)).await;
    let got = compact_entries(&r.body);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&compact(30, 6030)));
    assert!([20u8, 21, 22]
        .iter()
        .any(|&n| got.contains(&compact(n, 6000 + u16::from(n)))));
    // User 1's own leecher sees none of user 1's peers, only user 2's.
    let r = t.announce(&peer(PASSKEY_1, HASH_2, "own", 5, 30)).await;
    assert_eq!(compact_entries(&r.body), vec![compact(40, 6040)]);
    t.stop().await;
}

#[tokio::test]
async fn ports_below_1024_are_never_handed_out() {
    let t = TestTracker::start().await;
    t.announce(&peer(PASSKEY_1, HASH_2, "p0", 0, 1).port(0))
        .await;
    t.announce(&peer(PASSKEY_1, HASH_2, "p1", 0, 2).port(1023))
        .await;
    t.announce(&peer(PASSKEY_1, HASH_2, "p2", 0, 3).port(1024))
        .await;
    let r = t.announce(&peer(PASSKEY_2, HASH_2, "l", 5, 4)).await;
    assert_eq!(compact_entries(&r.body), vec![compact(3, 1024)]);
    assert_eq!(
        r.body[..13].to_vec(),
        b"d8:completei3".to_vec(),
        "they still count"
    );
    t.stop().await;
}

#[tokio::test]
async fn transitions_and_stopped() {
    let t = TestTracker::start().await;
    let me = peer(PASSKEY_1, HASH_3, "me", 100, 1);
    assert_eq!(
        t.announce(&me).await.body,
        announce_body(0, 0, 1, Some(b"0:"))
    );
    // Leecher -> seeder without `completed`: moved, not a snatch.
    assert_eq!(
        t.announce(&me.clone().left(0)).await.body,
        announce_body(1, 0, 0, Some(b"0:"))
    );
    // Seeder -> leecher: moved back, never in both sets.
    assert_eq!(
        t.announce(&me.clone().left(7)).await.body,
        announce_body(0, 0, 1, Some(b"0:"))
    );
    // completed: counted at once in `downloaded`, even repeated.
    let done = me.clone().left(0).event("completed");
    assert_eq!(
        t.announce(&done).await.body,
        announce_body(1, 1, 0, Some(b"0:"))
    );
    assert_eq!(
        t.announce(&done).await.body,
        announce_body(1, 2, 0, Some(b"0:"))
    );
    // `started` and unknown events are plain announces; events are case-sensitive.
    assert_eq!(
        t.announce(&me.clone().left(0).event("started")).await.body,
        announce_body(1, 2, 0, Some(b"0:"))
    );
    assert_eq!(
        t.announce(&me.clone().left(0).event("Stopped")).await.body,
        announce_body(1, 2, 0, Some(b"0:"))
    );
    // stopped: removed, no peers key.
    assert_eq!(
        t.announce(&me.clone().left(0).event("stopped")).await.body,
        announce_body(0, 2, 0, None)
    );
    // A stranger's stop creates nothing.
    let r = t
        .announce(&peer(PASSKEY_2, HASH_3, "x", 0, 2).event("stopped"))
        .await;
    assert_eq!(r.body, announce_body(0, 2, 0, None));
    let scrape = t
        .get(&format!(
            "/{PASSKEY_1}/scrape?info_hash={}",
            escape(&unhex(HASH_3))
        ))
        .await;
    assert!(
        scrape
            .text()
            .contains("8:completei0e10:downloadedi2e10:incompletei0e"),
        "{}",
        scrape.text()
    );
    t.stop().await;
}

#[tokio::test]
async fn a_stopped_seeder_is_no_longer_handed_out() {
    let t = TestTracker::start().await;
    let seed = peer(PASSKEY_1, HASH_2, "s", 0, 1);
    t.announce(&seed).await;
    let leech = peer(PASSKEY_2, HASH_2, "l", 5, 2);
    assert_eq!(
        compact_entries(&t.announce(&leech).await.body),
        vec![compact(1, 6001)]
    );
    t.announce(&seed.clone().event("stopped")).await;
    assert_eq!(
        t.announce(&leech).await.body,
        announce_body(0, 0, 1, Some(b"0:"))
    );
    t.stop().await;
}
