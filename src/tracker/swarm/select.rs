//! Peer selection: which peers an announce response hands out, and in what order.

use rand::Rng;

use super::super::hash::HashSet;
use super::super::types::UserId;
use super::{Endpoint, Peer, PeerKey, Repr, SelectedPeer, Swarm};

impl Swarm {
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
    use super::super::tests::{key, peer, pick};
    use super::*;
    use crate::tracker::types::PeerId;

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
}
