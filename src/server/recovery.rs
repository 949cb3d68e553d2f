//! Start-up with a journal: the previous run's segments are replayed over the swarms
//! the peer cache restored, the deltas the database does not have (by its commit
//! markers) are queued again, and this run's journal starts after them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::accounting::spill::SpillLine;
use crate::accounting::Kind;
use crate::journal::record::{Announce, Entry};
use crate::journal::{self, Counters, Epochs, Journal, KINDS};
use crate::log::fmt_duration;
use crate::server::app::StartError;
use crate::server::state::Shared;
use crate::store::{commits, Store};
use crate::tracker::{InfoHash, PeerKey, Tally};

/// What start-up learns before it replays anything: the journal directory, locked
/// for this process, and what the database holds of it.
pub struct Prepared {
    pub dir: PathBuf,
    lock: File,
    /// The database's journal id.
    pub database: u64,
    /// The database's commit markers by writer name.
    pub markers: HashMap<String, u64>,
}

/// Takes the journal directory `dir` for this process and reads the database's side.
pub async fn prepare(store: &Store, dir: &Path) -> Result<Prepared, StartError> {
    let lock = journal::lock_dir(dir).map_err(|e| {
        StartError::Journal(format!("Couldn't take the journal {} - {e}", dir.display()))
    })?;
    let read =
        |e: sqlx::Error| StartError::Journal(format!("Couldn't read {} - {e}", commits::TABLE));
    let database = commits::journal_id(store).await.map_err(read)?;
    let writers: Vec<&str> = Kind::ALL
        .iter()
        .filter(|kind| kind.journaled())
        .map(|kind| kind.name())
        .collect();
    commits::create_rows(store, &writers).await.map_err(read)?;
    let markers = commits::load(store, &writers).await.map_err(read)?;
    Ok(Prepared {
        dir: dir.to_path_buf(),
        lock,
        database,
        markers,
    })
}

/// Replays the journal [`prepare`]d and opens this run's.
pub fn recover(shared: &Shared, prepared: Prepared) -> Result<Arc<Journal>, StartError> {
    let Prepared {
        dir,
        lock,
        database,
        markers,
    } = prepared;
    let dir = dir.as_path();
    let started = Instant::now();
    let committed: Epochs =
        std::array::from_fn(|i| markers.get(Kind::ALL[i].name()).copied().unwrap_or(0));
    let catalogue = shared.snapshots.catalogue.load();
    // Made at the first announce record: an empty journal costs no walk of the
    // catalogue.
    let mut hashes = None;
    let before = unwritten(shared);
    let mut peer_changes = 0u64;
    let scan = journal::recover::scan(dir, database, |entry, open| {
        let pending = |kind: Kind| open[kind.index()] > committed[kind.index()];
        match entry {
            Entry::Announce(announce) => {
                let hashes = hashes.get_or_insert_with(|| catalogue.hashes_by_id());
                if let Some(hash) = hashes.get(&announce.torrent) {
                    apply(shared, *hash, &announce);
                    peer_changes += 1;
                }
                shared.sink.recover(&announce.deltas, pending);
            }
            Entry::Row(line) => match serde_json::from_slice::<SpillLine>(&line) {
                Ok(line) if pending(line.row.kind()) => {
                    shared.sink.replay(line.row);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("Journal: a row record cannot be read ({}); skipped", e),
            },
            Entry::Header { .. } | Entry::Cut { .. } => {}
        }
    })
    .map_err(|e| {
        StartError::Journal(format!("Couldn't read the journal {} - {e}", dir.display()))
    })?;
    for (path, offset, bytes) in &scan.damaged {
        tracing::warn!(
            "Journal {}: {} bytes from offset {} were not completely written (a crash); skipped",
            path.display(),
            bytes,
            offset
        );
    }
    if scan.records > 0 {
        tracing::info!(
            "Journal: replayed {} records from {} segments ({} peer changes, {} rows the database does not have yet) ({})",
            scan.records,
            scan.segments.len(),
            peer_changes,
            unwritten(shared) - before,
            fmt_duration(started.elapsed())
        );
    }
    let open: Epochs = std::array::from_fn(|i| scan.open[i].max(committed[i] + 1));
    let metrics = &shared.metrics;
    let start = journal::Start {
        dir: dir.to_path_buf(),
        lock,
        database,
        segment: scan.next_segment(),
        open,
        committed,
        tracked: Kind::ALL.map(Kind::journaled),
        closed: scan.segments,
        fsync: Duration::from_millis(u64::from(shared.config.journal.fsync_interval_ms)),
    };
    let counters = Counters {
        bytes: metrics.journal_bytes.clone(),
        segments: metrics.journal_segments.clone(),
        errors: metrics.journal_errors.clone(),
    };
    Journal::open(start, counters).map_err(|e| {
        StartError::Journal(format!(
            "Couldn't start the journal in {} - {e}",
            dir.display()
        ))
    })
}

fn unwritten(shared: &Shared) -> usize {
    Kind::ALL
        .iter()
        .map(|&kind| shared.sink.unwritten(kind))
        .sum()
}

/// Puts a peer as its record says it is (or takes it out), with the same user's
/// evicted peers.
fn apply(shared: &Shared, info_hash: InfoHash, announce: &Announce) {
    let swarms = &shared.snapshots.swarms;
    let mut shard = swarms.shard(announce.torrent);
    let state = shard.enter(announce.torrent, info_hash);
    let mut change = Tally::default();
    let gone =
        std::iter::once(announce.key).chain(announce.evicted.iter().map(|&peer_id| PeerKey {
            user: announce.key.user,
            peer_id,
        }));
    for key in gone {
        if let Some(old) = state.swarm.remove(&key) {
            change = change - Tally::of(&old);
        }
    }
    if let Some((peer, seeding)) = &announce.peer {
        change += Tally::of(peer);
        state.swarm.insert(announce.key, peer.clone(), *seeding);
    }
    shard.leave_if_idle(announce.torrent);
    shared.snapshots.peers.apply(change);
}

/// Without the marker table there is no journal: says so, and that segments a
/// journal left (the table was dropped since) are not replayed.
pub fn warn_unmarked(dir: &Path) {
    tracing::warn!(
        "{} is missing: no journal. A crash loses the deltas not yet flushed, a restart after one can credit a peer's last flushes again, and a lost commit reply writes a batch twice (see README, Accounting guarantees)",
        crate::store::commits::TABLE
    );
    if let Ok(found) = journal::recover::segments(dir) {
        if !found.is_empty() {
            tracing::warn!(
                "Journal {}: {} segments are ignored without {}",
                dir.display(),
                found.len(),
                crate::store::commits::TABLE
            );
        }
    }
}

const _: () = assert!(KINDS == Kind::ALL.len());
