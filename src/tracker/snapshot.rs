//! The read-mostly state loaded from MariaDB: users, hit-and-runs, clients, freeleech
//! and the torrent catalogue. Each is built whole by the reloader and swapped in
//! ([`Snapshots`]); a request keeps the snapshot it started with. What clients change
//! lives beside them, in the swarms ([`super::swarms`]), which no reload rebuilds.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::catalogue::{Catalogue, TorrentPushes};
use super::hash::{HashMap, HashSet};
use super::pushed::{self, Overlay, PushClock, Pushed};
use super::swarm::Tally;
use super::swarms::Swarms;
use super::types::{ClientId, GroupId, Passkey, PeerId, TorrentId, TorrentType, UserId};

/// An enabled user (`users_main` with `Enabled = '1'`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct User {
    pub id: UserId,
    pub up_multiplier: f64,
    pub down_multiplier: f64,
    pub disable_download: bool,
    pub tracker_hide: bool,
}

/// Pushed users by passkey (removed: disabled, or the passkey changed).
pub type UserPushes = Overlay<Passkey, User>;

/// Enabled users by passkey: the rows of a load, with what was pushed since laid over
/// them.
#[derive(Default, Debug)]
pub struct Users {
    by_passkey: HashMap<Passkey, User>,
    pushed: Arc<UserPushes>,
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

    pub fn get(&self, passkey: &[u8]) -> Option<User> {
        match self.pushed.get(passkey) {
            Pushed::Unchanged => self.by_passkey.get(passkey).copied(),
            Pushed::Set(user) => Some(user),
            Pushed::Removed => None,
        }
    }

    /// The users with `pushed` laid over them (the overlay every snapshot in service
    /// shares).
    pub fn with_pushes(mut self, pushed: Arc<UserPushes>) -> Users {
        self.pushed = pushed;
        self
    }

    /// The users as loaded, counting in those pushed since.
    pub fn len(&self) -> usize {
        let by_passkey = &self.by_passkey;
        self.pushed
            .count_over(by_passkey.len(), |passkey| by_passkey.contains_key(passkey))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The users as loaded (pushes left out).
    pub fn iter(&self) -> impl Iterator<Item = (&Passkey, &User)> {
        self.by_passkey.iter()
    }

    /// How many users the load read.
    pub fn loaded(&self) -> usize {
        self.by_passkey.len()
    }

    /// The users whose downloads are disabled, pushes counted in (walks every user:
    /// for reloads).
    pub fn download_disabled(&self) -> HashSet<UserId> {
        let mut ids: HashSet<UserId> = self
            .by_passkey
            .iter()
            .filter(|(passkey, user)| {
                user.disable_download && self.pushed.get(passkey.as_bytes()) == Pushed::Unchanged
            })
            .map(|(_, user)| user.id)
            .collect();
        let pushed = self
            .pushed
            .entries()
            .into_iter()
            .filter_map(|(_, user)| user);
        ids.extend(
            pushed
                .filter(|user| user.disable_download)
                .map(|user| user.id),
        );
        ids
    }

    /// How many users the reload that built `self` found changed from what `old`
    /// showed, loaded or pushed, leaving out passkeys pushed after push number
    /// `shown`: the changes a push should have brought and did not.
    pub fn drift(&self, old: &Users, shown: u64) -> u64 {
        let pushed_only = old.pushed.added(|k| old.by_passkey.contains_key(k));
        pushed::drift(
            self.by_passkey.iter().map(|(k, user)| (k, *user)),
            old.by_passkey.keys().chain(&pushed_only),
            |k| old.get(k.as_bytes()),
            PartialEq::eq,
            |k| self.by_passkey.contains_key(k),
            |k| self.pushed.pushed_after(k, shown),
        )
    }
}

/// Pushed hit-and-runs: set is marked, removed is cleared.
pub type HitAndRunPushes = Overlay<(UserId, TorrentId), ()>;

/// (user, torrent) pairs with an open hit-and-run: a download-disabled user may still
/// leech these, to repair them.
#[derive(Default, Debug)]
pub struct HitAndRuns {
    pairs: HashSet<(UserId, TorrentId)>,
    pushed: Arc<HitAndRunPushes>,
}

impl HitAndRuns {
    pub fn insert(&mut self, user: UserId, torrent: TorrentId) {
        self.pairs.insert((user, torrent));
    }

