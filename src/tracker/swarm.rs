//! One torrent's peers: seeders and leechers, kept compact for the many small swarms
//! and in hash maps for the big ones.

use std::net::IpAddr;

use rand::Rng;

use super::hash::{HashSet, IndexMap};
use super::types::{ClientId, PeerId, UserId};

/// A peer is a (user, peer_id) pair: two users may run clients with the same peer_id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerKey {
    pub user: UserId,
    pub peer_id: PeerId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub ip: IpAddr,
    pub port: u16,
    /// The counters of the last announce: the baseline for the next deltas.
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub start_time: i64,
    pub last_announce: i64,
    pub client_id: ClientId,
}

/// A peer handed out in an announce response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectedPeer {
    pub peer_id: PeerId,
    pub ip: IpAddr,
    pub port: u16,
}

/// Seeders and leechers of one torrent; a key is in at most one of the two.
///
/// Most torrents of a site have no peers, and most of the rest a handful; a pair of
/// hash maps for each would cost far more memory than the peers themselves. So a swarm
/// is empty (no allocation), a short list searched linearly, or — past
/// [`SMALL_MAX`] peers — two insertion-ordered maps, one per set, in which a peer is
/// found in O(1) and picked by index for random-order peer lists.
#[derive(Default, Debug)]
pub struct Swarm {
    repr: Repr,
}

/// Largest swarm kept as a list.
const SMALL_MAX: usize = 16;
/// A map-backed swarm shrinking to this many peers goes back to a list (below
/// [`SMALL_MAX`], so a swarm at the edge does not convert back and forth).
const SMALL_AGAIN: usize = 8;

#[derive(Default, Debug)]
enum Repr {
    #[default]
    Empty,
    Small(Vec<Entry>),
    Large(Box<Sets>),
}

#[derive(Clone, Debug)]
struct Entry {
    key: PeerKey,
    peer: Peer,
    seeding: bool,
}

#[derive(Default, Debug)]
struct Sets {
    seeders: IndexMap<PeerKey, Peer>,
    leechers: IndexMap<PeerKey, Peer>,
}

impl Sets {
    fn len(&self) -> usize {
        self.seeders.len() + self.leechers.len()
    }
}

/// Appends to a short list one slot at a time: a list of three peers holds three.
fn push_exact(list: &mut Vec<Entry>, entry: Entry) -> usize {
    if list.len() == list.capacity() {
        list.reserve_exact(1);
    }
    list.push(entry);
    list.len() - 1
}

