//! The purge of inactive peers (SPEC §8.8): peers that have not announced within
//! `peer_inactivity` leave memory torrent by torrent, their torrents' new counts are
//! queued, and the transfer_history writer is asked to mark their rows inactive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::accounting::Sink;
use crate::log::fmt_duration;
use crate::state::{unix_now, Shared};
use crate::tracker::{Snapshots, TorrentDelta};

/// Delay before the first purge after start.
const FIRST_RUN: Duration = Duration::from_secs(2);

/// Removes peers that last announced before `cutoff`, one torrent lock at a time;
/// queues the new counts of every torrent that lost peers. Returns how many went.
pub fn purge(snapshots: &Snapshots, sink: &Sink, cutoff: i64) -> usize {
    let torrents = snapshots.torrents.load_full();
    let mut purged = 0;
    for (_, torrent) in torrents.iter() {
        let mut state = torrent.lock();
        let gone = state.swarm.purge(cutoff);
        snapshots.peers.remove(gone);
        if gone.peers == 0 {
            continue;
        }
        purged += usize::try_from(gone.peers).unwrap_or(0);
        let delta = TorrentDelta {
            id: torrent.id,
            snatched: 0,
            seeders: u32::try_from(state.swarm.seeders()).unwrap_or(u32::MAX),
            leechers: u32::try_from(state.swarm.leechers()).unwrap_or(u32::MAX),
            last_action: state.last_action,
        };
        drop(state);
        sink.torrent(delta);
    }
    purged
}

/// Purges 2 s after start, then `period` after each run ended, until `stop`.
pub async fn run(shared: Arc<Shared>, period: Duration, mut stop: watch::Receiver<bool>) {
    let mut wait = FIRST_RUN;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        wait = period;
        let cutoff = unix_now() - i64::from(shared.config.intervals.peer_inactivity);
        let started = Instant::now();
        let worker = Arc::clone(&shared);
        // Walking every torrent is CPU work: keep it off the async workers.
        let purged =
            tokio::task::spawn_blocking(move || purge(&worker.snapshots, &worker.sink, cutoff))
                .await;
        match purged {
            Ok(purged) => {
                shared
                    .metrics
                    .flush_seconds
                    .with_label_values(&["purging_inactive_peers"])
                    .observe(started.elapsed().as_secs_f64());
                tracing::info!(
                    "Purged {} inactive peers from memory ({})",
                    purged,
                    fmt_duration(started.elapsed())
                );
                shared.sink.deactivate_before(cutoff);
                // Users whose request budget is full again need no entry.
                shared.limiter.forget_idle(shared.micros());
            }
            Err(e) => tracing::error!("Purge of inactive peers failed: {}", e),
        }
    }
}
