//! chihaya-rs: a private BitTorrent tracker for Gazelle-style sites.
//!
//! The library holds everything; `cmd/` only parses arguments and calls [`server`]
//! (the tracker) or [`cli`] (the tools). Data flows one way: `http` parses a request,
//! `tracker` (pure, no I/O) answers it from the catalogue and the swarms and produces
//! deltas, `accounting` coalesces those deltas and `store` writes them to MariaDB;
//! `server::reload` refreshes the snapshots.

pub mod accounting;
pub mod bencode;
pub mod cache;
pub mod cli;
pub mod config;
pub mod http;
pub mod journal;
pub mod log;
pub mod metrics;
pub mod percent;
pub mod push;
pub mod record;
pub mod server;
pub mod store;
pub mod tracker;
