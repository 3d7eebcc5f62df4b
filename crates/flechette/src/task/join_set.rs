//! `CachedJoinSet`: a `JoinSet` that keeps hits out of the runtime.

use std::collections::VecDeque;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::{JoinError, JoinSet};

use crate::args::Args;
use crate::cached_fn::CachedFn;
use crate::error::CallError;

type Outcome<T, E> = Result<T, CallError<E>>;

/// A [`JoinSet`] of cached calls: a hit is kept aside, complete, without a
/// task; a miss is a task that waits for the computation. `join_next`
/// returns complete hits first.
#[derive(Debug)]
pub struct CachedJoinSet<T, E> {
    set: JoinSet<Outcome<T, E>>,
    ready: VecDeque<Outcome<T, E>>,
}

impl<T, E> Default for CachedJoinSet<T, E> {
    fn default() -> Self {
        Self {
            set: JoinSet::new(),
            ready: VecDeque::new(),
        }
    }
}

impl<T, E> CachedJoinSet<T, E>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a cached call: nothing is spawned on a hit.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    pub fn spawn_cached<A: Args>(&mut self, f: &CachedFn<A, T, E>, args: A) {
        let mut handle = f.spawn(args);
        match handle.take_ready() {
            Some(outcome) => self.ready.push_back(outcome),
            None => {
                self.set.spawn(handle);
            }
        }
    }

    /// Adds a plain future, spawned as it is.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    pub fn spawn<F>(&mut self, fut: F)
    where
        F: Future<Output = Outcome<T, E>> + Send + 'static,
    {
        self.set.spawn(fut);
    }

    /// The next finished call: complete hits first, then tasks as they end;
    /// `None` when the set is empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`JoinSet::join_next`].
    pub async fn join_next(&mut self) -> Option<Result<Outcome<T, E>, JoinError>> {
        if let Some(outcome) = self.ready.pop_front() {
            return Some(Ok(outcome));
        }
        self.set.join_next().await
    }

    /// How many calls are not yet joined.
    pub fn len(&self) -> usize {
        self.ready.len() + self.set.len()
    }

    /// Whether every call was joined.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many tasks were spawned and not yet joined (hits spawn none).
    pub fn tasks(&self) -> usize {
        self.set.len()
    }
}
