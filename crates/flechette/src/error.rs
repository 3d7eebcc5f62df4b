//! The error a cached function call returns.

use std::sync::Arc;
use std::time::Duration;

use flechette_core::CacheError;
use flechette_core::encoding::EncodeError;

/// Why a call of a [`CachedFn`](crate::CachedFn) returned no value.
///
/// Every caller collapsed onto one computation gets a clone of the same
/// error: the function's own error is shared behind an [`Arc`], never
/// re-created. Storage faults never appear here: they degrade to a miss and
/// a warning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The function returned an error; nothing was cached.
    #[error("cached function failed: {0}")]
    Failed(Arc<E>),
    /// The computation ran longer than the function's timeout and was
    /// cancelled; nothing was cached.
    #[error("cached function timed out after {0:?}")]
    Timeout(Duration),
    /// The computation panicked; nothing was cached and the next call
    /// computes again.
    #[error("cached function panicked")]
    Panicked,
    /// The computation was dropped before it finished (its runtime shut
    /// down).
    #[error("cached function computation was abandoned")]
    Abandoned,
    /// An argument or the result could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An argument given by digest could not be expanded or loaded.
    #[error("argument given by digest: {0}")]
    Argument(#[source] Arc<CacheError>),
}

impl<E> Clone for CallError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(e) => Self::Failed(Arc::clone(e)),
            Self::Timeout(d) => Self::Timeout(*d),
            Self::Panicked => Self::Panicked,
            Self::Abandoned => Self::Abandoned,
            Self::Encode(e) => Self::Encode(e.clone()),
            Self::Argument(e) => Self::Argument(Arc::clone(e)),
        }
    }
}

impl<E> CallError<E> {
    /// The function's own error, when that is what happened.
    pub fn failure(&self) -> Option<&E> {
        match self {
            Self::Failed(e) => Some(e),
            _ => None,
        }
    }
}
