//! A SQLite file's bounds: expiry by read and by sweep, eviction by least
//! recent read within `max_bytes`, values that go with the last call
//! referring to them (never one claimed since), and files written before
//! the bounds.

use std::time::Duration;

use flechette_core::conformance::{
    check_capacity, check_expiry, check_gc_while_writing, check_replaced_call_values,
    lifespan_record, save_lifespan_call,
};
use flechette_core::encoding::to_vec;
use flechette_core::storage::{CallStorage, ValueStorage, encode_record};
use flechette_core::{Cache, CallRecord, Digest};
use flechette_sqlite::Sqlite;

/// How many calls and values the file holds.
async fn counts(db: &Sqlite) -> (usize, usize) {
    let calls = db.calls().list(None).await.unwrap().len();
    let values = db.values().list(None).await.unwrap().len();
    (calls, values)
}

fn unswept(dir: &tempfile::TempDir) -> Sqlite {
    Sqlite::builder(dir.path().join("c.sqlite"))
        .sweep_interval(None)
        .open()
        .unwrap()
}

#[tokio::test]
async fn sqlite_files_honour_expiry_and_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let db = unswept(&dir);
    check_expiry(Cache::new(db.values(), db.calls())).await;
    let max_bytes = 512 << 10;
    let db = Sqlite::builder(dir.path().join("bounded.sqlite"))
        .max_bytes(max_bytes)
        .open()
        .unwrap();
    check_capacity(Cache::new(db.values(), db.calls()), max_bytes as usize).await;
    assert!(db.used_bytes().await.unwrap() <= max_bytes);
}

#[tokio::test]
async fn in_memory_sqlite_honours_expiry_and_capacity() {
    let db = Sqlite::memory_builder().open().unwrap();
    check_expiry(Cache::new(db.values(), db.calls())).await;
    let max_bytes = 512 << 10;
    let db = Sqlite::memory_builder()
        .max_bytes(max_bytes)
        .open()
        .unwrap();
    check_capacity(Cache::new(db.values(), db.calls()), max_bytes as usize).await;
}

