//! `None` can mean "not cached" (as in fleche): with `skip_none`, a call
//! that returned `None` is answered, nothing is stored, and the next call
//! computes again. Without it, `None` is a value like any other.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flechette::{Cache, CachedFn, cached};

fn lookup(runs: &Arc<AtomicUsize>, skip: bool) -> CachedFn<(u32,), Option<String>> {
    let n = runs.clone();
    let builder = CachedFn::builder("lookup")
        .args(["id"])
        .cache(Cache::memory());
    let builder = if skip { builder.skip_none() } else { builder };
    builder.build(move |(id,): (u32,)| {
        n.fetch_add(1, Ordering::SeqCst);
        async move { (id % 2 == 0).then(|| format!("row {id}")) }
    })
}

#[tokio::test]
async fn with_skip_none_a_none_is_answered_but_not_cached() {
    let runs = Arc::new(AtomicUsize::new(0));
    let f = lookup(&runs, true);
    assert_eq!(f.call((1,)).await.unwrap(), None);
    assert_eq!(f.call((1,)).await.unwrap(), None);
    assert_eq!(runs.load(Ordering::SeqCst), 2, "computed again");
    assert!(!f.contains((1,)).await.unwrap(), "nothing stored");
    assert_eq!(f.hot_len(), 0);

    assert_eq!(f.call((2,)).await.unwrap().as_deref(), Some("row 2"));
    assert_eq!(f.call((2,)).await.unwrap().as_deref(), Some("row 2"));
    assert_eq!(runs.load(Ordering::SeqCst), 3, "Some is cached");
    assert!(f.contains((2,)).await.unwrap());
    let stats = f.stats();
    assert_eq!((stats.hits, stats.misses, stats.failures), (1, 3, 0));
}

#[tokio::test]
async fn without_it_none_is_cached_like_any_value() {
    let runs = Arc::new(AtomicUsize::new(0));
    let f = lookup(&runs, false);
    assert_eq!(f.call((1,)).await.unwrap(), None);
    assert_eq!(f.call((1,)).await.unwrap(), None);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(f.contains((1,)).await.unwrap());
}

static MACRO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = Cache::memory(), skip_none)]
async fn find(id: u32) -> Option<u32> {
    MACRO_RUNS.fetch_add(1, Ordering::SeqCst);
    (id > 10).then_some(id)
}

#[derive(Clone, Debug, PartialEq)]
struct Lost(String);

impl From<flechette::Failure> for Lost {
    fn from(f: flechette::Failure) -> Self {
        Lost(f.to_string())
    }
}

#[cached(cache = Cache::memory(), skip_none)]
async fn find_fallible(id: u32) -> Result<Option<u32>, Lost> {
    Ok((id > 10).then_some(id))
}

#[tokio::test]
async fn the_macro_takes_skip_none() {
    assert_eq!(find(1).await, None);
    assert_eq!(find(1).await, None);
    assert_eq!(MACRO_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(find(11).await, Some(11));
    assert_eq!(find(11).await, Some(11));
    assert_eq!(MACRO_RUNS.load(Ordering::SeqCst), 3);

    assert_eq!(find_fallible(1).await, Ok(None));
    assert!(!find_fallible_cached().contains((1,)).await.unwrap());
    assert_eq!(find_fallible(12).await, Ok(Some(12)));
    assert!(find_fallible_cached().contains((12,)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_returns_none_drops_the_old_value() {
    use std::time::Duration;
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("vanishing")
        .args(["id"])
        .cache(Cache::memory())
        .update_after(Duration::from_secs(1))
        .skip_none()
        .build(move |(id,): (u32,)| {
            let run = n.fetch_add(1, Ordering::SeqCst);
            async move { (run == 0).then_some(id) }
        });
    assert_eq!(f.call((1,)).await.unwrap(), Some(1));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        f.call((1,)).await.unwrap(),
        Some(1),
        "stale, refresh starts"
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!f.contains((1,)).await.unwrap(), "the refresh said None");
    assert_eq!(f.call((1,)).await.unwrap(), None, "computed again");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
