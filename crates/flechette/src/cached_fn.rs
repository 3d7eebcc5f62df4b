//! `CachedFn`: an async function whose calls are kept in a cache.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use flechette_core::{Cache, CacheError, CallQuery, Digest, LazyCall, encoding};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::{ArgRefs, Args};
use crate::call::CallFuture;
use crate::error::CallError;
use crate::memo::stats::Stats;
use crate::memo::{Memo, Stored};
use crate::scope;

/// An async function whose calls are keyed by the digests of their name,
/// module, version and arguments, and kept in a [`Cache`].
///
/// A call is answered, in order, from
///
/// 1. the function's typed in-process tier (decoded values, bounded by a
///    capacity): no I/O, no decoding;
/// 2. a computation already in flight for the same arguments: concurrent
///    misses run the function once and share its outcome;
/// 3. the cache fixed at build time, or else the task's active cache
///    ([`with_cache`](crate::with_cache));
/// 4. the function itself; its arguments, result and a record with timings,
///    tags and lifespan are stored. Only successful results are stored.
///
/// With [`update_after`](crate::CachedFnBuilder::update_after), a read after that
/// age gets the cached value at once and starts one background refresh;
/// with [`expire_after`](crate::CachedFnBuilder::expire_after), a read after that
/// age waits for a fresh value.
///
/// Cheap to clone; clones are the same function.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use flechette::CachedFn;
/// let square = CachedFn::builder("square").args(["x"]).build(|(x,): (u64,)| async move { x * x });
/// assert_eq!(square.call((7,)).await.unwrap(), 49);
/// assert!(square.contains((7,)).await.unwrap());
/// assert_eq!(square.stats().misses, 1);
/// # }
/// ```
pub struct CachedFn<A, T, E = Infallible> {
    pub(crate) memo: Arc<Memo<A, T, E>>,
}

impl<A, T, E> Clone for CachedFn<A, T, E> {
    fn clone(&self) -> Self {
        Self {
            memo: Arc::clone(&self.memo),
        }
    }
}

impl<A, T, E> std::fmt::Debug for CachedFn<A, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ident = &self.memo.ident;
        f.debug_struct("CachedFn")
            .field("name", &ident.name)
            .field("module", &ident.module)
            .field("version", &ident.version)
            .field("arguments", &ident.arg_names)
            .finish_non_exhaustive()
    }
}

impl<A, T, E> CachedFn<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// The function name.
    pub fn name(&self) -> &str {
        &self.memo.ident.name
    }

    /// The cache calls use now: the fixed one, or the task's active cache.
    pub fn cache(&self) -> Cache {
        self.memo.cache()
    }

    /// The call key of `args`.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded.
    pub fn digest(&self, args: &A) -> Result<Digest, encoding::EncodeError> {
        Ok(self.memo.key_of(&args.digests()?))
    }

    /// Whether the call with `args` is stored (and loadable) in the cache.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded or storage fails.
    pub async fn contains(&self, args: A) -> Result<bool, CacheError> {
        let key = self.digest(&args)?;
        self.cache().contains(&key).await
    }

    /// The stored call with `args`, lazily loaded.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded or storage fails.
    pub async fn load(&self, args: A) -> Result<Option<LazyCall>, CacheError> {
        let key = self.digest(&args)?;
        self.cache().load(&key).await
    }

    /// A query for this function's calls; add argument filters to it.
    pub fn query(&self) -> CallQuery {
        let ident = &self.memo.ident;
        let q = CallQuery::new()
            .name(ident.name.clone())
            .module(ident.module.clone());
        match &ident.version {
            Some(v) => q.version(v.clone()),
            None => q,
        }
    }

    /// Calls the function through the cache.
    ///
    /// # Errors
    ///
    /// [`CallError::Failed`] when the function fails (nothing is cached),
    /// [`CallError::Timeout`] or [`CallError::Panicked`] when the
    /// computation did not finish, [`CallError::Encode`] when an argument
    /// or the result cannot be encoded. Storage faults are not errors: they
    /// read as a miss and a warning.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. The caller that starts a computation runs it in its own
    /// task while it awaits; dropping this future moves the computation to a
    /// task of its own. Dropping stops the waiting, not the computation,
    /// whose result is still cached and handed to every other caller
    /// waiting on it.
    ///
    /// # Panics
    ///
    /// The future panics when a miss is polled outside a tokio runtime, and
    /// when polled again after it completed.
    pub fn call(&self, args: A) -> CallFuture<'_, A, T, E> {
        CallFuture::new(&self.memo, args, Stored)
    }

    /// Calls through the cache with `body` in place of the stored function:
    /// on a miss (or a refresh) `body` computes the value. This is how a
    /// function whose body needs values outside the key (a pool, a client)
    /// is cached: `body` captures them. `#[cached]` expands to it.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    pub fn call_fn<F, Fut>(&self, args: A, body: F) -> CallFuture<'_, A, T, E, F>
    where
        F: FnOnce(A) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        CallFuture::new(&self.memo, args, body)
    }

    /// Calls with some arguments given by (short) digest of a stored value:
    /// the values are loaded from the cache, and the call is then exactly
    /// the call with the values (the same key, tiers and lifespans).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), plus [`CallError::Argument`] when a digest
    /// does not expand to one stored value of the right type.
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call).
    pub async fn call_with<R: ArgRefs<Values = A>>(&self, args: R) -> Result<T, CallError<E>> {
        let cache = self.cache();
        let argument = |e| CallError::Argument(Arc::new(e));
        let digests = args.resolve(&cache).await.map_err(argument)?;
        let values = args.load(&cache, &digests).await.map_err(argument)?;
        self.call(values).await
    }

    /// Recomputes the call and overwrites the cached result; cached calls
    /// made inside the computation recompute too.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn rerun(&self, args: A) -> Result<T, CallError<E>> {
        scope::rerun(self.call(args)).await
    }

    /// Forgets the call with `args`: in the in-process tier (whatever cache
    /// it was computed for), in a computation in flight (whose result will
    /// not be stored), and in every level of the active cache. Returns
    /// whether a stored call was evicted.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded or storage fails.
    pub async fn invalidate(&self, args: A) -> Result<bool, CacheError> {
        self.memo.invalidate(&args).await
    }

    /// Forgets every call of this function (of this name, module and
    /// version — an unversioned function's calls only) in the in-process
    /// tier, in flight, and in every level of the active cache. Returns how
    /// many stored calls were evicted.
    ///
    /// # Errors
    ///
    /// Fails when storage fails.
    pub async fn invalidate_all(&self) -> Result<usize, CacheError> {
        self.memo.invalidate_all(self.query()).await
    }

    /// What the function has done so far.
    pub fn stats(&self) -> Stats {
        self.memo.counters.snapshot()
    }

    /// How many entries the in-process tier holds now.
    pub fn hot_len(&self) -> usize {
        self.memo.hot.len()
    }
}
