//! The swarms: what clients say, apart from what the site says ([`super::catalogue`]).
//! Only torrents with something live have an entry ([`Live`]): peers, a last action,
//! an unprune or completions of ours that the catalogue does not show yet. An entry is
//! made with the first peer and dropped once nothing is left in it, so purges, peer
//! cache writes and reloads walk the live torrents, not the catalogue.
//!
//! Entries sit in shards by torrent id, each behind its own lock; an announce holds
//! one shard's lock for the few microseconds it works on its swarm.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::catalogue::{Catalogue, Listing, Tag, Written};
use super::hash::HashMap;
use super::snapshot::PeerGauges;
use super::swarm::{Swarm, Tally};
use super::types::{InfoHash, TorrentId};

/// Shards of the live torrents: enough that two announces rarely wait for each other.
pub const SHARDS: usize = 1024;

/// An unprune of ours that the catalogue may not show yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unprune {
    /// Queued, not yet in a flush.
    Queued,
    /// In the flush with this tag.
    Flushed(Tag),
}

/// Completions counted here that the catalogue's `Snatched` may not include yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Completions {
    /// Queued, not yet in a flush.
    queued: u32,
    /// In flushes, by tag (oldest first).
    flushed: Vec<(Tag, u32)>,
}

impl Completions {
    fn is_empty(&self) -> bool {
        self.queued == 0 && self.flushed.is_empty()
    }
}

/// What clients made of one torrent.
#[derive(Debug)]
pub struct Live {
    /// The torrent's hash (swarms are keyed by id; the catalogue by hash).
    pub info_hash: InfoHash,
    pub swarm: Swarm,
    /// When a seeder last announced; never read from the database (which keeps the
    /// latest it was sent).
    pub last_action: i64,
    unprune: Option<Unprune>,
    completions: Completions,
}

impl Live {
    pub fn new(info_hash: InfoHash) -> Live {
        Live {
            info_hash,
            swarm: Swarm::default(),
            last_action: 0,
            unprune: None,
            completions: Completions::default(),
        }
    }

    /// The status announces go by: the catalogue's, but 0 for a pruned torrent a seeder
    /// revived here until the catalogue shows the write.
    pub fn status(&self, catalogue: &Catalogue, listing: &Listing) -> i32 {
        let revived = match self.unprune {
            Some(Unprune::Queued) => true,
            Some(Unprune::Flushed(tag)) => !catalogue.reflects(listing, Written::Unprune, tag),
            None => false,
        };
        if revived && listing.status == 1 {
            0
        } else {
            listing.status
        }
    }

    /// A seeder revived the pruned torrent; the unprune is queued for the database.
    pub fn unprune(&mut self) {
        self.unprune = Some(Unprune::Queued);
    }

    /// A completion was counted and queued for `torrents.Snatched`.
    pub fn completed(&mut self, count: u32) {
        self.completions.queued = self.completions.queued.saturating_add(count);
    }

    /// `downloaded`: the catalogue's `Snatched` and the completions counted here that
    /// it does not show yet. It never goes backwards across a reload: a completion
    /// leaves the second part only for a catalogue that shows it in the first.
    pub fn downloaded(&self, catalogue: &Catalogue, listing: &Listing) -> u32 {
        let unseen = self
            .completions
            .flushed
            .iter()
            .filter(|(tag, _)| !catalogue.reflects(listing, Written::Snatched, *tag))
            .fold(self.completions.queued, |sum, (_, n)| {
                sum.saturating_add(*n)
            });
        listing.snatched.saturating_add(unseen)
    }

    /// Forgets the writes `catalogue` shows.
    pub fn settle(&mut self, catalogue: &Catalogue, listing: &Listing) {
        if let Some(Unprune::Flushed(tag)) = self.unprune {
            if catalogue.reflects(listing, Written::Unprune, tag) {
                self.unprune = None;
            }
        }
        self.completions
            .flushed
            .retain(|(tag, _)| !catalogue.reflects(listing, Written::Snatched, *tag));
    }

