//! Applying the document. Entries are visited in document order and the first
//! problem is returned, so the error a user sees does not depend on hash order.

use super::*;

pub(super) type Entries = [(String, Json)];

/// The entries of `object` with their dotted keys; a repeated key is an error.
pub(super) fn entries<'a>(
    prefix: &'a str,
    object: &'a Entries,
) -> impl Iterator<Item = Result<(&'a str, String, &'a Json), ConfigError>> + 'a {
    let mut seen = HashSet::new();
    object.iter().map(move |(key, value)| {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if seen.insert(key.as_str()) {
            Ok((key.as_str(), path, value))
        } else {
            Err(ConfigError::new(path, "duplicate key"))
        }
    })
}

pub(super) fn apply_file(
    doc: &Entries,
    c: &mut Config,
    raw: &mut RawAddrs,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let (mut numwant, mut max_numwant) = (None, None);
    let mut aliases = Aliases::default();
    for entry in entries("", doc) {
        let (key, path, value) = entry?;
        match key {
            "database" => apply_database(&path, value, &mut c.database, raw, warnings)?,
            "channels" => apply_channels(&path, value, &mut c.channels, warnings)?,
            "intervals" => apply_intervals(&path, value, &mut c.intervals, &mut aliases, warnings)?,
            "limits" => apply_limits(&path, value, &mut c.limits, warnings)?,
            "journal" => apply_journal(&path, value, &mut c.journal, warnings)?,
            "addr" => raw.addr = Some(non_empty(&path, value)?),
            "admin_token" => c.admin_token = string(&path, value)?,
            "push_token" => c.push_token = string(&path, value)?,
            "instance" => c.instance = instance(&path, value)?,
            "proxy" => c.proxy = string(&path, value)?,
            "record" => c.record = boolean(&path, value)?,
            "scrape" => c.scrape = boolean(&path, value)?,
            "log_flushes" => c.log_flushes = boolean(&path, value)?,
            "strict_port" => c.strict_port = boolean(&path, value)?,
            "flush_groups" => c.flush_groups = boolean(&path, value)?,
            "numwant" => numwant = Some(int(&path, value, 0, 65535)?),
            "max_numwant" => max_numwant = Some(int(&path, value, 0, 65535)?),
            _ => unknown(&path, value, warnings)?,
        }
    }
    // The top-level key wins wherever it appears, so the aliases are settled last.
    c.numwant = numwant.or(aliases.numwant).unwrap_or(c.numwant);
    c.max_numwant = max_numwant.or(aliases.max_numwant).unwrap_or(c.max_numwant);
    Ok(())
}

/// The deprecated `intervals.numwant` and `intervals.max_numwant`.
#[derive(Default)]
pub(super) struct Aliases {
    numwant: Option<u16>,
    max_numwant: Option<u16>,
}

pub(super) fn apply_database(
    prefix: &str,
    value: &Json,
    db: &mut DatabaseConfig,
    raw: &mut RawAddrs,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        match key {
            "username" => db.username = string(&path, value)?,
            "password" => db.password = string(&path, value)?,
            "database" => db.database = string(&path, value)?,
            "proto" => {
                raw.db_proto = Some(match value {
                    Json::Str(s) if s == "tcp" => DbProto::Tcp,
                    Json::Str(s) if s == "unix" => DbProto::Unix,
                    _ => return Err(wrong(&path, r#"must be "tcp" or "unix""#, value)),
                })
            }
            "addr" => raw.db_addr = Some(non_empty(&path, value)?),
            "deadlock_pause" => db.deadlock_pause = int(&path, value, 0, 3600)?,
            "deadlock_retries" => db.deadlock_retries = int(&path, value, 1, 1000)?,
            _ => unknown(&path, value, warnings)?,
        }
    }
    Ok(())
}

pub(super) fn apply_channels(
    prefix: &str,
    value: &Json,
    ch: &mut ChannelsConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        let field = match key {
            "torrent" => &mut ch.torrent,
            "user" => &mut ch.user,
            "transfer_history" => &mut ch.transfer_history,
            "transfer_ips" => &mut ch.transfer_ips,
            "snatch" => &mut ch.snatch,
            _ => {
                unknown(&path, value, warnings)?;
                continue;
            }
        };
        *field = int(&path, value, 1, INT_MAX)?;
    }
    Ok(())
}

pub(super) fn apply_intervals(
    prefix: &str,
    value: &Json,
    iv: &mut IntervalsConfig,
    aliases: &mut Aliases,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        let (field, min) = match key {
            "announce" => (&mut iv.announce, 1),
            "min_announce" => (&mut iv.min_announce, 1),
            "peer_inactivity" => (&mut iv.peer_inactivity, 1),
            "announce_drift" => (&mut iv.announce_drift, 0),
            "scrape" => (&mut iv.scrape, 1),
            "database_reload" => (&mut iv.database_reload, 1),
            "database_reload_with_push" => (&mut iv.database_reload_with_push, 1),
            "database_serialize" => (&mut iv.database_serialize, 1),
            "purge_inactive_peers" => (&mut iv.purge_inactive_peers, 1),
            "flush" => (&mut iv.flush, 1),
            // The original read these two here; they live at the top level now.
            "numwant" | "max_numwant" => {
                let n = int(&path, value, 0, 65535)?;
                if key == "numwant" {
                    aliases.numwant = Some(n);
                } else {
                    aliases.max_numwant = Some(n);
                }
                warnings.push(format!("config: {path}: deprecated, use {key}"));
                continue;
            }
            _ => {
                unknown(&path, value, warnings)?;
                continue;
            }
        };
        *field = int(&path, value, min, INT_MAX)?;
    }
    Ok(())
}

