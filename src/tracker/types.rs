//! Fixed-size keys and ids, parsed at the edge so nothing inward handles raw strings.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

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
/// and `music`; a site may add others, which are kept by name.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum TorrentType {
    Anime,
    Music,
    Other(Arc<str>),
}

impl TorrentType {
    pub fn from_name(name: &str) -> TorrentType {
        match name {
            "anime" => TorrentType::Anime,
            "music" => TorrentType::Music,
            other => TorrentType::Other(other.into()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            TorrentType::Anime => "anime",
            TorrentType::Music => "music",
            TorrentType::Other(name) => name,
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
