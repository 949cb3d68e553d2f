//! Statements that change the site's tables (SPEC §8.2–8.8). Each batch is one
//! statement, one round trip, with every value bound. Rows arrive sorted by key, so
//! concurrent writers lock rows in the same order and deadlock less.
//!
//! Statements are prepared once per connection and reused. Preparing is what costs:
//! the server parses the text and sends back a definition for every placeholder, so a
//! statement prepared afresh for each batch of thousands of rows costs more than the
//! rows themselves. Batches therefore come in a few fixed sizes ([`batch_sizes`]),
//! whose statements stay in the connection's cache.

use sqlx::mysql::MySqlConnection;
use sqlx::query_builder::Separated;
use sqlx::{MySql, QueryBuilder};

use super::limits::saturating_add;
use super::Store;
use crate::tracker::{
    HistoryDelta, SnatchDelta, TorrentDelta, TorrentId, TransferIp6Delta, TransferIpDelta,
    UserDelta, UserId,
};

/// MariaDB refuses prepared statements with more placeholders than this.
pub const MAX_BINDS: usize = 65_535;

/// Largest batch in one statement: large enough that a statement carries hundreds of
/// rows, small enough that the prepared statements of every size stay cheap to keep.
pub const MAX_BATCH_ROWS: usize = 1024;

/// Splits `rows` rows into statement sizes that are powers of two no larger than
/// `max` (itself rounded down to a power of two), largest first: every size is one of
/// a dozen, so every statement text is one the connection has prepared before.
pub fn batch_sizes(mut rows: usize, max: usize) -> Vec<usize> {
    let max = max.clamp(1, MAX_BATCH_ROWS);
    let cap = 1usize << (usize::BITS - 1 - max.leading_zeros());
    let mut sizes = Vec::new();
    while rows > 0 {
        let size = cap.min(1usize << (usize::BITS - 1 - rows.leading_zeros()));
        sizes.push(size);
        rows -= size;
    }
    sizes
}

/// Runs a statement, prepared once per connection and text.
async fn execute(
    conn: &mut MySqlConnection,
    mut sql: QueryBuilder<'_, MySql>,
) -> Result<u64, sqlx::Error> {
    let done = sql.build().persistent(true).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Binds one row's values into a `SELECT`; the first row also names the columns.
pub struct RowBinder<'q, 'a> {
    sql: &'q mut QueryBuilder<'a, MySql>,
    names: Option<&'q [&'q str]>,
    column: usize,
}

impl<'a> RowBinder<'_, 'a> {
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + sqlx::Encode<'a, MySql> + sqlx::Type<MySql>,
    {
        if self.column > 0 {
            self.sql.push(", ");
        }
        self.sql.push_bind(value);
        if let Some(name) = self.names.and_then(|names| names.get(self.column)) {
            self.sql.push(format_args!(" AS {name}"));
        }
        self.column += 1;
        self
    }
}

/// Starts `UPDATE <table> AS t JOIN (<rows>) AS d ON t.<id> = d.id SET `, so only
/// rows that exist are touched and none is ever inserted. The derived table is one
/// `SELECT ? AS id, ? AS <column>, ...` naming the columns, then
/// `UNION ALL VALUES (?, ...), ...` for the other rows: MariaDB spends about a quarter
/// less on a table value constructor than on a `UNION ALL SELECT` per row (measured
/// with 1024-row batches on users_main). The leading SELECT types the columns from
/// the bound values; a bare VALUES list would take them from its first row's values
/// and refuse longer ones.
fn update_join<'a, R>(
    table: &str,
    id_column: &str,
    columns: &[&str],
    rows: &'a [R],
    mut bind: impl FnMut(&mut RowBinder<'_, 'a>, &'a R),
) -> QueryBuilder<'a, MySql> {
    let mut sql = QueryBuilder::<MySql>::new(format!("UPDATE {table} AS t JOIN ("));
    for (n, row) in rows.iter().enumerate() {
        sql.push(match n {
            0 => "SELECT ",
            1 => " UNION ALL VALUES (",
            _ => ", (",
        });
        let mut binder = RowBinder {
            sql: &mut sql,
            names: (n == 0).then_some(columns),
            column: 0,
        };
        bind(&mut binder, row);
        if n > 0 {
            sql.push(")");
        }
    }
    sql.push(format_args!(") AS d ON t.{id_column} = d.id SET "));
    sql
}

