//! A push body to operations. The body is one operation object, or an array of them;
//! each names its operation in `op`. A field that is missing, unknown, repeated or of
//! the wrong kind refuses the whole body, naming the field (`[2].info_hash` in an
//! array), so a site sees its mistake and nothing is half applied.

use std::fmt;

use super::{Operation, MAX_OPERATIONS};
use crate::config::json::Json;
use crate::tracker::{
    ClientChange, ClientId, GroupId, InfoHash, Passkey, PushedTorrent, TorrentId, TorrentMeta,
    TorrentType, User, UserId,
};

/// Why a body was refused, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadField {
    /// The field, as a path into the body (`""`: the body itself).
    pub field: String,
    pub problem: String,
}

impl fmt::Display for BadField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field.as_str() {
            "" => f.write_str(&self.problem),
            field => write!(f, "{}: {}", field, self.problem),
        }
    }
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> BadField {
    BadField {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The operations of a request body.
#[derive(Debug)]
pub struct Request {
    pub ops: Vec<Operation>,
    /// Whether the body was an array (field paths start `[i].`).
    pub array: bool,
}

/// The operations of a request body.
pub fn parse(body: &[u8]) -> Result<Request, BadField> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| bad("", format!("the body is not JSON: {e}")))?;
    match json {
        Json::Array(items) => {
            if items.is_empty() {
                return Err(bad("", "an empty array has no operation"));
            }
            if items.len() > MAX_OPERATIONS {
                return Err(bad(
                    "",
                    format!("more than {MAX_OPERATIONS} operations in one request"),
                ));
            }
            let ops = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| operation(&format!("[{i}]."), item))
                .collect::<Result<_, _>>()?;
            Ok(Request { ops, array: true })
        }
        item => Ok(Request {
            ops: vec![operation("", item)?],
            array: false,
        }),
    }
}

/// The fields of one operation object, each taken once; what is left over is unknown.
struct Fields {
    /// Prefix of the field paths (`[2].`).
    at: String,
    entries: Vec<(String, Json)>,
}

impl Fields {
    fn path(&self, key: &str) -> String {
        format!("{}{}", self.at, key)
    }

    fn take(&mut self, key: &str) -> Result<Option<Json>, BadField> {
        let mut found = self.entries.iter().filter(|(k, _)| k == key);
        if found.nth(1).is_some() {
            return Err(bad(self.path(key), "given more than once"));
        }
        Ok(self
            .entries
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| self.entries.swap_remove(i).1))
    }

    fn required(&mut self, key: &str) -> Result<Json, BadField> {
        self.take(key)?
            .ok_or_else(|| bad(self.path(key), "missing"))
    }

    fn int(&mut self, key: &str, max: i128, value: Json) -> Result<i128, BadField> {
        match value {
            Json::Int(n) if (0..=max).contains(&n) => Ok(n),
            other => Err(bad(
                self.path(key),
                format!("must be an integer from 0 to {max} (got {other})"),
            )),
        }
    }

    fn id(&mut self, key: &str) -> Result<u32, BadField> {
        let value = self.required(key)?;
        let n = self.int(key, u32::MAX.into(), value)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    fn optional_id(&mut self, key: &str) -> Result<Option<u32>, BadField> {
        match self.take(key)? {
            None => Ok(None),
            Some(value) => {
                let n = self.int(key, u32::MAX.into(), value)?;
                Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
            }
        }
    }

    fn flag(&mut self, key: &str, default: bool) -> Result<bool, BadField> {
        match self.take(key)? {
            None => Ok(default),
            Some(Json::Bool(b)) => Ok(b),
            Some(other) => Err(bad(
                self.path(key),
                format!("must be true or false (got {other})"),
            )),
        }
    }

    fn text(&mut self, key: &str) -> Result<String, BadField> {
        match self.required(key)? {
            Json::Str(s) if !s.is_empty() && s.len() <= 255 => Ok(s),
            other => Err(bad(
                self.path(key),
                format!("must be a string of 1 to 255 bytes (got {other})"),
            )),
        }
    }

    fn passkey(&mut self, key: &str) -> Result<Passkey, BadField> {
        self.text(key).map(|s| Passkey::new(s.as_bytes()))
    }

    fn info_hash(&mut self, key: &str) -> Result<InfoHash, BadField> {
        let text = match self.required(key)? {
            Json::Str(s) => s,
            other => {
                return Err(bad(
                    self.path(key),
                    format!("must be a string (got {other})"),
                ))
            }
        };
        hex20(&text).map(InfoHash).ok_or_else(|| {
            bad(
                self.path(key),
                format!("must be 40 hexadecimal digits (got {:?})", text),
            )
        })
    }

    /// A multiplier as the database's `FLOAT` column keeps it, so that a reload
    /// reads back what was pushed.
    fn multiplier(&mut self, key: &str) -> Result<f64, BadField> {
        let raw = match self.take(key)? {
            None => return Ok(1.0),
            Some(raw) => raw,
        };
        let value = match raw {
            Json::Int(n) => n as f64,
            Json::Float(x) => x,
            _ => return Err(bad(self.path(key), format!("must be a number (got {raw})"))),
        };
        let stored = value as f32;
        if !stored.is_finite() || stored < 0.0 {
            return Err(bad(
                self.path(key),
                format!("must be a finite number >= 0 (got {raw})"),
            ));
        }
        // Display of f32 is the shortest decimal that round-trips: what a load reads.
        Ok(stored.to_string().parse().unwrap_or(value))
    }

    /// Refuses fields no operation took.
    fn finish(self) -> Result<(), BadField> {
        match self.entries.first() {
            None => Ok(()),
            Some((key, _)) => Err(bad(self.path(key), "unknown field")),
        }
    }
}

