//! Loading the snapshots (SPEC §7). Rows that cannot be used are skipped with a
//! warning naming the table, the row and the reason; the rest load.

use std::future::Future;

use futures_util::TryStreamExt;
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::query::Query;
use sqlx::Row;

use super::retry::Attempts;
use super::row::{bytes, id_for_log, int, text, Col, Multipliers};
use super::Store;
use crate::tracker::{
    Catalogue, CatalogueBuilder, ClientId, Clients, GroupFreeleech, GroupId, HitAndRuns, InfoHash,
    Passkey, Seen, StoredCounts, TorrentId, TorrentMeta, TorrentRow, TorrentType, User, UserId,
    Users,
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
async fn for_each_row<'q>(
    store: &Store,
    query: Query<'q, MySql, MySqlArguments>,
    mut each: impl FnMut(&MySqlRow) -> Result<(), String>,
    skipped: &mut Vec<(String, String)>,
) -> Result<usize, sqlx::Error> {
    let mut rows = query.fetch(&store.pool);
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
            sqlx::query(SQL),
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

/// The hit-and-runs of enabled users with downloads disabled: the only users whose
/// hit-and-runs change an answer (they may leech those torrents, nothing else).
/// `transfer_history` has no index on `hnr`, so asking for every user's would read
/// the whole table, the site's largest, at every reload; from the users, MariaDB reads
/// `users_main` once and then only those few users' rows, by primary key.
pub async fn load_hit_and_runs(store: &Store) -> Result<HitAndRuns, sqlx::Error> {
    const SQL: &str = "SELECT h.uid, h.fid FROM users_main AS u \
                       STRAIGHT_JOIN transfer_history AS h ON h.uid = u.ID \
                       WHERE u.Enabled = '1' AND u.DisableDownload <> 0 AND h.hnr = 1";
    let (pairs, skipped) = with_retry(store, || async {
        let mut pairs = HitAndRuns::default();
        let mut skipped = Vec::new();
        for_each_row(
            store,
            sqlx::query(SQL),
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

/// The torrents query runs as this many ID ranges at once, each on its own
/// connection and task: decoding a million rows is the slow part of a load, and one
/// task can only use one core.
const TORRENT_PARTS: u64 = 4;

/// Rows a part hands over at a time.
const TORRENT_CHUNK: usize = 4096;

/// Chunks decoded but not yet taken by the builder, over all parts.
const CHUNKS_IN_FLIGHT: usize = 8;

/// How a catalogue load learns which of the tracker's own writes its rows show.
#[derive(Clone, Debug)]
pub enum Marks {
    /// Each part reads, in the same consistent snapshot as its rows, the commit
    /// markers of these writers: the one adding completions to `Snatched`, the one
    /// setting `Status` back to 0 (their flush numbers are the writes' tags).
    Read([String; 2]),
    /// No markers: the writes tagged up to this (the last load number begun before
    /// this load) are taken as shown.
    Assumed(u64),
}

/// Rows of one part of a load, with what that part's rows show.
struct Chunk {
    part: usize,
    seen: Seen,
    rows: Vec<TorrentRow>,
}

/// The catalogue of every torrent, built aside as load number `load` (room made for
/// `expected` torrents), and the IDs refused as duplicates. The builder takes the
/// parts' rows as they come; nothing is swapped anywhere here, so a load that fails
/// changes nothing.
pub async fn load_catalogue(
    store: &Store,
    load: u64,
    marks: Marks,
    expected: usize,
) -> Result<(Catalogue, Vec<TorrentId>), sqlx::Error> {
    let marks = &marks;
    let (built, skipped) = with_retry(store, || async move {
        let mut builder = CatalogueBuilder::new(load, expected);
        let mut skipped = Vec::new();
        let Some((low, high)) = torrent_ids(store).await? else {
            return Ok((builder.finish(), skipped));
        };
        let (chunks, mut received) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let parts: Vec<_> = split_ids(low, high, TORRENT_PARTS)
            .into_iter()
            .enumerate()
            .map(|(part, (from, to))| {
                tokio::spawn(decode_torrents(
                    store.clone(),
                    part,
                    marks.clone(),
                    (from, to),
                    chunks.clone(),
                ))
            })
            .collect();
        // The channel closes when the last part is done with its sender.
        drop(chunks);
        let mut numbered: Vec<Option<u8>> = vec![None; parts.len()];
        while let Some(chunk) = received.recv().await {
            let Some(slot) = numbered.get_mut(chunk.part) else {
                continue;
            };
            let number = *slot.get_or_insert_with(|| builder.part(chunk.seen));
            for row in chunk.rows {
                builder.add(number, row);
            }
        }
        for part in parts {
            // A part that panicked fails this load; the next cycle tries again.
            let result = part.await.map_err(|_| sqlx::Error::WorkerCrashed)?;
            skipped.extend(result?);
        }
        Ok((builder.finish(), skipped))
    })
    .await?;
    log_skipped("torrents", &skipped);
    Ok(built)
}

/// The lowest and highest torrent ID, or None without torrents.
async fn torrent_ids(store: &Store) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row = sqlx::query("SELECT CAST(MIN(ID) AS SIGNED), CAST(MAX(ID) AS SIGNED) FROM torrents")
        .fetch_one(&store.pool)
        .await?;
    let low: Option<i64> = row.try_get(0)?;
    let high: Option<i64> = row.try_get(1)?;
    Ok(low.zip(high))
}

/// At most `parts` consecutive inclusive ranges covering `low..=high`, lowest first.
fn split_ids(low: i64, high: i64, parts: u64) -> Vec<(i64, i64)> {
    // In i128, where no bound of an i64 range overflows.
    let (low, high) = (i128::from(low), i128::from(high));
    let span = (high - low) / i128::from(parts.max(1)) + 1;
    let mut ranges = Vec::new();
    let mut from = low;
    loop {
        let to = (from + span - 1).min(high);
        // Both lie within the i64 bounds given.
        ranges.push((from as i64, to as i64));
        if to >= high {
            return ranges;
        }
        from = to + 1;
    }
}

/// Decodes the torrents with IDs in `from..=to`, by ascending ID, into chunks; returns
/// the rows it skipped. Stops early when nobody receives any more. With markers to
/// read, the markers and the rows are read in one consistent snapshot, so the part
/// shows exactly the flushes its markers say.
async fn decode_torrents(
    store: Store,
    part: usize,
    marks: Marks,
    range: (i64, i64),
    chunks: tokio::sync::mpsc::Sender<Chunk>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let mut conn = store.pool.acquire().await?;
    match marks {
        Marks::Assumed(tag) => stream_torrents(&mut conn, part, [tag; 2], range, &chunks).await,
        Marks::Read(writers) => {
            // A consistent snapshot needs REPEATABLE READ, whatever the server's default.
            // (Not `raw_sql`: its future is not `Send` for the compiler in a spawned task.)
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *conn)
                .await?;
            let mut transaction = sqlx::Connection::begin_with(
                &mut *conn,
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            )
            .await?;
            let seen = super::commits::epochs(&mut transaction, &writers).await?;
            let skipped = stream_torrents(&mut transaction, part, seen, range, &chunks).await?;
            transaction.commit().await?;
            Ok(skipped)
        }
    }
}

/// Streams one part's rows into chunks for the builder.
async fn stream_torrents(
    conn: &mut sqlx::MySqlConnection,
    part: usize,
    seen: Seen,
    (from, to): (i64, i64),
    chunks: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    const SQL: &str = "SELECT ID, info_hash, DownMultiplier, UpMultiplier, \
                       Snatched, Status, GroupID, TorrentType, Seeders, Leechers \
                       FROM torrents WHERE ID BETWEEN ? AND ? ORDER BY ID";
    let mut skipped = Vec::new();
    let mut multipliers = Multipliers::default();
    let mut chunk = Vec::with_capacity(TORRENT_CHUNK);
    let mut rows = sqlx::query(SQL).bind(from).bind(to).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        match torrent_row(&row, &mut multipliers) {
            Ok(torrent) => chunk.push(torrent),
            Err(reason) => skipped.push((id_for_log(&row), reason)),
        }
        if chunk.len() == TORRENT_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(TORRENT_CHUNK));
            let sent = chunks.send(Chunk {
                part,
                seen,
                rows: full,
            });
            if sent.await.is_err() {
                // The load was given up; the rest is moot.
                return Ok(skipped);
            }
        }
    }
    // Sent even empty, so that every part says what it saw.
    let _ = chunks
        .send(Chunk {
            part,
            seen,
            rows: chunk,
        })
        .await;
    Ok(skipped)
}

