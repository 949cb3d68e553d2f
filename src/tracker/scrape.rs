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

/// Appends to `files`, sorted by hash and without duplicates, every requested torrent
/// that is tracked and not download-disabled for `user`. Status is not checked, so
/// pruned torrents show. A torrent without a live swarm has no peers, and the
/// catalogue's `Snatched`.
pub fn scrape(
    catalogue: &Catalogue,
    swarms: &Swarms,
    hit_and_runs: &HitAndRuns,
    user: &User,
    hashes: &[InfoHash],
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
        let file = match shard.get(listing.id) {
            Some(live) => ScrapeFile {
                info_hash,
                complete: count(live.swarm.seeders()),
                downloaded: live.downloaded(catalogue, &listing),
                incomplete: count(live.swarm.leechers()),
            },
            None => ScrapeFile {
                info_hash,
                complete: 0,
                downloaded: listing.snatched,
                incomplete: 0,
            },
        };
        drop(shard);
        files.push(file);
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
