//! Write-behind: calls saved with [`Cache::save_behind`](super::Cache::save_behind)
//! are queued, answered to readers of this cache from the queue, and
//! written to level 0 in batches by one task per cache.
//!
//! * A batch is every queued call (up to [`WriteBehind::batch_entries`]),
//!   taken as soon as the previous batch is written: no timer adds delay,
//!   and a call reaches storage with the batch after the one in progress.
//! * Values go first (one `put_many`), then the records (one `put_many`):
//!   a reader never sees a record whose values are missing.
//! * The queue is bounded in calls and bytes; a caller saving into a full
//!   queue waits for room (backpressure).
//! * [`Writer::cancel`] (an eviction) drops a queued write, and waits for a
//!   batch in progress that holds the key, so an evicted call is never
//!   written back afterwards.
//! * The task ends when the last handle of the cache is dropped, after
//!   writing what is queued. If its runtime shuts down first, what was not
//!   written is logged, and kept for a writer started by the next save.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::backlog::Backlog;
pub(crate) use super::backlog::Pending;
use super::{Cache, Level};
use crate::storage::{CallStorage, StorageError, ValueStorage};
use crate::{CallRecord, Digest};

/// Where a cached function hears of a write that failed after its caller
/// was answered.
pub trait WriteFailed: Send + Sync + 'static {
    /// The call under `key` could not be written.
    fn write_failed(&self, key: &Digest, error: &StorageError);
}

/// Bounds of a cache's write-behind queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBehind {
    /// Calls queued at most (default 10,000); a save into a full queue
    /// waits.
    pub max_entries: usize,
    /// Bytes of queued values at most (default 64 MiB); one call larger
    /// than this is queued alone.
    pub max_bytes: usize,
    /// Calls written per batch at most (default 1,000).
    pub batch_entries: usize,
}

impl Default for WriteBehind {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 << 20,
            batch_entries: 1_000,
        }
    }
}

impl WriteBehind {
    /// The bounds, with `max_entries` calls and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            ..Self::default()
        }
    }

    /// At most `n` calls per batch.
    #[must_use]
    pub fn batch_entries(mut self, n: usize) -> Self {
        self.batch_entries = n.max(1);
        self
    }
}

struct State {
    backlog: Backlog,
    /// A writer task is alive.
    running: bool,
    /// The last handle of the cache is gone: write what is left and stop.
    closed: bool,
}

pub(crate) struct Writer {
    values: Arc<dyn ValueStorage>,
    calls: Arc<dyn CallStorage>,
    bounds: WriteBehind,
    state: Mutex<State>,
    /// Wakes the writer task.
    work: Notify,
    /// Wakes savers waiting for room and flushers, after each batch.
    progress: Notify,
}

impl Writer {
    pub(crate) fn new(
        values: Arc<dyn ValueStorage>,
        calls: Arc<dyn CallStorage>,
        bounds: WriteBehind,
    ) -> Arc<Self> {
        Arc::new(Self {
            values,
            calls,
            bounds,
            state: Mutex::new(State {
                backlog: Backlog::default(),
                running: false,
                closed: false,
            }),
            work: Notify::new(),
            progress: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a call, waiting while the queue is full.
    pub(crate) async fn save(
        self: &Arc<Self>,
        key: Digest,
        record: CallRecord,
        values: Vec<(Digest, Bytes)>,
        report: Option<Arc<dyn WriteFailed>>,
    ) {
        let bytes = Backlog::weight(&values);
        loop {
            let room = self.progress.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.backlog.has_room(bytes, &self.bounds) {
                    state.backlog.push(key, record, values, report);
                    self.ensure_running(&mut state);
                    drop(state);
                    self.work.notify_one();
                    return;
                }
            }
            room.await;
        }
    }

    /// Starts a writer task on the current runtime unless one is alive.
    fn ensure_running(self: &Arc<Self>, state: &mut State) {
        if !state.running {
            state.running = true;
            tokio::spawn(Arc::clone(self).run());
        }
    }

    /// The queued call under `key`.
    pub(crate) fn pending(&self, key: &Digest) -> Option<Arc<Pending>> {
        let state = self.lock();
        if state.backlog.is_empty() {
            return None;
        }
        state.backlog.pending(key).cloned()
    }

    /// The queued bytes of value `digest`.
    pub(crate) fn pending_value(&self, digest: &Digest) -> Option<Bytes> {
        let state = self.lock();
        state.backlog.pending_value(digest).cloned()
    }

    /// Drops the queued write of `key`, and waits for a batch in progress
    /// that writes it: afterwards nothing of this writer writes `key`.
    /// Returns whether a write of `key` was queued (or being written).
    pub(crate) async fn cancel(self: &Arc<Self>, key: &Digest) -> bool {
        let (queued, wait_for) = {
            let mut state = self.lock();
            if state.backlog.is_empty() {
                return false;
            }
            let queued = state.backlog.pending(key).is_some();
            (queued, state.backlog.cancel(key))
        };
        if let Some(seq) = wait_for {
            self.reached(seq).await;
        }
        queued
    }

    /// Waits until every call queued so far is written (or failed).
    pub(crate) async fn flush(self: &Arc<Self>) {
        let seq = self.lock().backlog.last_queued();
        self.reached(seq).await;
    }

    /// Waits until the calls up to `seq` are through, starting a writer if
    /// the last one stopped with calls left (its runtime shut down).
    async fn reached(self: &Arc<Self>, seq: u64) {
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let mut state = self.lock();
                if state.backlog.is_through(seq) {
                    return;
                }
                self.ensure_running(&mut state);
            }
            progress.await;
        }
    }

