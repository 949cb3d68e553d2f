//! The catalogue: the site's torrents as the last successful load read them from the
//! `torrents` table (id, group, type, multipliers, status, `Snatched`), by info_hash.
//! Built whole aside from the rows and swapped in whole; immutable once built, so a
//! load that fails halfway changes nothing and nothing a client does touches it. What
//! clients do lives in [`super::swarms`].
//!
//! A catalogue also knows which of the tracker's own writes to `torrents` it shows
//! (completions added to `Snatched`, unprunes setting `Status` to 0): each write is
//! tagged when it is flushed ([`Tag`]), and a catalogue says of a tag whether the rows
//! it read already had it ([`Catalogue::reflects`]). With the commit-marker table the
//! tags are flush numbers and each part of a load reads the markers in the same
//! consistent snapshot as its rows, so the answer is exact; without it they are load
//! numbers, exact unless a flush commits while a load starts.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::hash::HashMap;
use super::pushed::{self, Overlay, Pushed};
use super::types::{GroupId, InfoHash, TorrentId, TorrentType};

/// What the database says about a torrent, apart from its id and hash.
#[derive(Clone, Copy, Debug, PartialEq)]
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
    pub stored: StoredCounts,
}

/// `Seeders` and `Leechers` as the tracker that holds the torrent's swarm last wrote
/// them: what a tracker sharing the database with others answers a scrape with for
/// a torrent another one holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredCounts {
    pub seeders: u32,
    pub leechers: u32,
}

/// A torrent as the catalogue holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Listing {
    pub id: TorrentId,
    pub meta: TorrentMeta,
    /// `Snatched` as read.
    pub snatched: u32,
    /// 0 is active; 1 is pruned (a seeder revives it).
    pub status: i32,
    /// `Seeders` and `Leechers` as read.
    pub stored: StoredCounts,
    /// The part of the load that read it (see [`Seen`]); [`PUSHED`] for a torrent
    /// only a push told of.
    part: u8,
}

/// The part of a listing no load read: it reflects none of the tracker's writes.
const PUSHED: u8 = u8::MAX;

/// What the site pushes of a torrent: the `torrents` columns it sets. `Snatched` is
/// the tracker's to count, so a push never carries it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PushedTorrent {
    pub id: TorrentId,
    pub meta: TorrentMeta,
    pub status: i32,
}

/// Pushed torrents by info_hash, shared by the catalogues in service one after
/// another.
pub type TorrentPushes = Overlay<InfoHash, PushedTorrent>;

/// The tracker's writes to `torrents` that a catalogue can tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Completions added to `Snatched` (the torrents writer).
    Snatched = 0,
    /// `Status` set back to 0 (the unprune writer).
    Unprune = 1,
}

/// When one of those writes was flushed: a flush number with commit markers, else
/// the number of the last load begun before it committed.
pub type Tag = u64;

/// The newest tag of each kind of write that the rows of one load part show: every
/// write tagged at or below it is in them.
pub type Seen = [Tag; 2];

/// The site's torrents by info_hash: the rows of a load, with what was pushed since
/// laid over them.
#[derive(Debug, Default)]
pub struct Catalogue {
    by_hash: HashMap<InfoHash, Listing>,
    /// By part.
    seen: Vec<Seen>,
    /// The number of the load that built it (0: none yet).
    load: u64,
    pushed: Arc<TorrentPushes>,
}

impl Catalogue {
    pub fn get(&self, info_hash: &InfoHash) -> Option<Listing> {
        let loaded = self.by_hash.get(info_hash);
        match self.pushed.get(info_hash) {
            Pushed::Unchanged => loaded.copied(),
            Pushed::Removed => None,
            Pushed::Set(pushed) => Some(match loaded {
                // The row as loaded, with the columns the site changed: what it shows
                // of the tracker's own writes still holds.
                Some(row) if row.id == pushed.id => Listing {
                    meta: pushed.meta,
                    status: pushed.status,
                    ..*row
                },
                _ => Listing {
                    id: pushed.id,
                    meta: pushed.meta,
                    snatched: 0,
                    status: pushed.status,
                    stored: StoredCounts::default(),
                    part: PUSHED,
                },
            }),
        }
    }

    /// The catalogue with `pushed` laid over its rows (the overlay every catalogue in
    /// service shares).
    pub fn with_pushes(mut self, pushed: Arc<TorrentPushes>) -> Catalogue {
        self.pushed = pushed;
        self
    }

