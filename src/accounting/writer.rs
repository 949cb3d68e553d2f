//! Writer tasks: take what is pending, write it through `store` with the retry policy,
//! and on shutdown keep trying until the drain deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Sink;
use crate::store::{self, Store};
use crate::tracker::TorrentId;

/// The shutdown drain deadline: None while running normally; set at the first signal,
/// moved to "now" by a second one.
pub type Deadline = watch::Receiver<Option<Instant>>;

/// The deadline passed before the write succeeded; the rows are still pending.
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

/// Runs `op` until it succeeds, waiting per the retry policy between attempts. Gives
/// up only when the deadline passes: no attempt starts after it, but one in progress
/// is allowed to finish.
pub async fn with_retries<T, F, Fut>(
    store: &Store,
    deadline: &mut Deadline,
    mut op: F,
) -> Result<T, Abandoned>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut failures = 0u32;
    loop {
        if is_past(deadline) {
            return Err(Abandoned);
        }
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                failures = failures.saturating_add(1);
                let (_, wait) = store.policy.on_failure(&store.stats, failures, &error);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = deadline_passed(deadline) => return Err(Abandoned),
                }
            }
        }
    }
}

/// Writes every pending unprune; what the deadline stops stays pending.
pub async fn flush_unprune(
    sink: &Sink,
    store: &Store,
    batch: usize,
    deadline: &mut Deadline,
) -> Result<(), Abandoned> {
    let mut rows = sink.unprune.take();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by_key(|(id, _)| *id);
    while !rows.is_empty() {
        let split = rows.len().saturating_sub(batch.max(1));
        let chunk = rows.split_off(split);
        let ids: Vec<TorrentId> = chunk.iter().map(|(id, _)| *id).collect();
        if let Err(abandoned) = with_retries(store, deadline, || store::unprune(store, &ids)).await
        {
            rows.extend(chunk);
            sink.unprune.restore(rows);
            return Err(abandoned);
        }
    }
    Ok(())
}

/// The unprune writer: every `period`, until `stop` turns true.
pub async fn run_unprune(
    sink: Arc<Sink>,
    store: Store,
    period: Duration,
    batch: usize,
    mut stop: watch::Receiver<bool>,
    mut deadline: Deadline,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // Without a deadline this only returns once everything is written.
        let _ = flush_unprune(&sink, &store, batch, &mut deadline).await;
    }
}
