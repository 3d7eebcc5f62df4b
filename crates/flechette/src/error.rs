//! The error a cached function call returns.

use std::sync::Arc;

use flechette_core::CacheError;
use flechette_core::encoding::EncodeError;

/// Why a call of a [`CachedFn`](crate::CachedFn) returned no value.
///
/// Storage faults never appear here: they degrade to a miss and a warning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The function returned an error; it was not cached. Shared, so every
    /// waiter on one computation gets the same error.
    #[error("cached function failed: {0}")]
    Failed(Arc<E>),
    /// An argument or the result could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An argument given by digest could not be expanded or loaded.
    #[error("argument given by digest: {0}")]
    Argument(#[source] CacheError),
}
