//! `bind`: carry the active cache and tags into work that runs elsewhere.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::scope::{self, Entered};

/// A future bound to the scopes (active cache, tags, rerun mode) of the task
/// that created it; see [`bind`].
#[must_use = "futures do nothing unless awaited"]
pub struct Bound<F> {
    inner: Pin<Box<Entered<F>>>,
}

impl<F> std::fmt::Debug for Bound<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Bound<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// Binds `fut` to the scopes of the current task: wherever it runs later —
/// in `tokio::spawn`, a `JoinSet`, another module — it sees the cache and
/// tags active now, whatever the scopes of the task that runs it.
///
/// Task-locals do not cross `tokio::spawn`: without `bind`, a cached call
/// inside a spawned task uses the process default cache and loses its tags.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use flechette::{Cache, bind, cache, with_cache};
/// let mine = Cache::memory();
/// let seen = with_cache(mine.clone(), async {
///     tokio::spawn(bind(async { cache() })).await.unwrap()
/// })
/// .await;
/// assert!(seen.ptr_eq(&mine));
/// # }
/// ```
pub fn bind<F: Future>(fut: F) -> Bound<F> {
    Bound {
        inner: Box::pin(scope::capture().enter(fut)),
    }
}

/// Binds an async closure: the scopes are captured now and entered each
/// time the returned closure's future runs.
pub fn bind_fn<F, Fut>(f: F) -> impl FnOnce() -> Bound<Fut> + Send + 'static
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
{
    let captured = scope::capture();
    move || Bound {
        inner: Box::pin(captured.enter(f())),
    }
}

/// Binds a blocking closure (for `spawn_blocking` or a thread): it runs
/// inside the scopes captured now.
pub fn bind_blocking<F, R>(f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
{
    let captured = scope::capture();
    move || captured.enter_sync(f)
}

/// `tokio::spawn` of [`bind`]`(fut)`: the spawned task keeps the caller's
/// cache and tags.
///
/// # Panics
///
/// Panics outside a tokio runtime, as `tokio::spawn` does.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(bind(fut))
}
