//! The journal: every accepted announce's effect (its peer's new baseline and its
//! deltas), appended to local segment files by a background thread, so that a crash
//! loses nothing the database had not taken and a restart counts nothing twice.
//!
//! How it stays exact:
//! - An announce's record is appended while its torrent is locked, so one peer's
//!   records are in the order its announces happened; and under the gate's shared
//!   side, so the gate's exclusive side (a table's *cut*) sees every announce either
//!   wholly before it or wholly after.
//! - Each table's writer cuts its pending rows as flush `epoch`, writes a cut record,
//!   waits until the journal holds it on disk, and commits the rows with the marker
//!   `epoch` in one transaction (`store::commits`). Records of a table's deltas before
//!   its cut are in that flush or an earlier one; the marker says which flushes are in.
//! - The peer cache is put in place only once the journal holds everything the cache
//!   shows, and each cache write starts a new segment: segments before it are deleted
//!   once the database has every flush they hold.
//!
//! Recovery at start (`recover`) replays every segment left over the peer cache
//! (records say what a peer *is*, so replaying one the cache already shows changes
//! nothing) and merges the deltas of flushes the database does not have.

pub mod record;
pub mod recover;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::log::Throttle;
pub use record::{Epochs, KINDS};

/// How long the background thread lets records gather before writing them.
const BATCH: Duration = Duration::from_millis(2);
/// Pause after a failed write or sync before trying again.
const RETRY: Duration = Duration::from_millis(100);
/// How long a blocked writer thread keeps retrying once the tracker is stopping, and
/// how long a peer-cache write waits for the journal.
pub const GIVE_UP: Duration = Duration::from_secs(10);

/// `journal-<n>.log`, zero-padded so that names sort like numbers.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("journal-{number:020}.log"))
}

/// The segment number of a file name, if it is one.
pub fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("journal-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Takes the journal directory for this process alone: two trackers writing one
/// journal would each replay the other's records. The lock (`flock` on `<dir>/lock`)
/// lasts as long as the file returned is open, and goes with the process whatever
/// way it ends.
pub fn lock_dir(dir: &Path) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    create_private_dir(dir)?;
    let path = dir.join("lock");
    let file = crate::cache::file::open_private(
        &path,
        OpenOptions::new().create(true).truncate(false).write(true),
    )?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() == std::io::ErrorKind::WouldBlock {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("another process holds {}", path.display()),
            ));
        }
        return Err(error);
    }
    Ok(file)
}

/// A segment on disk before the current one.
#[derive(Debug, Clone)]
pub struct Closed {
    pub number: u64,
    /// Every table's newest flush holding a record of the segment (at most its open
    /// flush when the segment ended): once the database has these, the segment holds
    /// nothing it lacks.
    pub end: Epochs,
}

/// Where a cut left the journal: the flush number the rows taken are written as, and
/// the journal position that must be on disk before they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub epoch: u64,
    pub position: u64,
}

/// What the journal starts from: recovery's findings.
pub struct Start {
    pub dir: PathBuf,
    /// The directory's lock ([`lock_dir`]), held as long as the journal lives.
    pub lock: File,
    /// The database's journal id (`store::commits::journal_id`).
    pub database: u64,
    pub segment: u64,
    pub open: Epochs,
    pub committed: Epochs,
    /// The tables whose flushes are cut (the others' numbers mean nothing).
    pub tracked: [bool; KINDS],
    pub closed: Vec<Closed>,
    /// 0: never sync.
    pub fsync: Duration,
}

/// Metrics the journal moves.
#[derive(Clone)]
pub struct Counters {
    pub bytes: prometheus::IntCounter,
    pub segments: prometheus::IntGauge,
    pub errors: prometheus::IntCounter,
}

