//! Loading the snapshots from MariaDB at start and every `database_reload` seconds
//! after (SPEC §7). Each snapshot loads independently and is swapped in whole; no lock
//! that requests use is held while the database answers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::log::fmt_duration;
use crate::server::state::Shared;
use crate::store::{self, Store};

/// One of the six snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Users,
    HitAndRuns,
    Torrents,
    GroupFreeleech,
    GlobalFreeleech,
    Clients,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Users,
        Kind::HitAndRuns,
        Kind::Torrents,
        Kind::GroupFreeleech,
        Kind::GlobalFreeleech,
        Kind::Clients,
    ];

    /// As in `Failed to load <what> from database`.
    fn what(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::HitAndRuns => "hit and runs",
            Kind::Torrents => "torrents",
            Kind::GroupFreeleech => "group freeleech",
            Kind::GlobalFreeleech => "global freeleech",
            Kind::Clients => "clients",
        }
    }

    /// The `type` of `chihaya_reload_seconds`; global freeleech has none.
    fn metric_label(self) -> Option<&'static str> {
        match self {
            Kind::Users => Some("users"),
            Kind::HitAndRuns => Some("hit_and_runs"),
            Kind::Torrents => Some("torrents"),
            Kind::GroupFreeleech => Some("group_freeleech"),
            Kind::GlobalFreeleech => None,
            Kind::Clients => Some("clients"),
        }
    }

    /// The `type` of `chihaya_reload_failures_total` and `chihaya_push_drift_total`.
    fn type_label(self) -> &'static str {
        self.metric_label().unwrap_or("global_freeleech")
    }

    /// As in `<Done> load complete`.
    fn done(self) -> &'static str {
        match self {
            Kind::Users => "User",
            Kind::HitAndRuns => "Hit and run",
            Kind::Torrents => "Torrent",
            Kind::GroupFreeleech => "Group freeleech",
            Kind::GlobalFreeleech => "Global freeleech",
            Kind::Clients => "Client list",
        }
    }
}

/// A snapshot that could not be loaded.
#[derive(Debug)]
pub struct LoadError {
    pub kind: Kind,
    pub error: sqlx::Error,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Failed to load {} from database: {}",
            self.kind.what(),
            self.error
        )
    }
}

impl std::error::Error for LoadError {}

/// Which load this is: the first, at start, or a reload, which reconciles what was
/// pushed meanwhile with the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cycle {
    Start,
    Reload,
}

