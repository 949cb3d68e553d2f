//! The indexed list of a large swarm: one seeders-first list of entries and a hash
//! index from key to position.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::super::hash::RandomState;
use super::super::types::UserId;
use super::peer::{expire_counting, PeerKey, Tally};
use super::Entry;

/// A large swarm: one list of entries, seeders in `entries[..seeders]` and leechers
/// after them, and a hash index from key to position.
///
/// Compared with a map per set, a peer costs its entry plus a 4-byte index slot (no
/// stored hash, no second table), and the list grows by a quarter at a time rather
/// than doubling. Keeping seeders first makes each set a contiguous slice, which is
/// what random selection walks.
#[derive(Debug)]
pub(super) struct Indexed {
    pub(super) entries: Vec<Entry>,
    pub(super) seeders: usize,
    /// Positions in `entries`, hashed by the entry's key.
    index: HashTable<u32>,
    hasher: RandomState,
}

/// The hash of the entry an index slot points at, for the index to grow or shrink.
fn slot_hash<'a>(hasher: &'a RandomState, entries: &'a [Entry]) -> impl Fn(&u32) -> u64 + 'a {
    move |&at| hasher.hash_one(entries[at as usize].key.user)
}

/// An index value no entry has, held for a moment while two positions swap.
const MOVING: u32 = u32::MAX;

impl Indexed {
    pub(super) fn from_entries(mut entries: Vec<Entry>) -> Indexed {
        // Stable: seeders first, each set in its previous order.
        entries.sort_by_key(|entry| !entry.seeding);
        let mut indexed = Indexed {
            seeders: entries.iter().take_while(|entry| entry.seeding).count(),
            entries,
            index: HashTable::new(),
            hasher: RandomState::default(),
        };
        indexed.reindex();
        indexed
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Slots are hashed by the peer's user alone, so that all of a user's peers can be
    /// found from one hash ([`Indexed::user_positions`]) without a second index. A user
    /// has a handful of peers in a swarm (the per-user cap, never more than
    /// [`MAX_PEERS_PER_USER`]), so a lookup compares a handful of entries more than a
    /// per-key hash would; user ids come from the database, not from clients, so
    /// nobody can aim at one hash.
    ///
    /// [`MAX_PEERS_PER_USER`]: super::MAX_PEERS_PER_USER
    fn hash(&self, key: &PeerKey) -> u64 {
        self.hasher.hash_one(key.user)
    }

    /// Positions of `user`'s peers.
    pub(super) fn user_positions(&self, user: UserId) -> impl Iterator<Item = usize> + '_ {
        self.index
            .iter_hash(self.hasher.hash_one(user))
            .map(|&at| at as usize)
            .filter(move |&at| self.entries[at].key.user == user)
    }

    /// Rebuilds the index from the entries.
    fn reindex(&mut self) {
        let Indexed {
            entries,
            index,
            hasher,
            ..
        } = self;
        index.clear();
        index.reserve(entries.len(), slot_hash(hasher, entries));
        for (at, entry) in entries.iter().enumerate() {
            index.insert_unique(
                hasher.hash_one(entry.key.user),
                at as u32,
                slot_hash(hasher, entries),
            );
        }
    }

    pub(super) fn position(&self, key: &PeerKey) -> Option<usize> {
        self.index
            .find(self.hash(key), |&at| self.entries[at as usize].key == *key)
            .map(|&at| at as usize)
    }

    /// Points the index slot of the key hashed to `hash` from position `from` to `to`.
    /// Slots are matched by position, which is unique in the index.
    fn retarget(&mut self, hash: u64, from: u32, to: u32) {
        if let Some(at) = self.index.find_mut(hash, |&at| at == from) {
            *at = to;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let hash_a = self.hash(&self.entries[a].key);
        let hash_b = self.hash(&self.entries[b].key);
        self.retarget(hash_a, a as u32, MOVING);
        self.retarget(hash_b, b as u32, a as u32);
        self.retarget(hash_a, MOVING, b as u32);
        self.entries.swap(a, b);
    }

    /// Adds a peer that is not in the swarm; returns its position.
    pub(super) fn push(&mut self, entry: Entry) -> usize {
        if self.entries.len() == self.entries.capacity() {
            self.entries.reserve_exact((self.entries.len() / 4).max(4));
        }
        let at = self.entries.len();
        let hash = self.hash(&entry.key);
        let seeding = entry.seeding;
        self.entries.push(entry);
        let Indexed {
            entries,
            index,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, at as u32, slot_hash(hasher, entries));
        if !seeding {
            return at;
        }
        self.swap(at, self.seeders);
        self.seeders += 1;
        self.seeders - 1
    }

    /// Moves the entry at `at` into the set matching `seeding`; returns its position.
    pub(super) fn set_seeding(&mut self, at: usize, seeding: bool) -> usize {
        self.entries[at].seeding = seeding;
        if seeding && at >= self.seeders {
            self.swap(at, self.seeders);
            self.seeders += 1;
            self.seeders - 1
        } else if !seeding && at < self.seeders {
            self.seeders -= 1;
            self.swap(at, self.seeders);
            self.seeders
        } else {
            at
        }
    }

    pub(super) fn remove_at(&mut self, at: usize) -> Option<Entry> {
        // A seeder first trades places with the last seeder and leaves the set.
        let at = if at < self.seeders {
            self.seeders -= 1;
            self.swap(at, self.seeders);
            self.seeders
        } else {
            at
        };
        let last = self.entries.len().checked_sub(1)?;
        self.swap(at, last);
        let hash = self.hash(&self.entries[last].key);
        if let Ok(slot) = self.index.find_entry(hash, |&at| at == last as u32) {
            slot.remove();
        }
        let entry = self.entries.pop();
        self.shrink();
        entry
    }

    /// Drops endpoints last seen before `cutoff`, and peers left without one (telling
    /// `left` their users); returns what went.
    pub(super) fn purge(&mut self, cutoff: i64, left: &mut impl FnMut(UserId)) -> Tally {
        let before = self.entries.len();
        // retain keeps the order, so seeders stay first.
        let mut gone = Tally::default();
        self.entries
            .retain_mut(|entry| !expire_counting(entry, cutoff, &mut gone, left));
        if self.entries.len() != before {
            self.seeders = self.entries.iter().take_while(|e| e.seeding).count();
            // The index is stale: emptied before shrinking (which rehashes), then rebuilt.
            self.index.clear();
            self.shrink();
            self.reindex();
        }
        gone
    }

    /// Gives memory back once the list is less than half full.
    fn shrink(&mut self) {
        let len = self.entries.len();
        if self.entries.capacity() > 2 * len + 8 {
            self.entries.shrink_to(len + len / 4);
            let Indexed {
                entries,
                index,
                hasher,
                ..
            } = self;
            index.shrink_to(len, slot_hash(hasher, entries));
        }
    }

    pub(super) fn into_small(self) -> Vec<Entry> {
        let mut list = self.entries;
        list.shrink_to_fit();
        list
    }
}
