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
        let (frames, good) = record::frames(&bytes);
        if good < bytes.len() {
            scan.damaged
                .push((path.clone(), good as u64, (bytes.len() - good) as u64));
        }
        for payload in frames {
            let mut reader = record::Reader::new(payload);
            loop {
                match reader.next_entry() {
                    Ok(None) => break,
                    Ok(Some(Entry::Header {
                        database: other, ..
                    })) if other != database => {
                        return Err(ScanError::Foreign {
                            path,
                            database: other,
                        });
                    }
                    Ok(Some(Entry::Header { open: start, .. })) => {
                        for (slot, epoch) in open.iter_mut().zip(start) {
                            *slot = (*slot).max(epoch);
                        }
                    }
                    Ok(Some(Entry::Cut { kind, epoch })) => {
                        let slot = &mut open[usize::from(kind)];
                        *slot = (*slot).max(epoch + 1);
                    }
                    Ok(Some(entry)) => {
                        scan.records += 1;
                        each(entry, &open);
                    }
                    Err(_) => {
                        // The frame's checksum matched, so this is not a torn write:
                        // a journal from another version, or damage on disk.
                        tracing::warn!(
                            "Journal {}: a record cannot be read; the rest of its frame is skipped",
                            path.display()
                        );
                        break;
                    }
                }
            }
        }
        scan.segments.push(Closed { number, end: open });
    }
    scan.open = open;
    Ok(scan)
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
    fn a_missing_directory_holds_nothing() {
        let scan = scan(Path::new("/nonexistent/chihaya-journal"), 1, |_, _| {}).unwrap();
        assert_eq!((scan.records, scan.next_segment()), (0, 1));
    }
}
