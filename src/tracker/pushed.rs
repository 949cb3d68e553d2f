//! Changes the site pushed ([`crate::push`]) since the snapshots were loaded, laid
//! over them. A snapshot is too large to copy for one change (a catalogue of a million
//! torrents is tens of megabytes), so a push writes here instead and every lookup asks
//! here first — one relaxed atomic load while nothing is pushed.
//!
//! Each push has a number ([`PushClock`]). A load notes the number before it reads the
//! database; once its snapshot is in service, the changes numbered up to that are
//! dropped ([`Overlay::settle`]): the site writes its database before it pushes, so the
//! rows the load read already show them. Changes pushed while the load ran stay laid
//! over the new snapshot until the next load.

use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::hash::HashMap;

/// Numbers pushes, and tells a load which ones the database showed when it began.
#[derive(Debug, Default)]
pub struct PushClock {
    last: AtomicU64,
}

impl PushClock {
    /// The number of a new push (the first is 1).
    pub fn next(&self) -> u64 {
        self.last.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The number of the last push taken: a load begins by reading it.
    pub fn now(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }
}

/// One pushed change: `Some` sets the key's value, `None` removes the key.
#[derive(Clone, Debug, PartialEq)]
struct Change<V> {
    push: u64,
    value: Option<V>,
}

/// Pushed changes by key, over a snapshot that does not show them yet.
#[derive(Debug)]
pub struct Overlay<K, V> {
    changes: RwLock<HashMap<K, Change<V>>>,
    /// Whether `changes` may be non-empty: lookups skip the lock when it is not.
    any: AtomicBool,
}

impl<K, V> Default for Overlay<K, V> {
    fn default() -> Self {
        Overlay {
            changes: RwLock::new(HashMap::default()),
            any: AtomicBool::new(false),
        }
    }
}

/// What the overlay says of a key.
#[derive(Clone, Debug, PartialEq)]
pub enum Pushed<V> {
    /// Nothing pushed: the snapshot answers.
    Unchanged,
    /// The key's value now.
    Set(V),
    /// The key is gone.
    Removed,
}

impl<K: Eq + Hash, V: Clone> Overlay<K, V> {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, Change<V>>> {
        // A panic while the lock was held left a map that is whole (every write is
        // one insert or one retain), so a poisoned lock is still good to read.
        self.changes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<K, Change<V>>> {
        self.changes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What was pushed for `key`.
    pub fn get<Q>(&self, key: &Q) -> Pushed<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if !self.any.load(Ordering::Acquire) {
            return Pushed::Unchanged;
        }
        match self.read().get(key) {
            None => Pushed::Unchanged,
            Some(Change { value: Some(v), .. }) => Pushed::Set(v.clone()),
            Some(Change { value: None, .. }) => Pushed::Removed,
        }
    }

    /// Records push number `push`: `Some` sets the key, `None` removes it.
    pub fn set(&self, key: K, push: u64, value: Option<V>) {
        let mut changes = self.write();
        match changes.entry(key) {
            // Pushes apply in the order they were numbered; one that lost a race for
            // the lock to a later one does not undo it.
            Entry::Occupied(slot) if slot.get().push > push => {}
            Entry::Occupied(mut slot) => {
                slot.insert(Change { push, value });
            }
            Entry::Vacant(slot) => {
                slot.insert(Change { push, value });
            }
        }
        self.any.store(true, Ordering::Release);
    }

    /// Whether a change numbered after `push` is laid over `key`.
    pub fn pushed_after<Q>(&self, key: &Q, push: u64) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.any.load(Ordering::Acquire) && self.read().get(key).is_some_and(|c| c.push > push)
    }

    /// Drops the changes numbered up to `shown`: a snapshot that shows them is in
    /// service. Returns how many stay.
    pub fn settle(&self, shown: u64) -> usize {
        let mut changes = self.write();
        changes.retain(|_, change| change.push > shown);
        let left = changes.len();
        self.any.store(left > 0, Ordering::Release);
        left
    }

