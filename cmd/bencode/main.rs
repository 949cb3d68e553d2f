//! `bencode [-d] [FILE]` (SPEC §11, conventions of §1.2): parses flags, reads FILE or
//! stdin, hands the bytes to [`chihaya::cli::bencode::run`], writes the result to stdout.
//!
//! Owns only the edges: arguments, reading, writing, the one stderr line and the exit
//! code. No conversion logic lives here. stdout gets nothing unless the whole
//! conversion succeeded.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{value_parser, Arg, ArgAction, Command};

fn command() -> Command {
    Command::new("bencode")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Convert one JSON value to bencode, or one bencode value to JSON with -d")
        .override_usage("bencode [-d] [FILE]")
        .arg(
            Arg::new("decode")
                .short('d')
                .long("decode")
                .action(ArgAction::SetTrue)
                .help("Decode: bencode in, compact JSON and a newline out"),
        )
        .arg(
            Arg::new("file")
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help("Input file; '-' or none reads stdin"),
        )
}

fn main() -> ExitCode {
    // Help and version go to stdout with exit 0; usage errors to stderr with exit 2.
    let matches = command().get_matches();
    let decode = matches.get_flag("decode");
    let file = matches
        .get_one::<PathBuf>("file")
        .filter(|path| path.as_os_str() != OsStr::new("-"));

    let (name, input) = match file {
        Some(path) => (path.display().to_string(), std::fs::read(path)),
        None => {
            let mut input = Vec::new();
            let read = io::stdin().lock().read_to_end(&mut input).map(|_| input);
            ("stdin".to_owned(), read)
        }
    };
    let input = match input {
        Ok(input) => input,
        Err(e) => return fail(&name, &e),
    };
    let output = match chihaya::cli::bencode::run(decode, &input) {
        Ok(output) => output,
        Err(e) => return fail(&name, &e),
    };
    let mut stdout = io::stdout().lock();
    match stdout.write_all(&output).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("stdout", &e),
    }
}

/// Reports a failed operation once, as `bencode: <what>: <error>`, and picks exit 1.
fn fail(what: &str, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("bencode: {what}: {error}");
    ExitCode::from(1)
}
