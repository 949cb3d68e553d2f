//! One torrent's peers: seeders and leechers, each an insertion-ordered map so a peer
//! is found by key in O(1) and picked by index for random-order peer lists.

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

/// Seeders and leechers of one torrent; a key is in at most one of the two. Most
/// torrents of a site have no peers at a given time, so the two maps live behind one
/// allocation made when the first peer arrives and freed when the last one leaves.
#[derive(Default, Debug)]
pub struct Swarm {
    sets: Option<Box<Sets>>,
}

#[derive(Default, Debug)]
struct Sets {
    seeders: IndexMap<PeerKey, Peer>,
    leechers: IndexMap<PeerKey, Peer>,
}

impl Sets {
    fn is_empty(&self) -> bool {
        self.seeders.is_empty() && self.leechers.is_empty()
    }
}

impl Swarm {
    pub fn seeders(&self) -> usize {
        self.sets.as_ref().map_or(0, |sets| sets.seeders.len())
    }

    pub fn leechers(&self) -> usize {
        self.sets.as_ref().map_or(0, |sets| sets.leechers.len())
    }

    /// Frees the maps once no peer is left.
    fn release_if_empty(&mut self) {
        if self.sets.as_ref().is_some_and(|sets| sets.is_empty()) {
            self.sets = None;
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
        let sets = self.sets.get_or_insert_with(Box::default);
        let (target, other) = if seeding {
            (&mut sets.seeders, &mut sets.leechers)
        } else {
            (&mut sets.leechers, &mut sets.seeders)
        };
        if let Some(index) = target.get_index_of(&key) {
            return (&mut target[index], true);
        }
        let (peer, existed) = match other.swap_remove(&key) {
            Some(peer) => (peer, true),
            None => (new(), false),
        };
        let (index, _) = target.insert_full(key, peer);
        (&mut target[index], existed)
    }

    /// Inserts a peer as is (peer cache restore). Replaces any entry with the same key.
    pub fn insert(&mut self, key: PeerKey, peer: Peer, seeding: bool) {
        self.remove(&key);
        let sets = self.sets.get_or_insert_with(Box::default);
        if seeding {
            sets.seeders.insert(key, peer);
        } else {
            sets.leechers.insert(key, peer);
        }
    }

    pub fn remove(&mut self, key: &PeerKey) -> Option<Peer> {
        let sets = self.sets.as_mut()?;
        let removed = sets
            .seeders
            .swap_remove(key)
            .or_else(|| sets.leechers.swap_remove(key));
        self.release_if_empty();
        removed
    }

    /// The peer and whether it is seeding.
    pub fn get(&self, key: &PeerKey) -> Option<(&Peer, bool)> {
        let sets = self.sets.as_ref()?;
        if let Some(peer) = sets.seeders.get(key) {
            return Some((peer, true));
        }
        sets.leechers.get(key).map(|peer| (peer, false))
    }

    /// All peers with their seeding flag.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerKey, &Peer, bool)> {
        self.sets.iter().flat_map(|sets| {
            sets.seeders
                .iter()
                .map(|(k, p)| (k, p, true))
                .chain(sets.leechers.iter().map(|(k, p)| (k, p, false)))
        })
    }

    /// Drops peers that last announced before `cutoff`; returns how many.
    pub fn purge(&mut self, cutoff: i64) -> usize {
        let Some(sets) = self.sets.as_mut() else {
            return 0;
        };
        let before = sets.seeders.len() + sets.leechers.len();
        sets.seeders.retain(|_, peer| peer.last_announce >= cutoff);
        sets.leechers.retain(|_, peer| peer.last_announce >= cutoff);
        let purged = before - sets.seeders.len() - sets.leechers.len();
        self.release_if_empty();
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
        let Some(sets) = self.sets.as_ref().filter(|_| numwant > 0) else {
            return;
        };
        if seeding {
            walk_from_random_start(&sets.leechers, rng, |key, peer| {
                if eligible(me, key, peer) {
                    out.push(selected(key, peer));
                }
                out.len() < numwant
            });
            return;
        }
        let mut seen = SeenUsers::default();
        walk_from_random_start(&sets.seeders, rng, |key, peer| {
            if eligible(me, key, peer) && seen.insert(key.user) {
                out.push(selected(key, peer));
            }
            out.len() < numwant
        });
        if out.len() < numwant {
            walk_from_random_start(&sets.leechers, rng, |key, peer| {
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

/// Visits every entry once, starting at a random index and wrapping around, until
/// `visit` returns false.
fn walk_from_random_start(
    peers: &IndexMap<PeerKey, Peer>,
    rng: &mut impl Rng,
    mut visit: impl FnMut(&PeerKey, &Peer) -> bool,
) {
    let len = peers.len();
    if len == 0 {
        return;
    }
    let start = rng.random_range(0..len);
    for offset in 0..len {
        if let Some((key, peer)) = peers.get_index((start + offset) % len) {
            if !visit(key, peer) {
                return;
            }
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
    fn an_empty_swarm_holds_no_maps() {
        let mut swarm = Swarm::default();
        assert!(swarm.sets.is_none());
        swarm.place(key(1, 1), true, || peer(6881));
        assert!(swarm.sets.is_some());
        swarm.remove(&key(1, 1));
        assert!(swarm.sets.is_none(), "freed with the last peer");
        let mut old = peer(6881);
        old.last_announce = 5;
        swarm.insert(key(2, 2), old, false);
        assert_eq!(swarm.purge(10), 1);
        assert!(swarm.sets.is_none(), "freed by the purge too");
        assert_eq!(
            (swarm.seeders(), swarm.leechers(), swarm.iter().count()),
            (0, 0, 0)
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
