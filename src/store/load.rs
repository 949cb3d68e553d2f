//! Loading the snapshots (SPEC §7). Rows that cannot be used are skipped with a
//! warning naming the table, the row and the reason; the rest load.

use std::future::Future;

use futures_util::TryStreamExt;
use sqlx::mysql::MySqlRow;

use super::retry::Attempts;
use super::row::{bytes, id_for_log, int, multiplier, text};
use super::Store;
use crate::tracker::{
    ClientId, Clients, GroupFreeleech, GroupId, HitAndRuns, InfoHash, Multipliers, Passkey,
    TorrentId, TorrentMeta, TorrentRow, TorrentType, User, UserId, Users,
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
async fn for_each_row(
    store: &Store,
    sql: &'static str,
    mut each: impl FnMut(&MySqlRow) -> Result<(), String>,
    skipped: &mut Vec<(String, String)>,
    id_column: &str,
) -> Result<usize, sqlx::Error> {
    let mut rows = sqlx::query(sql).fetch(&store.pool);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        count += 1;
        if let Err(reason) = each(&row) {
            skipped.push((id_for_log(&row, id_column), reason));
        }
    }
    Ok(count)
}

fn log_skipped(table: &str, skipped: &[(String, String)]) {
    for (id, reason) in skipped {
        tracing::warn!("Skipping {} row {}: {}", table, id, reason);
    }
}

fn flag(row: &MySqlRow, column: &str) -> Result<bool, String> {
    int::<i128>(row, column).map(|v| v != 0)
}

pub async fn load_users(store: &Store) -> Result<Users, sqlx::Error> {
    const SQL: &str =
        "SELECT ID, torrent_pass, DownMultiplier, UpMultiplier, DisableDownload, TrackerHide \
                       FROM users_main WHERE Enabled = '1' ORDER BY ID";
    let (users, skipped) = with_retry(store, || async {
        let mut users = Users::default();
        let mut skipped = Vec::new();
        for_each_row(
            store,
            SQL,
            |row| {
                let passkey = bytes(row, "torrent_pass")?;
                if passkey.is_empty() {
                    return Err("empty torrent_pass".to_owned());
                }
                let user = User {
                    id: UserId(int(row, "ID")?),
                    down_multiplier: multiplier(row, "DownMultiplier")?,
                    up_multiplier: multiplier(row, "UpMultiplier")?,
                    disable_download: flag(row, "DisableDownload")?,
                    tracker_hide: flag(row, "TrackerHide")?,
                };
                if users.insert(Passkey::new(passkey), user) {
                    Ok(())
                } else {
                    Err("duplicate torrent_pass (a lower ID has it)".to_owned())
                }
            },
            &mut skipped,
            "ID",
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
                pairs.insert(UserId(int(row, "uid")?), TorrentId(int(row, "fid")?));
                Ok(())
            },
            &mut skipped,
            "uid",
        )
        .await?;
        Ok((pairs, skipped))
    })
    .await?;
    log_skipped("transfer_history", &skipped);
    Ok(pairs)
}

/// Validated torrent rows by ascending ID; the caller merges them with the swarms.
pub async fn load_torrents(store: &Store) -> Result<Vec<TorrentRow>, sqlx::Error> {
    const SQL: &str = "SELECT ID, info_hash, DownMultiplier, UpMultiplier, Snatched, Status, GroupID, TorrentType \
                       FROM torrents ORDER BY ID";
    let (rows, skipped) = with_retry(store, || async {
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        for_each_row(
            store,
            SQL,
            |row| {
                let hash = bytes(row, "info_hash")?;
                let info_hash = <[u8; 20]>::try_from(hash)
                    .map_err(|_| format!("info_hash is {} bytes, not 20", hash.len()))?;
                rows.push(TorrentRow {
                    id: TorrentId(int(row, "ID")?),
                    info_hash: InfoHash(info_hash),
                    meta: TorrentMeta {
                        group_id: GroupId(int(row, "GroupID")?),
                        torrent_type: TorrentType::from_name(text(row, "TorrentType")?),
                        up_multiplier: multiplier(row, "UpMultiplier")?,
                        down_multiplier: multiplier(row, "DownMultiplier")?,
                    },
                    snatched: int(row, "Snatched")?,
                    status: int(row, "Status")?,
                });
                Ok(())
            },
            &mut skipped,
            "ID",
        )
        .await?;
        Ok((rows, skipped))
    })
    .await?;
    log_skipped("torrents", &skipped);
    Ok(rows)
}

pub async fn load_group_freeleech(store: &Store) -> Result<GroupFreeleech, sqlx::Error> {
    const SQL: &str = "SELECT ID, GroupID, `Type`, DownMultiplier, UpMultiplier FROM torrent_group_freeleech ORDER BY ID";
    let (groups, skipped) = with_retry(store, || async {
        let mut groups = GroupFreeleech::default();
        let mut skipped = Vec::new();
        for_each_row(
            store,
            SQL,
            |row| {
                groups.insert(
                    GroupId(int(row, "GroupID")?),
                    TorrentType::from_name(text(row, "Type")?),
                    Multipliers {
                        down: multiplier(row, "DownMultiplier")?,
                        up: multiplier(row, "UpMultiplier")?,
                    },
                );
                Ok(())
            },
            &mut skipped,
            "ID",
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
        Some(row) => match int::<i128>(&row, "mod_setting") {
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
                let prefix = bytes(row, "peer_id")?;
                if prefix.is_empty() {
                    // An empty prefix would approve every client.
                    return Err("empty peer_id".to_owned());
                }
                entries.push((Box::from(prefix), ClientId(int(row, "id")?)));
                Ok(())
            },
            &mut skipped,
            "id",
        )
        .await?;
        Ok((Clients::new(entries), skipped))
    })
    .await?;
    log_skipped("approved_clients", &skipped);
    Ok(clients)
}
