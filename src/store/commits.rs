//! Commit markers: the table `chihaya_commits` holds, per writer (one per accounting
//! table, and per tracker when several share the database: [`Store::marker`]), the
//! number of the last flush it committed. A flush writes its rows and its
//! marker in one transaction, so the marker tells for certain whether the rows are in:
//! after a connection lost while committing, the writer reads it instead of writing
//! the rows a second time, and at start the journal's replay skips what it covers.

use std::collections::HashMap;

use sqlx::mysql::MySqlConnection;

use super::Store;

/// The marker table's name (optional: without it, accounting is at-least-once).
pub const TABLE: &str = "chihaya_commits";

/// Whether the database has the marker table.
pub async fn exists(store: &Store) -> Result<bool, sqlx::Error> {
    super::table_exists(store, TABLE).await
}

/// The last committed flush of each of this tracker's `writers`, by writer (0 for one
/// without a row).
pub async fn load(store: &Store, writers: &[&str]) -> Result<HashMap<String, u64>, sqlx::Error> {
    let mut epochs = HashMap::new();
    for writer in writers {
        epochs.insert(
            (*writer).to_owned(),
            read(store, &store.marker(writer)).await?,
        );
    }
    Ok(epochs)
}

/// The marker row holding the database's journal id rather than a flush number.
const JOURNAL_ID: &str = "journal_id";

/// The id a journal written for this database carries, made up (at random) the first
/// time: a journal directory pointed at another database is then refused, not
/// replayed into it. Each instance sharing the database has its own, so that one never
/// replays another's journal against its own markers.
pub async fn journal_id(store: &Store) -> Result<u64, sqlx::Error> {
    // Never 0, and within what every client reads as a positive integer.
    let candidate = rand::random::<u64>() >> 2 | 1;
    let row = store.marker(JOURNAL_ID);
    sqlx::query("INSERT IGNORE INTO chihaya_commits (writer, epoch) VALUES (?, ?)")
        .bind(&row)
        .bind(candidate)
        .execute(&store.pool)
        .await?;
    read(store, &row).await
}

/// The value of `writer`'s row (0 when it has none).
async fn read(store: &Store, writer: &str) -> Result<u64, sqlx::Error> {
    let epoch: Option<u64> =
        sqlx::query_scalar("SELECT epoch FROM chihaya_commits WHERE writer = ?")
            .bind(writer)
            .fetch_optional(&store.pool)
            .await?;
    Ok(epoch.unwrap_or(0))
}

/// Gives every writer its marker row (at 0), so that the locking read of
/// [`lock`] always finds a row and locks only it.
pub async fn create_rows(store: &Store, writers: &[&str]) -> Result<(), sqlx::Error> {
    for writer in writers {
        sqlx::query("INSERT IGNORE INTO chihaya_commits (writer, epoch) VALUES (?, 0)")
            .bind(store.marker(writer))
            .execute(&store.pool)
            .await?;
    }
    Ok(())
}

/// The markers of `writers` (0 for one without a row), read in `conn`'s transaction:
/// a catalogue load reads them in the snapshot it reads its rows in.
pub async fn epochs(
    conn: &mut MySqlConnection,
    writers: &[String; 2],
) -> Result<[u64; 2], sqlx::Error> {
    let rows: Vec<(String, u64)> =
        sqlx::query_as("SELECT writer, epoch FROM chihaya_commits WHERE writer IN (?, ?)")
            .bind(&writers[0])
            .bind(&writers[1])
            .fetch_all(conn)
            .await?;
    let epoch = |writer: &str| {
        rows.iter()
            .find(|(name, _)| name == writer)
            .map_or(0, |&(_, epoch)| epoch)
    };
    Ok([epoch(&writers[0]), epoch(&writers[1])])
}

/// Inside a flush's transaction, first: the writer's last committed flush, its row
/// locked until the transaction ends. An earlier attempt whose connection was lost
/// has then either committed (and this shows it) or is rolled back: it can never
/// commit after this attempt has looked.
pub async fn lock(conn: &mut MySqlConnection, writer: &str) -> Result<u64, sqlx::Error> {
    let epoch: Option<u64> =
        sqlx::query_scalar("SELECT epoch FROM chihaya_commits WHERE writer = ? FOR UPDATE")
            .bind(writer)
            .persistent(true)
            .fetch_optional(conn)
            .await?;
    Ok(epoch.unwrap_or(0))
}

/// Records, inside the flush's transaction, that `writer` committed flush `epoch`.
pub async fn mark(conn: &mut MySqlConnection, writer: &str, epoch: u64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO chihaya_commits (writer, epoch) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE epoch = GREATEST(epoch, VALUES(epoch))",
    )
    .bind(writer)
    .bind(epoch)
    .persistent(true)
    .execute(conn)
    .await?;
    Ok(())
}
