//! One torrent's peers: seeders and leechers, kept compact for the many small swarms
//! and hash-indexed for the big ones.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use hashbrown::HashTable;
use rand::Rng;

use super::hash::{HashSet, RandomState};
use super::types::{ClientId, PeerId, UserId};

/// A peer is a (user, peer_id) pair: two users may run clients with the same peer_id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerKey {
    pub user: UserId,
    pub peer_id: PeerId,
}

/// Where a peer can be reached over one address family, and when it last announced
/// over it. A dual-stack client announces over both (BEP 7): one peer, two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<A> {
    pub ip: A,
    pub port: u16,
    /// Unix seconds ([`peer_time`]); never 0, so an absent endpoint costs no tag.
    pub seen: NonZeroU32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub v4: Option<Endpoint<Ipv4Addr>>,
    pub v6: Option<Endpoint<Ipv6Addr>>,
    /// The counters of the last announce, over either family: the baseline for the
    /// next deltas.
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// Unix seconds, see [`peer_time`].
    pub start_time: u32,
    pub client_id: ClientId,
    /// The family of the announce whose `completed` was counted. A dual-stack client
    /// sends `completed` over both families; the second one is the same completion.
    pub completed_over: Option<Family>,
}

/// An address family: which endpoint an announce came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family `ip` counts as (an IPv4-mapped IPv6 address is IPv4).
    pub fn of(ip: IpAddr) -> Family {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Peers and their endpoints by family: what the peer gauges count. A change to a
/// swarm is described by the tally of what it added or removed, so the gauges are kept
/// where peers come and go and are never counted by walking the swarms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub peers: i64,
    /// Endpoints by family; a dual-stack peer counts in both.
    pub v4: i64,
    pub v6: i64,
}

impl Tally {
    /// One peer with its endpoints.
    pub fn of(peer: &Peer) -> Tally {
        Tally {
            peers: 1,
            v4: i64::from(peer.v4.is_some()),
            v6: i64::from(peer.v6.is_some()),
        }
    }
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, other: Tally) -> Tally {
        Tally {
            peers: self.peers + other.peers,
            v4: self.v4 + other.v4,
            v6: self.v6 + other.v6,
        }
    }
}

impl std::ops::Sub for Tally {
    type Output = Tally;
    fn sub(self, other: Tally) -> Tally {
        Tally {
            peers: self.peers - other.peers,
            v4: self.v4 - other.v4,
            v6: self.v6 - other.v6,
        }
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        *self = *self + other;
    }
}

impl Peer {
    /// A peer whose only endpoint is `ip:port`, seen at `now`.
    pub fn at(ip: IpAddr, port: u16, now: i64) -> Peer {
        let mut peer = Peer {
            v4: None,
            v6: None,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            start_time: peer_time(now),
            client_id: ClientId(0),
            completed_over: None,
        };
        peer.set_endpoint(ip, port, now);
        peer
    }

    /// Sets the endpoint of `ip`'s family (an IPv4-mapped IPv6 address is IPv4).
    pub fn set_endpoint(&mut self, ip: IpAddr, port: u16, now: i64) {
        let seen = seen_time(now);
        match ip.to_canonical() {
            IpAddr::V4(ip) => self.v4 = Some(Endpoint { ip, port, seen }),
            IpAddr::V6(ip) => self.v6 = Some(Endpoint { ip, port, seen }),
        }
    }

    /// The last announce over either family (0 with no endpoint).
    pub fn last_announce(&self) -> u32 {
        let v4 = self.v4.map_or(0, |e| e.seen.get());
        let v6 = self.v6.map_or(0, |e| e.seen.get());
        v4.max(v6)
    }

    /// Drops the endpoints last seen before `cutoff`; true when none is left.
    pub fn expire(&mut self, cutoff: i64) -> bool {
        let stale = |seen: NonZeroU32| i64::from(seen.get()) < cutoff;
        if self.v4.is_some_and(|e| stale(e.seen)) {
            self.v4 = None;
        }
        if self.v6.is_some_and(|e| stale(e.seen)) {
            self.v6 = None;
        }
        self.v4.is_none() && self.v6.is_none()
    }
}

/// Expires the stale endpoints of the peer in `entry`, adding what went to `gone`;
/// true when the peer has no endpoint left (and goes too: `left` is told its user).
fn expire_counting(
    entry: &mut Entry,
    cutoff: i64,
    gone: &mut Tally,
    left: &mut impl FnMut(UserId),
) -> bool {
    let before = Tally::of(&entry.peer);
    let empty = entry.peer.expire(cutoff);
    *gone += if empty {
        left(entry.key.user);
        before
    } else {
        before - Tally::of(&entry.peer)
    };
    empty
}

