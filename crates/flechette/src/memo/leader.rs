//! The leader computes in place: the computation of a miss is polled by the
//! leader's own `await`, in the leader's task, so a miss costs no spawn and
//! no wake-up of another worker. Waiters are woken by the flight when it
//! publishes. If the leader goes away (dropped, cancelled, or answered early
//! by a stale stored value) before the flight is done, the rest of the
//! computation moves to a task of its own: its result is still cached and
//! handed to every waiter.
//!
//! Computations nest on the stack when they run in place: a cached function
//! calling another one (or itself, on another key) polls it inside its own
//! poll. Below [`MAX_DEPTH`] nested in-place computations on a thread, a
//! leader computes in place; deeper, it spawns, so a deep recursion of
//! cached calls never overflows the stack.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use super::*;

/// How many in-place computations may nest on one thread's stack.
const MAX_DEPTH: u32 = 16;

thread_local! {
    /// In-place computations being polled on this thread, outermost first.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a leader starting now may compute in place.
pub(super) fn may_compute_in_place() -> bool {
    DEPTH.with(Cell::get) < MAX_DEPTH
}

/// The computation of a flight, polled by its leader until it is done.
pub(crate) struct InPlace {
    task: Option<BoxFuture<()>>,
}

impl InPlace {
    pub(super) fn new(task: BoxFuture<()>) -> Self {
        Self { task: Some(task) }
    }
}

impl Drop for InPlace {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        // Outside any runtime the computation cannot go on: dropping it
        // tells its waiters the flight was abandoned.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(task);
        }
    }
}

impl<A, T, E> Memo<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Drives the computation of `flight` in this task until the flight
    /// answers: its outcome, or a stored value served until it expires (the
    /// flight then finishes refreshing it in a task of its own).
    ///
    /// A panic escaping the computation (its own panics are caught where
    /// they happen; this catches those of encoding, policies or storage)
    /// is the outcome [`CallError::Panicked`], as in a spawned flight.
    pub(super) async fn lead_in_place(
        &self,
        flight: &Flight<T, E>,
        mut in_place: InPlace,
    ) -> Outcome<T, E> {
        std::future::poll_fn(|cx| {
            if let Some(task) = in_place.task.as_mut() {
                DEPTH.with(|d| d.set(d.get() + 1));
                let polled = catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(cx)));
                DEPTH.with(|d| d.set(d.get() - 1));
                match polled {
                    Ok(Poll::Pending) => {}
                    Ok(Poll::Ready(())) => in_place.task = None,
                    Err(_) => {
                        if !flight.is_done() {
                            Counters::count(&self.counters.failures);
                            flight.publish(Err(CallError::Panicked));
                        }
                        in_place.task = None;
                    }
                }
            }
            // Only the computation publishes to its flight, and it is polled
            // here with this task's waker: no other wake-up is needed. The
            // leader waits for the whole computation (storing included: a
            // full write queue holds it back), except when it is answered
            // early by a stored value that the flight goes on to refresh.
            let finished = in_place.task.is_none();
            match &*flight.answer.borrow() {
                Some(Answer::Done(outcome)) if finished => Poll::Ready(outcome.clone()),
                Some(Answer::Early(value, expire_at))
                    if expire_at.is_none_or(|at| Instant::now() < at) =>
                {
                    Poll::Ready(Ok(value.clone()))
                }
                _ if finished => Poll::Ready(Err(CallError::Abandoned)),
                _ => Poll::Pending,
            }
        })
        .await
    }
}