fn torrent_row(row: &MySqlRow, multipliers: &mut Multipliers) -> Result<TorrentRow, String> {
    let hash = bytes(row, Col(1, "info_hash"))?;
    let info_hash = <[u8; 20]>::try_from(hash)
        .map_err(|_| format!("info_hash is {} bytes, not 20", hash.len()))?;
    Ok(TorrentRow {
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
        // Only scrapes of torrents another tracker holds show them: a value out of
        // range is taken as 0 rather than costing the torrent.
        stored: StoredCounts {
            seeders: int(row, Col(8, "Seeders")).unwrap_or(0),
            leechers: int(row, Col(9, "Leechers")).unwrap_or(0),
        },
    })
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
            sqlx::query(SQL),
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
            sqlx::query(SQL),
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

#[cfg(test)]
mod tests {
    use super::split_ids;

    #[test]
    fn id_ranges_cover_everything_once_in_order() {
        assert_eq!(
            split_ids(1, 1_000_000, 2),
            [(1, 500_000), (500_001, 1_000_000)]
        );
        assert_eq!(split_ids(1, 3, 2), [(1, 2), (3, 3)]);
        assert_eq!(split_ids(7, 7, 2), [(7, 7)]);
        assert_eq!(split_ids(-5, 4, 2), [(-5, -1), (0, 4)]);
        assert_eq!(split_ids(1, 10, 3), [(1, 4), (5, 8), (9, 10)]);
        assert_eq!(
            split_ids(i64::MIN, i64::MAX, 2),
            [(i64::MIN, -1), (0, i64::MAX)]
        );
    }
}
