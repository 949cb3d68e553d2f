//! The logic of the `cc` and `bencode` commands; their `main`s (in `cmd/`) parse the
//! arguments, call these and report. `cc` reads the peer cache file (`cache`), the
//! recorder's files (`record::analysis`) and the journal (`journal`); none of those
//! depends on this module.

pub mod bencode;
pub mod cc;
pub mod journal_view;
