//! Statistics count their event, exactly: one test per counter that was
//! wrong, each after a scripted sequence.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn, CallError};
use tokio::time::{advance, sleep};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_refresh_replacing_a_value_is_not_an_eviction() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("refreshed")
        .args(["k"])
        .cache(Cache::memory())
        .capacity(10_000)
        .update_after(SEC)
        .build(move |(_k,): (u8,)| {
            let n = n.clone();
            async move { n.fetch_add(1, Ordering::SeqCst) }
        });
    f.call((1,)).await.unwrap();
    for _ in 0..2 {
        advance(2 * SEC).await;
        f.call((1,)).await.unwrap();
        sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3, "computed, refreshed twice");
    let stats = f.stats();
    assert_eq!(stats.refreshes_started, 2);
    assert_eq!(stats.evictions, 0, "two replacements, no eviction");

    // Capacity 16 (an exact list) and capacity 100 (the sharded cache):
    // each key past the bound is one eviction.
    for capacity in [16u64, 100] {
        let g = CachedFn::builder("bounded")
            .args(["k"])
            .cache(Cache::memory())
            .capacity(capacity)
            .build(|(k,): (u64,)| async move { k });
        for k in 0..capacity + 3 {
            g.call((k,)).await.unwrap();
        }
        assert_eq!(g.stats().evictions, 3, "capacity {capacity}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_refresh_that_panics_or_times_out_counts_as_failed() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("fragile_refresh")
        .args(["k"])
        .cache(Cache::memory())
        .update_after(SEC)
        .timeout(5 * SEC)
        .build(move |(_k,): (u8,)| {
            let run = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match run {
                    2 => panic!("the refresh panics"),
                    3 => sleep(60 * SEC).await,
                    _ => {}
                }
                run
            }
        });
    assert_eq!(f.call((1,)).await.unwrap(), 1);
    advance(2 * SEC).await;
    assert_eq!(f.call((1,)).await.unwrap(), 1, "stale; refresh 1 panics");
    sleep(Duration::from_millis(1)).await;
    let stats = f.stats();
    assert_eq!((stats.failures, stats.refreshes_failed), (1, 1));
    assert_eq!(f.call((1,)).await.unwrap(), 1, "stale; refresh 2 times out");
    sleep(6 * SEC).await;
    let stats = f.stats();
    assert_eq!(stats.refreshes_started, 2);
    assert_eq!(stats.refreshes_failed, 2, "the timeout failed the refresh");
    assert_eq!(stats.timeouts, 1);
    assert_eq!(stats.failures, 1, "a timeout is counted as a timeout");
}

fn record_file(root: &Path, key: &flechette::Digest) -> std::path::PathBuf {
    let hex = key.to_hex();
    root.join("calls").join(&hex[..2]).join(hex)
}

#[tokio::test]
async fn a_damaged_call_record_counts_as_a_storage_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let make = || {
        CachedFn::builder("damaged")
            .args(["k"])
            .cache(cache.clone())
            .build(|(k,): (u64,)| async move { k + 1 })
    };
    let first = make();
    for k in 1..=4 {
        first.call((k,)).await.unwrap();
    }
    cache.flush().await;
    let keys: Vec<_> = (1..=4).map(|k| first.digest(&(k,)).unwrap()).collect();
    std::fs::write(record_file(dir.path(), &keys[0]), b"\x00garbage\xff").unwrap();
    std::fs::write(record_file(dir.path(), &keys[1]), [0u8; 64]).unwrap();
    let other = std::fs::read(record_file(dir.path(), &keys[3])).unwrap();
    std::fs::write(record_file(dir.path(), &keys[2]), other).unwrap();

    // A new instance: nothing in memory, every read goes to the files.
    let restarted = make();
    for k in 1..=4 {
        assert_eq!(restarted.call((k,)).await.unwrap(), k + 1);
    }
    let stats = restarted.stats();
    assert_eq!(
        stats.storage_faults, 3,
        "garbage, zeros, another key's record"
    );
    assert_eq!(stats.computations, 3, "each damaged one recomputed");
}

#[tokio::test]
async fn a_damaged_value_counts_as_a_storage_fault_too() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let make = || {
        CachedFn::builder("damaged_value")
            .args(["k"])
            .cache(cache.clone())
            .build(|(k,): (u64,)| async move { k + 1 })
    };
    let first = make();
    first.call((1,)).await.unwrap();
    cache.flush().await;
    let result = first.load((1,)).await.unwrap().unwrap().record().result;
    let hex = result.to_hex();
    std::fs::write(dir.path().join("values").join(&hex[..2]).join(&hex), b"zz").unwrap();
    let restarted = make();
    assert_eq!(restarted.call((1,)).await.unwrap(), 2);
    assert_eq!(restarted.stats().storage_faults, 1);
    assert_eq!(restarted.stats().computations, 1);
}

#[tokio::test(start_paused = true)]
async fn every_counter_after_a_scripted_sequence() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("scripted")
        .args(["k"])
        .cache(Cache::memory())
        .update_after(SEC)
        .expire_after(10 * SEC)
        .build_fallible(move |(k,): (u8,)| {
            let n = n.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                sleep(Duration::from_millis(10)).await;
                if k == 0 { Err("zero") } else { Ok(k) }
            }
        });
    f.call((1,)).await.unwrap(); // miss, computation 1
    f.call((1,)).await.unwrap(); // hit
    assert!(matches!(f.call((0,)).await, Err(CallError::Failed(_)))); // miss, computation 2, failure
    advance(2 * SEC).await;
    f.call((1,)).await.unwrap(); // stale hit, refresh (computation 3)
    sleep(SEC).await;
    f.call((1,)).await.unwrap(); // hit (refreshed)
    let (a, b) = tokio::join!(f.call((2,)), f.call((2,))); // miss + collapsed, computation 4
    assert_eq!((a.unwrap(), b.unwrap()), (2, 2));
    let stats = f.stats();
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(stats.hits, 2);
    assert_eq!(stats.stale_hits, 1);
    assert_eq!(stats.misses, 4);
    assert_eq!(stats.collapsed, 1);
    assert_eq!(stats.refreshes_started, 1);
    assert_eq!(stats.refreshes_failed, 0);
    assert_eq!(stats.failures, 1);
    assert_eq!(stats.timeouts, 0);
    assert_eq!(stats.computations, 4);
    assert_eq!(stats.computation_time, Duration::from_millis(40));
    assert_eq!(stats.evictions, 0);
    assert_eq!(stats.storage_faults, 0);
}
