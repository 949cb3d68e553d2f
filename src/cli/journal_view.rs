//! `cc journal`: the journal's segments for operators and debugging — counts and flush
//! numbers per segment (`stats`), every record as a JSON line (`dump`). Records are
//! read with `journal::recover::read_segment`, the open flush numbers carried from one
//! segment to the next, so what is shown is what recovery would replay.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::cc::ToolError;
use crate::accounting::Kind;
use crate::cache::format::hex;
use crate::journal::record::{Announce, Entry, Epochs, KINDS};
use crate::journal::recover::{self, Located, SegmentEnd, Unreadable};
use crate::tracker::{AnnounceDeltas, Endpoint, Family, Peer, TransferIp, TransferIpDelta};

fn fail(path: &Path, problem: impl ToString) -> ToolError {
    ToolError {
        file: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// The segment files of `dir`, by number. Unlike the tracker, which starts an empty
/// journal there, `cc` refuses a directory that does not exist.
fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, ToolError> {
    std::fs::metadata(dir).map_err(|e| fail(dir, e))?;
    recover::segments(dir).map_err(|e| fail(dir, e))
}

fn read_file(path: &Path) -> Result<Vec<u8>, ToolError> {
    std::fs::read(path).map_err(|e| fail(path, e))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
}

/// Flush numbers as a JSON object keyed by table, in `Kind::ALL` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flush(Epochs);

impl Serialize for Flush {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(KINDS))?;
        for (kind, epoch) in Kind::ALL.iter().zip(self.0) {
            map.serialize_entry(kind.name(), &epoch)?;
        }
        map.end()
    }
}

/// A stretch of a file: where it starts and how many bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
struct Span {
    offset: u64,
    bytes: u64,
}

// ---- stats ----

#[derive(Debug, Default, Serialize)]
struct SegmentStats {
    segment: u64,
    file: String,
    bytes: u64,
    frames: u64,
    records: u64,
    headers: u64,
    announces: u64,
    cuts: u64,
    rows: u64,
    #[serde(skip)]
    announce_bytes: u64,
    /// The journal id of the database, from the segment's header.
    database: Option<u64>,
    /// Open flushes after the header, and at the end of the segment.
    start: Flush,
    end: Flush,
    /// The torn or damaged tail, ignored.
    damaged: Option<Span>,
    /// Records that cannot be decoded, with the rest of their frame.
    unreadable: Vec<Span>,
}

