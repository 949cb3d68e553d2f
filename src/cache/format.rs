//! The peer cache file format, version 2 (SPEC §10.1): little-endian, length-prefixed
//! text, a CRC-32 trailer. Version 2 keeps both endpoints of a dual-stack peer;
//! version 1 files (one address per peer) are still read. Encoding and decoding only;
//! no I/O and no tracker types, so `cc` and the tracker share it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const MAGIC: &[u8; 8] = b"CHYPEERS";
/// The version written.
pub const VERSION: u32 = 2;
/// The oldest version still read: one address per peer.
pub const VERSION_1: u32 = 1;

const HEADER_LEN: usize = 8 + 4 + 8;
const TRAILER_LEN: usize = 4;
/// Smallest encodings, used to bound allocations by what the file can really hold.
const MIN_USER_LEN: usize = 1 + 1 + 4 + 1 + 8 + 8;
const MIN_TORRENT_LEN: usize = 20 + 4 + 4 + 1 + 4 + 4 + 8 + 8 + 8 + 4;
/// Version 1: key, flags, family, IPv4 address, port, counters, times, client.
const MIN_PEER_LEN_V1: usize = 20 + 4 + 1 + 1 + 4 + 2 + 8 + 8 + 8 + 8 + 8 + 4;
/// Version 2: key, flags, mask, one IPv4 endpoint, counters, start_time, client.
const MIN_PEER_LEN_V2: usize = 20 + 4 + 1 + 1 + (4 + 2 + 8) + 8 + 8 + 8 + 8 + 4;
const MIN_PEER_LEN: usize = if MIN_PEER_LEN_V1 < MIN_PEER_LEN_V2 {
    MIN_PEER_LEN_V1
} else {
    MIN_PEER_LEN_V2
};

const USER_DISABLE_DOWNLOAD: u8 = 1;
const USER_TRACKER_HIDE: u8 = 2;
const PEER_SEEDING: u8 = 1;
/// Endpoint mask bits of a version 2 peer.
const ENDPOINT_V4: u8 = 1;
const ENDPOINT_V6: u8 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct CacheFile {
    pub written_at: i64,
    pub users: Vec<CachedUser>,
    pub torrents: Vec<CachedTorrent>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CachedUser {
    pub passkey: String,
    pub id: u32,
    pub disable_download: bool,
    pub tracker_hide: bool,
    pub up_multiplier: f64,
    pub down_multiplier: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CachedTorrent {
    pub info_hash: [u8; 20],
    pub id: u32,
    pub group_id: u32,
    /// Borrowed for the two types every site has, so decoding a million torrents does
    /// not allocate a million strings.
    pub torrent_type: Cow<'static, str>,
    pub status: i32,
    pub snatched: u32,
    pub last_action: i64,
    pub up_multiplier: f64,
    pub down_multiplier: f64,
    pub peers: Vec<CachedPeer>,
}

/// A peer with at least one endpoint; an IPv4-mapped address is an IPv4 endpoint,
/// never an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CachedPeer {
    pub peer_id: [u8; 20],
    pub user_id: u32,
    pub seeding: bool,
    pub v4: Option<CachedEndpoint<Ipv4Addr>>,
    pub v6: Option<CachedEndpoint<Ipv6Addr>>,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub start_time: i64,
    pub client_id: u32,
}

/// Where a peer is reached over one address family, and when it last announced there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedEndpoint<A> {
    pub ip: A,
    pub port: u16,
    pub last_announce: i64,
}

/// A value the format cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Why a file was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub problem: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for DecodeError {}

/// Writes a cache file piece by piece, so a caller can stream torrents into it
/// without building the whole [`CacheFile`] first.
pub struct Encoder {
    out: Vec<u8>,
    /// Where [`Encoder::open_torrents`] left the torrent count to fill in, and the
    /// torrents written since.
    open_count: Option<(usize, u64)>,
}

