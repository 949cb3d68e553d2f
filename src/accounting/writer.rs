//! The writers (SPEC §8.1, §8.7–8.8, §9): one task per table takes what is pending,
//! writes it in batches through `store` with the retry policy, sets aside a row the
//! database refuses for good, and at shutdown keeps trying until the drain deadline,
//! after which the rest goes to the spill file.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::spill::{Spill, SpillLine};
use super::table::{Kind, Row, Table};
use super::{Deactivation, GroupBump, Sink, Unprune};
use crate::journal::{Cut, Journal};
use crate::log::fmt_duration;
use crate::store::retry::{Attempts, Reason};
use crate::store::{commits, write, Store};
use crate::tracker::{
    HistoryDelta, SnatchDelta, Swarms, TorrentDelta, TransferIp6Delta, TransferIpDelta, UserDelta,
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

/// The back-off before a retry; Abandoned if the deadline passes first.
async fn pause(wait: Duration, deadline: &mut Deadline) -> Result<(), Abandoned> {
    tokio::select! {
        () = tokio::time::sleep(wait) => Ok(()),
        () = deadline_passed(deadline) => Err(Abandoned),
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

/// Statements of at most `capacity` rows (and MariaDB's placeholder limit), in sizes
/// the connection has prepared before; the first to write last.
fn batches<R: Row>(rows: &[R], capacity: usize) -> Vec<Vec<R>> {
    let max = capacity.min(write::MAX_BINDS / R::BINDS);
    let mut todo = Vec::new();
    let mut rest = rows;
    for size in write::batch_sizes(rows.len(), max) {
        let (batch, after) = rest.split_at(size);
        todo.push(batch.to_vec());
        rest = after;
    }
    todo.reverse();
    todo
}

/// What a refused row is set aside with.
fn refusal(error: &sqlx::Error) -> String {
    let code = crate::store::retry::error_code(error).unwrap_or_default();
    let message = crate::store::retry::server_message(error);
    format!("SQL error {code}: {message}")
}

/// How an attempt at a marked flush ended well.
enum Marked {
    Committed,
    /// The marker showed an earlier attempt had committed.
    AlreadyIn,
}

/// Everything a writer needs; shared by all writer tasks.
pub struct Writers {
    pub sink: Arc<Sink>,
    /// Told which flush took the writes a catalogue can show (completions, unprunes).
    pub swarms: Arc<Swarms>,
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
        let journal = self.sink.journal().filter(|_| R::KIND.journaled());
        // Restored rows are pending again before the guard drops: never "idle" between.
        let (mut rows, _in_flight, cut) = match journal {
            Some(journal) => {
                let ((detached, guard), cut) =
                    journal.cut(R::KIND.index(), || table.detach_for_writing());
                (Table::<R>::sorted(detached), guard, Some(cut))
            }
            None => {
                let (rows, guard) = table.take_for_writing();
                (rows, guard, None)
            }
        };
        if rows.is_empty() {
            // Nothing of this table came before the cut: the database has every flush
            // up to it.
            if let (Some(journal), Some(cut)) = (journal, cut) {
                journal.committed(R::KIND.index(), cut.epoch);
            }
            return Ok(());
        }
        R::prepare(&self.sink, &mut rows);
        // With commit markers a flush's number is its tag at once: a catalogue shows
        // the flush exactly when its marker says it committed, whenever that is.
        if let Some(cut) = cut {
            R::flushed(&self.swarms, &rows, cut.epoch);
        }
        if self.log_flushes {
            tracing::info!("{} Flushing {}", R::KIND.log_name(), rows.len());
        }
        match (journal, cut) {
            (Some(journal), Some(cut)) => self.flush_marked(journal, cut, rows, deadline).await,
            _ => self.flush_batches(rows, deadline).await,
        }
    }

    /// Without commit markers: batch after batch, each in a statement of its own,
    /// retried until it commits (at-least-once: a lost reply to a committed batch
    /// writes it again).
    async fn flush_batches<R: Row>(
        &self,
        rows: Vec<R>,
        deadline: &mut Deadline,
    ) -> Result<(), Abandoned> {
        let table = R::table(&self.sink);
        let mut todo = batches(&rows, table.capacity);
        while let Some(batch) = todo.pop() {
            match self.write_batch(&batch, deadline).await {
                Outcome::Written => {
                    // Without markers the tag is the last catalogue load begun: the
                    // loads after it read the batch.
                    R::flushed(&self.swarms, &batch, self.swarms.loads_begun());
                    R::after_commit(&self.sink, &batch, self.flush_groups);
                }
                Outcome::Refused(error) if batch.len() == 1 => {
                    R::dropped(&self.swarms, &batch[0]);
                    self.set_aside(&batch[0], &error);
                }
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
            let written = match R::pool(&self.store).acquire().await {
                Ok(mut conn) => {
                    stats.statements.inc();
                    R::write(&self.store, &mut conn, batch).await
                }
                Err(error) => Err(error),
            };
            match written {
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
                        return Outcome::Refused(refusal(&error));
                    }
                    if pause(wait, deadline).await.is_err() {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
    }

    /// With commit markers: the whole flush, its marker included, in one transaction,
    /// once the journal holds its cut. Each attempt first reads the marker (locking
    /// it): after a failure that may have come after the commit (a lost connection),
    /// it tells whether the flush is in, so a flush is never written twice. Rows not
    /// written by the deadline are put back.
    async fn flush_marked<R: Row>(
        &self,
        journal: &Journal,
        cut: Cut,
        rows: Vec<R>,
        deadline: &mut Deadline,
    ) -> Result<(), Abandoned> {
        let table = R::table(&self.sink);
        let mut refused: Vec<(R, String)> = Vec::new();
        let started = std::time::Instant::now();
        if let Err(abandoned) = self
            .commit_marked(journal, cut, &rows, &mut refused, deadline)
            .await
        {
            table.restore(rows);
            return Err(abandoned);
        }
        journal.committed(R::KIND.index(), cut.epoch);
        table
            .stats
            .committed(rows.len() - refused.len(), started.elapsed().as_secs_f64());
        R::after_commit(&self.sink, &rows, self.flush_groups);
        for (row, error) in &refused {
            self.set_aside(row, error);
        }
        Ok(())
    }

    /// Waits for the journal, then tries the flush's transaction until it is in.
    async fn commit_marked<R: Row>(
        &self,
        journal: &Journal,
        cut: Cut,
        rows: &[R],
        refused: &mut Vec<(R, String)>,
        deadline: &mut Deadline,
    ) -> Result<(), Abandoned> {
        tokio::select! {
            () = journal.reached(cut.position) => {}
            () = deadline_passed(deadline) => return Err(Abandoned),
        }
        let mut attempts = Attempts::default();
        loop {
            if is_past(deadline) {
                return Err(Abandoned);
            }
            match self.try_marked(rows, cut.epoch, refused).await {
                Ok(Marked::Committed) => return Ok(()),
                Ok(Marked::AlreadyIn) => {
                    tracing::info!(
                        "{} flush {} was committed although its reply was lost",
                        R::KIND.log_name(),
                        cut.epoch
                    );
                    return Ok(());
                }
                Err(error) => {
                    let (reason, wait) =
                        self.store
                            .policy
                            .on_failure(&self.store.stats, &mut attempts, &error);
                    R::table(&self.sink).stats.retry(reason);
                    pause(wait, deadline).await?;
                }
            }
        }
    }

    /// One attempt at a marked flush. A batch the database refuses for its data is
    /// halved within the transaction (MariaDB undoes only the refused statement) until
    /// the refused row is alone; such rows are returned in `refused`, the others
    /// committed with the marker.
    async fn try_marked<R: Row>(
        &self,
        rows: &[R],
        epoch: u64,
        refused: &mut Vec<(R, String)>,
    ) -> Result<Marked, sqlx::Error> {
        let mut conn = R::pool(&self.store).acquire().await?;
        let mut transaction = sqlx::Connection::begin(&mut *conn).await?;
        let marker = self.store.marker(R::KIND.name());
        if commits::lock(&mut transaction, &marker).await? >= epoch {
            // An earlier attempt committed: what it set aside stands as it was.
            return Ok(Marked::AlreadyIn);
        }
        refused.clear();
        let mut todo = batches(rows, R::table(&self.sink).capacity);
        let statements = &R::table(&self.sink).stats.statements;
        while let Some(batch) = todo.pop() {
            statements.inc();
            match R::write(&self.store, &mut transaction, &batch).await {
                Ok(_) => {}
                Err(error) if crate::store::retry::classify(&error) == Reason::Data => {
                    if let [row] = batch.as_slice() {
                        refused.push((*row, refusal(&error)));
                    } else {
                        let (first, second) = batch.split_at(batch.len() / 2);
                        todo.push(second.to_vec());
                        todo.push(first.to_vec());
                    }
                }
                Err(error) => return Err(error),
            }
        }
        commits::mark(&mut transaction, &marker, epoch).await?;
        transaction.commit().await?;
        Ok(Marked::Committed)
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

    /// Applies what purges asked of `transfer_history.active`: by key, in statements
    /// of at most [`write::MAX_BATCH_ROWS`] rows, or over the whole table. Neither
    /// spilled nor journaled: what the deadline leaves unapplied, the next start's
    /// first purge covers with its update over the whole table.
    async fn deactivate(&self, deadline: &mut Deadline) {
        let Some(request) = self.sink.take_deactivation() else {
            return;
        };
        self.apply_deactivation(request, deadline).await;
        self.sink.deactivation_done();
    }

    async fn apply_deactivation(&self, request: Deactivation, deadline: &mut Deadline) {
        let started = std::time::Instant::now();
        let mut changed = 0;
        match request {
            Deactivation::Scan { cutoff } => {
                let scan = || write::deactivate_history(&self.store, cutoff);
                match self.retry_deactivation(scan, deadline).await {
                    Some(rows) => changed += rows,
                    None => return,
                }
            }
            Deactivation::Keys { cutoff, keys } => {
                let mut rest = keys.as_slice();
                for size in write::batch_sizes(keys.len(), write::MAX_BATCH_ROWS) {
                    let (batch, after) = rest.split_at(size);
                    rest = after;
                    let update = || async {
                        let mut conn = self.store.pool.acquire().await?;
                        write::deactivate_history_rows(&mut conn, cutoff, batch).await
                    };
                    match self.retry_deactivation(update, deadline).await {
                        Some(rows) => changed += rows,
                        None => return,
                    }
                }
            }
        }
        tracing::info!(
            "Updated {} inactive peers in database ({})",
            changed,
            fmt_duration(started.elapsed())
        );
    }

    /// Runs one deactivation statement until it succeeds (its rows changed), or None
    /// once the deadline passed.
    async fn retry_deactivation<F, Fut>(&self, statement: F, deadline: &mut Deadline) -> Option<u64>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
    {
        let mut attempts = Attempts::default();
        loop {
            if is_past(deadline) {
                return None;
            }
            match statement().await {
                Ok(changed) => return Some(changed),
                Err(error) => {
                    let (reason, wait) =
                        self.store
                            .policy
                            .on_failure(&self.store.stats, &mut attempts, &error);
                    self.sink.inactive_peers.retry(reason);
                    if pause(wait, deadline).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// A table's writer: flushes every `period`, or at once when the table passes its
    /// memory guard, until `stop` turns true.
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

    /// Drops every row still pending, which the journal holds; returns how many.
    pub fn keep_pending(&self) -> usize {
        Kind::ALL
            .iter()
            .map(|&kind| self.sink.table(kind).take_spill().len())
            .sum()
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