impl SegmentStats {
    fn count(&mut self, read: Result<Located, Unreadable>) {
        let located = match read {
            Ok(located) => located,
            Err(Unreadable { offset, bytes }) => {
                self.unreadable.push(Span { offset, bytes });
                return;
            }
        };
        self.records += 1;
        match located.entry {
            Entry::Header { database, .. } => {
                self.headers += 1;
                if self.database.is_none() {
                    self.database = Some(database);
                    self.start = Flush(located.open);
                }
            }
            Entry::Cut { .. } => self.cuts += 1,
            Entry::Announce(_) => {
                self.announces += 1;
                self.announce_bytes += located.len;
            }
            Entry::Row(_) => self.rows += 1,
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct Totals {
    segments: u64,
    bytes: u64,
    frames: u64,
    records: u64,
    announces: u64,
    cuts: u64,
    rows: u64,
    damaged_bytes: u64,
    unreadable_bytes: u64,
    /// Bytes of an announce record on average, to one decimal.
    bytes_per_announce: Option<f64>,
}

impl Totals {
    fn of(segments: &[SegmentStats]) -> Totals {
        let mut totals = Totals::default();
        let mut announce_bytes = 0;
        for s in segments {
            totals.segments += 1;
            totals.bytes += s.bytes;
            totals.frames += s.frames;
            totals.records += s.records;
            totals.announces += s.announces;
            totals.cuts += s.cuts;
            totals.rows += s.rows;
            totals.damaged_bytes += s.damaged.map_or(0, |d| d.bytes);
            totals.unreadable_bytes += s.unreadable.iter().map(|u| u.bytes).sum::<u64>();
            announce_bytes += s.announce_bytes;
        }
        totals.bytes_per_announce = (totals.announces > 0)
            .then(|| (announce_bytes as f64 * 10.0 / totals.announces as f64).round() / 10.0);
        totals
    }
}

#[derive(Debug, Serialize)]
struct Report {
    segments: Vec<SegmentStats>,
    totals: Totals,
}

fn segment_stats(number: u64, path: &Path, open: &mut Epochs) -> Result<SegmentStats, ToolError> {
    let bytes = read_file(path)?;
    let mut stats = SegmentStats {
        segment: number,
        file: file_name(path),
        bytes: bytes.len() as u64,
        start: Flush(*open),
        ..SegmentStats::default()
    };
    let SegmentEnd { frames, good } = recover::read_segment(&bytes, open, |read| stats.count(read));
    stats.frames = frames;
    stats.end = Flush(*open);
    stats.damaged = (good < stats.bytes).then(|| Span {
        offset: good,
        bytes: stats.bytes - good,
    });
    Ok(stats)
}

fn report(dir: &Path) -> Result<Report, ToolError> {
    let mut open = [0; KINDS];
    let mut segments = Vec::new();
    for (number, path) in segment_files(dir)? {
        segments.push(segment_stats(number, &path, &mut open)?);
    }
    let totals = Totals::of(&segments);
    Ok(Report { segments, totals })
}

/// `cc journal stats`: a text report, or one JSON line with `json`.
pub fn stats(dir: &Path, json: bool) -> Result<String, ToolError> {
    let report = report(dir)?;
    if json {
        let mut line = serde_json::to_string(&report).map_err(|e| fail(dir, e))?;
        line.push('\n');
        Ok(line)
    } else {
        Ok(render_text(&report))
    }
}

fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.segments {
        render_segment(&mut out, s);
    }
    let t = &report.totals;
    let _ = write!(
        out,
        "total: segments {}, bytes {}, records {}, announces {}",
        t.segments, t.bytes, t.records, t.announces
    );
    if let Some(average) = t.bytes_per_announce {
        let _ = write!(out, " ({average:.1} bytes each on average)");
    }
    let _ = writeln!(
        out,
        ", damaged bytes {}, unreadable bytes {}",
        t.damaged_bytes, t.unreadable_bytes
    );
    out
}

fn render_segment(out: &mut String, s: &SegmentStats) {
    let database = s
        .database
        .map_or_else(|| "none (no header)".to_owned(), |id| id.to_string());
    let _ = writeln!(out, "segment {} ({})", s.segment, s.file);
    let _ = writeln!(out, "  database {database}");
    let _ = writeln!(
        out,
        "  bytes {}, frames {}, records {} (headers {}, announces {}, cuts {}, rows {})",
        s.bytes, s.frames, s.records, s.headers, s.announces, s.cuts, s.rows
    );
    let _ = writeln!(out, "  {:<18} {:>12} {:>12}", "flush", "start", "end");
    for (n, kind) in Kind::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:<18} {:>12} {:>12}",
            kind.name(),
            s.start.0[n],
            s.end.0[n]
        );
    }
    if let Some(d) = s.damaged {
        let _ = writeln!(
            out,
            "  damaged tail: {} bytes from offset {} (an unfinished write), ignored",
            d.bytes, d.offset
        );
    }
    for u in &s.unreadable {
        let _ = writeln!(
            out,
            "  unreadable record at offset {}: {} bytes of its frame skipped",
            u.offset, u.bytes
        );
    }
}

// ---- dump ----

/// One line of the dump: the segment, the line's type and offset first.
#[derive(Serialize)]
struct Line<B> {
    segment: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    offset: u64,
    #[serde(flatten)]
    body: B,
}

#[derive(Serialize)]
struct HeaderBody {
    number: u64,
    database: u64,
    open: Flush,
}

#[derive(Serialize)]
struct CutBody {
    table: &'static str,
    flush: u64,
}

#[derive(Serialize)]
struct RowBody {
    /// The spill line, when it is JSON; else `unparsed`, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unparsed: Option<String>,
    flush: Flush,
}

#[derive(Serialize)]
struct SpanBody {
    bytes: u64,
}

#[derive(Serialize)]
struct AnnounceBody {
    torrent: u32,
    user: u32,
    peer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<PeerJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seeding: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    removed: bool,
    evicted: Vec<String>,
    deltas: DeltasJson,
    flush: Flush,
}

#[derive(Serialize)]
struct PeerJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<EndpointJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6: Option<EndpointJson>,
    uploaded: u64,
    downloaded: u64,
    left: u64,
    start_time: u32,
    client_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_over: Option<&'static str>,
}

#[derive(Serialize)]
struct EndpointJson {
    ip: String,
    port: u16,
    last_announce: u32,
}

