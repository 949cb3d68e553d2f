//! The announce recorder (SPEC §12): one JSON array per successful announce, appended
//! to an hourly file by a background thread. An announce only hands its event over
//! (never waiting); when the buffer is full, or the disk refuses, the event is dropped
//! and counted.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::IntCounter;

use crate::log::Throttle;

pub mod analysis;

/// Lines the writer may be behind before announces' events are dropped.
pub const BUFFER_LINES: usize = 65_536;

/// One successful announce, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unix seconds of the announce; picks the hourly file.
    pub at: i64,
    pub torrent: u32,
    pub user: u32,
    pub ip: IpAddr,
    pub port: u16,
    /// The raw `event` parameter (empty when absent).
    pub event: Vec<u8>,
    pub seeding: bool,
    pub delta_up: u64,
    pub delta_down: u64,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// [`NOT_CREDITED_UP`] and [`NOT_CREDITED_DOWN`]: which deltas were too large to be
    /// real and were not credited (0 for nearly every announce).
    pub flags: u8,
}

/// `flags` bit: the upload delta was implausible and not credited.
pub const NOT_CREDITED_UP: u8 = 1;
/// `flags` bit: the download delta was implausible and not credited.
pub const NOT_CREDITED_DOWN: u8 = 2;

/// Appends `[torrentId,userId,"ipAddr",port,"event",seeding,deltaUp,deltaDown,up,down,left]`
/// and a newline; the event text is JSON-escaped, invalid UTF-8 replaced by U+FFFD.
/// Non-zero `flags` follow `left` as a twelfth element; the deltas are always what the
/// client reported, credited or not.
pub fn format_line(event: &Event, out: &mut Vec<u8>) {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(96);
    let text = String::from_utf8_lossy(&event.event);
    // Escaping a string into a String cannot fail.
    let escaped = serde_json::to_string(&text).unwrap_or_else(|_| "\"\"".to_owned());
    let _ = writeln!(
        line,
        "[{},{},\"{}\",{},{},{},{},{},{},{},{}]",
        event.torrent,
        event.user,
        event.ip,
        event.port,
        escaped,
        u8::from(event.seeding),
        event.delta_up,
        event.delta_down,
        event.uploaded,
        event.downloaded,
        event.left
    );
    if event.flags != 0 {
        // Before the "]\n" just written.
        line.truncate(line.len() - 2);
        let _ = writeln!(line, ",{}]", event.flags);
    }
    out.extend_from_slice(line.as_bytes());
}

/// `events_YYYY-MM-DDTHH.json` for the UTC date and hour of `at`.
pub fn file_name(at: i64) -> String {
    let time = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
    format!("events_{}.json", time.format("%Y-%m-%dT%H"))
}

/// Creates the events directory (mode 0755) if needed.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

enum Message {
    Event(Event),
    Close,
}

/// The handle announces record through.
pub struct Recorder {
    sender: SyncSender<Message>,
    dropped: IntCounter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Starts the writer thread for `dir` with a buffer of `capacity` lines.
    pub fn start(dir: PathBuf, capacity: usize, dropped: IntCounter) -> std::io::Result<Recorder> {
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let mut writer = Writer::new(dir, dropped.clone());
        let thread = std::thread::Builder::new()
            .name("recorder".to_owned())
            .spawn(move || writer.run(receiver))?;
        Ok(Recorder {
            sender,
            dropped,
            writer: Mutex::new(Some(thread)),
        })
    }

    /// Hands an event to the writer; drops and counts it if the buffer is full.
    pub fn record(&self, event: Event) {
        match self.sender.try_send(Message::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// Writes what is buffered, flushes and stops the writer (SPEC §9 step 2).
    pub fn close(&self) {
        let thread = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // Waits for room if the buffer is full: everything before is written first.
            let _ = self.sender.send(Message::Close);
            let _ = thread.join();
        }
    }
}

/// The background side: the open hourly file and the error log throttle.
struct Writer {
    dir: PathBuf,
    file: Option<(String, BufWriter<File>)>,
    dropped: IntCounter,
    errors_log: Throttle,
    line: Vec<u8>,
}

impl Writer {
    fn new(dir: PathBuf, dropped: IntCounter) -> Writer {
        Writer {
            dir,
            file: None,
            dropped,
            errors_log: Throttle::new(Duration::from_secs(60)),
            line: Vec::with_capacity(128),
        }
    }

