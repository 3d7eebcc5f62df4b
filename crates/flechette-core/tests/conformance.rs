//! The storage conformance suite on the built-in backends.

use std::sync::Arc;

use flechette_core::conformance::check_all;
use flechette_core::storage::{FileCalls, FileValues, MemoryCalls, MemoryValues};

#[tokio::test]
async fn memory_storage_conforms() {
    check_all(Arc::new(MemoryValues::new()), Arc::new(MemoryCalls::new())).await;
}

#[tokio::test]
async fn file_storage_conforms() {
    let dir = tempfile::tempdir().unwrap();
    check_all(
        Arc::new(FileValues::open(dir.path().join("values")).unwrap()),
        Arc::new(FileCalls::open(dir.path().join("calls")).unwrap()),
    )
    .await;
}
