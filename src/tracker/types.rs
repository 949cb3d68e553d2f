//! Fixed-size keys and ids, parsed at the edge so nothing inward handles raw strings.

use std::borrow::Borrow;
use std::fmt;

/// The 20-byte SHA-1 of a torrent's info dictionary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

/// The 20-byte id a client picks for itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

/// `users_main.ID`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct UserId(pub u32);

/// `torrents.ID`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TorrentId(pub u32);

/// `approved_clients.id`; 0 is a valid id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ClientId(pub u32);

/// `torrents.GroupID`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct GroupId(pub u32);

/// A user's secret `torrent_pass`, compared byte for byte (case-sensitive, any length).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Passkey(Box<[u8]>);

impl Passkey {
    pub fn new(bytes: &[u8]) -> Passkey {
        Passkey(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Lets maps keyed by `Passkey` be queried with the request's raw bytes, without copying.
impl Borrow<[u8]> for Passkey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Passkey {
    // Passkeys are secrets: never print them whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passkey(len {})", self.0.len())
    }
}

/// `torrents.TorrentType` / `torrent_group_freeleech.Type`. The schema knows `anime`
/// and `music`; a site may add others, which are kept by name. Every torrent carries
/// one, so it is a small copyable code rather than a string: other names are interned
/// once per process (a site has a handful; past 65 535 distinct names, further ones
/// share the last code, named "").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TorrentType {
    Anime,
    Music,
    Other(u16),
}

/// The code of names that no longer fit the table.
const OVERFLOW_TYPE: u16 = u16::MAX;

/// The names of the `Other` types seen so far; index = code. Leaked on purpose: they
/// live as long as the process and there are few of them.
static OTHER_TYPES: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());

impl TorrentType {
    /// Where names go once the table is full, and what names not kept are: `""`.
    pub const UNNAMED: TorrentType = TorrentType::Other(OVERFLOW_TYPE);

    pub fn from_name(name: &str) -> TorrentType {
        match name {
            "anime" => TorrentType::Anime,
            "music" => TorrentType::Music,
            other => {
                if let Some(known) = TorrentType::known(other) {
                    return known;
                }
                let mut known = OTHER_TYPES
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // Another thread may have added it meanwhile.
                let code = match known.iter().position(|&n| n == other) {
                    Some(code) => code,
                    None if known.len() < usize::from(OVERFLOW_TYPE) => {
                        known.push(Box::leak(other.into()));
                        known.len() - 1
                    }
                    None => usize::from(OVERFLOW_TYPE),
                };
                TorrentType::Other(code as u16)
            }
        }
    }

    /// The type of `name` if it has a code already (`anime`, `music` or a name seen
    /// before); unlike [`TorrentType::from_name`] it never adds a name to the table.
    pub fn known(name: &str) -> Option<TorrentType> {
        match name {
            "anime" => Some(TorrentType::Anime),
            "music" => Some(TorrentType::Music),
            other => OTHER_TYPES
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .position(|&n| n == other)
                .map(|code| TorrentType::Other(code as u16)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TorrentType::Anime => "anime",
            TorrentType::Music => "music",
            TorrentType::Other(code) => OTHER_TYPES
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(usize::from(code))
                .copied()
                .unwrap_or(""),
        }
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InfoHash(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerId(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::TorrentType;

    #[test]
    fn torrent_types_round_trip_and_intern() {
        assert_eq!(TorrentType::from_name("anime"), TorrentType::Anime);
        assert_eq!(TorrentType::from_name("music").name(), "music");
        let ebook = TorrentType::from_name("ebook");
        assert_eq!(ebook, TorrentType::from_name("ebook"));
        assert_ne!(ebook, TorrentType::from_name("game"));
        assert_eq!(ebook.name(), "ebook");
        assert_eq!(std::mem::size_of::<TorrentType>(), 4);
        assert_eq!(TorrentType::known("ebook"), Some(ebook));
        assert_eq!(TorrentType::known("music"), Some(TorrentType::Music));
        assert_eq!(TorrentType::known("never-seen-by-types-tests"), None);
        assert_eq!(TorrentType::known("never-seen-by-types-tests"), None);
        assert_eq!(TorrentType::UNNAMED.name(), "");
    }
}
