//! The pending row of each table and its merge rules (SPEC §8.1–8.6): sums add up,
//! "last" columns keep the newest value, `last_action` keeps the maximum, and
//! insert-only start times keep the earliest.

use super::pending::Merge;
use crate::tracker::{
    HistoryDelta, SnatchDelta, TorrentDelta, TransferIpDelta, UserDelta, MAX_COUNTER,
};

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b).min(MAX_COUNTER)
}

fn add_time(a: i64, b: i64) -> i64 {
    a.saturating_add(b)
}

/// `torrents`, keyed by ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TorrentRow {
    pub snatched: u32,
    pub seeders: u32,
    pub leechers: u32,
    pub last_action: i64,
}

impl From<&TorrentDelta> for TorrentRow {
    fn from(d: &TorrentDelta) -> Self {
        TorrentRow {
            snatched: d.snatched,
            seeders: d.seeders,
            leechers: d.leechers,
            last_action: d.last_action,
        }
    }
}

impl Merge for TorrentRow {
    fn merge(&mut self, newer: Self) {
        self.snatched = self.snatched.saturating_add(newer.snatched);
        self.seeders = newer.seeders;
        self.leechers = newer.leechers;
        self.last_action = self.last_action.max(newer.last_action);
    }
}

/// `users_main`, keyed by ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub uploaded: u64,
    pub downloaded: u64,
    pub rawup: u64,
    pub rawdl: u64,
}

impl From<&UserDelta> for UserRow {
    fn from(d: &UserDelta) -> Self {
        UserRow {
            uploaded: d.uploaded,
            downloaded: d.downloaded,
            rawup: d.rawup,
            rawdl: d.rawdl,
        }
    }
}

impl Merge for UserRow {
    fn merge(&mut self, newer: Self) {
        self.uploaded = add(self.uploaded, newer.uploaded);
        self.downloaded = add(self.downloaded, newer.downloaded);
        self.rawup = add(self.rawup, newer.rawup);
        self.rawdl = add(self.rawdl, newer.rawdl);
    }
}

/// `transfer_history`, keyed by (uid, fid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeding: bool,
    pub start_time: i64,
    pub last_announce: i64,
    pub active_time: i64,
    pub seed_time: i64,
    pub active: bool,
    pub snatched: u32,
    pub remaining: u64,
}

impl From<&HistoryDelta> for HistoryRow {
    fn from(d: &HistoryDelta) -> Self {
        HistoryRow {
            uploaded: d.uploaded,
            downloaded: d.downloaded,
            seeding: d.seeding,
            start_time: d.start_time,
            last_announce: d.last_announce,
            active_time: d.active_time,
            seed_time: d.seed_time,
            active: d.active,
            snatched: d.snatched,
            remaining: d.remaining,
        }
    }
}

impl Merge for HistoryRow {
    fn merge(&mut self, newer: Self) {
        self.uploaded = add(self.uploaded, newer.uploaded);
        self.downloaded = add(self.downloaded, newer.downloaded);
        self.active_time = add_time(self.active_time, newer.active_time);
        self.seed_time = add_time(self.seed_time, newer.seed_time);
        self.snatched = self.snatched.saturating_add(newer.snatched);
        self.seeding = newer.seeding;
        self.remaining = newer.remaining;
        self.last_announce = newer.last_announce;
        self.active = newer.active;
        self.start_time = self.start_time.min(newer.start_time);
    }
}

/// `transfer_ips`, keyed by (uid, fid, ip, client_id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferIpRow {
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub start_time: i64,
    pub last_announce: i64,
}

impl From<&TransferIpDelta> for TransferIpRow {
    fn from(d: &TransferIpDelta) -> Self {
        TransferIpRow {
            port: d.port,
            uploaded: d.uploaded,
            downloaded: d.downloaded,
            start_time: d.start_time,
            last_announce: d.last_announce,
        }
    }
}

impl Merge for TransferIpRow {
    fn merge(&mut self, newer: Self) {
        self.uploaded = add(self.uploaded, newer.uploaded);
        self.downloaded = add(self.downloaded, newer.downloaded);
        self.port = newer.port;
        self.last_announce = newer.last_announce;
        self.start_time = self.start_time.min(newer.start_time);
    }
}

/// A completion for (uid, fid): the first one is the one the site keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnatchRow {
    pub snatched_time: i64,
    pub start_time: i64,
}

impl From<&SnatchDelta> for SnatchRow {
    fn from(d: &SnatchDelta) -> Self {
        SnatchRow {
            snatched_time: d.snatched_time,
            start_time: d.start_time,
        }
    }
}

impl Merge for SnatchRow {
    fn merge(&mut self, newer: Self) {
        self.snatched_time = self.snatched_time.min(newer.snatched_time);
        self.start_time = self.start_time.min(newer.start_time);
    }
}

/// A torrent to unprune; nothing to merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpruneRow;

impl Merge for UnpruneRow {
    fn merge(&mut self, _newer: Self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_merge_rules() {
        let mut row = HistoryRow {
            uploaded: 10,
            downloaded: 20,
            seeding: false,
            start_time: 100,
            last_announce: 200,
            active_time: 30,
            seed_time: 0,
            active: true,
            snatched: 0,
            remaining: 500,
        };
        row.merge(HistoryRow {
            uploaded: 1,
            downloaded: 2,
            seeding: true,
            start_time: 150,
            last_announce: 260,
            active_time: 60,
            seed_time: 60,
            active: false,
            snatched: 1,
            remaining: 0,
        });
        assert_eq!(
            row,
            HistoryRow {
                uploaded: 11,
                downloaded: 22,
                seeding: true,
                start_time: 100,
                last_announce: 260,
                active_time: 90,
                seed_time: 60,
                active: false,
                snatched: 1,
                remaining: 0,
            }
        );
    }

    #[test]
    fn torrent_merge_keeps_max_last_action_and_newest_counts() {
        let mut row = TorrentRow {
            snatched: 1,
            seeders: 5,
            leechers: 5,
            last_action: 300,
        };
        row.merge(TorrentRow {
            snatched: 2,
            seeders: 4,
            leechers: 6,
            last_action: 0,
        });
        assert_eq!(
            row,
            TorrentRow {
                snatched: 3,
                seeders: 4,
                leechers: 6,
                last_action: 300
            }
        );
    }

    #[test]
    fn sums_saturate_at_the_column_range() {
        let mut row = UserRow {
            uploaded: MAX_COUNTER,
            downloaded: 0,
            rawup: 1,
            rawdl: 0,
        };
        row.merge(UserRow {
            uploaded: 5,
            downloaded: 1,
            rawup: 1,
            rawdl: 0,
        });
        assert_eq!(
            (row.uploaded, row.downloaded, row.rawup),
            (MAX_COUNTER, 1, 2)
        );
    }

    #[test]
    fn first_snatch_wins() {
        let mut row = SnatchRow {
            snatched_time: 50,
            start_time: 10,
        };
        row.merge(SnatchRow {
            snatched_time: 70,
            start_time: 5,
        });
        assert_eq!(
            row,
            SnatchRow {
                snatched_time: 50,
                start_time: 5
            }
        );
    }
}
