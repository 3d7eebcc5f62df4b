//! The future of one cached call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::args::Args;
use crate::error::CallError;
use crate::memo::{ArgBytes, Body, Memo, Probe, Step, Stored};

type SlowPath<'a, T, E> = Pin<Box<dyn Future<Output = Result<T, CallError<E>>> + Send + 'a>>;

/// The future returned by [`CachedFn::call`](crate::CachedFn::call).
///
/// Its first poll answers a hit from the in-process tier without any
/// allocation of its own; a miss continues in a boxed future that waits for
/// the computation.
#[must_use = "futures do nothing unless awaited"]
pub struct CallFuture<'a, A, T, E, B = Stored> {
    state: State<'a, A, T, E, B>,
}

enum State<'a, A, T, E, B> {
    Start(&'a Arc<Memo<A, T, E>>, Option<(A, B)>),
    Slow(SlowPath<'a, T, E>),
    Done,
}

// The arguments and body are only ever moved out, never pinned.
impl<A, T, E, B> Unpin for CallFuture<'_, A, T, E, B> {}

impl<'a, A, T, E, B> CallFuture<'a, A, T, E, B> {
    pub(crate) fn new(memo: &'a Arc<Memo<A, T, E>>, args: A, body: B) -> Self {
        Self {
            state: State::Start(memo, Some((args, body))),
        }
    }
}

impl<A, T, E, B> std::fmt::Debug for CallFuture<'_, A, T, E, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Start(..) => "start",
            State::Slow(_) => "waiting",
            State::Done => "done",
        };
        f.debug_struct("CallFuture").field("state", &state).finish()
    }
}

impl<'a, A, T, E, B> Future for CallFuture<'a, A, T, E, B>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
    B: Body<A, T, E>,
{
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Start(memo, call) = &mut this.state {
            let memo: &'a Arc<Memo<A, T, E>> = memo;
            let Some((args, _)) = call.as_ref() else {
                this.state = State::Done;
                return Poll::Ready(Err(CallError::Abandoned));
            };
            let mut bytes = ArgBytes::new();
            let probe = match memo.probe(args, &mut bytes) {
                Ok(Probe::Fresh(value)) => {
                    this.state = State::Done;
                    return Poll::Ready(Ok(value));
                }
                Ok(probe) => probe,
                Err(e) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(e));
                }
            };
            let Some((args, body)) = call.take() else {
                unreachable!("checked above");
            };
            match memo.after_probe(probe, &bytes, args, body) {
                Step::Done(value) => {
                    this.state = State::Done;
                    return Poll::Ready(Ok(value));
                }
                Step::Fly(key, args, kind, job) => {
                    this.state = State::Slow(Box::pin(memo.fly(key, args, kind, job)));
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
