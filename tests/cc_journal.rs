//! `cc journal stats` and `cc journal dump` on a journal built by hand with the
//! journal's own record and frame functions: a header, announces, a cut, a spill row,
//! a torn tail. No database.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::process::Command;

use chihaya::journal::record::{self, FRAME_HEAD, KINDS};
use chihaya::journal::segment_path;
use chihaya::tracker::{
    AnnounceDeltas, ClientId, Endpoint, Family, HistoryDelta, Peer, PeerChange, PeerId, PeerKey,
    SnatchDelta, TorrentDelta, TorrentId, TransferIp, TransferIpDelta, UserDelta, UserId,
};
use common::TempDir;

/// Runs `cc`, returning exit code, stdout and stderr.
fn cc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A segment file being written: its bytes and where each record starts.
#[derive(Default)]
struct Segment {
    file: Vec<u8>,
    offsets: Vec<usize>,
}

impl Segment {
    fn frame(&mut self, records: &[Vec<u8>]) {
        let mut at = self.file.len() + FRAME_HEAD;
        for one in records {
            self.offsets.push(at);
            at += one.len();
        }
        record::frame(&mut self.file, &records.concat());
    }
}

fn seen(seconds: u32) -> NonZeroU32 {
    NonZeroU32::new(seconds).unwrap()
}

/// A dual-stack seeder.
fn seeder() -> Peer {
    Peer {
        v4: Some(Endpoint {
            ip: Ipv4Addr::new(10, 1, 2, 3),
            port: 51413,
            seen: seen(1_700_000_100),
        }),
        v6: Some(Endpoint {
            ip: "2001:db8::7".parse().unwrap(),
            port: 6881,
            seen: seen(1_700_000_050),
        }),
        uploaded: 5000,
        downloaded: 700,
        left: 0,
        start_time: 1_699_999_000,
        client_id: ClientId(7),
        completed_over: Some(Family::V4),
    }
}

fn transfer_row(uploaded: u64) -> TransferIpDelta<()> {
    TransferIpDelta {
        user: UserId(9),
        torrent: TorrentId(31),
        client: ClientId(7),
        ip: (),
        port: 51413,
        uploaded,
        downloaded: 0,
        start_time: 1_699_999_000,
        last_announce: 1_700_000_100,
    }
}

/// Deltas of user 9 on torrent 31; with `completed` a snatch, a user row and an
/// unprune, else nothing but the torrent, history and per-IP rows.
fn deltas(completed: bool, transfer_ip: TransferIp) -> AnnounceDeltas {
    let (user, torrent) = (UserId(9), TorrentId(31));
    AnnounceDeltas {
        torrent: TorrentDelta {
            id: torrent,
            snatched: u32::from(completed),
            seeders: 1,
            leechers: 2,
            last_action: 1_700_000_100,
        },
        history: HistoryDelta {
            user,
            torrent,
            uploaded: 1000,
            downloaded: 0,
            seeding: completed,
            start_time: 1_699_999_000,
            last_announce: 1_700_000_100,
            active_time: 60,
            seed_time: 30,
            active: completed,
            snatched: u32::from(completed),
            remaining: 0,
        },
        user: completed.then_some(UserDelta {
            id: user,
            uploaded: 2000,
            downloaded: 0,
            rawup: 1000,
            rawdl: 0,
        }),
        transfer_ip,
        snatch: completed.then_some(SnatchDelta {
            user,
            torrent,
            snatched_time: 1_700_000_100,
            start_time: 1_699_999_000,
        }),
        unprune: completed.then_some(torrent),
    }
}

const PEER_ID: [u8; 20] = *b"-TR4050-abcdefghijkl";

fn announce(peer: Option<(&Peer, bool)>, evicted: &[PeerId], deltas: &AnnounceDeltas) -> Vec<u8> {
    let change = PeerChange {
        torrent: TorrentId(31),
        key: PeerKey {
            user: UserId(9),
            peer_id: PeerId(PEER_ID),
        },
        peer,
        evicted,
    };
    let mut out = Vec::new();
    record::announce(&mut out, &change, deltas);
    out
}

const SPILL_LINE: &[u8] =
    br#"{"v":1,"kind":"users","id":2,"uploaded":1024,"downloaded":0,"rawup":2048,"rawdl":0}"#;

