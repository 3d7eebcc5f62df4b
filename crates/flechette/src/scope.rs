//! Task-local scopes: the active cache, tags, and rerun mode.
//!
//! Task-locals do not cross `tokio::spawn`: a spawned task starts outside
//! every scope and sees the process default cache.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use flechette_core::Cache;
use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    static CACHE: Cache;
    static TAGS: Arc<BTreeMap<String, String>>;
    static RERUN: bool;
    static CHAIN: Chain;
}

/// The flights the current task chain is computing, innermost first: a
/// flight's task, and work bound into it, runs inside its flight's link.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chain(Option<Arc<Link>>);

#[derive(Debug)]
struct Link {
    flight: u64,
    parent: Chain,
}

impl Chain {
    fn contains(&self, flight: u64) -> bool {
        let mut at = &self.0;
        while let Some(link) = at {
            if link.flight == flight {
                return true;
            }
            at = &link.parent.0;
        }
        false
    }
}

/// Whether the current task chain is computing `flight` (waiting on it
/// would wait on itself).
pub(crate) fn computing(flight: u64) -> bool {
    CHAIN.try_with(|c| c.contains(flight)).unwrap_or(false)
}

static DEFAULT: RwLock<Option<Cache>> = RwLock::new(None);
/// The id of the default cache, readable without a lock (0: not made yet).
static DEFAULT_ID: AtomicU64 = AtomicU64::new(0);

/// Runs `fut` with `cache` as the active cache.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use flechette::{Cache, cache, with_cache};
/// let mine = Cache::memory();
/// let seen = with_cache(mine.clone(), async { cache() }).await;
/// assert!(seen.ptr_eq(&mine));
/// # }
/// ```
pub fn with_cache<F: Future>(cache: impl Into<Cache>, fut: F) -> TaskLocalFuture<Cache, F> {
    CACHE.scope(cache.into(), fut)
}

/// The active cache: the innermost [`with_cache`] scope of this task, or the
/// process default.
pub fn cache() -> Cache {
    CACHE
        .try_with(Cache::clone)
        .unwrap_or_else(|_| default_cache())
}

/// The process default cache: an in-memory cache unless
/// [`set_default_cache`] named another.
pub fn default_cache() -> Cache {
    if let Some(cache) = DEFAULT.read().ok().and_then(|d| d.clone()) {
        return cache;
    }
    let mut slot = DEFAULT.write().unwrap_or_else(|e| e.into_inner());
    let cache = slot
        .get_or_insert_with(|| {
            tracing::debug!("no cache configured: using an in-memory default cache");
            Cache::memory()
        })
        .clone();
    DEFAULT_ID.store(cache.id(), Ordering::Release);
    cache
}

/// The id of the active cache, without cloning it: the hit path's view.
#[inline]
pub(crate) fn active_cache_id() -> u64 {
    if let Ok(id) = CACHE.try_with(Cache::id) {
        return id;
    }
    match DEFAULT_ID.load(Ordering::Acquire) {
        0 => default_cache().id(),
        id => id,
    }
}

/// Replaces the process default cache (used outside every [`with_cache`]).
pub fn set_default_cache(cache: impl Into<Cache>) {
    let cache = cache.into();
    let mut slot = DEFAULT.write().unwrap_or_else(|e| e.into_inner());
    DEFAULT_ID.store(cache.id(), Ordering::Release);
    *slot = Some(cache);
}

/// Tags to attach to every call recorded inside a scope; see [`tags`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Tags {
    tags: BTreeMap<String, String>,
}

/// Tags for the calls recorded inside [`Tags::scope`]. Nested scopes merge;
/// the inner value wins for a key both set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use flechette::{current_tags, tags};
/// let seen = tags([("project", "p1"), ("stage", "a")])
///     .scope(tags([("stage", "b")]).scope(async { current_tags() }))
///     .await;
/// assert_eq!(seen["project"], "p1");
/// assert_eq!(seen["stage"], "b");
/// # }
/// ```
pub fn tags<I, K, V>(pairs: I) -> Tags
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    Tags {
        tags: pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    }
}

impl Tags {
    /// Runs `fut` with these tags merged over the enclosing ones.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let mut merged = current_tags();
        merged.extend(self.tags);
        TAGS.scope(Arc::new(merged), fut).await
    }
}

/// The tags of the enclosing scopes.
pub fn current_tags() -> BTreeMap<String, String> {
    TAGS.try_with(|t| (**t).clone()).unwrap_or_default()
}

/// Runs `fut` in rerun mode: every cached function called inside it
/// recomputes and overwrites its result instead of reading it. The way to
/// rerun a function wrapped by `#[cached]`: `flechette::rerun(fib(30)).await`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use flechette::{Cache, CachedFn, rerun};
/// static RUNS: AtomicU32 = AtomicU32::new(0);
/// let f = CachedFn::builder("f").cache(Cache::memory()).build(|(): ()| async {
///     RUNS.fetch_add(1, Ordering::SeqCst)
/// });
/// assert_eq!(f.call(()).await.unwrap(), 0);
/// assert_eq!(f.call(()).await.unwrap(), 0);
/// assert_eq!(rerun(f.call(())).await.unwrap(), 1);
/// # }
/// ```
pub fn rerun<F: Future>(fut: F) -> TaskLocalFuture<bool, F> {
    RERUN.scope(true, fut)
}

/// Whether the current task is in rerun mode.
pub(crate) fn rerunning() -> bool {
    RERUN.try_with(|r| *r).unwrap_or(false)
}

/// The scopes of the current task, captured to be entered again elsewhere:
/// the active cache, the tags and the rerun mode.
#[derive(Clone, Debug)]
pub(crate) struct Captured {
    cache: Cache,
    tags: Arc<BTreeMap<String, String>>,
    rerun: bool,
    chain: Chain,
}

/// Captures the active cache (the default when outside every scope), the
/// tags, the rerun mode and the flights being computed of the current task.
pub(crate) fn capture() -> Captured {
    Captured {
        cache: cache(),
        tags: TAGS.try_with(Arc::clone).unwrap_or_default(),
        rerun: rerunning(),
        chain: CHAIN.try_with(Chain::clone).unwrap_or_default(),
    }
}

/// A future that runs inside captured scopes.
pub(crate) type Entered<F> = TaskLocalFuture<
    Cache,
    TaskLocalFuture<
        Arc<BTreeMap<String, String>>,
        TaskLocalFuture<bool, TaskLocalFuture<Chain, F>>,
    >,
>;

impl Captured {
    /// The captured cache.
    pub(crate) fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// These scopes with another cache active.
    pub(crate) fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// These scopes inside the computation of `flight`.
    pub(crate) fn computing(mut self, flight: u64) -> Self {
        self.chain = Chain(Some(Arc::new(Link {
            flight,
            parent: self.chain,
        })));
        self
    }

    /// `fut`, to run inside these scopes.
    pub(crate) fn enter<F: Future>(self, fut: F) -> Entered<F> {
        CACHE.scope(
            self.cache,
            TAGS.scope(
                self.tags,
                RERUN.scope(self.rerun, CHAIN.scope(self.chain, fut)),
            ),
        )
    }

    /// Runs `f` inside these scopes, synchronously.
    pub(crate) fn enter_sync<R>(self, f: impl FnOnce() -> R) -> R {
        CACHE.sync_scope(self.cache, || {
            TAGS.sync_scope(self.tags, || {
                RERUN.sync_scope(self.rerun, || CHAIN.sync_scope(self.chain, f))
            })
        })
    }
}
