//! The JSON form of a peer cache used by `cc` (SPEC §10.3): lossless, keys sorted, so
//! `restore(dump(f))` has the content of `f` and dumping it again gives the same bytes.
//! This file holds the dump and the restore; the two other views `cc` offers are in
//! `anonymize` (anonymized copies) and `stats` (counts).

mod anonymize;
mod stats;

pub use anonymize::anonymize;
pub use stats::stats;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::format::{
    hex, CacheFile, CachedEndpoint, CachedPeer, CachedTorrent, CachedUser, VERSION,
};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv4: Option<DumpEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6: Option<DumpEndpoint>,
    left: u64,
    start_time: i64,
    uploaded: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpEndpoint {
    ip: String,
    last_announce: i64,
    port: u16,
}

impl DumpEndpoint {
    fn of<A: fmt::Display>(endpoint: &CachedEndpoint<A>) -> DumpEndpoint {
        DumpEndpoint {
            ip: endpoint.ip.to_string(),
            last_announce: endpoint.last_announce,
            port: endpoint.port,
        }
    }

    /// The endpoint, its address read as `A`; the refusal says what `A` is.
    fn parse<A: std::str::FromStr>(
        &self,
        at: &str,
        family: &str,
    ) -> Result<CachedEndpoint<A>, RestoreError> {
        match self.ip.parse::<A>() {
            Ok(ip) => Ok(CachedEndpoint {
                ip,
                port: self.port,
                last_announce: self.last_announce,
            }),
            Err(_) => refuse(
                format!("{at}.ip"),
                format!("not an {family} address: {:?}", self.ip),
            ),
        }
    }
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
                ipv4: peer.v4.as_ref().map(DumpEndpoint::of),
                ipv6: peer.v6.as_ref().map(DumpEndpoint::of),
                left: peer.left,
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
                "unsupported version {} (this build restores version {VERSION} only)",
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
                let v4 = match &peer.ipv4 {
                    Some(endpoint) => {
                        Some(endpoint.parse::<Ipv4Addr>(&format!("{peer_at}.ipv4"), "IPv4")?)
                    }
                    None => None,
                };
                let v6 = match &peer.ipv6 {
                    Some(endpoint) => {
                        let at = format!("{peer_at}.ipv6");
                        let v6 = endpoint.parse::<Ipv6Addr>(&at, "IPv6")?;
                        if v6.ip.to_ipv4_mapped().is_some() {
                            return refuse(
                                format!("{at}.ip"),
                                format!(
                                    "an IPv4-mapped address belongs in ipv4: {:?}",
                                    endpoint.ip
                                ),
                            );
                        }
                        Some(v6)
                    }
                    None => None,
                };
                if v4.is_none() && v6.is_none() {
                    return refuse(peer_at, "a peer needs an ipv4 or an ipv6 endpoint");
                }
                peers.push(CachedPeer {
                    peer_id,
                    user_id,
                    seeding,
                    v4,
                    v6,
                    uploaded: peer.uploaded,
                    downloaded: peer.downloaded,
                    left: peer.left,
                    start_time: peer.start_time,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::format::{decode, encode};
    use serde_json::{json, Value};

    fn endpoint<A: std::str::FromStr>(ip: &str, port: u16, last_announce: i64) -> CachedEndpoint<A>
    where
        A::Err: fmt::Debug,
    {
        CachedEndpoint {
            ip: ip.parse().unwrap(),
            port,
            last_announce,
        }
    }

    pub(super) fn sample() -> CacheFile {
        let peer = |user_id, tag: u8, seeding| CachedPeer {
            peer_id: [tag; 20],
            user_id,
            seeding,
            v4: Some(endpoint("1.2.3.4", 6881, 20)),
            v6: None,
            uploaded: 1,
            downloaded: 2,
            left: if seeding { 0 } else { 5 },
            start_time: 10,
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
                peers: vec![
                    peer(9, 1, true),
                    // Dual-stack.
                    CachedPeer {
                        v6: Some(endpoint("2001:db8::1", 51413, 30)),
                        ..peer(4, 2, false)
                    },
                    // IPv6 only.
                    CachedPeer {
                        v4: None,
                        v6: Some(endpoint("2001:db8::2", 6882, 40)),
                        ..peer(77, 3, false)
                    },
                ],
            }],
        }
    }

    const HASH: &str = "abababababababababababababababababababab";
    const SEEDER: &str = "9-0101010101010101010101010101010101010101";
    const DUAL: &str = "4-0202020202020202020202020202020202020202";
    const SIX: &str = "77-0303030303030303030303030303030303030303";

