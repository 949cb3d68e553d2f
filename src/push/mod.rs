//! The push API: the site tells the tracker of a change the moment it makes it (a new
//! torrent, a banned user, a changed passkey), rather than waiting up to a reload
//! period. A push changes nothing in the database and no snapshot in place: it is laid
//! over the snapshots ([`crate::tracker::Pushes`]) and the next reload reconciles it
//! with the database, which stays the truth.
//!
//! [`parse`] turns a request body into operations, refusing the whole body at the
//! first field it cannot use; [`apply`] makes them, all under one push number.
//! Every operation is idempotent: sending one twice leaves what sending it once left.

mod apply;
mod parse;

pub use apply::{apply, Refused};
pub use parse::{parse, BadField, Request};

use crate::tracker::{ClientChange, InfoHash, Passkey, PushedTorrent, TorrentId, User, UserId};

/// Most operations one request may carry.
pub const MAX_OPERATIONS: usize = 10_000;

/// Most bytes a request body may have.
pub const MAX_BODY: usize = 4 << 20;

/// The operations, by the name the `op` field gives them.
pub const OPERATIONS: [&str; 10] = [
    "update_torrent",
    "delete_torrent",
    "update_user",
    "disable_user",
    "change_passkey",
    "approve_client",
    "remove_client",
    "set_global_freeleech",
    "mark_hit_and_run",
    "clear_hit_and_run",
];

/// One validated operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// Adds the torrent, or replaces what the tracker knows of it.
    UpdateTorrent {
        info_hash: InfoHash,
        torrent: PushedTorrent,
    },
    /// The torrent is gone; with `id`, only while the hash is still that torrent's.
    DeleteTorrent {
        info_hash: InfoHash,
        id: Option<TorrentId>,
    },
    /// Adds the user, or replaces what the tracker knows of them; `None`: disabled.
    UpdateUser {
        passkey: Passkey,
        user: Option<User>,
    },
    /// The user of `old` announces with `new` from now on; `old` stops working.
    ChangePasskey {
        old: Passkey,
        new: Passkey,
    },
    /// A client approved or no longer approved.
    Client(ClientChange),
    SetGlobalFreeleech {
        on: bool,
    },
    /// Marks (`open`) or clears a hit-and-run.
    HitAndRun {
        user: UserId,
        torrent: TorrentId,
        open: bool,
    },
}

impl Operation {
    /// The name `chihaya_push_operations_total` counts it under (one of
    /// [`OPERATIONS`]).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::UpdateTorrent { .. } => "update_torrent",
            Operation::DeleteTorrent { .. } => "delete_torrent",
            Operation::UpdateUser { user: Some(_), .. } => "update_user",
            Operation::UpdateUser { user: None, .. } => "disable_user",
            Operation::ChangePasskey { .. } => "change_passkey",
            Operation::Client(ClientChange::Approve { .. }) => "approve_client",
            Operation::Client(ClientChange::Remove { .. }) => "remove_client",
            Operation::SetGlobalFreeleech { .. } => "set_global_freeleech",
            Operation::HitAndRun { open: true, .. } => "mark_hit_and_run",
            Operation::HitAndRun { open: false, .. } => "clear_hit_and_run",
        }
    }
}
