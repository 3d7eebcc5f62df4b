//! A capacity holds as many entries as it says, at every size: the
//! py-memoize rule (`test_should_release_keys_on_caching_multiple_elements`)
//! and its generalisation, for capacities 1 to 8.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flechette::{Cache, CachedFn};

/// A function of one key that counts its computations.
fn counted(capacity: u64) -> (CachedFn<(u64,), u64>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("counted")
        .args(["k"])
        .cache(Cache::memory())
        .capacity(capacity)
        .build(move |(k,): (u64,)| {
            n.fetch_add(1, Ordering::SeqCst);
            async move { k * 10 }
        });
    (f, runs)
}

/// Calls `k` and says whether the hot tier answered it.
async fn hit(f: &CachedFn<(u64,), u64>, k: u64) -> bool {
    let before = f.stats().hits;
    assert_eq!(f.call((k,)).await.unwrap(), k * 10);
    f.stats().hits == before + 1
}

/// A sequential scan of `capacity + 3` distinct keys: after each insert
/// the tier holds `min(capacity, distinct keys)`; after the scan the most
/// recent key (and, at capacity ≥ 2, the two most recent) are hits; and a
/// key just inserted is always a hit on the next call.
async fn holds_what_it_says(capacity: u64) {
    let (f, runs) = counted(capacity);
    let keys = capacity + 3;
    for k in 0..keys {
        assert!(!hit(&f, k).await, "key {k} is new");
        let expected = usize::try_from(capacity.min(k + 1)).unwrap();
        assert_eq!(f.hot_len(), expected, "capacity {capacity}, after key {k}");
    }
    if capacity >= 2 {
        assert!(
            hit(&f, keys - 2).await,
            "capacity {capacity}: second most recent"
        );
    }
    assert!(hit(&f, keys - 1).await, "capacity {capacity}: most recent");
    let full = usize::try_from(capacity).unwrap();
    assert_eq!(f.hot_len(), full, "a hit does not shrink the tier");
    for k in 100..100 + keys {
        assert!(!hit(&f, k).await, "key {k} is new");
        assert!(
            hit(&f, k).await,
            "capacity {capacity}: key {k} just inserted"
        );
        assert_eq!(f.hot_len(), full);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2 * usize::try_from(keys).unwrap()
    );
}

macro_rules! capacities {
    ($($name:ident: $capacity:expr,)*) => {$(
        #[tokio::test]
        async fn $name() {
            holds_what_it_says($capacity).await;
        }
    )*};
}

capacities! {
    capacity_1_holds_one: 1,
    capacity_2_holds_two: 2,
    capacity_3_holds_three: 3,
    capacity_4_holds_four: 4,
    capacity_5_holds_five: 5,
    capacity_6_holds_six: 6,
    capacity_7_holds_seven: 7,
    capacity_8_holds_eight: 8,
}

/// py-memoize's own case: capacity 2, four keys in order, then the last
/// two again are hits and the first is a miss.
#[tokio::test]
async fn the_py_memoize_release_case() {
    let (f, runs) = counted(2);
    for k in 1..=4 {
        f.call((k,)).await.unwrap();
    }
    assert!(hit(&f, 3).await);
    assert!(hit(&f, 4).await);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert!(!hit(&f, 1).await, "the first key was released");
    assert_eq!(f.hot_len(), 2);
}
