//! Point lookups read the same inline (on the calling thread) and on the
//! blocking pool.

use flechette_core::digest;
use flechette_core::storage::{CallStorage, ValueStorage};
use flechette_sqlite::Sqlite;

#[tokio::test(flavor = "current_thread")]
async fn lookups_read_the_same_with_or_without_inline_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let record = flechette_core::conformance::sample_record("f", "m", 7, &[]);
    let key = record.key();
    let stored = bytes::Bytes::from(flechette_core::encoding::to_vec(&"stored").unwrap());
    let result = digest(&"stored").unwrap();
    let mut record = record;
    record.result = result;
    let db = Sqlite::open(&path).unwrap();
    db.values().put(&result, stored.clone()).await.unwrap();
    db.calls().put(&key, &record).await.unwrap();
    for inline in [true, false] {
        let db = Sqlite::open(&path).unwrap().inline_lookups(inline);
        let (found, bytes) = db.calls().get_with_result(&key).await.unwrap().unwrap();
        assert_eq!(found, record);
        assert_eq!(bytes, Some(stored.clone()));
        assert!(db.values().contains(&result).await.unwrap());
        assert_eq!(db.calls().get(&key).await.unwrap(), Some(record.clone()));
    }
}
