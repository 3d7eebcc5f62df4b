//! Values as files: the value half of a [`FileStore`](super::FileStore).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::shards::{Shards, blocking, write_many};
use super::{State, index::Index};
use crate::storage::{Debris, StorageError, ValueStorage};
use crate::{Digest, DigestPrefix, Timestamp};

/// Values as files under a directory.
#[derive(Debug, Clone)]
pub struct FileValues {
    shards: Shards,
    state: Arc<State>,
}

impl FileValues {
    /// Opens (creating if needed) the value directory `dir` on its own,
    /// unbounded ([`FileStore`](super::FileStore) opens values and calls
    /// together, with bounds).
    ///
    /// # Errors
    ///
    /// Fails when the directory cannot be created or listed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let shards = Shards::open(dir.into())?;
        let state = State::open(Some(shards.clone()), None, None, None, 0)?;
        Ok(Self::on(shards, Arc::new(state)))
    }

    pub(super) fn on(shards: Shards, state: Arc<State>) -> Self {
        Self { shards, state }
    }
}

/// Claims `values` in the index (see `Index::claim_value`) at `now`.
fn claim(index: &mut Index, values: &[(Digest, Bytes)], now: Timestamp) {
    for (digest, bytes) in values {
        index.claim_value(*digest, bytes.len() as u64, now);
    }
}

#[async_trait]
impl ValueStorage for FileValues {
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        let (shards, digest) = (self.shards.clone(), *digest);
        blocking(move || {
            let Some((path, bytes)) = shards.read(&digest)? else {
                return Ok(None);
            };
            if Digest::of_encoded(&bytes) != digest {
                shards.quarantine(&path, &bytes, "content does not match its digest");
                return Ok(None);
            }
            Ok(Some(Bytes::from(bytes)))
        })
        .await
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        let (state, digest) = (Arc::clone(&self.state), *digest);
        let shards = self.shards.clone();
        let now = crate::clock::now();
        blocking(move || {
            claim(&mut state.index(), &[(digest, bytes.clone())], now);
            if let Err(e) = shards.write(&digest, &bytes) {
                state.index().unclaim_value(&digest);
                return Err(e);
            }
            state.enforce(&mut state.index())
        })
        .await
    }

    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        let (shards, digest) = (self.shards.clone(), *digest);
        blocking(move || Ok(shards.contains(&digest))).await
    }

    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        // Claimed before they are written (on the blocking pool: the index
        // may be held there by an eviction): no eviction or gc meanwhile
        // takes a present one away from the record that will refer to it.
        let (state, values) = (Arc::clone(&self.state), values.to_vec());
        let now = crate::clock::now();
        let values = blocking(move || {
            claim(&mut state.index(), &values, now);
            Ok(values)
        })
        .await?;
        let (done, written) = write_many(&self.shards, values.clone(), true).await;
        let state = Arc::clone(&self.state);
        blocking(move || {
            let mut index = state.index();
            if written.is_err() {
                let done: std::collections::HashSet<Digest> = done.into_iter().collect();
                for (digest, _) in &values {
                    if !done.contains(digest) {
                        index.unclaim_value(digest);
                    }
                }
            }
            state.enforce(&mut index)?;
            written
        })
        .await
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        let (state, digest) = (Arc::clone(&self.state), *digest);
        let shards = self.shards.clone();
        blocking(move || {
            let mut index = state.index();
            index.forget_value(&digest);
            shards.remove(&digest)
        })
        .await
    }

    /// By the file's modification time (a store of a present value sets
    /// it) and, for this store's own writers, the time of their claim,
    /// which comes before they touch the file: the index is locked from the
    /// look to the removal. A value a call, or a record being written,
    /// refers to is never removed.
    async fn remove_if_written_before(
        &self,
        digest: &Digest,
        before: Timestamp,
    ) -> Result<bool, StorageError> {
        let (state, digest) = (Arc::clone(&self.state), *digest);
        let shards = self.shards.clone();
        blocking(move || {
            let mut index = state.index();
            if !index.collectable(&digest, before)
                || shards.written(&digest)?.is_none_or(|at| at >= before)
            {
                return Ok(false);
            }
            index.forget_value(&digest);
            shards.remove(&digest)
        })
        .await
    }

    async fn clear_debris(&self, before: Timestamp) -> Result<Debris, StorageError> {
        let shards = self.shards.clone();
        blocking(move || shards.clear_debris(before)).await
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        let (shards, prefix) = (self.shards.clone(), prefix.cloned());
        blocking(move || shards.list(prefix.as_ref())).await
    }
}
