//! Scrape (SPEC §6): counts for the requested torrents the user may download.

use super::announce::download_disabled;
use super::catalogue::Catalogue;
use super::snapshot::{HitAndRuns, User};
use super::swarms::Swarms;
use super::types::InfoHash;

/// Most info_hash values one scrape may carry (duplicates counted).
pub const MAX_SCRAPE_HASHES: usize = 100;

/// One torrent's entry in a scrape response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeFile {
    pub info_hash: InfoHash,
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
}

/// Where the peers of a torrent this tracker has none of may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elsewhere {
    /// Nowhere: this is the only tracker, so the torrent has no peers.
    Nowhere,
    /// With another tracker sharing the database (`instance`), which routes by
    /// info_hash: the counts that tracker last wrote, as the catalogue read them.
    Stored,
}

/// Appends to `files`, sorted by hash and without duplicates, every requested torrent
/// that is tracked and not download-disabled for `user`. Status is not checked, so
/// pruned torrents show. A torrent without peers here has the counts `elsewhere`
/// says, and the catalogue's `Snatched` with what this tracker has not written yet.
pub fn scrape(
    catalogue: &Catalogue,
    swarms: &Swarms,
    hit_and_runs: &HitAndRuns,
    user: &User,
    hashes: &[InfoHash],
    elsewhere: Elsewhere,
    files: &mut Vec<ScrapeFile>,
) {
    let mut wanted = hashes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for info_hash in wanted {
        let Some(listing) = catalogue.get(&info_hash) else {
            continue;
        };
        if download_disabled(user, listing.id, hit_and_runs) {
            continue;
        }
        let shard = swarms.shard(listing.id);
        let live = shard.get(listing.id);
        let downloaded = live.map_or(listing.snatched, |live| {
            live.downloaded(catalogue, &listing)
        });
        let (complete, incomplete) = match (live.filter(|l| !l.swarm.is_empty()), elsewhere) {
            (Some(live), _) => (count(live.swarm.seeders()), count(live.swarm.leechers())),
            (None, Elsewhere::Stored) => (listing.stored.seeders, listing.stored.leechers),
            (None, Elsewhere::Nowhere) => (0, 0),
        };
        drop(shard);
        files.push(ScrapeFile {
            info_hash,
            complete,
            downloaded,
            incomplete,
        });
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