/// Segment 4: a header (flushes at 3, users at 5), then in one frame an announce
/// that completes over IPv4, a cut of users' flush 5, a spill row, and in another the
/// peer leaving over IPv6 after evicting another; then a torn frame. Segment 6: a
/// header followed, in the same frame (its checksum matches), by bytes that are not a
/// record.
fn build(dir: &std::path::Path) -> (Segment, Segment) {
    let mut start = [3; KINDS];
    start[1] = 5;
    let mut head = Vec::new();
    record::header(&mut head, 4, 77, &start);
    let mut first = Segment::default();
    first.frame(&[head]);

    let peer = seeder();
    let v4 = TransferIp::V4(transfer_row(1000).with_ip(0x0a01_0203));
    let completed = announce(Some((&peer, true)), &[], &deltas(true, v4));
    let mut cut = Vec::new();
    record::cut(&mut cut, 1, 5);
    let mut row = Vec::new();
    record::row(&mut row, SPILL_LINE);
    first.frame(&[completed, cut, row]);

    let v6 = TransferIp::V6(transfer_row(0).with_ip(Ipv6Addr::LOCALHOST.octets()));
    let left = announce(None, &[PeerId([0xab; 20])], &deltas(false, v6));
    first.frame(&[left]);

    let mut torn = Vec::new();
    record::row(&mut torn, b"never finished");
    let whole = first.file.len();
    record::frame(&mut first.file, &torn);
    first.file.truncate(whole + 10);
    std::fs::write(segment_path(dir, 4), &first.file).unwrap();

    let mut later = [3; KINDS];
    later[1] = 6;
    let mut head = Vec::new();
    record::header(&mut head, 6, 77, &later);
    let mut second = Segment::default();
    second.frame(&[head, vec![99, 1, 2]]);
    std::fs::write(segment_path(dir, 6), &second.file).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a segment").unwrap();
    (first, second)
}

fn flush(users: u64) -> String {
    format!(
        r#"{{"torrents":3,"users":{users},"transfer_history":3,"transfer_ips":3,"transfer_ips6":3,"snatches":3,"unprune":3,"groups":3}}"#
    )
}

