//! `CachedFnBuilder`: the name, key, lifespans, bounds and body of a
//! [`CachedFn`].

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use flechette_core::Cache;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::Args;
use crate::cached_fn::CachedFn;
use crate::memo::hot::WeighFn;
use crate::memo::policy::Freshness;
use crate::memo::{Func, Ident, KeepFn, LifespanFn, Memo, Policy};

/// The in-process tier holds this many entries unless told otherwise.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// A computation running longer than this is reported with a `tracing`
/// warning, unless told otherwise
/// ([`warn_after`](CachedFnBuilder::warn_after)).
pub const DEFAULT_WARN_AFTER: Duration = Duration::from_secs(30);

/// A task handle that aborts its task when dropped unfinished: a
/// pass-through computation cancelled by the timeout stops its task too.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Builds a [`CachedFn`]; start with [`CachedFn::builder`].
#[must_use]
pub struct CachedFnBuilder<A, T = ()> {
    name: String,
    module: String,
    version: Option<String>,
    arg_names: Option<Vec<String>>,
    cache: Option<Cache>,
    freshness: Freshness,
    lifespan: Option<LifespanFn<T>>,
    jitter: Option<f64>,
    jitter_seed: Option<u64>,
    keep: Option<KeepFn<T>>,
    timeout: Option<Duration>,
    warn_after: Duration,
    write_through: bool,
    capacity: u64,
    weigher: Option<WeighFn<T>>,
    args: PhantomData<fn(A)>,
}

impl<A, T> std::fmt::Debug for CachedFnBuilder<A, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFnBuilder")
            .field("name", &self.name)
            .field("module", &self.module)
            .field("version", &self.version)
            .field("freshness", &self.freshness)
            .field("jitter", &self.jitter)
            .field("timeout", &self.timeout)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl CachedFn<(), (), Infallible> {
    /// A builder for a cached function called `name`.
    pub fn builder<A: Args, T>(name: impl Into<String>) -> CachedFnBuilder<A, T> {
        CachedFnBuilder {
            name: name.into(),
            module: String::new(),
            version: None,
            arg_names: None,
            cache: None,
            freshness: Freshness::FOREVER,
            lifespan: None,
            jitter: None,
            jitter_seed: None,
            keep: None,
            timeout: None,
            warn_after: DEFAULT_WARN_AFTER,
            write_through: false,
            capacity: DEFAULT_CAPACITY,
            weigher: None,
            args: PhantomData,
        }
    }
}

impl<A: Args, T> CachedFnBuilder<A, T> {
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

    /// After `d`, a read serves the cached value and starts one background
    /// refresh.
    pub fn update_after(mut self, d: Duration) -> Self {
        self.freshness.update_after = Some(d);
        self
    }

    /// After `d`, a read waits for a fresh value.
    pub fn expire_after(mut self, d: Duration) -> Self {
        self.freshness.expire_after = Some(d);
        self
    }

    /// Spreads the lifespans of results computed together: each result's
    /// `update_after` and `expire_after` (or those of
    /// [`lifespan`](Self::lifespan)) are shortened by a random part of up
    /// to `fraction` of them, the same part for both. With `jitter(0.1)` a
    /// result meant to live a minute lives between 54 and 60 seconds, so
    /// results filled at one instant (a deploy, a cold start) do not all
    /// expire at one instant and stampede the upstream together.
    /// `fraction` is clamped to `0.0..=1.0`; none unless set.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction);
        self
    }

    /// Starts the random sequence of [`jitter`](Self::jitter) at `seed`,
    /// so that runs repeat (tests); a random seed unless set.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Freshness computed from each value (for example from a Cache-Control
    /// max-age in a response); replaces `update_after` and `expire_after`.
    pub fn lifespan(mut self, f: impl Fn(&T) -> Freshness + Send + Sync + 'static) -> Self {
        self.lifespan = Some(Arc::new(f));
        self
    }

    /// Cancels a computation that runs longer than `d`: every caller
    /// waiting on it gets [`CallError::Timeout`](crate::CallError::Timeout) and nothing is cached.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// A computation still running after `d` is reported once, with a
    /// `tracing` warning naming the function (default
    /// [`DEFAULT_WARN_AFTER`], 30 s). Nothing is cancelled: that is what
    /// [`timeout`](Self::timeout) does. Callers waiting on a stuck
    /// computation are released by invalidating its key.
    ///
    /// The warning uses a tokio timer, set when a computation's first poll
    /// leaves it pending, so computations that wait need a runtime with
    /// time enabled (`enable_all`, `#[tokio::main]`), as `timeout` does; on
    /// one without, a waiting computation fails with
    /// [`CallError::Panicked`](crate::CallError::Panicked). On
    /// a paused test clock that pending timer is somewhere auto-advance can
    /// jump to while a computation waits on outside I/O; `Duration::MAX`
    /// never warns and sets no timer.
    pub fn warn_after(mut self, d: Duration) -> Self {
        self.warn_after = d;
        self
    }

    /// Whether a computed result is written to storage before its callers
    /// get it (default `false`). By default callers are answered first and
    /// the result is written behind them, in a batch with other results
    /// (see [`Cache::save_behind`]; [`Cache::flush`] waits for the writes).
    /// With `true`, a result is durable when its caller gets it, and the
    /// caller waits for the write.
    pub fn write_through(mut self, on: bool) -> Self {
        self.write_through = on;
        self
    }

    /// Keeps only the results `keep` accepts: a result it refuses is
    /// returned to every caller of its computation, but not stored and not
    /// put in the in-process tier, so the next call computes again (as an
    /// error would, though it is not one). For `Option` results,
    /// [`skip_none`](CachedFnBuilder::skip_none) says it shortest.
    pub fn cache_if(mut self, keep: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.keep = Some(Arc::new(keep));
        self
    }

    /// The most entries (or weight, with a [`weigher`](Self::weigher)) the
    /// in-process tier holds (default [`DEFAULT_CAPACITY`]); the cache
    /// below is not bounded by it.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The weight of a value against the capacity (default 1 each).
    pub fn weigher(mut self, f: impl Fn(&T) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(f));
        self
    }
}