    #[test]
    fn dump_shape_is_sorted_and_exact() {
        let text = to_json(&sample());
        let expected = r#"{
  "torrents": {
    "abababababababababababababababababababab": {
      "down_multiplier": 0.5,
      "group_id": 2,
      "id": 3,
      "last_action": 99,
      "leechers": {
        "4-0202020202020202020202020202020202020202": {
          "client_id": 1,
          "downloaded": 2,
          "ipv4": {
            "ip": "1.2.3.4",
            "last_announce": 20,
            "port": 6881
          },
          "ipv6": {
            "ip": "2001:db8::1",
            "last_announce": 30,
            "port": 51413
          },
          "left": 5,
          "start_time": 10,
          "uploaded": 1
        },
        "77-0303030303030303030303030303030303030303": {
          "client_id": 1,
          "downloaded": 2,
          "ipv6": {
            "ip": "2001:db8::2",
            "last_announce": 40,
            "port": 6882
          },
          "left": 5,
          "start_time": 10,
          "uploaded": 1
        }
      },
      "seeders": {
        "9-0101010101010101010101010101010101010101": {
          "client_id": 1,
          "downloaded": 2,
          "ipv4": {
            "ip": "1.2.3.4",
            "last_announce": 20,
            "port": 6881
          },
          "left": 0,
          "start_time": 10,
          "uploaded": 1
        }
      },
      "snatched": 5,
      "status": 1,
      "torrent_type": "anime",
      "up_multiplier": 1.0
    }
  },
  "users": {
    "aaaa": {
      "disable_download": true,
      "down_multiplier": 0.1,
      "id": 4,
      "tracker_hide": false,
      "up_multiplier": 1.0
    },
    "bbbb": {
      "disable_download": false,
      "down_multiplier": 1.0,
      "id": 9,
      "tracker_hide": true,
      "up_multiplier": 0.7
    }
  },
  "version": 2,
  "written_at": 1700000000
}
"#;
        assert_eq!(text, expected);
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
        let peers = &restored.torrents[0].peers;
        assert_eq!(
            peers.iter().map(|p| p.user_id).collect::<Vec<_>>(),
            [4, 9, 77]
        );
        // Both endpoints of the dual-stack peer, each with its port and time.
        assert_eq!(peers[0], file.torrents[0].peers[1]);
        assert_eq!(peers[0].v4, Some(endpoint("1.2.3.4", 6881, 20)));
        assert_eq!(peers[0].v6, Some(endpoint("2001:db8::1", 51413, 30)));
        assert_eq!(peers[2], file.torrents[0].peers[2]);
        let bytes = encode(&restored).unwrap();
        assert_eq!(decode(&bytes).unwrap(), restored);
        // Upper-case hex is accepted.
        let upper = text.replace(HASH, &HASH.to_uppercase());
        assert_eq!(from_json(&upper).unwrap(), restored);
    }

    /// The sample's dump, edited as JSON, restored: the refusal.
    fn refusal(edit: impl FnOnce(&mut Value)) -> String {
        let mut value: Value = serde_json::from_str(&to_json(&sample())).unwrap();
        edit(&mut value);
        from_json(&value.to_string()).unwrap_err().to_string()
    }

    type Edit = Box<dyn FnOnce(&mut Value)>;

    fn leecher<'a>(value: &'a mut Value, key: &str) -> &'a mut Value {
        &mut value["torrents"][HASH]["leechers"][key]
    }

    #[test]
    fn restore_refuses_bad_endpoints() {
        let at = |set: &str, key: &str| format!("torrents.{HASH}.{set}.{key}");
        let cases: Vec<(Edit, String)> = vec![
            (
                Box::new(|v| leecher(v, DUAL)["ipv4"]["ip"] = json!("1.2.3")),
                format!(
                    "{}.ipv4.ip: not an IPv4 address: \"1.2.3\"",
                    at("leechers", DUAL)
                ),
            ),
            (
                Box::new(|v| leecher(v, DUAL)["ipv4"]["ip"] = json!("2001:db8::5")),
                format!(
                    "{}.ipv4.ip: not an IPv4 address: \"2001:db8::5\"",
                    at("leechers", DUAL)
                ),
            ),
            (
                Box::new(|v| leecher(v, DUAL)["ipv4"]["ip"] = json!("::ffff:1.2.3.4")),
                format!(
                    "{}.ipv4.ip: not an IPv4 address: \"::ffff:1.2.3.4\"",
                    at("leechers", DUAL)
                ),
            ),
            (
                Box::new(|v| leecher(v, DUAL)["ipv6"]["ip"] = json!("1.2.3.4")),
                format!(
                    "{}.ipv6.ip: not an IPv6 address: \"1.2.3.4\"",
                    at("leechers", DUAL)
                ),
            ),
            (
                Box::new(|v| leecher(v, SIX)["ipv6"]["ip"] = json!("::ffff:1.2.3.4")),
                format!(
                    "{}.ipv6.ip: an IPv4-mapped address belongs in ipv4: \"::ffff:1.2.3.4\"",
                    at("leechers", SIX)
                ),
            ),
            (
                Box::new(|v| {
                    let seeder = &mut v["torrents"][HASH]["seeders"][SEEDER];
                    seeder.as_object_mut().unwrap().remove("ipv4");
                }),
                format!(
                    "{}: a peer needs an ipv4 or an ipv6 endpoint",
                    at("seeders", SEEDER)
                ),
            ),
            (
                Box::new(|v| leecher(v, SIX)["ipv6"] = Value::Null),
                format!(
                    "{}: a peer needs an ipv4 or an ipv6 endpoint",
                    at("leechers", SIX)
                ),
            ),
        ];
        for (edit, want) in cases {
            assert_eq!(refusal(edit), want);
        }
        // Serde's own refusals: the old single-address fields, unknown and missing
        // endpoint fields.
        let serde_cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| leecher(v, SIX)["ip"] = json!("1.2.3.4")),
                "unknown field `ip`",
            ),
            (
                Box::new(|v| leecher(v, SIX)["ipv6"]["extra"] = json!(1)),
                "unknown field `extra`",
            ),
            (
                Box::new(|v| {
                    leecher(v, SIX)["ipv6"]
                        .as_object_mut()
                        .unwrap()
                        .remove("port");
                }),
                "missing field `port`",
            ),
            (
                Box::new(|v| leecher(v, SIX)["ipv6"]["port"] = json!(65536)),
                "invalid value: integer `65536`",
            ),
        ];
        for (edit, want) in serde_cases {
            let err = refusal(edit);
            assert!(err.contains(want), "{want:?} in {err:?}");
        }
    }

    #[test]
    fn restore_refusals_name_the_place() {
        let text = to_json(&sample());
        let cases = [
            (
                text.replace("\"version\": 2", "\"version\": 1"),
                "version: unsupported version 1 (this build restores version 2 only)",
            ),
            (
                text.replace("\"version\": 2", "\"version\": 3"),
                "version: unsupported version 3 (this build restores version 2 only)",
            ),
            (
                text.replace(&format!("\"{HASH}\""), "\"abab\""),
                "torrents.abab: not a 40-digit hex info_hash",
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
            &format!("\"{HASH}\": {{"),
            &format!("\"{}\": {{\"down_multiplier\": 1, \"group_id\": 1, \"id\": 1, \"last_action\": 0, \"leechers\": {{}}, \"seeders\": {{}}, \"snatched\": 0, \"status\": 0, \"torrent_type\": \"x\", \"up_multiplier\": 1}},\n\"{HASH}\": {{", HASH.to_uppercase()),
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
            endpoints(),
            (any::<u64>(), any::<u64>(), any::<u64>()),
            (any::<i64>(), any::<u32>()),
        )
            .prop_map(|(peer_id, user_id, seeding, (v4, v6), counters, times)| {
                CachedPeer {
                    peer_id,
                    user_id,
                    seeding,
                    v4,
                    v6,
                    uploaded: counters.0,
                    downloaded: counters.1,
                    left: counters.2,
                    start_time: times.0,
                    client_id: times.1,
                }
            })
    }

    fn v4() -> impl Strategy<Value = CachedEndpoint<Ipv4Addr>> {
        (any::<u32>(), any::<u16>(), any::<i64>()).prop_map(|(ip, port, last_announce)| {
            CachedEndpoint {
                ip: Ipv4Addr::from(ip),
                port,
                last_announce,
            }
        })
    }

    /// Any IPv6 address but an IPv4-mapped one (those are IPv4 endpoints).
    fn v6() -> impl Strategy<Value = CachedEndpoint<Ipv6Addr>> {
        (any::<u128>(), any::<u16>(), any::<i64>()).prop_map(|(ip, port, last_announce)| {
            let mut ip = Ipv6Addr::from(ip);
            if ip.to_ipv4_mapped().is_some() {
                ip = Ipv6Addr::from(u128::from(ip) | 1 << 127);
            }
            CachedEndpoint {
                ip,
                port,
                last_announce,
            }
        })
    }

    /// One endpoint or both.
    #[allow(clippy::type_complexity)]
    fn endpoints() -> impl Strategy<
        Value = (
            Option<CachedEndpoint<Ipv4Addr>>,
            Option<CachedEndpoint<Ipv6Addr>>,
        ),
    > {
        prop_oneof![
            v4().prop_map(|v4| (Some(v4), None)),
            v6().prop_map(|v6| (None, Some(v6))),
            (v4(), v6()).prop_map(|(v4, v6)| (Some(v4), Some(v6))),
        ]
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
