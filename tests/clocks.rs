//! Lifespans are judged against the clock of the runtime a call runs on.
//! Twenty paused-clock tests run in parallel in this one binary, each on
//! its own runtime whose clock starts at a different offset; each checks
//! exact expiry of stored calls (read back by a second instance, so the
//! stored lifespan, not the in-process tier, decides).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn};
use tokio::time::advance;

const SEC: Duration = Duration::from_secs(1);

fn counted(cache: &Cache, runs: &Arc<AtomicUsize>) -> CachedFn<(u32,), usize> {
    let n = runs.clone();
    CachedFn::builder("clocked")
        .args(["k"])
        .cache(cache.clone())
        .update_after(10 * SEC)
        .expire_after(20 * SEC)
        .build(move |(_k,): (u32,)| {
            let n = n.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                n.fetch_add(1, Ordering::SeqCst) + 1
            }
        })
}

/// One scripted run, after moving this runtime's clock `offset` ahead.
async fn expiry_is_exact(offset: Duration) {
    advance(offset).await;
    let cache = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    assert_eq!(counted(&cache, &runs).call((1,)).await.unwrap(), 1);

    advance(5 * SEC).await;
    // A new instance: empty hot tier, the stored call is fresh.
    assert_eq!(counted(&cache, &runs).call((1,)).await.unwrap(), 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "fresh in storage at 5 s");

    advance(10 * SEC).await;
    // 15 s: stale in storage, served, one refresh in the background.
    let f = counted(&cache, &runs);
    assert_eq!(f.call((1,)).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "stale at 15 s: refreshed");

    advance(25 * SEC).await;
    // 40 s: the refreshed call (stored at 15 s) has expired.
    assert_eq!(counted(&cache, &runs).call((1,)).await.unwrap(), 3);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "expired at 40 s: recomputed"
    );
}

macro_rules! offsets {
    ($($name:ident: $hours:expr,)*) => {$(
        #[tokio::test(start_paused = true)]
        async fn $name() {
            expiry_is_exact(Duration::from_secs(3_600 * $hours)).await;
        }
    )*};
}

offsets! {
    offset_00: 0, offset_01: 1, offset_02: 2, offset_03: 3, offset_04: 4,
    offset_05: 5, offset_06: 6, offset_07: 7, offset_08: 8, offset_09: 9,
    offset_10: 10, offset_11: 11, offset_12: 12, offset_13: 13, offset_14: 14,
    offset_15: 15, offset_16: 16, offset_17: 17, offset_18: 18, offset_19: 19,
}
