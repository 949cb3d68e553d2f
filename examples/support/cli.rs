//! The command line and `main` of the benchmark examples (`bench_db`, `bench_reads`):
//! `--option value` pairs, positive integers, and a runtime that reports its errors
//! once with the example's name.

use std::future::Future;
use std::process::ExitCode;

use super::cpu::Error;

/// The `--option value` pairs of the command line, in order; `-h`/`--help`, or an
/// option without its value, gives `usage` back as the error.
pub fn pairs(usage: &str) -> Result<Vec<(String, String)>, String> {
    let mut args = std::env::args().skip(1);
    let mut pairs = Vec::new();
    while let Some(option) = args.next() {
        if option == "-h" || option == "--help" {
            return Err(usage.to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{option} needs a value\n{usage}"))?;
        pairs.push((option, value));
    }
    Ok(pairs)
}

/// A positive integer given to `option`.
pub fn positive(option: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{option}: not a positive integer: {value}"))
}

/// Parses the options, then runs `run` on `runtime`: exit 2 for a bad command line,
/// 1 for an error (printed once, after `name: `).
pub fn main<O, F>(
    name: &str,
    options: Result<O, String>,
    runtime: std::io::Result<tokio::runtime::Runtime>,
    run: impl FnOnce(O) -> F,
) -> ExitCode
where
    F: Future<Output = Result<(), Error>>,
{
    let options = match options {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(options)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
