//! Coalesced rows waiting to be written: one map per table, one row per key. An
//! announce merges its delta into the row under a short lock and never waits for the
//! database; memory grows only with the number of distinct keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// How a delta combines with the row already pending for its key.
pub trait Merge {
    fn merge(&mut self, newer: Self);
}

/// The pending rows of one table.
pub struct Pending<K, V> {
    rows: Mutex<Rows<K, V>>,
}

struct Rows<K, V> {
    by_key: HashMap<K, V>,
    /// When the oldest row still pending arrived (for the pending-age gauge).
    oldest: Option<Instant>,
}

impl<K: Eq + Hash, V: Merge> Pending<K, V> {
    pub fn new() -> Self {
        Pending {
            rows: Mutex::new(Rows {
                by_key: HashMap::new(),
                oldest: None,
            }),
        }
    }

    /// A poisoned lock still holds whole rows (each merge writes complete values), so
    /// keep going with it rather than losing the table's accounting.
    fn lock(&self) -> MutexGuard<'_, Rows<K, V>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Merges `delta` into the row for `key`; returns the number of pending keys.
    pub fn add(&self, key: K, delta: V) -> usize {
        let mut rows = self.lock();
        rows.oldest.get_or_insert_with(Instant::now);
        match rows.by_key.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut slot) => slot.get_mut().merge(delta),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(delta);
            }
        }
        rows.by_key.len()
    }

    /// Takes every pending row; deltas arriving afterwards gather separately.
    pub fn take(&self) -> Vec<(K, V)> {
        let mut rows = self.lock();
        rows.oldest = None;
        rows.by_key.drain().collect()
    }

    /// Puts rows that could not be written back, merged under any newer deltas so
    /// that last-value columns keep the newest value.
    pub fn restore(&self, older: Vec<(K, V)>) {
        let mut rows = self.lock();
        if older.is_empty() {
            return;
        }
        rows.oldest.get_or_insert_with(Instant::now);
        for (key, mut row) in older {
            if let Some(newer) = rows.by_key.remove(&key) {
                row.merge(newer);
            }
            rows.by_key.insert(key, row);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn get(&self, key: &K) -> Option<V>
    where
        V: Copy,
    {
        self.lock().by_key.get(key).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn oldest(&self) -> Option<Instant> {
        self.lock().oldest
    }
}

impl<K: Eq + Hash, V: Merge> Default for Pending<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Sum(u64, u64);

    impl Merge for Sum {
        // First field sums, second keeps the newest.
        fn merge(&mut self, newer: Self) {
            self.0 += newer.0;
            self.1 = newer.1;
        }
    }

    #[test]
    fn coalesces_per_key_and_restores_under_newer() {
        let pending = Pending::new();
        assert_eq!(pending.add(1, Sum(5, 1)), 1);
        assert_eq!(pending.add(1, Sum(7, 2)), 1);
        assert_eq!(pending.add(2, Sum(1, 1)), 2);
        assert!(pending.oldest().is_some());
        let mut taken = pending.take();
        taken.sort_by_key(|(k, _)| *k);
        assert_eq!(taken, vec![(1, Sum(12, 2)), (2, Sum(1, 1))]);
        assert!(pending.is_empty() && pending.oldest().is_none());

        pending.add(1, Sum(100, 9));
        pending.restore(taken);
        let mut again = pending.take();
        again.sort_by_key(|(k, _)| *k);
        assert_eq!(again, vec![(1, Sum(112, 9)), (2, Sum(1, 1))]);
    }
}
