//! Cached calls as tasks: [`CachedFn::spawn`] (a handle that is complete at
//! once on a hit) and [`CachedFn::bind`] (the call as a `'static` future).

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Bound, TaskHandle, bind};
use crate::args::Args;
use crate::cached_fn::CachedFn;
use crate::error::CallError;
use crate::memo::{Placement, Step, Stored};
use crate::scope;

impl<A, T, E> CachedFn<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Starts the call as a task and returns its handle at once: complete
    /// on an in-process hit (nothing is spawned), otherwise waiting for the
    /// computation, which runs in a task of its own bound to the caller's
    /// cache and tags and is cached even if the handle is dropped.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime when the call misses.
    pub fn spawn(&self, args: A) -> TaskHandle<T, E> {
        self.spawn_on(args, &Placement::default())
    }

    pub(crate) fn spawn_on(&self, args: A, placement: &Placement) -> TaskHandle<T, E> {
        match self.memo.start(args, Stored) {
            Ok(Step::Done(value)) => TaskHandle::ready(Ok(value)),
            Err(e) => TaskHandle::ready(Err(e)),
            Ok(Step::Fly(key, args, kind, job)) => {
                let entered = self.memo.enter(key, args, kind, job, placement);
                let (memo, placement) = (Arc::clone(&self.memo), placement.clone());
                // A waiter detached from its flight enters again in the
                // caller's scopes, wherever the handle is polled.
                TaskHandle::waiting(
                    scope::capture().enter(async move { memo.finish(entered, &placement).await }),
                )
            }
        }
    }

    /// The call with `args`, bound to the caller's cache and tags, as a
    /// `'static` future to hand to `tokio::spawn`, a `JoinSet` or another
    /// module; see [`bind`](crate::bind).
    pub fn bind(
        &self,
        args: A,
    ) -> Bound<impl Future<Output = Result<T, CallError<E>>> + Send + 'static> {
        let f = self.clone();
        bind(async move { f.call(args).await })
    }
}