    fn run(&mut self, receiver: Receiver<Message>) {
        let mut last_flush = Instant::now();
        loop {
            match receiver.recv_timeout(Duration::from_secs(1)) {
                Ok(Message::Event(event)) => self.write(&event),
                Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if last_flush.elapsed() >= Duration::from_secs(1) {
                self.flush();
                last_flush = Instant::now();
            }
        }
    }

    fn write(&mut self, event: &Event) {
        let name = file_name(event.at);
        if self.file.as_ref().map(|(open, _)| open) != Some(&name) {
            self.flush();
            self.file = None;
            let path = self.dir.join(&name);
            match OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(file) => self.file = Some((name, BufWriter::with_capacity(64 * 1024, file))),
                Err(e) => {
                    self.fail(&format!(
                        "Cannot open recorder file {}: {}",
                        path.display(),
                        e
                    ));
                    return;
                }
            }
        }
        self.line.clear();
        format_line(event, &mut self.line);
        if let Some((name, file)) = &mut self.file {
            if let Err(e) = file.write_all(&self.line) {
                let message = format!(
                    "Cannot write recorder file {}: {}",
                    self.dir.join(name.as_str()).display(),
                    e
                );
                // Reopened with the next line.
                self.file = None;
                self.fail(&message);
            }
        }
    }

    fn flush(&mut self) {
        if let Some((name, file)) = &mut self.file {
            if let Err(e) = file.flush() {
                let message = format!(
                    "Cannot write recorder file {}: {}",
                    self.dir.join(name.as_str()).display(),
                    e
                );
                self.file = None;
                self.log_error(&message);
            }
        }
    }

    /// The line is lost: count it and say so, at most once a minute.
    fn fail(&mut self, message: &str) {
        self.dropped.inc();
        self.log_error(message);
    }

