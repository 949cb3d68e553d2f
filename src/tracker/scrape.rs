//! Scrape (SPEC §6): counts for the requested torrents the user may download.

use super::announce::download_disabled;
use super::snapshot::{HitAndRuns, Torrents, User};
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
/// pruned torrents show.
pub fn scrape(
    torrents: &Torrents,
    hit_and_runs: &HitAndRuns,
    user: &User,
    hashes: &[InfoHash],
    files: &mut Vec<ScrapeFile>,
) {
    let mut wanted = hashes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for info_hash in wanted {
        let Some(torrent) = torrents.get(&info_hash) else {
            continue;
        };
        if download_disabled(user, torrent.id, hit_and_runs) {
            continue;
        }
        let state = torrent.lock();
        files.push(ScrapeFile {
            info_hash,
            complete: u32::try_from(state.swarm.seeders()).unwrap_or(u32::MAX),
            downloaded: state.snatched,
            incomplete: u32::try_from(state.swarm.leechers()).unwrap_or(u32::MAX),
        });
    }
}