fn seen_time(now: i64) -> NonZeroU32 {
    NonZeroU32::new(peer_time(now)).unwrap_or(NonZeroU32::MIN)
}

/// A Unix time as a peer stores it: 32 bits (enough until 2106) keep a peer, of which
/// a tracker holds hundreds of thousands, 8 bytes smaller. Out-of-range times clamp.
pub fn peer_time(unix: i64) -> u32 {
    unix.clamp(0, i64::from(u32::MAX)) as u32
}

/// A peer handed out in an announce response: its usable endpoints (at least one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectedPeer {
    pub peer_id: PeerId,
    pub v4: Option<(Ipv4Addr, u16)>,
    pub v6: Option<(Ipv6Addr, u16)>,
}

/// Seeders and leechers of one torrent; a key is in at most one of the two.
///
/// Most torrents of a site have no peers, and most of the rest a handful; hash maps
/// for each would cost far more memory than the peers themselves. So a swarm is empty
/// (no allocation), a short list searched linearly, or — past [`SMALL_MAX`] peers — an
/// [`Indexed`] list: seeders first, found in O(1) through a hash index of positions,
/// picked by position for random-order peer lists.
#[derive(Default, Debug)]
pub struct Swarm {
    repr: Repr,
}

/// Largest swarm kept as a plain list.
const SMALL_MAX: usize = 16;

/// The most peers one user ever has in one swarm, whatever the configured cap: the
/// index hashes a user's peers alike ([`Indexed::hash`]), so finding one costs up to
/// this many comparisons, never a swarm's worth.
pub const MAX_PEERS_PER_USER: usize = 1000;
/// An indexed swarm shrinking to this many peers goes back to a plain list (below
/// [`SMALL_MAX`], so a swarm at the edge does not convert back and forth).
const SMALL_AGAIN: usize = 8;

#[derive(Default, Debug)]
enum Repr {
    #[default]
    Empty,
    Small(Vec<Entry>),
    Large(Box<Indexed>),
}

#[derive(Clone, Debug)]
struct Entry {
    key: PeerKey,
    peer: Peer,
    seeding: bool,
}

// Memory per peer is the entry: keep it from growing unnoticed.
const _: () = assert!(std::mem::size_of::<Entry>() <= 104);

/// Appends to a short list one slot at a time: a list of three peers holds three.
fn push_exact(list: &mut Vec<Entry>, entry: Entry) -> usize {
    if list.len() == list.capacity() {
        list.reserve_exact(1);
    }
    list.push(entry);
    list.len() - 1
}

