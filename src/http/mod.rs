//! The HTTP front: the actix-web server, routing, query parsing and bencoded responses.
//! Knows nothing of SQL; hands deltas to the accounting sink.

mod metrics;
mod push;
pub mod query;
pub mod response;
mod routes;

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderName;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::server::state::Shared;

/// What every request handler gets.
pub struct HttpState {
    pub shared: Arc<Shared>,
    /// The configured client-IP header, if any.
    pub proxy_header: Option<HeaderName>,
}

/// Seconds a client has to send its request head, and an idle keep-alive connection
/// stays open.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Seconds in-flight requests get to finish at shutdown.
pub const SHUTDOWN_GRACE_SECS: u64 = 5;

/// Starts serving on `listener` (already bound). The returned server runs until its
/// handle's `stop` is called; it does not watch signals itself.
pub fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(prepare(shared, listener)?.run())
}

/// An HTTP server bound and set up, not yet serving: every step of its start that can
/// fail is behind it, so a start-up can take it before anything it cannot undo.
pub struct Prepared(Box<dyn FnOnce() -> actix_web::dev::Server>);

impl Prepared {
    /// Starts answering the connections waiting on the listener.
    pub fn run(self) -> actix_web::dev::Server {
        (self.0)()
    }
}

/// Sets up the server on `listener` (see [`Prepared`]).
pub fn prepare(shared: Arc<Shared>, listener: TcpListener) -> std::io::Result<Prepared> {
    let proxy_header = match shared.config.proxy.as_str() {
        "" => None,
        name => Some(HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("config: proxy: {e}"),
            )
        })?),
    };
    let state = web::Data::new(HttpState {
        shared,
        proxy_header,
    });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    listener.set_nonblocking(true)?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(web::resource("/push").to(push::entry))
            .default_service(web::to(entry))
    })
    .workers(workers)
    .backlog(4096)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE_SECS)
    .client_request_timeout(CLIENT_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(CLIENT_TIMEOUT)
    .listen(listener)?;
    Ok(Prepared(Box::new(move || server.run())))
}

/// Every request comes here. A bug that panics while answering costs that request a
/// 500, never the worker or the process.
async fn entry(request: HttpRequest, state: web::Data<HttpState>) -> HttpResponse {
    match std::panic::catch_unwind(AssertUnwindSafe(|| routes::respond(&request, &state))) {
        Ok(response) => response,
        Err(panic) => {
            state.shared.metrics.requests_fail.inc();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(url = %request.uri(), "ServeHTTP panic - {}", message);
            HttpResponse::InternalServerError().finish()
        }
    }
}