pub struct Journal {
    dir: PathBuf,
    gate: RwLock<()>,
    /// Each table's flush now gathering rows; changed only under the gate's exclusive
    /// side.
    open: [AtomicU64; KINDS],
    /// Each table's last flush the database is known to have.
    committed: [AtomicU64; KINDS],
    tracked: [bool; KINDS],
    buffer: Mutex<Buffer>,
    /// Record bytes appended since start; the journal's position.
    appended: AtomicU64,
    /// The position after the last announce or row record (cuts excluded).
    data_end: AtomicU64,
    /// Each table's position after its last cut record.
    cut_at: [AtomicU64; KINDS],
    /// The position on disk (synced, when syncing is on).
    safe: watch::Sender<u64>,
    fsync: Duration,
    database: u64,
    /// Segments below this number are covered by the peer cache on disk.
    cache_covers: AtomicU64,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Counters,
    _lock: File,
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    /// A new segment starts at this offset of `bytes`.
    rotation: Option<Rotation>,
    /// The number the next segment gets.
    next_segment: u64,
}

#[derive(Clone, Copy)]
struct Rotation {
    at: usize,
    segment: u64,
    open: Epochs,
    /// The newest flush of each table holding a record of the segment that ends.
    end: Epochs,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Creates the first segment of this run and starts the writing thread.
    pub fn open(start: Start, counters: Counters) -> std::io::Result<Arc<Journal>> {
        create_private_dir(&start.dir)?;
        let (file, file_len) =
            create_segment(&start.dir, start.segment, start.database, &start.open)?;
        file.sync_data()?;
        sync_dir(&start.dir)?;
        counters.segments.set(start.closed.len() as i64 + 1);
        let journal = Arc::new(Journal {
            dir: start.dir,
            gate: RwLock::new(()),
            open: start.open.map(AtomicU64::new),
            committed: start.committed.map(AtomicU64::new),
            tracked: start.tracked,
            buffer: Mutex::new(Buffer {
                next_segment: start.segment + 1,
                ..Buffer::default()
            }),
            appended: AtomicU64::new(0),
            data_end: AtomicU64::new(0),
            cut_at: std::array::from_fn(|_| AtomicU64::new(0)),
            safe: watch::Sender::new(0),
            fsync: start.fsync,
            database: start.database,
            cache_covers: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            counters,
            _lock: start.lock,
        });
        let writer = Writer {
            journal: Arc::clone(&journal),
            file,
            file_len,
            current: start.segment,
            closed: start.closed,
            queue: std::collections::VecDeque::new(),
            spare: Vec::new(),
            written: 0,
            unsynced: false,
            last_sync: Instant::now(),
            errors: Throttle::new(Duration::from_secs(60)),
        };
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.run())?;
        *lock(&journal.thread) = Some(thread);
        Ok(journal)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shared side of the gate: held while an announce appends its record and
    /// merges its deltas.
    pub fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an announce or row record (the caller holds the gate).
    pub fn append(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let end = self.push(write);
        self.data_end.fetch_max(end, Ordering::SeqCst);
    }

    /// Appends a record; returns the position after it.
    fn push(&self, write: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let mut buffer = lock(&self.buffer);
        let before = buffer.bytes.len();
        write(&mut buffer.bytes);
        let added = (buffer.bytes.len() - before) as u64;
        self.appended.fetch_add(added, Ordering::SeqCst) + added
    }

    /// The position of everything appended so far.
    pub fn position(&self) -> u64 {
        self.appended.load(Ordering::SeqCst)
    }

    /// Table `kind` takes its pending rows (`take`, run with every announce held off)
    /// as its open flush, which the record of the cut closes.
    pub fn cut<T>(&self, kind: usize, take: impl FnOnce() -> T) -> (T, Cut) {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let epoch = self.open[kind].load(Ordering::SeqCst);
        let at = self.push(|out| record::cut(out, kind as u8, epoch));
        self.cut_at[kind].store(at, Ordering::SeqCst);
        self.open[kind].store(epoch + 1, Ordering::SeqCst);
        let taken = take();
        let position = self.position();
        (taken, Cut { epoch, position })
    }

    /// Waits until the journal holds `position` on disk (synced when syncing is on).
    pub async fn reached(&self, position: u64) {
        let mut safe = self.safe.subscribe();
        let _ = safe.wait_for(|&at| at >= position).await;
    }