/// A large swarm: one list of entries, seeders in `entries[..seeders]` and leechers
/// after them, and a hash index from key to position.
///
/// Compared with a map per set, a peer costs its entry plus a 4-byte index slot (no
/// stored hash, no second table), and the list grows by a quarter at a time rather
/// than doubling. Keeping seeders first makes each set a contiguous slice, which is
/// what random selection walks.
#[derive(Debug)]
struct Indexed {
    entries: Vec<Entry>,
    seeders: usize,
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
    fn from_entries(mut entries: Vec<Entry>) -> Indexed {
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

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Slots are hashed by the peer's user alone, so that all of a user's peers can be
    /// found from one hash ([`Indexed::user_positions`]) without a second index. A user
    /// has a handful of peers in a swarm (the per-user cap, never more than
    /// [`MAX_PEERS_PER_USER`]), so a lookup compares a handful of entries more than a
    /// per-key hash would; user ids come from the database, not from clients, so
    /// nobody can aim at one hash.
    fn hash(&self, key: &PeerKey) -> u64 {
        self.hasher.hash_one(key.user)
    }

    /// Positions of `user`'s peers.
    fn user_positions(&self, user: UserId) -> impl Iterator<Item = usize> + '_ {
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

    fn position(&self, key: &PeerKey) -> Option<usize> {
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
    fn push(&mut self, entry: Entry) -> usize {
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
    fn set_seeding(&mut self, at: usize, seeding: bool) -> usize {
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

    fn remove_at(&mut self, at: usize) -> Option<Entry> {
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
    fn purge(&mut self, cutoff: i64, left: &mut impl FnMut(UserId)) -> Tally {
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

    fn into_small(self) -> Vec<Entry> {
        let mut list = self.entries;
        list.shrink_to_fit();
        list
    }
}

/// Where a placed peer ended up.
enum Placed {
    Small(usize),
    Large(usize),
}

impl Swarm {
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Empty => true,
            Repr::Small(list) => list.is_empty(),
            Repr::Large(indexed) => indexed.len() == 0,
        }
    }

    pub fn seeders(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Small(list) => list.iter().filter(|e| e.seeding).count(),
            Repr::Large(indexed) => indexed.seeders,
        }
    }

    pub fn leechers(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Small(list) => list.iter().filter(|e| !e.seeding).count(),
            Repr::Large(indexed) => indexed.len() - indexed.seeders,
        }
    }

    /// After removals: an empty swarm frees its storage, a small indexed one goes back
    /// to a plain list.
    fn settle(&mut self) {
        self.repr = match std::mem::take(&mut self.repr) {
            Repr::Small(list) if list.is_empty() => Repr::Empty,
            Repr::Small(mut list) => {
                if list.capacity() > 2 * list.len() {
                    list.shrink_to_fit();
                }
                Repr::Small(list)
            }
            Repr::Large(indexed) if indexed.len() == 0 => Repr::Empty,
            Repr::Large(indexed) if indexed.len() <= SMALL_AGAIN => {
                Repr::Small(indexed.into_small())
            }
            other => other,
        };
    }

    /// Makes sure `key` is in the set matching `seeding`, moving it from the other set
    /// (baseline and times kept) or creating it with `new`. Returns the peer and whether
    /// it existed before.
    ///
    /// A new peer of a user who already has `cap` peers here first makes room: the
    /// user's least recently seen peer leaves and is handed to `evicted`. A client that
    /// restarts under a new peer_id keeps working, and a user flooding a swarm with
    /// peer_ids only churns their own peers.
    pub fn place(
        &mut self,
        key: PeerKey,
        seeding: bool,
        cap: usize,
        mut evicted: impl FnMut(PeerKey, Peer),
        new: impl FnOnce() -> Peer,
    ) -> (&mut Peer, bool) {
        let found = match &mut self.repr {
            Repr::Empty => None,
            Repr::Small(list) => list.iter().position(|e| e.key == key).map(|at| {
                list[at].seeding = seeding;
                Placed::Small(at)
            }),
            Repr::Large(indexed) => indexed
                .position(&key)
                .map(|at| Placed::Large(indexed.set_seeding(at, seeding))),
        };
        let existed = found.is_some();
        let placed = match found {
            Some(placed) => placed,
            None => {
                self.make_room(key.user, cap, &mut evicted);
                let entry = Entry {
                    key,
                    peer: new(),
                    seeding,
                };
                self.push_new(entry)
            }
        };
        let peer = match (&mut self.repr, placed) {
            (Repr::Small(list), Placed::Small(at)) => list.get_mut(at),
            (Repr::Large(indexed), Placed::Large(at)) => indexed.entries.get_mut(at),
            _ => None,
        };
        match peer {
            Some(entry) => (&mut entry.peer, existed),
            // Every branch above left the key in the swarm at the position it returned.
            None => unreachable!("a placed peer is in its swarm"),
        }
    }

    /// Adds an entry whose key is not in the swarm, switching to the indexed form past
    /// [`SMALL_MAX`] peers; returns where it went.
    fn push_new(&mut self, entry: Entry) -> Placed {
        if let Repr::Small(list) = &mut self.repr {
            if list.len() >= SMALL_MAX {
                let list = std::mem::take(list);
                self.repr = Repr::Large(Box::new(Indexed::from_entries(list)));
            }
        }
        match &mut self.repr {
            Repr::Empty => {
                self.repr = Repr::Small(vec![entry]);
                Placed::Small(0)
            }
            Repr::Small(list) => Placed::Small(push_exact(list, entry)),
            Repr::Large(indexed) => Placed::Large(indexed.push(entry)),
        }
    }

    /// While `user` has `cap` peers or more here, removes the one it announced from
    /// least recently (the first such on a tie). Costs O(the user's peers here).
    fn make_room(&mut self, user: UserId, cap: usize, evicted: &mut impl FnMut(PeerKey, Peer)) {
        fn stalest(peers: impl Iterator<Item = (usize, u32)>) -> (usize, Option<usize>) {
            let mut count = 0;
            let mut oldest: Option<(usize, u32)> = None;
            for (at, seen) in peers {
                count += 1;
                if oldest.is_none_or(|(_, best)| seen < best) {
                    oldest = Some((at, seen));
                }
            }
            (count, oldest.map(|(at, _)| at))
        }
        loop {
            let gone = match &mut self.repr {
                Repr::Empty => return,
                Repr::Small(list) => {
                    let mine = list
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| e.key.user == user)
                        .map(|(at, e)| (at, e.peer.last_announce()));
                    match stalest(mine) {
                        (count, Some(at)) if count >= cap => list.swap_remove(at),
                        _ => return,
                    }
                }
                Repr::Large(indexed) => {
                    let mine = indexed
                        .user_positions(user)
                        .map(|at| (at, indexed.entries[at].peer.last_announce()));
                    match stalest(mine) {
                        (count, Some(at)) if count >= cap => match indexed.remove_at(at) {
                            Some(entry) => entry,
                            None => return,
                        },
                        _ => return,
                    }
                }
            };
            evicted(gone.key, gone.peer);
        }
    }

    /// Inserts a peer as is (peer cache restore). Replaces any entry with the same key.
    /// Even a cache written without a cap holds at most [`MAX_PEERS_PER_USER`] of one
    /// user's peers here afterwards (the least recently seen make room).
    pub fn insert(&mut self, key: PeerKey, peer: Peer, seeding: bool) {
        self.remove(&key);
        let (slot, _) = self.place(key, seeding, MAX_PEERS_PER_USER, |_, _| {}, || peer.clone());
        *slot = peer;
    }

    pub fn remove(&mut self, key: &PeerKey) -> Option<Peer> {
        let removed = match &mut self.repr {
            Repr::Empty => None,
            Repr::Small(list) => {
                let at = list.iter().position(|e| e.key == *key)?;
                Some(list.swap_remove(at).peer)
            }
            Repr::Large(indexed) => {
                let at = indexed.position(key)?;
                indexed.remove_at(at).map(|entry| entry.peer)
            }
        };
        self.settle();
        removed
    }

    /// The peer and whether it is seeding.
    pub fn get(&self, key: &PeerKey) -> Option<(&Peer, bool)> {
        let entry = match &self.repr {
            Repr::Empty => None,
            Repr::Small(list) => list.iter().find(|e| e.key == *key),
            Repr::Large(indexed) => indexed.position(key).map(|at| &indexed.entries[at]),
        };
        entry.map(|e| (&e.peer, e.seeding))
    }

    /// All peers with their seeding flag.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerKey, &Peer, bool)> + '_ {
        let entries: &[Entry] = match &self.repr {
            Repr::Empty => &[],
            Repr::Small(list) => list,
            Repr::Large(indexed) => &indexed.entries,
        };
        entries.iter().map(|e| (&e.key, &e.peer, e.seeding))
    }

