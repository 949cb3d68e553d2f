//! A tracker among several (`instance`, README "Scaling out") that answered no announce
//! for `intervals.min_announce` seconds was out of the load balancer's ring: stopped,
//! crashed, or cut off. Its torrents went to another instance meanwhile, and their peers
//! announced there, each credited from that instance's own baseline. The baselines this
//! tracker still holds (in memory, or restored from its peer cache) are then stale:
//! crediting a returning peer from one would count again what the other instance
//! credited. So the first announce after such an absence forgets every peer first, as
//! a purge does, and each peer's next announce here starts afresh.
//!
//! Within `min_announce` a client announces at most once (its `min interval`), and one
//! announce elsewhere only sets a baseline there: nothing can have been credited
//! twice, and a short stop (a restart) keeps the swarms.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::server::purge;
use crate::server::state::Shared;

/// When this tracker last answered an announce.
#[derive(Debug, Default)]
pub struct Absence {
    /// Unix seconds; 0: never.
    last: AtomicI64,
}

impl Absence {
    /// Notes an announce at `now`. Returns the time of the one before when it was at
    /// least `gap` seconds earlier: the swarms are stale. Of announces arriving
    /// together after an absence, one is told.
    pub fn note(&self, now: i64, gap: i64) -> Option<i64> {
        let before = self.last.fetch_max(now, Ordering::AcqRel);
        (before > 0 && now - before >= gap).then_some(before)
    }

    /// Sets the last announce to the newest one the restored peer cache holds, so that
    /// an absence spans a restart.
    pub fn restored(&self, newest: i64) {
        self.last.fetch_max(newest, Ordering::AcqRel);
    }
}

/// Called for every announce with `instance` set: after an absence, forgets every
/// peer before the announce is answered.
pub fn check(shared: &Shared, now: i64) {
    let gap = i64::from(shared.config.intervals.min_announce);
    let Some(since) = shared.absence.note(now, gap) else {
        return;
    };
    // Every peer here announced at `since` or before; the rows another instance
    // touched since then stay active.
    let cutoff = since + 1;
    let purged = purge::purge(&shared.snapshots, &shared.sink, cutoff);
    shared.sink.deactivate(cutoff, purged.rows, false);
    tracing::warn!(
        "No announce for {} s: this instance was out of the load balancer's ring and its \
         torrents' peers announced elsewhere; forgot its {} peers, so that none is credited twice",
        now - since,
        purged.peers
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gap_of_min_announce_is_an_absence() {
        let absence = Absence::default();
        assert_eq!(absence.note(1000, 900), None);
        assert_eq!(absence.note(1899, 900), None);
        assert_eq!(absence.note(2799, 900), Some(1899));
        // Told once: the next announce follows the one that was told.
        assert_eq!(absence.note(2799, 900), None);
        // A late request with an older clock does not move it back.
        assert_eq!(absence.note(2000, 900), None);
        absence.restored(5000);
        assert_eq!(absence.note(5100, 900), None);
    }
}
