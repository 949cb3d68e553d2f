//! Bencoded bodies: failures (SPEC §3.4), announce (§5.12) and scrape (§6) responses.
//! Dictionary keys are written in sorted order by construction.

use std::net::IpAddr;

use crate::bencode;
use crate::tracker::{Announced, Failure, ScrapeFile, SelectedPeer};

/// `d14:failure reason<len>:<M>8:intervali<N>e12:min intervali<N>ee`.
pub fn failure(out: &mut Vec<u8>, failure: &Failure) {
    let mut reason = Vec::new();
    failure.write_reason(&mut reason);
    let interval = i64::from(failure.interval());
    out.push(b'd');
    bencode::bytes(out, b"failure reason");
    bencode::bytes(out, &reason);
    bencode::int_entry(out, "interval", interval);
    bencode::int_entry(out, "min interval", interval);
    if let Some(minutes) = failure.retry_in_minutes() {
        bencode::int_entry(out, "retry in", i64::from(minutes));
    }
    out.push(b'e');
}

/// How the client asked for its peer list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFormat {
    /// 6 bytes per IPv4 peer (BEP 23).
    Compact,
    /// A list of dicts, with or without `peer id`.
    Dicts { with_peer_id: bool },
}

pub fn announce(out: &mut Vec<u8>, done: &Announced, peers: &[SelectedPeer], format: PeerFormat) {
    out.push(b'd');
    bencode::int_entry(out, "complete", i64::from(done.complete));
    bencode::int_entry(out, "downloaded", i64::from(done.downloaded));
    bencode::int_entry(out, "incomplete", i64::from(done.incomplete));
    bencode::int_entry(out, "interval", i64::from(done.interval));
    bencode::int_entry(out, "min interval", i64::from(done.min_interval));
    if done.include_peers {
        match format {
            PeerFormat::Compact => {
                // BEP 23 for IPv4, BEP 7 for IPv6: `peers6` only when it has any.
                bencode::bytes(out, b"peers");
                compact(out, peers.iter().filter_map(|p| p.v4), |ip| ip.octets());
                if peers.iter().any(|p| p.v6.is_some()) {
                    bencode::bytes(out, b"peers6");
                    compact(out, peers.iter().filter_map(|p| p.v6), |ip| ip.octets());
                }
            }
            PeerFormat::Dicts { with_peer_id } => {
                bencode::bytes(out, b"peers");
                dict_peers(out, peers, with_peer_id);
            }
        }
    }
    out.push(b'e');
}

/// A compact peer string: each endpoint's address bytes then its port, big-endian.
fn compact<A, const N: usize>(
    out: &mut Vec<u8>,
    endpoints: impl Iterator<Item = (A, u16)> + Clone,
    octets: impl Fn(A) -> [u8; N],
) {
    bencode::decimal(out, ((N + 2) * endpoints.clone().count()) as i64);
    out.push(b':');
    for (ip, port) in endpoints {
        out.extend_from_slice(&octets(ip));
        out.extend_from_slice(&port.to_be_bytes());
    }
}

/// One dict per endpoint, the address as text (dotted quad, RFC 5952 for IPv6).
fn dict_peers(out: &mut Vec<u8>, peers: &[SelectedPeer], with_peer_id: bool) {
    out.push(b'l');
    for peer in peers {
        let v4 = peer.v4.map(|(ip, port)| (IpAddr::V4(ip), port));
        let v6 = peer.v6.map(|(ip, port)| (IpAddr::V6(ip), port));
        for (ip, port) in v4.into_iter().chain(v6) {
            out.push(b'd');
            bencode::bytes(out, b"ip");
            bencode::bytes(out, ip.to_string().as_bytes());
            if with_peer_id {
                bencode::bytes(out, b"peer id");
                bencode::bytes(out, &peer.peer_id.0);
            }
            bencode::int_entry(out, "port", i64::from(port));
            out.push(b'e');
        }
    }
    out.push(b'e');
}

