//! `Cache`: value storage plus call storage, in one or more levels.

mod backlog;
mod gc;
mod level;
mod stack;
mod table;
mod writer;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::prefix::{common_hex_len, shortest_unique};
use crate::storage::{
    Broadcast, CallStorage, Coordinator, FileStore, MemoryStore, StorageError, ValueStorage,
};
use crate::{CacheError, Call, CallQuery, CallRecord, Digest, DigestPrefix, LazyCall, encoding};

pub use gc::{DEFAULT_GC_GRACE, GcOptions, GcProgress, GcReport};
pub(crate) use level::Level;
pub use stack::CacheStack;
pub use table::{Table, TableOptions};
pub use writer::{WriteBehind, WriteFailed};

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Inner {
    id: u64,
    levels: Vec<Level>,
    /// Cross-process single flight, when the storage offers it.
    coordinator: Option<Arc<dyn Coordinator>>,
    /// Invalidation broadcast, when the storage offers it.
    broadcast: Option<Arc<dyn Broadcast>>,
    /// Back-fills of level 0 in progress, one per call key.
    backfills: DashMap<Digest, Arc<OnceCell<()>>>,
}

/// A content-addressed call cache: values stored once by digest, and call
/// records keyed by call digest. Cheap to clone; clones share storage.
///
/// A cache has one level, or several when built from a [`CacheStack`]:
/// reads walk the levels from 0, writes go to level 0.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("levels", &self.inner.levels.len())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache over the given value and call storage.
    pub fn new(values: impl ValueStorage, calls: impl CallStorage) -> Self {
        Self::from_storage(Arc::new(values), Arc::new(calls))
    }

    /// A cache over shared storage objects.
    pub fn from_storage(values: Arc<dyn ValueStorage>, calls: Arc<dyn CallStorage>) -> Self {
        Self::from_levels(vec![Level::new(values, calls, WriteBehind::default())])
    }

    pub(crate) fn from_levels(levels: Vec<Level>) -> Self {
        Self::with_parts(levels, None, None)
    }

    pub(crate) fn with_parts(
        levels: Vec<Level>,
        coordinator: Option<Arc<dyn Coordinator>>,
        broadcast: Option<Arc<dyn Broadcast>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                levels,
                coordinator,
                broadcast,
                backfills: DashMap::new(),
            }),
        }
    }

    pub(crate) fn level_list(&self) -> &[Level] {
        &self.inner.levels
    }

    /// A cache over storage shared by processes, with the backend's
    /// cross-process single flight (cached functions over it compute a
    /// missing call in one process while the others wait) and invalidation
    /// broadcast (an invalidation in one process reaches the in-process
    /// tiers of all).
    pub fn shared<S: Coordinator + Broadcast>(
        values: impl ValueStorage,
        calls: impl CallStorage,
        shared: S,
    ) -> Self {
        let shared = Arc::new(shared);
        Self::with_parts(
            vec![Level::new(
                Arc::new(values),
                Arc::new(calls),
                WriteBehind::default(),
            )],
            Some(shared.clone()),
            Some(shared),
        )
    }

    /// The cross-process single flight of this cache, if its storage has one.
    pub fn coordinator(&self) -> Option<&Arc<dyn Coordinator>> {
        self.inner.coordinator.as_ref()
    }

    /// The invalidation broadcast of this cache, if its storage has one.
    pub fn broadcast(&self) -> Option<&Arc<dyn Broadcast>> {
        self.inner.broadcast.as_ref()
    }

    /// A fresh in-memory cache, bounded by
    /// [`DEFAULT_MAX_BYTES`](crate::storage::DEFAULT_MAX_BYTES) (128 MiB) of
    /// stored calls and values, forgetting expired calls by itself; see
    /// [`MemoryStore`] for the policy and [`Cache::in_memory`] to set the
    /// bounds.
    pub fn memory() -> Self {
        Self::in_memory(&MemoryStore::new())
    }

    /// An in-memory cache on `store` (its bounds set by
    /// [`MemoryStore::builder`]).
    ///
    /// ```
    /// use flechette_core::Cache;
    /// use flechette_core::storage::MemoryStore;
    ///
    /// let cache = Cache::in_memory(&MemoryStore::builder().max_bytes(8 << 20).build());
    /// # let _ = cache;
    /// ```
    pub fn in_memory(store: &MemoryStore) -> Self {
        Self::new(store.values(), store.calls())
    }

    /// A file cache in `dir` (created if needed): values under `dir/values`,
    /// records under `dir/calls`. Several processes may share it.
    ///
    /// # Errors
    ///
    /// Fails when the directories cannot be created.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        let store = FileStore::open(dir)?;
        Ok(Self::new(store.values(), store.calls()))
    }

    /// How many levels the cache reads from.
    pub fn depth(&self) -> usize {
        self.inner.levels.len()
    }

    /// Level `i` alone, as a cache of its own.
    pub fn level(&self, i: usize) -> Option<Cache> {
        self.inner
            .levels
            .get(i)
            .map(|l| Self::from_levels(vec![l.clone()]))
    }

    /// A number unique to this cache in the process (clones share it).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether both handles share the same cache.
    pub fn ptr_eq(&self, other: &Cache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn top(&self) -> &Level {
        &self.inner.levels[0]
    }

    /// Encodes `value`, stores it once under its digest and returns the digest.
    ///
    /// # Errors
    ///
    /// Fails when the value cannot be encoded or stored.
    pub async fn save_value<T: Serialize + ?Sized>(&self, value: &T) -> Result<Digest, CacheError> {
        let bytes = encoding::to_vec(value)?;
        let digest = Digest::of_encoded(&bytes);
        self.save_encoded(&digest, Bytes::from(bytes)).await?;
        Ok(digest)
    }

    /// Stores already encoded bytes under `digest` (their value digest).
    ///
    /// # Errors
    ///
    /// Fails when level 0 cannot store them.
    pub async fn save_encoded(&self, digest: &Digest, bytes: Bytes) -> Result<(), CacheError> {
        // One operation that stores the value unless present, and that
        // backends with bounds count as a new claim on a present one (so
        // that the removal of an older call does not take it from a record
        // about to be saved).
        self.top().values.put_many(&[(*digest, bytes)]).await?;
        Ok(())
    }

    /// The encoded bytes of value `digest`, from the first level that has them.
    ///
    /// # Errors
    ///
    /// Fails when a storage read fails.
    pub async fn load_encoded(&self, digest: &Digest) -> Result<Option<Bytes>, CacheError> {
        for level in &self.inner.levels {
            if let Some(bytes) = level.writer().and_then(|w| w.pending_value(digest)) {
                return Ok(Some(bytes));
            }
            if let Some(bytes) = level.values.get(digest).await? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// Every value digest in any level, once each.
    ///
    /// # Errors
    ///
    /// Fails when a storage listing fails.
    pub async fn value_digests(&self) -> Result<Vec<Digest>, CacheError> {
        self.flush().await;
        let mut all = Vec::new();
        for level in &self.inner.levels {
            all.extend(level.values.list(None).await?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// Loads value `digest` untyped, as JSON, for browsing (see
    /// [`to_json`](crate::to_json)).
    ///
    /// # Errors
    ///
    /// [`CacheError::MissingValue`] when no level has it; a decode error
    /// when the bytes are not MessagePack.
    pub async fn load_json(&self, digest: &Digest) -> Result<serde_json::Value, CacheError> {
        let bytes = self
            .load_encoded(digest)
            .await?
            .ok_or(CacheError::MissingValue(*digest))?;
        Ok(crate::to_json(&encoding::from_slice::<rmpv::Value>(
            &bytes,
        )?))
    }

    /// Loads and decodes value `digest`.
    ///
    /// # Errors
    ///
    /// [`CacheError::MissingValue`] when no level has it; a decode error when
    /// it is not a `T`.
    pub async fn load_value<T: DeserializeOwned>(&self, digest: &Digest) -> Result<T, CacheError> {
        let bytes = self
            .load_encoded(digest)
            .await?
            .ok_or(CacheError::MissingValue(*digest))?;
        Ok(encoding::from_slice(&bytes)?)
    }

    /// Stores a call record in level 0 and returns its key. Its values
    /// should be saved first.
    ///
    /// # Errors
    ///
    /// Fails when the record cannot be stored.
    pub async fn save_record(&self, record: &CallRecord) -> Result<Digest, CacheError> {
        let key = record.key();
        self.top().calls.put(&key, record).await?;
        Ok(key)
    }

    /// Stores a fetched call: its values, then its record.
    ///
    /// # Errors
    ///
    /// Fails when anything cannot be stored.
    pub async fn save(&self, call: &Call) -> Result<Digest, CacheError> {
        for (digest, bytes) in call.values() {
            self.save_encoded(digest, bytes.clone()).await?;
        }
        self.save_record(call.record()).await
    }

    /// The record under `key`, from the first level that has it; a hit below
    /// level 0 is copied into level 0 (once, however many readers race).
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn load_record(&self, key: &Digest) -> Result<Option<CallRecord>, CacheError> {
        for (i, level) in self.inner.levels.iter().enumerate() {
            let queued = level.writer().and_then(|w| w.pending(key));
            let found = match queued {
                Some(call) => Some(call.record.clone()),
                None => level.calls.get(key).await?,
            };
            if let Some(record) = found {
                if i > 0
                    && let Err(e) = self.backfill(key, &record, i).await
                {
                    tracing::warn!(%key, error = %e, "cache stack: could not copy a hit into level 0");
                }
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// The record under `key` with its result's encoded bytes (`None` when
    /// no level has them), in one round trip where the storage can; a hit
    /// below level 0 is copied into level 0.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails, and with
    /// [`StorageError::Damaged`] when the record was damaged (and set aside)
    /// and no level holds the call whole: unlike the other reads, which see
    /// a damaged record as absent, this one tells, so that a cached function
    /// counts the fault.
    pub async fn load_with_result(
        &self,
        key: &Digest,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, CacheError> {
        // A damaged record at one level is reported if no deeper level has
        // the call.
        let mut damaged = None;
        for (i, level) in self.inner.levels.iter().enumerate() {
            let queued = level.writer().and_then(|w| w.pending(key));
            let found = match queued {
                Some(call) => Ok(Some((call.record.clone(), call.result()))),
                None => level.calls.get_with_result(key).await,
            };
            let found = match found {
                Err(e @ StorageError::Damaged { .. }) => {
                    damaged.get_or_insert(e);
                    continue;
                }
                found => found?,
            };
            if let Some((record, bytes)) = found {
                if i > 0
                    && let Err(e) = self.backfill(key, &record, i).await
                {
                    tracing::warn!(%key, error = %e, "cache stack: could not copy a hit into level 0");
                }
                // The backend has checked the bytes against the digest
                // (see `CallStorage::get_with_result`): no second hash.
                let bytes = match bytes {
                    Some(bytes) => Some(bytes),
                    None => self.load_encoded(&record.result).await?,
                };
                return Ok(Some((record, bytes)));
            }
        }
        damaged.map_or(Ok(None), |e| Err(e.into()))
    }

    /// The call under `key`, lazily: metadata now, values when asked.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn load(&self, key: &Digest) -> Result<Option<LazyCall>, CacheError> {
        Ok(self
            .load_record(key)
            .await?
            .map(|record| LazyCall::new(self.clone(), *key, record)))
    }

    /// Whether the call under `key` is loadable: its record and its result
    /// value are both present.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn contains(&self, key: &Digest) -> Result<bool, CacheError> {
        for level in &self.inner.levels {
            if level.writer().is_some_and(|w| w.pending(key).is_some()) {
                return Ok(true);
            }
            if let Some(record) = level.calls.get(key).await? {
                return self.contains_value(&record.result).await;
            }
        }
        Ok(false)
    }

    /// Whether any level holds value `digest`.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn contains_value(&self, digest: &Digest) -> Result<bool, CacheError> {
        for level in &self.inner.levels {
            if level
                .writer()
                .is_some_and(|w| w.pending_value(digest).is_some())
                || level.values.contains(digest).await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes the record under `key` from every level; `true` when one was
    /// removed. Its values stay until [`gc`](Self::gc), except in memory,
    /// where the values only it referred to go with it. A queued write of `key`
    /// is dropped (and one being written is waited for), so the call is not
    /// written back afterwards.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn evict(&self, key: &Digest) -> Result<bool, CacheError> {
        let mut removed = false;
        for level in &self.inner.levels {
            if let Some(writer) = level.writer() {
                removed |= writer.cancel(key).await;
            }
            removed |= level.calls.remove(key).await?;
        }
        Ok(removed)
    }

    async fn digests_with(&self, prefix: &DigestPrefix) -> Result<Vec<Digest>, CacheError> {
        self.flush().await;
        let mut all = Vec::new();
        for level in &self.inner.levels {
            all.extend(level.values.list(Some(prefix)).await?);
            all.extend(level.calls.list(Some(prefix)).await?);
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// The one value digest or call key starting with `prefix`.
    ///
    /// # Errors
    ///
    /// [`CacheError::NotFound`] when none does, [`CacheError::Ambiguous`]
    /// (saying how many characters would be unique) when several do.
    pub async fn expand(&self, prefix: &DigestPrefix) -> Result<Digest, CacheError> {
        let found = self.digests_with(prefix).await?;
        match found.as_slice() {
            [] => Err(CacheError::NotFound {
                prefix: prefix.clone(),
            }),
            [one] => Ok(*one),
            many => {
                let longest = many
                    .windows(2)
                    .map(|w| common_hex_len(&w[0], &w[1]))
                    .max()
                    .unwrap_or(0);
                Err(CacheError::Ambiguous {
                    prefix: prefix.clone(),
                    matches: many.len(),
                    unique_len: (longest + 1).min(64),
                })
            }
        }
    }

    /// The shortest prefix of `digest` (at least 4 characters) that expands
    /// to it alone in this cache.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn shrink(&self, digest: &Digest) -> Result<DigestPrefix, CacheError> {
        let four = DigestPrefix::from(*digest).as_str()[..crate::prefix::MIN_PREFIX].parse();
        let four: DigestPrefix = four.map_err(|_| CacheError::MissingValue(*digest))?;
        let near = self.digests_with(&four).await?;
        Ok(shortest_unique(digest, &near))
    }

    /// The calls matching `query`, lazily loaded, in the order they started;
    /// a call in several levels is listed once (as level 0 has it).
    ///
    /// # Errors
    ///
    /// Fails when a value in the query could not be encoded, or storage fails.
    pub async fn query(&self, query: &CallQuery) -> Result<Vec<LazyCall>, CacheError> {
        if let Some(e) = query.error() {
            return Err(e.clone().into());
        }
        self.flush().await;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for level in &self.inner.levels {
            for (key, record) in level.calls.query(query).await? {
                if seen.insert(key) {
                    out.push(LazyCall::new(self.clone(), key, record));
                }
            }
        }
        let started = |c: &LazyCall| c.metadata().runtime.as_ref().map(|r| r.timestart);
        out.sort_by(|a, b| {
            started(a)
                .cmp(&started(b))
                .then(a.digest().cmp(&b.digest()))
        });
        Ok(out)
    }
}