    pub fn contains(&self, user: UserId, torrent: TorrentId) -> bool {
        match self.pushed.get(&(user, torrent)) {
            Pushed::Unchanged => self.pairs.contains(&(user, torrent)),
            Pushed::Set(()) => true,
            Pushed::Removed => false,
        }
    }

    /// The pairs with `pushed` laid over them.
    pub fn with_pushes(mut self, pushed: Arc<HitAndRunPushes>) -> HitAndRuns {
        self.pushed = pushed;
        self
    }

    /// The pairs as loaded, counting in those pushed since.
    pub fn len(&self) -> usize {
        let pairs = &self.pairs;
        self.pushed
            .count_over(pairs.len(), |pair| pairs.contains(pair))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// As [`Users::drift`], for hit-and-runs, counting only those of users whose
    /// downloads are disabled now (`disabled`): a load reads no others, and for no
    /// others do they matter.
    pub fn drift(&self, old: &HitAndRuns, shown: u64, disabled: &HashSet<UserId>) -> u64 {
        let counted = |pair: &&(UserId, TorrentId)| disabled.contains(&pair.0);
        let pushed_only = old.pushed.added(|pair| old.pairs.contains(pair));
        pushed::drift(
            self.pairs.iter().filter(counted).map(|pair| (pair, ())),
            old.pairs.iter().chain(&pushed_only).filter(counted),
            |&(user, torrent)| old.contains(user, torrent).then_some(()),
            PartialEq::eq,
            |pair| self.pairs.contains(pair),
            |pair| self.pushed.pushed_after(pair, shown),
        )
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

    /// The list with `change` made (a few dozen entries: copied whole).
    pub fn changed(&self, change: &ClientChange) -> Clients {
        let mut entries: Vec<_> = self
            .by_precedence
            .iter()
            .filter(|(_, id)| *id != change.id())
            .cloned()
            .collect();
        if let ClientChange::Approve { id, prefix } = change {
            entries.push((prefix.clone(), *id));
        }
        Clients::new(entries)
    }

    /// How many entries differ between `self` and `old` (in either).
    pub fn drift(&self, old: &Clients) -> u64 {
        let missing_from = |a: &Clients, b: &Clients| {
            a.by_precedence
                .iter()
                .filter(|entry| !b.by_precedence.contains(entry))
                .count() as u64
        };
        missing_from(self, old) + missing_from(old, self)
    }
}

/// A pushed change to the approved clients.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientChange {
    /// Approves `prefix` as client `id` (replacing what `id` was).
    Approve { id: ClientId, prefix: Box<[u8]> },
    /// Client `id` is no longer approved.
    Remove { id: ClientId },
}

impl ClientChange {
    pub fn id(&self) -> ClientId {
        match self {
            ClientChange::Approve { id, .. } | ClientChange::Remove { id } => *id,
        }
    }
}

/// What the site pushed ([`crate::push`]) and the clock numbering it. The large
/// snapshots get an overlay each, which every snapshot in service shares; the small
/// ones are copied whole at each push, and keep here the changes a load in flight may
/// not show, to make them again on what it loads.
#[derive(Default, Debug)]
pub struct Pushes {
    pub clock: PushClock,
    pub torrents: Arc<TorrentPushes>,
    pub users: Arc<UserPushes>,
    pub hit_and_runs: Arc<HitAndRunPushes>,
    pub small: Mutex<SmallPushes>,
}

impl Pushes {
    /// The small snapshots' pushes, locked while one is changed or swapped in (never
    /// across an await).
    pub fn lock_small(&self) -> std::sync::MutexGuard<'_, SmallPushes> {
        // Every change under the lock is one push or one retain: a panic leaves it whole.
        self.small
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Pushed changes to the approved clients and global freeleech, by push number.
#[derive(Default, Debug)]
pub struct SmallPushes {
    pub clients: Vec<(u64, ClientChange)>,
    /// The number of the last push that set global freeleech.
    pub global_freeleech: u64,
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

/// The current snapshots. Readers `load()` what they need; the reloader `store()`s
/// whole new values.
#[derive(Default)]
pub struct Snapshots {
    pub users: ArcSwap<Users>,
    pub hit_and_runs: ArcSwap<HitAndRuns>,
    /// The site's torrents.
    pub catalogue: ArcSwap<Catalogue>,
    /// The live torrents: peers and what the catalogue does not show yet.
    pub swarms: Arc<Swarms>,
    pub group_freeleech: ArcSwap<GroupFreeleech>,
    pub clients: ArcSwap<Clients>,
    global_freeleech: AtomicBool,
    /// Peers and endpoints in every swarm, kept where they change.
    pub peers: PeerGauges,
    /// What the site pushed since the loads.
    pub pushes: Pushes,
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

