//! The peer and its parts: its key, its endpoints by address family, the tally of
//! peers and endpoints the gauges count, and a peer as handed out in a response.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use super::super::types::{ClientId, PeerId, UserId};
use super::Entry;

/// A peer is a (user, peer_id) pair: two users may run clients with the same peer_id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerKey {
    pub user: UserId,
    pub peer_id: PeerId,
}

/// Where a peer can be reached over one address family, and when it last announced
/// over it. A dual-stack client announces over both (BEP 7): one peer, two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<A> {
    pub ip: A,
    pub port: u16,
    /// Unix seconds ([`peer_time`]); never 0, so an absent endpoint costs no tag.
    pub seen: NonZeroU32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub v4: Option<Endpoint<Ipv4Addr>>,
    pub v6: Option<Endpoint<Ipv6Addr>>,
    /// The counters of the last announce, over either family: the baseline for the
    /// next deltas.
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// Unix seconds, see [`peer_time`].
    pub start_time: u32,
    pub client_id: ClientId,
    /// The family of the announce whose `completed` was counted. A dual-stack client
    /// sends `completed` over both families; the second one is the same completion.
    pub completed_over: Option<Family>,
}

/// An address family: which endpoint an announce came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family `ip` counts as (an IPv4-mapped IPv6 address is IPv4).
    pub fn of(ip: IpAddr) -> Family {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Peers and their endpoints by family: what the peer gauges count. A change to a
/// swarm is described by the tally of what it added or removed, so the gauges are kept
/// where peers come and go and are never counted by walking the swarms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub peers: i64,
    /// Endpoints by family; a dual-stack peer counts in both.
    pub v4: i64,
    pub v6: i64,
}

impl Tally {
    /// One peer with its endpoints.
    pub fn of(peer: &Peer) -> Tally {
        Tally {
            peers: 1,
            v4: i64::from(peer.v4.is_some()),
            v6: i64::from(peer.v6.is_some()),
        }
    }
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, other: Tally) -> Tally {
        Tally {
            peers: self.peers + other.peers,
            v4: self.v4 + other.v4,
            v6: self.v6 + other.v6,
        }
    }
}

impl std::ops::Sub for Tally {
    type Output = Tally;
    fn sub(self, other: Tally) -> Tally {
        Tally {
            peers: self.peers - other.peers,
            v4: self.v4 - other.v4,
            v6: self.v6 - other.v6,
        }
    }
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        *self = *self + other;
    }
}

impl Peer {
    /// A peer whose only endpoint is `ip:port`, seen at `now`.
    pub fn at(ip: IpAddr, port: u16, now: i64) -> Peer {
        let mut peer = Peer {
            v4: None,
            v6: None,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            start_time: peer_time(now),
            client_id: ClientId(0),
            completed_over: None,
        };
        peer.set_endpoint(ip, port, now);
        peer
    }

    /// Sets the endpoint of `ip`'s family (an IPv4-mapped IPv6 address is IPv4).
    pub fn set_endpoint(&mut self, ip: IpAddr, port: u16, now: i64) {
        let seen = seen_time(now);
        match ip.to_canonical() {
            IpAddr::V4(ip) => self.v4 = Some(Endpoint { ip, port, seen }),
            IpAddr::V6(ip) => self.v6 = Some(Endpoint { ip, port, seen }),
        }
    }

    /// The last announce over either family (0 with no endpoint).
    pub fn last_announce(&self) -> u32 {
        let v4 = self.v4.map_or(0, |e| e.seen.get());
        let v6 = self.v6.map_or(0, |e| e.seen.get());
        v4.max(v6)
    }

    /// Drops the endpoints last seen before `cutoff`; true when none is left.
    pub fn expire(&mut self, cutoff: i64) -> bool {
        let stale = |seen: NonZeroU32| i64::from(seen.get()) < cutoff;
        if self.v4.is_some_and(|e| stale(e.seen)) {
            self.v4 = None;
        }
        if self.v6.is_some_and(|e| stale(e.seen)) {
            self.v6 = None;
        }
        self.v4.is_none() && self.v6.is_none()
    }
}

/// Expires the stale endpoints of the peer in `entry`, adding what went to `gone`;
/// true when the peer has no endpoint left (and goes too: `left` is told its user).
pub(super) fn expire_counting(
    entry: &mut Entry,
    cutoff: i64,
    gone: &mut Tally,
    left: &mut impl FnMut(UserId),
) -> bool {
    let before = Tally::of(&entry.peer);
    let empty = entry.peer.expire(cutoff);
    *gone += if empty {
        left(entry.key.user);
        before
    } else {
        before - Tally::of(&entry.peer)
    };
    empty
}

fn seen_time(now: i64) -> NonZeroU32 {
    NonZeroU32::new(peer_time(now)).unwrap_or(NonZeroU32::MIN)
}

/// A Unix time as a peer stores it: 32 bits (enough until 2106) keep a peer, of which
/// a tracker holds hundreds of thousands, 8 bytes smaller. Out-of-range times clamp.
pub fn peer_time(unix: i64) -> u32 {
    unix.clamp(0, i64::from(u32::MAX)) as u32
}

/// A peer handed out in an announce response: its usable endpoints (at least one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectedPeer {
    pub peer_id: PeerId,
    pub v4: Option<(Ipv4Addr, u16)>,
    pub v6: Option<(Ipv6Addr, u16)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_address_is_the_ipv4_endpoint() {
        let p = Peer::at("::ffff:1.2.3.4".parse().unwrap(), 6881, 5);
        assert_eq!(p.v4.map(|e| e.ip), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(p.v6, None);
    }
}
