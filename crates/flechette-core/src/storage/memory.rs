//! In-memory storage on concurrent hash maps.

use async_trait::async_trait;
use bytes::Bytes;
use dashmap::DashMap;

use super::{CallStorage, StorageError, ValueStorage};
use crate::{CallQuery, CallRecord, Digest, DigestPrefix};

/// Values in process memory.
#[derive(Debug, Default)]
pub struct MemoryValues {
    map: DashMap<Digest, Bytes>,
}

/// Call records in process memory.
#[derive(Debug, Default)]
pub struct MemoryCalls {
    map: DashMap<Digest, CallRecord>,
}

impl MemoryValues {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MemoryCalls {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn keys<V>(map: &DashMap<Digest, V>, prefix: Option<&DigestPrefix>) -> Vec<Digest> {
    map.iter()
        .map(|e| *e.key())
        .filter(|d| prefix.is_none_or(|p| p.matches(d)))
        .collect()
}

#[async_trait]
impl ValueStorage for MemoryValues {
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        Ok(self.map.get(digest).map(|v| v.clone()))
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.map.insert(*digest, bytes);
        Ok(())
    }

    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self.map.contains_key(digest))
    }

    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        for (digest, bytes) in values {
            self.map.entry(*digest).or_insert_with(|| bytes.clone());
        }
        Ok(())
    }

    fn writes_in_place(&self) -> bool {
        true
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        Ok(self.map.remove(digest).is_some())
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        Ok(keys(&self.map, prefix))
    }
}

#[async_trait]
impl CallStorage for MemoryCalls {
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        Ok(self.map.get(key).map(|r| r.clone()))
    }

    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError> {
        self.map.insert(*key, record.clone());
        Ok(())
    }

    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        for (key, record) in records {
            self.map.insert(*key, record.clone());
        }
        Ok(())
    }

    fn writes_in_place(&self) -> bool {
        true
    }

    async fn remove(&self, key: &Digest) -> Result<bool, StorageError> {
        Ok(self.map.remove(key).is_some())
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        Ok(keys(&self.map, prefix))
    }

    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        Ok(self
            .map
            .iter()
            .filter(|e| query.matches(e.value()))
            .map(|e| (*e.key(), e.value().clone()))
            .collect())
    }
}