    /// Peers over all swarms, and their IPv4 and IPv6 endpoints, counted by walking
    /// them: what [`PeerGauges`] must always equal. For tests and checks, never for a
    /// request.
    pub fn recount_peers(&self) -> PeerCounts {
        let tally = self.swarms.recount();
        let get = |n: i64| usize::try_from(n).unwrap_or(0);
        PeerCounts {
            peers: get(tally.peers),
            ipv4: get(tally.v4),
            ipv6: get(tally.v6),
        }
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
    fn a_reload_counts_as_drift_only_what_no_push_brought() {
        let user = |id, disable_download| User {
            id: UserId(id),
            up_multiplier: 1.0,
            down_multiplier: 1.0,
            disable_download,
            tracker_hide: false,
        };
        let key = |k: &[u8]| Passkey::new(k);
        let pushes = Arc::new(UserPushes::default());
        let mut old = Users::default();
        old.insert(key(b"a"), user(1, false));
        old.insert(key(b"b"), user(2, false));
        let old = old.with_pushes(Arc::clone(&pushes));
        // Pushed before the load began: c added, b disabled; d while it ran.
        pushes.set(key(b"c"), 1, Some(user(3, false)));
        pushes.set(key(b"b"), 1, None);
        pushes.set(key(b"d"), 2, Some(user(4, false)));
        assert_eq!(old.len(), 3);
        // The load read a with downloads disabled (nobody pushed that), and c.
        let mut new = Users::default();
        new.insert(key(b"a"), user(1, true));
        new.insert(key(b"c"), user(3, false));
        let new = new.with_pushes(Arc::clone(&pushes));
        assert_eq!(new.drift(&old, 1), 1);
        pushes.settle(1);
        assert_eq!(new.get(b"d"), Some(user(4, false)));
        assert_eq!(new.get(b"b"), None);
        assert_eq!(new.download_disabled(), HashSet::from_iter([UserId(1)]));

        // A load that finds nobody: a (loaded, and pushed since: one row, not two), c
        // (loaded) and d (pushed only).
        pushes.set(key(b"a"), 3, Some(user(1, false)));
        let gone = Users::default().with_pushes(Arc::clone(&pushes));
        assert_eq!(gone.drift(&new, 3), 3);

        // Hit-and-runs count only for users whose downloads are disabled: user 2's
        // leave the load because user 2 may download again, not because of a miss.
        let mut before = HitAndRuns::default();
        before.insert(UserId(1), TorrentId(5));
        before.insert(UserId(2), TorrentId(6));
        let mut after = HitAndRuns::default();
        after.insert(UserId(1), TorrentId(5));
        after.insert(UserId(1), TorrentId(7));
        let disabled = HashSet::from_iter([UserId(1)]);
        assert_eq!(after.drift(&before, 0, &disabled), 1);
    }
}