    /// Whether nothing is left that the catalogue does not say: no peer, no pending
    /// write. (The last action is kept by the database as a maximum.)
    pub fn is_idle(&self) -> bool {
        self.swarm.is_empty() && self.unprune.is_none() && self.completions.is_empty()
    }

    /// `count` writes of `kind` went into the flush tagged `tag`.
    fn flushed(&mut self, kind: Written, count: u32, tag: Tag) {
        match kind {
            Written::Unprune => {
                if self.unprune == Some(Unprune::Queued) {
                    self.unprune = Some(Unprune::Flushed(tag));
                }
            }
            Written::Snatched => {
                let taken = count.min(self.completions.queued);
                self.completions.queued -= taken;
                match self.completions.flushed.last_mut() {
                    Some((last, n)) if *last == tag => *n = n.saturating_add(taken),
                    _ if taken > 0 => self.completions.flushed.push((tag, taken)),
                    _ => {}
                }
            }
        }
    }

    /// A write of `kind` will never be flushed (the database refused its row).
    fn dropped(&mut self, kind: Written, count: u32) {
        match kind {
            Written::Unprune => {
                if self.unprune == Some(Unprune::Queued) {
                    self.unprune = None;
                }
            }
            Written::Snatched => {
                self.completions.queued = self.completions.queued.saturating_sub(count);
            }
        }
    }
}

/// One shard: live torrents by id.
#[derive(Debug, Default)]
pub struct Shard {
    live: HashMap<TorrentId, Live>,
}

impl Shard {
    pub fn get(&self, id: TorrentId) -> Option<&Live> {
        self.live.get(&id)
    }

    pub fn get_mut(&mut self, id: TorrentId) -> Option<&mut Live> {
        self.live.get_mut(&id)
    }

    /// The live state of `id`, made when it has none.
    pub fn enter(&mut self, id: TorrentId, info_hash: InfoHash) -> &mut Live {
        self.live.entry(id).or_insert_with(|| Live::new(info_hash))
    }

