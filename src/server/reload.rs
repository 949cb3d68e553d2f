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

/// Loads one snapshot and swaps it in; returns the rows loaded.
pub async fn load(store: &Store, shared: &Shared, kind: Kind) -> Result<usize, LoadError> {
    let snapshots = &shared.snapshots;
    let fail = |error| LoadError { kind, error };
    let started = Instant::now();
    let rows = match kind {
        Kind::Users => {
            let users = store::load_users(store).await.map_err(fail)?;
            let n = users.len();
            snapshots.users.store(Arc::new(users));
            n
        }
        Kind::HitAndRuns => {
            let pairs = store::load_hit_and_runs(store).await.map_err(fail)?;
            let n = pairs.len();
            snapshots.hit_and_runs.store(Arc::new(pairs));
            n
        }
        Kind::Torrents => {
            let swarms = &snapshots.swarms;
            let expected = snapshots.catalogue.load().len();
            let number = swarms.begin_load();
            let marks = if store.commits {
                let writers = [
                    crate::accounting::Kind::Torrents,
                    crate::accounting::Kind::Unprune,
                ];
                store::Marks::Read(writers.map(crate::accounting::Kind::name))
            } else {
                store::Marks::Assumed(number - 1)
            };
            let (catalogue, duplicates) = store::load_catalogue(store, number, marks, expected)
                .await
                .map_err(fail)?;
            for id in duplicates {
                tracing::warn!("Skipping torrents row {}: duplicate info_hash", id.0);
            }
            let n = catalogue.len();
            let next = Arc::new(catalogue);
            snapshots.catalogue.store(Arc::clone(&next));
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
            if on != snapshots.global_freeleech() {
                tracing::info!("Global freeleech is now {}", if on { "on" } else { "off" });
            }
            snapshots.set_global_freeleech(on);
            1
        }
        Kind::Clients => {
            let clients = store::load_clients(store).await.map_err(fail)?;
            let n = clients.len();
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
    futures_util::future::try_join_all(Kind::ALL.map(|kind| load(store, shared, kind))).await?;
    Ok(())
}

/// One reload cycle: each snapshot on its own; a failure keeps that snapshot's old value.
pub async fn reload_all(store: &Store, shared: &Shared) {
    for kind in Kind::ALL {
        if let Err(error) = load(store, shared, kind).await {
            let label = kind.metric_label().unwrap_or("global_freeleech");
            shared
                .metrics
                .reload_failures
                .with_label_values(&[label])
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