pub(super) fn apply_limits(
    prefix: &str,
    value: &Json,
    limits: &mut LimitsConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        match key {
            // At most the swarm's own bound (MAX_PEERS_PER_USER): a user's peers share
            // one hash in a swarm's index.
            "user_peers_per_torrent" => {
                limits.user_peers_per_torrent = int(&path, value, 1, 1000)?;
            }
            "user_requests_per_second" => {
                limits.user_requests_per_second = int(&path, value, 0, 1_000_000)?;
            }
            "user_request_burst" => limits.user_request_burst = int(&path, value, 0, INT_MAX)?,
            "max_transfer_rate" => limits.max_transfer_rate = int(&path, value, 0, i64::MAX)?,
            _ => unknown(&path, value, warnings)?,
        }
    }
    Ok(())
}

pub(super) fn apply_journal(
    prefix: &str,
    value: &Json,
    journal: &mut JournalConfig,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for entry in entries(prefix, section(prefix, value)?) {
        let (key, path, value) = entry?;
        match key {
            "fsync_interval_ms" => journal.fsync_interval_ms = int(&path, value, 0, 60_000)?,
            _ => unknown(&path, value, warnings)?,
        }
    }
    Ok(())
}

pub(super) fn section<'a>(path: &str, value: &'a Json) -> Result<&'a Entries, ConfigError> {
    match value {
        Json::Object(entries) => Ok(entries),
        _ => Err(wrong(path, "must be an object", value)),
    }
}

/// Warns about an unknown key. Its value is not interpreted, but a duplicate in it is
/// still an error: SPEC rejects duplicates at any level.
pub(super) fn unknown(
    path: &str,
    value: &Json,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    no_duplicates(path, value)?;
    warnings.push(format!("config: {path}: unknown key ignored"));
    Ok(())
}

pub(super) fn no_duplicates(path: &str, value: &Json) -> Result<(), ConfigError> {
    match value {
        Json::Object(object) => entries(path, object).try_for_each(|entry| {
            let (_, path, value) = entry?;
            no_duplicates(&path, value)
        }),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| no_duplicates(&format!("{path}[{i}]"), item)),
        _ => Ok(()),
    }
}

pub(super) fn wrong(path: &str, rule: &str, got: &Json) -> ConfigError {
    ConfigError::new(path, format!("{rule} (got {got})"))
}

pub(super) fn string(path: &str, value: &Json) -> Result<String, ConfigError> {
    match value {
        Json::Str(s) => Ok(s.clone()),
        _ => Err(wrong(path, "must be a string", value)),
    }
}

/// Most bytes of an instance name: `<name>/transfer_history` must fit the 32 of
/// `chihaya_commits.writer`.
const INSTANCE_MAX: usize = 15;

/// An instance name: empty (the only tracker), or up to [`INSTANCE_MAX`] letters,
/// digits, `-` and `_`.
fn instance(path: &str, value: &Json) -> Result<String, ConfigError> {
    let name = string(path, value)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if name.len() > INSTANCE_MAX || !name.bytes().all(allowed) {
        return Err(wrong(
            path,
            "must be at most 15 letters, digits, '-' or '_'",
            value,
        ));
    }
    Ok(name)
}

pub(super) fn non_empty(path: &str, value: &Json) -> Result<String, ConfigError> {
    let s = string(path, value)?;
    if s.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    Ok(s)
}

pub(super) fn boolean(path: &str, value: &Json) -> Result<bool, ConfigError> {
    match value {
        Json::Bool(b) => Ok(*b),
        _ => Err(wrong(path, "must be true or false", value)),
    }
}

/// An integer literal in `min..=max`. Wrong types get the same message as bad values,
/// so the user learns what is wanted either way.
pub(super) fn int<T: TryFrom<i128>>(
    path: &str,
    value: &Json,
    min: i64,
    max: i64,
) -> Result<T, ConfigError> {
    let (min, max) = (i128::from(min), i128::from(max));
    if let Json::Int(n) = value {
        if (min..=max).contains(n) {
            if let Ok(v) = T::try_from(*n) {
                return Ok(v);
            }
        }
    }
    // The implicit maximum is only worth naming to someone who went past it.
    let too_big = matches!(value, Json::Int(n) if *n > max);
    let rule = if max < i128::from(INT_MAX) || too_big {
        format!("must be an integer between {min} and {max}")
    } else {
        format!("must be an integer >= {min}")
    };
    Err(wrong(path, &rule, value))
}