    /// How long a blocking wait for the journal is worth: a sync's interval, and a
    /// margin for a slow disk.
    pub fn patience(&self) -> Duration {
        GIVE_UP + self.fsync
    }

    /// The same, for a blocking thread, giving up after `within` (a disk that fails
    /// for that long): whether the position was reached.
    pub fn reached_within(&self, position: u64, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if *self.safe.borrow() >= position {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The database has flush `epoch` of table `kind` (or it held nothing).
    pub fn committed(&self, kind: usize, epoch: u64) {
        self.committed[kind].fetch_max(epoch, Ordering::SeqCst);
    }

    /// Starts a new segment (for a peer cache about to be captured); returns its number.
    pub fn rotate(&self) -> u64 {
        let _exclusive = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        let mut buffer = lock(&self.buffer);
        if let Some(pending) = buffer.rotation {
            return pending.segment;
        }
        let segment = buffer.next_segment;
        buffer.next_segment += 1;
        let open: Epochs = std::array::from_fn(|kind| self.open[kind].load(Ordering::SeqCst));
        // A table cut after the last announce or row record has none of the segment's
        // records in its open flush: the segment needs only the flush before, so that
        // once everything is written (a clean shutdown) nothing keeps it.
        let data_end = self.data_end.load(Ordering::SeqCst);
        let end = std::array::from_fn(|kind| {
            if self.cut_at[kind].load(Ordering::SeqCst) > data_end {
                open[kind].saturating_sub(1)
            } else {
                open[kind]
            }
        });
        buffer.rotation = Some(Rotation {
            at: buffer.bytes.len(),
            segment,
            open,
            end,
        });
        segment
    }

    /// A peer cache captured after [`Journal::rotate`] returned `segment` is in place:
    /// earlier segments are no longer needed for the swarms.
    pub fn cache_written(&self, segment: u64) {
        self.cache_covers.fetch_max(segment, Ordering::SeqCst);
    }

    /// Writes what is buffered, syncs, deletes what is covered and stops the thread.
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// What the background thread still has to do, in order.
enum Work {
    Write { bytes: Vec<u8>, end: u64 },
    Rotate(Rotation),
}

struct Writer {
    journal: Arc<Journal>,
    file: File,
    /// Bytes of whole frames in `file`: where a failed write is cut back to.
    file_len: u64,
    current: u64,
    closed: Vec<Closed>,
    queue: std::collections::VecDeque<Work>,
    spare: Vec<u8>,
    /// Position written to the file.
    written: u64,
    unsynced: bool,
    last_sync: Instant,
    errors: Throttle,
}

impl Writer {
    fn run(mut self) {
        let mut stopping_since: Option<Instant> = None;
        loop {
            let stopping = self.journal.stop.load(Ordering::SeqCst);
            self.take_buffer();
            let worked = self.work();
            if worked {
                self.sync(stopping);
                self.delete_covered();
            }
            if stopping && self.queue.is_empty() && worked {
                return;
            }
            if stopping {
                // A disk that keeps failing must not hold the shutdown forever.
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GIVE_UP {
                    tracing::error!(
                        "Journal {}: {} records could not be written before shutdown",
                        self.journal.dir.display(),
                        self.queue.len()
                    );
                    return;
                }
            }
            std::thread::sleep(if worked { BATCH } else { RETRY });
        }
    }

    /// Moves what announces appended into the work queue, framed.
    fn take_buffer(&mut self) {
        let (bytes, rotation, end) = {
            let mut buffer = lock(&self.journal.buffer);
            if buffer.bytes.is_empty() && buffer.rotation.is_none() {
                return;
            }
            let mut bytes = std::mem::take(&mut self.spare);
            std::mem::swap(&mut bytes, &mut buffer.bytes);
            (bytes, buffer.rotation.take(), self.journal.position())
        };
        let start = end - bytes.len() as u64;
        let at = rotation.map_or(bytes.len(), |r| r.at.min(bytes.len()));
        let (before, after) = bytes.split_at(at);
        if !before.is_empty() {
            self.push_frame(before, start + at as u64);
        }
        if let Some(rotation) = rotation {
            self.queue.push_back(Work::Rotate(rotation));
        }
        if !after.is_empty() {
            self.push_frame(after, end);
        }
        let mut spare = bytes;
        spare.clear();
        self.spare = spare;
    }

    fn push_frame(&mut self, payload: &[u8], end: u64) {
        let mut bytes = Vec::with_capacity(payload.len() + record::FRAME_HEAD);
        record::frame(&mut bytes, payload);
        self.queue.push_back(Work::Write { bytes, end });
    }

    /// Does the queued work in order; false if a step failed (it stays queued).
    fn work(&mut self) -> bool {
        while let Some(next) = self.queue.front() {
            let done = match next {
                Work::Write { bytes, end } => {
                    let end = *end;
                    match self.file.write_all(bytes) {
                        Ok(()) => {
                            self.journal.counters.bytes.inc_by(bytes.len() as u64);
                            self.file_len += bytes.len() as u64;
                            self.written = end;
                            self.unsynced = true;
                            Ok(())
                        }
                        Err(e) => {
                            // Part of the frame may be in the file: it goes, so that
                            // the frame written again follows the last whole one
                            // (a reader stops at the first broken frame).
                            let _ = self.file.set_len(self.file_len);
                            let _ = self.file.seek(SeekFrom::Start(self.file_len));
                            Err(e)
                        }
                    }
                }
                Work::Rotate(rotation) => {
                    let rotation = *rotation;
                    self.start_segment(rotation)
                }
            };
            match done {
                Ok(()) => {
                    self.queue.pop_front();
                }
                Err(e) => {
                    self.journal.counters.errors.inc();
                    if let Some(count) = self.errors.hit(Instant::now()) {
                        tracing::error!(
                            "Journal {}: cannot write ({}); database writes wait for it ({} failures since the last report)",
                            self.journal.dir.display(),
                            e,
                            count
                        );
                    }
                    return false;
                }
            }
        }
        if self.journal.fsync.is_zero() {
            self.journal.safe.send_replace(self.written);
        }
        true
    }

    fn start_segment(&mut self, rotation: Rotation) -> std::io::Result<()> {
        let (file, file_len) = create_segment(
            &self.journal.dir,
            rotation.segment,
            self.journal.database,
            &rotation.open,
        )?;
        // The old segment is complete: it is synced once, whatever the cadence, so
        // that a power cut cannot leave a gap before the new one.
        self.file.sync_data()?;
        sync_dir(&self.journal.dir)?;
        self.closed.push(Closed {
            number: self.current,
            end: rotation.end,
        });
        self.file = file;
        self.file_len = file_len;
        self.current = rotation.segment;
        self.journal
            .counters
            .segments
            .set(self.closed.len() as i64 + 1);
        Ok(())
    }

    /// Syncs at the configured cadence (and when stopping), then publishes what is safe.
    fn sync(&mut self, stopping: bool) {
        let cadence = self.journal.fsync;
        if cadence.is_zero() {
            if stopping && self.unsynced && self.file.sync_data().is_ok() {
                self.unsynced = false;
            }
            return;
        }
        if !self.unsynced || (!stopping && self.last_sync.elapsed() < cadence) {
            return;
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.unsynced = false;
                self.last_sync = Instant::now();
                self.journal.safe.send_replace(self.written);
            }
            Err(e) => {
                self.journal.counters.errors.inc();
                if let Some(count) = self.errors.hit(Instant::now()) {
                    tracing::error!(
                        "Journal {}: cannot sync ({}); database writes wait for it ({} failures since the last report)",
                        self.journal.dir.display(),
                        e,
                        count
                    );
                }
            }
        }
    }

    /// Deletes the segments that both the peer cache and the database cover.
    fn delete_covered(&mut self) {
        let journal = &self.journal;
        let cache_covers = journal.cache_covers.load(Ordering::SeqCst);
        let before = self.closed.len();
        self.closed.retain(|segment| {
            let covered = segment.number < cache_covers
                && segment
                    .end
                    .iter()
                    .zip(&journal.committed)
                    .zip(journal.tracked)
                    .all(|((&end, committed), tracked)| {
                        !tracked || committed.load(Ordering::SeqCst) >= end
                    });
            if !covered {
                return true;
            }
            let path = segment_path(&journal.dir, segment.number);
            match std::fs::remove_file(&path) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!("Journal: cannot delete {}: {}", path.display(), e);
                    true
                }
            }
        });
        if self.closed.len() != before {
            journal.counters.segments.set(self.closed.len() as i64 + 1);
        }
    }
}

