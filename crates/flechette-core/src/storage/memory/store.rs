//! The in-memory store behind a [`MemoryValues`](super::MemoryValues) and
//! [`MemoryCalls`](super::MemoryCalls) pair: calls and values in sharded
//! maps, a bound in bytes kept by evicting the least recently read calls
//! (sampled), and expired calls removed on read, a few on every write, and
//! by a periodic sweep. A value goes when the last call referring to it
//! goes, unless it was written again since that call was (a writer may be
//! between saving it and saving its record): such a value stays for gc.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use super::compact::{Identities, StoredCall, ValueBytes};
use super::digest_map::{DigestMap, SLOT};
use crate::storage::{SweepReport, Sweeper};
use crate::{CallRecord, Digest, Timestamp};

type Map<V> = DigestMap<V>;

const SHARDS: usize = 16;
/// Calls sampled for each eviction, over all shards: a call read more
/// recently than all but a fraction `f` of the store is evicted with
/// probability `f^16`.
const SAMPLE: usize = 16;
/// Calls examined for expiry on every write.
const STEP: usize = 2;
/// Evictions at most per write (the next write goes on).
const EVICTIONS: usize = 16;

/// The bounds of an in-memory store.
#[derive(Clone, Debug)]
pub(super) struct Bounds {
    pub(super) max_bytes: usize,
    pub(super) sweep_interval: Option<Duration>,
    pub(super) sweep_budget: usize,
}

/// One value.
#[derive(Debug)]
struct StoredValue {
    bytes: ValueBytes,
    /// Calls that refer to it.
    refs: u32,
    /// Written since a call last came to refer to it.
    dirty: bool,
    /// When it was last written.
    written: Timestamp,
}

const _: () = assert!(std::mem::size_of::<StoredValue>() <= 40);

fn value_bytes(v: &StoredValue) -> usize {
    SLOT + std::mem::size_of::<StoredValue>() + v.bytes.heap_bytes()
}

fn call_bytes(c: &StoredCall) -> usize {
    SLOT + std::mem::size_of::<StoredCall>() + c.heap_bytes()
}

#[derive(Debug, Default)]
struct CallShard {
    map: Map<StoredCall>,
    /// Where the sweep goes on.
    cursor: usize,
}

impl CallShard {
    /// Examines up to `n` calls from the cursor, which walks down from the
    /// end; removes the expired ones. A removal moves the last call into
    /// the hole, and that one was examined already (or is newer than the
    /// pass), so every step examines a call not yet seen.
    fn sweep(&mut self, n: usize, now: Timestamp, gone: &mut Vec<StoredCall>) -> usize {
        let n = n.min(self.map.len());
        for _ in 0..n {
            if self.map.is_empty() {
                break;
            }
            if self.cursor == 0 || self.cursor > self.map.len() {
                self.cursor = self.map.len();
            }
            self.cursor -= 1;
            if self.map.at(self.cursor).expired(now) {
                let (_, call) = self.map.swap_remove_index(self.cursor).expect("in range");
                gone.push(call);
            }
        }
        n
    }
}

/// The shared state of a store.
#[derive(Debug)]
pub(super) struct Store {
    calls: Box<[Mutex<CallShard>]>,
    values: Box<[Mutex<Map<StoredValue>>]>,
    identities: Identities,
    used: AtomicUsize,
    /// Orders reads and writes, for least-recently-read eviction; also
    /// seeds sampling.
    tick: AtomicU64,
    bounds: Bounds,
    /// The shard the next sweep starts with.
    next_sweep: AtomicUsize,
    sweeper: Sweeper,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn shard(d: &Digest) -> usize {
    usize::from(d.as_bytes()[8]) % SHARDS
}

/// splitmix64: spreads a counter over the integers.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Store {
    pub(super) fn new(bounds: Bounds) -> Self {
        Self {
            calls: (0..SHARDS).map(|_| Mutex::default()).collect(),
            values: (0..SHARDS).map(|_| Mutex::default()).collect(),
            identities: Identities::default(),
            used: AtomicUsize::new(0),
            tick: AtomicU64::new(0),
            sweeper: Sweeper::new(bounds.sweep_interval),
            bounds,
            next_sweep: AtomicUsize::new(0),
        }
    }

    fn tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// Bytes held by stored calls and values (an estimate of the memory
    /// they take: entries, map slots and heap parts).
    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn calls_len(&self) -> usize {
        self.calls.iter().map(|s| lock(s).map.len()).sum()
    }

    pub(super) fn values_len(&self) -> usize {
        self.values.iter().map(|s| lock(s).len()).sum()
    }

    // ----- values

    pub(super) fn get_value(&self, digest: &Digest) -> Option<Bytes> {
        lock(&self.values[shard(digest)])
            .get(digest)
            .map(|v| v.bytes.get())
    }

