//! The running tracker process: start-up and shutdown (`app`), what request handlers
//! and background tasks share (`state`), and the background work: reloads of the
//! snapshots (`reload`), the purge of inactive peers (`purge`), the peer cache read
//! at start and written periodically (`peer_cache`), the journal's replay at start
//! (`recovery`) and handing memory back (`memory`).

pub mod absence;
pub mod app;
pub mod memory;
pub mod peer_cache;
pub mod purge;
pub mod recovery;
pub mod reload;
pub mod state;
