//! `cc`: inspect, convert and anonymize the tracker's peer cache, and read its
//! recorder files and journal. Parses the command line and hands over to
//! `chihaya::cli::cc`.

use std::path::PathBuf;
use std::process::ExitCode;

use chihaya::cli::cc::{run, Command as Operation};
use chihaya::record::analysis::DEFAULT_MAX_RATE;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};

/// `--max-rate` default, as clap wants it: 100 MiB/s.
const DEFAULT_MAX_RATE_TEXT: &str = "104857600";

fn path_arg(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .value_parser(value_parser!(PathBuf))
        .help(help)
}

fn journal_dir_arg() -> Arg {
    path_arg("DIR", "Journal directory [default: journal]")
}

fn journal_command() -> Command {
    Command::new("journal")
        .about("Read the journal's segments")
        .subcommand_required(true)
        .subcommand(
            Command::new("stats")
                .about("Counts and flush numbers per segment, and totals")
                .arg(journal_dir_arg())
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("Print one JSON line instead of text"),
                ),
        )
        .subcommand(
            Command::new("dump")
                .about("Every record as a JSON line")
                .arg(journal_dir_arg())
                .arg(
                    Arg::new("segment")
                        .long("segment")
                        .value_name("N")
                        .value_parser(value_parser!(u64))
                        .help("Only segment N"),
                ),
        )
}

fn cli() -> Command {
    Command::new("cc")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Inspect, convert and anonymize the chihaya peer cache (- is stdin/stdout); read recorder files and the journal")
        .subcommand_required(true)
        .subcommand(
            Command::new("dump")
                .about("Write the cache as JSON")
                .arg(path_arg("CACHE", "Peer cache [default: peer-cache.bin]"))
                .arg(path_arg("OUT", "JSON output [default: - (stdout)]")),
        )
        .subcommand(
            Command::new("restore")
                .about("Write a cache from its JSON dump")
                .arg(path_arg("IN", "JSON input").required(true))
                .arg(path_arg("OUT", "Peer cache output").required(true)),
        )
        .subcommand(
            Command::new("anonymize")
                .about("Write a copy with users, passkeys, addresses and ports replaced")
                .arg(path_arg("CACHE", "Peer cache [default: peer-cache.bin]"))
                .arg(path_arg(
                    "OUT",
                    "Output [default: peer-cache-anonymized.bin]",
                )),
        )
        .subcommand(
            Command::new("stats")
                .about("Print counts as one JSON line")
                .arg(path_arg("CACHE", "Peer cache [default: peer-cache.bin]")),
        )
        .subcommand(
            Command::new("events")
                .about("Totals per user and torrent, and cheat signals, from recorder files")
                .arg(
                    path_arg("FILE", "Recorder files (events/events_YYYY-MM-DDTHH.json)")
                        .required(true)
                        .num_args(1..),
                )
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("Print JSON instead of a table"),
                )
                .arg(
                    Arg::new("max-rate")
                        .long("max-rate")
                        .value_name("BYTES_PER_SECOND")
                        .value_parser(value_parser!(u64))
                        .default_value(DEFAULT_MAX_RATE_TEXT)
                        .help(
                            "Flag users uploading more than this per second, averaged over an hour",
                        ),
                ),
        )
        .subcommand(journal_command())
}

fn path(matches: &ArgMatches, name: &str, default: &str) -> PathBuf {
    matches
        .get_one::<PathBuf>(name)
        .cloned()
        .unwrap_or_else(|| PathBuf::from(default))
}

fn operation(matches: &ArgMatches) -> Option<Operation> {
    Some(match matches.subcommand()? {
        ("dump", m) => Operation::Dump {
            cache: path(m, "CACHE", "peer-cache.bin"),
            out: path(m, "OUT", "-"),
        },
        ("restore", m) => Operation::Restore {
            input: path(m, "IN", "-"),
            output: path(m, "OUT", "-"),
        },
        ("anonymize", m) => Operation::Anonymize {
            cache: path(m, "CACHE", "peer-cache.bin"),
            out: path(m, "OUT", "peer-cache-anonymized.bin"),
        },
        ("stats", m) => Operation::Stats {
            cache: path(m, "CACHE", "peer-cache.bin"),
        },
        ("events", m) => Operation::Events {
            files: m.get_many::<PathBuf>("FILE")?.cloned().collect(),
            json: m.get_flag("json"),
            max_rate: m
                .get_one::<u64>("max-rate")
                .copied()
                .unwrap_or(DEFAULT_MAX_RATE),
        },
        ("journal", m) => journal_operation(m)?,
        _ => return None,
    })
}

fn journal_operation(matches: &ArgMatches) -> Option<Operation> {
    Some(match matches.subcommand()? {
        ("stats", m) => Operation::JournalStats {
            dir: path(m, "DIR", "journal"),
            json: m.get_flag("json"),
        },
        ("dump", m) => Operation::JournalDump {
            dir: path(m, "DIR", "journal"),
            segment: m.get_one::<u64>("segment").copied(),
        },
        _ => return None,
    })
}

fn usage_error(message: &str) -> ExitCode {
    eprint!("{message}");
    if !message.contains("Usage:") {
        eprintln!("\n{}", cli().render_usage());
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let matches = match cli().try_get_matches() {
        Ok(matches) => matches,
        Err(error) if !error.use_stderr() => error.exit(), // -h / -V: stdout, exit 0
        Err(error) => return usage_error(&error.render().to_string()),
    };
    let Some(operation) = operation(&matches) else {
        return usage_error("cc: unknown command\n");
    };
    match run(&operation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cc: {error}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        super::cli().debug_assert();
        assert_eq!(
            super::DEFAULT_MAX_RATE_TEXT.parse::<u64>().ok(),
            Some(super::DEFAULT_MAX_RATE)
        );
    }
}