    /// How many keys a snapshot of `loaded` keys has with the changes laid over it;
    /// `has` says whether the snapshot has a key.
    pub fn count_over(&self, loaded: usize, has: impl Fn(&K) -> bool) -> usize {
        if !self.any.load(Ordering::Acquire) {
            return loaded;
        }
        let mut count = loaded;
        for (key, change) in self.read().iter() {
            match (has(key), change.value.is_some()) {
                (false, true) => count += 1,
                (true, false) => count = count.saturating_sub(1),
                _ => {}
            }
        }
        count
    }

    /// The keys pushed with a value (not removed) that `loaded` does not have: with
    /// the loaded keys, every key a snapshot shows.
    pub fn added(&self, loaded: impl Fn(&K) -> bool) -> Vec<K>
    where
        K: Clone,
    {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.read()
            .iter()
            .filter(|(key, change)| change.value.is_some() && !loaded(key))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The keys and values of the changes in effect (`None`: removed).
    pub fn entries(&self) -> Vec<(K, Option<V>)>
    where
        K: Clone,
    {
        self.read()
            .iter()
            .map(|(k, change)| (k.clone(), change.value.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        if !self.any.load(Ordering::Acquire) {
            return 0;
        }
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many rows a reload changed that pushes should have brought: the rows it
/// loaded (`loaded`) that are not the `same` as what the snapshot before showed
/// (`was`, loaded or pushed), and the keys that snapshot showed (`shown_before`) that
/// the load did not find (`found`). Keys pushed after the load began
/// (`pushed_later`) are left out: the load could not see them.
pub fn drift<'a, K: 'a, V>(
    loaded: impl Iterator<Item = (&'a K, V)>,
    shown_before: impl Iterator<Item = &'a K>,
    was: impl Fn(&K) -> Option<V>,
    same: impl Fn(&V, &V) -> bool,
    found: impl Fn(&K) -> bool,
    pushed_later: impl Fn(&K) -> bool,
) -> u64 {
    let changed = loaded.filter(|(key, now)| {
        !pushed_later(key) && !was(key).is_some_and(|before| same(&before, now))
    });
    let gone = shown_before.filter(|key| !found(key) && !pushed_later(key) && was(key).is_some());
    (changed.count() + gone.count()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_is_seen_until_a_load_that_began_after_it_is_in_service() {
        let clock = PushClock::default();
        let overlay: Overlay<u32, &str> = Overlay::default();
        assert_eq!(overlay.get(&1), Pushed::Unchanged);

        let first = clock.next();
        overlay.set(1, first, Some("one"));
        let load_began = clock.now();
        let second = clock.next();
        overlay.set(2, second, None);
        assert_eq!(overlay.get(&1), Pushed::Set("one"));
        assert_eq!(overlay.get(&2), Pushed::Removed);
        assert!(overlay.pushed_after(&2, load_began));
        assert!(!overlay.pushed_after(&1, load_began));

        // The load's rows show push 1, not push 2.
        assert_eq!(overlay.settle(load_began), 1);
        assert_eq!(overlay.get(&1), Pushed::Unchanged);
        assert_eq!(overlay.get(&2), Pushed::Removed);
        assert_eq!(overlay.settle(clock.now()), 0);
        assert_eq!(overlay.get(&2), Pushed::Unchanged);
        assert!(overlay.is_empty());
    }

    #[test]
    fn an_older_push_never_overwrites_a_newer_one() {
        let overlay: Overlay<u32, u8> = Overlay::default();
        overlay.set(7, 5, Some(5));
        overlay.set(7, 4, Some(4));
        assert_eq!(overlay.get(&7), Pushed::Set(5));
        overlay.set(7, 6, None);
        assert_eq!(overlay.get(&7), Pushed::Removed);
    }
}
