//! The in-memory store's bounds: expiry by read, by write and by sweep,
//! eviction by least recent read within `max_bytes`, and values that go
//! with the last call referring to them — never before.

use std::time::Duration;

use flechette_core::conformance::{lifespan_record, save_lifespan_call};
use flechette_core::encoding::to_vec;
use flechette_core::storage::{Bytes, CallStorage, MemoryStore, ValueStorage};
use flechette_core::{Cache, Digest, digest};

#[tokio::test(start_paused = true)]
async fn an_expired_call_is_removed_when_read_with_the_values_only_it_had() {
    let store = MemoryStore::builder().sweep_interval(None).build();
    let cache = Cache::in_memory(&store);
    let short = save_lifespan_call(&cache, "short", 1, "one", Some(Duration::from_secs(10))).await;
    let long = save_lifespan_call(&cache, "long", 1, "uno", Some(Duration::from_secs(100))).await;
    assert_eq!((store.calls_len(), store.values_len()), (2, 3));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(cache.load(&short).await.unwrap().is_none());
    assert_eq!(store.calls_len(), 1, "the read removed it");
    assert_eq!(
        store.values_len(),
        2,
        "its result went, the shared argument stayed"
    );
    let lazy = cache.load(&long).await.unwrap().expect("still fresh");
    assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), 1);
    tokio::time::advance(Duration::from_secs(90)).await;
    assert!(cache.load(&long).await.unwrap().is_none());
    assert_eq!(
        (store.calls_len(), store.values_len(), store.used_bytes()),
        (0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn the_periodic_sweep_removes_expired_calls_nobody_reads() {
    let store = MemoryStore::builder()
        .sweep_interval(Some(Duration::from_secs(30)))
        .sweep_budget(64)
        .build();
    let cache = Cache::in_memory(&store);
    for i in 0..100 {
        save_lifespan_call(
            &cache,
            "f",
            i,
            &format!("r{i}"),
            Some(Duration::from_secs(5)),
        )
        .await;
    }
    save_lifespan_call(&cache, "g", 0, "forever", None).await;
    assert_eq!(store.calls_len(), 101);
    tokio::time::sleep(Duration::from_secs(31)).await;
    let after_one = store.calls_len();
    assert!(
        after_one < 101 && after_one > 1,
        "one sweep does bounded work: {after_one}"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        store.calls_len(),
        1,
        "the next sweep goes on where it stopped"
    );
    assert_eq!(
        store.values_len(),
        2,
        "only the live call's values are left"
    );
}

#[tokio::test(start_paused = true)]
async fn writes_remove_expired_calls_without_a_sweep() {
    let store = MemoryStore::builder().sweep_interval(None).build();
    let cache = Cache::in_memory(&store);
    for i in 0..10_000 {
        save_lifespan_call(&cache, "f", i, "x", Some(Duration::from_millis(1))).await;
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    assert!(
        store.calls_len() < 1_000,
        "expired calls do not pile up: {}",
        store.calls_len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_sweep_can_be_asked_for() {
    let store = MemoryStore::builder().sweep_interval(None).build();
    let cache = Cache::in_memory(&store);
    save_lifespan_call(&cache, "f", 1, "gone", Some(Duration::from_secs(1))).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    let report = cache.sweep(100).await.unwrap();
    assert_eq!((report.examined, report.expired, report.values), (1, 1, 2));
    assert_eq!(store.calls_len(), 0);
}

#[tokio::test]
async fn eviction_keeps_the_bound_and_the_calls_read_recently() {
    let max_bytes = 64 << 10;
    let store = MemoryStore::builder().max_bytes(max_bytes).build();
    let cache = Cache::in_memory(&store);
    let hot: Vec<Digest> = {
        let mut hot = Vec::new();
        for i in 0..8 {
            hot.push(save_lifespan_call(&cache, "f", i, "hot", None).await);
        }
        hot
    };
    for i in 8..5_000u64 {
        save_lifespan_call(&cache, "f", i, &"v".repeat(100), None).await;
        assert!(
            store.used_bytes() <= max_bytes,
            "within the bound after every write"
        );
        if i % 10 == 0 {
            for key in &hot {
                assert!(
                    cache.load(key).await.unwrap().is_some(),
                    "recently read calls stay"
                );
            }
        }
    }
    assert!(store.calls_len() < 1_000);
    // Every remaining call has its values.
    for lazy in cache.query(&Default::default()).await.unwrap() {
        let (key, record) = (lazy.record().key(), lazy.record());
        for d in record.value_digests() {
            assert!(
                cache.contains_value(d).await.unwrap(),
                "{key}: value {d} went"
            );
        }
    }
}

/// A writer between saving a value and saving its record must not lose
/// the value when the last other call referring to it goes meanwhile.
#[tokio::test]
async fn a_value_written_again_outlives_the_call_that_referred_to_it() {
    let store = MemoryStore::new();
    let (values, calls) = (store.values(), store.calls());
    let arg = digest(&1u64).unwrap();
    let result = digest(&"r").unwrap();
    let arg_bytes = Bytes::from(to_vec(&1u64).unwrap());
    let result_bytes = Bytes::from(to_vec(&"r").unwrap());
    values.put(&arg, arg_bytes.clone()).await.unwrap();
    values.put(&result, result_bytes.clone()).await.unwrap();
    let first = lifespan_record("first", &arg, &result, None);
    calls.put(&first.key(), &first).await.unwrap();
    // A second writer saves the same values...
    values.put(&arg, arg_bytes).await.unwrap();
    values.put(&result, result_bytes).await.unwrap();
    // ...the first call goes before the second record is saved...
    assert!(calls.remove(&first.key()).await.unwrap());
    assert!(values.contains(&arg).await.unwrap(), "written again: kept");
    // ...and the second record finds its values.
    let second = lifespan_record("second", &arg, &result, None);
    calls.put(&second.key(), &second).await.unwrap();
    assert!(values.contains(&result).await.unwrap());
    // Once a call refers to them again, they go with it.
    assert!(calls.remove(&second.key()).await.unwrap());
    assert_eq!(store.values_len(), 0);
}

#[tokio::test]
async fn the_sweeper_stops_with_the_store() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let store = MemoryStore::new();
    let cache = Cache::in_memory(&store);
    save_lifespan_call(&cache, "f", 1, "x", None).await;
    assert_eq!(metrics.num_alive_tasks(), before + 1, "the sweeper runs");
    drop((cache, store));
    tokio::task::yield_now().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "and stops with the store"
    );
}
