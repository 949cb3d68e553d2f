//! The journal's records, as bytes. Integers are LEB128 varints (signed ones
//! zigzagged), addresses and peer ids raw: an announce takes about 150 bytes.
//!
//! A segment file is a sequence of frames, `length u32 LE | CRC-32 u32 LE | payload`,
//! each holding whole records; the first frame of a file holds its header. A frame
//! whose length runs past the end of the file or whose checksum does not match is a
//! write the process did not finish (a crash): it and what follows are ignored.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use crate::tracker::{
    AnnounceDeltas, ClientId, Endpoint, Family, HistoryDelta, Peer, PeerChange, PeerId, PeerKey,
    SnatchDelta, TorrentDelta, TorrentId, TransferIp, TransferIpDelta, UserDelta, UserId,
};

/// How many tables have flush numbers (indexes of `accounting::Kind::ALL`).
pub const KINDS: usize = 8;

/// Flush numbers, one per table.
pub type Epochs = [u64; KINDS];

const HEADER: u8 = 1;
const CUT: u8 = 2;
const ANNOUNCE: u8 = 3;
const ROW: u8 = 4;

/// Bytes of a frame's length and checksum.
pub const FRAME_HEAD: usize = 8;

/// One record read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// First in a segment: its number, the database it belongs to (the id in its
    /// marker table) and every table's open flush at its start.
    Header {
        segment: u64,
        database: u64,
        open: Epochs,
    },
    /// Table `kind` took its pending rows as flush `epoch`: what came before is in it
    /// (or an earlier one), what follows in a later one.
    Cut { kind: u8, epoch: u64 },
    /// One announce: its peer's change and its deltas.
    Announce(Box<Announce>),
    /// A row merged from elsewhere (the spill file), as its spill line.
    Row(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Announce {
    pub torrent: TorrentId,
    pub key: PeerKey,
    pub peer: Option<(Peer, bool)>,
    pub evicted: Vec<PeerId>,
    pub deltas: AnnounceDeltas,
}

/// The record could not be decoded: the journal is damaged or from another version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed journal record")
    }
}

fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_signed(out: &mut Vec<u8>, value: i64) {
    put(out, ((value << 1) ^ (value >> 63)) as u64);
}

pub fn header(out: &mut Vec<u8>, segment: u64, database: u64, open: &Epochs) {
    out.push(HEADER);
    put(out, segment);
    put(out, database);
    out.push(KINDS as u8);
    for &epoch in open {
        put(out, epoch);
    }
}

pub fn cut(out: &mut Vec<u8>, kind: u8, epoch: u64) {
    out.push(CUT);
    out.push(kind);
    put(out, epoch);
}

pub fn row(out: &mut Vec<u8>, line: &[u8]) {
    out.push(ROW);
    put(out, line.len() as u64);
    out.extend_from_slice(line);
}

// Flag bits of an announce record.
const REMOVED: u8 = 1;
const SEEDING: u8 = 2;
const HAS_V4: u8 = 4;
const HAS_V6: u8 = 8;
const COMPLETED_V4: u8 = 16;
const COMPLETED_V6: u8 = 32;
const HAS_USER: u8 = 64;
const HAS_SNATCH: u8 = 128;
// Second flag byte.
const UNPRUNE: u8 = 1;
const HISTORY_SEEDING: u8 = 2;
const HISTORY_ACTIVE: u8 = 4;
const TRANSFER_V6: u8 = 8;

fn bit(on: bool, flag: u8) -> u8 {
    if on {
        flag
    } else {
        0
    }
}

