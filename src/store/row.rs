//! Reading columns defensively: a row whose value is NULL, of an unexpected type or out
//! of range is reported with a reason (and skipped by the loader), never a panic.

use sqlx::mysql::MySqlRow;
use sqlx::Row;

/// An integer column converted to `T`, whatever the column's integer type and sign.
pub fn int<T: TryFrom<i128>>(row: &MySqlRow, column: &str) -> Result<T, String> {
    let value: i128 = if let Ok(v) = row.try_get::<Option<i64>, _>(column) {
        i128::from(v.ok_or_else(|| format!("{column} is NULL"))?)
    } else if let Ok(v) = row.try_get::<Option<u64>, _>(column) {
        i128::from(v.ok_or_else(|| format!("{column} is NULL"))?)
    } else {
        match row.try_get::<Option<bool>, _>(column) {
            Ok(v) => i128::from(v.ok_or_else(|| format!("{column} is NULL"))?),
            Err(e) => return Err(format!("{column}: {e}")),
        }
    };
    T::try_from(value).map_err(|_| format!("{column} out of range ({value})"))
}

/// A FLOAT multiplier as the decimal MariaDB shows for it (0.7, not 0.699999988…):
/// the shortest text that round-trips the single-precision value, read as f64. This
/// is what the original tracker credited, so it is part of the accounting contract.
pub fn multiplier(row: &MySqlRow, column: &str) -> Result<f64, String> {
    let value = if let Ok(v) = row.try_get::<Option<f32>, _>(column) {
        let v = v.ok_or_else(|| format!("{column} is NULL"))?;
        // Display of f32 is the shortest round-tripping decimal; it always parses.
        v.to_string()
            .parse::<f64>()
            .map_err(|e| format!("{column}: {e}"))?
    } else {
        match row.try_get::<Option<f64>, _>(column) {
            Ok(v) => v.ok_or_else(|| format!("{column} is NULL"))?,
            Err(e) => return Err(format!("{column}: {e}")),
        }
    };
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("{column} is not a finite number ({value})"))
    }
}

/// A text or binary column's raw bytes.
pub fn bytes<'r>(row: &'r MySqlRow, column: &str) -> Result<&'r [u8], String> {
    // Unchecked: CHAR, VARCHAR, BLOB and ENUM all arrive as length-prefixed bytes, and
    // we want the bytes whatever the declared type.
    match row.try_get_unchecked::<Option<&[u8]>, _>(column) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(format!("{column} is NULL")),
        Err(e) => Err(format!("{column}: {e}")),
    }
}

/// A column as UTF-8 text.
pub fn text<'r>(row: &'r MySqlRow, column: &str) -> Result<&'r str, String> {
    std::str::from_utf8(bytes(row, column)?).map_err(|_| format!("{column} is not UTF-8"))
}

/// The row's id for "Skipping <table> row <id>" messages, or `?` when unreadable.
pub fn id_for_log(row: &MySqlRow, column: &str) -> String {
    int::<i128>(row, column).map_or_else(|_| "?".to_owned(), |id| id.to_string())
}