    /// Drops endpoints last seen before `cutoff`, and peers left without one; returns
    /// what went (endpoints of peers that stay included).
    pub fn purge(&mut self, cutoff: i64) -> Tally {
        self.purge_telling(cutoff, |_| {})
    }

    /// [`Swarm::purge`], telling `left` the user of each peer that went (once per
    /// peer: a user with two peers gone is told twice).
    pub fn purge_telling(&mut self, cutoff: i64, mut left: impl FnMut(UserId)) -> Tally {
        let gone = match &mut self.repr {
            Repr::Empty => Tally::default(),
            Repr::Small(list) => {
                let mut gone = Tally::default();
                list.retain_mut(|e| !expire_counting(e, cutoff, &mut gone, &mut left));
                gone
            }
            Repr::Large(indexed) => indexed.purge(cutoff, &mut left),
        };
        self.settle();
        gone
    }

    /// Every peer and endpoint here. Walks the swarm: for the rare whole-swarm changes
    /// (a torrent leaving the catalogue, the peer cache adopted at start).
    pub fn tally(&self) -> Tally {
        self.iter()
            .fold(Tally::default(), |sum, (_, peer, _)| sum + Tally::of(peer))
    }

    /// Picks up to `numwant` peers for `me` into `out`, in random order.
    ///
    /// Only other users' peers with an endpoint on a usable port (>= 1024) are
    /// eligible; `numwant` counts peers, not endpoints. A seeder gets leechers only. A
    /// leecher gets seeders first, at most one per user (several seeds of one user add
    /// nothing a single one does not), then leechers.
    pub fn select(
        &self,
        me: UserId,
        seeding: bool,
        numwant: usize,
        rng: &mut impl Rng,
        out: &mut Vec<SelectedPeer>,
    ) {
        if numwant == 0 {
            return;
        }
        // Walks the seeders (`want_seeders`) or the leechers from a random start.
        let mut walk =
            |want_seeders: bool, visit: &mut dyn FnMut(&PeerKey, &Peer) -> bool| match &self.repr {
                Repr::Empty => {}
                Repr::Small(list) => walk_from_random_start(list.len(), rng, |index| {
                    let entry = &list[index];
                    entry.seeding != want_seeders || visit(&entry.key, &entry.peer)
                }),
                Repr::Large(indexed) => {
                    let set = if want_seeders {
                        &indexed.entries[..indexed.seeders]
                    } else {
                        &indexed.entries[indexed.seeders..]
                    };
                    walk_from_random_start(set.len(), rng, |index| {
                        let entry = &set[index];
                        visit(&entry.key, &entry.peer)
                    })
                }
            };
        if seeding {
            walk(false, &mut |key, peer| {
                if eligible(me, key, peer) {
                    out.push(selected(key, peer));
                }
                out.len() < numwant
            });
            return;
        }
        let mut seen = SeenUsers::default();
        walk(true, &mut |key, peer| {
            if eligible(me, key, peer) && seen.insert(key.user) {
                out.push(selected(key, peer));
            }
            out.len() < numwant
        });
        if out.len() < numwant {
            walk(false, &mut |key, peer| {
                if eligible(me, key, peer) {
                    out.push(selected(key, peer));
                }
                out.len() < numwant
            });
        }
    }
}