    fn log_error(&mut self, message: &str) {
        if self.errors_log.hit(Instant::now()).is_some() {
            tracing::error!("{}", message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: i64, name: &[u8]) -> Event {
        Event {
            at,
            torrent: 1,
            user: 2,
            ip: "1.2.3.4".parse().unwrap(),
            port: 51413,
            event: name.to_vec(),
            seeding: true,
            delta_up: 0,
            delta_down: 1024,
            uploaded: 2048,
            downloaded: 1024,
            left: 0,
            flags: 0,
        }
    }

    fn line(event: &Event) -> String {
        let mut out = Vec::new();
        format_line(event, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn counter() -> IntCounter {
        IntCounter::new("dropped", "test").unwrap()
    }

    #[test]
    fn the_line_format() {
        assert_eq!(
            line(&event(0, b"completed")),
            "[1,2,\"1.2.3.4\",51413,\"completed\",1,0,1024,2048,1024,0]\n"
        );
        assert_eq!(
            line(&event(0, b"")),
            "[1,2,\"1.2.3.4\",51413,\"\",1,0,1024,2048,1024,0]\n"
        );
        // A delta not credited: the flags follow as a twelfth element.
        let flagged = Event {
            flags: NOT_CREDITED_UP | NOT_CREDITED_DOWN,
            ..event(0, b"")
        };
        assert_eq!(
            line(&flagged),
            "[1,2,\"1.2.3.4\",51413,\"\",1,0,1024,2048,1024,0,3]\n"
        );
        let parsed = analysis::parse_line(line(&flagged).trim_end()).unwrap();
        assert_eq!((parsed.flags, parsed.delta_down), (3, 1024));
    }

    #[test]
    fn hostile_events_stay_valid_json() {
        for hostile in [
            &b"\"],[1"[..],
            b"\\",
            b"a\nb\tc\x00\x1f",
            b"\xff\xfe",
            b"\xe2\x82",
            "日本".as_bytes(),
        ] {
            let text = line(&event(0, hostile));
            let parsed: serde_json::Value =
                serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{text}: {e}"));
            let array = parsed.as_array().unwrap();
            assert_eq!(array.len(), 11);
            assert_eq!(array[4].as_str().unwrap(), String::from_utf8_lossy(hostile));
        }
    }

    #[test]
    fn files_are_named_by_utc_date_and_hour() {
        assert_eq!(file_name(0), "events_1970-01-01T00.json");
        assert_eq!(file_name(1_700_000_000), "events_2023-11-14T22.json");
        assert_eq!(file_name(1_700_002_799), "events_2023-11-14T22.json");
        assert_eq!(file_name(1_700_002_800), "events_2023-11-14T23.json");
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chihaya-record-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn rotation_across_an_hour_and_appending_after_a_restart() {
        let dir = temp_dir("rotate");
        let dropped = counter();
        let mut writer = Writer::new(dir.clone(), dropped.clone());
        writer.write(&event(1_700_002_799, b"started"));
        writer.write(&event(1_700_002_800, b""));
        writer.flush();
        drop(writer);
        // A restart appends to the file of its hour.
        let mut writer = Writer::new(dir.clone(), dropped.clone());
        writer.write(&event(1_700_002_801, b"stopped"));
        writer.flush();
        let first = std::fs::read_to_string(dir.join("events_2023-11-14T22.json")).unwrap();
        let second = std::fs::read_to_string(dir.join("events_2023-11-14T23.json")).unwrap();
        assert_eq!(first.lines().count(), 1);
        assert!(first.contains("\"started\""));
        assert_eq!(second.lines().count(), 2);
        assert!(second.ends_with("\"stopped\",1,0,1024,2048,1024,0]\n"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("events_2023-11-14T22.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644 & !umask());
        assert_eq!(dropped.get(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// The process umask, which narrows the 0644 asked for.
    fn umask() -> u32 {
        let probe = std::env::temp_dir().join(format!("chihaya-umask-{}", std::process::id()));
        let _ = std::fs::remove_file(&probe);
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o777)
            .open(&probe)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        std::fs::remove_file(probe).unwrap();
        !mode & 0o777
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let (sender, receiver) = mpsc::sync_channel(2);
        let dropped = counter();
        // No writer reads: the buffer fills.
        let recorder = Recorder {
            sender,
            dropped: dropped.clone(),
            writer: Mutex::new(None),
        };
        for n in 0..5 {
            recorder.record(event(n, b""));
        }
        assert_eq!(dropped.get(), 3);
        drop(receiver);
        recorder.record(event(9, b""));
        assert_eq!(dropped.get(), 4, "a stopped writer drops too");
    }

    #[test]
    fn an_unwritable_directory_drops_counts_and_retries() {
        let dir = temp_dir("unwritable").join("missing");
        let dropped = counter();
        let mut writer = Writer::new(dir.clone(), dropped.clone());
        writer.write(&event(0, b""));
        writer.write(&event(1, b""));
        assert_eq!(dropped.get(), 2);
        create_dir(&dir).unwrap();
        writer.write(&event(2, b""));
        writer.flush();
        assert_eq!(dropped.get(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.join(file_name(2)))
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn close_writes_everything_buffered() {
        let dir = temp_dir("close");
        let recorder = Recorder::start(dir.clone(), 1000, counter()).unwrap();
        for n in 0..500 {
            recorder.record(event(1_700_000_000 + n, b"x"));
        }
        // All in 22:13:20–22:21:39.
        recorder.close();
        let text = std::fs::read_to_string(dir.join("events_2023-11-14T22.json")).unwrap();
        assert_eq!(text.lines().count(), 500);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
