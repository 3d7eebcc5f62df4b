//! `gc` on a live cache: the grace period, writers that lose nothing,
//! expired calls, and the debris of the file backend.

use std::time::{Duration, SystemTime};

use flechette_core::conformance::{check_gc_while_writing, save_lifespan_call};
use flechette_core::storage::{FileStore, MemoryStore};
use flechette_core::{Cache, GcOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_beside_eight_writers_loses_no_value_in_memory() {
    check_gc_while_writing(100, Cache::memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_beside_eight_writers_loses_no_value_in_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    check_gc_while_writing(100, || {
        n += 1;
        Cache::open(dir.path().join(n.to_string())).unwrap()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_value_no_record_refers_to_goes_once_older_than_the_grace_period() {
    let store = MemoryStore::new();
    let cache = Cache::in_memory(&store);
    let loose = cache.save_value(&"loose").await.unwrap();
    let expiring = save_lifespan_call(&cache, "f", 1, "r", Some(Duration::from_secs(330))).await;
    let report = cache.gc().await.unwrap();
    assert_eq!((report.kept, report.young, report.removed), (2, 1, 0));
    tokio::time::advance(Duration::from_secs(299)).await;
    assert_eq!(
        cache.gc().await.unwrap().young,
        1,
        "still within five minutes"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let report = cache.gc().await.unwrap();
    assert_eq!(
        (report.expired, report.removed),
        (0, 1),
        "the loose value went"
    );
    assert!(cache.load_encoded(&loose).await.unwrap().is_none());
    tokio::time::advance(Duration::from_secs(30)).await;
    let report = cache.gc().await.unwrap();
    assert_eq!(
        (report.expired, report.expired_values, report.kept),
        (1, 2, 0),
        "the expired call went with its values"
    );
    assert!(!cache.contains(&expiring).await.unwrap());
    let report = cache
        .gc_with(GcOptions::new().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    assert_eq!(report.examined(), 0);
}

/// Makes `path` look last written an hour ago.
fn age(path: &std::path::Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3_600);
    file.set_modified(hour_ago).unwrap();
}

#[tokio::test]
async fn gc_removes_old_damaged_and_temporary_files_and_keeps_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let cache = Cache::new(store.values(), store.calls());
    let kept = cache.save_value(&"kept").await.unwrap();
    let shard = dir.path().join("values").join(&kept.to_hex()[..2]);
    let calls = dir.path().join("calls").join("ab");
    std::fs::create_dir_all(&calls).unwrap();
    let old = [
        shard.join(format!("{}.corrupt-1", kept.to_hex())),
        shard.join(".tmp-1-2-3"),
        calls.join(".tmp-4-5-6"),
    ];
    let new = [
        shard.join(".tmp-7-8-9"),
        calls.join(format!("{}.corrupt-2", "ab".repeat(32))),
    ];
    for path in old.iter().chain(&new) {
        std::fs::write(path, b"debris").unwrap();
    }
    for path in &old {
        age(path);
    }
    let report = cache.gc().await.unwrap();
    assert_eq!((report.corrupt, report.temp), (1, 2));
    assert!(old.iter().all(|p| !p.exists()));
    assert!(
        new.iter().all(|p| p.exists()),
        "younger than the grace period"
    );
    assert_eq!(cache.load_value::<String>(&kept).await.unwrap(), "kept");
    let none = GcOptions::new().grace(Duration::ZERO);
    let report = cache.gc_with(none, |_| {}).await.unwrap();
    assert_eq!((report.corrupt, report.temp, report.removed), (1, 1, 1));
}