impl EndpointJson {
    fn of<A: std::fmt::Display>(endpoint: &Endpoint<A>) -> EndpointJson {
        EndpointJson {
            ip: endpoint.ip.to_string(),
            port: endpoint.port,
            last_announce: endpoint.seen.get(),
        }
    }
}

impl PeerJson {
    fn of(peer: &Peer) -> PeerJson {
        PeerJson {
            ipv4: peer.v4.as_ref().map(EndpointJson::of),
            ipv6: peer.v6.as_ref().map(EndpointJson::of),
            uploaded: peer.uploaded,
            downloaded: peer.downloaded,
            left: peer.left,
            start_time: peer.start_time,
            client_id: peer.client_id.0,
            completed_over: peer.completed_over.map(|family| match family {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            }),
        }
    }
}

#[derive(Serialize)]
struct DeltasJson {
    torrent: TorrentJson,
    history: HistoryJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserJson>,
    transfer_ip: TransferIpJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    snatch: Option<SnatchJson>,
    unprune: bool,
}

#[derive(Serialize)]
struct TorrentJson {
    snatched: u32,
    seeders: u32,
    leechers: u32,
    last_action: i64,
}

#[derive(Serialize)]
struct HistoryJson {
    uploaded: u64,
    downloaded: u64,
    seeding: bool,
    start_time: i64,
    last_announce: i64,
    active_time: i64,
    seed_time: i64,
    active: bool,
    snatched: u32,
    remaining: u64,
}

#[derive(Serialize)]
struct UserJson {
    uploaded: u64,
    downloaded: u64,
    rawup: u64,
    rawdl: u64,
}

#[derive(Serialize)]
struct TransferIpJson {
    table: &'static str,
    ip: String,
    client_id: u32,
    port: u16,
    uploaded: u64,
    downloaded: u64,
    start_time: i64,
    last_announce: i64,
}

impl TransferIpJson {
    fn of(row: &TransferIp) -> TransferIpJson {
        match row {
            TransferIp::V4(row) => {
                Self::with(Kind::TransferIps, Ipv4Addr::from(row.ip).to_string(), row)
            }
            TransferIp::V6(row) => {
                Self::with(Kind::TransferIps6, Ipv6Addr::from(row.ip).to_string(), row)
            }
        }
    }

    fn with<A>(table: Kind, ip: String, row: &TransferIpDelta<A>) -> TransferIpJson {
        TransferIpJson {
            table: table.name(),
            ip,
            client_id: row.client.0,
            port: row.port,
            uploaded: row.uploaded,
            downloaded: row.downloaded,
            start_time: row.start_time,
            last_announce: row.last_announce,
        }
    }
}

#[derive(Serialize)]
struct SnatchJson {
    snatched_time: i64,
    start_time: i64,
}

impl DeltasJson {
    fn of(deltas: &AnnounceDeltas) -> DeltasJson {
        let (t, h) = (&deltas.torrent, &deltas.history);
        DeltasJson {
            torrent: TorrentJson {
                snatched: t.snatched,
                seeders: t.seeders,
                leechers: t.leechers,
                last_action: t.last_action,
            },
            history: HistoryJson {
                uploaded: h.uploaded,
                downloaded: h.downloaded,
                seeding: h.seeding,
                start_time: h.start_time,
                last_announce: h.last_announce,
                active_time: h.active_time,
                seed_time: h.seed_time,
                active: h.active,
                snatched: h.snatched,
                remaining: h.remaining,
            },
            user: deltas.user.map(|u| UserJson {
                uploaded: u.uploaded,
                downloaded: u.downloaded,
                rawup: u.rawup,
                rawdl: u.rawdl,
            }),
            transfer_ip: TransferIpJson::of(&deltas.transfer_ip),
            snatch: deltas.snatch.map(|s| SnatchJson {
                snatched_time: s.snatched_time,
                start_time: s.start_time,
            }),
            unprune: deltas.unprune.is_some(),
        }
    }
}

fn announce_body(announce: &Announce, open: Epochs) -> AnnounceBody {
    AnnounceBody {
        torrent: announce.torrent.0,
        user: announce.key.user.0,
        peer_id: hex(&announce.key.peer_id.0),
        peer: announce.peer.as_ref().map(|(peer, _)| PeerJson::of(peer)),
        seeding: announce.peer.as_ref().map(|&(_, seeding)| seeding),
        removed: announce.peer.is_none(),
        evicted: announce.evicted.iter().map(|id| hex(&id.0)).collect(),
        deltas: DeltasJson::of(&announce.deltas),
        flush: Flush(open),
    }
}