    pub(super) fn contains_value(&self, digest: &Digest) -> bool {
        lock(&self.values[shard(digest)]).contains_key(digest)
    }

    /// Stores a value unless present; either way it counts as written now.
    pub(super) fn put_value(&self, digest: &Digest, bytes: &[u8], now: Timestamp) {
        let mut values = lock(&self.values[shard(digest)]);
        if let Some(v) = values.get_mut(digest) {
            v.dirty = true;
            v.written = now;
            return;
        }
        let v = StoredValue {
            bytes: ValueBytes::new(bytes),
            refs: 0,
            dirty: true,
            written: now,
        };
        self.used.fetch_add(value_bytes(&v), Ordering::Relaxed);
        values.insert(*digest, v);
    }

    pub(super) fn remove_value(&self, digest: &Digest) -> bool {
        let removed = lock(&self.values[shard(digest)]).swap_remove(digest);
        if let Some(v) = &removed {
            self.used.fetch_sub(value_bytes(v), Ordering::Relaxed);
        }
        removed.is_some()
    }

    /// Removes `digest` unless it was written at or after `before`.
    pub(super) fn remove_value_written_before(&self, digest: &Digest, before: Timestamp) -> bool {
        let mut values = lock(&self.values[shard(digest)]);
        if values.get(digest).is_none_or(|v| v.written >= before) {
            return false;
        }
        let removed = values.swap_remove(digest);
        if let Some(v) = &removed {
            self.used.fetch_sub(value_bytes(v), Ordering::Relaxed);
        }
        removed.is_some()
    }

    pub(super) fn value_digests(&self) -> Vec<Digest> {
        let mut all = Vec::new();
        for s in &*self.values {
            all.extend(lock(s).keys().copied());
        }
        all
    }

    /// Takes a reference to each value of a call being stored.
    fn take_refs(&self, call: &StoredCall) {
        for d in call.value_digests() {
            if let Some(v) = lock(&self.values[shard(d)]).get_mut(d) {
                v.refs = v.refs.saturating_add(1);
                v.dirty = false;
            }
        }
    }

    /// Gives back the references of calls that went, and removes the
    /// values no call refers to any more (unless written since).
    fn drop_refs(&self, gone: &[StoredCall]) {
        for call in gone {
            for d in call.value_digests() {
                let mut values = lock(&self.values[shard(d)]);
                let Some(v) = values.get_mut(d) else { continue };
                v.refs = v.refs.saturating_sub(1);
                if v.refs == 0 && !v.dirty {
                    let v = values.swap_remove(d).expect("present");
                    self.used.fetch_sub(value_bytes(&v), Ordering::Relaxed);
                }
            }
        }
    }

    fn forget_calls(&self, gone: &[StoredCall]) {
        let bytes: usize = gone.iter().map(call_bytes).sum();
        self.used.fetch_sub(bytes, Ordering::Relaxed);
        self.drop_refs(gone);
    }

    // ----- calls

    pub(super) fn put_call(&self, key: &Digest, record: &CallRecord, now: Timestamp) {
        let call = StoredCall::new(self.identities.intern(record), record, self.tick());
        self.take_refs(&call);
        self.used.fetch_add(call_bytes(&call), Ordering::Relaxed);
        let mut gone = Vec::new();
        {
            let mut shard = lock(&self.calls[shard(key)]);
            if let Some(old) = shard.map.insert(*key, call) {
                gone.push(old);
            }
            shard.sweep(STEP, now, &mut gone);
        }
        self.forget_calls(&gone);
        self.keep_bound();
    }

    /// The record under `key`, unless it has expired at `now` (it is then
    /// removed).
    pub(super) fn get_call(&self, key: &Digest, now: Timestamp) -> Option<CallRecord> {
        let mut shard = lock(&self.calls[shard(key)]);
        let index = shard.map.get_index_of(key)?;
        if shard.map.at(index).expired(now) {
            let (_, call) = shard.map.swap_remove_index(index).expect("in range");
            drop(shard);
            self.forget_calls(std::slice::from_ref(&call));
            return None;
        }
        let tick = self.tick();
        let call = shard.map.at_mut(index);
        call.last_read = tick;
        Some(call.record())
    }

    pub(super) fn remove_call(&self, key: &Digest) -> bool {
        let removed = lock(&self.calls[shard(key)]).map.swap_remove(key);
        match removed {
            Some(call) => {
                self.forget_calls(std::slice::from_ref(&call));
                true
            }
            None => false,
        }
    }

