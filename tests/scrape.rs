//! Scrape (SPEC §6).

mod common;

use common::*;

fn hashes(list: &[&str]) -> String {
    list.iter()
        .map(|h| format!("info_hash={}", escape(&unhex(h))))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn counts_sorted_deduplicated_and_pruned_shown() {
    let t = TestTracker::start().await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "s", 0)).await;
    t.announce(&Announce::new(PASSKEY_2, HASH_2, "l", 9)).await;
    let r = t
        .get(&format!(
            "/{PASSKEY_1}/scrape?{}&info_hash=tooshort&info_hash={}",
            hashes(&[HASH_3, HASH_1, HASH_2, HASH_3]),
            escape(&[0u8; 20])
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // Sorted by raw hash bytes: 16A8… < 59FC… < 72EF…; unknown hash left out.
    let want = scrape_body(&[
        scrape_entry(&unhex(HASH_2), 0, 0, 1),
        scrape_entry(&unhex(HASH_3), 1, 0, 0),
        scrape_entry(&unhex(HASH_1), 0, 2, 0),
    ]);
    assert_eq!(r.body, want, "{}", r.text());
    t.stop().await;
}

#[tokio::test]
async fn download_disabled_users_see_only_their_hit_and_runs() {
    let t = TestTracker::start().await;
    let r = t
        .get(&format!(
            "/{PASSKEY_2}/scrape?{}",
            hashes(&[HASH_1, HASH_2, HASH_3])
        ))
        .await;
    assert_eq!(
        r.body,
        scrape_body(&[scrape_entry(&unhex(HASH_2), 0, 0, 0)])
    );
    t.stop().await;
}

#[tokio::test]
async fn without_hashes_and_with_too_many() {
    let t = TestTracker::start().await;
    let r = t.get(&format!("/{PASSKEY_1}/scrape")).await;
    assert_eq!(
        r.text(),
        "d14:failure reason41:Scrape without info_hash is not supported5:filesde5:flagsd20:min_request_intervali900ee8:intervali900e12:min intervali900ee"
    );
    // Only unknown hashes: an empty files dict, no failure.
    let r = t
        .get(&format!(
            "/{PASSKEY_1}/scrape?info_hash={}",
            escape(&[1u8; 20])
        ))
        .await;
    assert_eq!(r.body, scrape_body(&[]));
    let hundred = vec![HASH_3; 100];
    let r = t
        .get(&format!("/{PASSKEY_1}/scrape?{}", hashes(&hundred)))
        .await;
    assert_eq!(
        r.body,
        scrape_body(&[scrape_entry(&unhex(HASH_3), 0, 0, 0)])
    );
    let hundred_one = vec![HASH_3; 101];
    let r = t
        .get(&format!("/{PASSKEY_1}/scrape?{}", hashes(&hundred_one)))
        .await;
    assert_eq!(
        r.text(),
        failure_body(
            "Malformed request - too many info_hash values provided",
            3600
        )
    );
    let r = t.get(&format!("/{PASSKEY_1}/scrape?info_hash=%g0")).await;
    assert_eq!(
        r.text(),
        failure_body("Malformed request - invalid query string", 3600)
    );
    let r = t
        .get(&format!("/{PASSKEY_1}/scrape?{}", "a".repeat(8193)))
        .await;
    assert_eq!(
        r.text(),
        failure_body("Malformed request - query string too long", 3600)
    );
    t.stop().await;
}

#[tokio::test]
async fn scrape_interval_follows_config() {
    let t = TestTracker::with_config(r#""intervals": {"scrape": 60}"#).await;
    let r = t
        .get(&format!("/{PASSKEY_1}/scrape?{}", hashes(&[HASH_3])))
        .await;
    assert!(r
        .text()
        .ends_with("5:flagsd20:min_request_intervali60ee8:intervali60e12:min intervali60ee"));
    t.stop().await;
}
