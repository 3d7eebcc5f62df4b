//! A stuck computation does not hold its key: invalidation detaches the
//! callers, and running computations are counted (`tests/warn_after.rs`:
//! a slow one is reported).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn, CallError};
use tokio::time::sleep;

/// The first computation never returns; later ones answer their run number.
fn first_one_hangs() -> (CachedFn<(u8,), usize>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("hangs")
        .args(["k"])
        .cache(Cache::memory())
        .build(move |(_k,): (u8,)| {
            let run = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if run == 1 {
                    std::future::pending::<()>().await;
                }
                run
            }
        });
    (f, runs)
}

fn call(
    f: &CachedFn<(u8,), usize>,
    k: u8,
) -> tokio::task::JoinHandle<Result<usize, CallError<std::convert::Infallible>>> {
    let f = f.clone();
    tokio::spawn(async move { f.call((k,)).await })
}

#[tokio::test(start_paused = true)]
async fn invalidate_detaches_the_callers_of_a_stuck_computation() {
    let (f, runs) = first_one_hangs();
    let starter = call(&f, 1);
    sleep(Duration::from_millis(1)).await;
    let waiters: Vec<_> = (0..3).map(|_| call(&f, 1)).collect();
    sleep(Duration::from_secs(60)).await;
    assert_eq!(f.stats().running, 1);
    assert!(waiters.iter().all(|w| !w.is_finished()));

    assert!(!f.invalidate((1,)).await.unwrap(), "nothing was stored");
    // The waiters start (one) new computation and get its value (bounded
    // on the paused clock: a regression fails instead of hanging).
    for w in waiters {
        let got = tokio::time::timeout(Duration::from_secs(3_600), w).await;
        assert_eq!(got.expect("detached").unwrap().unwrap(), 2);
    }
    assert_eq!(f.stats().collapsed, 3, "a detached waiter counts once");
    assert_eq!(f.call((1,)).await.unwrap(), 2, "stored, a hit");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // The stuck one still runs (its caller waits for it, as for any future
    // that never ends), and is counted.
    assert!(!starter.is_finished());
    assert_eq!(f.stats().running, 1);
    starter.abort();
}

#[tokio::test(start_paused = true)]
async fn invalidate_all_detaches_them_too() {
    let (f, runs) = first_one_hangs();
    let _starter = call(&f, 7);
    sleep(Duration::from_millis(1)).await;
    let waiter = call(&f, 7);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(f.invalidate_all().await.unwrap(), 0);
    let got = tokio::time::timeout(Duration::from_secs(3_600), waiter).await;
    assert_eq!(got.expect("detached").unwrap().unwrap(), 2);
    assert_eq!(f.call((7,)).await.unwrap(), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
