//! Start-up, background tasks and shutdown of the tracker process (SPEC §1.1, §9):
//! the composition root that wires config, store, snapshots, sink and HTTP together.

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::accounting::writer;
use crate::config::Config;
use crate::reload::{self, LoadError};
use crate::state::Shared;
use crate::store::Store;

/// Command-line options of `chihaya`.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub peer_cache: PathBuf,
    pub spill: PathBuf,
    pub drain_timeout: Duration,
}

/// Why the tracker could not start.
#[derive(Debug)]
pub enum StartError {
    Ping(sqlx::Error),
    Load(LoadError),
    Bind(String, std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Ping(e) => write!(f, "Couldn't ping database - {e}"),
            StartError::Load(e) => write!(f, "{e}"),
            StartError::Bind(addr, e) => write!(f, "Couldn't listen on {addr} - {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running tracker: HTTP server and background tasks.
pub struct Tracker {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    store: Store,
    server: actix_web::dev::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
    deadline: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Tracker {
    /// Connects, loads every snapshot, starts the background tasks and serves on
    /// `listener`, or on the configured `addr` bound once the loads are done (the
    /// start-up order of SPEC §1.1 from the database ping on).
    pub async fn start(
        config: Config,
        listener: Option<TcpListener>,
    ) -> Result<Tracker, StartError> {
        let store = Store::new(&config.database);
        store.ping().await.map_err(StartError::Ping)?;
        let shared = Arc::new(Shared::new(Arc::new(config)));
        reload::load_all(&store, &shared.snapshots)
            .await
            .map_err(StartError::Load)?;

        let (stop, stopped) = watch::channel(false);
        let (deadline, deadline_rx) = watch::channel(None);
        let intervals = &shared.config.intervals;
        let tasks = vec![
            tokio::spawn(reload::run(
                store.clone(),
                Arc::clone(&shared),
                Duration::from_secs(u64::from(intervals.database_reload)),
                stopped.clone(),
            )),
            tokio::spawn(writer::run_unprune(
                Arc::clone(&shared.sink),
                store.clone(),
                Duration::from_secs(u64::from(intervals.flush)),
                shared.config.channels.torrent as usize,
                stopped,
                deadline_rx,
            )),
        ];

        let listener = match listener {
            Some(listener) => listener,
            None => bind(&shared.config.addr)
                .map_err(|e| StartError::Bind(shared.config.addr.clone(), e))?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(shared.config.addr.clone(), e))?;
        let server = crate::http::serve(Arc::clone(&shared), listener)
            .map_err(|e| StartError::Bind(shared.config.addr.clone(), e))?;
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        tracing::info!(
            "Ready and accepting new connections on {}",
            shared.config.addr
        );
        Ok(Tracker {
            shared,
            addr,
            store,
            server: handle,
            server_task,
            stop,
            deadline,
            tasks,
        })
    }

    /// A handle that sets the drain deadline from outside (signals).
    pub fn deadline(&self) -> watch::Sender<Option<Instant>> {
        self.deadline.clone()
    }

    /// The drain of SPEC §9: stop accepting and finish in-flight requests, stop the
    /// background tasks, then write what is pending until the deadline.
    pub async fn shutdown(self, drain_timeout: Duration) {
        if self.deadline.borrow().is_none() {
            self.deadline
                .send_replace(Some(Instant::now() + drain_timeout));
        }
        self.server.stop(true).await;
        let _ = self.server_task.await;
        tracing::info!("Now closed and not accepting any new connections");

        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }

        let mut deadline = self.deadline.subscribe();
        let batch = self.shared.config.channels.torrent as usize;
        let flush = writer::flush_unprune(&self.shared.sink, &self.store, batch, &mut deadline);
        tokio::pin!(flush);
        let mut reminder = tokio::time::interval_at(
            Instant::now() + Duration::from_secs(10),
            Duration::from_secs(10),
        );
        let drained = loop {
            tokio::select! {
                result = &mut flush => break result.is_ok(),
                _ = reminder.tick() => tracing::info!(
                    "Waiting for database flushing to finish. This can take a few minutes, please be patient!"
                ),
            }
        };
        if !drained {
            // The spill file that keeps these rows comes with the accounting writers.
            tracing::error!(
                "Could not write {} pending unprune rows before the drain deadline",
                self.shared.sink.unprune.len()
            );
        }
        self.store.pool.close().await;
        tracing::info!("Shutdown complete");
    }
}

/// Binds the listen address of SPEC §1.1: `:PORT` is every IPv4 and IPv6 address
/// (a dual-stack socket, or IPv4 only where IPv6 is unavailable); `IPV4:PORT`,
/// `[IPV6]:PORT` and `HOST:PORT` bind that address.
pub fn bind(addr: &str) -> std::io::Result<TcpListener> {
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad port in {addr:?}"),
            )
        })?;
        let any_v6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
        return bind_socket(any_v6, true)
            .or_else(|_| bind_socket(SocketAddr::from(([0, 0, 0, 0], port)), false));
    }
    let mut last_error = None;
    for candidate in addr.to_socket_addrs()? {
        match bind_socket(candidate, false) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr:?} resolves to nothing"),
        )
    }))
}

fn bind_socket(addr: SocketAddr, dual_stack: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // Lets a restarted tracker bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Waits for SIGINT or SIGTERM.
async fn signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// The whole life of the `chihaya` process; returns its exit code.
pub async fn run(options: Options) -> u8 {
    let loaded = match Config::load(&options.config) {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!("{}", error);
            return 1;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{}", warning);
    }
    let started = tokio::select! {
        started = Tracker::start(loaded.config, None) => started,
        _ = signal() => {
            // Nothing is pending before the tracker listens: there is nothing to drain.
            tracing::info!("Caught interrupt, shutting down...");
            tracing::info!("Shutdown complete");
            return 0;
        }
    };
    let tracker = match started {
        Ok(tracker) => tracker,
        Err(error) => {
            tracing::error!("{}", error);
            return 1;
        }
    };
    if let Err(e) = signal().await {
        tracing::error!("Cannot watch signals: {}", e);
    }
    tracing::info!("Caught interrupt, shutting down...");
    let deadline = tracker.deadline();
    deadline.send_replace(Some(Instant::now() + options.drain_timeout));
    // A second signal makes the deadline now; later ones are ignored.
    let hurry = tokio::spawn(async move {
        if signal().await.is_ok() {
            tracing::warn!("Second interrupt: no new database write will start");
            deadline.send_replace(Some(Instant::now()));
        }
    });
    tracker.shutdown(options.drain_timeout).await;
    hurry.abort();
    0
}
