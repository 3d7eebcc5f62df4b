//! Storage wrappers that count what passes through them.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use flechette_core::storage::{CallStorage, StorageError, ValueStorage};
use flechette_core::{CallQuery, CallRecord, Digest, DigestPrefix};

/// Counts reads and writes of the storage it wraps.
#[derive(Default)]
pub struct Counts {
    pub gets: AtomicUsize,
    pub puts: AtomicUsize,
}

impl Counts {
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }
}

pub struct Counting<S> {
    pub inner: S,
    pub counts: Arc<Counts>,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        (
            Self {
                inner,
                counts: counts.clone(),
            },
            counts,
        )
    }
}

#[async_trait]
impl<S: ValueStorage> ValueStorage for Counting<S> {
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        self.counts.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(digest).await
    }
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.counts.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(digest, bytes).await
    }
    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        self.inner.contains(digest).await
    }
    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        self.inner.remove(digest).await
    }
    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.inner.list(prefix).await
    }
}

#[async_trait]
impl<S: CallStorage> CallStorage for Counting<S> {
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        self.counts.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError> {
        self.counts.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, record).await
    }
    async fn remove(&self, key: &Digest) -> Result<bool, StorageError> {
        self.inner.remove(key).await
    }
    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        self.inner.query(query).await
    }
}

/// A record of `name(x = arg) -> result`, with its values saved in `cache`.
pub async fn save_call(
    cache: &flechette_core::Cache,
    name: &str,
    arg: u64,
    result: &str,
    tags: &[(&str, &str)],
) -> Digest {
    let arg_digest = cache.save_value(&arg).await.unwrap();
    let result_digest = cache.save_value(result).await.unwrap();
    let record = CallRecord {
        name: name.into(),
        module: "tests".into(),
        version: None,
        arguments: vec![("x".into(), arg_digest)],
        result: result_digest,
        metadata: flechette_core::Metadata {
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        },
    };
    cache.save_record(&record).await.unwrap()
}