impl Encoder {
    pub fn new(written_at: i64) -> Encoder {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&written_at.to_le_bytes());
        Encoder {
            out,
            open_count: None,
        }
    }

    fn count(&mut self, n: usize, what: &str) -> Result<(), EncodeError> {
        let n = u32::try_from(n).map_err(|_| EncodeError(format!("too many {what}: {n}")))?;
        self.out.extend_from_slice(&n.to_le_bytes());
        Ok(())
    }

    fn short_text(&mut self, text: &str, what: &str) -> Result<(), EncodeError> {
        let len = u8::try_from(text.len())
            .map_err(|_| EncodeError(format!("{what} longer than 255 bytes: {text:?}")))?;
        self.out.push(len);
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    pub fn users<'a>(
        &mut self,
        users: impl ExactSizeIterator<Item = &'a CachedUser>,
    ) -> Result<(), EncodeError> {
        self.count(users.len(), "users")?;
        for user in users {
            if user.passkey.is_empty() {
                return Err(EncodeError(format!(
                    "user {} has an empty passkey",
                    user.id
                )));
            }
            self.short_text(&user.passkey, "passkey")?;
            self.out.extend_from_slice(&user.id.to_le_bytes());
            let flags = if user.disable_download {
                USER_DISABLE_DOWNLOAD
            } else {
                0
            } | if user.tracker_hide {
                USER_TRACKER_HIDE
            } else {
                0
            };
            self.out.push(flags);
            self.out
                .extend_from_slice(&user.up_multiplier.to_bits().to_le_bytes());
            self.out
                .extend_from_slice(&user.down_multiplier.to_bits().to_le_bytes());
        }
        Ok(())
    }

    /// Starts the torrent section; exactly `count` torrents must follow.
    pub fn torrent_count(&mut self, count: usize) -> Result<(), EncodeError> {
        self.count(count, "torrents")
    }

    /// Starts the torrent section without knowing how many will follow: the count is
    /// filled in by [`Encoder::finish`].
    pub fn open_torrents(&mut self) {
        self.open_count = Some((self.out.len(), 0));
        self.out.extend_from_slice(&0u32.to_le_bytes());
    }

    pub fn torrent(&mut self, torrent: &CachedTorrent) -> Result<(), EncodeError> {
        if let Some((_, written)) = &mut self.open_count {
            *written += 1;
        }
        self.out.extend_from_slice(&torrent.info_hash);
        self.out.extend_from_slice(&torrent.id.to_le_bytes());
        self.out.extend_from_slice(&torrent.group_id.to_le_bytes());
        self.short_text(&torrent.torrent_type, "torrent type")?;
        self.out.extend_from_slice(&torrent.status.to_le_bytes());
        self.out.extend_from_slice(&torrent.snatched.to_le_bytes());
        self.out
            .extend_from_slice(&torrent.last_action.to_le_bytes());
        self.out
            .extend_from_slice(&torrent.up_multiplier.to_bits().to_le_bytes());
        self.out
            .extend_from_slice(&torrent.down_multiplier.to_bits().to_le_bytes());
        self.count(torrent.peers.len(), "peers")?;
        for peer in &torrent.peers {
            self.peer(peer)?;
        }
        Ok(())
    }

    fn peer(&mut self, peer: &CachedPeer) -> Result<(), EncodeError> {
        let refuse = |problem: &str| {
            Err(EncodeError(format!(
                "peer {}-{} {problem}",
                peer.user_id,
                hex(&peer.peer_id)
            )))
        };
        if peer.v4.is_none() && peer.v6.is_none() {
            return refuse("has no endpoint");
        }
        if let Some(v6) = peer.v6.filter(|v6| v6.ip.to_ipv4_mapped().is_some()) {
            return refuse(&format!("has an IPv4-mapped IPv6 endpoint {}", v6.ip));
        }
        self.out.extend_from_slice(&peer.peer_id);
        self.out.extend_from_slice(&peer.user_id.to_le_bytes());
        self.out.push(if peer.seeding { PEER_SEEDING } else { 0 });
        let mask = if peer.v4.is_some() { ENDPOINT_V4 } else { 0 }
            | if peer.v6.is_some() { ENDPOINT_V6 } else { 0 };
        self.out.push(mask);
        if let Some(v4) = peer.v4 {
            self.out.extend_from_slice(&v4.ip.octets());
            self.out.extend_from_slice(&v4.port.to_le_bytes());
            self.out.extend_from_slice(&v4.last_announce.to_le_bytes());
        }
        if let Some(v6) = peer.v6 {
            self.out.extend_from_slice(&v6.ip.octets());
            self.out.extend_from_slice(&v6.port.to_le_bytes());
            self.out.extend_from_slice(&v6.last_announce.to_le_bytes());
        }
        self.out.extend_from_slice(&peer.uploaded.to_le_bytes());
        self.out.extend_from_slice(&peer.downloaded.to_le_bytes());
        self.out.extend_from_slice(&peer.left.to_le_bytes());
        self.out.extend_from_slice(&peer.start_time.to_le_bytes());
        self.out.extend_from_slice(&peer.client_id.to_le_bytes());
        Ok(())
    }

    /// Appends the CRC trailer and hands back the bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        if let Some((at, written)) = self.open_count {
            let count = u32::try_from(written)
                .map_err(|_| EncodeError(format!("too many torrents: {written}")))?;
            self.out[at..at + 4].copy_from_slice(&count.to_le_bytes());
        }
        let crc = crc32fast::hash(&self.out);
        self.out.extend_from_slice(&crc.to_le_bytes());
        Ok(self.out)
    }
}

/// Encodes a whole file.
pub fn encode(file: &CacheFile) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder::new(file.written_at);
    encoder.users(file.users.iter())?;
    encoder.torrent_count(file.torrents.len())?;
    for torrent in &file.torrents {
        encoder.torrent(torrent)?;
    }
    encoder.finish()
}