    /// The last handle of the cache is gone: write what is queued, then stop.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_one();
    }

    /// The writer task.
    async fn run(self: Arc<Self>) {
        let _alive = Alive(&self);
        loop {
            let work = self.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            let batch = {
                let mut state = self.lock();
                let batch = state.backlog.take_batch(self.bounds.batch_entries);
                if batch.is_empty() && state.closed {
                    state.running = false;
                    return;
                }
                batch
            };
            if batch.is_empty() {
                work.await;
                continue;
            }
            self.write(&batch).await;
            self.lock().backlog.finish_batch();
            self.progress.notify_waiters();
        }
    }

    /// Writes one batch: the values, then the records; a batch that fails
    /// is written again call by call, so each failure is reported for its
    /// own call.
    async fn write(&self, batch: &[Arc<Pending>]) {
        let mut values: Vec<(Digest, Bytes)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for call in batch {
            for (digest, bytes) in &call.values {
                if seen.insert(*digest) {
                    values.push((*digest, bytes.clone()));
                }
            }
        }
        let records: Vec<(Digest, CallRecord)> =
            batch.iter().map(|c| (c.key, c.record.clone())).collect();
        let whole = async {
            self.values.put_many(&values).await?;
            self.calls.put_many(&records).await
        };
        if whole.await.is_ok() {
            return;
        }
        for call in batch {
            let one = async {
                self.values.put_many(&call.values).await?;
                self.calls
                    .put_many(&[(call.key, call.record.clone())])
                    .await
            };
            if let Err(e) = one.await {
                match &call.report {
                    Some(report) => report.write_failed(&call.key, &e),
                    None => {
                        tracing::warn!(key = %call.key, error = %e, "could not write a queued call")
                    }
                }
            }
        }
    }
}

/// Marks the writer task gone when it ends or is dropped (its runtime shut
/// down): a batch it was writing goes back to the queue, and what was not
/// written is logged.
struct Alive<'a>(&'a Arc<Writer>);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        let writer = self.0;
        let mut state = writer.lock();
        state.running = false;
        state.backlog.return_batch();
        let left = state.backlog.waiting();
        if left > 0 {
            tracing::warn!(
                calls = left,
                "the cache's writer stopped with calls not yet written (call Cache::flush before the runtime shuts down); a later save writes them"
            );
        }
        drop(state);
        writer.progress.notify_waiters();
    }
}

impl Cache {
    /// This cache's storage with a write-behind queue of other bounds in
    /// front of level 0 (see [`save_behind`](Self::save_behind)); a new
    /// cache, which does not see what this one has queued in level 0.
    #[must_use]
    pub fn with_write_behind(&self, bounds: WriteBehind) -> Self {
        let mut levels = self.inner.levels.clone();
        let top = &levels[0];
        levels[0] = Level::new(Arc::clone(&top.values), Arc::clone(&top.calls), bounds);
        Self::with_parts(
            levels,
            self.inner.coordinator.clone(),
            self.inner.broadcast.clone(),
        )
    }

    /// Saves a call (its values, then its record) behind the caller: it is
    /// queued, readers of this cache see it at once, and a task of the
    /// cache writes it to level 0 with the next batch. Storage under memory
    /// is written in place instead. `key` is `record.key()`.
    ///
    /// A write that fails is reported to `report` (or logged); the call is
    /// then simply not stored.
    ///
    /// # Cancel safety
    ///
    /// Waits only while the queue is full; dropped then, nothing is queued.
    pub async fn save_behind(
        &self,
        key: Digest,
        record: CallRecord,
        values: Vec<(Digest, Bytes)>,
        report: Option<Arc<dyn WriteFailed>>,
    ) {
        match self.top().writer() {
            Some(writer) => writer.save(key, record, values, report).await,
            None => {
                let top = self.top();
                let written = async {
                    top.values.put_many(&values).await?;
                    top.calls.put_many(&[(key, record)]).await
                };
                if let Err(e) = written.await {
                    match report {
                        Some(report) => report.write_failed(&key, &e),
                        None => tracing::warn!(%key, error = %e, "could not write a call"),
                    }
                }
            }
        }
    }

    /// Waits until every call queued by [`save_behind`](Self::save_behind)
    /// before this call is written to storage (or has failed, which was
    /// reported). Call it before a process exits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it stops the waiting, not the writing.
    pub async fn flush(&self) {
        for level in &self.inner.levels {
            if let Some(writer) = level.writer() {
                writer.flush().await;
            }
        }
    }
}
