//! `baseline`: the floor for `make bench` (see bench/README.md).
//!
//! An actix-web 4 server set up like the tracker's (same worker count, backlog,
//! timeouts, no signal handling, one default service) that answers every request,
//! whatever its method or path, with `200 text/plain` and a fixed body. The CPU it
//! spends per request is what the HTTP stack alone costs; the tracker's CPU per
//! announce is compared with it.
//!
//! ```text
//! baseline [--addr 127.0.0.1:PORT] [--body-bytes N]
//! ```
//!
//! Defaults: `127.0.0.1:34001`, 380 bytes. It runs until killed (SIGTERM/SIGINT end
//! it the default way, which is all a benchmark needs).

use std::process::ExitCode;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};

const DEFAULT_ADDR: &str = "127.0.0.1:34001";
const DEFAULT_BODY_BYTES: usize = 380;
/// The tracker's request-head and keep-alive timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: baseline [--addr HOST:PORT] [--body-bytes N]";

struct Options {
    addr: String,
    body_bytes: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        addr: DEFAULT_ADDR.to_owned(),
        body_bytes: DEFAULT_BODY_BYTES,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--addr" => options.addr = value()?,
            "--body-bytes" => {
                let v = value()?;
                options.body_bytes = v
                    .parse()
                    .map_err(|_| format!("--body-bytes: not a number: {v:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// A bencoded dictionary of exactly `n` bytes when `n` allows one (at least 13),
/// shaped like an announce answer: `d5:peers<len>:<filler>e`. Shorter sizes get
/// plain filler. It never contains `failure reason`.
fn body_of(n: usize) -> Bytes {
    const OVERHEAD: usize = "d5:peers".len() + ":".len() + "e".len();
    for digits in 1..=20 {
        let Some(len) = n.checked_sub(OVERHEAD + digits) else {
            break;
        };
        if len.to_string().len() == digits {
            let mut body = format!("d5:peers{len}:").into_bytes();
            body.resize(body.len() + len, b'x');
            body.push(b'e');
            return Bytes::from(body);
        }
    }
    Bytes::from(vec![b'x'; n])
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("baseline: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let body = body_of(options.body_bytes);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());

    let result = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            let body = body.clone();
            App::new().default_service(web::to(move || {
                let body = body.clone();
                async move { HttpResponse::Ok().content_type("text/plain").body(body) }
            }))
        })
        .workers(workers)
        .backlog(4096)
        .disable_signals()
        .client_request_timeout(CLIENT_TIMEOUT)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(CLIENT_TIMEOUT)
        .bind(options.addr.as_str())?;
        eprintln!(
            "baseline: {} workers, {}-byte body, listening on {}",
            workers, options.body_bytes, options.addr
        );
        server.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: {e}");
            ExitCode::FAILURE
        }
    }
}