/// A cursor over the file's bytes that reports where it failed.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, offset: usize, problem: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset,
            problem: problem.into(),
        })
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(slice) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(slice)
            }
            _ => self.fail(self.at, format!("truncated: {what} needs {n} bytes")),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    fn multiplier(&mut self, what: &str) -> Result<f64, DecodeError> {
        let at = self.at;
        let value = f64::from_bits(self.u64(what)?);
        if value.is_finite() {
            Ok(value)
        } else {
            self.fail(at, format!("{what} is not a finite number"))
        }
    }

    fn short_text_ref(&mut self, what: &str, allow_empty: bool) -> Result<&'a str, DecodeError> {
        let at = self.at;
        let len = usize::from(self.u8(what)?);
        if len == 0 && !allow_empty {
            return self.fail(at, format!("empty {what}"));
        }
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(_) => self.fail(at + 1, format!("{what} is not UTF-8")),
        }
    }

    fn short_text(&mut self, what: &str, allow_empty: bool) -> Result<String, DecodeError> {
        self.short_text_ref(what, allow_empty).map(str::to_owned)
    }

    /// A count, and a capacity for it no larger than the remaining bytes can hold.
    fn count(&mut self, what: &str, min_len: usize) -> Result<(u32, usize), DecodeError> {
        let n = self.u32(what)?;
        let remaining = self.bytes.len().saturating_sub(self.at);
        let capacity = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(remaining / min_len);
        Ok((n, capacity))
    }
}

/// Decodes and checks a whole file.
/// The format version a file says it is in (the u32 after the magic), if it has one;
/// `decode` tells whether the rest holds.
pub fn version_of(bytes: &[u8]) -> Option<u32> {
    let field = bytes.strip_prefix(MAGIC)?.get(..4)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

pub fn decode(bytes: &[u8]) -> Result<CacheFile, DecodeError> {
    let (mut users, mut torrents) = (Vec::new(), Vec::new());
    let written_at = decode_with(
        bytes,
        |user| users.push(user),
        |torrent| torrents.push(torrent),
    )?;
    Ok(CacheFile {
        written_at,
        users,
        torrents,
    })
}

/// Decodes and checks a whole file, handing each user and torrent over as it is read
/// instead of collecting them; returns `written_at`. The CRC is checked before
/// anything is handed over.
pub fn decode_with(
    bytes: &[u8],
    mut on_user: impl FnMut(CachedUser),
    mut on_torrent: impl FnMut(CachedTorrent),
) -> Result<i64, DecodeError> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        if !bytes.starts_with(&MAGIC[..bytes.len().min(MAGIC.len())]) {
            return Err(DecodeError {
                offset: 0,
                problem: "bad magic (not a peer cache file)".to_owned(),
            });
        }
        return Err(DecodeError {
            offset: bytes.len(),
            problem: format!(
                "truncated: {} bytes is shorter than header and trailer",
                bytes.len()
            ),
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(DecodeError {
            offset: 0,
            problem: "bad magic (not a peer cache file)".to_owned(),
        });
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[8..12]);
    let version = u32::from_le_bytes(version);
    if version != VERSION && version != VERSION_1 {
        return Err(DecodeError {
            offset: 8,
            problem: format!(
                "unsupported version {version} (this build reads {VERSION_1} and {VERSION})"
            ),
        });
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(trailer);
    let stored = u32::from_le_bytes(stored);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(DecodeError {
            offset: body.len(),
            problem: format!(
                "CRC mismatch (stored {stored:08x}, computed {computed:08x}): truncated or corrupt"
            ),
        });
    }
    let mut reader = Reader {
        bytes: body,
        at: 12,
    };
    let written_at = reader.i64("written_at")?;
    decode_users(&mut reader, &mut on_user)?;
    decode_torrents(&mut reader, version, &mut on_torrent)?;
    if reader.at != body.len() {
        return reader.fail(
            reader.at,
            format!("{} trailing bytes", body.len() - reader.at),
        );
    }
    Ok(written_at)
}

fn decode_users(
    reader: &mut Reader<'_>,
    on_user: &mut impl FnMut(CachedUser),
) -> Result<(), DecodeError> {
    let (count, capacity) = reader.count("user count", MIN_USER_LEN)?;
    let mut passkeys = HashSet::with_capacity(capacity);
    for _ in 0..count {
        let at = reader.at;
        let passkey = reader.short_text("passkey", false)?;
        let id = reader.u32("user id")?;
        let flags_at = reader.at;
        let flags = reader.u8("user flags")?;
        if flags & !(USER_DISABLE_DOWNLOAD | USER_TRACKER_HIDE) != 0 {
            return reader.fail(
                flags_at,
                format!("reserved user flag bits set ({flags:#04x})"),
            );
        }
        let up_multiplier = reader.multiplier("up multiplier")?;
        let down_multiplier = reader.multiplier("down multiplier")?;
        if !passkeys.insert(passkey.clone()) {
            return reader.fail(at, format!("duplicate passkey (user {id})"));
        }
        on_user(CachedUser {
            passkey,
            id,
            disable_download: flags & USER_DISABLE_DOWNLOAD != 0,
            tracker_hide: flags & USER_TRACKER_HIDE != 0,
            up_multiplier,
            down_multiplier,
        });
    }
    Ok(())
}

fn decode_torrents(
    reader: &mut Reader<'_>,
    version: u32,
    on_torrent: &mut impl FnMut(CachedTorrent),
) -> Result<(), DecodeError> {
    let (count, capacity) = reader.count("torrent count", MIN_TORRENT_LEN)?;
    let mut hashes = HashSet::with_capacity(capacity);
    for _ in 0..count {
        let at = reader.at;
        let info_hash: [u8; 20] = reader.array("info_hash")?;
        if !hashes.insert(info_hash) {
            return reader.fail(at, format!("duplicate info_hash {}", hex(&info_hash)));
        }
        let id = reader.u32("torrent id")?;
        let group_id = reader.u32("group id")?;
        let torrent_type = match reader.short_text_ref("torrent type", true)? {
            "anime" => Cow::Borrowed("anime"),
            "music" => Cow::Borrowed("music"),
            other => Cow::Owned(other.to_owned()),
        };
        let status = reader.i32("status")?;
        let snatched = reader.u32("snatched")?;
        let last_action = reader.i64("last_action")?;
        let up_multiplier = reader.multiplier("up multiplier")?;
        let down_multiplier = reader.multiplier("down multiplier")?;
        let peers = decode_peers(reader, version, &info_hash)?;
        on_torrent(CachedTorrent {
            info_hash,
            id,
            group_id,
            torrent_type,
            status,
            snatched,
            last_action,
            up_multiplier,
            down_multiplier,
            peers,
        });
    }
    Ok(())
}

fn decode_peers(
    reader: &mut Reader<'_>,
    version: u32,
    info_hash: &[u8; 20],
) -> Result<Vec<CachedPeer>, DecodeError> {
    let (count, capacity) = reader.count("peer count", MIN_PEER_LEN)?;
    let mut peers = Vec::with_capacity(capacity);
    let mut keys = HashSet::with_capacity(capacity);
    for _ in 0..count {
        let at = reader.at;
        let peer_id: [u8; 20] = reader.array("peer_id")?;
        let user_id = reader.u32("peer user id")?;
        if !keys.insert((user_id, peer_id)) {
            return reader.fail(
                at,
                format!(
                    "duplicate peer {user_id}-{} in torrent {}",
                    hex(&peer_id),
                    hex(info_hash)
                ),
            );
        }
        let flags_at = reader.at;
        let flags = reader.u8("peer flags")?;
        if flags & !PEER_SEEDING != 0 {
            return reader.fail(
                flags_at,
                format!("reserved peer flag bits set ({flags:#04x})"),
            );
        }
        let mut peer = CachedPeer {
            peer_id,
            user_id,
            seeding: flags & PEER_SEEDING != 0,
            v4: None,
            v6: None,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            start_time: 0,
            client_id: 0,
        };
        if version == VERSION_1 {
            decode_peer_v1(reader, &mut peer)?;
        } else {
            decode_peer_v2(reader, &mut peer)?;
        }
        peers.push(peer);
    }
    Ok(peers)
}

/// The rest of a version 1 peer: its one address becomes the endpoint of its family
/// (an IPv4-mapped IPv6 address the IPv4 one), with the peer's last announce.
fn decode_peer_v1(reader: &mut Reader<'_>, peer: &mut CachedPeer) -> Result<(), DecodeError> {
    let family_at = reader.at;
    let ip = match reader.u8("address family")? {
        4 => IpAddr::V4(Ipv4Addr::from(reader.array::<4>("IPv4 address")?)),
        6 => IpAddr::V6(Ipv6Addr::from(reader.array::<16>("IPv6 address")?)),
        other => return reader.fail(family_at, format!("bad address family {other}")),
    };
    let port = reader.u16("port")?;
    peer.uploaded = reader.u64("uploaded")?;
    peer.downloaded = reader.u64("downloaded")?;
    peer.left = reader.u64("left")?;
    peer.start_time = reader.i64("start_time")?;
    let last_announce = reader.i64("last_announce")?;
    peer.client_id = reader.u32("client id")?;
    match ip {
        IpAddr::V4(ip) => {
            peer.v4 = Some(CachedEndpoint {
                ip,
                port,
                last_announce,
            })
        }
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(ip) => {
                peer.v4 = Some(CachedEndpoint {
                    ip,
                    port,
                    last_announce,
                })
            }
            None => {
                peer.v6 = Some(CachedEndpoint {
                    ip,
                    port,
                    last_announce,
                })
            }
        },
    }
    Ok(())
}

