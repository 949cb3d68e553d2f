//! Reading the journal back: the segments a previous run left, in order, record by
//! record. A frame the previous run did not finish writing (it crashed mid-write) is
//! skipped with a warning, and so is the rest of its segment; nothing else is lost.

use std::path::{Path, PathBuf};

use super::record::{self, Entry, Epochs, KINDS};
use super::{segment_number, Closed};

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every segment read, with the flushes it reaches.
    pub segments: Vec<Closed>,
    /// Every table's open flush at the end of the journal.
    pub open: Epochs,
    /// Records read.
    pub records: u64,
    /// Bytes skipped as unfinished or damaged writes, with where.
    pub damaged: Vec<(PathBuf, u64, u64)>,
}

impl Scan {
    /// The number the next segment gets.
    pub fn next_segment(&self) -> u64 {
        self.segments.iter().map(|s| s.number).max().unwrap_or(0) + 1
    }
}

/// The segment files of `dir`, by number. A directory that does not exist holds none.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(number) = entry.file_name().to_str().and_then(segment_number) {
            found.push((number, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Why a journal cannot be replayed.
#[derive(Debug)]
pub enum ScanError {
    Io(PathBuf, std::io::Error),
    /// A segment was written for another database (its marker table's id).
    Foreign {
        path: PathBuf,
        database: u64,
    },
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            ScanError::Foreign { path, database } => write!(
                f,
                "{} belongs to another database (journal id {database}); move the journal away or point --journal elsewhere",
                path.display()
            ),
        }
    }
}

/// Reads every segment of `dir` in order, handing each announce and row record to
/// `each` with every table's open flush at that point (the flush the record's
/// deltas belong to). Segments must belong to `database`; the first that does not
/// stops the scan before any of its records is handed over.
pub fn scan(
    dir: &Path,
    database: u64,
    mut each: impl FnMut(Entry, &Epochs),
) -> Result<Scan, ScanError> {
    let mut scan = Scan::default();
    let mut open: Epochs = [0; KINDS];
    let found = segments(dir).map_err(|e| ScanError::Io(dir.to_path_buf(), e))?;
    for (number, path) in found {
        let bytes = std::fs::read(&path).map_err(|e| ScanError::Io(path.clone(), e))?;
        // A header comes first: once it names another database, nothing of the
        // segment is handed over.
        let mut foreign = None;
        // The newest flush of each table that holds a record of this segment.
        let mut newest: Epochs = [0; KINDS];
        let end = read_segment(&bytes, &mut open, |located| {
            match located {
            _ if foreign.is_some() => {}
            Ok(Located {
                entry: Entry::Header { database: other, .. },
                ..
            }) if other != database => foreign = Some(other),
            Ok(Located {
                entry: Entry::Header { .. } | Entry::Cut { .. },
                ..
            }) => {}
            Ok(located) => {
                scan.records += 1;
                for (newest, open) in newest.iter_mut().zip(&located.open) {
                    *newest = (*newest).max(*open);
                }
                each(located.entry, &located.open);
            }
            // The frame's checksum matched, so this is not a torn write: a journal
            // from another version, or damage on disk.
            Err(unreadable) => tracing::warn!(
                "Journal {}: the record at offset {} cannot be read; the rest of its frame ({} bytes) is skipped",
                path.display(),
                unreadable.offset,
                unreadable.bytes
            ),
        }
        });
        if let Some(other) = foreign {
            return Err(ScanError::Foreign {
                path,
                database: other,
            });
        }
        if end.good < bytes.len() as u64 {
            scan.damaged
                .push((path.clone(), end.good, bytes.len() as u64 - end.good));
        }
        scan.segments.push(Closed {
            number,
            end: newest,
        });
    }
    scan.open = open;
    Ok(scan)
}

/// One record of a segment file, for inspection (`cc journal`).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub entry: Entry,
    /// Where the record starts in the file, and its length in bytes.
    pub offset: u64,
    pub len: u64,
    /// Every table's open flush once the record is read: for an announce or a row, the
    /// flush its deltas belong to (what [`scan`] hands over with it).
    pub open: Epochs,
}

/// A record that cannot be decoded although its frame's checksum matched (a journal
/// from another version, or damage on disk): where it starts and the bytes of its
/// frame skipped from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable {
    pub offset: u64,
    pub bytes: u64,
}

/// The frames of a segment file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentEnd {
    pub frames: u64,
    /// Where the frames the process finished writing end: the file's length unless
    /// its tail is torn or damaged (and ignored from there).
    pub good: u64,
}

/// Reads one segment file's bytes record by record, in order (what [`scan`] does for
/// each segment), checking nothing against a database. `open` holds every table's open flush where
/// the previous segment ended, and moves on with the headers and cuts read.
pub fn read_segment(
    bytes: &[u8],
    open: &mut Epochs,
    mut each: impl FnMut(Result<Located, Unreadable>),
) -> SegmentEnd {
    let (payloads, good) = record::frames(bytes);
    let end = SegmentEnd {
        frames: payloads.len() as u64,
        good: good as u64,
    };
    // Frames are contiguous from the start of the file.
    let mut frame_end = 0;
    for payload in payloads {
        frame_end += record::FRAME_HEAD + payload.len();
        let mut reader = record::Reader::new(payload);
        loop {
            let offset = (frame_end - reader.remaining()) as u64;
            match reader.next_entry() {
                Ok(None) => break,
                Ok(Some(entry)) => {
                    advance(open, &entry);
                    let len = (frame_end - reader.remaining()) as u64 - offset;
                    each(Ok(Located {
                        entry,
                        offset,
                        len,
                        open: *open,
                    }));
                }
                Err(_) => {
                    let bytes = frame_end as u64 - offset;
                    each(Err(Unreadable { offset, bytes }));
                    break;
                }
            }
        }
    }
    end
}

