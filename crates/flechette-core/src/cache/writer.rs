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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

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

/// One queued call.
pub(crate) struct Pending {
    seq: u64,
    pub(crate) key: Digest,
    pub(crate) record: CallRecord,
    pub(crate) values: Vec<(Digest, Bytes)>,
    bytes: usize,
    report: Option<Arc<dyn WriteFailed>>,
}

impl Pending {
    /// The encoded result, which the queue always holds.
    pub(crate) fn result(&self) -> Option<Bytes> {
        let digest = self.record.result;
        self.values
            .iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, b)| b.clone())
    }
}

#[derive(Default)]
struct State {
    /// Calls waiting for a batch, oldest first.
    queue: VecDeque<Arc<Pending>>,
    /// The batch being written.
    batch: Vec<Arc<Pending>>,
    /// The newest queued (or being written) call of each key.
    by_key: HashMap<Digest, Arc<Pending>>,
    /// The queued values (a value named by several queued calls once).
    values: HashMap<Digest, (Bytes, usize)>,
    /// Calls queued or being written, and their bytes.
    entries: usize,
    bytes: usize,
    /// The sequence number of the last call queued, and of the last one
    /// written (or dropped): every call up to `done` is through.
    queued: u64,
    done: u64,
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
            state: Mutex::default(),
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
        let bytes = values.iter().map(|(_, b)| b.len()).sum::<usize>() + 128;
        let mut pending = Some((record, values, report));
        loop {
            let room = self.progress.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                let full = state.entries >= self.bounds.max_entries
                    || (state.entries > 0 && state.bytes + bytes > self.bounds.max_bytes);
                if !full {
                    let (record, values, report) = pending.take().expect("queued once");
                    state.queued += 1;
                    let call = Arc::new(Pending {
                        seq: state.queued,
                        key,
                        record,
                        values,
                        bytes,
                        report,
                    });
                    for (digest, value) in &call.values {
                        state
                            .values
                            .entry(*digest)
                            .or_insert_with(|| (value.clone(), 0))
                            .1 += 1;
                    }
                    state.entries += 1;
                    state.bytes += bytes;
                    // A newer write of a key replaces a queued older one.
                    if let Some(older) = state.by_key.insert(key, Arc::clone(&call)) {
                        Self::drop_queued(&mut state, &older);
                    }
                    state.queue.push_back(call);
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

    /// Takes a call that is still queued (not being written) out of the
    /// accounting; the writer skips it. `false` when it is being written.
    fn drop_queued(state: &mut State, call: &Arc<Pending>) -> bool {
        let Some(at) = state.queue.iter().position(|c| Arc::ptr_eq(c, call)) else {
            return false;
        };
        state.queue.remove(at);
        Self::release(state, call);
        if state.batch.is_empty() {
            state.done = state.queue.front().map_or(state.queued, |c| c.seq - 1);
        }
        true
    }

    /// Forgets the bytes and values of a call written or dropped.
    fn release(state: &mut State, call: &Pending) {
        state.entries -= 1;
        state.bytes -= call.bytes;
        for (digest, _) in &call.values {
            if let Some(entry) = state.values.get_mut(digest) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    state.values.remove(digest);
                }
            }
        }
    }

    /// The queued call under `key`.
    pub(crate) fn pending(&self, key: &Digest) -> Option<Arc<Pending>> {
        let state = self.lock();
        if state.entries == 0 {
            return None;
        }
        state.by_key.get(key).cloned()
    }

    /// The queued bytes of value `digest`.
    pub(crate) fn pending_value(&self, digest: &Digest) -> Option<Bytes> {
        let state = self.lock();
        state.values.get(digest).map(|(b, _)| b.clone())
    }

    /// Drops the queued write of `key`, and waits for a batch in progress
    /// that writes it: afterwards nothing of this writer writes `key`.
    pub(crate) async fn cancel(self: &Arc<Self>, key: &Digest) {
        let wait_for = {
            let mut state = self.lock();
            if state.entries == 0 {
                return;
            }
            if let Some(call) = state.by_key.remove(key) {
                Self::drop_queued(&mut state, &call);
            }
            state
                .batch
                .iter()
                .any(|c| c.key == *key)
                .then(|| state.batch.last().map_or(0, |c| c.seq))
        };
        if let Some(seq) = wait_for {
            self.reached(seq).await;
        }
    }

    /// Waits until every call queued so far is written (or failed).
    pub(crate) async fn flush(self: &Arc<Self>) {
        let seq = self.lock().queued;
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
                if state.done >= seq {
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
                let n = state.queue.len().min(self.bounds.batch_entries);
                let batch: Vec<_> = state.queue.drain(..n).collect();
                if batch.is_empty() && state.closed {
                    state.running = false;
                    return;
                }
                state.batch = batch.clone();
                batch
            };
            if batch.is_empty() {
                work.await;
                continue;
            }
            self.write(&batch).await;
            {
                let mut state = self.lock();
                for call in &batch {
                    if state
                        .by_key
                        .get(&call.key)
                        .is_some_and(|c| Arc::ptr_eq(c, call))
                    {
                        state.by_key.remove(&call.key);
                    }
                    Self::release(&mut state, call);
                }
                state.batch.clear();
                state.done = state.queue.front().map_or(state.queued, |c| c.seq - 1);
            }
            self.progress.notify_waiters();
        }
    }

    /// Writes one batch: the values, then the records; a batch that fails
    /// is written again call by call, so each failure is reported for its
    /// own call.
    async fn write(&self, batch: &[Arc<Pending>]) {
        let level = self;
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
            level.values.put_many(&values).await?;
            level.calls.put_many(&records).await
        };
        if whole.await.is_ok() {
            return;
        }
        for call in batch {
            let one = async {
                level.values.put_many(&call.values).await?;
                level
                    .calls
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
        let batch = std::mem::take(&mut state.batch);
        for call in batch.into_iter().rev() {
            state.queue.push_front(call);
        }
        if !state.queue.is_empty() {
            tracing::warn!(
                calls = state.queue.len(),
                "the cache's writer stopped with calls not yet written (call Cache::flush before the runtime shuts down); a later save writes them"
            );
        }
        drop(state);
        writer.progress.notify_waiters();
    }
}
