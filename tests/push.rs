//! The push API (`POST /push`): a change the site pushes holds for the next announce,
//! without a reload; the next reload reconciles with the database, which stays the
//! truth, and counts what no push brought (`chihaya_push_drift_total`).

mod common;

use common::prom::parse;
use common::*;

const TOKEN: &str = "s3cret-push";
/// Reloads only when a test asks; flushes only when asked.
const PUSHING: &str = r#""intervals": {"announce_drift": 0, "database_reload_with_push": 3600, "flush": 3600}, "push_token": "s3cret-push", "admin_token": "adm""#;
const NEW_HASH: &str = "00112233445566778899AABBCCDDEEFF00112233";
const NEW_PASSKEY: &str = "PushedUserPasskey000000000000000";

async fn push(t: &TestTracker, body: &str) -> Response {
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    request_with_body(t.addr, "POST", "/push", &headers, Some(body.as_bytes())).await
}

/// Pushes `body` and expects every operation applied.
async fn pushed(t: &TestTracker, body: &str, operations: usize) {
    let response = push(t, body).await;
    assert_eq!(
        (response.status, response.text()),
        (200, format!("{{\"applied\":{operations}}}")),
        "{body}"
    );
}

async fn admin_metric(t: &TestTracker, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = get(t.addr, "/metrics", &[("Authorization", "Bearer adm")])
        .await
        .text();
    parse(&text).value(name, labels).unwrap_or(f64::NAN)
}

async fn drift(t: &TestTracker, kind: &str) -> f64 {
    admin_metric(t, "chihaya_push_drift_total", &[("type", kind)]).await
}

async fn operations(t: &TestTracker, op: &str) -> f64 {
    admin_metric(t, "chihaya_push_operations_total", &[("op", op)]).await
}

fn answered(response: &Response) -> bool {
    response.text().starts_with("d8:complete")
}

fn torrent_op(op: &str, id: u32, hash: &str) -> String {
    format!(
        r#"{{"op": "{op}", "id": {id}, "info_hash": "{hash}", "group_id": 1, "type": "anime"}}"#
    )
}

#[tokio::test]
async fn a_pushed_torrent_is_served_at_once_and_reloads_reconcile_with_the_database() {
    let t = TestTracker::with_config(PUSHING).await;
    let seed = Announce::new(PASSKEY_1, NEW_HASH, "s", 0);
    let unknown = failure_body("This torrent does not exist", 30);
    assert_eq!(t.announce(&seed).await.text(), unknown);

    // The site writes its database, then pushes: the next announce is served.
    t.db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash) \
         VALUES (4, 1, 'anime', UNHEX('{NEW_HASH}'))"
    ))
    .await;
    pushed(&t, &torrent_op("update_torrent", 4, NEW_HASH), 1).await;
    assert!(t
        .announce(&seed)
        .await
        .text()
        .starts_with("d8:completei1e10:downloadedi0e10:incompletei0e"));
    // The reload finds what was pushed: nothing drifted, and the swarm stays.
    t.tracker().reload_now().await;
    assert!(t
        .announce(&seed)
        .await
        .text()
        .starts_with("d8:completei1e10:downloadedi0e10:incompletei0e"));
    assert_eq!(drift(&t, "torrents").await, 0.0);

    // Deleted, and pushed twice: the same as once.
    t.db.exec("DELETE FROM torrents WHERE ID = 4").await;
    let delete = format!(r#"{{"op": "delete_torrent", "info_hash": "{NEW_HASH}", "id": 4}}"#);
    pushed(&t, &delete, 1).await;
    pushed(&t, &delete, 1).await;
    assert_eq!(t.announce(&seed).await.text(), unknown);
    t.tracker().reload_now().await;
    assert_eq!(t.announce(&seed).await.text(), unknown);
    assert_eq!(drift(&t, "torrents").await, 0.0);

    // A torrent the site added without pushing shows at the reload, which counts it;
    // a push the database never had is undone by the reload, and counted too.
    const UNPUSHED: &str = "5555555555555555555555555555555555555555";
    const NEVER_WRITTEN: &str = "6666666666666666666666666666666666666666";
    t.db.exec(&format!(
        "INSERT INTO torrents (ID, GroupID, TorrentType, info_hash) \
         VALUES (5, 1, 'anime', UNHEX('{UNPUSHED}'))"
    ))
    .await;
    pushed(&t, &torrent_op("update_torrent", 6, NEVER_WRITTEN), 1).await;
    let lost = Announce::new(PASSKEY_1, NEVER_WRITTEN, "s", 0);
    let unpushed = Announce::new(PASSKEY_1, UNPUSHED, "s", 0);
    assert!(answered(&t.announce(&lost).await));
    assert_eq!(t.announce(&unpushed).await.text(), unknown);
    t.tracker().reload_now().await;
    assert_eq!(t.announce(&lost).await.text(), unknown);
    assert!(answered(&t.announce(&unpushed).await));
    assert_eq!(drift(&t, "torrents").await, 2.0);
    assert_eq!(operations(&t, "update_torrent").await, 2.0);
    t.stop().await;
}

