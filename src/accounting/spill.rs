//! The spill file (SPEC §9): rows the database did not take, one JSON object per line,
//! appended and synced, replayed into the sink at the next start.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `seeding`/`active` are written as 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(pub bool);

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(u8::from(self.0))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u8::deserialize(deserializer)? {
            0 => Ok(Flag(false)),
            1 => Ok(Flag(true)),
            other => Err(serde::de::Error::custom(format!(
                "expected 0 or 1, got {other}"
            ))),
        }
    }
}

/// One unwritten row; the field names are the database's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpillRow {
    Torrents {
        id: u32,
        snatched: u32,
        seeders: u32,
        leechers: u32,
        last_action: i64,
    },
    Users {
        id: u32,
        uploaded: u64,
        downloaded: u64,
        rawup: u64,
        rawdl: u64,
    },
    TransferHistory {
        uid: u32,
        fid: u32,
        uploaded: u64,
        downloaded: u64,
        seeding: Flag,
        starttime: i64,
        last_announce: i64,
        activetime: i64,
        seedtime: i64,
        active: Flag,
        snatched: u32,
        remaining: u64,
    },
    TransferIps {
        uid: u32,
        fid: u32,
        client_id: u32,
        ip: u32,
        port: u16,
        uploaded: u64,
        downloaded: u64,
        starttime: i64,
        last_announce: i64,
    },
    TransferIps6 {
        uid: u32,
        fid: u32,
        client_id: u32,
        /// The address as text (RFC 5952).
        ip: std::net::Ipv6Addr,
        port: u16,
        uploaded: u64,
        downloaded: u64,
        starttime: i64,
        last_announce: i64,
    },
    Snatches {
        uid: u32,
        fid: u32,
        snatched_time: i64,
        starttime: i64,
    },
    Unprune {
        id: u32,
    },
    Groups {
        torrent_id: u32,
    },
}

/// A line of the file: version, row, and why the database refused it (if it did).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpillLine {
    pub v: u32,
    #[serde(flatten)]
    pub row: SpillRow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SpillLine {
    pub const VERSION: u32 = 1;

    pub fn new(row: SpillRow, error: Option<String>) -> SpillLine {
        SpillLine {
            v: Self::VERSION,
            row,
            error,
        }
    }
}

impl SpillRow {
    /// The table the row goes to.
    pub fn kind(&self) -> super::Kind {
        use super::Kind;
        match self {
            SpillRow::Torrents { .. } => Kind::Torrents,
            SpillRow::Users { .. } => Kind::Users,
            SpillRow::TransferHistory { .. } => Kind::TransferHistory,
            SpillRow::TransferIps { .. } => Kind::TransferIps,
            SpillRow::TransferIps6 { .. } => Kind::TransferIps6,
            SpillRow::Snatches { .. } => Kind::Snatches,
            SpillRow::Unprune { .. } => Kind::Unprune,
            SpillRow::Groups { .. } => Kind::Groups,
        }
    }
}

