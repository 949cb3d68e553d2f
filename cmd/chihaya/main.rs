//! `chihaya`: the tracker. Parses the command line and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{value_parser, Arg, Command};

fn cli() -> Command {
    Command::new("chihaya")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A private BitTorrent tracker for Gazelle-style sites")
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("PATH")
                .default_value("config.json")
                .value_parser(value_parser!(PathBuf))
                .help("Config file (JSON)"),
        )
        .arg(
            Arg::new("peer-cache")
                .long("peer-cache")
                .value_name("PATH")
                .default_value("peer-cache.bin")
                .value_parser(value_parser!(PathBuf))
                .help("Peer cache file, written periodically and at shutdown"),
        )
        .arg(
            Arg::new("spill")
                .long("spill")
                .value_name("PATH")
                .default_value("accounting-spill.jsonl")
                .value_parser(value_parser!(PathBuf))
                .help("Where rows that could not be written to the database are saved"),
        )
        .arg(
            Arg::new("journal")
                .long("journal")
                .value_name("DIR")
                .default_value("journal")
                .value_parser(value_parser!(PathBuf))
                .help("Directory of the journal of accepted announces, replayed after a crash"),
        )
        .arg(
            Arg::new("drain-timeout")
                .long("drain-timeout")
                .value_name("SECONDS")
                .default_value("60")
                .value_parser(value_parser!(u64))
                .help("How long shutdown keeps trying to write pending rows"),
        )
}

fn main() -> ExitCode {
    chihaya::server::memory::limit_arenas();
    let matches = match cli().try_get_matches() {
        Ok(matches) => matches,
        Err(error) if !error.use_stderr() => error.exit(), // -h / -V: stdout, exit 0
        Err(error) => {
            // Every usage error shows the usage, which clap adds only to some.
            let message = error.render().to_string();
            eprint!("{message}");
            if !message.contains("Usage:") {
                eprintln!("\n{}", cli().render_usage());
            }
            return ExitCode::from(2);
        }
    };
    let path = |name: &str| {
        matches
            .get_one::<PathBuf>(name)
            .cloned()
            .unwrap_or_default()
    };
    let options = chihaya::server::app::Options {
        config: path("config"),
        peer_cache: path("peer-cache"),
        spill: path("spill"),
        journal: path("journal"),
        drain_timeout: Duration::from_secs(
            matches
                .get_one::<u64>("drain-timeout")
                .copied()
                .unwrap_or(60),
        ),
    };
    chihaya::log::init();
    // The runtime runs the background work (reloads, flushes, purge, peer cache);
    // actix-web answers on threads of its own. Under full load announces come first.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(chihaya::server::app::background_priority)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("Cannot start the async runtime: {}", e);
            return ExitCode::from(1);
        }
    };
    ExitCode::from(runtime.block_on(chihaya::server::app::run(options)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        super::cli().debug_assert();
    }
}
