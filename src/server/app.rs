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

use crate::accounting::spill::{self, Spill};
use crate::accounting::writer::Writers;
use crate::accounting::{Sink, Unprune};
use crate::cache;
use crate::config::{Config, Host, HostPort, ListenAddr};
use crate::metrics::Metrics;
use crate::record::{self, Recorder};
use crate::server::peer_cache;
use crate::server::purge;
use crate::server::recovery;
use crate::server::reload::{self, LoadError};
use crate::server::state::{unix_now, Shared};
use crate::store::{self, Store};

/// Command-line options of `chihaya`.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub peer_cache: PathBuf,
    pub spill: PathBuf,
    pub journal: PathBuf,
    pub drain_timeout: Duration,
}

/// Why the tracker could not start.
#[derive(Debug)]
pub enum StartError {
    Ping(sqlx::Error),
    Load(LoadError),
    Bind(String, std::io::Error),
    Spill(String),
    Events(String, std::io::Error),
    Journal(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Ping(e) => write!(f, "Couldn't ping database - {e}"),
            StartError::Load(e) => write!(f, "{e}"),
            StartError::Bind(addr, e) => write!(f, "Couldn't listen on {addr} - {e}"),
            StartError::Spill(problem) => write!(f, "{problem}"),
            StartError::Events(dir, e) => {
                write!(f, "Couldn't create the recorder directory {dir} - {e}")
            }
            StartError::Journal(problem) => write!(f, "{problem}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running tracker: HTTP server and background tasks.
pub struct Tracker {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    store: Store,
    writers: Arc<Writers>,
    peer_cache: PathBuf,
    server: actix_web::dev::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
    deadline: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<()>>,
}

/// A start-up halfway: everything that can fail without losing anything is done
/// (database loads, peer cache, events folder, the listener bound); what is left
/// replays the journal and the spill file, which must not be cut short
/// ([`Starting::finish`]).
pub struct Starting {
    shared: Arc<Shared>,
    store: Store,
    files: Files,
    journal: Option<recovery::Prepared>,
    addr: SocketAddr,
    http: crate::http::Prepared,
}

impl Tracker {
    /// Connects, loads every snapshot, binds, replays the journal and the spill file,
    /// starts the background tasks and serves on `listener` (or on the configured
    /// `addr`): [`Tracker::prepare`], then [`Starting::finish`].
    pub async fn start(
        config: Config,
        files: Files,
        listener: Option<TcpListener>,
    ) -> Result<Tracker, StartError> {
        Tracker::prepare(config, files, listener)
            .await?
            .finish()
            .await
    }

    /// The part of the start-up that may be given up at any point (a signal): it
    /// changes no file and queues nothing. Every step that can fail is here, so a
    /// start that goes on to replay rows cannot fail after it and exit with them in
    /// memory only (the spill file renamed, which the next start ignores).
    pub async fn prepare(
        config: Config,
        files: Files,
        listener: Option<TcpListener>,
    ) -> Result<Starting, StartError> {
        let metrics = Arc::new(Metrics::new(&config.channels));
        let mut store = Store::new(&config.database, &metrics);
        store.instance = config.instance.clone();
        store.ping().await.map_err(StartError::Ping)?;
        // Known before the first catalogue load, which reads the markers when there
        // are some (what of our own writes its rows show).
        store.commits = store::commits::exists(&store).await.map_err(|e| {
            StartError::Journal(format!(
                "Couldn't tell whether {} exists - {e}",
                store::commits::TABLE
            ))
        })?;
        let shared = Arc::new(Shared::new(Arc::new(config), metrics));
        // The peer cache is read on a blocking thread while the database loads; its
        // swarms then go to the torrents the database still has.
        let cache_path = files.peer_cache.clone();
        let cache = tokio::task::spawn_blocking(move || peer_cache::read(&cache_path));
        reload::load_all(&store, &shared)
            .await
            .map_err(StartError::Load)?;
        if let Ok(Some(restored)) = cache.await {
            let snapshots = &shared.snapshots;
            peer_cache::adopt(
                restored,
                &snapshots.catalogue.load(),
                &snapshots.swarms,
                &snapshots.peers,
            );
            // Only a tracker among several can have been out of a load balancer's ring.
            if !shared.config.instance.is_empty() {
                shared.absence.restored(snapshots.swarms.newest_announce());
            }
        }
        // transfer_ips6 is optional: without it IPv6 per-IP rows are skipped and
        // counted, and nothing else changes. Known before the spill file is replayed.
        match store::write::has_transfer_ips6(&store).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("transfer_ips6 is missing; IPv6 per-IP rows will not be written");
                shared.sink.set_transfer_ips6_exists(false);
            }
            Err(e) => tracing::warn!("Cannot tell whether transfer_ips6 exists: {}", e),
        }
        // Sums saturate at what the site's columns hold, so no client's numbers can
        // make MariaDB refuse a batch.
        match store::limits::load(&store).await {
            Ok(limits) => store.limits = Arc::new(limits),
            Err(e) => tracing::warn!(
                "Cannot read the accounting columns' types, assuming those of database/schema.sql: {}",
                e
            ),
        }
        // The journal directory is this process's from here (a second tracker on it
        // stops now), and the database's markers are read.
        let journal = if store.commits {
            Some(recovery::prepare(&store, &files.journal).await?)
        } else {
            None
        };
        if shared.config.record {
            let events =
                |e: std::io::Error| StartError::Events(files.events.display().to_string(), e);
            record::create_dir(&files.events).map_err(events)?;
            let recorder = Recorder::start(
                files.events.clone(),
                record::BUFFER_LINES,
                shared.metrics.recorder_dropped.clone(),
            )
            .map_err(events)?;
            let _ = shared.recorder.set(recorder);
        }
        let config_addr = shared.config.addr.to_string();
        let listener = match listener {
            Some(listener) => listener,
            None => {
                bind(&shared.config.addr).map_err(|e| StartError::Bind(config_addr.clone(), e))?
            }
        };
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(config_addr.clone(), e))?;
        // Connections wait in the listener's backlog until the server runs, once
        // everything below is done.
        let http = crate::http::prepare(Arc::clone(&shared), listener)
            .map_err(|e| StartError::Bind(config_addr.clone(), e))?;
        Ok(Starting {
            shared,
            store,
            files,
            journal,
            addr,
            http,
        })
    }
}

