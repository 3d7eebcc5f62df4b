//! `TaskHandle`: the same handle for a hit and a miss.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::CallError;

type Waiting<T, E> = Pin<Box<dyn Future<Output = Result<T, CallError<E>>> + Send>>;

/// The handle of a cached call started as a task: already complete on a
/// hit (nothing was spawned), or waiting for the computation on a miss. The
/// type is the same either way, so call sites do not change.
///
/// Dropping the handle does not cancel the computation: its result is
/// still cached.
#[must_use = "a handle does nothing unless awaited (the computation runs regardless)"]
pub struct TaskHandle<T, E> {
    state: State<T, E>,
}

enum State<T, E> {
    Ready(Option<Result<T, CallError<E>>>),
    Waiting(Waiting<T, E>),
}

impl<T, E> std::fmt::Debug for TaskHandle<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle")
            .field("ready", &matches!(self.state, State::Ready(_)))
            .finish()
    }
}

impl<T, E> TaskHandle<T, E> {
    /// A handle that is already complete.
    pub(crate) fn ready(outcome: Result<T, CallError<E>>) -> Self {
        Self {
            state: State::Ready(Some(outcome)),
        }
    }

    /// A handle that waits for `fut`.
    pub(crate) fn waiting(
        fut: impl Future<Output = Result<T, CallError<E>>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Waiting(Box::pin(fut)),
        }
    }

    /// The outcome, if the handle was made complete.
    pub(crate) fn take_ready(&mut self) -> Option<Result<T, CallError<E>>> {
        match &mut self.state {
            State::Ready(outcome) => outcome.take(),
            State::Waiting(_) => None,
        }
    }

    /// Whether the handle was complete when it was made: the call was a hit
    /// and nothing was spawned for it.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(Some(_)))
    }
}

impl<T, E> Future for TaskHandle<T, E> {
    type Output = Result<T, CallError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(outcome) => {
                Poll::Ready(outcome.take().unwrap_or(Err(CallError::Abandoned)))
            }
            State::Waiting(fut) => fut.as_mut().poll(cx),
        }
    }
}

// The state is either a value moved out or a boxed future.
impl<T, E> Unpin for TaskHandle<T, E> {}
