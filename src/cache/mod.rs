//! The peer cache file (SPEC §10): a versioned file holding the swarms, so that after
//! a restart leechers get their seeders at once instead of after half an hour of
//! re-announces. `format` is the file layout, `file` the atomic write, `dump` its JSON
//! form (what `cc` dumps, restores, anonymizes and counts). Reading it into the
//! running tracker and writing it from there is `server::peer_cache`'s.

pub mod dump;
pub mod file;
pub mod format;
