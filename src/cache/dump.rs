//! The JSON form of a peer cache used by `cc` (SPEC §10.3): lossless, keys sorted, so
//! `restore(dump(f))` has the content of `f` and dumping it again gives the same bytes.
//! Also the two other views `cc` offers: anonymized copies and counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::format::{hex, CacheFile, CachedPeer, CachedTorrent, CachedUser, VERSION};
use crate::tracker::ip::is_public_v4;

/// A JSON object whose keys must be unique (serde would silently keep the last).
#[derive(Debug, Default)]
struct UniqueMap<V>(BTreeMap<String, V>);

impl<V: Serialize> Serialize for UniqueMap<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Unique<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Unique<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, V>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    out.insert(key, value);
                }
                Ok(UniqueMap(out))
            }
        }
        deserializer.deserialize_map(Unique(std::marker::PhantomData))
    }
}

// Fields are declared in alphabetical order: that is the order they are written in.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpFile {
    torrents: UniqueMap<DumpTorrent>,
    users: UniqueMap<DumpUser>,
    version: u32,
    written_at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpTorrent {
    down_multiplier: f64,
    group_id: u32,
    id: u32,
    last_action: i64,
    leechers: UniqueMap<DumpPeer>,
    seeders: UniqueMap<DumpPeer>,
    snatched: u32,
    status: i32,
    torrent_type: String,
    up_multiplier: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpPeer {
    client_id: u32,
    downloaded: u64,
    ip: String,
    last_announce: i64,
    left: u64,
    port: u16,
    start_time: i64,
    uploaded: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpUser {
    disable_download: bool,
    down_multiplier: f64,
    id: u32,
    tracker_hide: bool,
    up_multiplier: f64,
}

fn peer_key(peer: &CachedPeer) -> String {
    format!("{}-{}", peer.user_id, hex(&peer.peer_id))
}

/// The JSON text of a cache: 2-space indent, keys sorted, final newline.
pub fn to_json(file: &CacheFile) -> String {
    let mut torrents = BTreeMap::new();
    for torrent in &file.torrents {
        let (mut seeders, mut leechers) = (BTreeMap::new(), BTreeMap::new());
        for peer in &torrent.peers {
            let entry = DumpPeer {
                client_id: peer.client_id,
                downloaded: peer.downloaded,
                ip: peer.ip.to_string(),
                last_announce: peer.last_announce,
                left: peer.left,
                port: peer.port,
                start_time: peer.start_time,
                uploaded: peer.uploaded,
            };
            let set = if peer.seeding {
                &mut seeders
            } else {
                &mut leechers
            };
            set.insert(peer_key(peer), entry);
        }
        torrents.insert(
            hex(&torrent.info_hash),
            DumpTorrent {
                down_multiplier: torrent.down_multiplier,
                group_id: torrent.group_id,
                id: torrent.id,
                last_action: torrent.last_action,
                leechers: UniqueMap(leechers),
                seeders: UniqueMap(seeders),
                snatched: torrent.snatched,
                status: torrent.status,
                torrent_type: torrent.torrent_type.to_string(),
                up_multiplier: torrent.up_multiplier,
            },
        );
    }
    let users = file
        .users
        .iter()
        .map(|user| {
            let entry = DumpUser {
                disable_download: user.disable_download,
                down_multiplier: user.down_multiplier,
                id: user.id,
                tracker_hide: user.tracker_hide,
                up_multiplier: user.up_multiplier,
            };
            (user.passkey.clone(), entry)
        })
        .collect();
    let dump = DumpFile {
        torrents: UniqueMap(torrents),
        users: UniqueMap(users),
        version: VERSION,
        written_at: file.written_at,
    };
    // Serializing plain structs, maps and finite numbers into a String cannot fail.
    let mut text = serde_json::to_string_pretty(&dump).unwrap_or_default();
    text.push('\n');
    text
}

/// Why a JSON dump cannot be restored: where (a dotted key path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreError {
    pub at: String,
    pub problem: String,
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.at, self.problem)
        }
    }
}

