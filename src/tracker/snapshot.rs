//! The read-mostly state loaded from MariaDB: users, hit-and-runs, clients, freeleech
//! and the torrent table. Each is built whole by the reloader and swapped in
//! ([`Snapshots`]); a request keeps the snapshot it started with.
//!
//! Torrents are the exception to "immutable": each [`Torrent`] carries its own small
//! lock around the swarm and the few fields announces change (status on unprune,
//! snatched, last action). A reload reuses the `Arc<Torrent>` of every hash that is
//! still there, so swarms survive reloads without being copied.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use super::hash::{HashMap, HashSet};
use super::swarm::{Swarm, Tally};
use super::types::{ClientId, GroupId, InfoHash, Passkey, PeerId, TorrentId, TorrentType, UserId};

/// An enabled user (`users_main` with `Enabled = '1'`).
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub up_multiplier: f64,
    pub down_multiplier: f64,
    pub disable_download: bool,
    pub tracker_hide: bool,
}

/// Enabled users by passkey.
#[derive(Default, Debug)]
pub struct Users {
    by_passkey: HashMap<Passkey, User>,
}

impl Users {
    /// Adds a user unless the passkey is taken; the caller feeds rows by ascending ID so
    /// the lowest ID wins. Returns false for a duplicate.
    pub fn insert(&mut self, passkey: Passkey, user: User) -> bool {
        match self.by_passkey.entry(passkey) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(user);
                true
            }
        }
    }

    pub fn get(&self, passkey: &[u8]) -> Option<&User> {
        self.by_passkey.get(passkey)
    }

    pub fn len(&self) -> usize {
        self.by_passkey.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_passkey.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Passkey, &User)> {
        self.by_passkey.iter()
    }
}

/// (user, torrent) pairs with an open hit-and-run: a download-disabled user may still
/// leech these, to repair them.
#[derive(Default, Debug)]
pub struct HitAndRuns {
    pairs: HashSet<(UserId, TorrentId)>,
}

impl HitAndRuns {
    pub fn insert(&mut self, user: UserId, torrent: TorrentId) {
        self.pairs.insert((user, torrent));
    }

    pub fn contains(&self, user: UserId, torrent: TorrentId) -> bool {
        self.pairs.contains(&(user, torrent))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Approved client peer_id prefixes.
#[derive(Default, Debug)]
pub struct Clients {
    /// Longest prefix first, then lowest id: the first match is the answer.
    by_precedence: Vec<(Box<[u8]>, ClientId)>,
}

impl Clients {
    /// Builds the list; empty prefixes are the caller's to refuse (they would approve
    /// every client).
    pub fn new(mut entries: Vec<(Box<[u8]>, ClientId)>) -> Clients {
        entries.sort_by(|(pa, ia), (pb, ib)| pb.len().cmp(&pa.len()).then(ia.cmp(ib)));
        Clients {
            by_precedence: entries,
        }
    }

    /// The approved client whose prefix is the longest byte-prefix of `peer_id`.
    pub fn matching(&self, peer_id: &PeerId) -> Option<ClientId> {
        self.by_precedence
            .iter()
            .find(|(prefix, _)| peer_id.0.starts_with(prefix))
            .map(|&(_, id)| id)
    }

    pub fn len(&self) -> usize {
        self.by_precedence.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_precedence.is_empty()
    }
}

/// Download and upload multipliers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Multipliers {
    pub down: f64,
    pub up: f64,
}

impl Multipliers {
    pub const NEUTRAL: Multipliers = Multipliers { down: 1.0, up: 1.0 };
}

/// Per (group, type) freeleech multipliers.
#[derive(Default, Debug)]
pub struct GroupFreeleech {
    by_group: HashMap<(GroupId, TorrentType), Multipliers>,
}

impl GroupFreeleech {
    pub fn insert(&mut self, group: GroupId, kind: TorrentType, multipliers: Multipliers) {
        self.by_group.insert((group, kind), multipliers);
    }

    /// The group's multipliers, or 1 and 1 when the group has no row.
    pub fn get(&self, group: GroupId, kind: TorrentType) -> Multipliers {
        self.by_group
            .get(&(group, kind))
            .copied()
            .unwrap_or(Multipliers::NEUTRAL)
    }

    pub fn len(&self) -> usize {
        self.by_group.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_group.is_empty()
    }
}

/// What the database says about a torrent, apart from its id and hash.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentMeta {
    pub group_id: GroupId,
    pub torrent_type: TorrentType,
    pub up_multiplier: f64,
    pub down_multiplier: f64,
}