/// The rest of a version 2 peer: endpoint mask, endpoints, counters.
fn decode_peer_v2(reader: &mut Reader<'_>, peer: &mut CachedPeer) -> Result<(), DecodeError> {
    let mask_at = reader.at;
    let mask = reader.u8("endpoint mask")?;
    if mask == 0 || mask & !(ENDPOINT_V4 | ENDPOINT_V6) != 0 {
        return reader.fail(mask_at, format!("bad endpoint mask {mask}"));
    }
    if mask & ENDPOINT_V4 != 0 {
        peer.v4 = Some(CachedEndpoint {
            ip: Ipv4Addr::from(reader.array::<4>("IPv4 address")?),
            port: reader.u16("IPv4 port")?,
            last_announce: reader.i64("IPv4 last_announce")?,
        });
    }
    if mask & ENDPOINT_V6 != 0 {
        let ip_at = reader.at;
        let ip = Ipv6Addr::from(reader.array::<16>("IPv6 address")?);
        if ip.to_ipv4_mapped().is_some() {
            return reader.fail(ip_at, format!("IPv4-mapped address {ip} as IPv6 endpoint"));
        }
        peer.v6 = Some(CachedEndpoint {
            ip,
            port: reader.u16("IPv6 port")?,
            last_announce: reader.i64("IPv6 last_announce")?,
        });
    }
    peer.uploaded = reader.u64("uploaded")?;
    peer.downloaded = reader.u64("downloaded")?;
    peer.left = reader.u64("left")?;
    peer.start_time = reader.i64("start_time")?;
    peer.client_id = reader.u32("client id")?;
    Ok(())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ip: &str, port: u16, last_announce: i64) -> Option<CachedEndpoint<Ipv4Addr>> {
        Some(CachedEndpoint {
            ip: ip.parse().unwrap(),
            port,
            last_announce,
        })
    }

    fn v6(ip: &str, port: u16, last_announce: i64) -> Option<CachedEndpoint<Ipv6Addr>> {
        Some(CachedEndpoint {
            ip: ip.parse().unwrap(),
            port,
            last_announce,
        })
    }

    pub(crate) fn sample() -> CacheFile {
        CacheFile {
            written_at: 1_700_000_000,
            users: vec![CachedUser {
                passkey: "abcdef".to_owned(),
                id: 7,
                disable_download: true,
                tracker_hide: false,
                up_multiplier: 0.7,
                down_multiplier: 2.0,
            }],
            torrents: vec![CachedTorrent {
                info_hash: [9; 20],
                id: 3,
                group_id: 2,
                torrent_type: "anime".into(),
                status: 0,
                snatched: 5,
                last_action: 1_699_999_999,
                up_multiplier: 1.0,
                down_multiplier: 0.5,
                peers: vec![
                    CachedPeer {
                        peer_id: *b"-TR2940-abcdefghijkl",
                        user_id: 7,
                        seeding: true,
                        v4: v4("1.2.3.4", 6881, 20),
                        v6: None,
                        uploaded: 1,
                        downloaded: 2,
                        left: 0,
                        start_time: 10,
                        client_id: 1,
                    },
                    CachedPeer {
                        peer_id: *b"-DE13F0-abcdefghijkl",
                        user_id: 8,
                        seeding: false,
                        v4: None,
                        v6: v6("2001:db8::1", 51413, i64::MAX),
                        uploaded: u64::MAX,
                        downloaded: 0,
                        left: 99,
                        start_time: -1,
                        client_id: 0,
                    },
                    CachedPeer {
                        peer_id: *b"-qB4630-abcdefghijkl",
                        user_id: 9,
                        seeding: false,
                        v4: v4("5.6.7.8", 6882, 1_700_000_100),
                        v6: v6("2001:db8::2", 6883, 1_700_000_200),
                        uploaded: 3,
                        downloaded: 4,
                        left: 5,
                        start_time: 1_699_000_000,
                        client_id: 6,
                    },
                ],
            }],
        }
    }

    /// Recomputes the CRC after a test edited the body.
    fn reseal(bytes: &mut Vec<u8>) {
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes.truncate(body);
        bytes.extend_from_slice(&crc.to_le_bytes());
    }

    fn position(bytes: &[u8], needle: &[u8]) -> usize {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    }

    #[test]
    fn round_trip_and_layout() {
        let file = sample();
        let bytes = encode(&file).unwrap();
        assert_eq!(&bytes[..8], b"CHYPEERS");
        assert_eq!(&bytes[8..12], &[2, 0, 0, 0]);
        assert_eq!(&bytes[12..20], &1_700_000_000i64.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap(), file);
        let empty = CacheFile {
            written_at: 0,
            users: vec![],
            torrents: vec![],
        };
        let bytes = encode(&empty).unwrap();
        assert_eq!(bytes.len(), 20 + 4 + 4 + 4);
        assert_eq!(decode(&bytes).unwrap(), empty);
    }

    #[test]
    fn dual_stack_peer_layout_and_round_trip() {
        let file = sample();
        let bytes = encode(&file).unwrap();
        let at = position(&bytes, b"-qB4630-abcdefghijkl");
        let mut want = b"-qB4630-abcdefghijkl".to_vec();
        want.extend_from_slice(&9u32.to_le_bytes());
        want.push(0); // leeching
        want.push(3); // both endpoints
        want.extend_from_slice(&[5, 6, 7, 8]);
        want.extend_from_slice(&6882u16.to_le_bytes());
        want.extend_from_slice(&1_700_000_100i64.to_le_bytes());
        want.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        want.extend_from_slice(&6883u16.to_le_bytes());
        want.extend_from_slice(&1_700_000_200i64.to_le_bytes());
        for counter in [3u64, 4, 5] {
            want.extend_from_slice(&counter.to_le_bytes());
        }
        want.extend_from_slice(&1_699_000_000i64.to_le_bytes());
        want.extend_from_slice(&6u32.to_le_bytes());
        assert_eq!(&bytes[at..at + want.len()], &want[..]);
        // The dual-stack peer is the last thing before the trailer.
        assert_eq!(at + want.len(), bytes.len() - 4);

        let peer = decode(&bytes).unwrap().torrents[0].peers[2];
        assert_eq!(peer, file.torrents[0].peers[2]);
        assert_eq!(peer.v4, v4("5.6.7.8", 6882, 1_700_000_100));
        assert_eq!(peer.v6, v6("2001:db8::2", 6883, 1_700_000_200));
    }

    #[test]
    fn smallest_peer_bound_holds() {
        // A peer with one IPv4 endpoint is the smallest version 2 peer.
        let mut file = sample();
        file.torrents[0].peers.truncate(1);
        let one = encode(&file).unwrap().len();
        file.torrents[0].peers.clear();
        let none = encode(&file).unwrap().len();
        assert_eq!(one - none, MIN_PEER_LEN_V2);
        assert_eq!(v1_peer(&V1Peer::four()).len(), MIN_PEER_LEN_V1);
        assert_eq!(MIN_PEER_LEN, MIN_PEER_LEN_V1.min(MIN_PEER_LEN_V2));
    }

    #[test]
    fn refusals() {
        let good = encode(&sample()).unwrap();
        let problem = |bytes: &[u8]| decode(bytes).unwrap_err().problem;

        assert!(problem(b"").contains("truncated"));
        assert!(
            problem(b"NOTPEERS\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").contains("bad magic")
        );
        for cut in [1, 30, good.len() / 2, good.len() - 1] {
            let err = decode(&good[..good.len() - cut]).unwrap_err();
            assert!(
                err.problem.contains("CRC") || err.problem.contains("truncated"),
                "cut {cut}: {err}"
            );
        }
        let mut flipped = good.clone();
        flipped[40] ^= 0x10;
        assert!(problem(&flipped).starts_with("CRC mismatch"));

        for version in [0u8, 3, 9] {
            let mut other = good.clone();
            other[8] = version;
            assert_eq!(
                decode(&other).unwrap_err(),
                DecodeError {
                    offset: 8,
                    problem: format!("unsupported version {version} (this build reads 1 and 2)")
                }
            );
        }

        let mut trailing = good[..good.len() - 4].to_vec();
        trailing.push(0);
        trailing.extend_from_slice(&[0; 4]);
        reseal(&mut trailing);
        assert_eq!(problem(&trailing), "1 trailing bytes");

        // users: count at 20, passkey len at 24, passkey at 25..31, id 31..35, flags at 35
        let mut flags = good.clone();
        flags[35] = 0x04;
        reseal(&mut flags);
        assert_eq!(problem(&flags), "reserved user flag bits set (0x04)");

        let mut nan = good.clone();
        nan[36..44].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        reseal(&mut nan);
        assert_eq!(
            decode(&nan).unwrap_err(),
            DecodeError {
                offset: 36,
                problem: "up multiplier is not a finite number".to_owned()
            }
        );

        let mut text = good.clone();
        text[25] = 0xff;
        reseal(&mut text);
        assert_eq!(problem(&text), "passkey is not UTF-8");
    }

    #[test]
    fn duplicates() {
        let mut file = sample();
        file.users.push(file.users[0].clone());
        assert!(decode(&encode(&file).unwrap())
            .unwrap_err()
            .problem
            .starts_with("duplicate passkey"));

        let mut file = sample();
        file.torrents.push(file.torrents[0].clone());
        assert!(decode(&encode(&file).unwrap())
            .unwrap_err()
            .problem
            .starts_with("duplicate info_hash"));

        let mut file = sample();
        let again = file.torrents[0].peers[0];
        file.torrents[0].peers.push(again);
        assert!(decode(&encode(&file).unwrap())
            .unwrap_err()
            .problem
            .starts_with("duplicate peer 7-"));

        // The same peer_id for another user is another peer.
        let mut file = sample();
        let mut other = file.torrents[0].peers[0];
        other.user_id = 99;
        file.torrents[0].peers.push(other);
        assert!(decode(&encode(&file).unwrap()).is_ok());
    }

    #[test]
    fn bad_endpoint_masks() {
        let good = encode(&sample()).unwrap();
        // The first peer's mask follows its peer_id, user id and flags.
        let mask_at = position(&good, b"-TR2940-abcdefghijkl") + 20 + 4 + 1;
        assert_eq!(good[mask_at], 1);
        for mask in [0u8, 4, 5, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[mask_at] = mask;
            reseal(&mut bytes);
            assert_eq!(
                decode(&bytes).unwrap_err(),
                DecodeError {
                    offset: mask_at,
                    problem: format!("bad endpoint mask {mask}")
                }
            );
        }
        // A mask promising an endpoint the record lacks runs off its end.
        let mut bytes = good.clone();
        bytes[mask_at] = 3;
        reseal(&mut bytes);
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn ipv4_mapped_ipv6_endpoints_are_refused() {
        let mut file = sample();
        file.torrents[0].peers[1].v6 = v6("::ffff:1.2.3.4", 1, 2);
        assert!(encode(&file)
            .unwrap_err()
            .0
            .contains("IPv4-mapped IPv6 endpoint ::ffff:1.2.3.4"));

        // Written anyway: the decoder refuses it.
        let mut bytes = encode(&sample()).unwrap();
        let ip_at = position(&bytes, b"-DE13F0-abcdefghijkl") + 20 + 4 + 1 + 1;
        let mapped: Ipv6Addr = "::ffff:1.2.3.4".parse().unwrap();
        bytes[ip_at..ip_at + 16].copy_from_slice(&mapped.octets());
        reseal(&mut bytes);
        assert_eq!(
            decode(&bytes).unwrap_err(),
            DecodeError {
                offset: ip_at,
                problem: "IPv4-mapped address ::ffff:1.2.3.4 as IPv6 endpoint".to_owned()
            }
        );
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        // A torrent count of 4 billion in an otherwise tiny file fails on truncation,
        // having reserved no more than the file could hold.
        let mut bytes = encode(&CacheFile {
            written_at: 0,
            users: vec![],
            torrents: vec![],
        })
        .unwrap();
        bytes[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut bytes);
        assert!(decode(&bytes).unwrap_err().problem.starts_with("truncated"));
        let mut bytes = encode(&sample()).unwrap();
        let peer_count_at = position(&bytes, b"-TR2940-abcdefghijkl") - 4;
        bytes[peer_count_at..peer_count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut bytes);
        assert!(decode(&bytes).unwrap_err().problem.starts_with("truncated"));
    }

    #[test]
    fn encoder_refuses_what_the_format_cannot_hold() {
        let mut file = sample();
        file.users[0].passkey = "x".repeat(256);
        assert!(encode(&file).is_err());
        let mut file = sample();
        file.users[0].passkey.clear();
        assert!(encode(&file).is_err());
        let mut file = sample();
        file.torrents[0].peers[0].v4 = None;
        assert_eq!(
            encode(&file).unwrap_err().0,
            format!("peer 7-{} has no endpoint", hex(b"-TR2940-abcdefghijkl"))
        );
    }

    /// A version 1 peer: one address of family 4 or 6.
    #[derive(Clone, Debug)]
    pub(super) struct V1Peer {
        pub peer_id: [u8; 20],
        pub user_id: u32,
        pub flags: u8,
        pub family: u8,
        pub address: Vec<u8>,
        pub port: u16,
        pub counters: [u64; 3],
        pub start_time: i64,
        pub last_announce: i64,
        pub client_id: u32,
    }

    impl V1Peer {
        fn four() -> V1Peer {
            V1Peer {
                peer_id: *b"-TR2940-abcdefghijkl",
                user_id: 7,
                flags: 1,
                family: 4,
                address: vec![1, 2, 3, 4],
                port: 6881,
                counters: [1, 2, 0],
                start_time: 10,
                last_announce: 20,
                client_id: 1,
            }
        }
    }

    /// The bytes of a version 1 peer record, by hand.
    pub(super) fn v1_peer(peer: &V1Peer) -> Vec<u8> {
        let mut out = peer.peer_id.to_vec();
        out.extend_from_slice(&peer.user_id.to_le_bytes());
        out.push(peer.flags);
        out.push(peer.family);
        out.extend_from_slice(&peer.address);
        out.extend_from_slice(&peer.port.to_le_bytes());
        for counter in peer.counters {
            out.extend_from_slice(&counter.to_le_bytes());
        }
        out.extend_from_slice(&peer.start_time.to_le_bytes());
        out.extend_from_slice(&peer.last_announce.to_le_bytes());
        out.extend_from_slice(&peer.client_id.to_le_bytes());
        out
    }

    /// A whole version 1 file by hand: no users, one torrent with `peers`.
    pub(super) fn v1_file(peers: &[V1Peer]) -> Vec<u8> {
        let mut out = b"CHYPEERS".to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&1_600_000_000i64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // users
        out.extend_from_slice(&1u32.to_le_bytes()); // torrents
        out.extend_from_slice(&[0x42; 20]);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&2u32.to_le_bytes());
        out.push(5);
        out.extend_from_slice(b"music");
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&1_599_999_999i64.to_le_bytes());
        out.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
        out.extend_from_slice(&0.5f64.to_bits().to_le_bytes());
        out.extend_from_slice(&(peers.len() as u32).to_le_bytes());
        for peer in peers {
            out.extend_from_slice(&v1_peer(peer));
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn version_1_files_are_read() {
        let four = V1Peer::four();
        let six = V1Peer {
            peer_id: *b"-DE13F0-abcdefghijkl",
            user_id: 8,
            flags: 0,
            family: 6,
            address: "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec(),
            port: 51413,
            counters: [u64::MAX, 0, 99],
            start_time: -1,
            last_announce: 1_600_000_000,
            client_id: 3,
        };
        let mapped = V1Peer {
            peer_id: *b"-qB4630-abcdefghijkl",
            user_id: 9,
            family: 6,
            address: "::ffff:5.6.7.8"
                .parse::<Ipv6Addr>()
                .unwrap()
                .octets()
                .to_vec(),
            port: 7000,
            last_announce: 30,
            ..V1Peer::four()
        };
        let bytes = v1_file(&[four, six, mapped]);
        let file = decode(&bytes).unwrap();
        assert_eq!(file.written_at, 1_600_000_000);
        assert!(file.users.is_empty());
        let torrent = &file.torrents[0];
        assert_eq!(
            (
                torrent.info_hash,
                torrent.id,
                torrent.group_id,
                &*torrent.torrent_type,
                torrent.snatched,
                torrent.last_action,
                torrent.down_multiplier
            ),
            ([0x42; 20], 3, 2, "music", 4, 1_599_999_999, 0.5)
        );
        assert_eq!(
            torrent.peers,
            [
                CachedPeer {
                    peer_id: *b"-TR2940-abcdefghijkl",
                    user_id: 7,
                    seeding: true,
                    v4: v4("1.2.3.4", 6881, 20),
                    v6: None,
                    uploaded: 1,
                    downloaded: 2,
                    left: 0,
                    start_time: 10,
                    client_id: 1,
                },
                CachedPeer {
                    peer_id: *b"-DE13F0-abcdefghijkl",
                    user_id: 8,
                    seeding: false,
                    v4: None,
                    v6: v6("2001:db8::1", 51413, 1_600_000_000),
                    uploaded: u64::MAX,
                    downloaded: 0,
                    left: 99,
                    start_time: -1,
                    client_id: 3,
                },
                CachedPeer {
                    peer_id: *b"-qB4630-abcdefghijkl",
                    user_id: 9,
                    seeding: true,
                    v4: v4("5.6.7.8", 7000, 30),
                    v6: None,
                    uploaded: 1,
                    downloaded: 2,
                    left: 0,
                    start_time: 10,
                    client_id: 1,
                },
            ]
        );
        // Written again, it is version 2 with the same content.
        let again = encode(&file).unwrap();
        assert_eq!(&again[8..12], &[2, 0, 0, 0]);
        assert_eq!(decode(&again).unwrap(), file);
    }

    #[test]
    fn version_1_refusals() {
        let bad = V1Peer {
            family: 5,
            ..V1Peer::four()
        };
        let bytes = v1_file(&[bad]);
        let family_at = position(&bytes, b"-TR2940-abcdefghijkl") + 20 + 4 + 1;
        assert_eq!(
            decode(&bytes).unwrap_err(),
            DecodeError {
                offset: family_at,
                problem: "bad address family 5".to_owned()
            }
        );
        let flags = V1Peer {
            flags: 2,
            ..V1Peer::four()
        };
        assert_eq!(
            decode(&v1_file(&[flags])).unwrap_err().problem,
            "reserved peer flag bits set (0x02)"
        );
        let four = V1Peer::four();
        assert!(decode(&v1_file(&[four.clone(), four]))
            .unwrap_err()
            .problem
            .starts_with("duplicate peer 7-"));
    }
}

