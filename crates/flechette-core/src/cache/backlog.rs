//! The bookkeeping of a write-behind queue: which calls wait, which batch is
//! being written, what readers see meanwhile. Kept free of async so that it
//! can be checked by exhaustive interleaving (the `model` tests below drive
//! this very code through every order of saves, batches and evictions).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::writer::{WriteBehind, WriteFailed};
use crate::{CallRecord, Digest};

/// One queued call.
pub(crate) struct Pending {
    seq: u64,
    pub(crate) key: Digest,
    pub(crate) record: CallRecord,
    pub(crate) values: Vec<(Digest, Bytes)>,
    bytes: usize,
    pub(crate) report: Option<Arc<dyn WriteFailed>>,
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

/// The calls of a write-behind queue.
#[derive(Default)]
#[cfg_attr(test, derive(Clone))]
pub(crate) struct Backlog {
    /// Calls waiting for a batch, oldest first.
    queue: VecDeque<Arc<Pending>>,
    /// The batch being written.
    batch: Vec<Arc<Pending>>,
    /// The newest queued (or being written) call of each key: what readers
    /// see before storage has it.
    by_key: HashMap<Digest, Arc<Pending>>,
    /// The queued values (a value named by several queued calls once).
    values: HashMap<Digest, (Bytes, usize)>,
    /// Calls queued or being written, and their bytes.
    entries: usize,
    bytes: usize,
    /// The sequence number of the last call queued, and the one up to which
    /// every call is through (written, failed or dropped).
    queued: u64,
    done: u64,
}

impl Backlog {
    /// The bytes a call holds in the queue.
    pub(crate) fn weight(values: &[(Digest, Bytes)]) -> usize {
        values.iter().map(|(_, b)| b.len()).sum::<usize>() + 128
    }

    /// Whether a call of `bytes` fits (one call always fits an empty queue).
    pub(crate) fn has_room(&self, bytes: usize, bounds: &WriteBehind) -> bool {
        self.entries < bounds.max_entries
            && (self.entries == 0 || self.bytes + bytes <= bounds.max_bytes)
    }

    /// Queues a call; a queued (not yet written) older call of the same key
    /// is replaced.
    pub(crate) fn push(
        &mut self,
        key: Digest,
        record: CallRecord,
        values: Vec<(Digest, Bytes)>,
        report: Option<Arc<dyn WriteFailed>>,
    ) {
        self.queued += 1;
        let bytes = Self::weight(&values);
        let call = Arc::new(Pending {
            seq: self.queued,
            key,
            record,
            values,
            bytes,
            report,
        });
        for (digest, value) in &call.values {
            self.values
                .entry(*digest)
                .or_insert_with(|| (value.clone(), 0))
                .1 += 1;
        }
        self.entries += 1;
        self.bytes += bytes;
        // Queued before the older call is dropped: dropping it moves `done`
        // up to the first call still queued, which must be this one.
        self.queue.push_back(Arc::clone(&call));
        if let Some(older) = self.by_key.insert(key, call) {
            self.drop_queued(&older);
        }
    }

    /// Calls waiting for a batch.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Takes the next batch (at most `max` calls) to write.
    pub(crate) fn take_batch(&mut self, max: usize) -> Vec<Arc<Pending>> {
        debug_assert!(self.batch.is_empty(), "one batch at a time");
        let n = self.queue.len().min(max);
        self.batch = self.queue.drain(..n).collect();
        self.batch.clone()
    }

    /// The batch taken was written (or failed): its calls are through.
    pub(crate) fn finish_batch(&mut self) {
        for call in std::mem::take(&mut self.batch) {
            if self
                .by_key
                .get(&call.key)
                .is_some_and(|c| Arc::ptr_eq(c, &call))
            {
                self.by_key.remove(&call.key);
            }
            self.release(&call);
        }
        self.advance();
    }

    /// The batch taken was not written (its writer stopped): it goes back
    /// to the front of the queue.
    pub(crate) fn return_batch(&mut self) {
        for call in std::mem::take(&mut self.batch).into_iter().rev() {
            self.queue.push_front(call);
        }
    }

    /// Drops the queued write of `key`. When a batch being written holds
    /// `key`, returns the sequence number to wait for: once it is through,
    /// nothing of this queue writes `key` any more.
    pub(crate) fn cancel(&mut self, key: &Digest) -> Option<u64> {
        if let Some(call) = self.by_key.remove(key) {
            self.drop_queued(&call);
        }
        self.batch
            .iter()
            .any(|c| c.key == *key)
            .then(|| self.batch.last().map_or(0, |c| c.seq))
    }

    /// The queued (or being written) call under `key`.
    pub(crate) fn pending(&self, key: &Digest) -> Option<&Arc<Pending>> {
        self.by_key.get(key)
    }

    /// The queued bytes of value `digest`.
    pub(crate) fn pending_value(&self, digest: &Digest) -> Option<&Bytes> {
        self.values.get(digest).map(|(b, _)| b)
    }

    /// Whether nothing is queued or being written.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The sequence number of the last call queued.
    pub(crate) fn last_queued(&self) -> u64 {
        self.queued
    }

    /// Whether every call up to `seq` is through.
    pub(crate) fn is_through(&self, seq: u64) -> bool {
        self.done >= seq
    }

    /// Takes a call that is still queued (not being written) out of the
    /// queue; `false` when it is being written.
    fn drop_queued(&mut self, call: &Arc<Pending>) -> bool {
        let Some(at) = self.queue.iter().position(|c| Arc::ptr_eq(c, call)) else {
            return false;
        };
        self.queue.remove(at);
        self.release(call);
        self.advance();
        true
    }

    /// Forgets the bytes and values of a call written or dropped.
    fn release(&mut self, call: &Pending) {
        self.entries -= 1;
        self.bytes -= call.bytes;
        for (digest, _) in &call.values {
            if let Some(entry) = self.values.get_mut(digest) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    self.values.remove(digest);
                }
            }
        }
    }

    /// Moves `done` up to the call before the first still queued (unless a
    /// batch is being written: it moves when the batch is through).
    fn advance(&mut self) {
        if self.batch.is_empty() {
            self.done = self.queue.front().map_or(self.queued, |c| c.seq - 1);
        }
    }
}

#[cfg(test)]
#[path = "backlog_model.rs"]
mod model;
