//! The peer cache (SPEC §10): a versioned file holding the swarms, so that after a
//! restart leechers get their seeders at once instead of after half an hour of
//! re-announces. `format` is the file layout, `state` the bridge to the tracker's
//! memory, `file` the atomic write, `dump` the JSON of `cc`; `journal_view` is what
//! `cc journal` shows of the journal.

pub mod cc;
pub mod dump;
pub mod file;
pub mod format;
pub mod journal_view;
pub mod state;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::log::fmt_duration;

/// Reads the cache at start (SPEC §10.2). A missing or unusable file is a warning,
/// never a failure. Runs beside the initial database load; [`state::adopt`] then hands
/// the swarms to the loaded torrents.
pub fn read(path: &Path) -> Option<state::Restored> {
    let started = Instant::now();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!("Peer cache {} missing, starting empty", path.display());
            return None;
        }
        Err(e) => {
            tracing::warn!(
                "Peer cache {} unusable ({}), starting empty",
                path.display(),
                e
            );
            return None;
        }
    };
    match state::restore(&bytes) {
        Ok(restored) => {
            tracing::info!(
                "Loaded {} users, {} torrents, {} peers ({})",
                restored.users,
                restored.torrents_in_file,
                restored.peers,
                fmt_duration(started.elapsed())
            );
            Some(restored)
        }
        Err(e) => {
            tracing::warn!(
                "Peer cache {} unusable ({}), starting empty",
                path.display(),
                e
            );
            None
        }
    }
}

/// Writes the cache file (SPEC §10.2); a failure is logged and the tracker goes on.
pub fn save(path: &Path, shared: &crate::state::Shared, now: i64) -> bool {
    let snapshots = &shared.snapshots;
    let started = Instant::now();
    tracing::info!("Serializing database to cache file");
    // With a journal: what follows the capture's start goes to a new segment, and the
    // file is put in place only once the journal holds every change it shows, so
    // that the segments before can go once the database has them too.
    let journal = shared.sink.journal();
    let segment = journal.map(|journal| journal.rotate());
    let written = state::capture(snapshots, now)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            if let Some(journal) = journal {
                if !journal.reached_within(journal.position(), journal.patience()) {
                    return Err("the journal could not be written in time".to_owned());
                }
            }
            file::write_atomic(path, &bytes).map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => {
            if let (Some(journal), Some(segment)) = (journal, segment) {
                journal.cache_written(segment);
            }
            let took = started.elapsed();
            shared
                .metrics
                .serialization_seconds
                .observe(took.as_secs_f64());
            tracing::info!("Done serializing ({})", fmt_duration(took));
            true
        }
        Err(e) => {
            tracing::error!("Failed to write peer cache {}: {}", path.display(), e);
            false
        }
    }
}

/// Writes the cache every `period` (the first time one period after start) until
/// `stop` turns true. Capture and write run on a blocking thread.
pub async fn run_serializer(
    shared: Arc<crate::state::Shared>,
    path: std::path::PathBuf,
    period: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let (shared, path) = (Arc::clone(&shared), path.clone());
        let now = shared.clock.now();
        let _ = tokio::task::spawn_blocking(move || save(&path, &shared, now)).await;
    }
}
