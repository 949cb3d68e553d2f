//! One torrent's peers: seeders and leechers, kept compact for the many small swarms
//! and hash-indexed for the big ones.
//!
//! This file holds the [`Swarm`] itself: its forms (empty, a short list, an indexed
//! list) and every change to it. The peer and its parts are in `peer`, the indexed
//! list of a large swarm in `indexed`, and peer selection in `select`.

mod indexed;
mod peer;
mod select;

use super::types::UserId;
use indexed::Indexed;
use peer::expire_counting;

pub use peer::{peer_time, Endpoint, Family, Peer, PeerKey, SelectedPeer, Tally};

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
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::tracker::types::PeerId;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    pub(super) fn key(user: u32, n: u8) -> PeerKey {
        PeerKey {
            user: UserId(user),
            peer_id: PeerId([n; 20]),
        }
    }

    pub(super) fn peer(port: u16) -> Peer {
        Peer::at("1.2.3.4".parse().unwrap(), port, 1)
    }

    /// A peer last seen at `at` over IPv4.
    fn peer_seen(at: i64) -> Peer {
        Peer::at("1.2.3.4".parse().unwrap(), 6881, at)
    }

    pub(super) fn pick(
        swarm: &Swarm,
        me: u32,
        seeding: bool,
        numwant: usize,
        seed: u64,
    ) -> Vec<SelectedPeer> {
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
