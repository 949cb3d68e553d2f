//! Reading columns defensively: a row whose value is NULL, of an unexpected type or out
//! of range is reported with a reason (and skipped by the loader), never a panic.

use sqlx::mysql::MySqlRow;
use sqlx::{Column, Row, TypeInfo};

/// A column of a loader's result: its position (read by position: looking a name up
/// for every value of a million rows adds up) and its name for messages.
#[derive(Clone, Copy, Debug)]
pub struct Col(pub usize, pub &'static str);

/// An integer column converted to `T`, whatever the column's integer type and sign.
/// The column's declared type picks the decoding (reading the value as the wrong
/// sign is an error sqlx builds a message for, too slow for a million rows).
pub fn int<T: TryFrom<i128>>(row: &MySqlRow, Col(index, name): Col) -> Result<T, String> {
    let kind = row.columns().get(index).map(|c| c.type_info().name());
    let integer = |kind: &str| {
        [
            "TINYINT",
            "SMALLINT",
            "MEDIUMINT",
            "INT",
            "BIGINT",
            "BOOLEAN",
        ]
        .iter()
        .any(|t| {
            kind.strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest == " UNSIGNED")
        })
    };
    let value: Option<i128> = match kind {
        // Unchecked: the declared type was just checked, and the binary protocol sends
        // each integer type at its own width.
        Some(kind) if integer(kind) && kind.ends_with("UNSIGNED") => row
            .try_get_unchecked::<Option<u64>, _>(index)
            .map(|v| v.map(i128::from))
            .map_err(|e| format!("{name}: {e}"))?,
        Some(kind) if integer(kind) => row
            .try_get_unchecked::<Option<i64>, _>(index)
            .map(|v| v.map(i128::from))
            .map_err(|e| format!("{name}: {e}"))?,
        _ => match row.try_get::<Option<i64>, _>(index) {
            Ok(v) => v.map(i128::from),
            Err(e) => return Err(format!("{name}: {e}")),
        },
    };
    let value = value.ok_or_else(|| format!("{name} is NULL"))?;
    T::try_from(value).map_err(|_| format!("{name} out of range ({value})"))
}

/// Reads FLOAT multipliers as the decimal MariaDB shows for them (0.7, not
/// 0.699999988…): the shortest text that round-trips the single-precision value, read
/// as f64. This is what the original tracker credited, so it is part of the accounting
/// contract. A site has few distinct multipliers, so conversions are remembered.
#[derive(Default)]
pub struct Multipliers {
    seen: Vec<(u32, f64)>,
}

impl Multipliers {
    const REMEMBERED: usize = 64;

    pub fn read(&mut self, row: &MySqlRow, Col(index, name): Col) -> Result<f64, String> {
        let value = if let Ok(v) = row.try_get::<Option<f32>, _>(index) {
            let v = v.ok_or_else(|| format!("{name} is NULL"))?;
            self.decimal(v).map_err(|e| format!("{name}: {e}"))?
        } else {
            match row.try_get::<Option<f64>, _>(index) {
                Ok(v) => v.ok_or_else(|| format!("{name} is NULL"))?,
                Err(e) => return Err(format!("{name}: {e}")),
            }
        };
        if value.is_finite() {
            Ok(value)
        } else {
            Err(format!("{name} is not a finite number ({value})"))
        }
    }

    fn decimal(&mut self, v: f32) -> Result<f64, std::num::ParseFloatError> {
        let bits = v.to_bits();
        if let Some(&(_, known)) = self.seen.iter().find(|(b, _)| *b == bits) {
            return Ok(known);
        }
        // Display of f32 is the shortest round-tripping decimal; it always parses.
        let value = v.to_string().parse::<f64>()?;
        if self.seen.len() < Self::REMEMBERED {
            self.seen.push((bits, value));
        }
        Ok(value)
    }
}

/// A text or binary column's raw bytes.
pub fn bytes(row: &MySqlRow, Col(index, name): Col) -> Result<&[u8], String> {
    // Unchecked: CHAR, VARCHAR, BLOB and ENUM all arrive as length-prefixed bytes, and
    // we want the bytes whatever the declared type.
    match row.try_get_unchecked::<Option<&[u8]>, _>(index) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(format!("{name} is NULL")),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// A column as UTF-8 text.
pub fn text(row: &MySqlRow, col: Col) -> Result<&str, String> {
    std::str::from_utf8(bytes(row, col)?).map_err(|_| format!("{} is not UTF-8", col.1))
}

/// The row's id (its first column) for "Skipping <table> row <id>" messages, or `?`.
pub fn id_for_log(row: &MySqlRow) -> String {
    int::<i128>(row, Col(0, "id")).map_or_else(|_| "?".to_owned(), |id| id.to_string())
}
