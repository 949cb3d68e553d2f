//! How a table's pending row absorbs a newer delta for the same key (SPEC §8.1–8.6):
//! sums add up, "last" columns keep the newest value, `last_action` keeps the maximum,
//! and insert-only start times keep the earliest. The pending row is the delta type
//! itself; its key fields are equal on both sides of a merge.

use super::pending::Merge;
use crate::tracker::{
    HistoryDelta, SnatchDelta, TorrentDelta, TorrentId, TransferIpDelta, UserDelta, MAX_COUNTER,
};

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b).min(MAX_COUNTER)
}

impl Merge for TorrentDelta {
    fn merge(&mut self, newer: Self) {
        self.snatched = self.snatched.saturating_add(newer.snatched);
        self.seeders = newer.seeders;
        self.leechers = newer.leechers;
        self.last_action = self.last_action.max(newer.last_action);
    }
}

impl Merge for UserDelta {
    fn merge(&mut self, newer: Self) {
        self.uploaded = add(self.uploaded, newer.uploaded);
        self.downloaded = add(self.downloaded, newer.downloaded);
        self.rawup = add(self.rawup, newer.rawup);
        self.rawdl = add(self.rawdl, newer.rawdl);
    }
}

impl Merge for HistoryDelta {
    fn merge(&mut self, newer: Self) {
        self.uploaded = add(self.uploaded, newer.uploaded);
        self.downloaded = add(self.downloaded, newer.downloaded);
        self.active_time = self.active_time.saturating_add(newer.active_time);
        self.seed_time = self.seed_time.saturating_add(newer.seed_time);
        self.snatched = self.snatched.saturating_add(newer.snatched);
        self.seeding = newer.seeding;
        self.remaining = newer.remaining;
        self.last_announce = newer.last_announce;
        self.active = newer.active;
        self.start_time = self.start_time.min(newer.start_time);
    }
}

impl<A: Copy> Merge for TransferIpDelta<A> {
    fn merge(&mut self, newer: Self) {
        self.uploaded = add(self.uploaded, newer.uploaded);
        self.downloaded = add(self.downloaded, newer.downloaded);
        self.port = newer.port;
        self.last_announce = newer.last_announce;
        self.start_time = self.start_time.min(newer.start_time);
    }
}

impl Merge for SnatchDelta {
    /// The first completion is the one the site keeps.
    fn merge(&mut self, newer: Self) {
        self.snatched_time = self.snatched_time.min(newer.snatched_time);
        self.start_time = self.start_time.min(newer.start_time);
    }
}

/// A pruned torrent an announce revived; nothing to merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unprune(pub TorrentId);

impl Merge for Unprune {
    fn merge(&mut self, _newer: Self) {}
}

/// A torrent whose group's `Time` is to be bumped (`flush_groups`); nothing to merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBump(pub TorrentId);

impl Merge for GroupBump {
    fn merge(&mut self, _newer: Self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::UserId;

    #[test]
    fn history_merge_rules() {
        let base = HistoryDelta {
            user: UserId(1),
            torrent: TorrentId(2),
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
        let mut row = base;
        row.merge(HistoryDelta {
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
            ..base
        });
        assert_eq!(
            row,
            HistoryDelta {
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
                ..base
            }
        );
    }

    #[test]
    fn torrent_merge_keeps_max_last_action_and_newest_counts() {
        let base = TorrentDelta {
            id: TorrentId(1),
            snatched: 1,
            seeders: 5,
            leechers: 5,
            last_action: 300,
        };
        let mut row = base;
        row.merge(TorrentDelta {
            snatched: 2,
            seeders: 4,
            leechers: 6,
            last_action: 0,
            ..base
        });
        assert_eq!(
            row,
            TorrentDelta {
                snatched: 3,
                seeders: 4,
                leechers: 6,
                ..base
            }
        );
    }

    #[test]
    fn sums_saturate_at_the_column_range() {
        let base = UserDelta {
            id: UserId(1),
            uploaded: MAX_COUNTER,
            downloaded: 0,
            rawup: 1,
            rawdl: 0,
        };
        let mut row = base;
        row.merge(UserDelta {
            uploaded: 5,
            downloaded: 1,
            ..base
        });
        assert_eq!(
            (row.uploaded, row.downloaded, row.rawup),
            (MAX_COUNTER, 1, 2)
        );
    }

    #[test]
    fn transfer_ip_keeps_newest_port_and_earliest_start() {
        let base = TransferIpDelta {
            user: UserId(1),
            torrent: TorrentId(2),
            client: crate::tracker::ClientId(3),
            ip: 1,
            port: 1000,
            uploaded: 5,
            downloaded: 6,
            start_time: 50,
            last_announce: 60,
        };
        let mut row = base;
        row.merge(TransferIpDelta {
            port: 2000,
            start_time: 70,
            last_announce: 90,
            ..base
        });
        assert_eq!(
            (
                row.port,
                row.uploaded,
                row.downloaded,
                row.start_time,
                row.last_announce
            ),
            (2000, 10, 12, 50, 90)
        );
    }

    #[test]
    fn first_snatch_wins() {
        let base = SnatchDelta {
            user: UserId(1),
            torrent: TorrentId(2),
            snatched_time: 50,
            start_time: 10,
        };
        let mut row = base;
        row.merge(SnatchDelta {
            snatched_time: 70,
            start_time: 5,
            ..base
        });
        assert_eq!((row.snatched_time, row.start_time), (50, 5));
    }
}
