//! Statements that change the site's tables. Each is one round trip per batch and
//! binds every value.

use sqlx::{MySql, QueryBuilder};

use super::Store;
use crate::tracker::TorrentId;

/// Marks pruned torrents active again (`Status` 1 → 0). Only rows still at 1 change:
/// a staff member may have set another status meanwhile. Returns the rows changed.
pub async fn unprune(store: &Store, ids: &[TorrentId]) -> Result<u64, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql =
        QueryBuilder::<MySql>::new("UPDATE torrents SET Status = 0 WHERE Status = 1 AND ID IN (");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(id.0);
    }
    sql.push(")");
    let done = sql.build().persistent(false).execute(&store.pool).await?;
    Ok(done.rows_affected())
}