impl<A: Args, U: 'static> CachedFnBuilder<A, Option<U>> {
    /// A `None` result is not cached (as in fleche): it is returned, nothing
    /// is stored, and the next call computes again. `Some` is cached as
    /// usual. Without this, `None` is a value like any other.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use flechette::{Cache, CachedFn};
    /// let find = CachedFn::builder("find")
    ///     .cache(Cache::memory())
    ///     .skip_none()
    ///     .build(|(id,): (u32,)| async move { (id > 10).then_some(id) });
    /// assert_eq!(find.call((1,)).await.unwrap(), None);
    /// assert!(!find.contains((1,)).await.unwrap());
    /// assert_eq!(find.call((11,)).await.unwrap(), Some(11));
    /// assert!(find.contains((11,)).await.unwrap());
    /// # }
    /// ```
    pub fn skip_none(self) -> Self {
        self.cache_if(Option::is_some)
    }
}

impl<A: Args, T> CachedFnBuilder<A, T>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A cached function over `f`, which never fails.
    ///
    /// # Panics
    ///
    /// Panics when [`args`](Self::args) named a different number of
    /// arguments than the tuple `A` has.
    pub fn build<F, Fut>(self, f: F) -> CachedFn<A, T, Infallible>
    where
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.finish(Some(Box::new(move |args| {
            let fut = f(args);
            Box::pin(async move { Ok(fut.await) })
        })))
    }

    /// A cached function over `f`; only `Ok` results are cached.
    ///
    /// # Panics
    ///
    /// As [`build`](Self::build).
    pub fn build_fallible<E, F, Fut>(self, f: F) -> CachedFn<A, T, E>
    where
        E: Send + Sync + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.finish(Some(Box::new(move |args| Box::pin(f(args)))))
    }

    /// A cached function over a blocking (synchronous, CPU-bound) function:
    /// computations run on tokio's blocking pool, with the same collapsing,
    /// refresh and expiry as async ones.
    ///
    /// # Panics
    ///
    /// As [`build`](Self::build).
    pub fn build_blocking<F>(self, f: F) -> CachedFn<A, T, Infallible>
    where
        F: Fn(A) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.finish(Some(Box::new(move |args| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                // Bound, so cached calls made inside see the caller's scopes.
                let work = crate::task::bind_blocking(move || f(args));
                match tokio::task::spawn_blocking(work).await {
                    Ok(value) => Ok(value),
                    // Re-raise inside the computation: callers see `Panicked`.
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            })
        })))
    }

    /// A cached function whose body spawns its work and returns the task's
    /// `JoinHandle` (the pass-through pattern). The result is cached when
    /// the task completes, even if nobody waits for it; a task that panics
    /// or is cancelled caches nothing, and a task that outlives the
    /// function's timeout is aborted. Start calls with
    /// [`CachedFn::spawn`] to get a [`TaskHandle`](crate::TaskHandle) at
    /// once, complete on a hit.
    ///
    /// # Panics
    ///
    /// As [`build`](Self::build).
    pub fn build_spawning<F>(self, f: F) -> CachedFn<A, T, tokio::task::JoinError>
    where
        F: Fn(A) -> tokio::task::JoinHandle<T> + Send + Sync + 'static,
    {
        self.finish(Some(Box::new(move |args| Box::pin(AbortOnDrop(f(args))))))
    }

    /// A cached function with no body of its own: every call brings one
    /// ([`CachedFn::call_fn`]). `#[cached]` builds these for functions with
    /// ignored parameters.
    ///
    /// # Panics
    ///
    /// As [`build`](Self::build).
    pub fn build_unbound<E: Send + Sync + 'static>(self) -> CachedFn<A, T, E> {
        self.finish(None)
    }

    fn finish<E>(self, func: Option<Box<Func<A, T, E>>>) -> CachedFn<A, T, E> {
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
        let ident = Ident {
            name: self.name,
            module: self.module,
            version: self.version,
            arg_names,
        };
        let jitter = self.jitter.map(|fraction| {
            let seed = self
                .jitter_seed
                .unwrap_or_else(crate::memo::jitter::random_seed);
            crate::memo::jitter::Jitter::new(fraction, seed)
        });
        let policy = Policy {
            freshness: self.freshness,
            lifespan: self.lifespan,
            jitter,
            keep: self.keep,
            timeout: self.timeout,
            warn_after: self.warn_after,
            write_through: self.write_through,
        };
        let hot = (self.capacity, self.weigher);
        CachedFn {
            memo: Arc::new(Memo::new(ident, self.cache, func, policy, hot)),
        }
    }
}
