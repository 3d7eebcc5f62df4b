//! The leader of a miss computes in its own task, and the computation moves
//! to a task of its own only when the leader goes away first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn, CallError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A function whose computation reports the task it runs in, and waits for
/// `go` when told to.
fn reporting(gate: Option<Arc<Notify>>) -> (CachedFn<(u8,), Option<String>>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let f = CachedFn::builder("reporting")
        .args(["k"])
        .cache(Cache::memory())
        .build(move |(_,): (u8,)| {
            let (runs, gate) = (Arc::clone(&counted), gate.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if let Some(gate) = gate {
                    gate.notified().await;
                }
                tokio::task::try_id().map(|id| id.to_string())
            }
        });
    (f, runs)
}

#[tokio::test]
async fn a_miss_is_computed_in_the_callers_own_task() {
    let (f, _) = reporting(None);
    let caller = tokio::spawn(async move {
        let ran_in = f.call((1,)).await.unwrap();
        (tokio::task::id().to_string(), ran_in)
    });
    let (caller, ran_in) = caller.await.unwrap();
    assert_eq!(ran_in, Some(caller), "the computation ran in the caller");
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_goes_away_leaves_its_computation_to_a_task_of_its_own() {
    let gate = Arc::new(Notify::new());
    let (f, runs) = reporting(Some(Arc::clone(&gate)));
    // The leader starts the computation and is dropped while it waits.
    let leader = tokio::time::timeout(Duration::from_millis(10), f.call((1,))).await;
    assert!(leader.is_err(), "the leader gave up");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let waiter = tokio::spawn({
        let f = f.clone();
        async move { f.call((1,)).await }
    });
    tokio::task::yield_now().await;
    gate.notify_waiters();
    let ran_in = waiter.await.unwrap().unwrap();
    assert!(ran_in.is_some(), "it finished in a task");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "computed once");
    assert_eq!(f.call((1,)).await.unwrap(), ran_in, "and cached");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_leader_dropped_with_nobody_waiting_still_caches_its_result() {
    let gate = Arc::new(Notify::new());
    let (f, runs) = reporting(Some(Arc::clone(&gate)));
    let leader = tokio::time::timeout(Duration::from_millis(10), f.call((2,))).await;
    assert!(leader.is_err());
    // Let the moved computation reach its gate, then open it.
    tokio::task::yield_now().await;
    gate.notify_waiters();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(f.contains((2,)).await.unwrap(), "the result was stored");
    f.call((2,)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A value whose encoding panics: a panic outside the function's body.
#[derive(Clone, Debug, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("this value cannot be encoded")
    }
}

#[tokio::test]
async fn a_panic_outside_the_body_is_a_panicked_call_for_every_caller() {
    let f: CachedFn<(u8,), Unencodable> = CachedFn::builder("unencodable")
        .args(["k"])
        .cache(Cache::memory())
        .build(|(_,): (u8,)| async { Unencodable });
    let e = f.call((1,)).await.unwrap_err();
    assert!(matches!(e, CallError::Panicked), "{e:?}");
    assert_eq!(f.stats().failures, 1);
    // The key is free again: the next call computes (and panics) anew.
    let e = f.call((1,)).await.unwrap_err();
    assert!(matches!(e, CallError::Panicked), "{e:?}");
    assert_eq!(f.stats().failures, 2);
}
