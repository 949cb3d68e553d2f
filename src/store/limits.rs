//! The largest value each column the tracker adds to can hold, so that no sum a
//! client can provoke ever makes MariaDB refuse a batch (error 1264/1690) and hold up
//! everyone's accounting: statements saturate at these maxima, and values bound for
//! new rows are clamped to them.
//!
//! The site owns its schema, so the maxima are read from `information_schema` at start;
//! a column it does not describe keeps the maximum of its type in
//! `database/schema.sql`.

use sqlx::Row;

use super::Store;

/// One column the tracker writes client-driven numbers to, with the maximum of its type
/// in `database/schema.sql`.
struct Column {
    table: &'static str,
    name: &'static str,
    fallback: u64,
}

const BIGINT_UNSIGNED: u64 = u64::MAX;
const BIGINT: u64 = i64::MAX as u64;
const INT_UNSIGNED: u64 = u32::MAX as u64;
const INT: u64 = i32::MAX as u64;

const COLUMNS: [Column; 17] = [
    col("users_main", "Uploaded", BIGINT_UNSIGNED),
    col("users_main", "Downloaded", BIGINT_UNSIGNED),
    col("users_main", "rawup", BIGINT_UNSIGNED),
    col("users_main", "rawdl", BIGINT_UNSIGNED),
    col("torrents", "Snatched", INT_UNSIGNED),
    col("torrents", "Seeders", INT),
    col("torrents", "Leechers", INT),
    col("transfer_history", "uploaded", BIGINT),
    col("transfer_history", "downloaded", BIGINT),
    col("transfer_history", "seedtime", INT),
    col("transfer_history", "activetime", INT),
    col("transfer_history", "snatched", INT),
    col("transfer_history", "remaining", BIGINT),
    col("transfer_ips", "uploaded", BIGINT_UNSIGNED),
    col("transfer_ips", "downloaded", BIGINT_UNSIGNED),
    col("transfer_ips6", "uploaded", BIGINT_UNSIGNED),
    col("transfer_ips6", "downloaded", BIGINT_UNSIGNED),
];

const fn col(table: &'static str, name: &'static str, fallback: u64) -> Column {
    Column {
        table,
        name,
        fallback,
    }
}

/// The maxima, in [`COLUMNS`] order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnLimits {
    max: [u64; COLUMNS.len()],
}

impl Default for ColumnLimits {
    /// The types of `database/schema.sql`.
    fn default() -> Self {
        ColumnLimits {
            max: COLUMNS.map(|c| c.fallback),
        }
    }
}

impl ColumnLimits {
    /// The largest value `table.column` holds. Columns are matched case-insensitively,
    /// as MariaDB does; one not in the list gets the signed BIGINT maximum.
    pub fn max(&self, table: &str, column: &str) -> u64 {
        COLUMNS
            .iter()
            .position(|c| c.table == table && c.name.eq_ignore_ascii_case(column))
            .map_or(BIGINT, |i| self.max[i])
    }

    fn set(&mut self, table: &str, column: &str, max: u64) {
        if let Some(i) = COLUMNS
            .iter()
            .position(|c| c.table == table && c.name.eq_ignore_ascii_case(column))
        {
            self.max[i] = max;
        }
    }
}

/// The maximum of an integer column from `information_schema` (`DATA_TYPE`,
/// `COLUMN_TYPE`); None for other types.
pub fn integer_max(data_type: &str, column_type: &str) -> Option<u64> {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let bits = match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        "bigint" => 64,
        _ => return None,
    };
    Some(if unsigned {
        u64::MAX >> (64 - bits)
    } else {
        u64::MAX >> (65 - bits)
    })
}

/// `statement`'s `column = column + value`, saturating at `max`: never more than the
/// column holds, never less than it held (if the site's column is wider than `max`
/// says, a value already above it is kept). `value` is an SQL expression of a
/// non-negative number at most `max`.
pub fn saturating_add(column: &str, value: &str, max: u64) -> String {
    format!(
        "{column} = IF({column} > {max} - {value}, GREATEST({column}, {max}), {column} + {value})"
    )
}

/// Reads the maxima of the columns the site's schema declares. Columns it does not
/// declare as integers keep their fallback.
pub async fn load(store: &Store) -> Result<ColumnLimits, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN \
         ('users_main', 'torrents', 'transfer_history', 'transfer_ips', 'transfer_ips6')",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut limits = ColumnLimits::default();
    for row in rows {
        // information_schema columns are text; a row we cannot read is skipped.
        let text = |i: usize| -> Option<String> {
            row.try_get::<String, _>(i).ok().or_else(|| {
                row.try_get::<Vec<u8>, _>(i)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
            })
        };
        let (Some(table), Some(column), Some(data_type), Some(column_type)) =
            (text(0), text(1), text(2), text(3))
        else {
            continue;
        };
        if let Some(max) = integer_max(&data_type, &column_type) {
            limits.set(&table, &column, max);
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_types() {
        assert_eq!(integer_max("bigint", "bigint(20) unsigned"), Some(u64::MAX));
        assert_eq!(integer_max("bigint", "bigint(20)"), Some(i64::MAX as u64));
        assert_eq!(integer_max("int", "int(30)"), Some(i32::MAX as u64));
        assert_eq!(integer_max("INT", "INT UNSIGNED"), Some(u32::MAX as u64));
        assert_eq!(
            integer_max("mediumint", "mediumint(8) unsigned"),
            Some(16_777_215)
        );
        assert_eq!(integer_max("tinyint", "tinyint(4)"), Some(127));
        assert_eq!(integer_max("decimal", "decimal(20,0)"), None);
    }

    #[test]
    fn defaults_follow_the_schema() {
        let limits = ColumnLimits::default();
        assert_eq!(limits.max("users_main", "uploaded"), u64::MAX);
        assert_eq!(limits.max("transfer_history", "uploaded"), i64::MAX as u64);
        assert_eq!(limits.max("transfer_history", "seedtime"), i32::MAX as u64);
        assert_eq!(limits.max("torrents", "Seeders"), i32::MAX as u64);
        assert_eq!(limits.max("nowhere", "x"), i64::MAX as u64);
    }

    #[test]
    fn the_saturating_update() {
        assert_eq!(
            saturating_add("t.rawup", "d.rawup", 255),
            "t.rawup = IF(t.rawup > 255 - d.rawup, GREATEST(t.rawup, 255), t.rawup + d.rawup)"
        );
    }
}