/// A scrape response; without any valid hash it carries the scrape failure reason
/// next to the (empty) files.
pub fn scrape(out: &mut Vec<u8>, files: &[ScrapeFile], no_hashes: bool, interval: u32) {
    let interval = i64::from(interval);
    out.push(b'd');
    if no_hashes {
        bencode::bytes(out, b"failure reason");
        bencode::bytes(out, b"Scrape without info_hash is not supported");
    }
    bencode::bytes(out, b"files");
    out.push(b'd');
    for file in files {
        bencode::bytes(out, &file.info_hash.0);
        out.push(b'd');
        bencode::int_entry(out, "complete", i64::from(file.complete));
        bencode::int_entry(out, "downloaded", i64::from(file.downloaded));
        bencode::int_entry(out, "incomplete", i64::from(file.incomplete));
        out.push(b'e');
    }
    out.push(b'e');
    bencode::bytes(out, b"flags");
    out.push(b'd');
    bencode::int_entry(out, "min_request_interval", interval);
    out.push(b'e');
    bencode::int_entry(out, "interval", interval);
    bencode::int_entry(out, "min interval", interval);
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::{InfoHash, PeerId};

    #[test]
    fn failure_bytes() {
        let mut out = Vec::new();
        failure(&mut out, &Failure::InvalidPasskey);
        assert_eq!(
            out,
            b"d14:failure reason23:Your passkey is invalid8:intervali3600e12:min intervali3600ee"
        );
    }

    #[test]
    fn empty_scrape_failure_bytes() {
        let mut out = Vec::new();
        scrape(&mut out, &[], true, 900);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "d14:failure reason41:Scrape without info_hash is not supported5:filesde5:flagsd20:min_request_intervali900ee8:intervali900e12:min intervali900ee"
        );
    }

    #[test]
    fn scrape_entries_match_a_reference_encoder() {
        let files = [ScrapeFile {
            info_hash: InfoHash(*b"abcdefghijklmnopqrst"),
            complete: 1,
            downloaded: 2,
            incomplete: 3,
        }];
        let mut out = Vec::new();
        scrape(&mut out, &files, false, 900);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "d5:filesd20:abcdefghijklmnopqrstd8:completei1e10:downloadedi2e10:incompletei3eee5:flagsd20:min_request_intervali900ee8:intervali900e12:min intervali900ee"
        );
    }

    #[test]
    fn peer_lists() {
        let peers = [SelectedPeer {
            peer_id: PeerId(*b"-TR2940-abcdefghijkl"),
            v4: Some(("10.0.0.1".parse().unwrap(), 0x1AE1)),
            v6: None,
        }];
        let mut out = Vec::new();
        compact(&mut out, peers.iter().filter_map(|p| p.v4), |ip| {
            ip.octets()
        });
        assert_eq!(out, b"6:\x0a\x00\x00\x01\x1a\xe1");
        out.clear();
        dict_peers(&mut out, &peers, true);
        assert_eq!(
            out,
            b"ld2:ip8:10.0.0.17:peer id20:-TR2940-abcdefghijkl4:porti6881eee"
        );
        out.clear();
        dict_peers(&mut out, &[], false);
        assert_eq!(out, b"le");
    }

    fn done() -> Announced {
        well_formed::announced(true)
    }

    #[test]
    fn ipv6_endpoints_go_to_peers6() {
        let peers = [
            SelectedPeer {
                peer_id: PeerId(*b"-TR2940-aaaaaaaaaaaa"),
                v4: Some(("1.2.3.4".parse().unwrap(), 0x1AE1)),
                v6: Some(("2001:db8::1".parse().unwrap(), 0x1AE2)),
            },
            SelectedPeer {
                peer_id: PeerId(*b"-TR2940-bbbbbbbbbbbb"),
                v4: None,
                v6: Some(("2a00::2".parse().unwrap(), 7000)),
            },
        ];
        let mut out = Vec::new();
        announce(&mut out, &done(), &peers, PeerFormat::Compact);
        let mut want = b"d8:completei3e10:downloadedi2e10:incompletei1e8:intervali1811e12:min intervali900e5:peers6:\x01\x02\x03\x04\x1a\xe16:peers636:".to_vec();
        want.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe2,
        ]);
        want.extend_from_slice(&[
            0x2a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x1b, 0x58,
        ]);
        want.push(b'e');
        assert_eq!(out, want);

        // Non-compact: one dict per endpoint, IPv6 in RFC 5952 text.
        out.clear();
        announce(
            &mut out,
            &done(),
            &peers,
            PeerFormat::Dicts {
                with_peer_id: false,
            },
        );
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "d8:completei3e10:downloadedi2e10:incompletei1e8:intervali1811e12:min intervali900e5:peersld2:ip7:1.2.3.44:porti6881eed2:ip11:2001:db8::14:porti6882eed2:ip7:2a00::24:porti7000eeee"
        );

        // IPv4 only: no peers6 key, the same bytes as before IPv6 existed.
        out.clear();
        announce(
            &mut out,
            &done(),
            &peers[..1]
                .iter()
                .map(|p| SelectedPeer { v6: None, ..*p })
                .collect::<Vec<_>>(),
            PeerFormat::Compact,
        );
        assert_eq!(
            out,
            b"d8:completei3e10:downloadedi2e10:incompletei1e8:intervali1811e12:min intervali900e5:peers6:\x01\x02\x03\x04\x1a\xe1e"
        );
    }
}