/// The spill file; appends are serialized so lines never interleave.
pub struct Spill {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Spill {
    pub fn new(path: PathBuf) -> Spill {
        Spill {
            path,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` and syncs them to disk before returning.
    pub fn append(&self, lines: &[SpillLine]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = Vec::with_capacity(lines.len() * 160);
        for line in lines {
            serde_json::to_writer(&mut text, line)?;
            text.push(b'\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // User ids with their addresses: readable by the tracker's user only.
        let mut file = crate::cache::file::open_private(
            &self.path,
            OpenOptions::new().create(true).append(true),
        )?;
        file.write_all(&text)?;
        file.sync_data()
    }
}

/// A spill file that cannot be replayed.
#[derive(Debug)]
pub struct ReplayError {
    pub path: PathBuf,
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spill file {} line {}: {}",
            self.path.display(),
            self.line,
            self.problem
        )
    }
}

impl std::error::Error for ReplayError {}

/// What reading a spill file gave.
#[derive(Debug, Default)]
pub struct Replayed {
    pub lines: Vec<SpillLine>,
    /// A last line without its newline that did not parse (cut off by a crash).
    pub torn_tail: Option<usize>,
}

/// Parses a spill file's content. Blank lines are skipped; a bad line is an error,
/// except an unterminated last line, which a crash mid-write can leave behind.
pub fn parse(path: &Path, text: &[u8]) -> Result<Replayed, ReplayError> {
    let mut replayed = Replayed::default();
    // Without the final newline there is no empty piece after it to skip. The lines
    // are walked, not collected: a slice per line would cost 16 bytes for each byte
    // of a file of blank lines.
    let (body, terminated) = match text.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (text, false),
    };
    let mut lines = body.split(|&b| b == b'\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let number = index + 1;
        let last = lines.peek().is_none();
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<SpillLine>(raw) {
            Ok(line) if line.v == SpillLine::VERSION => replayed.lines.push(line),
            Ok(line) => {
                return Err(ReplayError {
                    path: path.to_owned(),
                    line: number,
                    problem: format!("unsupported version {}", line.v),
                })
            }
            Err(_) if !terminated && last => replayed.torn_tail = Some(number),
            Err(e) => {
                return Err(ReplayError {
                    path: path.to_owned(),
                    line: number,
                    problem: e.to_string(),
                })
            }
        }
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let line = SpillLine::new(
            SpillRow::Users {
                id: 2,
                uploaded: 1024,
                downloaded: 0,
                rawup: 2048,
                rawdl: 0,
            },
            None,
        );
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"v":1,"kind":"users","id":2,"uploaded":1024,"downloaded":0,"rawup":2048,"rawdl":0}"#
        );
        let history = SpillLine::new(
            SpillRow::TransferHistory {
                uid: 1,
                fid: 2,
                uploaded: 3,
                downloaded: 4,
                seeding: Flag(true),
                starttime: 5,
                last_announce: 6,
                activetime: 7,
                seedtime: 8,
                active: Flag(false),
                snatched: 9,
                remaining: 10,
            },
            Some("SQL error 1264: out of range".to_owned()),
        );
        let text = serde_json::to_string(&history).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"kind":"transfer_history","uid":1,"fid":2,"uploaded":3,"downloaded":4,"seeding":1,"starttime":5,"last_announce":6,"activetime":7,"seedtime":8,"active":0,"snatched":9,"remaining":10,"error":"SQL error 1264: out of range"}"#
        );
        assert_eq!(serde_json::from_str::<SpillLine>(&text).unwrap(), history);
        let ipv6 = SpillLine::new(
            SpillRow::TransferIps6 {
                uid: 1,
                fid: 2,
                client_id: 3,
                ip: "2a00:1450::1".parse().unwrap(),
                port: 6881,
                uploaded: 4,
                downloaded: 5,
                starttime: 6,
                last_announce: 7,
            },
            None,
        );
        let text = serde_json::to_string(&ipv6).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"kind":"transfer_ips6","uid":1,"fid":2,"client_id":3,"ip":"2a00:1450::1","port":6881,"uploaded":4,"downloaded":5,"starttime":6,"last_announce":7}"#
        );
        assert_eq!(serde_json::from_str::<SpillLine>(&text).unwrap(), ipv6);
    }

    #[test]
    fn parsing_tolerates_only_a_torn_last_line() {
        let path = Path::new("spill.jsonl");
        let good = br#"{"v":1,"kind":"unprune","id":1}"#;
        let mut text = good.to_vec();
        text.extend_from_slice(b"\n\n");
        text.extend_from_slice(br#"{"v":1,"kind":"groups","torrent_id":7}"#);
        text.extend_from_slice(b"\n{\"v\":1,\"kind\":\"us");
        let replayed = parse(path, &text).unwrap();
        assert_eq!(replayed.lines.len(), 2);
        assert_eq!(replayed.torn_tail, Some(4));

        let bad =
            b"{\"v\":1,\"kind\":\"users\",\"id\":1}\n{\"v\":1,\"kind\":\"unprune\",\"id\":1}\n";
        let error = parse(path, bad).unwrap_err();
        assert_eq!(error.line, 1);
        assert!(
            error
                .to_string()
                .starts_with("spill file spill.jsonl line 1: "),
            "{error}"
        );
        let flag = br#"{"v":1,"kind":"transfer_history","uid":1,"fid":2,"uploaded":3,"downloaded":4,"seeding":2,"starttime":5,"last_announce":6,"activetime":7,"seedtime":8,"active":0,"snatched":9,"remaining":10}"#;
        let mut flag = flag.to_vec();
        flag.push(b'\n');
        assert!(parse(path, &flag).is_err());
        let version = b"{\"v\":2,\"kind\":\"unprune\",\"id\":1}\n";
        assert_eq!(
            parse(path, version).unwrap_err().problem,
            "unsupported version 2"
        );
        // A terminated last line must parse.
        assert!(parse(path, b"{\"v\":1,\"kind\":\"us\n").is_err());
    }

    /// Lines are counted as they are walked (once collected into a `Vec` of slices, 16
    /// bytes per blank line): the numbers and the torn tail stay as they were.
    #[test]
    fn many_blank_lines() {
        let path = Path::new("spill.jsonl");
        let blank = vec![b'\n'; 100_000];
        let replayed = parse(path, &blank).unwrap();
        assert!(replayed.lines.is_empty());
        assert_eq!(replayed.torn_tail, None);

        let mut bad = blank.clone();
        bad.extend_from_slice(b"x\n");
        let error = parse(path, &bad).unwrap_err();
        assert_eq!(
            (error.line, error.problem.as_str()),
            (100_001, "expected value at line 1 column 1")
        );

        let mut torn = blank;
        torn.extend_from_slice(b"{\"v\":1,\"kind\":\"unprune\",\"id\":1}\n \n{\"v\"");
        let replayed = parse(path, &torn).unwrap();
        assert_eq!(replayed.lines.len(), 1);
        assert_eq!(replayed.torn_tail, Some(100_003));
        assert_eq!(parse(path, b"").unwrap().torn_tail, None);
        assert_eq!(parse(path, b"\n\n").unwrap().torn_tail, None);
    }
}