/// Ports below 1024 are not handed out: no client listens there, and a swarm must not
/// point clients at a privileged service.
fn usable<A>(endpoint: Option<Endpoint<A>>) -> Option<(A, u16)> {
    endpoint.filter(|e| e.port >= 1024).map(|e| (e.ip, e.port))
}

fn eligible(me: UserId, key: &PeerKey, peer: &Peer) -> bool {
    key.user != me && (usable(peer.v4).is_some() || usable(peer.v6).is_some())
}

fn selected(key: &PeerKey, peer: &Peer) -> SelectedPeer {
    SelectedPeer {
        peer_id: key.peer_id,
        v4: usable(peer.v4),
        v6: usable(peer.v6),
    }
}

/// Visits every index below `len` once, starting at a random one and wrapping
/// around, until `visit` returns false.
fn walk_from_random_start(len: usize, rng: &mut impl Rng, mut visit: impl FnMut(usize) -> bool) {
    if len == 0 {
        return;
    }
    let start = rng.random_range(0..len);
    for offset in 0..len {
        if !visit((start + offset) % len) {
            return;
        }
    }
}

/// User ids already given a seeder: a short list in the usual case (numwant is small),
/// a set once it grows, so a large numwant stays linear.
#[derive(Default)]
struct SeenUsers {
    few: Vec<UserId>,
    many: HashSet<UserId>,
}

impl SeenUsers {
    const FEW: usize = 64;

    /// Returns true when `user` was not seen before.
    fn insert(&mut self, user: UserId) -> bool {
        if self.few.len() < Self::FEW {
            if self.few.contains(&user) {
                return false;
            }
            self.few.push(user);
            return true;
        }
        if self.few.contains(&user) {
            return false;
        }
        self.many.insert(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn key(user: u32, n: u8) -> PeerKey {
        PeerKey {
            user: UserId(user),
            peer_id: PeerId([n; 20]),
        }
    }

    fn peer(port: u16) -> Peer {
        Peer::at("1.2.3.4".parse().unwrap(), port, 1)
    }

    /// A peer last seen at `at` over IPv4.
    fn peer_seen(at: i64) -> Peer {
        Peer::at("1.2.3.4".parse().unwrap(), 6881, at)
    }

    fn pick(swarm: &Swarm, me: u32, seeding: bool, numwant: usize, seed: u64) -> Vec<SelectedPeer> {
        let mut out = Vec::new();
        swarm.select(
            UserId(me),
            seeding,
            numwant,
            &mut SmallRng::seed_from_u64(seed),
            &mut out,
        );
        out
    }

    #[test]
    fn place_moves_between_sets_keeping_the_peer() {
        let mut swarm = Swarm::default();
        let (p, existed) = swarm.place(key(1, 1), false, usize::MAX, |_, _| {}, || peer(6881));
        assert!(!existed);
        p.uploaded = 42;
        let (p, existed) = swarm.place(key(1, 1), true, usize::MAX, |_, _| {}, || peer(1));
        assert!(existed);
        assert_eq!((p.uploaded, p.v4.map(|e| e.port)), (42, Some(6881)));
        assert_eq!((swarm.seeders(), swarm.leechers()), (1, 0));
        let (_, existed) = swarm.place(key(1, 1), false, usize::MAX, |_, _| {}, || peer(1));
        assert!(existed);
        assert_eq!((swarm.seeders(), swarm.leechers()), (0, 1));
    }

    #[test]
    fn seeders_get_only_other_users_leechers_with_real_ports() {
        let mut swarm = Swarm::default();
        swarm.insert(key(1, 1), peer(6881), false); // own user
        swarm.insert(key(2, 2), peer(6881), false);
        swarm.insert(key(3, 3), peer(1023), false); // privileged port
        swarm.insert(key(4, 4), peer(0), false);
        swarm.insert(key(5, 5), peer(7000), true); // a seeder
                                                   // IPv6 only, on a privileged port: not eligible either.
        swarm.insert(
            key(6, 6),
            Peer::at("2a00::6".parse().unwrap(), 443, 1),
            false,
        );
        for seed in 0..20 {
            let got = pick(&swarm, 1, true, 50, seed);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].peer_id, PeerId([2; 20]));
            assert_eq!(got[0].v4, Some(("1.2.3.4".parse().unwrap(), 6881)));
            assert_eq!(got[0].v6, None);
        }
    }