    /// Drops the entry of `id` if nothing is left in it.
    pub fn leave_if_idle(&mut self, id: TorrentId) {
        if self.live.get(&id).is_some_and(Live::is_idle) {
            self.live.remove(&id);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TorrentId, &Live)> {
        self.live.iter()
    }

    /// Keeps the entries for which `keep` says so.
    pub fn retain(&mut self, keep: impl FnMut(&TorrentId, &mut Live) -> bool) {
        self.live.retain(keep);
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

/// Every live torrent, in shards.
#[derive(Debug)]
pub struct Swarms {
    shards: Box<[Mutex<Shard>]>,
    /// Catalogue loads begun (the tag of a flush without commit markers).
    loads_begun: AtomicU64,
    /// The load number of the catalogue in service: set after it is swapped in and
    /// before the swarms are swept to it.
    in_service: AtomicU64,
}

impl Default for Swarms {
    fn default() -> Swarms {
        Swarms {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            loads_begun: AtomicU64::new(0),
            in_service: AtomicU64::new(0),
        }
    }
}

impl Swarms {
    /// Locks the shard of `id`. A panic elsewhere while holding it leaves each entry
    /// whole enough to keep serving, so poisoning is ignored rather than spread to
    /// every later announce.
    pub fn shard(&self, id: TorrentId) -> MutexGuard<'_, Shard> {
        let at = usize::try_from(id.0).unwrap_or(0) % self.shards.len();
        lock(&self.shards[at])
    }

    /// Calls `visit` with each shard, locked, in turn.
    pub fn for_each_shard(&self, mut visit: impl FnMut(&mut Shard)) {
        for shard in self.shards.iter() {
            visit(&mut lock(shard));
        }
    }

    /// Locks shard `index` (0 to [`SHARDS`] − 1), for a walk that does part of its
    /// work between two shards (see [`Swarms::for_each_shard`]).
    pub fn shard_at(&self, index: usize) -> Option<MutexGuard<'_, Shard>> {
        self.shards.get(index).map(lock)
    }

    /// Numbers a catalogue load about to begin.
    pub fn begin_load(&self) -> u64 {
        self.loads_begun.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The number of the last catalogue load begun.
    pub fn loads_begun(&self) -> u64 {
        self.loads_begun.load(Ordering::Acquire)
    }

    /// The load number of the catalogue in service.
    pub fn in_service(&self) -> u64 {
        self.in_service.load(Ordering::Acquire)
    }

    /// `count` writes of `kind` for torrent `id` went into the flush tagged `tag`.
    pub fn flushed(&self, kind: Written, id: TorrentId, count: u32, tag: Tag) {
        if let Some(live) = self.shard(id).get_mut(id) {
            live.flushed(kind, count, tag);
        }
    }

    /// `count` writes of `kind` for torrent `id` will never reach the database.
    pub fn dropped(&self, kind: Written, id: TorrentId, count: u32) {
        let mut shard = self.shard(id);
        if let Some(live) = shard.get_mut(id) {
            live.dropped(kind, count);
        }
        shard.leave_if_idle(id);
    }

    /// Puts `catalogue` (just swapped in) in service: the swarms of torrents it no
    /// longer has (deleted, or their hash now another id's) are dropped, their peers
    /// taken out of `gauges`, and what it shows of our writes is forgotten. Returns
    /// how many swarms went.
    pub fn sweep(&self, catalogue: &Catalogue, gauges: &PeerGauges) -> usize {
        self.in_service.store(catalogue.load(), Ordering::Release);
        let mut dropped = 0;
        self.for_each_shard(|shard| {
            shard.retain(|&id, live| match catalogue.get(&live.info_hash) {
                Some(listing) if listing.id == id => {
                    live.settle(catalogue, &listing);
                    !live.is_idle()
                }
                _ => {
                    gauges.remove(live.swarm.tally());
                    dropped += 1;
                    false
                }
            });
        });
        dropped
    }

    /// The newest announce of any peer (Unix seconds; 0 without peers). Walks every
    /// peer: for start-up.
    pub fn newest_announce(&self) -> i64 {
        let mut newest = 0u32;
        self.for_each_shard(|shard| {
            for (_, live) in shard.iter() {
                for (_, peer, _) in live.swarm.iter() {
                    let v4 = peer.v4.as_ref().map(|e| e.seen.get());
                    let v6 = peer.v6.as_ref().map(|e| e.seen.get());
                    newest = newest.max(v4.unwrap_or(0)).max(v6.unwrap_or(0));
                }
            }
        });
        i64::from(newest)
    }

    /// Live torrents (walks the shards: for tests and checks).
    pub fn count(&self) -> usize {
        let mut count = 0;
        self.for_each_shard(|shard| count += shard.len());
        count
    }

    /// Every peer and endpoint in the swarms, by walking them: what [`PeerGauges`]
    /// must always equal. For tests and checks, never for a request.
    pub fn recount(&self) -> Tally {
        let mut sum = Tally::default();
        self.for_each_shard(|shard| {
            for (_, live) in shard.iter() {
                sum += live.swarm.tally();
            }
        });
        sum
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::catalogue::TorrentRow;

    /// Torrent `id` with hash bytes `id`.
    fn row(id: u32, status: i32, snatched: u32) -> TorrentRow {
        crate::tracker::catalogue::tests::row(id, id as u8, status, snatched)
    }

    fn catalogue(load: u64, seen: [Tag; 2], rows: Vec<TorrentRow>) -> Catalogue {
        Catalogue::from_rows(load, seen, rows)
    }

    #[test]
    fn downloaded_never_goes_backwards_across_flushes_and_loads() {
        let swarms = Swarms::default();
        let hash = InfoHash([1; 20]);
        let before = catalogue(1, [4, 0], vec![row(1, 0, 48)]);
        let listing = before.get(&hash).unwrap();
        swarms
            .shard(TorrentId(1))
            .enter(TorrentId(1), hash)
            .completed(2);
        let downloaded = |catalogue: &Catalogue| {
            let shard = swarms.shard(TorrentId(1));
            let listing = catalogue.get(&hash).unwrap();
            shard
                .get(TorrentId(1))
                .unwrap()
                .downloaded(catalogue, &listing)
        };
        assert_eq!(downloaded(&before), 50);
        // Flushed as flush 5; a third completes meanwhile.
        swarms.flushed(Written::Snatched, TorrentId(1), 2, 5);
        swarms
            .shard(TorrentId(1))
            .get_mut(TorrentId(1))
            .unwrap()
            .completed(1);
        assert_eq!(downloaded(&before), 51);
        // A catalogue read before flush 5 committed shows 48 still: 51.
        let stale = catalogue(2, [4, 0], vec![row(1, 0, 48)]);
        assert_eq!(downloaded(&stale), 51);
        // One read after shows 50: still 51, and once swept the flush is forgotten.
        let fresh = catalogue(3, [5, 0], vec![row(1, 0, 50)]);
        assert_eq!(downloaded(&fresh), 51);
        swarms.sweep(&fresh, &PeerGauges::default());
        assert_eq!(downloaded(&fresh), 51);
        assert_eq!(listing.snatched, 48);
        let shard = swarms.shard(TorrentId(1));
        let live = shard.get(TorrentId(1)).unwrap();
        assert_eq!(live.completions.flushed, []);
        assert_eq!(live.completions.queued, 1);
    }

    #[test]
    fn an_unprune_holds_until_the_catalogue_shows_it() {
        let swarms = Swarms::default();
        let hash = InfoHash([1; 20]);
        let pruned = catalogue(1, [0, 2], vec![row(1, 1, 0)]);
        let status = |catalogue: &Catalogue| {
            let shard = swarms.shard(TorrentId(1));
            let listing = catalogue.get(&hash).unwrap();
            shard
                .get(TorrentId(1))
                .map(|live| live.status(catalogue, &listing))
        };
        swarms
            .shard(TorrentId(1))
            .enter(TorrentId(1), hash)
            .unprune();
        assert_eq!(status(&pruned), Some(0));
        swarms.flushed(Written::Unprune, TorrentId(1), 1, 3);
        assert_eq!(status(&pruned), Some(0), "flushed, not yet shown");
        // The write is shown; staff pruned it again since: 1 it is.
        let again = catalogue(2, [0, 3], vec![row(1, 1, 0)]);
        assert_eq!(status(&again), Some(1));
        assert_eq!(swarms.sweep(&again, &PeerGauges::default()), 0);
        assert_eq!(status(&again), None, "nothing left: the entry went");
    }

    #[test]
    fn a_sweep_drops_the_swarms_of_torrents_gone_from_the_catalogue() {
        let swarms = Swarms::default();
        let gauges = PeerGauges::default();
        let mut peer = crate::tracker::Peer::at("1.2.3.4".parse().unwrap(), 6881, 10);
        peer.left = 1;
        for id in [1u32, 2] {
            let mut shard = swarms.shard(TorrentId(id));
            let live = shard.enter(TorrentId(id), InfoHash([id as u8; 20]));
            live.swarm.insert(
                crate::tracker::PeerKey {
                    user: crate::tracker::UserId(1),
                    peer_id: crate::tracker::PeerId([id as u8; 20]),
                },
                peer.clone(),
                false,
            );
            gauges.apply(live.swarm.tally());
        }
        // Torrent 2's hash now belongs to torrent 3: its swarm goes too.
        let mut three = row(3, 0, 0);
        three.info_hash = InfoHash([2; 20]);
        let next = catalogue(7, [0, 0], vec![row(1, 0, 0), three]);
        assert_eq!(swarms.sweep(&next, &gauges), 1);
        assert_eq!(swarms.in_service(), 7);
        assert_eq!(swarms.count(), 1);
        assert_eq!(gauges.counts().peers, 1);
        assert_eq!(swarms.recount().peers, 1);
    }

    #[test]
    fn a_refused_write_leaves_nothing_pending() {
        let swarms = Swarms::default();
        {
            let mut shard = swarms.shard(TorrentId(1));
            let live = shard.enter(TorrentId(1), InfoHash([1; 20]));
            live.completed(1);
            live.unprune();
        }
        swarms.dropped(Written::Snatched, TorrentId(1), 1);
        assert_eq!(swarms.count(), 1, "the unprune is still pending");
        swarms.dropped(Written::Unprune, TorrentId(1), 1);
        assert_eq!(swarms.count(), 0);
    }
}
