//! The announce recorder through the real server (SPEC §12).

mod common;

use common::*;

fn lines(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == "events_2026-11-23T13.json".len()
                && name.starts_with("events_20")
                && name.ends_with(".json"),
            "{name}"
        );
    }
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn every_successful_announce_becomes_one_exact_line() {
    let t = TestTracker::with_config(r#""record": true"#).await;
    let a = Announce::new(PASSKEY_1, HASH_3, "a", 100)
        .port(6881)
        .extra("&ip=1.2.3.4");
    t.announce(&a.clone().event("started")).await;
    t.announce(&a.clone().transfer(10, 50).left(50)).await;
    t.announce(&a.clone().transfer(10, 100).left(0).event("completed"))
        .await;
    t.announce(&Announce::new(PASSKEY_1, HASH_1, "x", 5)).await; // refused: not recorded
    t.announce(
        &a.clone()
            .transfer(10, 100)
            .left(0)
            .event("%22%5D%2C%5B1%5C%FF"),
    )
    .await;
    t.announce(&a.clone().transfer(10, 100).left(0).event("stopped"))
        .await;
    // TrackerHide hides nothing from the recorder.
    t.announce(
        &Announce::new(PASSKEY_2, HASH_2, "b", 7)
            .port(7000)
            .extra("&ip=5.6.7.8"),
    )
    .await;
    let (_, dir) = t.stop_keeping_files().await;
    let events = dir.0.join("events");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&events).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o700, 0o700);
    assert_eq!(
        lines(&events),
        [
            r#"[3,1,"1.2.3.4",6881,"started",0,0,0,0,0,100]"#,
            r#"[3,1,"1.2.3.4",6881,"",0,10,50,10,50,50]"#,
            r#"[3,1,"1.2.3.4",6881,"completed",1,0,50,10,100,0]"#,
            "[3,1,\"1.2.3.4\",6881,\"\\\"],[1\\\\\u{fffd}\",1,0,0,10,100,0]",
            r#"[3,1,"1.2.3.4",6881,"stopped",1,0,0,10,100,0]"#,
            r#"[2,2,"5.6.7.8",7000,"",0,0,0,0,0,7]"#,
        ]
    );
}

#[tokio::test]
async fn a_restart_appends() {
    let t = TestTracker::with_config(r#""record": true"#).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await;
    let (db, dir) = t.stop_keeping_files().await;
    let t = TestTracker::on_in(db, r#""record": true"#, dir).await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "b", 0)).await;
    let (_, dir) = t.stop_keeping_files().await;
    assert_eq!(lines(&dir.0.join("events")).len(), 2);
}

#[tokio::test]
async fn without_record_nothing_is_written() {
    let t = TestTracker::start().await;
    t.announce(&Announce::new(PASSKEY_1, HASH_3, "a", 0)).await;
    let (_, dir) = t.stop_keeping_files().await;
    assert!(!dir.0.join("events").exists());
}