    #[test]
    fn a_peer_is_handed_out_with_each_usable_endpoint() {
        let mut swarm = Swarm::default();
        // Dual stack; IPv6 only; IPv4 on a privileged port with a good IPv6 endpoint.
        let mut dual = peer(6881);
        dual.set_endpoint("2a00::1".parse().unwrap(), 6882, 2);
        swarm.insert(key(2, 2), dual, false);
        swarm.insert(
            key(3, 3),
            Peer::at("2a00::3".parse().unwrap(), 7000, 1),
            false,
        );
        let mut half = peer(80);
        half.set_endpoint("2a00::4".parse().unwrap(), 7001, 2);
        swarm.insert(key(4, 4), half, false);
        let mut got = pick(&swarm, 1, true, 50, 1);
        got.sort_by_key(|p| p.peer_id);
        let endpoints: Vec<_> = got.iter().map(|p| (p.v4, p.v6)).collect();
        let v6 = |s: &str, port| Some((s.parse().unwrap(), port));
        assert_eq!(
            endpoints,
            [
                (
                    Some(("1.2.3.4".parse().unwrap(), 6881)),
                    v6("2a00::1", 6882)
                ),
                (None, v6("2a00::3", 7000)),
                (None, v6("2a00::4", 7001)),
            ]
        );
        // numwant counts peers, not endpoints.
        assert_eq!(pick(&swarm, 1, true, 2, 1).len(), 2);
    }

    #[test]
    fn endpoints_expire_one_by_one() {
        let mut swarm = Swarm::default();
        let mut dual = peer_seen(10);
        dual.set_endpoint("2a00::1".parse().unwrap(), 6882, 20);
        assert_eq!(dual.last_announce(), 20);
        swarm.insert(key(1, 1), dual, true);
        // The IPv4 endpoint is stale, the IPv6 one is not: the peer stays, IPv6 only.
        assert_eq!(swarm.purge(15).peers, 0);
        let (p, _) = swarm.get(&key(1, 1)).unwrap();
        assert_eq!((p.v4, p.v6.map(|e| e.port)), (None, Some(6882)));
        assert_eq!(swarm.purge(21).peers, 1);
        assert_eq!(swarm.seeders(), 0);
    }

