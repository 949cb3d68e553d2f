//! Coalesced rows waiting to be written: one row per key, in a few shards per table.
//! An announce merges its delta into the row under a short lock and never waits for the
//! database; memory grows only with the number of distinct keys.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::tracker::hash::{HashMap, RandomState};

/// How a delta combines with the row already pending for its key.
pub trait Merge {
    fn merge(&mut self, newer: Self);
}

/// Independent parts of a table's pending rows: the two HTTP workers rarely want the
/// same lock at once.
const SHARDS: usize = 8;

/// The pending rows of one table, sharded by key.
pub struct Pending<K, V> {
    shards: [Mutex<Rows<K, V>>; SHARDS],
    hasher: RandomState,
    /// Keys pending over all shards.
    keys: AtomicUsize,
}

struct Rows<K, V> {
    by_key: HashMap<K, V>,
    /// When the oldest row still pending here arrived (for the pending-age gauge).
    oldest: Option<Instant>,
}

impl<K: Eq + Hash, V: Merge> Pending<K, V> {
    pub fn new() -> Self {
        Pending {
            shards: std::array::from_fn(|_| {
                Mutex::new(Rows {
                    by_key: HashMap::default(),
                    oldest: None,
                })
            }),
            hasher: RandomState::default(),
            keys: AtomicUsize::new(0),
        }
    }

    /// The shard of `key`, locked. A poisoned lock still holds whole rows (each merge
    /// writes complete values), so keep going with it rather than losing accounting.
    fn lock(&self, key: &K) -> MutexGuard<'_, Rows<K, V>> {
        // The top bits: the map inside uses the low ones.
        let index = (self.hasher.hash_one(key) >> 61) as usize % SHARDS;
        self.lock_shard(index)
    }

    fn lock_shard(&self, index: usize) -> MutexGuard<'_, Rows<K, V>> {
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Merges `delta` into the row for `key`; returns the number of pending keys.
    pub fn add(&self, key: K, delta: V) -> usize {
        let mut rows = self.lock(&key);
        rows.oldest.get_or_insert_with(Instant::now);
        match rows.by_key.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                slot.get_mut().merge(delta);
                self.keys.load(Ordering::Relaxed)
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(delta);
                self.keys.fetch_add(1, Ordering::Relaxed) + 1
            }
        }
    }

    /// Takes every pending row (deltas arriving afterwards gather separately),
    /// without copying it: what the journal's cut does while announces wait, so it
    /// costs the same whatever the number of rows.
    pub fn detach(&self) -> Detached<K, V> {
        let mut maps = Vec::with_capacity(SHARDS);
        for index in 0..SHARDS {
            let mut rows = self.lock_shard(index);
            rows.oldest = None;
            let map = std::mem::take(&mut rows.by_key);
            self.keys.fetch_sub(map.len(), Ordering::Relaxed);
            maps.push(map);
        }
        Detached(maps)
    }

    /// Puts rows that could not be written back, merged under any newer deltas so
    /// that last-value columns keep the newest value.
    pub fn restore(&self, older: Vec<(K, V)>) {
        for (key, mut row) in older {
            let mut rows = self.lock(&key);
            rows.oldest.get_or_insert_with(Instant::now);
            match rows.by_key.remove(&key) {
                Some(newer) => row.merge(newer),
                None => {
                    self.keys.fetch_add(1, Ordering::Relaxed);
                }
            }
            rows.by_key.insert(key, row);
        }
    }

    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    pub fn get(&self, key: &K) -> Option<V>
    where
        V: Copy,
    {
        self.lock(key).by_key.get(key).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn oldest(&self) -> Option<Instant> {
        (0..SHARDS)
            .filter_map(|index| self.lock_shard(index).oldest)
            .min()
    }
}

/// Rows taken by [`Pending::detach`], still in their maps.
pub struct Detached<K, V>(Vec<HashMap<K, V>>);

impl<K, V> Detached<K, V> {
    pub fn len(&self) -> usize {
        self.0.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn into_rows(self) -> impl Iterator<Item = (K, V)> {
        self.0.into_iter().flatten()
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
        let mut taken: Vec<_> = pending.detach().into_rows().collect();
        taken.sort_by_key(|(k, _)| *k);
        assert_eq!(taken, vec![(1, Sum(12, 2)), (2, Sum(1, 1))]);
        assert!(pending.is_empty() && pending.oldest().is_none());

        pending.add(1, Sum(100, 9));
        pending.restore(taken);
        let mut again: Vec<_> = pending.detach().into_rows().collect();
        again.sort_by_key(|(k, _)| *k);
        assert_eq!(again, vec![(1, Sum(112, 9)), (2, Sum(1, 1))]);
    }
}
