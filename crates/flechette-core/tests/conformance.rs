//! The storage conformance suite on the built-in backends.

use std::sync::Arc;

use flechette_core::Cache;
use flechette_core::conformance::{
    check_all, check_capacity, check_expiry, check_replaced_call_values,
};
use flechette_core::storage::{
    FileCalls, FileStore, FileValues, MemoryCalls, MemoryStore, MemoryValues,
};

#[tokio::test]
async fn memory_storage_conforms() {
    check_all(Arc::new(MemoryValues::new()), Arc::new(MemoryCalls::new())).await;
    check_expiry(Cache::memory()).await;
    check_replaced_call_values(Cache::memory()).await;
    let max_bytes = 256 << 10;
    let store = MemoryStore::builder().max_bytes(max_bytes).build();
    check_capacity(Cache::in_memory(&store), max_bytes).await;
    assert!(store.used_bytes() <= max_bytes);
}

#[tokio::test]
async fn file_storage_conforms() {
    let dir = tempfile::tempdir().unwrap();
    check_all(
        Arc::new(FileValues::open(dir.path().join("values")).unwrap()),
        Arc::new(FileCalls::open(dir.path().join("calls")).unwrap()),
    )
    .await;
    let store = FileStore::open(dir.path().join("expiry")).unwrap();
    check_expiry(Cache::new(store.values(), store.calls())).await;
    check_replaced_call_values(Cache::open(dir.path().join("replaced")).unwrap()).await;
    let max_bytes = 256 << 10;
    let store = FileStore::builder(dir.path().join("bounded"))
        .max_bytes(max_bytes)
        .open()
        .unwrap();
    check_capacity(
        Cache::new(store.values(), store.calls()),
        max_bytes as usize,
    )
    .await;
    assert!(store.used_bytes() <= max_bytes);
}
