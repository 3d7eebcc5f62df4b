//! The future of one cached call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::Args;
use crate::error::CallError;
use crate::memo::{Memo, Step};

type SlowPath<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, CallError<E>>> + Send + 'a>>;

/// The future returned by [`CachedFn::call`](crate::CachedFn::call).
///
/// Its first poll answers a hit from the in-process tier without any
/// allocation of its own; a miss continues in a boxed future that waits for
/// the computation.
#[must_use = "futures do nothing unless awaited"]
pub struct CallFuture<'a, A, T, E> {
    state: State<'a, A, T, E>,
}

enum State<'a, A, T, E> {
    Start(&'a Arc<Memo<A, T, E>>, Option<A>),
    Slow(SlowPath<'a, T, E>),
    Done,
}

// The arguments are only ever moved out, never pinned.
impl<A, T, E> Unpin for CallFuture<'_, A, T, E> {}

impl<'a, A, T, E> CallFuture<'a, A, T, E> {
    pub(crate) fn new(memo: &'a Arc<Memo<A, T, E>>, args: A) -> Self {
        Self {
            state: State::Start(memo, Some(args)),
        }
    }
}

impl<A, T, E> std::fmt::Debug for CallFuture<'_, A, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Start(..) => "start",
            State::Slow(_) => "waiting",
            State::Done => "done",
        };
        f.debug_struct("CallFuture").field("state", &state).finish()
    }
}

impl<'a, A, T, E> Future for CallFuture<'a, A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Start(memo, args) = &mut this.state {
            let memo: &'a Arc<Memo<A, T, E>> = memo;
            let Some(args) = args.take() else {
                this.state = State::Done;
                return Poll::Ready(Err(CallError::Abandoned));
            };
            match memo.start(args) {
                Ok(Step::Done(value)) => {
                    this.state = State::Done;
                    return Poll::Ready(Ok(value));
                }
                Err(e) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(e));
                }
                Ok(Step::Fly(key, args, kind)) => {
                    this.state = State::Slow(Box::pin(memo.fly(key, args, kind)));
                }
            }
        }
        match &mut this.state {
            State::Slow(fut) => {
                let out = fut.as_mut().poll(cx);
                if out.is_ready() {
                    this.state = State::Done;
                }
                out
            }
            State::Done => panic!("CallFuture polled after completion"),
            State::Start(..) => unreachable!("left the start state above"),
        }
    }
}