#[test]
fn dump_prints_every_record_as_a_json_line() {
    let dir = TempDir::new("ccjournal-dump");
    let (first, second) = build(&dir.0);
    let at = &first.offsets;
    let peer_id = "2d5452343035302d6162636465666768696a6b6c";
    let expected = [
        format!(
            r#"{{"segment":4,"type":"header","offset":{},"number":4,"database":77,"open":{}}}"#,
            at[0],
            flush(5)
        ),
        format!(
            concat!(
                r#"{{"segment":4,"type":"announce","offset":{},"torrent":31,"user":9,"peer_id":"{}","#,
                r#""peer":{{"ipv4":{{"ip":"10.1.2.3","port":51413,"last_announce":1700000100}},"#,
                r#""ipv6":{{"ip":"2001:db8::7","port":6881,"last_announce":1700000050}},"#,
                r#""uploaded":5000,"downloaded":700,"left":0,"start_time":1699999000,"client_id":7,"completed_over":"ipv4"}},"#,
                r#""seeding":true,"evicted":[],"deltas":{{"#,
                r#""torrent":{{"snatched":1,"seeders":1,"leechers":2,"last_action":1700000100}},"#,
                r#""history":{{"uploaded":1000,"downloaded":0,"seeding":true,"start_time":1699999000,"last_announce":1700000100,"active_time":60,"seed_time":30,"active":true,"snatched":1,"remaining":0}},"#,
                r#""user":{{"uploaded":2000,"downloaded":0,"rawup":1000,"rawdl":0}},"#,
                r#""transfer_ip":{{"table":"transfer_ips","ip":"10.1.2.3","client_id":7,"port":51413,"uploaded":1000,"downloaded":0,"start_time":1699999000,"last_announce":1700000100}},"#,
                r#""snatch":{{"snatched_time":1700000100,"start_time":1699999000}},"unprune":true}},"#,
                r#""flush":{}}}"#
            ),
            at[1],
            peer_id,
            flush(5)
        ),
        format!(
            r#"{{"segment":4,"type":"cut","offset":{},"table":"users","flush":5}}"#,
            at[2]
        ),
        format!(
            r#"{{"segment":4,"type":"row","offset":{},"line":{{"downloaded":0,"id":2,"kind":"users","rawdl":0,"rawup":2048,"uploaded":1024,"v":1}},"flush":{}}}"#,
            at[3],
            flush(6)
        ),
        format!(
            concat!(
                r#"{{"segment":4,"type":"announce","offset":{},"torrent":31,"user":9,"peer_id":"{}","#,
                r#""removed":true,"evicted":["{}"],"deltas":{{"#,
                r#""torrent":{{"snatched":0,"seeders":1,"leechers":2,"last_action":1700000100}},"#,
                r#""history":{{"uploaded":1000,"downloaded":0,"seeding":false,"start_time":1699999000,"last_announce":1700000100,"active_time":60,"seed_time":30,"active":false,"snatched":0,"remaining":0}},"#,
                r#""transfer_ip":{{"table":"transfer_ips6","ip":"::1","client_id":7,"port":51413,"uploaded":0,"downloaded":0,"start_time":1699999000,"last_announce":1700000100}},"#,
                r#""unprune":false}},"flush":{}}}"#
            ),
            at[4],
            peer_id,
            "ab".repeat(20),
            flush(6)
        ),
        format!(
            r#"{{"segment":4,"type":"damaged","offset":{},"bytes":10}}"#,
            first.file.len() - 10
        ),
        format!(
            r#"{{"segment":6,"type":"header","offset":{},"number":6,"database":77,"open":{}}}"#,
            second.offsets[0],
            flush(6)
        ),
        format!(
            r#"{{"segment":6,"type":"unreadable","offset":{},"bytes":3}}"#,
            second.offsets[1]
        ),
    ];
    let dir_arg = dir.0.to_str().unwrap();
    let (code, out, err) = cc(&["journal", "dump", dir_arg]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    let (code, out, err) = cc(&["journal", "dump", "--segment", "6", dir_arg]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("{}\n{}\n", expected[6], expected[7]));

    let (code, out, err) = cc(&["journal", "dump", "--segment", "5", dir_arg]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, format!("cc: {dir_arg}: no segment 5\n"));
}

#[test]
fn stats_counts_records_and_flushes_per_segment() {
    let dir = TempDir::new("ccjournal-stats");
    let (first, second) = build(&dir.0);
    let dir_arg = dir.0.to_str().unwrap();
    let (code, out, err) = cc(&["journal", "stats", "--json", dir_arg]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let good = first.file.len() - 10;
    // The announce records' bytes, on average.
    let at = &first.offsets;
    let announce_bytes = (at[2] - at[1]) + (good - at[4]);
    let average = (announce_bytes as f64 * 10.0 / 2.0).round() / 10.0;
    let bytes = first.file.len() + second.file.len();
    let expected = [
        r#"{"segments":["#.to_owned(),
        format!(
            r#"{{"segment":4,"file":"journal-00000000000000000004.log","bytes":{},"frames":3,"records":5,"headers":1,"announces":2,"cuts":1,"rows":1,"database":77,"start":{},"end":{},"damaged":{{"offset":{good},"bytes":10}},"unreadable":[]}},"#,
            first.file.len(),
            flush(5),
            flush(6)
        ),
        format!(
            r#"{{"segment":6,"file":"journal-00000000000000000006.log","bytes":{},"frames":1,"records":1,"headers":1,"announces":0,"cuts":0,"rows":0,"database":77,"start":{},"end":{},"damaged":null,"unreadable":[{{"offset":{},"bytes":3}}]}}],"#,
            second.file.len(),
            flush(6),
            flush(6),
            second.offsets[1]
        ),
        format!(
            r#""totals":{{"segments":2,"bytes":{bytes},"frames":4,"records":6,"announces":2,"cuts":1,"rows":1,"damaged_bytes":10,"unreadable_bytes":3,"bytes_per_announce":{average:?}}}}}"#
        ),
        "\n".to_owned(),
    ];
    assert_eq!(out, expected.concat());

    let (code, text, err) = cc(&["journal", "stats", dir_arg]);
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "segment 4 (journal-00000000000000000004.log)");
    assert_eq!(lines[1], "  database 77");
    assert_eq!(
        lines[2],
        format!(
            "  bytes {}, frames 3, records 5 (headers 1, announces 2, cuts 1, rows 1)",
            first.file.len()
        )
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["flush", "start", "end"]
    );
    assert_eq!(
        lines[5].split_whitespace().collect::<Vec<_>>(),
        ["users", "5", "6"]
    );
    assert_eq!(
        lines[12],
        format!("  damaged tail: 10 bytes from offset {good} (an unfinished write), ignored")
    );
    assert_eq!(lines[13], "segment 6 (journal-00000000000000000006.log)");
    assert_eq!(
        lines[25],
        format!(
            "  unreadable record at offset {}: 3 bytes of its frame skipped",
            second.offsets[1]
        )
    );
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "total: segments 2, bytes {bytes}, records 6, announces 2 ({average:.1} bytes each on average), damaged bytes 10, unreadable bytes 3"
            )
            .as_str()
        )
    );
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = TempDir::new("ccjournal-missing");
    let missing = dir.0.join("no-journal-here");
    let missing = missing.to_str().unwrap();
    for command in ["stats", "dump"] {
        let (code, out, err) = cc(&["journal", command, missing]);
        assert_eq!((code, out.as_str()), (1, ""), "{command}");
        assert_eq!(
            err,
            format!("cc: {missing}: No such file or directory (os error 2)\n"),
            "{command}"
        );
    }
    // An empty directory is a journal with no segments.
    let (code, out, _) = cc(&["journal", "stats", dir.0.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "total: segments 0, bytes 0, records 0, announces 0, damaged bytes 0, unreadable bytes 0\n"
    );
    let (code, _, err) = cc(&["journal"]);
    assert_eq!(code, 2, "{err}");
}
