//! Never serve an expired value: after `expire_after`, callers wait for a
//! fresh value, even while a slow refresh (started at `update_after`) runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn};
use tokio::time::{advance, sleep};

const SEC: Duration = Duration::from_secs(1);

/// `v1` at once, then every later computation takes 10 s.
fn slow_refresh() -> (CachedFn<(u8,), String>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("slow_refresh")
        .args(["k"])
        .cache(Cache::memory())
        .update_after(SEC)
        .expire_after(2 * SEC)
        .build(move |(_k,): (u8,)| {
            let run = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if run > 1 {
                    sleep(10 * SEC).await;
                }
                format!("v{run}")
            }
        });
    (f, runs)
}

#[tokio::test(start_paused = true)]
async fn after_expire_after_callers_join_the_refresh_instead_of_taking_the_old_value() {
    let (f, runs) = slow_refresh();
    assert_eq!(f.call((1,)).await.unwrap(), "v1");
    advance(SEC + SEC / 2).await;
    // Stale: the old value at once, and one refresh starts (10 s long).
    assert_eq!(f.call((1,)).await.unwrap(), "v1");
    tokio::task::yield_now().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // 5 s after expire_after, the refresh still runs.
    advance(5 * SEC + SEC / 2).await;
    let late = tokio::spawn({
        let f = f.clone();
        async move { f.call((1,)).await.unwrap() }
    });
    tokio::task::yield_now().await;
    assert!(!late.is_finished(), "an expired value is never served");
    assert_eq!(late.await.unwrap(), "v2", "the refresh's fresh value");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "it joined the running refresh"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_stored_value_is_not_served_to_a_refresh_joiner_either() {
    // The same with the stale value read from storage: a capacity of 1 and
    // another key push the entry out of the in-process tier.
    let cache = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let restarted = CachedFn::builder("slow_refresh")
        .args(["k"])
        .cache(cache.clone())
        .update_after(SEC)
        .expire_after(2 * SEC)
        .capacity(1)
        .build(move |(k,): (u8,)| {
            let run = if k == 1 {
                n.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                0
            };
            async move {
                if run > 1 {
                    sleep(10 * SEC).await;
                }
                format!("r{run}")
            }
        });
    assert_eq!(restarted.call((1,)).await.unwrap(), "r1");
    advance(SEC + SEC / 2).await;
    assert_eq!(restarted.call((1,)).await.unwrap(), "r1", "stale, at once");
    advance(5 * SEC).await;
    assert_eq!(restarted.call((2,)).await.unwrap(), "r0", "another key");
    let started = tokio::time::Instant::now();
    assert_eq!(restarted.call((1,)).await.unwrap(), "r2");
    assert!(
        started.elapsed() > Duration::ZERO,
        "it waited for the refresh"
    );
}
