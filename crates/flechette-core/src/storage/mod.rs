//! Storage traits, the seam every backend implements, and the built-in
//! memory and file backends.
//!
//! Both traits are object-safe and `Send + Sync`; a [`Cache`](crate::Cache)
//! holds them as `Arc<dyn ValueStorage>` and `Arc<dyn CallStorage>`.

mod file;
mod memory;
mod sweeper;

use std::path::PathBuf;

use crate::{CallQuery, CallRecord, Digest, DigestPrefix};

pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use file::{FileBuilder, FileCalls, FileStore, FileValues};
pub use memory::{
    DEFAULT_MAX_BYTES, DEFAULT_SWEEP_BUDGET, DEFAULT_SWEEP_INTERVAL, MemoryBuilder, MemoryCalls,
    MemoryStore, MemoryValues,
};
pub use sweeper::Sweeper;

/// A storage operation that failed.
///
/// Caches turn these into misses plus a warning on the read path of cached
/// functions; direct cache calls report them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file-system operation failed.
    #[error("{action} {path:?}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded for storage.
    #[error("cannot encode a call record: {0}")]
    Encode(String),
    /// A backend-specific failure.
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A stored call record was damaged (it does not decode, or it is the
    /// record of another key). The backend has set it aside and warned; the
    /// call reads as absent. Only [`CallStorage::get_with_result`] reports
    /// it, so that a cached function can count the fault; every other read
    /// treats the record as missing.
    #[error("the stored call {key} is damaged: {why}")]
    Damaged {
        /// The call key.
        key: crate::Digest,
        /// What is wrong with it.
        why: String,
    },
}

/// Digest → bytes: where argument and result values live, each stored once.
///
/// Implementations store the bytes exactly as given. A write of a digest that
/// is already present may be skipped: content under one digest never changes.
#[async_trait]
pub trait ValueStorage: Send + Sync + 'static {
    /// The bytes stored under `digest`, or `None`.
    ///
    /// A backend that finds damaged bytes reports `None` and logs a warning.
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError>;

    /// Stores `bytes` under `digest`; atomic for readers.
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError>;

    /// Whether `digest` is stored.
    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError>;

    /// Stores each value not already stored, in as few round trips as the
    /// backend can (one transaction, one pipeline): a value already present
    /// is skipped in the same operation, not probed first. The default
    /// probes and puts one value after another.
    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        for (digest, bytes) in values {
            if !self.contains(digest).await? {
                self.put(digest, bytes.clone()).await?;
            }
        }
        Ok(())
    }

    /// Whether a write completes without I/O (process memory): a cache then
    /// writes in place instead of through its write-behind queue.
    fn writes_in_place(&self) -> bool {
        false
    }

    /// Removes `digest`; `true` when something was removed.
    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError>;

    /// Removes `digest` unless it was last written at or after `before`
    /// (a store of a present value counts as a write); `true` when
    /// something was removed. `gc` removes values this way, so that a
    /// writer between saving a call's values and its record never loses
    /// them. The default removes it whatever its age: a backend that does
    /// not know when its values were written.
    async fn remove_if_written_before(
        &self,
        digest: &Digest,
        before: crate::Timestamp,
    ) -> Result<bool, StorageError> {
        let _ = before;
        self.remove(digest).await
    }

    /// Removes what the backend left behind that no digest names (damaged
    /// files set aside, temporary files of writes that never finished),
    /// when older than `before`. The default finds nothing.
    async fn clear_debris(&self, before: crate::Timestamp) -> Result<Debris, StorageError> {
        let _ = before;
        Ok(Debris::default())
    }

    /// Every stored digest starting with `prefix` (all of them for `None`).
    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError>;
}

/// What [`ValueStorage::clear_debris`] or [`CallStorage::clear_debris`]
/// removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Debris {
    /// Damaged files that had been set aside (`.corrupt-*`).
    pub corrupt: usize,
    /// Temporary files of writes that never finished (`.tmp-*`).
    pub temp: usize,
}