    /// Every stored call, unless expired at `now`, with its key.
    pub(super) fn calls(&self, now: Timestamp) -> Vec<(Digest, CallRecord)> {
        let mut all = Vec::new();
        for s in &*self.calls {
            let shard = lock(s);
            all.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, c)| !c.expired(now))
                    .map(|(k, c)| (*k, c.record())),
            );
        }
        all
    }

    pub(super) fn call_keys(&self) -> Vec<Digest> {
        let mut all = Vec::new();
        for s in &*self.calls {
            all.extend(lock(s).map.keys().copied());
        }
        all
    }

    // ----- bounds

    /// Evicts until the store is within its bound (or a write's share of
    /// evictions is done).
    fn keep_bound(&self) {
        for _ in 0..EVICTIONS {
            if self.used() <= self.bounds.max_bytes || !self.evict_one() {
                return;
            }
        }
    }

    /// Evicts the least recently read of calls sampled over the whole
    /// store; when no call is left, a value no call refers to.
    fn evict_one(&self) -> bool {
        let seed = mix(self.tick());
        let mut oldest: Option<(u64, Digest)> = None;
        for j in 0..SAMPLE as u64 {
            let pick = mix(seed ^ (j << 32));
            let s = usize::try_from(pick % SHARDS as u64).unwrap_or(0);
            let shard = lock(&self.calls[s]);
            let len = shard.map.len() as u64;
            if len == 0 {
                continue;
            }
            let index = usize::try_from((pick >> 8) % len).unwrap_or(0);
            let (key, call) = shard.map.get_index(index).expect("in range");
            if oldest.is_none_or(|(read, _)| call.last_read < read) {
                oldest = Some((call.last_read, *key));
            }
        }
        let victim = oldest.map(|(_, key)| key).or_else(|| {
            // Every sampled shard was empty: any call will do.
            self.calls
                .iter()
                .find_map(|s| lock(s).map.first().map(|(k, _)| *k))
        });
        if let Some(key) = victim {
            // Gone meanwhile (read as expired, removed): this write's next
            // eviction goes on.
            self.remove_call(&key);
            return true;
        }
        for values in &*self.values {
            let mut values = lock(values);
            let loose = values.values().position(|v| v.refs == 0);
            if let Some(index) = loose {
                let (_, v) = values.swap_remove_index(index).expect("in range");
                self.used.fetch_sub(value_bytes(&v), Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Examines up to `budget` calls, shard after shard from where the last
    /// sweep stopped, and removes the expired ones with the values only
    /// they referred to.
    pub(super) fn sweep(&self, budget: usize, now: Timestamp) -> SweepReport {
        let mut report = SweepReport::default();
        let values_before = self.values_len();
        let first = self.next_sweep.load(Ordering::Relaxed);
        for i in 0..SHARDS {
            let s = (first + i) % SHARDS;
            let left = budget - report.examined;
            let mut gone = Vec::new();
            let mut shard = lock(&self.calls[s]);
            let len = shard.map.len();
            report.examined += shard.sweep(left, now, &mut gone);
            drop(shard);
            report.expired += gone.len();
            self.forget_calls(&gone);
            if left < len {
                // This shard goes on at its cursor next time.
                self.next_sweep.store(s, Ordering::Relaxed);
                break;
            }
            self.next_sweep.store((s + 1) % SHARDS, Ordering::Relaxed);
        }
        report.values = values_before.saturating_sub(self.values_len());
        self.identities.prune();
        report
    }

    /// Starts the periodic sweep on the current runtime, if there is one
    /// and none runs. It holds the store weakly and is aborted when the
    /// store goes.
    pub(super) fn ensure_sweeper(self: &Arc<Self>) {
        if !self.sweeper.idle() {
            return;
        }
        let weak = Arc::downgrade(self);
        let budget = self.bounds.sweep_budget;
        self.sweeper.ensure(move || {
            let store = weak.upgrade()?;
            store.sweep(budget, crate::clock::now());
            Some(std::future::ready(()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Lifespan, Metadata};

    fn bounds() -> Bounds {
        Bounds {
            max_bytes: usize::MAX,
            sweep_interval: None,
            sweep_budget: 0,
        }
    }

    #[test]
    fn expired_calls_do_not_pile_up_under_writes_alone() {
        let store = Store::new(bounds());
        let mut most = 0;
        for i in 0..200_000i64 {
            let now = Timestamp(3 * i);
            let record = CallRecord {
                name: "f".into(),
                module: "m".into(),
                version: None,
                arguments: vec![("x".into(), crate::digest(&i).unwrap())],
                result: crate::digest(&0u8).unwrap(),
                metadata: Metadata {
                    lifespan: Some(Lifespan {
                        created: now,
                        update_after: None,
                        expire_after: Some(Timestamp(now.0 + 1_000)),
                    }),
                    ..Metadata::default()
                },
            };
            store.put_call(&record.key(), &record, now);
            if i % 10_000 == 0 {
                most = most.max(store.calls_len());
            }
        }
        // About 333 are live at any time.
        assert!(most < 1_000, "{most} stored");
    }
}