impl Swarm {
    pub fn seeders(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Small(list) => list.iter().filter(|e| e.seeding).count(),
            Repr::Large(sets) => sets.seeders.len(),
        }
    }

    pub fn leechers(&self) -> usize {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Small(list) => list.iter().filter(|e| !e.seeding).count(),
            Repr::Large(sets) => sets.leechers.len(),
        }
    }

    /// After removals: an empty swarm frees its storage, a small map-backed one goes
    /// back to a list.
    fn settle(&mut self) {
        match &mut self.repr {
            Repr::Small(list) if list.is_empty() => self.repr = Repr::Empty,
            Repr::Small(list) if list.capacity() > 2 * list.len() => list.shrink_to_fit(),
            Repr::Large(sets) if sets.len() == 0 => self.repr = Repr::Empty,
            Repr::Large(sets) if sets.len() <= SMALL_AGAIN => {
                let mut list = Vec::with_capacity(sets.len());
                let seeders = sets.seeders.drain(..).map(|(key, peer)| Entry {
                    key,
                    peer,
                    seeding: true,
                });
                let leechers = sets.leechers.drain(..).map(|(key, peer)| Entry {
                    key,
                    peer,
                    seeding: false,
                });
                list.extend(seeders.chain(leechers));
                self.repr = Repr::Small(list);
            }
            _ => {}
        }
    }

    /// A list grown past [`SMALL_MAX`] becomes two maps.
    fn grow(&mut self) {
        if let Repr::Small(list) = &mut self.repr {
            if list.len() > SMALL_MAX {
                let mut sets = Box::<Sets>::default();
                for entry in list.drain(..) {
                    let set = if entry.seeding {
                        &mut sets.seeders
                    } else {
                        &mut sets.leechers
                    };
                    set.insert(entry.key, entry.peer);
                }
                self.repr = Repr::Large(sets);
            }
        }
    }

    /// Makes sure `key` is in the set matching `seeding`, moving it from the other set
    /// (baseline and times kept) or creating it with `new`. Returns the peer and whether
    /// it existed before.
    pub fn place(
        &mut self,
        key: PeerKey,
        seeding: bool,
        new: impl FnOnce() -> Peer,
    ) -> (&mut Peer, bool) {
        let existed = match &mut self.repr {
            Repr::Empty => {
                self.repr = Repr::Small(Vec::with_capacity(1));
                false
            }
            Repr::Small(list) => match list.iter_mut().find(|e| e.key == key) {
                Some(entry) => {
                    entry.seeding = seeding;
                    true
                }
                None => false,
            },
            Repr::Large(sets) => {
                let (target, other) = if seeding {
                    (&mut sets.seeders, &mut sets.leechers)
                } else {
                    (&mut sets.leechers, &mut sets.seeders)
                };
                if target.contains_key(&key) {
                    true
                } else if let Some(peer) = other.swap_remove(&key) {
                    target.insert(key, peer);
                    true
                } else {
                    false
                }
            }
        };
        if !existed {
            let peer = new();
            match &mut self.repr {
                Repr::Small(list) => {
                    push_exact(list, Entry { key, peer, seeding });
                    self.grow();
                }
                Repr::Large(sets) => {
                    let set = if seeding {
                        &mut sets.seeders
                    } else {
                        &mut sets.leechers
                    };
                    set.insert(key, peer);
                }
                Repr::Empty => {}
            }
        }
        let peer = match &mut self.repr {
            Repr::Small(list) => list.iter_mut().find(|e| e.key == key).map(|e| &mut e.peer),
            Repr::Large(sets) => {
                let set = if seeding {
                    &mut sets.seeders
                } else {
                    &mut sets.leechers
                };
                set.get_mut(&key)
            }
            Repr::Empty => None,
        };
        match peer {
            Some(peer) => (peer, existed),
            // Every branch above left the key in the swarm.
            None => unreachable!("a placed peer is in its swarm"),
        }
    }

    /// Inserts a peer as is (peer cache restore). Replaces any entry with the same key.
    pub fn insert(&mut self, key: PeerKey, peer: Peer, seeding: bool) {
        self.remove(&key);
        let (slot, _) = self.place(key, seeding, || peer.clone());
        *slot = peer;
    }

    pub fn remove(&mut self, key: &PeerKey) -> Option<Peer> {
        let removed = match &mut self.repr {
            Repr::Empty => None,
            Repr::Small(list) => {
                let index = list.iter().position(|e| e.key == *key)?;
                Some(list.swap_remove(index).peer)
            }
            Repr::Large(sets) => sets
                .seeders
                .swap_remove(key)
                .or_else(|| sets.leechers.swap_remove(key)),
        };
        self.settle();
        removed
    }

    /// The peer and whether it is seeding.
    pub fn get(&self, key: &PeerKey) -> Option<(&Peer, bool)> {
        match &self.repr {
            Repr::Empty => None,
            Repr::Small(list) => list
                .iter()
                .find(|e| e.key == *key)
                .map(|e| (&e.peer, e.seeding)),
            Repr::Large(sets) => match sets.seeders.get(key) {
                Some(peer) => Some((peer, true)),
                None => sets.leechers.get(key).map(|peer| (peer, false)),
            },
        }
    }

    /// All peers with their seeding flag.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&PeerKey, &Peer, bool)> + '_> {
        match &self.repr {
            Repr::Empty => Box::new(std::iter::empty()),
            Repr::Small(list) => Box::new(list.iter().map(|e| (&e.key, &e.peer, e.seeding))),
            Repr::Large(sets) => Box::new(
                sets.seeders
                    .iter()
                    .map(|(k, p)| (k, p, true))
                    .chain(sets.leechers.iter().map(|(k, p)| (k, p, false))),
            ),
        }
    }

    /// Drops peers that last announced before `cutoff`; returns how many.
    pub fn purge(&mut self, cutoff: i64) -> usize {
        let purged = match &mut self.repr {
            Repr::Empty => 0,
            Repr::Small(list) => {
                let before = list.len();
                list.retain(|e| e.peer.last_announce >= cutoff);
                before - list.len()
            }
            Repr::Large(sets) => {
                let before = sets.len();
                sets.seeders.retain(|_, peer| peer.last_announce >= cutoff);
                sets.leechers.retain(|_, peer| peer.last_announce >= cutoff);
                before - sets.len()
            }
        };
        self.settle();
        purged
    }

    /// Picks up to `numwant` peers for `me` into `out`, in random order.
    ///
    /// Only other users' peers with a usable port (>= 1024) and an IPv4 address are
    /// eligible. A seeder gets leechers only. A leecher gets seeders first, at most one
    /// per user (several seeds of one user add nothing a single one does not), then
    /// leechers.
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
                Repr::Large(sets) => {
                    let set = if want_seeders {
                        &sets.seeders
                    } else {
                        &sets.leechers
                    };
                    walk_from_random_start(set.len(), rng, |index| {
                        set.get_index(index)
                            .is_none_or(|(key, peer)| visit(key, peer))
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

fn eligible(me: UserId, key: &PeerKey, peer: &Peer) -> bool {
    key.user != me && peer.port >= 1024 && peer.ip.is_ipv4()
}

fn selected(key: &PeerKey, peer: &Peer) -> SelectedPeer {
    SelectedPeer {
        peer_id: key.peer_id,
        ip: peer.ip,
        port: peer.port,
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
        Peer {
            ip: "1.2.3.4".parse().unwrap(),
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            start_time: 0,
            last_announce: 0,
            client_id: ClientId(1),
        }
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
        let (p, existed) = swarm.place(key(1, 1), false, || peer(6881));
        assert!(!existed);
        p.uploaded = 42;
        let (p, existed) = swarm.place(key(1, 1), true, || peer(1));
        assert!(existed);
        assert_eq!((p.uploaded, p.port), (42, 6881));
        assert_eq!((swarm.seeders(), swarm.leechers()), (1, 0));
        let (_, existed) = swarm.place(key(1, 1), false, || peer(1));
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
        let mut v6 = peer(7000);
        v6.ip = "2001:db8::1".parse().unwrap();
        swarm.insert(key(6, 6), v6, false);
        for seed in 0..20 {
            let got = pick(&swarm, 1, true, 50, seed);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].peer_id, PeerId([2; 20]));
        }
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
        swarm.place(key(1, 1), true, || peer(6881));
        assert!(matches!(&swarm.repr, Repr::Small(list) if list.capacity() == 1));
        swarm.remove(&key(1, 1));
        assert!(
            matches!(swarm.repr, Repr::Empty),
            "freed with the last peer"
        );
        let mut old = peer(6881);
        old.last_announce = 5;
        swarm.insert(key(2, 2), old, false);
        assert_eq!(swarm.purge(10), 1);
        assert!(matches!(swarm.repr, Repr::Empty), "freed by the purge too");
        assert_eq!(
            (swarm.seeders(), swarm.leechers(), swarm.iter().count()),
            (0, 0, 0)
        );

        // Past SMALL_MAX peers: maps; back to a list at SMALL_AGAIN; peers kept throughout.
        for n in 0..=SMALL_MAX as u8 {
            let (p, _) = swarm.place(key(u32::from(n), n), n % 3 == 0, || peer(6881));
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
    fn purge_drops_old_peers() {
        let mut swarm = Swarm::default();
        let mut old = peer(6881);
        old.last_announce = 10;
        let mut fresh = peer(6881);
        fresh.last_announce = 20;
        swarm.insert(key(1, 1), old.clone(), true);
        swarm.insert(key(2, 2), fresh, false);
        swarm.insert(key(3, 3), old, false);
        assert_eq!(swarm.purge(20), 2);
        assert_eq!((swarm.seeders(), swarm.leechers()), (0, 1));
    }
}