impl Starting {
    /// Replays the previous run's journal (with commit markers) and spill file, starts
    /// the writers, reloader, purge and serializer, and serves. Not to be cut short:
    /// a signal meanwhile is taken once it is done, by the drain.
    pub async fn finish(self) -> Result<Tracker, StartError> {
        let Starting {
            shared,
            store,
            files,
            journal,
            addr,
            http,
        } = self;
        // With commit markers the journal of the previous run is replayed (what the
        // database lacks) before anything new happens, and this run's journal starts.
        match journal {
            Some(prepared) => {
                let journal = recovery::recover(&shared, prepared)?;
                shared.sink.set_journal(journal);
            }
            None => recovery::warn_unmarked(&files.journal),
        }
        let spill = Arc::new(Spill::new(files.spill));
        replay_spill(&shared.sink, &spill)?;
        count_replayed_writes(&shared);
        let (stop, stopped) = watch::channel(false);
        let (deadline, deadline_rx) = watch::channel(None);
        let config = &shared.config;
        let writers = Arc::new(Writers {
            sink: Arc::clone(&shared.sink),
            swarms: Arc::clone(&shared.snapshots.swarms),
            store: store.clone(),
            spill,
            log_flushes: config.log_flushes,
            flush_groups: config.flush_groups,
        });
        let seconds = |s: u32| Duration::from_secs(u64::from(s));
        let mut tasks = writers.spawn_all(seconds(config.intervals.flush), &stopped, &deadline_rx);
        tasks.push(tokio::spawn(reload::run(
            store.clone(),
            Arc::clone(&shared),
            seconds(config.reload_period()),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(purge::run(
            Arc::clone(&shared),
            seconds(config.intervals.purge_inactive_peers),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(peer_cache::run_serializer(
            Arc::clone(&shared),
            files.peer_cache.clone(),
            seconds(config.intervals.database_serialize),
            stopped,
        )));

        let server = http.run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        tracing::info!("Ready and accepting new connections on {}", addr);
        Ok(Tracker {
            shared,
            addr,
            store,
            writers,
            peer_cache: files.peer_cache,
            server: handle,
            server_task,
            stop,
            deadline,
            tasks,
        })
    }
}

impl Tracker {
    /// Wakes every writer and waits until nothing is pending or being written; false
    /// if that takes longer than `within`.
    pub async fn flush(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        let sink = &self.shared.sink;
        loop {
            sink.wake_all();
            if sink.is_idle() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a reload cycle now and returns once it is done (for tests and tools:
    /// failed loads are logged, as in a periodic cycle).
    pub async fn reload_now(&self) {
        self.shared.reload_trigger.run_now().await;
    }

    /// Asks for a reload cycle now, without waiting for it (SIGHUP).
    pub fn ask_reload(&self) {
        self.shared.reload_trigger.ask();
    }

    /// Runs a purge now and returns once it is done.
    pub async fn purge_now(&self) {
        self.shared.purge_trigger.run_now().await;
    }

    /// A handle that sets the drain deadline from outside (signals).
    pub fn deadline(&self) -> watch::Sender<Option<Instant>> {
        self.deadline.clone()
    }

    /// The drain of SPEC §9: stop accepting and finish in-flight requests, stop the
    /// background tasks, write what is pending until the deadline, spill the rest.
    pub async fn shutdown(self, drain_timeout: Duration) {
        if self.deadline.borrow().is_none() {
            self.deadline
                .send_replace(Some(Instant::now() + drain_timeout));
        }
        self.server.stop(true).await;
        let _ = self.server_task.await;
        tracing::info!("Now closed and not accepting any new connections");

        // Writers finish the batch they are on (or give up at the deadline) and stop.
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let shared = Arc::clone(&self.shared);
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(recorder) = shared.recorder.get() {
                recorder.close();
            }
        })
        .await;

        // The peer cache is written meanwhile, not after the database drain (step 3).
        let (shared, cache_path) = (Arc::clone(&self.shared), self.peer_cache.clone());
        let cache_write = tokio::task::spawn_blocking(move || {
            let now = shared.clock.now();
            peer_cache::save(&cache_path, &shared, now)
        });

        let deadline = self.deadline.subscribe();
        let drain = self.writers.drain(&deadline);
        tokio::pin!(drain);
        let mut reminder = tokio::time::interval_at(
            Instant::now() + Duration::from_secs(10),
            Duration::from_secs(10),
        );
        loop {
            tokio::select! {
                _ = &mut drain => break,
                _ = reminder.tick() => tracing::info!(
                    "Waiting for database flushing to finish. This can take a few minutes, please be patient!"
                ),
            }
        }
        let _ = cache_write.await;
        match self.shared.sink.journal() {
            // The journal holds what the database did not take: the next start
            // writes it, each row exactly once.
            Some(journal) => {
                let kept = self.writers.keep_pending();
                if kept > 0 {
                    tracing::info!(
                        "{} unwritten rows stay in the journal {}; the next start writes them",
                        kept,
                        journal.dir().display()
                    );
                }
                let journal = Arc::clone(journal);
                let _ = tokio::task::spawn_blocking(move || journal.close()).await;
            }
            None => {
                self.writers.spill_pending();
            }
        }
        self.store.close().await;
        tracing::info!("Shutdown complete");
    }
}

/// Files the tracker keeps next to the database.
#[derive(Clone, Debug)]
pub struct Files {
    pub peer_cache: PathBuf,
    pub spill: PathBuf,
    /// The journal's directory.
    pub journal: PathBuf,
    /// The recorder's directory (`events/` in the working directory).
    pub events: PathBuf,
}

/// Merges the rows of a previous run's spill file into the sink and renames the file
/// `<path>.replayed-<unix seconds>` (SPEC §9).
/// The completions and unprunes the replays queued (the journal, the spill file) are
/// not in the catalogue yet: they count in `downloaded` and in the status announces
/// see until a catalogue shows them, like those of this run.
fn count_replayed_writes(shared: &Shared) {
    let sink = &shared.sink;
    let (torrents, unprunes) = (sink.torrents.take(), sink.unprune.take());
    let completions: Vec<_> = torrents.iter().filter(|row| row.snatched > 0).collect();
    if !completions.is_empty() || !unprunes.is_empty() {
        let hashes = shared.snapshots.catalogue.load().hashes_by_id();
        let swarms = &shared.snapshots.swarms;
        for row in completions {
            if let Some(hash) = hashes.get(&row.id) {
                swarms
                    .shard(row.id)
                    .enter(row.id, *hash)
                    .completed(row.snatched);
            }
        }
        for Unprune(id) in &unprunes {
            if let Some(hash) = hashes.get(id) {
                swarms.shard(*id).enter(*id, *hash).unprune();
            }
        }
    }
    sink.torrents.restore(torrents);
    sink.unprune.restore(unprunes);
}

fn replay_spill(sink: &Sink, spill: &Spill) -> Result<usize, StartError> {
    let path = spill.path();
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(StartError::Spill(format!(
                "spill file {}: {e}",
                path.display()
            )))
        }
    };
    let replayed = spill::parse(path, &text).map_err(|e| StartError::Spill(e.to_string()))?;
    if let Some(line) = replayed.torn_tail {
        tracing::warn!(
            "spill file {} line {}: unterminated last line ignored",
            path.display(),
            line
        );
    }
    let count = replayed.lines.len();
    // Renamed before its rows are merged: if the rename fails the rows are not
    // queued (nor journaled), and the next start reads the file again, once.
    let mut renamed = path.as_os_str().to_owned();
    renamed.push(format!(".replayed-{}", unix_now()));
    // A file an older version wrote may be readable by all; the kept copy is not.
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(cache::file::PRIVATE_MODE);
        if let Err(e) = std::fs::set_permissions(path, private) {
            tracing::warn!(
                "spill file {}: cannot make it private: {}",
                path.display(),
                e
            );
        }
    }
    std::fs::rename(path, &renamed).map_err(|e| {
        StartError::Spill(format!(
            "spill file {}: cannot rename to {}: {e}",
            path.display(),
            PathBuf::from(&renamed).display()
        ))
    })?;
    for line in replayed.lines {
        sink.replay_line(line);
    }
    tracing::info!("Replayed {} spilled rows from {}", count, path.display());
    Ok(count)
}

/// How much less CPU priority (nice) the background threads have than the threads
/// answering requests.
const BACKGROUND_NICENESS: libc::c_int = 5;

/// Lowers the calling thread's CPU priority: for the threads of background work
/// (reloads decoding a million rows, flushes, purges, peer cache writes), so that on
/// a saturated machine they take what announces leave rather than an equal share.
/// Nothing waits on them: deltas coalesce a little longer, and the drain at shutdown
/// runs at this priority too, with its own deadline. Best effort: failing changes
/// nothing.
pub fn background_priority() {
    // SAFETY: gettid and setpriority only read their arguments; on Linux a thread id
    // as `who` sets that thread's nice value alone.
    unsafe {
        let thread = libc::gettid();
        let _ = libc::setpriority(
            libc::PRIO_PROCESS,
            thread as libc::id_t,
            BACKGROUND_NICENESS,
        );
    }
}

/// Binds the listen address of SPEC §1.1: `:PORT` is every IPv4 and IPv6 address
/// (a dual-stack socket, or IPv4 only where IPv6 is unavailable); `IPV4:PORT` and
/// `[IPV6]:PORT` bind that address; `HOST:PORT` is looked up now and binds the first of
/// its addresses that can be bound.
pub fn bind(addr: &ListenAddr) -> std::io::Result<TcpListener> {
    let (host, port) = match addr {
        ListenAddr::Any(port) => {
            let any_v6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, *port));
            return bind_socket(any_v6, true)
                .or_else(|_| bind_socket(SocketAddr::from(([0, 0, 0, 0], *port)), false));
        }
        ListenAddr::At(HostPort {
            host: Host::Ip(ip),
            port,
        }) => return bind_socket(SocketAddr::new(*ip, *port), false),
        ListenAddr::At(HostPort {
            host: Host::Name(name),
            port,
        }) => (name, *port),
    };
    let mut last_error = None;
    for candidate in (host.as_str(), port).to_socket_addrs()? {
        match bind_socket(candidate, false) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} resolves to nothing"),
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

/// SIGINT and SIGTERM, watched from start-up to exit by one pair of streams, and
/// SIGHUP. A stream only reports signals that came after it was made, and the process
/// no longer dies of one once the first stream exists: streams made anew for each wait
/// would lose a signal that came between two waits (one sent right after `Ready`, say),
/// and the process would never stop.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    /// `systemctl reload`: a reload cycle now. Watched from the start, so that a
    /// hangup never ends the process (its default action) without the drain.
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next SIGINT or SIGTERM, asking `tracker` for a reload at each SIGHUP
    /// meanwhile.
    async fn next_running(&mut self, tracker: &Tracker) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => {
                    tracing::info!("Caught hangup, reloading from database");
                    tracker.ask_reload();
                }
            }
        }
    }

    /// The next SIGINT or SIGTERM (or one that came since the previous call).
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
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
    let files = Files {
        peer_cache: options.peer_cache.clone(),
        spill: options.spill.clone(),
        journal: options.journal.clone(),
        events: PathBuf::from("events"),
    };
    let mut signals = match Signals::watch() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!("Cannot watch signals: {}", e);
            return 1;
        }
    };
    let prepared = tokio::select! {
        prepared = Tracker::prepare(loaded.config, files, None) => prepared,
        () = signals.next() => {
            // Nothing is queued before the replays: there is nothing to drain.
            tracing::info!("Caught interrupt, shutting down...");
            tracing::info!("Shutdown complete");
            return 0;
        }
    };
    // The replays are not cut short: a signal meanwhile waits in `signals` and starts
    // the drain as soon as the tracker runs.
    let started = match prepared {
        Ok(starting) => starting.finish().await,
        Err(error) => Err(error),
    };
    let tracker = match started {
        Ok(tracker) => tracker,
        Err(error) => {
            tracing::error!("{}", error);
            return 1;
        }
    };
    signals.next_running(&tracker).await;
    tracing::info!("Caught interrupt, shutting down...");
    let deadline = tracker.deadline();
    deadline.send_replace(Some(Instant::now() + options.drain_timeout));
    // A second signal makes the deadline now; later ones are ignored.
    let hurry = tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("Second interrupt: no new database write will start");
        deadline.send_replace(Some(Instant::now()));
    });
    tracker.shutdown(options.drain_timeout).await;
    hurry.abort();
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_of_both_families() {
        let parse = |text| ListenAddr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        for text in ["127.0.0.1:0", "[::1]:0", "localhost:0"] {
            let listener = bind(&parse(text)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                listener.local_addr().map(|a| a.ip().is_loopback()).ok(),
                Some(true)
            );
        }
        // `:PORT` is one socket for both families. It listens on every interface, so it
        // is bound only for the moment it takes to connect to it over both loopbacks.
        let any = bind(&parse(":0")).expect(":0");
        let port = any.local_addr().expect("bound").port();
        for target in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
            std::net::TcpStream::connect(&target).unwrap_or_else(|e| panic!("{target}: {e}"));
        }
    }
}
