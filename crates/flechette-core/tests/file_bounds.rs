//! A file store's bounds: expiry by read and by sweep, eviction by least
//! recent read within `max_bytes` of disk, values that go with the last
//! call referring to them (never one claimed since), and an index that a
//! reopened store rebuilds from its directory.

use std::time::Duration;

use flechette_core::conformance::save_lifespan_call;
use flechette_core::storage::{CallStorage, FileStore, ValueStorage};
use flechette_core::{Cache, Digest};

/// How many calls and values the directory holds.
async fn counts(store: &FileStore) -> (usize, usize) {
    let calls = store.calls().list(None).await.unwrap().len();
    let values = store.values().list(None).await.unwrap().len();
    (calls, values)
}

fn unswept(dir: &std::path::Path) -> FileStore {
    FileStore::builder(dir).sweep_interval(None).open().unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_expired_call_is_removed_when_read_with_the_values_only_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let store = unswept(dir.path());
    let cache = Cache::new(store.values(), store.calls());
    let short = save_lifespan_call(&cache, "short", 1, "one", Some(Duration::from_secs(10))).await;
    let long = save_lifespan_call(&cache, "long", 1, "uno", Some(Duration::from_secs(100))).await;
    cache.flush().await;
    assert_eq!(counts(&store).await, (2, 3));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(cache.load(&short).await.unwrap().is_none());
    assert_eq!(
        counts(&store).await,
        (1, 2),
        "the read removed the call and its result; the shared argument stayed"
    );
    let lazy = cache.load(&long).await.unwrap().expect("still fresh");
    assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), 1);
    tokio::time::advance(Duration::from_secs(90)).await;
    assert!(
        store
            .calls()
            .get_with_result(&long)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(counts(&store).await, (0, 0));
    assert_eq!(store.used_bytes(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_periodic_sweep_removes_expired_calls_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::builder(dir.path())
        .sweep_interval(Some(Duration::from_secs(30)))
        .sweep_budget(64)
        .open()
        .unwrap();
    let cache = Cache::new(store.values(), store.calls());
    for i in 0..100 {
        let result = format!("r{i}");
        save_lifespan_call(&cache, "f", i, &result, Some(Duration::from_secs(10))).await;
    }
    save_lifespan_call(&cache, "kept", 7, "forever", None).await;
    cache.flush().await;
    assert_eq!(counts(&store).await, (101, 201));
    // Two sweeps of at most 64 calls each, after 30 s and after 60 s.
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(store.calls_len(), 101, "no sweep before 30 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    store.sweeps_finished(1).await;
    let left = store.calls_len();
    assert!((37..=38).contains(&left), "64 examined: {left} left");
    tokio::time::advance(Duration::from_secs(28)).await;
    assert_eq!(store.calls_len(), left, "no sweep between");
    tokio::time::advance(Duration::from_secs(2)).await;
    store.sweeps_finished(2).await;
    assert_eq!(store.calls_len(), 1, "the second sweep removed the rest");
    assert_eq!(counts(&store).await, (1, 2), "the kept call and its values");
}

#[tokio::test(start_paused = true)]
async fn a_value_written_again_after_a_call_was_stored_outlives_that_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = unswept(dir.path());
    let cache = Cache::new(store.values(), store.calls());
    let ttl = Some(Duration::from_secs(5));
    let key = save_lifespan_call(&cache, "old", 3, "shared result", ttl).await;
    cache.flush().await;
    // A writer between saving its values and its record claims the result.
    let claimed = cache.save_value("shared result").await.unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    let report = cache.sweep(100).await.unwrap();
    assert_eq!((report.expired, report.values), (1, 1), "the argument went");
    assert!(!cache.contains(&key).await.unwrap());
    assert_eq!(
        cache.load_value::<String>(&claimed).await.unwrap(),
        "shared result"
    );
}

#[tokio::test]
async fn eviction_keeps_the_calls_read_and_the_bound_and_a_reopened_store_knows_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes: u64 = 1 << 20;
    let store = FileStore::builder(dir.path())
        .max_bytes(max_bytes)
        .open()
        .unwrap();
    let cache = Cache::new(store.values(), store.calls());
    let text = "x".repeat(2_000);
    let mut hot: Vec<Digest> = Vec::new();
    for i in 0..8 {
        hot.push(save_lifespan_call(&cache, "hot", i, &format!("{i}{text}"), None).await);
    }
    for i in 0..1_000u64 {
        save_lifespan_call(&cache, "cold", i, &format!("{i}{text}"), None).await;
        if i % 25 == 0 {
            cache.flush().await;
            for key in &hot {
                assert!(cache.load(key).await.unwrap().is_some(), "at {i}");
            }
        }
    }
    cache.flush().await;
    let used = store.used_bytes();
    assert!(used <= max_bytes, "{used} bytes of disk");
    let (calls, values) = counts(&store).await;
    assert!((8..1_008).contains(&calls), "{calls} calls kept");
    for key in store.calls().list(None).await.unwrap() {
        let lazy = cache.load(&key).await.unwrap().expect("listed");
        lazy.result::<String>().await.unwrap();
        lazy.arguments().get::<u64>("x").await.unwrap();
    }
    drop(cache);
    let reopened = unswept(dir.path());
    assert_eq!(reopened.calls_len(), calls);
    assert_eq!(reopened.used_bytes(), used, "{values} values");
}

#[tokio::test(start_paused = true)]
async fn over_its_bound_a_store_takes_old_values_no_call_refers_to_before_calls() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes: u64 = 256 << 10;
    let store = FileStore::builder(dir.path())
        .max_bytes(max_bytes)
        .sweep_interval(None)
        .open()
        .unwrap();
    let cache = Cache::new(store.values(), store.calls());
    let mut loose = Vec::new();
    for i in 0..24u64 {
        loose.push(
            cache
                .save_value(&vec![u8::try_from(i).unwrap(); 5_000])
                .await
                .unwrap(),
        );
    }
    // Older than gc's grace period: nobody is about to refer to them.
    tokio::time::advance(Duration::from_secs(301)).await;
    let mut calls = Vec::new();
    for i in 0..8u64 {
        calls.push(save_lifespan_call(&cache, "kept", i, &format!("r{i}"), None).await);
    }
    cache.flush().await;
    for key in &calls {
        assert!(cache.load(key).await.unwrap().is_some(), "the calls stay");
    }
    let left = store.values().list(None).await.unwrap().len();
    assert!(left < 24 + 16, "old loose values went: {left} values left");
    assert!(store.used_bytes() <= max_bytes);
}