#[tokio::test(start_paused = true)]
async fn an_expired_call_is_removed_when_read_with_the_values_only_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let db = unswept(&dir);
    let cache = Cache::new(db.values(), db.calls());
    let short = save_lifespan_call(&cache, "short", 1, "one", Some(Duration::from_secs(10))).await;
    let long = save_lifespan_call(&cache, "long", 1, "uno", Some(Duration::from_secs(100))).await;
    cache.flush().await;
    assert_eq!(counts(&db).await, (2, 3));
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(cache.load(&short).await.unwrap().is_none());
    assert_eq!(
        counts(&db).await,
        (1, 2),
        "the read removed the call and its result; the shared argument stayed"
    );
    let lazy = cache.load(&long).await.unwrap().expect("still fresh");
    assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), 1);
    tokio::time::advance(Duration::from_secs(90)).await;
    assert!(db.calls().get_with_result(&long).await.unwrap().is_none());
    assert_eq!(counts(&db).await, (0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_periodic_sweep_removes_expired_calls_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = Sqlite::builder(dir.path().join("c.sqlite"))
        .sweep_interval(Some(Duration::from_secs(30)))
        .sweep_budget(64)
        .open()
        .unwrap();
    let cache = Cache::new(db.values(), db.calls());
    for i in 0..100 {
        save_lifespan_call(
            &cache,
            "f",
            i,
            &format!("r{i}"),
            Some(Duration::from_secs(10)),
        )
        .await;
    }
    save_lifespan_call(&cache, "kept", 7, "forever", None).await;
    cache.flush().await;
    assert_eq!(counts(&db).await, (101, 201));
    // Two sweeps of at most 64 calls each, after 30 s and after 60 s.
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(counts(&db).await.0, 101, "no sweep before 30 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    db.sweeps_finished(1).await;
    assert_eq!(counts(&db).await.0, 37, "64 expired calls removed");
    tokio::time::advance(Duration::from_secs(28)).await;
    assert_eq!(counts(&db).await.0, 37, "no sweep between");
    tokio::time::advance(Duration::from_secs(2)).await;
    db.sweeps_finished(2).await;
    assert_eq!(counts(&db).await.0, 1, "the second sweep removed the rest");
    assert_eq!(counts(&db).await, (1, 2), "the kept call and its values");
    drop((cache, db));
}

#[tokio::test(start_paused = true)]
async fn a_value_written_again_after_a_call_was_stored_outlives_that_call() {
    // A writer between saving its values and its record has claimed a
    // value an expiring call also refers to: removing the call leaves it.
    let dir = tempfile::tempdir().unwrap();
    let db = unswept(&dir);
    let cache = Cache::new(db.values(), db.calls());
    let key = save_lifespan_call(
        &cache,
        "old",
        3,
        "shared result",
        Some(Duration::from_secs(5)),
    )
    .await;
    cache.flush().await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let claimed = cache.save_value("shared result").await.unwrap();
    cache.flush().await;
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
async fn eviction_keeps_the_calls_read_and_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes: u64 = 2 << 20;
    let db = Sqlite::builder(dir.path().join("c.sqlite"))
        .max_bytes(max_bytes)
        .open()
        .unwrap();
    let cache = Cache::new(db.values(), db.calls());
    let text = "x".repeat(2_000);
    let mut hot = Vec::new();
    for i in 0..8 {
        hot.push(save_lifespan_call(&cache, "hot", i, &format!("{i}{text}"), None).await);
    }
    for i in 0..4_000u64 {
        save_lifespan_call(&cache, "cold", i, &format!("{i}{text}"), None).await;
        if i % 50 == 0 {
            cache.flush().await;
            for key in &hot {
                assert!(cache.load(key).await.unwrap().is_some(), "at {i}");
            }
        }
    }
    cache.flush().await;
    let used = db.used_bytes().await.unwrap();
    assert!(used <= max_bytes, "{used} bytes in use");
    let (calls, _) = counts(&db).await;
    assert!((100..4_008).contains(&calls), "{calls} calls kept");
    for key in db.calls().list(None).await.unwrap() {
        let lazy = cache.load(&key).await.unwrap().expect("listed");
        lazy.result::<String>().await.unwrap();
        lazy.arguments().get::<u64>("x").await.unwrap();
    }
}

/// A record with its values, encoded.
type Stored = (CallRecord, Vec<(Digest, Vec<u8>)>);

/// A file as versions before the bounds wrote it: no times, no
/// `expire_after` column.
fn old_file(path: &std::path::Path, records: &[Stored]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE vals (digest TEXT PRIMARY KEY, bytes BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE calls (key TEXT PRIMARY KEY, name TEXT NOT NULL, module TEXT NOT NULL,
            version TEXT, result TEXT NOT NULL, has_runtime INTEGER NOT NULL,
            has_lifespan INTEGER NOT NULL, record BLOB NOT NULL) WITHOUT ROWID;
         CREATE TABLE arguments (key TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL,
            PRIMARY KEY (key, name)) WITHOUT ROWID;
         CREATE INDEX arguments_by_digest ON arguments (name, digest);",
    )
    .unwrap();
    for (record, values) in records {
        for (digest, bytes) in values {
            conn.execute(
                "INSERT OR IGNORE INTO vals VALUES (?1, ?2)",
                rusqlite::params![digest.to_hex(), bytes],
            )
            .unwrap();
        }
        let key = record.key().to_hex();
        conn.execute(
            "INSERT INTO calls VALUES (?1, ?2, ?3, NULL, ?4, 0, ?5, ?6)",
            rusqlite::params![
                key,
                record.name,
                record.module,
                record.result.to_hex(),
                record.metadata.lifespan.is_some(),
                encode_record(record).unwrap()
            ],
        )
        .unwrap();
        for (name, digest) in &record.arguments {
            conn.execute(
                "INSERT INTO arguments VALUES (?1, ?2, ?3)",
                rusqlite::params![key, name, digest.to_hex()],
            )
            .unwrap();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_file_written_before_the_bounds_gets_them_and_keeps_its_calls() {
    let values = |arg: u64, result: &str| {
        vec![
            (flechette_core::digest(&arg).unwrap(), to_vec(&arg).unwrap()),
            (
                flechette_core::digest(&result).unwrap(),
                to_vec(&result).unwrap(),
            ),
        ]
    };
    let dying = lifespan_record(
        "dying",
        &flechette_core::digest(&1u64).unwrap(),
        &flechette_core::digest(&"soon").unwrap(),
        Some(Duration::from_secs(10)),
    );
    let lasting = lifespan_record(
        "lasting",
        &flechette_core::digest(&2u64).unwrap(),
        &flechette_core::digest(&"always").unwrap(),
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    old_file(
        &path,
        &[
            (dying.clone(), values(1, "soon")),
            (lasting.clone(), values(2, "always")),
        ],
    );
    let db = Sqlite::builder(&path).sweep_interval(None).open().unwrap();
    let cache = Cache::new(db.values(), db.calls());
    for r in [&dying, &lasting] {
        let lazy = cache.load(&r.key()).await.unwrap().expect("kept");
        lazy.result::<String>().await.unwrap();
    }
    let by_arg = flechette_core::CallQuery::new().argument("x", &2u64);
    assert_eq!(cache.query(&by_arg).await.unwrap().len(), 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    let report = cache.sweep(100).await.unwrap();
    assert_eq!(
        (report.expired, report.values),
        (1, 2),
        "the expiry of an old record was read from it"
    );
    assert!(cache.load(&lasting.key()).await.unwrap().is_some());
    drop((cache, db));
    // Opened again, nothing is migrated twice.
    let db = Sqlite::builder(&path).sweep_interval(None).open().unwrap();
    assert_eq!(counts(&db).await, (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_beside_eight_writers_loses_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    check_gc_while_writing(100, || {
        n += 1;
        flechette_sqlite::open(dir.path().join(format!("{n}.sqlite"))).unwrap()
    })
    .await;
}

#[tokio::test]
async fn a_call_stored_again_takes_its_old_result_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = unswept(&dir);
    check_replaced_call_values(Cache::new(db.values(), db.calls())).await;
}

#[tokio::test(start_paused = true)]
async fn over_its_bound_a_file_takes_old_values_no_call_refers_to_before_calls() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes: u64 = 512 << 10;
    let db = Sqlite::builder(dir.path().join("c.sqlite"))
        .max_bytes(max_bytes)
        .sweep_interval(None)
        .open()
        .unwrap();
    let cache = Cache::new(db.values(), db.calls());
    for i in 0..120u64 {
        cache
            .save_value(&vec![u8::try_from(i).unwrap(); 5_000])
            .await
            .unwrap();
    }
    // Older than gc's grace period: nobody is about to refer to them.
    tokio::time::advance(std::time::Duration::from_secs(301)).await;
    let mut calls = Vec::new();
    for i in 0..8u64 {
        calls.push(save_lifespan_call(&cache, "kept", i, &format!("r{i}"), None).await);
    }
    cache.flush().await;
    for key in &calls {
        assert!(cache.load(key).await.unwrap().is_some(), "the calls stay");
    }
    assert!(db.used_bytes().await.unwrap() <= max_bytes);
}