/// One validated `torrents` row.
#[derive(Clone, Debug, PartialEq)]
pub struct TorrentRow {
    pub id: TorrentId,
    pub info_hash: InfoHash,
    pub meta: TorrentMeta,
    pub snatched: u32,
    pub status: i32,
}

/// The mutable part of a torrent, behind its own lock.
#[derive(Debug)]
pub struct TorrentState {
    pub meta: TorrentMeta,
    /// 0 is active; 1 is pruned (a seeder revives it).
    pub status: i32,
    /// Completed downloads: the database value, plus completions seen since the last reload.
    pub snatched: u32,
    /// When a seeder last announced; never loaded from the database.
    pub last_action: i64,
    /// Set when an announce unpruned the torrent and the database may still say 1.
    pub unprune_pending: bool,
    /// Set when a reload dropped the torrent from the catalogue: its peers left the
    /// gauges, and an announce still holding the old snapshot must not add new ones.
    pub retired: bool,
    pub swarm: Swarm,
}

#[derive(Debug)]
pub struct Torrent {
    pub id: TorrentId,
    state: Mutex<TorrentState>,
}

// A site holds up to millions: with its Arc header, 88 bytes is one 112-byte malloc
// chunk; 8 more would cost 16 bytes a torrent.
const _: () = assert!(std::mem::size_of::<Torrent>() <= 88);

impl Torrent {
    pub fn new(row: &TorrentRow) -> Torrent {
        Torrent::with_state(
            row.id,
            TorrentState {
                meta: row.meta.clone(),
                status: row.status,
                snatched: row.snatched,
                last_action: 0,
                unprune_pending: false,
                retired: false,
                swarm: Swarm::default(),
            },
        )
    }

    pub fn with_state(id: TorrentId, state: TorrentState) -> Torrent {
        Torrent {
            id,
            state: Mutex::new(state),
        }
    }

    /// Locks the torrent. A panic elsewhere while holding the lock leaves the state
    /// consistent enough to keep serving (each field is written whole), so poisoning is
    /// ignored rather than spreading the panic to every later announce.
    pub fn lock(&self) -> MutexGuard<'_, TorrentState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the torrent out of service once a reload dropped it: its swarm goes, and
    /// what the swarm held is returned for the gauges. Later announces on it (from a
    /// request still holding the previous snapshot) are refused as unknown.
    pub fn retire(&self) -> Tally {
        let mut state = self.lock();
        state.retired = true;
        let gone = state.swarm.tally();
        state.swarm = Swarm::default();
        gone
    }

    /// Takes the database's view of the torrent, keeping swarm and last action. Status
    /// stays 0 while an unprune of ours has not reached the database yet.
    fn refresh(&self, row: &TorrentRow) {
        let mut state = self.lock();
        state.meta = row.meta.clone();
        state.snatched = row.snatched;
        if state.unprune_pending && row.status == 1 {
            state.status = 0;
        } else {
            state.unprune_pending = false;
            state.status = row.status;
        }
    }
}

/// All tracked torrents by info_hash.
#[derive(Default, Debug)]
pub struct Torrents {
    by_hash: HashMap<InfoHash, Arc<Torrent>>,
}

impl Torrents {
    /// Builds the next snapshot from validated rows (see [`TorrentsBuilder`]).
    pub fn rebuild(previous: &Torrents, rows: Vec<TorrentRow>) -> (Torrents, Vec<TorrentId>) {
        let mut builder = TorrentsBuilder::new(previous);
        for row in rows {
            builder.add(row);
        }
        builder.finish()
    }

    pub fn insert(&mut self, info_hash: InfoHash, torrent: Arc<Torrent>) {
        self.by_hash.insert(info_hash, torrent);
    }

    pub fn get(&self, info_hash: &InfoHash) -> Option<&Arc<Torrent>> {
        self.by_hash.get(info_hash)
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&InfoHash, &Arc<Torrent>)> {
        self.by_hash.iter()
    }

    /// The torrents of `self` that `next` no longer has (same hash, same `Torrent`):
    /// what a reload that replaced `self` with `next` dropped.
    pub fn dropped_in<'a>(&'a self, next: &'a Torrents) -> impl Iterator<Item = &'a Arc<Torrent>> {
        self.by_hash
            .iter()
            .filter_map(move |(hash, torrent)| match next.by_hash.get(hash) {
                Some(kept) if Arc::ptr_eq(kept, torrent) => None,
                _ => Some(torrent),
            })
    }
}

