//! Argument tuples of cached functions, and digests passed in place of values.

use bytes::Bytes;
use flechette_core::encoding::{self, EncodeError};
use flechette_core::{Cache, CacheError, Digest, DigestPrefix, digest};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A tuple of arguments a [`CachedFn`](crate::CachedFn) takes: `()`,
/// `(A,)`, `(A, B)`, … up to eight elements, each `Serialize`.
pub trait Args: Serialize + Send + 'static {
    /// How many arguments.
    const ARITY: usize;

    /// The value digest of each argument, in order.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded.
    fn digests(&self) -> Result<Vec<Digest>, EncodeError>;

    /// The canonical encoding and digest of each argument, in order.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded.
    fn encode(&self) -> Result<Vec<(Digest, Bytes)>, EncodeError>;
}

/// One argument given either as a value or as the digest of a value already
/// stored in the cache: the call key is the same either way.
#[derive(Clone, Debug)]
pub enum Arg<T> {
    /// The value itself.
    Value(T),
    /// A (possibly short) digest of a stored value.
    Stored(DigestPrefix),
}

impl<T> Arg<T> {
    /// An argument given by (short) digest.
    pub fn stored(prefix: impl Into<DigestPrefix>) -> Self {
        Self::Stored(prefix.into())
    }
}

impl<T> From<T> for Arg<T> {
    fn from(value: T) -> Self {
        Self::Value(value)
    }
}

/// A tuple of [`Arg`]s standing for the argument tuple `Values`.
pub trait ArgRefs: Send + 'static {
    /// The argument tuple the function takes.
    type Values: Args;

    /// The value digest of each argument, expanding short digests.
    #[doc(hidden)]
    fn resolve(
        &self,
        cache: &Cache,
    ) -> impl std::future::Future<Output = Result<Vec<Digest>, CacheError>> + Send;

    /// The values, loading those given by digest from `cache`.
    #[doc(hidden)]
    fn load(
        self,
        cache: &Cache,
        digests: &[Digest],
    ) -> impl std::future::Future<Output = Result<Self::Values, CacheError>> + Send;
}

async fn resolve_one<T: Serialize>(arg: &Arg<T>, cache: &Cache) -> Result<Digest, CacheError> {
    match arg {
        Arg::Value(v) => Ok(digest(v)?),
        Arg::Stored(p) => match p.as_full() {
            Some(d) => Ok(d),
            None => cache.expand(p).await,
        },
    }
}

async fn load_one<T: DeserializeOwned>(
    arg: Arg<T>,
    cache: &Cache,
    digest: &Digest,
) -> Result<T, CacheError> {
    match arg {
        Arg::Value(v) => Ok(v),
        Arg::Stored(_) => cache.load_value(digest).await,
    }
}

fn encode_one<T: Serialize>(value: &T) -> Result<(Digest, Bytes), EncodeError> {
    let bytes = encoding::to_vec(value)?;
    Ok((Digest::of_encoded(&bytes), Bytes::from(bytes)))
}

macro_rules! tuples {
    ($( ($n:expr; $($t:ident $i:tt),*) )*) => {$(
        impl<$($t),*> Args for ($($t,)*)
        where
            $($t: Serialize + Send + 'static,)*
        {
            const ARITY: usize = $n;

            #[allow(unused_variables)]
            fn digests(&self) -> Result<Vec<Digest>, EncodeError> {
                Ok(vec![$(digest(&self.$i)?),*])
            }

            #[allow(unused_variables)]
            fn encode(&self) -> Result<Vec<(Digest, Bytes)>, EncodeError> {
                Ok(vec![$(encode_one(&self.$i)?),*])
            }
        }

        impl<$($t),*> ArgRefs for ($(Arg<$t>,)*)
        where
            $($t: Serialize + DeserializeOwned + Send + Sync + 'static,)*
        {
            type Values = ($($t,)*);

            #[allow(unused_variables)]
            async fn resolve(&self, cache: &Cache) -> Result<Vec<Digest>, CacheError> {
                Ok(vec![$(resolve_one(&self.$i, cache).await?),*])
            }

            #[allow(unused_variables, clippy::unused_unit)]
            async fn load(self, cache: &Cache, digests: &[Digest]) -> Result<Self::Values, CacheError> {
                Ok(($(load_one(self.$i, cache, &digests[$i]).await?,)*))
            }
        }
    )*};
}

tuples! {
    (0;)
    (1; A 0)
    (2; A 0, B 1)
    (3; A 0, B 1, C 2)
    (4; A 0, B 1, C 2, D 3)
    (5; A 0, B 1, C 2, D 3, E 4)
    (6; A 0, B 1, C 2, D 3, E 4, F 5)
    (7; A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}
