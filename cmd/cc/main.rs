//! `cc`: not implemented yet; see the project's issues.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("cc: not implemented yet");
    ExitCode::from(1)
}