/// One announce. Every row of its deltas has the announce's user and torrent, which
/// are written once.
pub fn announce(out: &mut Vec<u8>, change: &PeerChange<'_>, deltas: &AnnounceDeltas) {
    out.push(ANNOUNCE);
    put(out, u64::from(change.torrent.0));
    put(out, u64::from(change.key.user.0));
    out.extend_from_slice(&change.key.peer_id.0);
    let mut flags = 0;
    match change.peer {
        None => flags |= REMOVED,
        Some((peer, seeding)) => {
            flags |= bit(seeding, SEEDING)
                | bit(peer.v4.is_some(), HAS_V4)
                | bit(peer.v6.is_some(), HAS_V6);
            flags |= match peer.completed_over {
                None => 0,
                Some(Family::V4) => COMPLETED_V4,
                Some(Family::V6) => COMPLETED_V6,
            };
        }
    }
    flags |= bit(deltas.user.is_some(), HAS_USER) | bit(deltas.snatch.is_some(), HAS_SNATCH);
    let history = &deltas.history;
    let transfer_v6 = matches!(deltas.transfer_ip, TransferIp::V6(_));
    let flags2 = bit(deltas.unprune.is_some(), UNPRUNE)
        | bit(history.seeding, HISTORY_SEEDING)
        | bit(history.active, HISTORY_ACTIVE)
        | bit(transfer_v6, TRANSFER_V6);
    out.push(flags);
    out.push(flags2);
    if let Some((peer, _)) = change.peer {
        if let Some(v4) = peer.v4 {
            out.extend_from_slice(&v4.ip.octets());
            out.extend_from_slice(&v4.port.to_le_bytes());
            put(out, u64::from(v4.seen.get()));
        }
        if let Some(v6) = peer.v6 {
            out.extend_from_slice(&v6.ip.octets());
            out.extend_from_slice(&v6.port.to_le_bytes());
            put(out, u64::from(v6.seen.get()));
        }
        put(out, peer.uploaded);
        put(out, peer.downloaded);
        put(out, peer.left);
        put(out, u64::from(peer.start_time));
        put(out, u64::from(peer.client_id.0));
    }
    put(out, change.evicted.len() as u64);
    for id in change.evicted {
        out.extend_from_slice(&id.0);
    }
    let torrent = &deltas.torrent;
    put(out, u64::from(torrent.snatched));
    put(out, u64::from(torrent.seeders));
    put(out, u64::from(torrent.leechers));
    put_signed(out, torrent.last_action);
    put(out, history.uploaded);
    put(out, history.downloaded);
    put_signed(out, history.start_time);
    put_signed(out, history.last_announce);
    put_signed(out, history.active_time);
    put_signed(out, history.seed_time);
    put(out, u64::from(history.snatched));
    put(out, history.remaining);
    if let Some(user) = &deltas.user {
        put(out, user.uploaded);
        put(out, user.downloaded);
        put(out, user.rawup);
        put(out, user.rawdl);
    }
    let (client, port, up, down, start, last) = match &deltas.transfer_ip {
        TransferIp::V4(row) => {
            out.extend_from_slice(&row.ip.to_be_bytes());
            ip_row_fields(row)
        }
        TransferIp::V6(row) => {
            out.extend_from_slice(&row.ip);
            ip_row_fields(row)
        }
    };
    put(out, u64::from(client));
    out.extend_from_slice(&port.to_le_bytes());
    put(out, up);
    put(out, down);
    put_signed(out, start);
    put_signed(out, last);
    if let Some(snatch) = &deltas.snatch {
        put_signed(out, snatch.snatched_time);
        put_signed(out, snatch.start_time);
    }
}

fn ip_row_fields<A>(row: &TransferIpDelta<A>) -> (u32, u16, u64, u64, i64, i64) {
    (
        row.client.0,
        row.port,
        row.uploaded,
        row.downloaded,
        row.start_time,
        row.last_announce,
    )
}

