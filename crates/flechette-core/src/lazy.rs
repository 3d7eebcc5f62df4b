//! Lazily loaded calls: metadata at once, values when asked.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::{Cache, CacheError, CallRecord, Digest, Metadata, encoding};

/// A call whose record is loaded and whose values are read and decoded only
/// when asked for.
#[derive(Clone, Debug)]
pub struct LazyCall {
    cache: Cache,
    key: Digest,
    record: CallRecord,
}

impl LazyCall {
    pub(crate) fn new(cache: Cache, key: Digest, record: CallRecord) -> Self {
        Self { cache, key, record }
    }

    /// The call key.
    pub fn digest(&self) -> Digest {
        self.key
    }

    /// The whole record.
    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    /// The function name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The module.
    pub fn module(&self) -> &str {
        &self.record.module
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.record.metadata
    }

    /// Reads and decodes the result.
    ///
    /// # Errors
    ///
    /// [`CacheError::MissingValue`] when the value is gone, a decode error
    /// when it is not a `T`, or a storage error.
    pub async fn result<T: DeserializeOwned>(&self) -> Result<T, CacheError> {
        self.cache.load_value(&self.record.result).await
    }

    /// Reads the result untyped, as JSON, for browsing.
    ///
    /// # Errors
    ///
    /// As [`result`](Self::result).
    pub async fn result_value(&self) -> Result<serde_json::Value, CacheError> {
        value_json(&self.cache, &self.record.result).await
    }

    /// The arguments, each loaded when asked.
    pub fn arguments(&self) -> LazyArguments<'_> {
        LazyArguments { call: self }
    }

    /// Loads every value of the call.
    ///
    /// # Errors
    ///
    /// [`CacheError::MissingValue`] when a value is gone, or a storage error.
    pub async fn fetch(&self) -> Result<Call, CacheError> {
        let mut values = Vec::new();
        for digest in self.record.value_digests() {
            let bytes = self
                .cache
                .load_encoded(digest)
                .await?
                .ok_or(CacheError::MissingValue(*digest))?;
            values.push((*digest, bytes));
        }
        Ok(Call {
            record: self.record.clone(),
            values,
        })
    }
}

async fn value_json(cache: &Cache, digest: &Digest) -> Result<serde_json::Value, CacheError> {
    cache.load_json(digest).await
}

/// The arguments of a [`LazyCall`]; each is read when asked for.
#[derive(Clone, Copy, Debug)]
pub struct LazyArguments<'a> {
    call: &'a LazyCall,
}

impl LazyArguments<'_> {
    /// The argument names, in parameter order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.call.record.arguments.iter().map(|(n, _)| n.as_str())
    }

    /// The digest of argument `name`.
    pub fn digest(&self, name: &str) -> Option<Digest> {
        self.call.record.argument(name).copied()
    }

    fn need(&self, name: &str) -> Result<Digest, CacheError> {
        self.digest(name)
            .ok_or_else(|| CacheError::NoSuchArgument(name.to_owned()))
    }

    /// Reads and decodes argument `name`.
    ///
    /// # Errors
    ///
    /// [`CacheError::NoSuchArgument`], or as [`LazyCall::result`].
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T, CacheError> {
        self.call.cache.load_value(&self.need(name)?).await
    }

    /// Reads argument `name` untyped, as JSON.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn get_value(&self, name: &str) -> Result<serde_json::Value, CacheError> {
        value_json(&self.call.cache, &self.need(name)?).await
    }
}

/// A call with every value loaded, as encoded bytes.
#[derive(Clone, Debug)]
pub struct Call {
    record: CallRecord,
    values: Vec<(Digest, Bytes)>,
}

impl Call {
    /// A call from its record and the encoded values it refers to.
    pub fn new(record: CallRecord, values: Vec<(Digest, Bytes)>) -> Self {
        Self { record, values }
    }

    /// The call key: the same as the lazy call it was fetched from.
    pub fn digest(&self) -> Digest {
        self.record.key()
    }

    /// The record.
    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    /// The encoded values, by digest.
    pub fn values(&self) -> impl Iterator<Item = (&Digest, &Bytes)> {
        self.values.iter().map(|(d, b)| (d, b))
    }

    fn bytes(&self, digest: &Digest) -> Result<&Bytes, CacheError> {
        self.values
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, b)| b)
            .ok_or(CacheError::MissingValue(*digest))
    }

    /// Decodes the result.
    ///
    /// # Errors
    ///
    /// A decode error when it is not a `T`.
    pub fn result<T: DeserializeOwned>(&self) -> Result<T, CacheError> {
        Ok(encoding::from_slice(self.bytes(&self.record.result)?)?)
    }

    /// Decodes argument `name`.
    ///
    /// # Errors
    ///
    /// [`CacheError::NoSuchArgument`], or a decode error.
    pub fn argument<T: DeserializeOwned>(&self, name: &str) -> Result<T, CacheError> {
        let digest = self
            .record
            .argument(name)
            .ok_or_else(|| CacheError::NoSuchArgument(name.to_owned()))?;
        Ok(encoding::from_slice(self.bytes(digest)?)?)
    }
}
