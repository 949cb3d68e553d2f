//! chihaya-rs: a private BitTorrent tracker for Gazelle-style sites.
//!
//! The library holds everything; `cmd/` only parses arguments and calls [`app`].
//! Data flows one way: `http` parses a request, `tracker` (pure, no I/O) answers it
//! from the in-memory snapshots and swarms and produces deltas, `accounting` coalesces
//! those deltas and `store` writes them to MariaDB; `reload` refreshes the snapshots.

pub mod accounting;
pub mod app;
pub mod bencode;
pub mod cache;
pub mod config;
pub mod http;
pub mod journal;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod purge;
pub mod record;
pub mod recovery;
pub mod reload;
pub mod state;
pub mod store;
pub mod tracker;