/// Reads records from a frame's payload.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Bytes of the payload not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let (&first, rest) = self.bytes.split_first().ok_or(Malformed)?;
        self.bytes = rest;
        Ok(first)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        if self.bytes.len() < N {
            return Err(Malformed);
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        head.try_into().map_err(|_| Malformed)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed)
    }

    fn signed(&mut self) -> Result<i64, Malformed> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        u32::try_from(self.varint()?).map_err(|_| Malformed)
    }

    fn port(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn seen(&mut self) -> Result<NonZeroU32, Malformed> {
        NonZeroU32::new(self.u32()?).ok_or(Malformed)
    }

    /// The next record, or None at the end of the payload.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Malformed> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let entry = match self.byte()? {
            HEADER => {
                let segment = self.varint()?;
                let database = self.varint()?;
                let count = usize::from(self.byte()?);
                let mut open = [0; KINDS];
                for n in 0..count {
                    let epoch = self.varint()?;
                    if let Some(slot) = open.get_mut(n) {
                        *slot = epoch;
                    }
                }
                Entry::Header {
                    segment,
                    database,
                    open,
                }
            }
            CUT => {
                let kind = self.byte()?;
                if usize::from(kind) >= KINDS {
                    return Err(Malformed);
                }
                Entry::Cut {
                    kind,
                    epoch: self.varint()?,
                }
            }
            ANNOUNCE => Entry::Announce(Box::new(self.announce()?)),
            ROW => {
                let len = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
                if self.bytes.len() < len {
                    return Err(Malformed);
                }
                let (line, rest) = self.bytes.split_at(len);
                self.bytes = rest;
                Entry::Row(line.to_vec())
            }
            _ => return Err(Malformed),
        };
        Ok(Some(entry))
    }

    fn announce(&mut self) -> Result<Announce, Malformed> {
        let torrent = TorrentId(self.u32()?);
        let user = UserId(self.u32()?);
        let key = PeerKey {
            user,
            peer_id: PeerId(self.take()?),
        };
        let flags = self.byte()?;
        let flags2 = self.byte()?;
        let peer = if flags & REMOVED != 0 {
            None
        } else {
            let v4 = if flags & HAS_V4 != 0 {
                Some(Endpoint {
                    ip: Ipv4Addr::from(self.take::<4>()?),
                    port: self.port()?,
                    seen: self.seen()?,
                })
            } else {
                None
            };
            let v6 = if flags & HAS_V6 != 0 {
                Some(Endpoint {
                    ip: Ipv6Addr::from(self.take::<16>()?),
                    port: self.port()?,
                    seen: self.seen()?,
                })
            } else {
                None
            };
            let peer = Peer {
                v4,
                v6,
                uploaded: self.varint()?,
                downloaded: self.varint()?,
                left: self.varint()?,
                start_time: self.u32()?,
                client_id: ClientId(self.u32()?),
                completed_over: if flags & COMPLETED_V4 != 0 {
                    Some(Family::V4)
                } else if flags & COMPLETED_V6 != 0 {
                    Some(Family::V6)
                } else {
                    None
                },
            };
            Some((peer, flags & SEEDING != 0))
        };
        let evicted_count = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        // Each takes 20 bytes: a count past what is left is damage, not a reason to
        // allocate.
        if evicted_count > self.bytes.len() / 20 {
            return Err(Malformed);
        }
        let mut evicted = Vec::with_capacity(evicted_count);
        for _ in 0..evicted_count {
            evicted.push(PeerId(self.take()?));
        }
        let torrent_delta = TorrentDelta {
            id: torrent,
            snatched: self.u32()?,
            seeders: self.u32()?,
            leechers: self.u32()?,
            last_action: self.signed()?,
        };
        let history = HistoryDelta {
            user,
            torrent,
            uploaded: self.varint()?,
            downloaded: self.varint()?,
            seeding: flags2 & HISTORY_SEEDING != 0,
            start_time: self.signed()?,
            last_announce: self.signed()?,
            active_time: self.signed()?,
            seed_time: self.signed()?,
            active: flags2 & HISTORY_ACTIVE != 0,
            snatched: self.u32()?,
            remaining: self.varint()?,
        };
        let user_delta = if flags & HAS_USER != 0 {
            Some(UserDelta {
                id: user,
                uploaded: self.varint()?,
                downloaded: self.varint()?,
                rawup: self.varint()?,
                rawdl: self.varint()?,
            })
        } else {
            None
        };
        let v6_ip = if flags2 & TRANSFER_V6 != 0 {
            Some(self.take::<16>()?)
        } else {
            None
        };
        let v4_ip = if v6_ip.is_none() {
            u32::from_be_bytes(self.take()?)
        } else {
            0
        };
        let row = TransferIpDelta {
            user,
            torrent,
            client: ClientId(self.u32()?),
            ip: (),
            port: self.port()?,
            uploaded: self.varint()?,
            downloaded: self.varint()?,
            start_time: self.signed()?,
            last_announce: self.signed()?,
        };
        let transfer_ip = match v6_ip {
            Some(ip) => TransferIp::V6(row.with_ip(ip)),
            None => TransferIp::V4(row.with_ip(v4_ip)),
        };
        let snatch = if flags & HAS_SNATCH != 0 {
            Some(SnatchDelta {
                user,
                torrent,
                snatched_time: self.signed()?,
                start_time: self.signed()?,
            })
        } else {
            None
        };
        Ok(Announce {
            torrent,
            key,
            peer,
            evicted,
            deltas: AnnounceDeltas {
                torrent: torrent_delta,
                history,
                user: user_delta,
                transfer_ip,
                snatch,
                unprune: (flags2 & UNPRUNE != 0).then_some(torrent),
            },
        })
    }
}

