//! `Executor`: a tokio runtime handle that answers cached calls it already
//! knows without spawning anything.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::TaskHandle;
use crate::args::Args;
use crate::cached_fn::CachedFn;
use crate::memo::Placement;

/// Options of one spawn that belong to the executor, never to the function:
/// they choose where the computation of a miss runs and do not enter the
/// call's key or arguments.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SpawnOptions {
    blocking: bool,
    name: Option<Arc<str>>,
    runtime: Option<Handle>,
}

impl SpawnOptions {
    /// Defaults: an async worker of the executor's runtime, no name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run the computation on the blocking pool (for CPU-heavy work).
    pub fn blocking(mut self, yes: bool) -> Self {
        self.blocking = yes;
        self
    }

    /// A name for the computation, recorded on its tracing span.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// Run the computation on this runtime instead of the executor's.
    pub fn runtime(mut self, runtime: Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }
}

/// What an [`Executor`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutorStats {
    /// Cached calls answered at once from the in-process tier: nothing spawned.
    pub answered: u64,
    /// Cached calls handed to a computation (a new one, spawned, or one
    /// already in flight).
    pub started: u64,
    /// Plain futures spawned as they are.
    pub passed_through: u64,
}

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    started: AtomicU64,
    passed_through: AtomicU64,
}

/// A tokio runtime handle that knows cached functions:
///
/// * a cached call that hits returns a complete [`TaskHandle`] without
///   spawning a task or touching the runtime;
/// * a miss runs in a task of its own, bound to the submitter's cache and
///   tags, where the [`SpawnOptions`] say;
/// * plain futures pass straight through to the runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use flechette::{Cache, CachedFn, Executor};
/// let double = CachedFn::builder("double").cache(Cache::memory()).build(|(x,): (u32,)| async move { x * 2 });
/// let exec = Executor::current();
/// assert_eq!(exec.spawn_cached(&double, (4,)).await.unwrap(), 8); // a miss: computed
/// let hit = exec.spawn_cached(&double, (4,));
/// assert!(hit.is_ready()); // a hit: nothing was spawned
/// assert_eq!(hit.await.unwrap(), 8);
/// assert_eq!(exec.stats().answered, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Executor {
    runtime: Handle,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor over `runtime`.
    pub fn new(runtime: Handle) -> Self {
        Self {
            runtime,
            counts: Arc::default(),
        }
    }

    /// An executor over the current runtime.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// Spawns a plain future on the runtime, as it is.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.counts.passed_through.fetch_add(1, Ordering::Relaxed);
        self.runtime.spawn(fut)
    }

    /// Starts a cached call: complete at once on a hit, else computed in a
    /// task on the executor's runtime.
    pub fn spawn_cached<A, T, E>(&self, f: &CachedFn<A, T, E>, args: A) -> TaskHandle<T, E>
    where
        A: Args,
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        self.spawn_cached_with(f, args, SpawnOptions::new())
    }

    /// As [`spawn_cached`](Self::spawn_cached), with options for the task
    /// of a miss.
    pub fn spawn_cached_with<A, T, E>(
        &self,
        f: &CachedFn<A, T, E>,
        args: A,
        options: SpawnOptions,
    ) -> TaskHandle<T, E>
    where
        A: Args,
        T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let placement = Placement {
            runtime: Some(options.runtime.unwrap_or_else(|| self.runtime.clone())),
            blocking: options.blocking,
            name: options.name,
            in_place: false,
        };
        let handle = f.spawn_on(args, &placement);
        let counter = if handle.is_ready() {
            &self.counts.answered
        } else {
            &self.counts.started
        };
        counter.fetch_add(1, Ordering::Relaxed);
        handle
    }

    /// What the executor has done so far.
    pub fn stats(&self) -> ExecutorStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExecutorStats {
            answered: get(&self.counts.answered),
            started: get(&self.counts.started),
            passed_through: get(&self.counts.passed_through),
        }
    }
}