/// `torrents`: Snatched += delta, Seeders/Leechers = newest, last_action = max.
/// Existing rows only.
pub async fn torrents(
    store: &Store,
    conn: &mut MySqlConnection,
    rows: &[TorrentDelta],
) -> Result<u64, sqlx::Error> {
    let [snatched, seeders, leechers] =
        ["Snatched", "Seeders", "Leechers"].map(|column| store.limits.max("torrents", column));
    let columns = ["id", "snatched", "seeders", "leechers", "last_action"];
    let mut sql = update_join("torrents", "ID", &columns, rows, |values, row| {
        values
            .bind(row.id.0)
            .bind(u64::from(row.snatched).min(snatched))
            .bind(u64::from(row.seeders).min(seeders))
            .bind(u64::from(row.leechers).min(leechers))
            .bind(row.last_action);
    });
    sql.push(format_args!(
        "{}, t.Seeders = d.seeders, t.Leechers = d.leechers, \
         t.last_action = GREATEST(t.last_action, d.last_action)",
        saturating_add("t.Snatched", "d.snatched", snatched)
    ));
    execute(conn, sql).await
}

/// `users_main`: credited and raw transfer added. Existing rows only.
pub async fn users(
    store: &Store,
    conn: &mut MySqlConnection,
    rows: &[UserDelta],
) -> Result<u64, sqlx::Error> {
    let names = ["Uploaded", "Downloaded", "rawup", "rawdl"];
    let max = names.map(|column| store.limits.max("users_main", column));
    let columns = ["id", "uploaded", "downloaded", "rawup", "rawdl"];
    let mut sql = update_join("users_main", "ID", &columns, rows, |values, row| {
        values
            .bind(row.id.0)
            .bind(row.uploaded.min(max[0]))
            .bind(row.downloaded.min(max[1]))
            .bind(row.rawup.min(max[2]))
            .bind(row.rawdl.min(max[3]));
    });
    let set: Vec<String> = names
        .iter()
        .zip(&columns[1..])
        .zip(max)
        .map(|((column, value), max)| {
            saturating_add(&format!("t.{column}"), &format!("d.{value}"), max)
        })
        .collect();
    sql.push(set.join(", "));
    execute(conn, sql).await
}

/// `transfer_history` upsert on (uid, fid): sums add, last values replace, `starttime`
/// only on insert; `hnr` and `snatched_time` are never written here.
pub async fn history(
    store: &Store,
    conn: &mut MySqlConnection,
    rows: &[HistoryDelta],
) -> Result<u64, sqlx::Error> {
    let [uploaded, downloaded, activetime, seedtime, snatched, remaining] = [
        "uploaded",
        "downloaded",
        "activetime",
        "seedtime",
        "snatched",
        "remaining",
    ]
    .map(|column| store.limits.max("transfer_history", column));
    let time = |seconds: i64| u64::try_from(seconds).unwrap_or(0);
    let mut sql = QueryBuilder::<MySql>::new(
        "INSERT INTO transfer_history (uid, fid, uploaded, downloaded, seeding, starttime, last_announce, \
         activetime, seedtime, active, snatched, remaining) ",
    );
    sql.push_values(rows, |mut values, row| {
        values.push_bind(row.user.0);
        values.push_bind(row.torrent.0);
        values.push_bind(row.uploaded.min(uploaded));
        values.push_bind(row.downloaded.min(downloaded));
        values.push_bind(u8::from(row.seeding));
        values.push_bind(row.start_time);
        values.push_bind(row.last_announce);
        values.push_bind(time(row.active_time).min(activetime));
        values.push_bind(time(row.seed_time).min(seedtime));
        values.push_bind(u8::from(row.active));
        values.push_bind(u64::from(row.snatched).min(snatched));
        values.push_bind(row.remaining.min(remaining));
    });
    let add = |column, max| saturating_add(column, &format!("VALUES({column})"), max);
    sql.push(format_args!(
        " ON DUPLICATE KEY UPDATE {}, {}, seeding = VALUES(seeding), \
         last_announce = VALUES(last_announce), {}, {}, active = VALUES(active), \
         {}, remaining = VALUES(remaining)",
        add("uploaded", uploaded),
        add("downloaded", downloaded),
        add("activetime", activetime),
        add("seedtime", seedtime),
        add("snatched", snatched),
    ));
    execute(conn, sql).await
}