#[cfg(test)]
mod well_formed {
    use super::*;
    use crate::bencode::{decode, encode, Value};
    use crate::tracker::{
        AnnounceDeltas, ClientId, HistoryDelta, PeerId, TorrentDelta, TorrentId, TransferIp,
        TransferIpDelta, UserId,
    };

    pub(super) fn announced(include_peers: bool) -> Announced {
        let history = HistoryDelta {
            user: UserId(1),
            torrent: TorrentId(1),
            uploaded: 0,
            downloaded: 0,
            seeding: true,
            start_time: 0,
            last_announce: 0,
            active_time: 0,
            seed_time: 0,
            active: true,
            snatched: 0,
            remaining: 0,
        };
        Announced {
            complete: 3,
            downloaded: 2,
            incomplete: 1,
            interval: 1811,
            min_interval: 900,
            include_peers,
            seeding: true,
            reported_up: 0,
            reported_down: 0,
            implausible: Default::default(),
            evicted: 0,
            deltas: AnnounceDeltas {
                torrent: TorrentDelta {
                    id: TorrentId(1),
                    snatched: 0,
                    seeders: 3,
                    leechers: 1,
                    last_action: 0,
                },
                history,
                user: None,
                transfer_ip: TransferIp::V4(TransferIpDelta {
                    user: UserId(1),
                    torrent: TorrentId(1),
                    client: ClientId(1),
                    ip: 0,
                    port: 0,
                    uploaded: 0,
                    downloaded: 0,
                    start_time: 0,
                    last_announce: 0,
                }),
                snatch: None,
                unprune: None,
            },
        }
    }

    /// Every body the server writes is one canonical bencode value: the strict decoder
    /// accepts it and re-encoding (keys sorted) gives the same bytes.
    #[test]
    fn bodies_are_canonical_bencode() {
        let peers = [
            SelectedPeer {
                peer_id: PeerId(*b"-TR2940-\x00\xff3456789012"),
                v4: Some(("1.2.3.4".parse().unwrap(), 6881)),
                v6: Some(("2a00::1".parse().unwrap(), 6881)),
            },
            SelectedPeer {
                peer_id: PeerId(*b"-DE13F0-abcdefghijkl"),
                v4: Some(("255.0.0.1".parse().unwrap(), 65535)),
                v6: None,
            },
        ];
        let mut bodies = Vec::new();
        for format in [
            PeerFormat::Compact,
            PeerFormat::Dicts { with_peer_id: true },
            PeerFormat::Dicts {
                with_peer_id: false,
            },
        ] {
            for include in [true, false] {
                let mut out = Vec::new();
                announce(&mut out, &announced(include), &peers, format);
                bodies.push(out);
            }
        }
        let mut out = Vec::new();
        failure(&mut out, &Failure::ClientNotApproved(peers[0].peer_id));
        bodies.push(out);
        let mut out = Vec::new();
        let files = [ScrapeFile {
            info_hash: crate::tracker::InfoHash([0xff; 20]),
            complete: 1,
            downloaded: 0,
            incomplete: 2,
        }];
        scrape(&mut out, &files, false, 900);
        bodies.push(out);
        for body in bodies {
            let value = decode(&body)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&body)));
            assert!(matches!(value, Value::Dict(_)));
            let mut again = Vec::new();
            encode(&value, &mut again);
            assert_eq!(again, body);
        }
    }
}