/// Call key → record.
#[async_trait]
pub trait CallStorage: Send + Sync + 'static {
    /// The record stored under `key`, or `None`.
    ///
    /// A backend that finds a damaged record reports `None` and logs a warning.
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError>;

    /// Stores `record` under `key` (which is `record.key()`); atomic for readers.
    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError>;

    /// Stores many records (each under its key), in as few round trips as
    /// the backend can; the default puts one after another.
    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        for (key, record) in records {
            self.put(key, record).await?;
        }
        Ok(())
    }

    /// Whether a write completes without I/O (process memory): a cache then
    /// writes in place instead of through its write-behind queue.
    fn writes_in_place(&self) -> bool {
        false
    }

    /// The record under `key` with the encoded bytes of its result, for
    /// backends that keep both and can fetch them in one round trip (a
    /// script, a pipeline). The default fetches the record only: `None`
    /// bytes tell the caller to load the result itself.
    ///
    /// Bytes returned must be the record's result: a backend whose bytes
    /// can be damaged passes them through [`verified_result`], so that
    /// callers trust them without hashing them again.
    async fn get_with_result(
        &self,
        key: &Digest,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, StorageError> {
        Ok(self.get(key).await?.map(|record| (record, None)))
    }

    /// Removes `key`; `true` when something was removed.
    async fn remove(&self, key: &Digest) -> Result<bool, StorageError>;

    /// Every stored key starting with `prefix` (all of them for `None`).
    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError>;

    /// The records matching `query`, with their keys.
    ///
    /// Backends that can should push the filters down (an index, a `WHERE`);
    /// the built-in ones scan and call [`CallQuery::matches`].
    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError>;

    /// Examines up to `budget` stored calls and removes those past their
    /// `expire_after`, with the values only they referred to, where the
    /// backend knows them. The default does nothing: a backend that
    /// removes expired calls by other means (a time to live) or not at all.
    async fn sweep(&self, budget: usize) -> Result<SweepReport, StorageError> {
        let _ = budget;
        Ok(SweepReport::default())
    }

    /// As [`ValueStorage::clear_debris`], for records.
    async fn clear_debris(&self, before: crate::Timestamp) -> Result<Debris, StorageError> {
        let _ = before;
        Ok(Debris::default())
    }
}

/// What a [`CallStorage::sweep`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Calls examined.
    pub examined: usize,
    /// Expired calls removed.
    pub expired: usize,
    /// Values removed with them.
    pub values: usize,
}

/// Proof that this process holds the computation of one call key across
/// processes: a token only its holder knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease(pub String);

/// Cross-process single flight: backends shared by several processes (a
/// Redis) implement it so that one process computes a missing call while
/// the others wait for its result.
///
/// A lease expires by itself after its time to live, so a holder that dies
/// strands nobody.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// Tries to take the computation of `key` for `ttl`: `Some` lease when
    /// this process takes it, `None` when another holds it.
    async fn acquire(
        &self,
        key: &Digest,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StorageError>;

    /// Gives the computation of `key` back, if `lease` still holds it.
    async fn release(&self, key: &Digest, lease: &Lease) -> Result<(), StorageError>;

    /// Waits until nobody holds `key`, or `at_most` has passed.
    async fn wait_released(
        &self,
        key: &Digest,
        at_most: std::time::Duration,
    ) -> Result<(), StorageError>;
}

/// A message that calls of one function must be forgotten, by every
/// process sharing a cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidation {
    /// The function's name.
    pub name: String,
    /// Its module.
    pub module: String,
    /// Its version.
    pub version: Option<String>,
    /// The call to forget; `None` for every call of the function.
    pub key: Option<Digest>,
}

/// Invalidation broadcast: backends shared by several processes (a Redis)
/// carry each process's invalidations to the in-process tiers of all.
#[async_trait]
pub trait Broadcast: Send + Sync + 'static {
    /// Sends `message` to every process, this one included.
    async fn publish(&self, message: &Invalidation) -> Result<(), StorageError>;

    /// The messages from now on.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Invalidation>;
}

/// `bytes` when they are the encoding of `record`'s result (their digest is
/// the record's `result`); otherwise `None`, with a warning, so that the
/// caller loads the result by its digest instead.
pub fn verified_result(record: &CallRecord, bytes: Option<Bytes>) -> Option<Bytes> {
    let bytes = bytes?;
    if Digest::of_encoded(&bytes) == record.result {
        Some(bytes)
    } else {
        tracing::warn!(result = %record.result, "a stored result did not match its digest; loading it by digest");
        None
    }
}

/// Encodes a record for storage: MessagePack with named fields, so records
/// stay readable when fields are added.
///
/// # Errors
///
/// Fails only when the record's open metadata cannot be encoded.
pub fn encode_record(record: &CallRecord) -> Result<Vec<u8>, StorageError> {
    rmp_serde::to_vec_named(record).map_err(|e| StorageError::Encode(e.to_string()))
}

/// Decodes a record written by [`encode_record`].
///
/// # Errors
///
/// Fails when the bytes are not a record (damaged or truncated).
pub fn decode_record(bytes: &[u8]) -> Result<CallRecord, crate::encoding::DecodeError> {
    crate::encoding::from_slice(bytes)
}