fn hex20(text: &str) -> Option<[u8; 20]> {
    let bytes = text.as_bytes();
    if bytes.len() != 40 {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 20];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn operation(at: &str, item: Json) -> Result<Operation, BadField> {
    let Json::Object(entries) = item else {
        let what = if at.is_empty() {
            "the body"
        } else {
            at.trim_end_matches('.')
        };
        return Err(bad(
            at.trim_end_matches('.'),
            format!("{what} must be an object with an \"op\" field or an array of them"),
        ));
    };
    let mut fields = Fields {
        at: at.to_owned(),
        entries,
    };
    let op = match fields.required("op")? {
        Json::Str(op) => op,
        other => {
            return Err(bad(
                fields.path("op"),
                format!("must be a string (got {other})"),
            ))
        }
    };
    let operation = match op.as_str() {
        "update_torrent" => Operation::UpdateTorrent {
            info_hash: fields.info_hash("info_hash")?,
            torrent: PushedTorrent {
                id: TorrentId(fields.id("id")?),
                meta: TorrentMeta {
                    group_id: GroupId(fields.id("group_id")?),
                    torrent_type: TorrentType::from_name(&fields.text("type")?),
                    up_multiplier: fields.multiplier("up_multiplier")?,
                    down_multiplier: fields.multiplier("down_multiplier")?,
                },
                status: match fields.take("status")? {
                    None => 0,
                    Some(value) => {
                        let n = fields.int("status", i32::MAX.into(), value)?;
                        i32::try_from(n).unwrap_or(i32::MAX)
                    }
                },
            },
        },
        "delete_torrent" => Operation::DeleteTorrent {
            info_hash: fields.info_hash("info_hash")?,
            id: fields.optional_id("id")?.map(TorrentId),
        },
        "update_user" => {
            let passkey = fields.passkey("passkey")?;
            let user = User {
                id: UserId(fields.id("id")?),
                up_multiplier: fields.multiplier("up_multiplier")?,
                down_multiplier: fields.multiplier("down_multiplier")?,
                disable_download: fields.flag("disable_download", false)?,
                tracker_hide: fields.flag("tracker_hide", false)?,
            };
            let enabled = fields.flag("enabled", true)?;
            Operation::UpdateUser {
                passkey,
                user: enabled.then_some(user),
            }
        }
        "disable_user" => Operation::UpdateUser {
            passkey: fields.passkey("passkey")?,
            user: None,
        },
        "change_passkey" => {
            let old = fields.passkey("old_passkey")?;
            let new = fields.passkey("new_passkey")?;
            if old == new {
                return Err(bad(fields.path("new_passkey"), "is the old passkey"));
            }
            Operation::ChangePasskey { old, new }
        }
        "approve_client" => Operation::Client(ClientChange::Approve {
            id: ClientId(fields.id("id")?),
            prefix: fields.text("peer_id")?.into_bytes().into(),
        }),
        "remove_client" => Operation::Client(ClientChange::Remove {
            id: ClientId(fields.id("id")?),
        }),
        "set_global_freeleech" => Operation::SetGlobalFreeleech {
            on: match fields.required("on")? {
                Json::Bool(on) => on,
                other => {
                    return Err(bad(
                        fields.path("on"),
                        format!("must be true or false (got {other})"),
                    ))
                }
            },
        },
        "mark_hit_and_run" | "clear_hit_and_run" => Operation::HitAndRun {
            user: UserId(fields.id("user_id")?),
            torrent: TorrentId(fields.id("torrent_id")?),
            open: op == "mark_hit_and_run",
        },
        _ => {
            return Err(bad(
                fields.path("op"),
                format!(
                    "unknown operation {:?} (one of {})",
                    op,
                    super::OPERATIONS.join(", ")
                ),
            ))
        }
    };
    fields.finish()?;
    Ok(operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn a_torrent_takes_defaults_and_the_floats_a_load_would_read() {
        let ops = parse(
            br#"{"op": "update_torrent", "id": 7, "group_id": 3, "type": "music",
                 "info_hash": "0123456789abcdef0123456789ABCDEF01234567",
                 "down_multiplier": 0.3}"#,
        )
        .unwrap()
        .ops;
        let Operation::UpdateTorrent { info_hash, torrent } = &ops[0] else {
            panic!("{ops:?}");
        };
        assert_eq!(info_hash.0[0..2], [0x01, 0x23]);
        assert_eq!(info_hash.0[19], 0x67);
        assert_eq!(torrent.id, TorrentId(7));
        assert_eq!(torrent.status, 0);
        assert_eq!(torrent.meta.torrent_type, TorrentType::Music);
        assert_eq!(torrent.meta.up_multiplier, 1.0);
        assert_eq!(torrent.meta.down_multiplier, 0.3);
    }

    #[test]
    fn every_refusal_names_its_field() {
        let cases = [
            ("{", "the body is not JSON"),
            ("[]", "an empty array has no operation"),
            ("7", "the body must be an object"),
            (r#"{"id": 1}"#, "op: missing"),
            (
                r#"{"op": "drop_table"}"#,
                "op: unknown operation \"drop_table\"",
            ),
            (
                r#"[{"op": "remove_client", "id": 1}, {"op": "remove_client", "id": -1}]"#,
                "[1].id: must be an integer from 0 to 4294967295 (got -1)",
            ),
            (
                r#"{"op": "remove_client", "id": 1, "id": 2}"#,
                "id: given more than once",
            ),
            (
                r#"{"op": "remove_client", "id": 1, "peer_id": "-TR"}"#,
                "peer_id: unknown field",
            ),
            (
                r#"{"op": "delete_torrent", "info_hash": "abc"}"#,
                "info_hash: must be 40 hexadecimal digits (got \"abc\")",
            ),
            (
                r#"{"op": "update_user", "passkey": "", "id": 1}"#,
                "passkey: must be a string of 1 to 255 bytes (got \"\")",
            ),
            (
                r#"{"op": "update_user", "passkey": "k", "id": 1, "up_multiplier": 1e300}"#,
                "up_multiplier: must be a finite number >= 0 (got 1e+300)",
            ),
            (
                r#"{"op": "set_global_freeleech", "on": 1}"#,
                "on: must be true or false (got 1)",
            ),
            (
                r#"{"op": "change_passkey", "old_passkey": "a", "new_passkey": "a"}"#,
                "new_passkey: is the old passkey",
            ),
        ];
        for (body, start) in cases {
            let message = refused(body);
            assert!(message.starts_with(start), "{body}: {message}");
        }
    }

    #[test]
    fn a_disabled_user_is_an_update_without_a_user() {
        let ops = parse(
            br#"[{"op": "update_user", "passkey": "k", "id": 4, "enabled": false},
                 {"op": "disable_user", "passkey": "k"}]"#,
        )
        .unwrap()
        .ops;
        for op in &ops {
            assert_eq!(
                op,
                &Operation::UpdateUser {
                    passkey: Passkey::new(b"k"),
                    user: None
                }
            );
            assert_eq!(op.name(), "disable_user");
        }
    }
}