#[tokio::test]
async fn pushed_users_passkeys_and_hit_and_runs_hold_for_the_next_announce() {
    let t = TestTracker::with_config(PUSHING).await;
    let invalid = failure_body("Your passkey is invalid", 3600);
    let new = Announce::new(NEW_PASSKEY, HASH_3, "n", 0);
    assert_eq!(t.announce(&new).await.text(), invalid);
    t.db.exec(&format!(
        "INSERT INTO users_main (ID, torrent_pass, Enabled) VALUES (4, '{NEW_PASSKEY}', '1')"
    ))
    .await;
    let add = format!(r#"{{"op": "update_user", "id": 4, "passkey": "{NEW_PASSKEY}"}}"#);
    pushed(&t, &add, 1).await;
    assert!(answered(&t.announce(&new).await));

    // A new passkey: the old one stops at once. Sent again, it changes nothing.
    const CHANGED: &str = "ChangedPasskey000000000000000000";
    t.db.exec(&format!(
        "UPDATE users_main SET torrent_pass = '{CHANGED}' WHERE ID = 4"
    ))
    .await;
    let change = format!(
        r#"{{"op": "change_passkey", "old_passkey": "{NEW_PASSKEY}", "new_passkey": "{CHANGED}"}}"#
    );
    pushed(&t, &change, 1).await;
    pushed(&t, &change, 1).await;
    assert_eq!(t.announce(&new).await.text(), invalid);
    let changed = Announce::new(CHANGED, HASH_3, "n", 0);
    assert!(answered(&t.announce(&changed).await));
    // A passkey no user has cannot be changed.
    let stranger = r#"{"op": "change_passkey", "old_passkey": "nobody", "new_passkey": "x"}"#;
    let response = push(&t, stranger).await;
    assert_eq!(
        (response.status, response.text()),
        (
            409,
            r#"{"error":"no enabled user has this passkey","field":"old_passkey"}"#.to_owned()
        )
    );

    // User 1 is disabled.
    t.db.exec("UPDATE users_main SET Enabled = '0' WHERE ID = 1")
        .await;
    pushed(
        &t,
        &format!(r#"{{"op": "disable_user", "passkey": "{PASSKEY_1}"}}"#),
        1,
    )
    .await;
    let one = Announce::new(PASSKEY_1, HASH_3, "o", 0);
    assert_eq!(t.announce(&one).await.text(), invalid);

    // User 2 may not download, except a hit-and-run it repairs.
    let leech = Announce::new(PASSKEY_2, HASH_3, "l", 5);
    let disabled = failure_body("Your download privileges are disabled", 3600);
    assert_eq!(t.announce(&leech).await.text(), disabled);
    let mark = r#"{"op": "mark_hit_and_run", "user_id": 2, "torrent_id": 3}"#;
    pushed(&t, mark, 1).await;
    assert!(answered(&t.announce(&leech).await));

    // The reload agrees on the users; the hit-and-run never reached the database,
    // so the reload takes it back and counts it.
    t.tracker().reload_now().await;
    assert_eq!(t.announce(&new).await.text(), invalid);
    assert!(answered(&t.announce(&changed).await));
    assert_eq!(t.announce(&one).await.text(), invalid);
    assert_eq!(t.announce(&leech).await.text(), disabled);
    assert_eq!(drift(&t, "users").await, 0.0);
    assert_eq!(drift(&t, "hit_and_runs").await, 1.0);
    t.stop().await;
}

#[tokio::test]
async fn pushed_clients_and_global_freeleech_apply_to_the_next_announce() {
    let t = TestTracker::with_config(PUSHING).await;
    let mut other = Announce::new(PASSKEY_1, HASH_3, "x", 0);
    other.peer_id = *b"-XX1000-000000000001";
    let refused = t.announce(&other).await.text();
    assert!(refused.contains("Your client is not approved"), "{refused}");
    pushed(
        &t,
        r#"{"op": "approve_client", "id": 9, "peer_id": "-XX1"}"#,
        1,
    )
    .await;
    assert!(answered(&t.announce(&other).await));
    // Both in one request: -XX1 goes again, and so does -TR2 (client 1).
    pushed(
        &t,
        r#"[{"op": "remove_client", "id": 9}, {"op": "remove_client", "id": 1}]"#,
        2,
    )
    .await;
    assert_eq!(t.announce(&other).await.text(), refused);
    let transmission = Announce::new(PASSKEY_1, HASH_3, "t", 0);
    assert!(!answered(&t.announce(&transmission).await));
    // The database still approves -TR2: the reload brings it back, and counts it.
    t.tracker().reload_now().await;
    assert!(answered(&t.announce(&transmission).await));
    assert_eq!(drift(&t, "clients").await, 1.0);

    // Global freeleech on: downloads are not credited, raw ones still are.
    let leech = Announce::new(PASSKEY_1, HASH_2, "l", 100);
    assert!(answered(&t.announce(&leech).await));
    pushed(&t, r#"{"op": "set_global_freeleech", "on": true}"#, 1).await;
    assert!(answered(
        &t.announce(&leech.clone().transfer(0, 1000)).await
    ));
    pushed(&t, r#"{"op": "set_global_freeleech", "on": false}"#, 1).await;
    assert!(answered(
        &t.announce(&leech.clone().transfer(0, 3000)).await
    ));
    t.flush().await;
    // The last 2,000 bytes count twice (torrent 2 downloads at ×2).
    assert_eq!(
        t.db.rows("SELECT Downloaded, rawdl FROM users_main WHERE ID = 1")
            .await,
        [["4000", "3000"]]
    );
    t.stop().await;
}

#[tokio::test]
async fn a_refused_push_names_its_field_and_changes_nothing() {
    let t = TestTracker::with_config(PUSHING).await;
    let seed = Announce::new(PASSKEY_1, NEW_HASH, "s", 0);
    let unknown = failure_body("This torrent does not exist", 30);

    // The first operation is good, the second is not: neither is made.
    let body = format!(
        r#"[{}, {{"op": "delete_torrent", "info_hash": "xyz"}}]"#,
        torrent_op("update_torrent", 4, NEW_HASH)
    );
    let response = push(&t, &body).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(
        response.text(),
        r#"{"error":"must be 40 hexadecimal digits (got \"xyz\")","field":"[1].info_hash"}"#
    );
    assert_eq!(t.announce(&seed).await.text(), unknown);

    let wrong = request_with_body(
        t.addr,
        "POST",
        "/push",
        &[("Authorization", "Bearer s3cret-pusH")],
        Some(torrent_op("update_torrent", 4, NEW_HASH).as_bytes()),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.text()),
        (
            401,
            r#"{"error":"missing or wrong bearer token"}"#.to_owned()
        )
    );
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    assert_eq!(t.announce(&seed).await.text(), unknown);

    let get = get(t.addr, "/push", &[]).await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    assert_eq!(
        admin_metric(&t, "chihaya_push_refused_total", &[]).await,
        2.0
    );
    assert_eq!(operations(&t, "update_torrent").await, 0.0);
    t.stop().await;

    // Without a token the API is not there.
    let t = TestTracker::start().await;
    let response = push(&t, &torrent_op("update_torrent", 4, NEW_HASH)).await;
    assert_eq!(response.status, 404);
    t.stop().await;
}
