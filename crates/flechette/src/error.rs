//! The error a cached function call returns.

use std::fmt;
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
///
/// Every variant that wraps another error returns it from
/// [`source`](std::error::Error::source) (the function's own error as its
/// own type, ready for `downcast_ref`), and does not repeat its message in
/// its own, so reports (`anyhow`'s `{:#}`, `tracing` error fields) show
/// each cause once. `CallError<E>` is an [`Error`](std::error::Error) when
/// `E` is one.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The function returned an error; nothing was cached.
    Failed(Arc<E>),
    /// The computation ran longer than the function's timeout and was
    /// cancelled; nothing was cached.
    Timeout(Duration),
    /// The computation panicked; nothing was cached and the next call
    /// computes again.
    Panicked,
    /// The computation was dropped before it finished (its runtime shut
    /// down).
    Abandoned,
    /// An argument or the result could not be encoded.
    Encode(EncodeError),
    /// An argument given by digest could not be expanded or loaded.
    Argument(Arc<CacheError>),
    /// The function was built without a body of its own
    /// ([`CachedFnBuilder::build_unbound`](crate::CachedFnBuilder::build_unbound))
    /// and was called without one.
    Unbound,
    /// The call would wait on itself: it was made, with the same key, from
    /// inside the computation of that very call (directly, or through other
    /// cached functions), which can never finish while it waits.
    Cycle {
        /// The function called.
        function: String,
        /// The first 12 hex characters of the call key.
        key: String,
    },
}

impl<E> From<EncodeError> for CallError<E> {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl<E> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One set of messages: those of `Failure`.
        match self {
            Self::Failed(_) => f.write_str("cached function failed"),
            Self::Timeout(d) => Failure::Timeout(*d).fmt(f),
            Self::Panicked => Failure::Panicked.fmt(f),
            Self::Abandoned => Failure::Abandoned.fmt(f),
            other => other
                .clone()
                .into_failed()
                .map_or_else(|e| e.fmt(f), |_| Ok(())),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(e) => Some(&**e),
            Self::Encode(e) => Some(e),
            Self::Argument(e) => Some(&**e),
            Self::Timeout(_)
            | Self::Panicked
            | Self::Abandoned
            | Self::Unbound
            | Self::Cycle { .. } => None,
        }
    }
}

/// Why a cached call returned no value, apart from the function's own error:
/// what a function wrapped by `#[cached]` converts into its error type
/// (`E: From<Failure>`).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// See [`CallError::Timeout`].
    #[error("cached function timed out after {0:?}")]
    Timeout(Duration),
    /// See [`CallError::Panicked`].
    #[error("cached function panicked")]
    Panicked,
    /// See [`CallError::Abandoned`].
    #[error("cached function computation was abandoned")]
    Abandoned,
    /// See [`CallError::Encode`].
    #[error("could not encode an argument or the result")]
    Encode(#[source] EncodeError),
    /// See [`CallError::Argument`].
    #[error("an argument given by digest could not be loaded")]
    Argument(#[source] Arc<CacheError>),
    /// See [`CallError::Unbound`].
    #[error("this cached function has no body of its own: call the function it wraps")]
    Unbound,
    /// See [`CallError::Cycle`].
    #[error(
        "cycle: cached function {function} was called with key {key}… from inside the computation of that same call"
    )]
    Cycle {
        /// The function called.
        function: String,
        /// The first 12 hex characters of the call key.
        key: String,
    },
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
            Self::Unbound => Self::Unbound,
            Self::Cycle { function, key } => Self::Cycle {
                function: function.clone(),
                key: key.clone(),
            },
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

    /// Splits the error into the function's own error (shared) or a
    /// [`Failure`] of the cache machinery.
    ///
    /// # Errors
    ///
    /// The [`Failure`] when the function's own error is not what happened.
    pub fn into_failed(self) -> Result<Arc<E>, Failure> {
        Err(match self {
            Self::Failed(e) => return Ok(e),
            Self::Timeout(d) => Failure::Timeout(d),
            Self::Panicked => Failure::Panicked,
            Self::Abandoned => Failure::Abandoned,
            Self::Encode(e) => Failure::Encode(e),
            Self::Argument(e) => Failure::Argument(e),
            Self::Unbound => Failure::Unbound,
            Self::Cycle { function, key } => Failure::Cycle { function, key },
        })
    }

    /// The error a function wrapped by `#[cached]` returns: its own error
    /// (cloned when other callers share it), or a [`Failure`] converted
    /// into its error type.
    pub fn into_error(self) -> E
    where
        E: Clone + From<Failure>,
    {
        match self.into_failed() {
            Ok(e) => Arc::unwrap_or_clone(e),
            Err(f) => E::from(f),
        }
    }
}