    /// How many torrents the reload that built `self` found changed from what `old`
    /// showed, loaded or pushed, leaving out those pushed after push number `shown`
    /// (the load could not see them) and the tracker's own writes (`Snatched`, a
    /// revived `Status`): the changes a push should have brought and did not.
    pub fn drift(&self, old: &Catalogue, shown: u64) -> u64 {
        let pushed_only = old.pushed.added(|hash| old.by_hash.contains_key(hash));
        pushed::drift(
            self.by_hash.iter().map(|(hash, listing)| (hash, *listing)),
            old.by_hash.keys().chain(&pushed_only),
            |hash| old.get(hash),
            |was, now| {
                was.id == now.id && was.meta == now.meta && !(was.status == 0 && now.status != 0)
            },
            |hash| self.by_hash.contains_key(hash),
            |hash| self.pushed.pushed_after(hash, shown),
        )
    }

    /// Whether `info_hash` is still the torrent `id`.
    pub fn has(&self, info_hash: &InfoHash, id: TorrentId) -> bool {
        self.get(info_hash).is_some_and(|listing| listing.id == id)
    }

    /// The torrents as loaded, counting in those pushed since.
    pub fn len(&self) -> usize {
        let by_hash = &self.by_hash;
        self.pushed
            .count_over(by_hash.len(), |hash| by_hash.contains_key(hash))
    }

    /// The torrents the load read (pushes left out).
    pub fn loaded(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every torrent's hash by id. Walks the rows as loaded: for start-up, where
    /// replayed writes name torrents by id and nothing was pushed yet.
    pub fn hashes_by_id(&self) -> HashMap<TorrentId, InfoHash> {
        self.by_hash
            .iter()
            .map(|(hash, listing)| (listing.id, *hash))
            .collect()
    }

    /// The number of the load that built it.
    pub fn load(&self) -> u64 {
        self.load
    }

    /// Whether the row of `listing` shows a write of `kind` tagged `tag`.
    pub fn reflects(&self, listing: &Listing, kind: Written, tag: Tag) -> bool {
        self.seen
            .get(usize::from(listing.part))
            .is_some_and(|seen| tag <= seen[kind as usize])
    }
}

/// Builds a catalogue from rows as the database sends them, part by part. Of two rows
/// with one hash the lowest id wins, in whatever order they come; the ids of the
/// others are kept aside as duplicates.
#[derive(Debug)]
pub struct CatalogueBuilder {
    by_hash: HashMap<InfoHash, Listing>,
    seen: Vec<Seen>,
    load: u64,
    duplicates: Vec<TorrentId>,
}

impl CatalogueBuilder {
    /// For load number `load`, room for `capacity` torrents.
    pub fn new(load: u64, capacity: usize) -> CatalogueBuilder {
        CatalogueBuilder {
            by_hash: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            seen: Vec::new(),
            load,
            duplicates: Vec::new(),
        }
    }

    /// A new part whose rows show the writes up to `seen`; returns its number, for
    /// [`CatalogueBuilder::add`].
    pub fn part(&mut self, seen: Seen) -> u8 {
        self.seen.push(seen);
        u8::try_from(self.seen.len() - 1).unwrap_or(u8::MAX)
    }

    pub fn add(&mut self, part: u8, row: TorrentRow) {
        let listing = Listing {
            id: row.id,
            meta: row.meta,
            snatched: row.snatched,
            status: row.status,
            stored: row.stored,
            part,
        };
        match self.by_hash.entry(row.info_hash) {
            Entry::Vacant(slot) => {
                slot.insert(listing);
            }
            Entry::Occupied(mut slot) if listing.id < slot.get().id => {
                let loser = slot.get().id;
                slot.insert(listing);
                self.duplicates.push(loser);
            }
            Entry::Occupied(_) => self.duplicates.push(listing.id),
        }
    }

    /// The catalogue, and the ids refused as duplicates.
    pub fn finish(self) -> (Catalogue, Vec<TorrentId>) {
        (
            Catalogue {
                by_hash: self.by_hash,
                seen: self.seen,
                load: self.load,
                pushed: Arc::default(),
            },
            self.duplicates,
        )
    }
}

impl Catalogue {
    /// A catalogue of `rows`, all read in one part that shows the writes up to `seen`
    /// (tests, and tools that build one by hand).
    pub fn from_rows(
        load: u64,
        seen: Seen,
        rows: impl IntoIterator<Item = TorrentRow>,
    ) -> Catalogue {
        let mut builder = CatalogueBuilder::new(load, 0);
        let part = builder.part(seen);
        for row in rows {
            builder.add(part, row);
        }
        builder.finish().0
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A row of torrent `id` with hash bytes `hash`, group 1, anime, multipliers 1.
    pub fn row(id: u32, hash: u8, status: i32, snatched: u32) -> TorrentRow {
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
            stored: StoredCounts::default(),
        }
    }

