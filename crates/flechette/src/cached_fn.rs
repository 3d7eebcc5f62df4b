//! `CachedFn`: an async function whose calls are kept in a cache.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flechette_core::{
    Cache, CacheError, CallQuery, CallRecord, Digest, LazyCall, Lifespan, Metadata, Runtime,
    Timestamp, call_key, encoding,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::{ArgRefs, Args};
use crate::error::CallError;
use crate::scope;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Func<A, T, E> = dyn Fn(A) -> BoxFuture<Result<T, E>> + Send + Sync;

/// An async function whose calls are keyed by the digests of their name,
/// module, version and arguments, and kept in a [`Cache`].
///
/// A call looks its key up in the cache fixed at build time, or else in the
/// active cache of the task ([`with_cache`](crate::with_cache)); on a hit it
/// decodes the stored result, on a miss it runs the function and stores the
/// arguments, the result and a record with timings and tags. Only successful
/// results are stored.
///
/// Cheap to clone; clones are the same function.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use flechette::CachedFn;
/// let square = CachedFn::builder("square").args(["x"]).build(|(x,): (u64,)| async move { x * x });
/// assert_eq!(square.call((7,)).await.unwrap(), 49);
/// assert!(square.contains((7,)).await.unwrap());
/// # }
/// ```
pub struct CachedFn<A, T, E = Infallible> {
    inner: Arc<Inner<A, T, E>>,
}

struct Inner<A, T, E> {
    name: String,
    module: String,
    version: Option<String>,
    arg_names: Vec<String>,
    cache: Option<Cache>,
    func: Box<Func<A, T, E>>,
}

impl<A, T, E> Clone for CachedFn<A, T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A, T, E> std::fmt::Debug for CachedFn<A, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFn")
            .field("name", &self.inner.name)
            .field("module", &self.inner.module)
            .field("version", &self.inner.version)
            .field("arguments", &self.inner.arg_names)
            .finish_non_exhaustive()
    }
}

/// Builds a [`CachedFn`]; start with [`CachedFn::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct CachedFnBuilder<A> {
    name: String,
    module: String,
    version: Option<String>,
    arg_names: Option<Vec<String>>,
    cache: Option<Cache>,
    args: PhantomData<fn(A)>,
}

impl CachedFn<(), (), Infallible> {
    /// A builder for a cached function called `name`.
    pub fn builder<A: Args>(name: impl Into<String>) -> CachedFnBuilder<A> {
        CachedFnBuilder {
            name: name.into(),
            module: String::new(),
            version: None,
            arg_names: None,
            cache: None,
            args: PhantomData,
        }
    }
}

impl<A: Args> CachedFnBuilder<A> {
    /// The module the function belongs to (part of the key; default empty).
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.module = module.into();
        self
    }

    /// The function version (part of the key): bump it when the function's
    /// meaning changes, and old results are no longer used.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The argument names, in order (default `arg0`, `arg1`, …).
    pub fn args<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.arg_names = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Always use `cache` instead of the active cache of the task.
    pub fn cache(mut self, cache: impl Into<Cache>) -> Self {
        self.cache = Some(cache.into());
        self
    }

    /// A cached function over `f`, which never fails.
    ///
    /// # Panics
    ///
    /// Panics when [`args`](Self::args) named a different number of
    /// arguments than the tuple `A` has.
    pub fn build<T, F, Fut>(self, f: F) -> CachedFn<A, T, Infallible>
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.finish(Box::new(move |args| {
            let fut = f(args);
            Box::pin(async move { Ok(fut.await) })
        }))
    }

    /// A cached function over `f`; only `Ok` results are cached.
    ///
    /// # Panics
    ///
    /// As [`build`](Self::build).
    pub fn build_fallible<T, E, F, Fut>(self, f: F) -> CachedFn<A, T, E>
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.finish(Box::new(move |args| Box::pin(f(args))))
    }

    fn finish<T, E>(self, func: Box<Func<A, T, E>>) -> CachedFn<A, T, E> {
        let arg_names = self
            .arg_names
            .unwrap_or_else(|| (0..A::ARITY).map(|i| format!("arg{i}")).collect());
        assert_eq!(
            arg_names.len(),
            A::ARITY,
            "cached function {:?}: {} argument names for {} arguments",
            self.name,
            arg_names.len(),
            A::ARITY
        );
        CachedFn {
            inner: Arc::new(Inner {
                name: self.name,
                module: self.module,
                version: self.version,
                arg_names,
                cache: self.cache,
                func,
            }),
        }
    }
}

