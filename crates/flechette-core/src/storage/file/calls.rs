//! Call records as files: the call half of a [`FileStore`](super::FileStore).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::State;
use super::index::refs_of;
use super::shards::{Shards, blocking, write_many};
use crate::storage::{CallStorage, Debris, StorageError, SweepReport, encode_record};
use crate::{CallQuery, CallRecord, Digest, DigestPrefix, Timestamp};

/// Call records as files under a directory.
#[derive(Debug, Clone)]
pub struct FileCalls {
    shards: Shards,
    state: Arc<State>,
}

/// The record under `key` with its size; a damaged one is set aside and
/// reported as [`StorageError::Damaged`].
pub(super) fn read(
    shards: &Shards,
    key: &Digest,
) -> Result<Option<(CallRecord, u64)>, StorageError> {
    let Some((path, bytes)) = shards.read(key)? else {
        return Ok(None);
    };
    let why = match rmp_serde::from_slice::<CallRecord>(&bytes) {
        Ok(record) if record.key() == *key => return Ok(Some((record, bytes.len() as u64))),
        Ok(_) => "record does not match its key".to_owned(),
        Err(e) => format!("record does not decode: {e}"),
    };
    shards.quarantine(&path, &bytes, &why);
    Err(StorageError::Damaged { key: *key, why })
}

/// [`read`], with a damaged record as absent.
fn read_or_none(shards: &Shards, key: &Digest) -> Result<Option<(CallRecord, u64)>, StorageError> {
    match read(shards, key) {
        Err(StorageError::Damaged { .. }) => Ok(None),
        other => other,
    }
}

impl FileCalls {
    /// Opens (creating if needed) the record directory `dir` on its own,
    /// unbounded ([`FileStore`](super::FileStore) opens values and calls
    /// together, with bounds; on its own, an expired call goes without
    /// its values).
    ///
    /// # Errors
    ///
    /// Fails when the directory cannot be created or listed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let shards = Shards::open(dir.into())?;
        let state = State::open(
            None,
            Some(shards.clone()),
            None,
            Some(crate::storage::DEFAULT_SWEEP_INTERVAL),
            crate::storage::DEFAULT_SWEEP_BUDGET,
        )?;
        Ok(Self::on(shards, Arc::new(state)))
    }

    pub(super) fn on(shards: Shards, state: Arc<State>) -> Self {
        Self { shards, state }
    }

    /// Reads `key` (`read` is [`read`] or [`read_or_none`]); an expired
    /// call is removed with the values only it referred to and reads as
    /// absent; a call another process wrote is learnt.
    async fn load(
        &self,
        key: &Digest,
        damaged_is_error: bool,
    ) -> Result<Option<CallRecord>, StorageError> {
        let (shards, state, key) = (self.shards.clone(), Arc::clone(&self.state), *key);
        let now = crate::clock::now();
        blocking(move || {
            let found = if damaged_is_error {
                read(&shards, &key)?
            } else {
                read_or_none(&shards, &key)?
            };
            let Some((record, len)) = found else {
                return Ok(None);
            };
            let mut index = state.index();
            if !index.knows(&key) {
                index.found_call(key, &record, len);
            }
            if record.expired_at(now) {
                // Removed only when the call indexed is expired too: the
                // file read may be older than a record written since.
                if index.is_expired(&key, now) {
                    state.drop_call(&mut index, &key)?;
                }
                return Ok(None);
            }
            index.read_call(&key);
            Ok(Some(record))
        })
        .await
    }

    /// Indexes the records of a batch whose files were written (`done`),
    /// undoes the pins of the others, and removes what they replaced and
    /// what the bound evicts.
    fn written(
        state: &State,
        records: Vec<Writing>,
        done: &HashSet<Digest>,
    ) -> Result<(), StorageError> {
        let mut index = state.index();
        for (key, record, refs, len) in records {
            index.written(&key);
            let orphans = if done.contains(&key) {
                index.put_call(key, &record, refs, len)
            } else {
                index.unpin(&refs, 0)
            };
            state.drop_orphans(&mut index, &orphans)?;
        }
        state.enforce(&mut index)
    }
}

/// A record being written: its key, itself, the values it refers to, the
/// length of its file.
type Writing = (Digest, CallRecord, Box<[Digest]>, u64);

/// The pins of a batch of records being written; undone when the write is
/// abandoned (its future dropped before the files were indexed).
struct InFlight {
    state: Arc<State>,
    records: Option<Vec<Writing>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(records) = self.records.take() else {
            return;
        };
        let mut index = self.state.index();
        for (key, _, refs, _) in &records {
            index.written(key);
            let orphans = index.unpin(refs, 0);
            if let Err(e) = self.state.drop_orphans(&mut index, &orphans) {
                tracing::warn!(error = %e, "file cache: could not remove the values of an abandoned write");
            }
        }
    }
}

#[async_trait]
impl CallStorage for FileCalls {
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        self.load(key, false).await
    }

    async fn get_with_result(
        &self,
        key: &Digest,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, StorageError> {
        let record = self.load(key, true).await?;
        Ok(record.map(|record| (record, None)))
    }

    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError> {
        self.put_many(&[(*key, record.clone())]).await
    }

    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        self.state.ensure_sweeper();
        let mut files = Vec::with_capacity(records.len());
        let mut indexed = Vec::with_capacity(records.len());
        for (key, record) in records {
            let bytes = Bytes::from(encode_record(record)?);
            let refs = refs_of(record);
            indexed.push((*key, record.clone(), refs, bytes.len() as u64));
            files.push((*key, bytes));
        }
        // Pinned before the files are written: no eviction or gc meanwhile
        // takes a value these records refer to, nor removes their calls.
        {
            let mut index = self.state.index();
            for (_, _, refs, _) in &indexed {
                index.pin(refs);
            }
            index.writing(indexed.iter().map(|(key, ..)| *key));
        }
        let mut in_flight = InFlight {
            state: Arc::clone(&self.state),
            records: Some(indexed),
        };
        let (done, outcome) = write_many(&self.shards, files, false).await;
        let records = in_flight.records.take().unwrap_or_default();
        let state = Arc::clone(&self.state);
        let done: HashSet<Digest> = done.into_iter().collect();
        blocking(move || Self::written(&state, records, &done)).await?;
        outcome
    }

    async fn remove(&self, key: &Digest) -> Result<bool, StorageError> {
        let (shards, state, key) = (self.shards.clone(), Arc::clone(&self.state), *key);
        blocking(move || {
            let mut index = state.index();
            if state.drop_call(&mut index, &key)?.is_some() {
                return Ok(true);
            }
            shards.remove(&key)
        })
        .await
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        let (shards, prefix) = (self.shards.clone(), prefix.cloned());
        blocking(move || shards.list(prefix.as_ref())).await
    }

    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        let (shards, query) = (self.shards.clone(), query.clone());
        let now = crate::clock::now();
        blocking(move || {
            let mut out = Vec::new();
            for key in shards.list(None)? {
                if let Some((record, _)) = read_or_none(&shards, &key)?
                    && !record.expired_at(now)
                    && query.matches(&record)
                {
                    out.push((key, record));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn clear_debris(&self, before: Timestamp) -> Result<Debris, StorageError> {
        let shards = self.shards.clone();
        blocking(move || shards.clear_debris(before)).await
    }

    async fn sweep(&self, budget: usize) -> Result<SweepReport, StorageError> {
        let state = Arc::clone(&self.state);
        let now = crate::clock::now();
        blocking(move || state.sweep(budget, now)).await
    }
}