/// Loads one snapshot and swaps it in; returns the rows loaded.
///
/// What the site pushed stays laid over the new snapshot while the load may not show
/// it: the pushes numbered after the load began ([`crate::tracker::Pushes`]). On a
/// reload with the push API on, the rows that changed though nothing was pushed count
/// in `chihaya_push_drift_total`.
pub async fn load(
    store: &Store,
    shared: &Shared,
    kind: Kind,
    cycle: Cycle,
) -> Result<usize, LoadError> {
    let snapshots = &shared.snapshots;
    let pushes = &snapshots.pushes;
    let fail = |error| LoadError { kind, error };
    let counts_drift = cycle == Cycle::Reload && shared.config.push_enabled();
    let drift = |n: u64| {
        if counts_drift && n > 0 {
            shared
                .metrics
                .push_drift
                .with_label_values(&[kind.type_label()])
                .inc_by(n);
            tracing::info!(
                "{} reload: {} rows changed that no push had",
                kind.done(),
                n
            );
        }
    };
    let started = Instant::now();
    // The pushes the rows read from here on show (the site writes, then pushes).
    let shown = pushes.clock.now();
    let rows = match kind {
        Kind::Users => {
            let users = store::load_users(store)
                .await
                .map_err(fail)?
                .with_pushes(Arc::clone(&pushes.users));
            let n = users.loaded();
            if counts_drift {
                drift(users.drift(&snapshots.users.load(), shown));
            }
            snapshots.users.store(Arc::new(users));
            pushes.users.settle(shown);
            n
        }
        Kind::HitAndRuns => {
            let pairs = store::load_hit_and_runs(store)
                .await
                .map_err(fail)?
                .with_pushes(Arc::clone(&pushes.hit_and_runs));
            if counts_drift {
                let disabled = snapshots.users.load().download_disabled();
                drift(pairs.drift(&snapshots.hit_and_runs.load(), shown, &disabled));
            }
            snapshots.hit_and_runs.store(Arc::new(pairs));
            pushes.hit_and_runs.settle(shown);
            snapshots.hit_and_runs.load().len()
        }
        Kind::Torrents => {
            let swarms = &snapshots.swarms;
            let expected = snapshots.catalogue.load().loaded();
            let number = swarms.begin_load();
            let marks = if store.commits {
                let writers = [
                    crate::accounting::Kind::Torrents,
                    crate::accounting::Kind::Unprune,
                ];
                store::Marks::Read(writers.map(|kind| store.marker(kind.name())))
            } else {
                store::Marks::Assumed(number - 1)
            };
            let (catalogue, duplicates) = store::load_catalogue(store, number, marks, expected)
                .await
                .map_err(fail)?;
            for id in duplicates {
                tracing::warn!("Skipping torrents row {}: duplicate info_hash", id.0);
            }
            let catalogue = catalogue.with_pushes(Arc::clone(&pushes.torrents));
            if counts_drift {
                drift(catalogue.drift(&snapshots.catalogue.load(), shown));
            }
            let n = catalogue.loaded();
            let next = Arc::new(catalogue);
            snapshots.catalogue.store(Arc::clone(&next));
            pushes.torrents.settle(shown);
            // Torrents the site deleted (or whose hash is another id's now) lose their
            // swarms and take their peers out of the gauges; an announce that took the
            // previous catalogue reads the new one before touching a swept shard.
            swarms.sweep(&next, &snapshots.peers);
            n
        }
        Kind::GroupFreeleech => {
            let groups = store::load_group_freeleech(store).await.map_err(fail)?;
            let n = groups.len();
            snapshots.group_freeleech.store(Arc::new(groups));
            n
        }
        Kind::GlobalFreeleech => {
            let on = store::load_global_freeleech(store).await.map_err(fail)?;
            let small = pushes.lock_small();
            if small.global_freeleech > shown {
                // Pushed while the load ran: the push is the newer word.
                return Ok(1);
            }
            if on != snapshots.global_freeleech() {
                drift(1);
                tracing::info!("Global freeleech is now {}", if on { "on" } else { "off" });
            }
            snapshots.set_global_freeleech(on);
            1
        }
        Kind::Clients => {
            let mut clients = store::load_clients(store).await.map_err(fail)?;
            let n = clients.len();
            let mut small = pushes.lock_small();
            small.clients.retain(|(push, _)| *push > shown);
            for (_, change) in &small.clients {
                clients = clients.changed(change);
            }
            if counts_drift {
                drift(clients.drift(&snapshots.clients.load()));
            }
            snapshots.clients.store(Arc::new(clients));
            n
        }
    };
    if let Some(label) = kind.metric_label() {
        shared
            .metrics
            .reload_seconds
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
    }
    if kind != Kind::GlobalFreeleech {
        tracing::info!(
            "{} load complete ({} rows, {})",
            kind.done(),
            rows,
            fmt_duration(started.elapsed())
        );
    }
    Ok(rows)
}

/// The start-up load: every snapshot at once (the small ones wait on the database
/// while the torrents decode), stopping at the first failure.
pub async fn load_all(store: &Store, shared: &Shared) -> Result<(), LoadError> {
    futures_util::future::try_join_all(
        Kind::ALL.map(|kind| load(store, shared, kind, Cycle::Start)),
    )
    .await?;
    Ok(())
}

/// One reload cycle: each snapshot on its own; a failure keeps that snapshot's old value.
pub async fn reload_all(store: &Store, shared: &Shared) {
    for kind in Kind::ALL {
        if let Err(error) = load(store, shared, kind, Cycle::Reload).await {
            shared
                .metrics
                .reload_failures
                .with_label_values(&[kind.type_label()])
                .inc();
            tracing::error!("{}", error);
        }
    }
    crate::server::memory::release_free_pages();
}

/// Reloads `period` after the previous cycle ended (or when asked, through
/// `shared.reload_trigger`), until `stop` turns true.
pub async fn run(
    store: Store,
    shared: Arc<crate::server::state::Shared>,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let trigger = &shared.reload_trigger;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = trigger.asked() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        trigger.begin();
        tokio::select! {
            () = reload_all(&store, &shared) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        trigger.finish();
    }
}