#[cfg(test)]
mod properties {
    use super::tests::{v1_file, V1Peer};
    use super::*;
    use proptest::prelude::*;

    fn v1_peer() -> impl Strategy<Value = V1Peer> {
        (
            any::<u32>(),
            any::<bool>(),
            prop_oneof![
                any::<[u8; 4]>().prop_map(|a| (4u8, a.to_vec())),
                any::<[u8; 16]>().prop_map(|a| (6u8, a.to_vec())),
                // IPv4-mapped IPv6.
                any::<[u8; 4]>()
                    .prop_map(|a| (6u8, Ipv4Addr::from(a).to_ipv6_mapped().octets().to_vec())),
            ],
            any::<u16>(),
            any::<[u64; 3]>(),
            (any::<i64>(), any::<i64>(), any::<u32>()),
        )
            .prop_map(
                |(user_id, seeding, (family, address), port, counters, times)| V1Peer {
                    peer_id: [0; 20],
                    user_id,
                    flags: u8::from(seeding),
                    family,
                    address,
                    port,
                    counters,
                    start_time: times.0,
                    last_announce: times.1,
                    client_id: times.2,
                },
            )
    }

    proptest! {
        /// Every version 1 peer comes back with its one address as the endpoint of its
        /// family, and survives being written as version 2.
        #[test]
        fn version_1_peers_become_one_endpoint(
            peers in proptest::collection::btree_map(any::<[u8; 20]>(), v1_peer(), 0..8)
        ) {
            let peers: Vec<V1Peer> = peers
                .into_iter()
                .map(|(peer_id, peer)| V1Peer { peer_id, ..peer })
                .collect();
            let file = decode(&v1_file(&peers)).unwrap();
            let decoded = &file.torrents[0].peers;
            prop_assert_eq!(decoded.len(), peers.len());
            for (old, new) in peers.iter().zip(decoded) {
                prop_assert_eq!(new.peer_id, old.peer_id);
                prop_assert_eq!(new.user_id, old.user_id);
                prop_assert_eq!(new.seeding, old.flags == 1);
                prop_assert_eq!(
                    [new.uploaded, new.downloaded, new.left],
                    old.counters
                );
                prop_assert_eq!((new.start_time, new.client_id), (old.start_time, old.client_id));
                let ip = if old.family == 4 {
                    IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&old.address[..]).unwrap()))
                } else {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&old.address[..]).unwrap()))
                };
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                match ip {
                    IpAddr::V4(ip) => {
                        prop_assert_eq!(new.v6, None);
                        prop_assert_eq!(new.v4, Some(CachedEndpoint { ip, port: old.port, last_announce: old.last_announce }));
                    }
                    IpAddr::V6(ip) => {
                        prop_assert_eq!(new.v4, None);
                        prop_assert_eq!(new.v6, Some(CachedEndpoint { ip, port: old.port, last_announce: old.last_announce }));
                    }
                }
            }
            prop_assert_eq!(decode(&encode(&file).unwrap()).unwrap(), file);
        }
    }
}