/// Creates segment `segment` holding its header frame (not synced); returns the file
/// and its length.
fn create_segment(
    dir: &Path,
    segment: u64,
    database: u64,
    open: &Epochs,
) -> std::io::Result<(File, u64)> {
    let mut header = Vec::new();
    record::header(&mut header, segment, database, open);
    let mut framed = Vec::new();
    record::frame(&mut framed, &header);
    let mut file = crate::cache::file::open_private(
        &segment_path(dir, segment),
        OpenOptions::new().create(true).truncate(true).write(true),
    )?;
    file.write_all(&framed)?;
    Ok((file, framed.len() as u64))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> Counters {
        Counters {
            bytes: prometheus::IntCounter::new("b", "b").unwrap(),
            segments: prometheus::IntGauge::new("s", "s").unwrap(),
            errors: prometheus::IntCounter::new("e", "e").unwrap(),
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "chihaya-journal-rt-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ))
    }

    fn start(dir: &Path, fsync: Duration) -> Start {
        let mut tracked = [true; KINDS];
        tracked[KINDS - 1] = false;
        Start {
            dir: dir.to_path_buf(),
            lock: lock_dir(dir).unwrap(),
            database: 42,
            segment: 1,
            open: [1; KINDS],
            committed: [0; KINDS],
            tracked,
            closed: Vec::new(),
            fsync,
        }
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < until, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn cuts_rotations_and_deletion_of_what_is_covered() {
        let dir = temp_dir("cycle");
        let journal = Journal::open(start(&dir, Duration::ZERO), counters()).unwrap();
        assert!(
            lock_dir(&dir).is_err(),
            "a second process cannot take the journal"
        );
        {
            let _shared = journal.gate();
            journal.append(|out| record::row(out, b"one"));
        }
        let (taken, cut) = journal.cut(1, || "rows");
        assert_eq!((taken, cut.epoch), ("rows", 1));
        assert!(journal.reached_within(cut.position, GIVE_UP));
        let segment = journal.rotate();
        assert_eq!(segment, 2);
        journal.append(|out| record::row(out, b"two"));
        assert!(journal.reached_within(journal.position(), GIVE_UP));
        wait_until("the second segment exists", || {
            segment_path(&dir, 2).exists()
        });

        // Covered by the cache but not yet by the database: kept.
        journal.cache_written(2);
        std::thread::sleep(Duration::from_millis(20));
        assert!(segment_path(&dir, 1).exists());
        // Every tracked table has the flushes holding the segment's records: flush 1
        // of each (table 1 was cut after the last record, so its flush 2, open at the
        // rotation, holds none of them and is not waited for).
        for kind in 0..KINDS - 1 {
            journal.committed(kind, 1);
        }
        wait_until("the covered segment is deleted", || {
            !segment_path(&dir, 1).exists()
        });
        journal.close();

        let mut rows = Vec::new();
        let scan = recover::scan(&dir, 42, |entry, open| {
            if let record::Entry::Row(line) = entry {
                rows.push((line, open[1]));
            }
        })
        .unwrap();
        assert_eq!(rows, [(b"two".to_vec(), 2)]);
        assert_eq!(scan.next_segment(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn with_syncing_a_position_is_reached_once_synced() {
        let dir = temp_dir("sync");
        let journal = Journal::open(start(&dir, Duration::from_millis(50)), counters()).unwrap();
        journal.append(|out| record::row(out, b"x"));
        assert!(journal.reached_within(journal.position(), GIVE_UP));
        assert!(*journal.safe.borrow() >= journal.position());
        journal.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