    #[test]
    fn the_lowest_id_of_a_hash_wins_whatever_the_order() {
        let mut builder = CatalogueBuilder::new(1, 4);
        let part = builder.part([0, 0]);
        builder.add(part, row(3, 1, 0, 0));
        builder.add(part, row(1, 1, 1, 5));
        builder.add(part, row(2, 1, 0, 0));
        builder.add(part, row(4, 2, 0, 0));
        let (catalogue, duplicates) = builder.finish();
        assert_eq!(duplicates, [TorrentId(3), TorrentId(2)]);
        assert_eq!(catalogue.len(), 2);
        let listing = catalogue.get(&InfoHash([1; 20])).unwrap();
        assert_eq!(
            (listing.id, listing.snatched, listing.status),
            (TorrentId(1), 5, 1)
        );
        assert!(catalogue.has(&InfoHash([1; 20]), TorrentId(1)));
        assert!(!catalogue.has(&InfoHash([1; 20]), TorrentId(3)));
        assert_eq!(catalogue.load(), 1);
    }

    #[test]
    fn a_catalogue_reflects_the_writes_its_part_saw() {
        let mut builder = CatalogueBuilder::new(1, 2);
        let first = builder.part([7, 3]);
        let second = builder.part([9, 2]);
        builder.add(first, row(1, 1, 0, 0));
        builder.add(second, row(2, 2, 0, 0));
        let (catalogue, _) = builder.finish();
        let one = catalogue.get(&InfoHash([1; 20])).unwrap();
        let two = catalogue.get(&InfoHash([2; 20])).unwrap();
        assert!(catalogue.reflects(&one, Written::Snatched, 7));
        assert!(!catalogue.reflects(&one, Written::Snatched, 8));
        assert!(catalogue.reflects(&two, Written::Snatched, 8));
        assert!(catalogue.reflects(&one, Written::Unprune, 3));
        assert!(!catalogue.reflects(&two, Written::Unprune, 3));
    }

    #[test]
    fn a_push_changes_the_sites_columns_and_a_reload_counts_what_none_brought() {
        let pushes = Arc::new(TorrentPushes::default());
        let hash = |b: u8| InfoHash([b; 20]);
        let old =
            Catalogue::from_rows(1, [5, 5], [row(1, 1, 0, 7)]).with_pushes(Arc::clone(&pushes));
        let meta = TorrentMeta {
            group_id: GroupId(9),
            ..row(1, 1, 0, 0).meta
        };
        let pushed = |id| PushedTorrent {
            id: TorrentId(id),
            meta,
            status: 0,
        };
        pushes.set(hash(1), 1, Some(pushed(1)));
        pushes.set(hash(2), 2, Some(pushed(2)));
        // Torrent 1 keeps what its row shows of the tracker's writes; torrent 2, which
        // no load read, shows none.
        let one = old.get(&hash(1)).unwrap();
        assert_eq!((one.meta.group_id, one.snatched), (GroupId(9), 7));
        assert!(old.reflects(&one, Written::Snatched, 5));
        let two = old.get(&hash(2)).unwrap();
        assert_eq!((two.id, two.snatched), (TorrentId(2), 0));
        assert!(!old.reflects(&two, Written::Snatched, 0));
        assert_eq!(old.len(), 2);

        // A load that began between pushes 1 and 2: it read torrent 1 as pushed (and
        // 8 snatches, one of them the tracker's), torrent 3 that nobody pushed, and
        // not torrent 2.
        let mut reread = row(1, 1, 0, 8);
        reread.meta = meta;
        let new = Catalogue::from_rows(2, [6, 6], [reread, row(3, 3, 0, 0)])
            .with_pushes(Arc::clone(&pushes));
        assert_eq!(new.drift(&old, 1), 1);
        assert_eq!(pushes.settle(1), 1);
        assert_eq!(new.get(&hash(1)).unwrap().snatched, 8);
        assert_eq!(new.get(&hash(2)).unwrap().id, TorrentId(2));
        assert_eq!(new.len(), 3);
        pushes.set(hash(3), 3, None);
        assert_eq!((new.get(&hash(3)), new.len()), (None, 2));
    }
}