impl std::error::Error for RestoreError {}

fn refuse<T>(at: impl Into<String>, problem: impl Into<String>) -> Result<T, RestoreError> {
    Err(RestoreError {
        at: at.into(),
        problem: problem.into(),
    })
}

fn parse_hex20(text: &str) -> Option<[u8; 20]> {
    if text.len() != 40 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reads a JSON dump back into a cache, sorted (users by passkey, torrents by hash,
/// peers by user id then peer_id), refusing anything the binary format would.
pub fn from_json(text: &str) -> Result<CacheFile, RestoreError> {
    let dump: DumpFile = serde_json::from_str(text).map_err(|e| RestoreError {
        at: String::new(),
        problem: format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e)
        ),
    })?;
    if dump.version != VERSION {
        return refuse(
            "version",
            format!(
                "unsupported version {} (this build writes {VERSION})",
                dump.version
            ),
        );
    }
    let mut users = Vec::with_capacity(dump.users.0.len());
    for (passkey, user) in dump.users.0 {
        if passkey.is_empty() || passkey.len() > 255 {
            return refuse(format!("users.{passkey}"), "a passkey has 1 to 255 bytes");
        }
        for (name, value) in [
            ("up_multiplier", user.up_multiplier),
            ("down_multiplier", user.down_multiplier),
        ] {
            if !value.is_finite() {
                return refuse(format!("users.{passkey}.{name}"), "not a finite number");
            }
        }
        users.push(CachedUser {
            passkey,
            id: user.id,
            disable_download: user.disable_download,
            tracker_hide: user.tracker_hide,
            up_multiplier: user.up_multiplier,
            down_multiplier: user.down_multiplier,
        });
    }
    users.sort_by(|a, b| a.passkey.cmp(&b.passkey));

    let mut torrents = Vec::with_capacity(dump.torrents.0.len());
    let mut hashes = HashSet::new();
    for (key, torrent) in dump.torrents.0 {
        let at = format!("torrents.{key}");
        let Some(info_hash) = parse_hex20(&key) else {
            return refuse(at, "not a 40-digit hex info_hash");
        };
        if !hashes.insert(info_hash) {
            return refuse(at, "duplicate info_hash");
        }
        if torrent.torrent_type.len() > 255 {
            return refuse(format!("{at}.torrent_type"), "longer than 255 bytes");
        }
        let mut peers = Vec::new();
        let mut keys = HashSet::new();
        for (seeding, set, name) in [
            (true, torrent.seeders, "seeders"),
            (false, torrent.leechers, "leechers"),
        ] {
            for (peer_key, peer) in set.0 {
                let peer_at = format!("{at}.{name}.{peer_key}");
                let Some((user, id)) = peer_key.split_once('-') else {
                    return refuse(peer_at, "a peer key is <user id>-<40-digit hex peer_id>");
                };
                let (Ok(user_id), Some(peer_id)) = (user.parse::<u32>(), parse_hex20(id)) else {
                    return refuse(peer_at, "a peer key is <user id>-<40-digit hex peer_id>");
                };
                if !keys.insert((user_id, peer_id)) {
                    return refuse(
                        peer_at,
                        "the same peer twice (in both sets, or with hex in two cases)",
                    );
                }
                let Ok(ip) = peer.ip.parse::<IpAddr>() else {
                    return refuse(
                        format!("{peer_at}.ip"),
                        format!("not an IP address: {:?}", peer.ip),
                    );
                };
                peers.push(CachedPeer {
                    peer_id,
                    user_id,
                    seeding,
                    ip,
                    port: peer.port,
                    uploaded: peer.uploaded,
                    downloaded: peer.downloaded,
                    left: peer.left,
                    start_time: peer.start_time,
                    last_announce: peer.last_announce,
                    client_id: peer.client_id,
                });
            }
        }
        peers.sort_by_key(|peer| (peer.user_id, peer.peer_id));
        torrents.push(CachedTorrent {
            info_hash,
            id: torrent.id,
            group_id: torrent.group_id,
            torrent_type: torrent.torrent_type.into(),
            status: torrent.status,
            snatched: torrent.snatched,
            last_action: torrent.last_action,
            up_multiplier: torrent.up_multiplier,
            down_multiplier: torrent.down_multiplier,
            peers,
        });
    }
    torrents.sort_by_key(|torrent| torrent.info_hash);
    Ok(CacheFile {
        written_at: dump.written_at,
        users,
        torrents,
    })
}

