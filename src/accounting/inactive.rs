//! The `transfer_history` rows a purge asks to mark inactive (SPEC §8.8), waiting for
//! the transfer_history writer. A purge names the (user, torrent) pairs whose peers it
//! took out of memory, so the writer updates those rows by key instead of scanning
//! the whole table for old `last_announce` values: on a site's table of tens of
//! millions of rows, that scan every purge period was most of what the purge cost
//! MariaDB, and nearly every row it read was already inactive.
//!
//! Rows whose peers left memory some other way (a torrent deleted from the site, a
//! peer cache lost with the previous process) are named by no purge; the purge task
//! therefore asks for the whole-table form at its first run and then once every
//! `peer_inactivity`. The whole-table form covers every key, so it replaces them, and
//! it is also what a request falls back to when more keys wait than
//! [`MAX_PENDING_KEYS`] (the database down for a long time).

use crate::tracker::hash::HashSet;
use crate::tracker::{TorrentId, UserId};

/// Pairs kept before a request falls back to the whole-table form: a few MB.
pub const MAX_PENDING_KEYS: usize = 1 << 18;

/// What the writer is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deactivation {
    /// `active = 0` where `active = 1` and `last_announce < cutoff`, over the table.
    Scan { cutoff: i64 },
    /// The same condition, on these rows only (sorted by key).
    Keys {
        cutoff: i64,
        keys: Vec<(UserId, TorrentId)>,
    },
}

/// Requests not yet applied, merged: the newest cutoff holds for every key (a row
/// idle since before an older cutoff is idle since before a newer one too; one that
/// announced since then has a newer `last_announce` and is left alone).
#[derive(Debug, Default)]
pub struct Pending {
    cutoff: Option<i64>,
    scan: bool,
    keys: HashSet<(UserId, TorrentId)>,
    /// A request taken and not yet applied (or given up).
    in_flight: bool,
}

impl Pending {
    /// Adds a purge's request.
    pub fn add(
        &mut self,
        cutoff: i64,
        keys: impl IntoIterator<Item = (UserId, TorrentId)>,
        scan: bool,
    ) {
        self.scan |= scan;
        if !self.scan {
            self.keys.extend(keys);
            if self.keys.len() > MAX_PENDING_KEYS {
                self.scan = true;
            }
        }
        if self.scan {
            self.keys = HashSet::default();
        }
        if !self.is_empty() {
            self.cutoff = Some(self.cutoff.map_or(cutoff, |old| old.max(cutoff)));
        }
    }

    /// Whether nothing is asked for: a purge that took no peer asks for nothing.
    pub fn is_empty(&self) -> bool {
        !self.scan && self.keys.is_empty()
    }

    /// Whether nothing is asked for or being applied.
    pub fn is_idle(&self) -> bool {
        self.is_empty() && !self.in_flight
    }

    /// The request taken is applied (or given up).
    pub fn done(&mut self) {
        self.in_flight = false;
    }

    /// Everything requested so far, leaving nothing pending; in flight until
    /// [`Pending::done`].
    pub fn take(&mut self) -> Option<Deactivation> {
        let cutoff = self.cutoff.take()?;
        self.in_flight = true;
        let keys = std::mem::take(&mut self.keys);
        if std::mem::take(&mut self.scan) {
            return Some(Deactivation::Scan { cutoff });
        }
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_unstable();
        Some(Deactivation::Keys { cutoff, keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: u32, torrent: u32) -> (UserId, TorrentId) {
        (UserId(user), TorrentId(torrent))
    }

    #[test]
    fn keys_merge_under_the_newest_cutoff_sorted_and_once() {
        let mut pending = Pending::default();
        assert!(pending.is_empty());
        pending.add(100, [key(2, 1), key(1, 9)], false);
        pending.add(90, [key(1, 9), key(1, 3)], false);
        assert!(!pending.is_empty());
        assert_eq!(
            pending.take(),
            Some(Deactivation::Keys {
                cutoff: 100,
                keys: vec![key(1, 3), key(1, 9), key(2, 1)],
            })
        );
        assert!(pending.is_empty());
        assert_eq!(pending.take(), None);
    }

    #[test]
    fn a_purge_that_took_nobody_asks_for_nothing() {
        let mut pending = Pending::default();
        pending.add(100, [], false);
        assert!(pending.is_empty());
        assert_eq!(pending.take(), None);
        pending.add(90, [key(3, 3)], false);
        pending.add(100, [], false);
        assert_eq!(
            pending.take(),
            Some(Deactivation::Keys {
                cutoff: 100,
                keys: vec![key(3, 3)],
            })
        );
    }

    #[test]
    fn a_scan_covers_keys_before_and_after_it() {
        let mut pending = Pending::default();
        pending.add(100, [key(1, 1)], false);
        pending.add(110, [], true);
        pending.add(105, [key(2, 2)], false);
        assert_eq!(pending.take(), Some(Deactivation::Scan { cutoff: 110 }));
    }

    #[test]
    fn too_many_keys_become_a_scan() {
        let mut pending = Pending::default();
        let many = (0..=MAX_PENDING_KEYS as u32).map(|n| key(n, n));
        pending.add(7, many, false);
        assert_eq!(pending.take(), Some(Deactivation::Scan { cutoff: 7 }));
        pending.add(8, [key(1, 1)], false);
        assert_eq!(
            pending.take(),
            Some(Deactivation::Keys {
                cutoff: 8,
                keys: vec![key(1, 1)],
            })
        );
    }
}