/// `transfer_ips` upsert on (uid, fid, ip, client_id).
pub async fn transfer_ips(
    store: &Store,
    conn: &mut MySqlConnection,
    rows: &[TransferIpDelta],
) -> Result<u64, sqlx::Error> {
    let sql = transfer_ip_upsert(store, "transfer_ips", rows, |values, ip| {
        values.push_bind(*ip);
    });
    execute(conn, sql).await
}

/// `transfer_ips6` upsert: the same, with the address as binary(16).
pub async fn transfer_ips6(
    store: &Store,
    conn: &mut MySqlConnection,
    rows: &[TransferIp6Delta],
) -> Result<u64, sqlx::Error> {
    let sql = transfer_ip_upsert(store, "transfer_ips6", rows, |values, ip| {
        values.push_bind(&ip[..]);
    });
    execute(conn, sql).await
}

/// Whether the database has the optional `transfer_ips6` table.
pub async fn has_transfer_ips6(store: &Store) -> Result<bool, sqlx::Error> {
    super::table_exists(store, "transfer_ips6").await
}

fn transfer_ip_upsert<'a, A>(
    store: &Store,
    table: &str,
    rows: &'a [TransferIpDelta<A>],
    bind_ip: impl Fn(&mut Separated<'_, 'a, MySql, &'static str>, &'a A),
) -> QueryBuilder<'a, MySql> {
    let [uploaded, downloaded] =
        ["uploaded", "downloaded"].map(|column| store.limits.max(table, column));
    let mut sql = QueryBuilder::<MySql>::new(format!(
        "INSERT INTO {table} (uid, fid, ip, client_id, port, uploaded, downloaded, starttime, last_announce) "
    ));
    sql.push_values(rows, |mut values, row| {
        values.push_bind(row.user.0);
        values.push_bind(row.torrent.0);
        bind_ip(&mut values, &row.ip);
        values.push_bind(row.client.0);
        values.push_bind(row.port);
        values.push_bind(row.uploaded.min(uploaded));
        values.push_bind(row.downloaded.min(downloaded));
        values.push_bind(row.start_time);
        values.push_bind(row.last_announce);
    });
    let add = |column, max| saturating_add(column, &format!("VALUES({column})"), max);
    sql.push(format_args!(
        " ON DUPLICATE KEY UPDATE {}, {}, port = VALUES(port), \
         last_announce = VALUES(last_announce)",
        add("uploaded", uploaded),
        add("downloaded", downloaded),
    ));
    sql
}

/// Completions into `transfer_history`: a new row gets the completion time and start
/// time; an existing one keeps its first completion (`snatched_time` set only while it
/// is 0 or NULL) and its start time.
pub async fn snatches(
    conn: &mut MySqlConnection,
    rows: &[SnatchDelta],
) -> Result<u64, sqlx::Error> {
    let mut sql = QueryBuilder::<MySql>::new(
        "INSERT INTO transfer_history (uid, fid, snatched_time, starttime) ",
    );
    sql.push_values(rows, |mut values, row| {
        values.push_bind(row.user.0);
        values.push_bind(row.torrent.0);
        values.push_bind(row.snatched_time);
        values.push_bind(row.start_time);
    });
    sql.push(
        " ON DUPLICATE KEY UPDATE snatched_time = \
         IF(snatched_time = 0 OR snatched_time IS NULL, VALUES(snatched_time), snatched_time)",
    );
    execute(conn, sql).await
}

fn id_list(sql: &mut QueryBuilder<'_, MySql>, ids: &[TorrentId]) {
    sql.push("(");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(id.0);
    }
    sql.push(")");
}