fn row_body(line: &[u8], open: Epochs) -> RowBody {
    let (line, unparsed) = match serde_json::from_slice(line) {
        Ok(value) => (Some(value), None),
        Err(_) => (None, Some(String::from_utf8_lossy(line).into_owned())),
    };
    RowBody {
        line,
        unparsed,
        flush: Flush(open),
    }
}

fn write_line<B: Serialize>(
    out: &mut impl Write,
    segment: u64,
    kind: &'static str,
    offset: u64,
    body: B,
) -> std::io::Result<()> {
    let line = Line {
        segment,
        kind,
        offset,
        body,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

fn write_record(
    out: &mut impl Write,
    segment: u64,
    read: Result<Located, Unreadable>,
) -> std::io::Result<()> {
    let located = match read {
        Ok(located) => located,
        Err(Unreadable { offset, bytes }) => {
            return write_line(out, segment, "unreadable", offset, SpanBody { bytes })
        }
    };
    let (offset, open) = (located.offset, located.open);
    match located.entry {
        Entry::Header {
            segment: number,
            database,
            open: start,
        } => {
            let body = HeaderBody {
                number,
                database,
                open: Flush(start),
            };
            write_line(out, segment, "header", offset, body)
        }
        Entry::Cut { kind, epoch } => {
            let table = Kind::ALL
                .get(usize::from(kind))
                .map_or("unknown", |k| k.name());
            let body = CutBody {
                table,
                flush: epoch,
            };
            write_line(out, segment, "cut", offset, body)
        }
        Entry::Announce(announce) => write_line(
            out,
            segment,
            "announce",
            offset,
            announce_body(&announce, open),
        ),
        Entry::Row(line) => write_line(out, segment, "row", offset, row_body(&line, open)),
    }
}

fn stdout_error(e: std::io::Error) -> ToolError {
    ToolError {
        file: "stdout".to_owned(),
        problem: e.to_string(),
    }
}

/// Writes one segment's records (all of them when `shown`, else none) and moves `open`
/// past them.
fn dump_segment(
    out: &mut impl Write,
    number: u64,
    path: &Path,
    open: &mut Epochs,
    shown: bool,
) -> Result<(), ToolError> {
    let bytes = read_file(path)?;
    let mut written = Ok(());
    let end = recover::read_segment(&bytes, open, |read| {
        if shown && written.is_ok() {
            written = write_record(out, number, read);
        }
    });
    written.map_err(stdout_error)?;
    let total = bytes.len() as u64;
    if shown && end.good < total {
        let body = SpanBody {
            bytes: total - end.good,
        };
        write_line(out, number, "damaged", end.good, body).map_err(stdout_error)?;
    }
    Ok(())
}

/// `cc journal dump`: every record of every segment (or of segment `only`) as a JSON
/// line. Earlier segments are read even when not shown, so that the flush numbers
/// are those recovery sees.
pub fn dump(dir: &Path, only: Option<u64>, out: &mut impl Write) -> Result<(), ToolError> {
    let files = segment_files(dir)?;
    if let Some(wanted) = only {
        if !files.iter().any(|&(number, _)| number == wanted) {
            return Err(fail(dir, format!("no segment {wanted}")));
        }
    }
    let mut open = [0; KINDS];
    for (number, path) in files {
        if only.is_some_and(|wanted| number > wanted) {
            break;
        }
        let shown = only.is_none_or(|wanted| wanted == number);
        dump_segment(out, number, &path, &mut open, shown)?;
    }
    out.flush().map_err(stdout_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_that_is_not_json_is_shown_as_text() {
        let mut out = Vec::new();
        write_line(&mut out, 2, "row", 40, row_body(b"not {json", [1; KINDS])).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                r#"{"segment":2,"type":"row","offset":40,"unparsed":"not {json","flush":"#,
                r#"{"torrents":1,"users":1,"transfer_history":1,"transfer_ips":1,"transfer_ips6":1,"snatches":1,"unprune":1,"groups":1}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn the_average_announce_is_rounded_to_a_tenth() {
        let segment = |announces, announce_bytes| SegmentStats {
            announces,
            announce_bytes,
            ..SegmentStats::default()
        };
        let totals = Totals::of(&[segment(2, 301), segment(1, 150)]);
        assert_eq!(totals.bytes_per_announce, Some(150.3));
        assert_eq!(Totals::of(&[segment(0, 0)]).bytes_per_announce, None);
    }
}
