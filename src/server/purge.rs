//! The purge of inactive peers (SPEC §8.8): peers that have not announced within
//! `peer_inactivity` leave memory torrent by torrent, their torrents' new counts are
//! queued, and the transfer_history writer is asked to mark their rows inactive (by
//! key; over the whole table only now and then, see `accounting::Deactivation`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::accounting::Sink;
use crate::log::fmt_duration;
use crate::server::state::Shared;
use crate::tracker::{Snapshots, TorrentDelta, TorrentId, UserId};

/// Delay before the first purge after start.
const FIRST_RUN: Duration = Duration::from_secs(2);

/// What one purge took out of memory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub peers: usize,
    /// The (user, torrent) pairs of those peers, for `transfer_history.active`; a
    /// user with two peers gone from one torrent is named once.
    pub rows: Vec<(UserId, TorrentId)>,
}

/// Removes peers that last announced before `cutoff` from the live swarms, one shard
/// lock at a time; queues the new counts of every torrent that lost peers, and drops
/// the entries left with nothing in them.
pub fn purge(snapshots: &Snapshots, sink: &Sink, cutoff: i64) -> Purged {
    let catalogue = snapshots.catalogue.load();
    let mut purged = Purged::default();
    let mut users = Vec::new();
    snapshots.swarms.for_each_shard(|shard| {
        shard.retain(|&id, live| {
            users.clear();
            let gone = live.swarm.purge_telling(cutoff, |user| users.push(user));
            snapshots.peers.remove(gone);
            if let Some(listing) = catalogue.get(&live.info_hash).filter(|l| l.id == id) {
                live.settle(&catalogue, &listing);
            }
            if gone.peers > 0 {
                purged.peers += usize::try_from(gone.peers).unwrap_or(0);
                sink.torrent(TorrentDelta {
                    id,
                    snatched: 0,
                    seeders: u32::try_from(live.swarm.seeders()).unwrap_or(u32::MAX),
                    leechers: u32::try_from(live.swarm.leechers()).unwrap_or(u32::MAX),
                    last_action: live.last_action,
                });
                users.sort_unstable();
                users.dedup();
                purged.rows.extend(users.iter().map(|&user| (user, id)));
            }
            !live.is_idle()
        });
    });
    purged
}

/// The whole-table update of `transfer_history.active` runs at most this often,
/// however short `peer_inactivity` is.
const SCAN_EVERY_AT_LEAST: Duration = Duration::from_secs(3600);

/// Whether this purge asks for the whole-table update of `transfer_history.active`:
/// at the first purge (rows an earlier process left active), then once every `every`
/// (rows whose peers left memory without a purge naming them: a torrent deleted from
/// the site). Otherwise only the rows of the peers purged are updated.
fn scan_due(last_scan: Option<Instant>, now: Instant, every: Duration) -> bool {
    last_scan.is_none_or(|at| now.duration_since(at) >= every)
}

/// Purges 2 s after start, then `period` after each run ended (or when asked, through
/// `shared.purge_trigger`), until `stop`.
pub async fn run(shared: Arc<Shared>, period: Duration, mut stop: watch::Receiver<bool>) {
    let mut wait = FIRST_RUN;
    let inactivity = Duration::from_secs(u64::from(shared.config.intervals.peer_inactivity));
    let scan_every = inactivity.max(SCAN_EVERY_AT_LEAST);
    let mut last_scan = None;
    let trigger = &shared.purge_trigger;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = trigger.asked() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        trigger.begin();
        wait = period;
        let cutoff = shared.clock.now() - i64::from(shared.config.intervals.peer_inactivity);
        let started = Instant::now();
        let worker = Arc::clone(&shared);
        // Walking every live swarm is CPU work: keep it off the async workers.
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
                    purged.peers,
                    fmt_duration(started.elapsed())
                );
                let scan = scan_due(last_scan, started, scan_every);
                if scan {
                    last_scan = Some(started);
                }
                shared.sink.deactivate(cutoff, purged.rows, scan);
                // Users whose request budget is full again need no entry.
                shared.limiter.forget_idle(shared.micros());
            }
            Err(e) => tracing::error!("Purge of inactive peers failed: {}", e),
        }
        trigger.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_table_at_the_first_purge_then_once_per_inactivity() {
        let start = Instant::now();
        let hour = Duration::from_secs(3600);
        assert!(scan_due(None, start, hour));
        assert!(!scan_due(Some(start), start + hour / 2, hour));
        assert!(!scan_due(
            Some(start),
            start + hour - Duration::from_secs(1),
            hour
        ));
        assert!(scan_due(Some(start), start + hour, hour));
    }
}
