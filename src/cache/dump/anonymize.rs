//! `cc anonymize`: a copy of a peer cache safe to share, with new users and random
//! public addresses.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use rand::seq::SliceRandom;
use rand::Rng;

use crate::cache::format::{CacheFile, CachedEndpoint, CachedPeer, CachedTorrent, CachedUser};
use crate::tracker::ip::{is_public_v4, is_public_v6};

const PASSKEY_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A copy safe to share: users renumbered 1…n in random order with new random
/// passkeys of the same length, TrackerHide off and multipliers 1; peers follow their
/// user's new id (ids seen only in peers numbered after n); each endpoint gets a random
/// public address of its family (IPv6 in 2000::/3) and a port in 1024–65535, keeping
/// its last announce. Torrents are unchanged.
pub fn anonymize(file: &CacheFile, rng: &mut impl Rng) -> CacheFile {
    let mut order: Vec<usize> = (0..file.users.len()).collect();
    order.shuffle(rng);
    let mut new_ids: HashMap<u32, u32> = HashMap::new();
    let mut passkeys = HashSet::new();
    let mut users = Vec::with_capacity(file.users.len());
    for (n, &index) in order.iter().enumerate() {
        let user = &file.users[index];
        let id = u32::try_from(n + 1).unwrap_or(u32::MAX);
        new_ids.insert(user.id, id);
        let passkey = loop {
            let candidate: String = (0..user.passkey.len())
                .map(|_| char::from(PASSKEY_ALPHABET[rng.random_range(0..PASSKEY_ALPHABET.len())]))
                .collect();
            if passkeys.insert(candidate.clone()) {
                break candidate;
            }
        };
        users.push(CachedUser {
            passkey,
            id,
            disable_download: user.disable_download,
            tracker_hide: false,
            up_multiplier: 1.0,
            down_multiplier: 1.0,
        });
    }
    let mut next_id = u32::try_from(users.len()).unwrap_or(u32::MAX);
    let torrents = file
        .torrents
        .iter()
        .map(|torrent| CachedTorrent {
            peers: torrent
                .peers
                .iter()
                .map(|peer| {
                    let user_id = *new_ids.entry(peer.user_id).or_insert_with(|| {
                        next_id = next_id.saturating_add(1);
                        next_id
                    });
                    CachedPeer {
                        user_id,
                        v4: peer.v4.map(|e| CachedEndpoint {
                            ip: random_public_v4(rng),
                            port: rng.random_range(1024..=65535),
                            last_announce: e.last_announce,
                        }),
                        v6: peer.v6.map(|e| CachedEndpoint {
                            ip: random_public_v6(rng),
                            port: rng.random_range(1024..=65535),
                            last_announce: e.last_announce,
                        }),
                        ..*peer
                    }
                })
                .collect(),
            ..torrent.clone()
        })
        .collect();
    CacheFile {
        written_at: file.written_at,
        users,
        torrents,
    }
}

fn random_public_v4(rng: &mut impl Rng) -> Ipv4Addr {
    loop {
        let ip = Ipv4Addr::from(rng.random::<u32>());
        if is_public_v4(ip) {
            return ip;
        }
    }
}

/// A random global unicast IPv6 address (2000::/3) that a client could claim as its
/// own: not documentation space.
fn random_public_v6(rng: &mut impl Rng) -> Ipv6Addr {
    loop {
        let ip = Ipv6Addr::from((rng.random::<u128>() >> 3) | (1 << 125));
        if is_public_v6(ip) {
            return ip;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::dump::tests::sample;
    use crate::cache::dump::to_json;
    use crate::cache::format::{decode, encode};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn anonymize_renumbers_and_scrubs() {
        let file = sample();
        let anon = anonymize(&file, &mut SmallRng::seed_from_u64(5));
        let mut ids: Vec<u32> = anon.users.iter().map(|u| u.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2]);
        for user in &anon.users {
            assert_eq!(user.passkey.len(), 4);
            assert!(user.passkey.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(!user.tracker_hide);
            assert_eq!((user.up_multiplier, user.down_multiplier), (1.0, 1.0));
        }
        let by_passkey = |id| anon.users.iter().find(|u| u.id == id).unwrap();
        let old_4 = anon.users.iter().find(|u| u.disable_download).unwrap().id;
        let peers = &anon.torrents[0].peers;
        assert_eq!(peers[1].user_id, old_4, "a peer follows its user");
        assert_eq!(peers[2].user_id, 3, "ids seen only in peers come after n");
        assert!(by_passkey(1).passkey != "aaaa" || by_passkey(2).passkey != "bbbb");
        for (peer, old) in peers.iter().zip(&file.torrents[0].peers) {
            assert_eq!(peer.v4.is_some(), old.v4.is_some(), "endpoints kept");
            assert_eq!(peer.v6.is_some(), old.v6.is_some(), "endpoints kept");
            if let (Some(v4), Some(old)) = (peer.v4, old.v4) {
                assert!(is_public_v4(v4.ip));
                assert_ne!(v4.ip, old.ip);
                assert!(v4.port >= 1024);
                assert_eq!(v4.last_announce, old.last_announce);
            }
            if let (Some(v6), Some(old)) = (peer.v6, old.v6) {
                assert!(is_public_v6(v6.ip));
                assert_eq!(v6.ip.segments()[0] & 0xe000, 0x2000, "in 2000::/3");
                assert_ne!(&v6.ip.segments()[..2], &[0x2001, 0x0db8]);
                assert!(v6.port >= 1024);
                assert_eq!(v6.last_announce, old.last_announce);
            }
        }
        assert_eq!(anon.torrents[0].info_hash, file.torrents[0].info_hash);
        assert_eq!(
            anon.torrents[0].peers[0].uploaded,
            file.torrents[0].peers[0].uploaded
        );
        assert!(decode(&encode(&anon).unwrap()).is_ok());
        let dump = to_json(&anon);
        assert!(
            !dump.contains("1.2.3.4") && !dump.contains("2001:db8:"),
            "{dump}"
        );
    }

    #[test]
    fn random_public_v6_stays_in_global_unicast() {
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..10_000 {
            let ip = random_public_v6(&mut rng);
            assert_eq!(ip.segments()[0] >> 13, 0b001, "{ip}");
            assert!(is_public_v6(ip) && ip.to_ipv4_mapped().is_none(), "{ip}");
        }
    }
}