/// Marks pruned torrents active again (`Status` 1 → 0). Only rows still at 1 change:
/// a staff member may have set another status meanwhile. Returns the rows changed.
pub async fn unprune(conn: &mut MySqlConnection, ids: &[TorrentId]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql =
        QueryBuilder::<MySql>::new("UPDATE torrents SET Status = 0 WHERE Status = 1 AND ID IN ");
    id_list(&mut sql, ids);
    execute(conn, sql).await
}

/// With `flush_groups`: the group of each torrent gets the database's current time,
/// anime groups in `torrents_group`, music groups in `torrents_group2`. No inserts.
pub async fn bump_groups(
    conn: &mut MySqlConnection,
    ids: &[TorrentId],
) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut changed = 0;
    for (table, kind) in [("torrents_group", "anime"), ("torrents_group2", "music")] {
        let mut sql = QueryBuilder::<MySql>::new(format!(
            "UPDATE {table} AS g JOIN torrents AS t ON g.ID = t.GroupID \
             SET g.Time = UNIX_TIMESTAMP() WHERE t.TorrentType = '{kind}' AND t.ID IN "
        ));
        id_list(&mut sql, ids);
        changed += execute(&mut *conn, sql).await?;
    }
    Ok(changed)
}

/// The rows of (user, torrent) pairs whose peers a purge took out of memory stop
/// being active, unless they announced since `cutoff` (another peer of the user, say).
/// Looked up by primary key: no row but these is read. Returns the rows changed.
pub async fn deactivate_history_rows(
    conn: &mut MySqlConnection,
    cutoff: i64,
    keys: &[(UserId, TorrentId)],
) -> Result<u64, sqlx::Error> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut sql = QueryBuilder::<MySql>::new(
        "UPDATE transfer_history SET active = 0 WHERE active = 1 AND last_announce < ",
    );
    sql.push_bind(cutoff);
    sql.push(" AND (uid, fid) IN (");
    let mut list = sql.separated(", ");
    for (user, torrent) in keys {
        list.push("(");
        list.push_bind_unseparated(user.0);
        list.push_unseparated(", ");
        list.push_bind_unseparated(torrent.0);
        list.push_unseparated(")");
    }
    sql.push(")");
    execute(conn, sql).await
}

/// Every row idle since before `cutoff` stops being active: the whole table is read.
/// For rows whose peers left memory without a purge naming them (see
/// `accounting::Deactivation`).
pub async fn deactivate_history(store: &Store, cutoff: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE transfer_history SET active = 0 WHERE last_announce < ? AND active = 1",
    )
    .bind(cutoff)
    .execute(&store.pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_in_powers_of_two() {
        assert_eq!(batch_sizes(0, 5000), Vec::<usize>::new());
        assert_eq!(batch_sizes(1, 5000), [1]);
        assert_eq!(batch_sizes(2500, 5000), [1024, 1024, 256, 128, 64, 4]);
        assert_eq!(batch_sizes(7, 5000), [4, 2, 1]);
        assert_eq!(batch_sizes(100, 25), [16, 16, 16, 16, 16, 16, 4]);
        assert_eq!(batch_sizes(3, 1), [1, 1, 1]);
        assert_eq!(batch_sizes(3, 0), [1, 1, 1]);
    }

    #[test]
    fn derived_table_names_its_columns_once() {
        let rows = [
            UserDelta {
                id: UserId(1),
                uploaded: 1,
                downloaded: 2,
                rawup: 3,
                rawdl: 4,
            },
            UserDelta {
                id: UserId(2),
                uploaded: 5,
                downloaded: 6,
                rawup: 7,
                rawdl: 8,
            },
            UserDelta {
                id: UserId(3),
                uploaded: 9,
                downloaded: 10,
                rawup: 11,
                rawdl: 12,
            },
        ];
        let sql = update_join(
            "users_main",
            "ID",
            &["id", "a", "b", "c", "d"],
            &rows,
            |values, row| {
                values
                    .bind(row.id.0)
                    .bind(row.uploaded)
                    .bind(row.downloaded)
                    .bind(row.rawup)
                    .bind(row.rawdl);
            },
        );
        assert_eq!(
            sql.sql(),
            "UPDATE users_main AS t JOIN (SELECT ? AS id, ? AS a, ? AS b, ? AS c, ? AS d \
             UNION ALL VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)) AS d ON t.ID = d.id SET "
        );
    }
}
