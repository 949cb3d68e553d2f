//! `bencode`: not implemented yet; see the project's issues.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("bencode: not implemented yet");
    ExitCode::from(1)
}
