//! In-memory storage: one store of calls and values per cache level,
//! bounded in bytes, that forgets expired calls by itself.

mod compact;
mod digest_map;
mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{CallStorage, StorageError, SweepReport, ValueStorage};
use crate::{CallQuery, CallRecord, Digest, DigestPrefix, clock};
use store::{Bounds, Store};

/// The bound of a [`MemoryStore`] unless set: 128 MiB of stored calls and
/// values.
pub const DEFAULT_MAX_BYTES: usize = 128 << 20;

/// How often a [`MemoryStore`] sweeps for expired calls unless set.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// How many calls one sweep examines at most unless set.
pub const DEFAULT_SWEEP_BUDGET: usize = 10_000;

/// The calls and values of one in-memory cache level, in process memory.
///
/// # Bounds
///
/// The store holds at most [`max_bytes`](MemoryBuilder::max_bytes) of calls
/// and values (128 MiB unless set), counted as the memory their entries
/// take: map slots, records in a compact form (a function's name, module,
/// version and parameter names are kept once per store), value bytes. A
/// write that takes it over the bound evicts the least recently read of a
/// few sampled calls, until it is within, with the values only those calls
/// referred to. A value a remaining call refers to is never evicted.
///
/// # Expiry
///
/// A call past its `expire_after` is removed when it is read, a few on
/// every write, and by a sweep every
/// [`sweep_interval`](MemoryBuilder::sweep_interval) (30 s unless set) on
/// the runtime of the first write, which examines at most
/// [`sweep_budget`](MemoryBuilder::sweep_budget) calls and stops with the
/// store. The values only it referred to go with it. Time is that of the
/// runtime the store is used on ([`clock`]).
///
/// ```
/// use flechette_core::Cache;
/// use flechette_core::storage::MemoryStore;
///
/// let store = MemoryStore::builder().max_bytes(16 << 20).build();
/// let cache = Cache::new(store.values(), store.calls());
/// # let _ = cache;
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    store: Arc<Store>,
}

/// Builds a [`MemoryStore`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MemoryBuilder {
    bounds: Bounds,
}

impl MemoryBuilder {
    /// The bound in bytes of stored calls and values.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.bounds.max_bytes = bytes;
        self
    }

    /// How often the periodic sweep runs; `None` for never (expired calls
    /// then go only when read, or a few on every write).
    pub fn sweep_interval(mut self, every: Option<Duration>) -> Self {
        self.bounds.sweep_interval = every;
        self
    }

    /// How many calls one sweep examines at most.
    pub fn sweep_budget(mut self, calls: usize) -> Self {
        self.bounds.sweep_budget = calls;
        self
    }

    /// The store.
    pub fn build(self) -> MemoryStore {
        MemoryStore {
            store: Arc::new(Store::new(self.bounds)),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with the default bounds.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder with the default bounds.
    pub fn builder() -> MemoryBuilder {
        MemoryBuilder {
            bounds: Bounds {
                max_bytes: DEFAULT_MAX_BYTES,
                sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
                sweep_budget: DEFAULT_SWEEP_BUDGET,
            },
        }
    }

    /// The store's values, as value storage.
    pub fn values(&self) -> MemoryValues {
        MemoryValues {
            store: Arc::clone(&self.store),
        }
    }

    /// The store's calls, as call storage.
    pub fn calls(&self) -> MemoryCalls {
        MemoryCalls {
            store: Arc::clone(&self.store),
        }
    }

    /// The bytes stored calls and values take (as the bound counts them).
    pub fn used_bytes(&self) -> usize {
        self.store.used()
    }

    /// How many calls are stored (expired ones not yet removed included).
    pub fn calls_len(&self) -> usize {
        self.store.calls_len()
    }

    /// How many values are stored.
    pub fn values_len(&self) -> usize {
        self.store.values_len()
    }

    /// Sweeps now: examines up to `budget` calls and removes the expired
    /// ones, with the values only they referred to.
    pub fn sweep(&self, budget: usize) -> SweepReport {
        self.store.sweep(budget, clock::now())
    }
}

/// Values in process memory: the value half of a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryValues {
    store: Arc<Store>,
}

/// Call records in process memory: the call half of a [`MemoryStore`].
#[derive(Clone, Debug)]
pub struct MemoryCalls {
    store: Arc<Store>,
}

impl Default for MemoryValues {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for MemoryCalls {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryValues {
    /// An empty store of values alone, with the default bounds.
    pub fn new() -> Self {
        MemoryStore::new().values()
    }
}

impl MemoryCalls {
    /// An empty store of calls alone, with the default bounds.
    pub fn new() -> Self {
        MemoryStore::new().calls()
    }
}

fn matching(mut all: Vec<Digest>, prefix: Option<&DigestPrefix>) -> Vec<Digest> {
    if let Some(p) = prefix {
        all.retain(|d| p.matches(d));
    }
    all
}

#[async_trait]
impl ValueStorage for MemoryValues {
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        Ok(self.store.get_value(digest))
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.store.ensure_sweeper();
        self.store.put_value(digest, &bytes, clock::now());
        Ok(())
    }

    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self.store.contains_value(digest))
    }

    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        self.store.ensure_sweeper();
        let now = clock::now();
        for (digest, bytes) in values {
            self.store.put_value(digest, bytes, now);
        }
        Ok(())
    }

    fn writes_in_place(&self) -> bool {
        true
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self.store.remove_value(digest))
    }

    async fn remove_if_written_before(
        &self,
        digest: &Digest,
        before: crate::Timestamp,
    ) -> Result<bool, StorageError> {
        Ok(self.store.remove_value_written_before(digest, before))
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        Ok(matching(self.store.value_digests(), prefix))
    }
}

#[async_trait]
impl CallStorage for MemoryCalls {
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        Ok(self.store.get_call(key, clock::now()))
    }

    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError> {
        self.store.ensure_sweeper();
        self.store.put_call(key, record, clock::now());
        Ok(())
    }

    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        self.store.ensure_sweeper();
        let now = clock::now();
        for (key, record) in records {
            self.store.put_call(key, record, now);
        }
        Ok(())
    }

    fn writes_in_place(&self) -> bool {
        true
    }

    async fn remove(&self, key: &Digest) -> Result<bool, StorageError> {
        Ok(self.store.remove_call(key))
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        Ok(matching(self.store.call_keys(), prefix))
    }

    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        let mut all = self.store.calls(clock::now());
        all.retain(|(_, record)| query.matches(record));
        Ok(all)
    }

    async fn sweep(&self, budget: usize) -> Result<SweepReport, StorageError> {
        Ok(self.store.sweep(budget, clock::now()))
    }
}
