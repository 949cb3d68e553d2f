//! The writers (SPEC §8.1, §8.7–8.8, §9): one task per table takes what is pending,
//! writes it in batches through `store` with the retry policy, sets aside a row the
//! database refuses for good, and at shutdown keeps trying until the drain deadline,
//! after which the rest goes to the spill file.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::spill::{Spill, SpillLine};
use super::table::{Kind, Row};
use super::{GroupBump, Sink, Unprune};
use crate::log::fmt_duration;
use crate::store::retry::{Attempts, Reason};
use crate::store::{write, Store};
use crate::tracker::{
    HistoryDelta, SnatchDelta, TorrentDelta, TransferIp6Delta, TransferIpDelta, UserDelta,
};

/// The shutdown drain deadline: None while running normally; set at the first signal,
/// moved to "now" by a second one.
pub type Deadline = watch::Receiver<Option<Instant>>;

/// The deadline passed before everything was written; the rest is still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned;

/// Resolves once the deadline (as it may change) has passed; never without one.
async fn deadline_passed(deadline: &mut Deadline) {
    loop {
        let current = *deadline.borrow_and_update();
        match current {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => return,
                    changed = deadline.changed() => {
                        if changed.is_err() {
                            tokio::time::sleep_until(at).await;
                            return;
                        }
                    }
                }
            }
            None => {
                if deadline.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

fn is_past(deadline: &Deadline) -> bool {
    deadline.borrow().is_some_and(|at| at <= Instant::now())
}

/// How writing one batch ended.
enum Outcome {
    Written,
    /// A failure of class `data`: some row in it is refused. Such a refusal is about
    /// the values, not the moment, so it is not retried as it is: the batch is split
    /// at once (no back-off) until the refused row is alone, and the others go in
    /// within the same flush.
    Refused(String),
    Abandoned,
}

/// Everything a writer needs; shared by all writer tasks.
pub struct Writers {
    pub sink: Arc<Sink>,
    pub store: Store,
    pub spill: Arc<Spill>,
    pub log_flushes: bool,
    pub flush_groups: bool,
}

impl Writers {
    /// Writes everything pending in `R`'s table. Rows that could not be written before
    /// the deadline are put back.
    pub async fn flush<R: Row>(&self, deadline: &mut Deadline) -> Result<(), Abandoned> {
        let table = R::table(&self.sink);
        // Restored rows are pending again before the guard drops: never "idle" between.
        let (mut rows, _in_flight) = table.take_for_writing();
        if rows.is_empty() {
            return Ok(());
        }
        R::prepare(&self.sink, &mut rows);
        if self.log_flushes {
            tracing::info!("{} Flushing {}", R::KIND.log_name(), rows.len());
        }
        let max = table.capacity.min(write::MAX_BINDS / R::BINDS);
        // Batches still to write, the next one last.
        let mut todo: Vec<Vec<R>> = Vec::new();
        let mut rest = rows.as_slice();
        for size in write::batch_sizes(rows.len(), max) {
            let (batch, after) = rest.split_at(size);
            todo.push(batch.to_vec());
            rest = after;
        }
        todo.reverse();
        while let Some(batch) = todo.pop() {
            match self.write_batch(&batch, deadline).await {
                Outcome::Written => R::after_commit(&self.sink, &batch, self.flush_groups),
                Outcome::Refused(error) if batch.len() == 1 => self.set_aside(&batch[0], &error),
                Outcome::Refused(_) => {
                    // Halve until the refused row is alone; the others get written.
                    let (first, second) = batch.split_at(batch.len() / 2);
                    todo.push(second.to_vec());
                    todo.push(first.to_vec());
                }
                Outcome::Abandoned => {
                    table.restore(
                        batch
                            .into_iter()
                            .chain(todo.into_iter().flatten())
                            .collect(),
                    );
                    return Err(Abandoned);
                }
            }
        }
        Ok(())
    }

    /// One statement, retried until it commits, its rows are found refused, or the
    /// deadline passes (no attempt starts after it; one in progress finishes).
    async fn write_batch<R: Row>(&self, batch: &[R], deadline: &mut Deadline) -> Outcome {
        let stats = &R::table(&self.sink).stats;
        let mut attempts = Attempts::default();
        loop {
            if is_past(deadline) {
                return Outcome::Abandoned;
            }
            let started = std::time::Instant::now();
            match R::write(&self.store, batch).await {
                Ok(_) => {
                    stats.committed(batch.len(), started.elapsed().as_secs_f64());
                    return Outcome::Written;
                }
                Err(error) => {
                    let (reason, wait) =
                        self.store
                            .policy
                            .on_failure(&self.store.stats, &mut attempts, &error);
                    stats.retry(reason);
                    if reason == Reason::Data {
                        let code = crate::store::retry::error_code(&error).unwrap_or_default();
                        let message = crate::store::retry::server_message(&error);
                        return Outcome::Refused(format!("SQL error {code}: {message}"));
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = deadline_passed(deadline) => return Outcome::Abandoned,
                    }
                }
            }
        }
    }

    /// Saves a row the database refuses to the spill file, with the reason, so the
    /// rest of its table can go on.
    fn set_aside<R: Row>(&self, row: &R, error: &str) {
        let line = SpillLine::new(row.to_spill(), Some(error.to_owned()));
        match self.spill.append(std::slice::from_ref(&line)) {
            Ok(()) => {
                R::table(&self.sink).stats.spilled.inc();
                tracing::error!(
                    "Set aside a {} row the database refuses ({}); saved to {}",
                    R::KIND.name(),
                    error,
                    self.spill.path().display()
                );
            }
            Err(e) => tracing::error!(
                "Lost a {} row the database refuses ({}): cannot write {}: {}",
                R::KIND.name(),
                error,
                self.spill.path().display(),
                e
            ),
        }
    }

    /// Applies the latest purge cutoff to `transfer_history.active`. Not spilled: the
    /// next purge asks again.
    async fn deactivate(&self, deadline: &mut Deadline) {
        let Some(cutoff) = self.sink.take_deactivation() else {
            return;
        };
        let started = std::time::Instant::now();
        let mut attempts = Attempts::default();
        loop {
            if is_past(deadline) {
                return;
            }
            match write::deactivate_history(&self.store, cutoff).await {
                Ok(changed) => {
                    tracing::info!(
                        "Updated {} inactive peers in database ({})",
                        changed,
                        fmt_duration(started.elapsed())
                    );
                    return;
                }
                Err(error) => {
                    let (reason, wait) =
                        self.store
                            .policy
                            .on_failure(&self.store.stats, &mut attempts, &error);
                    self.sink.inactive_peers.retry(reason);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = deadline_passed(deadline) => return,
                    }
                }
            }
        }
    }

    /// A table's writer: flushes every `period`, or at once when the table reaches half
    /// its capacity, until `stop` turns true.
    pub async fn run<R: Row>(
        self: Arc<Self>,
        period: Duration,
        mut stop: watch::Receiver<bool>,
        mut deadline: Deadline,
    ) {
        let table = R::table(&self.sink);
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = table.wake.notified() => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            // Without a deadline a flush returns only once everything is written.
            let _ = self.flush::<R>(&mut deadline).await;
            if R::KIND == Kind::TransferHistory {
                self.deactivate(&mut deadline).await;
            }
        }
    }

    /// Starts one writer task per table.
    pub fn spawn_all(
        self: &Arc<Self>,
        period: Duration,
        stop: &watch::Receiver<bool>,
        deadline: &Deadline,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let s = || (Arc::clone(self), stop.clone(), deadline.clone());
        let mut tasks = Vec::new();
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<TorrentDelta>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<UserDelta>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<HistoryDelta>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<TransferIpDelta>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<TransferIp6Delta>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<SnatchDelta>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<Unprune>(period, st, d)));
        let (w, st, d) = s();
        tasks.push(tokio::spawn(w.run::<GroupBump>(period, st, d)));
        tasks
    }

    /// The final flush of every table (SPEC §9 step 4), the writer tasks being stopped:
    /// tables in parallel, group bumps after the torrents that cause them.
    pub async fn drain(&self, deadline: &Deadline) -> Result<(), Abandoned> {
        let d = || deadline.clone();
        let (mut d1, mut d2, mut d3, mut d4, mut d5, mut d6, mut d7) =
            (d(), d(), d(), d(), d(), d(), d());
        let torrents_then_groups = async {
            let torrents = self.flush::<TorrentDelta>(&mut d1).await;
            torrents.and(self.flush::<GroupBump>(&mut d1).await)
        };
        let results = tokio::join!(
            torrents_then_groups,
            self.flush::<UserDelta>(&mut d2),
            self.flush::<HistoryDelta>(&mut d3),
            self.flush::<TransferIpDelta>(&mut d4),
            self.flush::<TransferIp6Delta>(&mut d7),
            self.flush::<SnatchDelta>(&mut d5),
            self.flush::<Unprune>(&mut d6),
        );
        results.0?;
        results.1?;
        results.2?;
        results.3?;
        results.4?;
        results.5?;
        results.6
    }

    /// Appends every row still pending to the spill file (SPEC §9 step 5); returns how
    /// many were saved.
    pub fn spill_pending(&self) -> usize {
        let mut lines = Vec::new();
        let mut counted = Vec::new();
        for kind in Kind::ALL {
            let rows = self.sink.table(kind).take_spill();
            counted.push((kind, rows.len()));
            lines.extend(rows.into_iter().map(|row| SpillLine::new(row, None)));
        }
        if lines.is_empty() {
            return 0;
        }
        match self.spill.append(&lines) {
            Ok(()) => {
                for (kind, n) in counted {
                    self.sink.stats(kind).spilled.inc_by(n as u64);
                }
                tracing::info!(
                    "Saved {} unwritten rows to {}",
                    lines.len(),
                    self.spill.path().display()
                );
                lines.len()
            }
            Err(e) => {
                tracing::error!(
                    "Lost {} unwritten rows: cannot write {}: {}",
                    lines.len(),
                    self.spill.path().display(),
                    e
                );
                0
            }
        }
    }
}