/// Builds the next torrents snapshot row by row, as the database sends them: a hash
/// that keeps its id keeps its `Torrent` (swarm, last action) and takes the new
/// metadata at once; others start empty; hashes that never come are dropped with the
/// old snapshot. Of two rows with one hash the lowest id wins, in whatever order they
/// come; the ids of the others are kept aside as duplicates.
/// The previous snapshot's torrent for `row` (same hash and id) with the row's metadata,
/// or a new one.
fn carried_over(previous: &Torrents, row: &TorrentRow) -> Arc<Torrent> {
    match previous.by_hash.get(&row.info_hash) {
        Some(old) if old.id == row.id => {
            old.refresh(row);
            Arc::clone(old)
        }
        _ => Arc::new(Torrent::new(row)),
    }
}

pub struct TorrentsBuilder<'a> {
    previous: &'a Torrents,
    by_hash: HashMap<InfoHash, Arc<Torrent>>,
    duplicates: Vec<TorrentId>,
}

impl<'a> TorrentsBuilder<'a> {
    pub fn new(previous: &'a Torrents) -> TorrentsBuilder<'a> {
        TorrentsBuilder {
            previous,
            by_hash: HashMap::with_capacity_and_hasher(previous.len(), Default::default()),
            duplicates: Vec::new(),
        }
    }

    pub fn add(&mut self, row: TorrentRow) {
        match self.by_hash.entry(row.info_hash) {
            Entry::Vacant(slot) => {
                slot.insert(carried_over(self.previous, &row));
            }
            Entry::Occupied(mut slot) if row.id < slot.get().id => {
                let loser = slot.get().id;
                slot.insert(carried_over(self.previous, &row));
                self.duplicates.push(loser);
            }
            Entry::Occupied(_) => self.duplicates.push(row.id),
        }
    }

    pub fn finish(self) -> (Torrents, Vec<TorrentId>) {
        (
            Torrents {
                by_hash: self.by_hash,
            },
            self.duplicates,
        )
    }
}

/// The current snapshots. Readers `load()` what they need; the reloader `store()`s
/// whole new values.
#[derive(Default)]
pub struct Snapshots {
    pub users: ArcSwap<Users>,
    pub hit_and_runs: ArcSwap<HitAndRuns>,
    pub torrents: ArcSwap<Torrents>,
    pub group_freeleech: ArcSwap<GroupFreeleech>,
    pub clients: ArcSwap<Clients>,
    global_freeleech: AtomicBool,
    /// Peers and endpoints in every swarm, kept where they change.
    pub peers: PeerGauges,
}

/// The peer and endpoint counts of all swarms, moved by every change to a swarm
/// (announce, eviction, purge, a torrent leaving the catalogue, the cache adopted at
/// start), so that reading them costs O(1) whatever the catalogue's size.
#[derive(Default, Debug)]
pub struct PeerGauges {
    peers: AtomicI64,
    v4: AtomicI64,
    v6: AtomicI64,
}

impl PeerGauges {
    /// Adds a change (negative parts remove).
    pub fn apply(&self, change: Tally) {
        for (gauge, n) in [
            (&self.peers, change.peers),
            (&self.v4, change.v4),
            (&self.v6, change.v6),
        ] {
            if n != 0 {
                gauge.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Removes what `gone` counts.
    pub fn remove(&self, gone: Tally) {
        self.apply(Tally::default() - gone);
    }

    pub fn counts(&self) -> PeerCounts {
        let get = |gauge: &AtomicI64| usize::try_from(gauge.load(Ordering::Relaxed)).unwrap_or(0);
        PeerCounts {
            peers: get(&self.peers),
            ipv4: get(&self.v4),
            ipv6: get(&self.v6),
        }
    }
}

impl Snapshots {
    pub fn global_freeleech(&self) -> bool {
        self.global_freeleech.load(Ordering::Relaxed)
    }

    pub fn set_global_freeleech(&self, on: bool) {
        self.global_freeleech.store(on, Ordering::Relaxed);
    }

    /// Peers over all torrents, and their IPv4 and IPv6 endpoints, counted by walking
    /// every swarm (each torrent locked in turn): what [`PeerGauges`] must always
    /// equal. O(catalogue): for tests and checks, never for a request.
    pub fn recount_peers(&self) -> PeerCounts {
        let torrents = self.torrents.load();
        let mut counts = PeerCounts::default();
        for (_, torrent) in torrents.iter() {
            let state = torrent.lock();
            for (_, peer, _) in state.swarm.iter() {
                counts.peers += 1;
                counts.ipv4 += usize::from(peer.v4.is_some());
                counts.ipv6 += usize::from(peer.v6.is_some());
            }
        }
        counts
    }
}

/// What the peer gauges show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Seeders and leechers.
    pub peers: usize,
    /// Endpoints by family; a dual-stack peer counts in both.
    pub ipv4: usize,
    pub ipv6: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u32, hash: u8, status: i32, snatched: u32) -> TorrentRow {
        TorrentRow {
            id: TorrentId(id),
            info_hash: InfoHash([hash; 20]),
            meta: TorrentMeta {
                group_id: GroupId(1),
                torrent_type: TorrentType::Anime,
                up_multiplier: 1.0,
                down_multiplier: 1.0,
            },
            snatched,
            status,
        }
    }

    #[test]
    fn client_precedence_is_longest_then_lowest_id() {
        let clients = Clients::new(vec![
            (b"-TR".to_vec().into(), ClientId(5)),
            (b"-TR29".to_vec().into(), ClientId(9)),
            (b"-TR29".to_vec().into(), ClientId(7)),
            (b"-DE".to_vec().into(), ClientId(0)),
        ]);
        let id = |s: &[u8; 20]| clients.matching(&PeerId(*s));
        assert_eq!(id(b"-TR2940-abcdefghijkl"), Some(ClientId(7)));
        assert_eq!(id(b"-TR3000-abcdefghijkl"), Some(ClientId(5)));
        assert_eq!(id(b"-DE13F0-abcdefghijkl"), Some(ClientId(0)));
        assert_eq!(id(b"-qB4250-abcdefghijkl"), None);
    }

    #[test]
    fn users_first_passkey_wins() {
        let mut users = Users::default();
        let user = |id| User {
            id: UserId(id),
            up_multiplier: 1.0,
            down_multiplier: 1.0,
            disable_download: false,
            tracker_hide: false,
        };
        assert!(users.insert(Passkey::new(b"abc"), user(1)));
        assert!(!users.insert(Passkey::new(b"abc"), user(2)));
        assert_eq!(users.get(b"abc").map(|u| u.id), Some(UserId(1)));
        assert_eq!(users.get(b"ABC"), None);
    }

    #[test]
    fn rebuild_keeps_swarms_and_honours_pending_unprune() {
        let (first, _) =
            Torrents::rebuild(&Torrents::default(), vec![row(1, 1, 1, 2), row(2, 2, 0, 0)]);
        let kept = Arc::clone(first.get(&InfoHash([1; 20])).unwrap());
        {
            let mut state = kept.lock();
            state.last_action = 77;
            state.status = 0;
            state.unprune_pending = true;
        }
        // Database still says pruned: our pending unprune wins; snatched comes from the row.
        // The lowest id of a hash wins, whichever comes first.
        let (second, dups) = Torrents::rebuild(&first, vec![row(3, 1, 0, 0), row(1, 1, 1, 5)]);
        assert_eq!(dups, [TorrentId(3)]);
        assert_eq!(second.len(), 1);
        let again = second.get(&InfoHash([1; 20])).unwrap();
        assert!(Arc::ptr_eq(&kept, again));
        {
            let state = again.lock();
            assert_eq!(
                (state.status, state.snatched, state.last_action),
                (0, 5, 77)
            );
        }
        // Once the database shows the write, the flag clears and later prunes apply.
        let (third, _) = Torrents::rebuild(&second, vec![row(1, 1, 0, 5)]);
        let (fourth, _) = Torrents::rebuild(&third, vec![row(1, 1, 1, 5)]);
        assert_eq!(fourth.get(&InfoHash([1; 20])).unwrap().lock().status, 1);
        // A hash that comes back under another id is a new torrent.
        let (fifth, _) = Torrents::rebuild(&fourth, vec![row(9, 1, 0, 0)]);
        let fresh = fifth.get(&InfoHash([1; 20])).unwrap();
        assert!(!Arc::ptr_eq(&kept, fresh));
        assert_eq!(fresh.lock().last_action, 0);
    }
}