    #[test]
    fn a_mapped_address_is_the_ipv4_endpoint() {
        let p = Peer::at("::ffff:1.2.3.4".parse().unwrap(), 6881, 5);
        assert_eq!(p.v4.map(|e| e.ip), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(p.v6, None);
    }

    #[test]
    fn leechers_get_one_seeder_per_user_then_leechers() {
        let mut swarm = Swarm::default();
        for n in 0..5 {
            swarm.insert(key(10, n), peer(6881), true); // five seeders, one user
        }
        swarm.insert(key(11, 20), peer(6881), true);
        swarm.insert(key(12, 30), peer(6881), false);
        swarm.insert(key(13, 31), peer(6881), false);
        swarm.insert(key(1, 40), peer(6881), false); // the announcer
        for seed in 0..20 {
            let got = pick(&swarm, 1, false, 50, seed);
            assert_eq!(got.len(), 4, "seed {seed}");
            let users: Vec<u8> = got.iter().map(|p| p.peer_id.0[0]).collect();
            let seeders_of_10 = users.iter().filter(|&&n| n < 5).count();
            assert_eq!(seeders_of_10, 1);
            assert!(
                users[..2].iter().all(|&n| n < 5 || n == 20),
                "seeders first: {users:?}"
            );
            assert!(users.contains(&20) && users.contains(&30) && users.contains(&31));
        }
    }

    #[test]
    fn numwant_caps_and_order_varies() {
        let mut swarm = Swarm::default();
        for n in 0..30 {
            swarm.insert(key(100 + u32::from(n), n), peer(6881), false);
        }
        assert_eq!(pick(&swarm, 1, true, 7, 1).len(), 7);
        assert!(pick(&swarm, 1, true, 0, 1).is_empty());
        let firsts: std::collections::HashSet<u8> = (0..50)
            .map(|s| pick(&swarm, 1, true, 5, s)[0].peer_id.0[0])
            .collect();
        assert!(firsts.len() > 5, "random start: {firsts:?}");
        // No duplicates even when numwant exceeds the swarm.
        let all = pick(&swarm, 1, true, 100, 3);
        let distinct: std::collections::HashSet<u8> = all.iter().map(|p| p.peer_id.0[0]).collect();
        assert_eq!((all.len(), distinct.len()), (30, 30));
    }

    #[test]
    fn many_seeding_users_with_large_numwant() {
        let mut swarm = Swarm::default();
        for user in 0..200u32 {
            for n in 0..2u8 {
                let mut id = [n; 20];
                id[..4].copy_from_slice(&user.to_be_bytes());
                swarm.insert(
                    PeerKey {
                        user: UserId(1000 + user),
                        peer_id: PeerId(id),
                    },
                    peer(6881),
                    true,
                );
            }
        }
        let got = pick(&swarm, 1, false, 1000, 9);
        assert_eq!(got.len(), 200);
    }

    #[test]
    fn an_empty_swarm_holds_nothing_and_sizes_switch_form() {
        let mut swarm = Swarm::default();
        assert!(matches!(swarm.repr, Repr::Empty));
        swarm.place(key(1, 1), true, usize::MAX, |_, _| {}, || peer(6881));
        assert!(matches!(&swarm.repr, Repr::Small(list) if list.capacity() == 1));
        swarm.remove(&key(1, 1));
        assert!(
            matches!(swarm.repr, Repr::Empty),
            "freed with the last peer"
        );
        swarm.insert(key(2, 2), peer_seen(5), false);
        assert_eq!(swarm.purge(10).peers, 1);
        assert!(matches!(swarm.repr, Repr::Empty), "freed by the purge too");
        assert_eq!(
            (swarm.seeders(), swarm.leechers(), swarm.iter().count()),
            (0, 0, 0)
        );

        // Past SMALL_MAX peers: maps; back to a list at SMALL_AGAIN; peers kept throughout.
        for n in 0..=SMALL_MAX as u8 {
            let (p, _) = swarm.place(
                key(u32::from(n), n),
                n % 3 == 0,
                usize::MAX,
                |_, _| {},
                || peer(6881),
            );
            p.uploaded = u64::from(n);
        }
        assert!(matches!(swarm.repr, Repr::Large(_)));
        assert_eq!((swarm.seeders(), swarm.leechers()), (6, 11));
        for n in 0..=(SMALL_MAX - SMALL_AGAIN) as u8 {
            swarm.remove(&key(u32::from(n), n));
        }
        assert!(matches!(swarm.repr, Repr::Small(_)));
        assert_eq!(swarm.seeders() + swarm.leechers(), SMALL_AGAIN);
        let last = SMALL_MAX as u8;
        assert_eq!(
            swarm
                .get(&key(u32::from(last), last))
                .map(|(p, s)| (p.uploaded, s)),
            Some((16, false))
        );
    }

    #[test]
    fn a_restored_swarm_holds_at_most_the_bound_of_one_users_peers() {
        let mut swarm = Swarm::default();
        for n in 0..MAX_PEERS_PER_USER as u32 + 5 {
            let mut id = [0; 20];
            id[..4].copy_from_slice(&n.to_be_bytes());
            let key = PeerKey {
                user: UserId(1),
                peer_id: PeerId(id),
            };
            swarm.insert(key, peer_seen(i64::from(n) + 1), false);
        }
        swarm.insert(key(2, 2), peer_seen(1), false);
        assert_eq!(swarm.leechers(), MAX_PEERS_PER_USER + 1);
        // The five least recently seen went.
        assert_eq!(swarm.purge(6).peers, 1, "only user 2's peer was that old");
    }

    #[test]
    fn purge_drops_old_peers() {
        let mut swarm = Swarm::default();
        swarm.insert(key(1, 1), peer_seen(10), true);
        swarm.insert(key(2, 2), peer_seen(20), false);
        swarm.insert(key(3, 3), peer_seen(10), false);
        assert_eq!(swarm.purge(20).peers, 2);
        assert_eq!((swarm.seeders(), swarm.leechers()), (0, 1));
    }

    mod model {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Place {
                key: u8,
                seeding: bool,
                at: u32,
                v6: bool,
            },
            Remove {
                key: u8,
            },
            Purge {
                cutoff: i64,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => (0u8..40, any::<bool>(), 1u32..100, any::<bool>())
                    .prop_map(|(key, seeding, at, v6)| Op::Place { key, seeding, at, v6 }),
                2 => (0u8..40).prop_map(|key| Op::Remove { key }),
                1 => (0i64..100).prop_map(|cutoff| Op::Purge { cutoff }),
            ]
        }

        fn model_key(n: u8) -> PeerKey {
            key(u32::from(n % 7), n)
        }

        /// Peers per user: the 40 keys give each of the 7 users about 6.
        const CAP: usize = 4;

        proptest! {
            /// Any sequence of operations leaves the swarm holding exactly what a plain
            /// map would, across the list/indexed switches, with every peer findable
            /// and every selection drawn from the right set.
            #[test]
            fn swarm_matches_a_map(ops in proptest::collection::vec(op(), 1..400)) {
                let mut swarm = Swarm::default();
                // uploaded, seeding, IPv4 and IPv6 endpoint times.
                type Seen = (Option<u32>, Option<u32>);
                let mut model: BTreeMap<PeerKey, (u64, bool, Seen)> = BTreeMap::new();
                let seen = |p: &Peer| (p.v4.map(|e| e.seen.get()), p.v6.map(|e| e.seen.get()));
                for (step, op) in ops.into_iter().enumerate() {
                    match op {
                        Op::Place { key, seeding, at, v6 } => {
                            let k = model_key(key);
                            let ip: IpAddr = if v6 { "2a00::1".parse().unwrap() } else { "1.2.3.4".parse().unwrap() };
                            let mut evicted = Vec::new();
                            let (peer, existed) = swarm.place(
                                k,
                                seeding,
                                CAP,
                                |key, gone| evicted.push((key, gone.last_announce())),
                                || Peer::at(ip, 6881, i64::from(at)),
                            );
                            prop_assert_eq!(existed, model.contains_key(&k));
                            // Each evicted peer was one of the user's least recently seen.
                            for (gone, seen) in evicted {
                                prop_assert_eq!(gone.user, k.user);
                                let last = |v: &(u64, bool, Seen)| v.2 .0.max(v.2 .1).unwrap_or(0);
                                let stalest = model
                                    .iter()
                                    .filter(|(key, _)| key.user == k.user)
                                    .map(|(_, v)| last(v))
                                    .min();
                                prop_assert_eq!(Some(seen), stalest);
                                prop_assert_eq!(model.remove(&gone).map(|v| last(&v)), Some(seen));
                            }
                            if !existed {
                                let mine = model.keys().filter(|key| key.user == k.user).count();
                                prop_assert!(mine < CAP, "room was made: {} peers", mine);
                            }
                            peer.uploaded = step as u64;
                            peer.set_endpoint(ip, 6881, i64::from(at));
                            let entry = model.entry(k).or_insert((0, false, (None, None)));
                            entry.0 = step as u64;
                            entry.1 = seeding;
                            if v6 { entry.2 .1 = Some(at) } else { entry.2 .0 = Some(at) }
                        }
                        Op::Remove { key } => {
                            let k = model_key(key);
                            let removed = swarm.remove(&k).map(|p| p.uploaded);
                            prop_assert_eq!(removed, model.remove(&k).map(|v| v.0));
                        }
                        Op::Purge { cutoff } => {
                            let before = model.len();
                            let fresh = |t: Option<u32>| t.filter(|&t| i64::from(t) >= cutoff);
                            for v in model.values_mut() {
                                v.2 = (fresh(v.2 .0), fresh(v.2 .1));
                            }
                            let mut gone: Vec<UserId> = model
                                .iter()
                                .filter(|(_, v)| v.2 == (None, None))
                                .map(|(k, _)| k.user)
                                .collect();
                            model.retain(|_, v| v.2 != (None, None));
                            let mut told = Vec::new();
                            let tally = swarm.purge_telling(cutoff, |user| told.push(user));
                            prop_assert_eq!(tally.peers, (before - model.len()) as i64);
                            gone.sort_unstable();
                            told.sort_unstable();
                            prop_assert_eq!(told, gone, "each peer gone names its user once");
                        }
                    }
                    let seeders = model.values().filter(|v| v.1).count();
                    prop_assert_eq!(swarm.seeders(), seeders);
                    prop_assert_eq!(swarm.leechers(), model.len() - seeders);
                    for (k, v) in &model {
                        let found = swarm.get(k).map(|(p, s)| (p.uploaded, s, seen(p)));
                        prop_assert_eq!(found, Some(*v));
                    }
                    let mut listed: Vec<_> = swarm
                        .iter()
                        .map(|(k, p, s)| (*k, (p.uploaded, s, seen(p))))
                        .collect();
                    listed.sort_by_key(|(k, _)| *k);
                    prop_assert_eq!(listed, model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
                    // A seeder (user 99, nobody's peer) is offered leechers only, all of them.
                    let offered = pick(&swarm, 99, true, 1000, step as u64);
                    prop_assert_eq!(offered.len(), model.len() - seeders);
                    for selected in offered {
                        let k = PeerKey { user: model.keys().find(|k| k.peer_id == selected.peer_id).map(|k| k.user).unwrap_or(UserId(0)), peer_id: selected.peer_id };
                        prop_assert_eq!(model.get(&k).map(|v| v.1), Some(false));
                    }
                }
            }
        }
    }
}
