//! Loading the snapshots (SPEC §7). Rows that cannot be used are skipped with a
//! warning naming the table, the row and the reason; the rest load.

use std::future::Future;

use futures_util::TryStreamExt;
use sqlx::mysql::MySqlRow;

use super::retry::Attempts;
use super::row::{bytes, id_for_log, int, text, Col, Multipliers};
use super::Store;
use crate::tracker::{
    ClientId, Clients, GroupFreeleech, GroupId, HitAndRuns, InfoHash, Passkey, TorrentId,
    TorrentMeta, TorrentRow, TorrentType, Torrents, TorrentsBuilder, User, UserId, Users,
};

/// Runs a load, retrying lock conflicts up to `deadlock_retries` attempts; any other
/// error gives up at once (the caller keeps its old snapshot).
async fn with_retry<T, F, Fut>(store: &Store, mut load: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempts = Attempts::default();
    loop {
        match load().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let reason = super::retry::classify(&error);
                if !reason.is_lock_conflict() || attempts.failures + 1 >= store.policy.retries {
                    return Err(error);
                }
                let (_, wait) = store.policy.on_failure(&store.stats, &mut attempts, &error);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Streams the rows of `sql` through `each`, which returns the reason a row is unusable.
/// Every loader's first column is the row's id, for the skip messages.
async fn for_each_row(
    store: &Store,
    sql: &'static str,
    mut each: impl FnMut(&MySqlRow) -> Result<(), String>,
    skipped: &mut Vec<(String, String)>,
) -> Result<usize, sqlx::Error> {
    let mut rows = sqlx::query(sql).fetch(&store.pool);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        count += 1;
        if let Err(reason) = each(&row) {
            skipped.push((id_for_log(&row), reason));
        }
    }
    Ok(count)
}

fn log_skipped(table: &str, skipped: &[(String, String)]) {
    for (id, reason) in skipped {
        tracing::warn!("Skipping {} row {}: {}", table, id, reason);
    }
}

fn flag(row: &MySqlRow, col: Col) -> Result<bool, String> {
    int::<i128>(row, col).map(|v| v != 0)
}

pub async fn load_users(store: &Store) -> Result<Users, sqlx::Error> {
    const SQL: &str = "SELECT ID, torrent_pass, DownMultiplier, UpMultiplier, \
                       DisableDownload, TrackerHide \
                       FROM users_main WHERE Enabled = '1' ORDER BY ID";
    let (users, skipped) = with_retry(store, || async {
        let mut users = Users::default();
        let mut skipped = Vec::new();
        let mut multipliers = Multipliers::default();
        for_each_row(
            store,
            SQL,
            |row| {
                let passkey = bytes(row, Col(1, "torrent_pass"))?;
                if passkey.is_empty() {
                    return Err("empty torrent_pass".to_owned());
                }
                let user = User {
                    id: UserId(int(row, Col(0, "ID"))?),
                    down_multiplier: multipliers.read(row, Col(2, "DownMultiplier"))?,
                    up_multiplier: multipliers.read(row, Col(3, "UpMultiplier"))?,
                    disable_download: flag(row, Col(4, "DisableDownload"))?,
                    tracker_hide: flag(row, Col(5, "TrackerHide"))?,
                };
                if users.insert(Passkey::new(passkey), user) {
                    Ok(())
                } else {
                    Err("duplicate torrent_pass (a lower ID has it)".to_owned())
                }
            },
            &mut skipped,
        )
        .await?;
        Ok((users, skipped))
    })
    .await?;
    log_skipped("users_main", &skipped);
    Ok(users)
}

pub async fn load_hit_and_runs(store: &Store) -> Result<HitAndRuns, sqlx::Error> {
    const SQL: &str = "SELECT h.uid, h.fid FROM transfer_history AS h \
                       JOIN users_main AS u ON u.ID = h.uid WHERE h.hnr = 1 AND u.Enabled = '1'";
    let (pairs, skipped) = with_retry(store, || async {
        let mut pairs = HitAndRuns::default();
        let mut skipped = Vec::new();
        for_each_row(
            store,
            SQL,
            |row| {
                pairs.insert(
                    UserId(int(row, Col(0, "uid"))?),
                    TorrentId(int(row, Col(1, "fid"))?),
                );
                Ok(())
            },
            &mut skipped,
        )
        .await?;
        Ok((pairs, skipped))
    })
    .await?;
    log_skipped("transfer_history", &skipped);
    Ok(pairs)
}

/// The torrents snapshot, built row by row as they arrive on top of `previous` (whose
/// swarms carry over: see [`TorrentsBuilder`]); also the rows refused as duplicates.
pub async fn load_torrents(
    store: &Store,
    previous: &Torrents,
) -> Result<(Torrents, Vec<TorrentRow>), sqlx::Error> {
    const SQL: &str = "SELECT ID, info_hash, DownMultiplier, UpMultiplier, \
                       Snatched, Status, GroupID, TorrentType \
                       FROM torrents ORDER BY ID";
    let (built, skipped) = with_retry(store, || async {
        let mut builder = TorrentsBuilder::new(previous);
        let mut skipped = Vec::new();
        let mut multipliers = Multipliers::default();
        for_each_row(
            store,
            SQL,
            |row| {
                let hash = bytes(row, Col(1, "info_hash"))?;
                let info_hash = <[u8; 20]>::try_from(hash)
                    .map_err(|_| format!("info_hash is {} bytes, not 20", hash.len()))?;
                builder.add(TorrentRow {
                    id: TorrentId(int(row, Col(0, "ID"))?),
                    info_hash: InfoHash(info_hash),
                    meta: TorrentMeta {
                        group_id: GroupId(int(row, Col(6, "GroupID"))?),
                        torrent_type: TorrentType::from_name(text(row, Col(7, "TorrentType"))?),
                        up_multiplier: multipliers.read(row, Col(3, "UpMultiplier"))?,
                        down_multiplier: multipliers.read(row, Col(2, "DownMultiplier"))?,
                    },
                    snatched: int(row, Col(4, "Snatched"))?,
                    status: int(row, Col(5, "Status"))?,
                });
                Ok(())
            },
            &mut skipped,
        )
        .await?;
        Ok((builder.finish(), skipped))
    })
    .await?;
    log_skipped("torrents", &skipped);
    Ok(built)
}

pub async fn load_group_freeleech(store: &Store) -> Result<GroupFreeleech, sqlx::Error> {
    const SQL: &str = "SELECT ID, GroupID, `Type`, DownMultiplier, UpMultiplier \
                       FROM torrent_group_freeleech ORDER BY ID";
    let (groups, skipped) = with_retry(store, || async {
        let mut groups = GroupFreeleech::default();
        let mut skipped = Vec::new();
        let mut multipliers = Multipliers::default();
        for_each_row(
            store,
            SQL,
            |row| {
                groups.insert(
                    GroupId(int(row, Col(1, "GroupID"))?),
                    TorrentType::from_name(text(row, Col(2, "Type"))?),
                    crate::tracker::Multipliers {
                        down: multipliers.read(row, Col(3, "DownMultiplier"))?,
                        up: multipliers.read(row, Col(4, "UpMultiplier"))?,
                    },
                );
                Ok(())
            },
            &mut skipped,
        )
        .await?;
        Ok((groups, skipped))
    })
    .await?;
    log_skipped("torrent_group_freeleech", &skipped);
    Ok(groups)
}

/// Global freeleech: the `mod_core` row `global_freeleech`, on when non-zero; no row
/// means off.
pub async fn load_global_freeleech(store: &Store) -> Result<bool, sqlx::Error> {
    const SQL: &str = "SELECT mod_setting FROM mod_core WHERE mod_option = 'global_freeleech'";
    let row = with_retry(store, || sqlx::query(SQL).fetch_optional(&store.pool)).await?;
    Ok(match row {
        None => false,
        Some(row) => match int::<i128>(&row, Col(0, "mod_setting")) {
            Ok(value) => value != 0,
            Err(reason) => {
                tracing::warn!("Skipping mod_core row global_freeleech: {}", reason);
                false
            }
        },
    })
}

pub async fn load_clients(store: &Store) -> Result<Clients, sqlx::Error> {
    const SQL: &str = "SELECT id, peer_id FROM approved_clients WHERE archived = 0 ORDER BY id";
    let (clients, skipped) = with_retry(store, || async {
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for_each_row(
            store,
            SQL,
            |row| {
                let prefix = bytes(row, Col(1, "peer_id"))?;
                if prefix.is_empty() {
                    // An empty prefix would approve every client.
                    return Err("empty peer_id".to_owned());
                }
                entries.push((Box::from(prefix), ClientId(int(row, Col(0, "id"))?)));
                Ok(())
            },
            &mut skipped,
        )
        .await?;
        Ok((Clients::new(entries), skipped))
    })
    .await?;
    log_skipped("approved_clients", &skipped);
    Ok(clients)
}
