//! The error type of cache operations.

use crate::encoding::{DecodeError, EncodeError};
use crate::storage::StorageError;
use crate::{Digest, DigestPrefix};

/// A cache operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Stored bytes did not decode into the asked type.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No value or call in the cache has a digest starting with the prefix.
    #[error("no value or call in the cache starts with {prefix}")]
    NotFound {
        /// The prefix that was looked up.
        prefix: DigestPrefix,
    },
    /// Several digests start with the prefix.
    #[error(
        "{prefix} is ambiguous: {matches} digests start with it; {unique_len} characters would be unique"
    )]
    Ambiguous {
        /// The prefix that was looked up.
        prefix: DigestPrefix,
        /// How many digests start with it.
        matches: usize,
        /// How many characters would tell the matches apart.
        unique_len: usize,
    },
    /// A record refers to a value the cache does not hold.
    #[error("value {0} is not in the cache")]
    MissingValue(Digest),
    /// A call has no argument of that name.
    #[error("the call has no argument named {0:?}")]
    NoSuchArgument(String),
}
