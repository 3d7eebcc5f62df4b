//! Jitter: results computed together expire spread over the jittered part
//! of their lifespan, never later than it, and a seed repeats a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn};
use tokio::time::advance;

const SEC: Duration = Duration::from_secs(1);

/// A function of one key living 100 s less up to 20 %, counting runs.
fn jittered(cache: &Cache, seed: u64) -> (CachedFn<(u64,), u64>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("jittered")
        .args(["k"])
        .capacity(10_000)
        .expire_after(100 * SEC)
        .jitter(0.2)
        .jitter_seed(seed)
        .cache(cache.clone())
        .build(move |(k,): (u64,)| {
            n.fetch_add(1, Ordering::SeqCst);
            async move { k }
        });
    (f, runs)
}

/// Every key's lifespan as stored: `expire_after - created`.
async fn lifespans(cache: &Cache, f: &CachedFn<(u64,), u64>) -> Vec<Duration> {
    let mut out = Vec::new();
    for k in 0..1_000 {
        let lazy = cache
            .load(&f.digest(&(k,)).unwrap())
            .await
            .unwrap()
            .unwrap();
        let lifespan = lazy.metadata().lifespan.clone().unwrap();
        let micros = lifespan.expire_after.unwrap().0 - lifespan.created.0;
        out.push(Duration::from_micros(u64::try_from(micros).unwrap()));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn results_computed_together_expire_spread_over_the_last_fifth_of_their_lifespan() {
    let cache = Cache::memory();
    let (f, runs) = jittered(&cache, 7);
    for k in 0..1_000 {
        f.call((k,)).await.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1_000);
    let spans = lifespans(&cache, &f).await;
    assert!(spans.iter().all(|d| (80 * SEC..=100 * SEC).contains(d)));
    advance(79 * SEC).await;
    for k in 0..1_000 {
        f.call((k,)).await.unwrap();
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1_000,
        "none expired before 80 s"
    );
    advance(11 * SEC).await;
    for k in 0..1_000 {
        f.call((k,)).await.unwrap();
    }
    let at_90 = runs.load(Ordering::SeqCst) - 1_000;
    let expected = spans.iter().filter(|d| **d <= 90 * SEC).count();
    assert_eq!(at_90, expected, "exactly those whose lifespan ran out");
    assert!((400..600).contains(&at_90), "about half by 90 s: {at_90}");
}

#[tokio::test(start_paused = true)]
async fn one_seed_repeats_the_lifespans() {
    let (a, b) = (Cache::memory(), Cache::memory());
    let (fa, _) = jittered(&a, 11);
    let (fb, _) = jittered(&b, 11);
    for k in 0..1_000 {
        fa.call((k,)).await.unwrap();
        fb.call((k,)).await.unwrap();
    }
    assert_eq!(lifespans(&a, &fa).await, lifespans(&b, &fb).await);
}