/// serde_json's message without its trailing " at line L column C".
fn strip_position(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

const PASSKEY_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A copy safe to share: users renumbered 1…n in random order with new random
/// passkeys of the same length, TrackerHide off and multipliers 1; peers follow their
/// user's new id (ids seen only in peers numbered after n) and get a random public
/// IPv4 address and a port in 1024–65535. Torrents are unchanged.
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
                        ip: IpAddr::V4(random_public_v4(rng)),
                        port: rng.random_range(1024..=65535),
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

/// `cc stats`: one JSON line of counts.
pub fn stats(file: &CacheFile) -> String {
    let peers = file.torrents.iter().map(|t| t.peers.len()).sum::<usize>();
    let seeders = file
        .torrents
        .iter()
        .flat_map(|t| &t.peers)
        .filter(|p| p.seeding)
        .count();
    format!(
        "{{\"version\":{VERSION},\"written_at\":{},\"users\":{},\"torrents\":{},\"peers\":{peers},\"seeders\":{seeders},\"leechers\":{}}}\n",
        file.written_at,
        file.users.len(),
        file.torrents.len(),
        peers - seeders
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::format::{decode, encode};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn sample() -> CacheFile {
        let peer = |user_id, tag: u8, seeding| CachedPeer {
            peer_id: [tag; 20],
            user_id,
            seeding,
            ip: "1.2.3.4".parse().unwrap(),
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: if seeding { 0 } else { 5 },
            start_time: 10,
            last_announce: 20,
            client_id: 1,
        };
        CacheFile {
            written_at: 1_700_000_000,
            users: vec![
                CachedUser {
                    passkey: "bbbb".to_owned(),
                    id: 9,
                    disable_download: false,
                    tracker_hide: true,
                    up_multiplier: 0.7,
                    down_multiplier: 1.0,
                },
                CachedUser {
                    passkey: "aaaa".to_owned(),
                    id: 4,
                    disable_download: true,
                    tracker_hide: false,
                    up_multiplier: 1.0,
                    down_multiplier: 0.1,
                },
            ],
            torrents: vec![CachedTorrent {
                info_hash: [0xab; 20],
                id: 3,
                group_id: 2,
                torrent_type: "anime".into(),
                status: 1,
                snatched: 5,
                last_action: 99,
                up_multiplier: 1.0,
                down_multiplier: 0.5,
                peers: vec![peer(9, 1, true), peer(4, 2, false), peer(77, 3, false)],
            }],
        }
    }

    #[test]
    fn dump_shape_is_sorted_and_exact() {
        let text = to_json(&sample());
        let expected_start = "{\n  \"torrents\": {\n    \"abababababababababababababababababababab\": {\n      \"down_multiplier\": 0.5,\n      \"group_id\": 2,\n      \"id\": 3,\n      \"last_action\": 99,\n      \"leechers\": {\n        \"4-0202020202020202020202020202020202020202\": {\n          \"client_id\": 1,\n          \"downloaded\": 2,\n          \"ip\": \"1.2.3.4\",";
        assert!(text.starts_with(expected_start), "{text}");
        assert!(
            text.ends_with("  \"version\": 1,\n  \"written_at\": 1700000000\n}\n"),
            "{text}"
        );
        let aaaa = text.find("\"aaaa\"").unwrap();
        assert!(
            aaaa < text.find("\"bbbb\"").unwrap(),
            "users sorted by passkey"
        );
        assert!(text.contains("\"up_multiplier\": 0.7"));
    }

    #[test]
    fn restore_of_dump_round_trips_and_redumps_identically() {
        let file = sample();
        let text = to_json(&file);
        let restored = from_json(&text).unwrap();
        assert_eq!(to_json(&restored), text);
        // Same content as the original, in canonical order.
        assert_eq!(restored.users.len(), 2);
        assert_eq!(restored.users[0].passkey, "aaaa");
        assert_eq!(
            restored.torrents[0]
                .peers
                .iter()
                .map(|p| p.user_id)
                .collect::<Vec<_>>(),
            [4, 9, 77]
        );
        let bytes = encode(&restored).unwrap();
        assert_eq!(decode(&bytes).unwrap(), restored);
        // Upper-case hex is accepted.
        let upper = text.replace(
            "abababababababababababababababababababab",
            "ABABABABABABABABABABABABABABABABABABABAB",
        );
        assert_eq!(from_json(&upper).unwrap(), restored);
    }

    #[test]
    fn restore_refusals_name_the_place() {
        let text = to_json(&sample());
        let cases = [
            (
                text.replace("\"version\": 1", "\"version\": 2"),
                "version: unsupported version 2 (this build writes 1)",
            ),
            (
                text.replace("\"abababababababababababababababababababab\"", "\"abab\""),
                "torrents.abab: not a 40-digit hex info_hash",
            ),
            (
                text.replace(
                    "\"ip\": \"1.2.3.4\",\n          \"last_announce\": 20,\n          \"left\": 5",
                    "\"ip\": \"1.2.3\",\n          \"last_announce\": 20,\n          \"left\": 5",
                ),
                "not an IP address",
            ),
            (
                text.replace("\"aaaa\"", "\"bbbb\""),
                "duplicate key \"bbbb\"",
            ),
            (
                text.replace("\"client_id\": 1,", "\"client_id\": 1, \"extra\": 1,"),
                "unknown field `extra`",
            ),
        ];
        for (input, want) in cases {
            let err = from_json(&input).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} in {err:?}");
        }
        // The same peer as seeder and leecher.
        let mut both = sample();
        let mut twin = both.torrents[0].peers[0];
        twin.seeding = false;
        both.torrents[0].peers.push(twin);
        let err = from_json(&to_json(&both)).unwrap_err();
        assert!(err.problem.starts_with("the same peer twice"), "{err}");
        // Two spellings of one hash.
        let two = text.replacen(
            "\"abababababababababababababababababababab\": {",
            "\"ABABABABABABABABABABABABABABABABABABABAB\": {\"down_multiplier\": 1, \"group_id\": 1, \"id\": 1, \"last_action\": 0, \"leechers\": {}, \"seeders\": {}, \"snatched\": 0, \"status\": 0, \"torrent_type\": \"x\", \"up_multiplier\": 1},\n\"abababababababababababababababababababab\": {",
            1,
        );
        assert!(from_json(&two)
            .unwrap_err()
            .problem
            .contains("duplicate info_hash"));
        assert!(from_json("{")
            .unwrap_err()
            .problem
            .starts_with("line 1 column 1:"));
    }

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
        for peer in peers {
            let IpAddr::V4(ip) = peer.ip else {
                panic!("IPv4")
            };
            assert!(is_public_v4(ip));
            assert!(peer.port >= 1024);
        }
        assert_eq!(anon.torrents[0].info_hash, file.torrents[0].info_hash);
        assert_eq!(
            anon.torrents[0].peers[0].uploaded,
            file.torrents[0].peers[0].uploaded
        );
        assert!(decode(&encode(&anon).unwrap()).is_ok());
    }

    #[test]
    fn stats_line() {
        assert_eq!(
            stats(&sample()),
            "{\"version\":1,\"written_at\":1700000000,\"users\":2,\"torrents\":1,\"peers\":3,\"seeders\":1,\"leechers\":2}\n"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::cache::format::{decode, encode};
    use proptest::collection::btree_map;
    use proptest::prelude::*;

    fn multiplier() -> impl Strategy<Value = f64> {
        prop_oneof![Just(1.0), Just(0.0), Just(0.7), -1e6f64..1e6]
    }

    fn peer() -> impl Strategy<Value = CachedPeer> {
        (
            any::<[u8; 20]>(),
            any::<u32>(),
            any::<bool>(),
            prop_oneof![
                any::<u32>().prop_map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
                any::<u128>().prop_map(|ip| IpAddr::V6(std::net::Ipv6Addr::from(ip))),
            ],
            any::<u16>(),
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<i64>(), any::<i64>(), any::<u32>()),
        )
            .prop_map(|(peer_id, user_id, seeding, ip, port, counters, times)| {
                CachedPeer {
                    peer_id,
                    user_id,
                    seeding,
                    ip,
                    port,
                    uploaded: counters.0,
                    downloaded: counters.1,
                    left: counters.2,
                    start_time: times.0,
                    last_announce: times.1,
                    client_id: times.2,
                }
            })
    }

    fn torrent() -> impl Strategy<Value = CachedTorrent> {
        (
            (
                any::<u32>(),
                any::<u32>(),
                "[a-z]{0,12}",
                any::<i32>(),
                any::<u32>(),
                any::<i64>(),
            ),
            (multiplier(), multiplier()),
            // Unique peer keys: a map from (user, peer_id).
            btree_map((any::<u32>(), any::<[u8; 20]>()), peer(), 0..6),
        )
            .prop_map(
                |((id, group_id, kind, status, snatched, last_action), (up, down), peers)| {
                    CachedTorrent {
                        info_hash: [0; 20],
                        id,
                        group_id,
                        torrent_type: kind.into(),
                        status,
                        snatched,
                        last_action,
                        up_multiplier: up,
                        down_multiplier: down,
                        peers: peers
                            .into_iter()
                            .map(|((user_id, peer_id), peer)| CachedPeer {
                                user_id,
                                peer_id,
                                ..peer
                            })
                            .collect(),
                    }
                },
            )
    }

    fn cache() -> impl Strategy<Value = CacheFile> {
        (
            any::<i64>(),
            btree_map(
                "[!-~]{1,40}",
                (
                    any::<u32>(),
                    any::<bool>(),
                    any::<bool>(),
                    multiplier(),
                    multiplier(),
                ),
                0..5,
            ),
            btree_map(any::<[u8; 20]>(), torrent(), 0..5),
        )
            .prop_map(|(written_at, users, torrents)| CacheFile {
                written_at,
                users: users
                    .into_iter()
                    .map(
                        |(passkey, (id, disable_download, tracker_hide, up, down))| CachedUser {
                            passkey,
                            id,
                            disable_download,
                            tracker_hide,
                            up_multiplier: up,
                            down_multiplier: down,
                        },
                    )
                    .collect(),
                torrents: torrents
                    .into_iter()
                    .map(|(info_hash, torrent)| CachedTorrent {
                        info_hash,
                        ..torrent
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn binary_round_trip(file in cache()) {
            let bytes = encode(&file).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), file);
        }

        #[test]
        fn json_round_trip_is_lossless_and_stable(file in cache()) {
            let text = to_json(&file);
            let restored = from_json(&text).unwrap();
            prop_assert_eq!(to_json(&restored), text);
            let bytes = encode(&restored).unwrap();
            prop_assert_eq!(&decode(&bytes).unwrap(), &restored);
            // The restored cache holds exactly the original's content.
            let mut original = file.clone();
            for torrent in &mut original.torrents {
                torrent.peers.sort_by_key(|peer| (peer.user_id, peer.peer_id));
            }
            prop_assert_eq!(restored, original);
        }
    }
}