/// Moves the open flushes on past a header or a cut.
fn advance(open: &mut Epochs, entry: &Entry) {
    match entry {
        Entry::Header { open: start, .. } => {
            for (slot, &epoch) in open.iter_mut().zip(start) {
                *slot = (*slot).max(epoch);
            }
        }
        Entry::Cut { kind, epoch } => {
            if let Some(slot) = open.get_mut(usize::from(*kind)) {
                *slot = (*slot).max(epoch.saturating_add(1));
            }
        }
        Entry::Announce(_) | Entry::Row(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chihaya-journal-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn segment(records: &[Vec<u8>]) -> Vec<u8> {
        let mut file = Vec::new();
        for payload in records {
            record::frame(&mut file, payload);
        }
        file
    }

    #[test]
    fn epochs_follow_headers_and_cuts_and_a_torn_tail_is_skipped() {
        let dir = temp_dir("scan");
        let mut head = Vec::new();
        record::header(&mut head, 1, 77, &[5; KINDS]);
        let mut rows = Vec::new();
        record::row(&mut rows, b"a");
        record::cut(&mut rows, 1, 5);
        record::row(&mut rows, b"b");
        let mut first = segment(&[head, rows]);
        let whole = first.len();
        let mut torn = Vec::new();
        record::row(&mut torn, b"lost");
        record::frame(&mut first, &torn);
        first.truncate(first.len() - 2);
        std::fs::write(super::super::segment_path(&dir, 1), &first).unwrap();
        let mut head2 = Vec::new();
        let mut open2 = [5; KINDS];
        open2[1] = 6;
        record::header(&mut head2, 2, 77, &open2);
        let mut rows2 = Vec::new();
        record::row(&mut rows2, b"c");
        std::fs::write(
            super::super::segment_path(&dir, 2),
            segment(&[head2, rows2]),
        )
        .unwrap();
        std::fs::write(dir.join("unrelated.txt"), "x").unwrap();

        let mut seen = Vec::new();
        let foreign = scan(&dir, 78, |_, _| panic!("a foreign record was handed over"));
        assert!(
            matches!(&foreign, Err(ScanError::Foreign { database: 77, .. })),
            "{foreign:?}"
        );
        let scan = scan(&dir, 77, |entry, open| {
            if let Entry::Row(line) = entry {
                seen.push((line, open[1]));
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            [(b"a".to_vec(), 5), (b"b".to_vec(), 6), (b"c".to_vec(), 6)]
        );
        assert_eq!(scan.records, 3);
        assert_eq!(scan.next_segment(), 3);
        assert_eq!(scan.open[1], 6);
        assert_eq!(scan.segments[0].end[1], 6);
        let path = super::super::segment_path(&dir, 1);
        assert_eq!(
            scan.damaged,
            [(path, whole as u64, (first.len() - whole) as u64)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_segment_locates_records_and_agrees_with_scan() {
        let mut head = Vec::new();
        record::header(&mut head, 3, 77, &[5; KINDS]);
        let mut rows = Vec::new();
        record::row(&mut rows, b"a");
        record::cut(&mut rows, 2, 5);
        record::row(&mut rows, b"bc");
        let mut file = segment(&[head.clone(), rows, vec![99, 1, 2]]);
        let whole = file.len();
        record::frame(&mut file, b"torn");
        file.truncate(file.len() - 1);

        // Where the previous segment ended: below the header's flushes.
        let mut open = [4; KINDS];
        let mut read = Vec::new();
        let end = read_segment(&file, &mut open, |located| read.push(located));
        // Where each frame's payload starts.
        let frame = |n: usize| n + record::FRAME_HEAD;
        let first = frame(0);
        let second = frame(first + head.len());
        let third = frame(second + 10) as u64;
        let located = |entry, offset: usize, len: usize, open| Located {
            entry,
            offset: offset as u64,
            len: len as u64,
            open,
        };
        let mut after_cut = [5; KINDS];
        after_cut[2] = 6;
        assert_eq!(
            read,
            [
                Ok(located(
                    Entry::Header {
                        segment: 3,
                        database: 77,
                        open: [5; KINDS]
                    },
                    first,
                    head.len(),
                    [5; KINDS]
                )),
                Ok(located(Entry::Row(b"a".to_vec()), second, 3, [5; KINDS])),
                Ok(located(
                    Entry::Cut { kind: 2, epoch: 5 },
                    second + 3,
                    3,
                    after_cut
                )),
                Ok(located(
                    Entry::Row(b"bc".to_vec()),
                    second + 6,
                    4,
                    after_cut
                )),
                Err(Unreadable {
                    offset: third,
                    bytes: 3
                }),
            ]
        );
        assert_eq!(
            end,
            SegmentEnd {
                frames: 3,
                good: whole as u64,
            }
        );
        assert_eq!(open, after_cut);

        let dir = temp_dir("read-segment");
        std::fs::write(super::super::segment_path(&dir, 3), &file).unwrap();
        let mut scanned = Vec::new();
        let scan = scan(&dir, 77, |entry, open| scanned.push((entry, *open))).unwrap();
        let mut open = [0; KINDS];
        let mut records = Vec::new();
        read_segment(&file, &mut open, |read| match read {
            Ok(l) if matches!(l.entry, Entry::Row(_) | Entry::Announce(_)) => {
                records.push((l.entry, l.open));
            }
            _ => {}
        });
        assert_eq!(records, scanned);
        assert_eq!(open, scan.open);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_holds_nothing() {
        let scan = scan(Path::new("/nonexistent/chihaya-journal"), 1, |_, _| {}).unwrap();
        assert_eq!((scan.records, scan.next_segment()), (0, 1));
    }
}
