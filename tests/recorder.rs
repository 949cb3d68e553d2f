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

#[tokio::test]
async fn cc_events_totals_a_recording_and_flags_a_planted_cheat() {
    let t = TestTracker::with_config(r#""record": true"#).await;
    // Honest: user 1 seeds torrent 2 to user 2.
    let leech = Announce::new(PASSKEY_2, HASH_2, "l", 1000);
    let seed = Announce::new(PASSKEY_1, HASH_2, "s", 0);
    t.announce(&leech).await;
    t.announce(&seed).await;
    t.announce(&seed.clone().transfer(100, 0)).await;
    t.announce(&leech.clone().transfer(0, 100).left(900)).await;
    // Cheat: user 1 reports upload on torrent 3, which nobody else leeches.
    let fake = Announce::new(PASSKEY_1, HASH_3, "f", 0);
    t.announce(&fake).await;
    t.announce(&fake.clone().transfer(5000, 0)).await;
    let (_, dir) = t.stop_keeping_files().await;
    let events = dir.0.join("events");
    let files: Vec<String> = std::fs::read_dir(&events)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["events".to_owned(), "--json".to_owned()];
    args.extend(files.iter().cloned());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cc"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["users"],
        serde_json::json!([
            {"id": 1, "announces": 4, "uploaded": 5100, "downloaded": 0},
            {"id": 2, "announces": 2, "uploaded": 0, "downloaded": 100},
        ])
    );
    assert_eq!(
        report["torrents"],
        serde_json::json!([
            {"id": 2, "announces": 4, "uploaded": 100, "downloaded": 100},
            {"id": 3, "announces": 2, "uploaded": 5000, "downloaded": 0},
        ])
    );
    let flags = report["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0]["kind"], "upload_without_leechers");
    assert_eq!(
        (flags[0]["user"].as_u64(), flags[0]["torrent"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(flags[0]["uploaded"], 5000);

    // A rate threshold of 1 byte/s flags user 1's hour as well; the table form names both.
    let mut args = vec!["events".to_owned(), "--max-rate".to_owned(), "1".to_owned()];
    args.extend(files);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cc"))
        .args(&args)
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("USERS\n"), "{table}");
    assert!(table.contains("FLAGS (2)"), "{table}");
    assert!(table.contains("upload_rate user 1 hour "), "{table}");
}

#[test]
fn cc_events_refuses_a_bad_line_naming_it() {
    let dir = TempDir::new("badevents");
    let path = dir.0.join("events_2026-11-23T13.json");
    std::fs::write(&path, "[1,2,\"1.2.3.4\",1,\"\",0,0,0,0,0,0]\nnot json\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cc"))
        .args(["events", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("cc: {}: line 2: ", path.display())),
        "{err}"
    );
}