impl<A, T, E> CachedFn<A, T, E>
where
    A: Args,
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Send + Sync + 'static,
{
    /// The function name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The cache calls use now: the fixed one, or the task's active cache.
    pub fn cache(&self) -> Cache {
        self.inner.cache.clone().unwrap_or_else(scope::cache)
    }

    fn key_of(&self, digests: &[Digest]) -> Digest {
        let named: Vec<(&str, Digest)> = self
            .inner
            .arg_names
            .iter()
            .map(String::as_str)
            .zip(digests.iter().copied())
            .collect();
        call_key(
            &self.inner.name,
            &self.inner.module,
            self.inner.version.as_deref(),
            &named,
        )
    }

    /// The call key of `args`.
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded.
    pub fn digest(&self, args: &A) -> Result<Digest, encoding::EncodeError> {
        Ok(self.key_of(&args.digests()?))
    }

    /// Whether the call with `args` is cached (and loadable).
    ///
    /// # Errors
    ///
    /// Fails when an argument cannot be encoded or storage fails.
    pub async fn contains(&self, args: A) -> Result<bool, CacheError> {
        let key = self.digest(&args)?;
        self.cache().contains(&key).await
    }

    /// The cached call with `args`, lazily loaded.
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
        let q = CallQuery::new()
            .name(self.inner.name.clone())
            .module(self.inner.module.clone());
        match &self.inner.version {
            Some(v) => q.version(v.clone()),
            None => q,
        }
    }

    /// Calls the function through the cache.
    ///
    /// # Errors
    ///
    /// [`CallError::Failed`] when the function fails (nothing is cached), or
    /// [`CallError::Encode`] when an argument or the result cannot be
    /// encoded. Storage faults are not errors: they read as a miss.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes cancels the computation;
    /// nothing is stored for it.
    pub async fn call(&self, args: A) -> Result<T, CallError<E>> {
        let digests = args.digests()?;
        let cache = self.cache();
        let key = self.key_of(&digests);
        if !scope::rerunning()
            && let Some(value) = self.lookup(&cache, &key).await
        {
            return Ok(value);
        }
        let encoded = args.encode()?;
        self.compute(&cache, key, args, encoded).await
    }

    /// Calls with some arguments given by (short) digest of a stored value:
    /// the key is the one the values would give, and on a miss the values
    /// are loaded from the cache.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), plus [`CallError::Argument`] when a digest
    /// does not expand to one stored value.
    pub async fn call_with<R: ArgRefs<Values = A>>(&self, args: R) -> Result<T, CallError<E>> {
        let cache = self.cache();
        let digests = args.resolve(&cache).await.map_err(CallError::Argument)?;
        let key = self.key_of(&digests);
        if !scope::rerunning()
            && let Some(value) = self.lookup(&cache, &key).await
        {
            return Ok(value);
        }
        let values = args
            .load(&cache, &digests)
            .await
            .map_err(CallError::Argument)?;
        let encoded = values.encode()?;
        self.compute(&cache, key, values, encoded).await
    }

    /// Recomputes the call and overwrites the cached result; cached calls
    /// made inside the computation recompute too.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub async fn rerun(&self, args: A) -> Result<T, CallError<E>> {
        scope::rerun_scope(self.call(args)).await
    }

    /// The cached result under `key`; any fault reads as a miss.
    async fn lookup(&self, cache: &Cache, key: &Digest) -> Option<T> {
        let record = match cache.load_record(key).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(function = %self.inner.name, %key, error = %e, "cache read failed; computing");
                return None;
            }
        };
        match cache.load_value(&record.result).await {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::warn!(function = %self.inner.name, %key, error = %e, "cached result unreadable; computing");
                None
            }
        }
    }

    async fn compute(
        &self,
        cache: &Cache,
        key: Digest,
        args: A,
        encoded: Vec<(Digest, Bytes)>,
    ) -> Result<T, CallError<E>> {
        let timestart = Timestamp::now();
        let started = Instant::now();
        let outcome = (self.inner.func)(args).await;
        let walltime = started.elapsed().as_secs_f64();
        let timestop = Timestamp::now();
        let value = outcome.map_err(|e| CallError::Failed(Arc::new(e)))?;
        let result = encoding::to_vec(&value)?;
        let result_digest = Digest::of_encoded(&result);
        let record = CallRecord {
            name: self.inner.name.clone(),
            module: self.inner.module.clone(),
            version: self.inner.version.clone(),
            arguments: self
                .inner
                .arg_names
                .iter()
                .cloned()
                .zip(encoded.iter().map(|(d, _)| *d))
                .collect(),
            result: result_digest,
            metadata: Metadata {
                runtime: Some(Runtime {
                    timestart,
                    timestop,
                    walltime,
                }),
                tags: scope::current_tags(),
                lifespan: Some(Lifespan {
                    created: timestop,
                    update_after: None,
                    expire_after: None,
                }),
                extra: Default::default(),
            },
        };
        debug_assert_eq!(record.key(), key);
        let values = encoded
            .into_iter()
            .chain(std::iter::once((result_digest, Bytes::from(result))));
        if let Err(e) = store(cache, values, &record).await {
            tracing::warn!(function = %self.inner.name, %key, error = %e, "could not store the result");
        }
        Ok(value)
    }
}

async fn store(
    cache: &Cache,
    values: impl Iterator<Item = (Digest, Bytes)>,
    record: &CallRecord,
) -> Result<(), CacheError> {
    for (digest, bytes) in values {
        cache.save_encoded(&digest, bytes).await?;
    }
    cache.save_record(record).await?;
    Ok(())
}