/// A frame's checksum (CRC-32): it tells a frame the process finished writing from
/// one it did not; it is no defence against tampering.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Appends `payload` to `out` as one frame.
pub fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits a segment file into its frames' payloads. Stops at the first frame that is
/// incomplete or does not match its checksum, returning the offset where the good
/// part ends (the file's length when all is good).
pub fn frames(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= FRAME_HEAD {
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[at..at + 4]);
        let mut sum = [0u8; 4];
        sum.copy_from_slice(&bytes[at + 4..at + FRAME_HEAD]);
        let len = u32::from_le_bytes(len) as usize;
        let start = at + FRAME_HEAD;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            break;
        };
        if checksum(payload) != u32::from_le_bytes(sum) {
            break;
        }
        out.push(payload);
        at = start + len;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_peer() -> Peer {
        Peer {
            v4: Some(Endpoint {
                ip: Ipv4Addr::new(10, 1, 2, 3),
                port: 51413,
                seen: NonZeroU32::new(1_700_000_000).unwrap(),
            }),
            v6: Some(Endpoint {
                ip: "2001:db8::7".parse().unwrap(),
                port: 6881,
                seen: NonZeroU32::new(1_700_000_100).unwrap(),
            }),
            uploaded: 123_456_789_012,
            downloaded: 42,
            left: 0,
            start_time: 1_699_999_000,
            client_id: ClientId(7),
            completed_over: Some(Family::V6),
        }
    }

    fn sample_deltas(v6: bool) -> AnnounceDeltas {
        let (user, torrent) = (UserId(9), TorrentId(31));
        let row = TransferIpDelta {
            user,
            torrent,
            client: ClientId(7),
            ip: (),
            port: 51413,
            uploaded: 1000,
            downloaded: 0,
            start_time: 1_699_999_000,
            last_announce: 1_700_000_100,
        };
        AnnounceDeltas {
            torrent: TorrentDelta {
                id: torrent,
                snatched: 1,
                seeders: 3,
                leechers: 4,
                last_action: 1_700_000_100,
            },
            history: HistoryDelta {
                user,
                torrent,
                uploaded: 1000,
                downloaded: 0,
                seeding: true,
                start_time: 1_699_999_000,
                last_announce: 1_700_000_100,
                active_time: 100,
                seed_time: 100,
                active: true,
                snatched: 1,
                remaining: 0,
            },
            user: Some(UserDelta {
                id: user,
                uploaded: 2000,
                downloaded: 0,
                rawup: 1000,
                rawdl: 0,
            }),
            transfer_ip: if v6 {
                TransferIp::V6(row.with_ip(Ipv6Addr::LOCALHOST.octets()))
            } else {
                TransferIp::V4(row.with_ip(0x0a01_0203))
            },
            snatch: Some(SnatchDelta {
                user,
                torrent,
                snatched_time: 1_700_000_100,
                start_time: 1_699_999_000,
            }),
            unprune: Some(torrent),
        }
    }

    #[test]
    fn announces_round_trip_in_under_200_bytes() {
        let peer = sample_peer();
        let key = PeerKey {
            user: UserId(9),
            peer_id: PeerId(*b"-TR4050-abcdefghijkl"),
        };
        for (v6, removed) in [(false, false), (true, false), (false, true)] {
            let deltas = sample_deltas(v6);
            let evicted = [PeerId([5; 20])];
            let change = PeerChange {
                torrent: TorrentId(31),
                key,
                peer: (!removed).then_some((&peer, true)),
                evicted: &evicted,
            };
            let mut bytes = Vec::new();
            announce(&mut bytes, &change, &deltas);
            assert!(bytes.len() < 200, "{} bytes", bytes.len());
            let mut reader = Reader::new(&bytes);
            let Some(Entry::Announce(read)) = reader.next_entry().unwrap() else {
                panic!("not an announce");
            };
            assert_eq!(read.torrent, TorrentId(31));
            assert_eq!(read.key, key);
            assert_eq!(read.peer, (!removed).then(|| (peer.clone(), true)));
            assert_eq!(read.evicted, evicted);
            assert_eq!(read.deltas, deltas);
            assert_eq!(reader.next_entry(), Ok(None));
        }
    }

    #[test]
    fn control_records_round_trip_and_damage_is_refused() {
        let mut bytes = Vec::new();
        header(&mut bytes, 12, 99, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let after_header = bytes.len();
        cut(&mut bytes, 1, u64::MAX);
        let after_cut = bytes.len();
        row(&mut bytes, b"{\"v\":1}");
        let mut reader = Reader::new(&bytes);
        assert_eq!(
            reader.next_entry(),
            Ok(Some(Entry::Header {
                segment: 12,
                database: 99,
                open: [1, 2, 3, 4, 5, 6, 7, 8]
            }))
        );
        assert_eq!(
            reader.next_entry(),
            Ok(Some(Entry::Cut {
                kind: 1,
                epoch: u64::MAX
            }))
        );
        assert_eq!(
            reader.next_entry(),
            Ok(Some(Entry::Row(b"{\"v\":1}".to_vec())))
        );
        assert_eq!(reader.next_entry(), Ok(None));
        for cut_at in 1..bytes.len() {
            let mut reader = Reader::new(&bytes[..cut_at]);
            let mut result = Ok(Some(Entry::Row(Vec::new())));
            while let Ok(Some(_)) = result {
                result = reader.next_entry();
            }
            // A record cut short is never read as something else.
            let boundary = cut_at == after_header || cut_at == after_cut;
            assert_eq!(result.is_err(), !boundary, "{cut_at}");
        }
        assert_eq!(Reader::new(&[99]).next_entry(), Err(Malformed));
    }

    #[test]
    fn frames_stop_at_a_torn_or_damaged_one() {
        let mut file = Vec::new();
        frame(&mut file, b"first");
        frame(&mut file, b"second frame");
        let whole = file.len();
        frame(&mut file, b"third");
        let (read, end) = frames(&file);
        assert_eq!(read, [&b"first"[..], b"second frame", b"third"]);
        assert_eq!(end, file.len());
        for torn in whole..file.len() {
            let (read, end) = frames(&file[..torn]);
            assert_eq!(read.len(), 2);
            assert_eq!(end, whole);
        }
        let mut damaged = file.clone();
        damaged[whole + FRAME_HEAD] ^= 1;
        assert_eq!(
            frames(&damaged),
            (vec![&b"first"[..], b"second frame"], whole)
        );
        assert_ne!(checksum(b"ab"), checksum(b"ba"));
    }
}
