//! Lifespans are judged against the clock of the runtime a call runs on.
//! Twenty paused-clock tests run in parallel in this one binary. Each first
//! stores a call on a runtime whose clock it moved days ahead, then runs an
//! exact expiry script on a second, fresh paused runtime (so other runtimes
//! of the process, near and far, are ahead of it); the script reads stored
//! calls back through new instances, so the stored lifespan, not the
//! in-process tier, decides.

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

/// The scripted run, on a runtime whose clock was not moved.
async fn expiry_is_exact() {
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

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A call stored on a runtime whose clock is `ahead`, then the script on a
/// fresh one.
fn far_then_near(ahead: Duration) {
    paused_runtime().block_on(async {
        advance(ahead).await;
        let runs = Arc::new(AtomicUsize::new(0));
        counted(&Cache::memory(), &runs).call((0,)).await.unwrap();
    });
    paused_runtime().block_on(expiry_is_exact());
}

macro_rules! offsets {
    ($($name:ident: $hours:expr,)*) => {$(
        #[test]
        fn $name() {
            far_then_near(Duration::from_secs(86_400 * (1 + $hours)));
        }
    )*};
}

offsets! {
    ahead_00: 0, ahead_01: 1, ahead_02: 2, ahead_03: 3, ahead_04: 4,
    ahead_05: 5, ahead_06: 6, ahead_07: 7, ahead_08: 8, ahead_09: 9,
    ahead_10: 10, ahead_11: 11, ahead_12: 12, ahead_13: 13, ahead_14: 14,
    ahead_15: 15, ahead_16: 16, ahead_17: 17, ahead_18: 18, ahead_19: 19,
}
