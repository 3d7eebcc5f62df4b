//! SQLite storage: the conformance suite, query pushdown, damaged rows, and
//! two processes on one file.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flechette_core::conformance::{check_all, sample_record};
use flechette_core::storage::CallStorage;
use flechette_core::{CallQuery, call_key, digest};
use flechette_sqlite::Sqlite;

#[tokio::test]
async fn sqlite_storage_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let db = Sqlite::open(dir.path().join("c.sqlite")).unwrap();
    check_all(Arc::new(db.values()), Arc::new(db.calls())).await;
}

#[tokio::test]
async fn in_memory_sqlite_conforms() {
    let db = Sqlite::memory().unwrap();
    check_all(Arc::new(db.values()), Arc::new(db.calls())).await;
}

#[tokio::test]
async fn a_query_by_tag_value_is_pushed_down_to_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = Sqlite::open(dir.path().join("big.sqlite")).unwrap();
    let records: Vec<_> = (0..100_000u64)
        .map(|i| {
            let project = format!("p{}", i % 1_000);
            sample_record("job", "pipeline", i, &[("project", project.as_str())])
        })
        .collect();
    db.put_calls(records).await.unwrap();

    let q = CallQuery::new().tag("project", "p7");
    let plan = db.explain(&q).await.unwrap();
    assert!(
        plan.contains("tags_by_value"),
        "the tag index is used:\n{plan}"
    );
    assert!(
        !plan.contains("SCAN calls"),
        "no full scan of the calls:\n{plan}"
    );
    let found = db.calls().query(&q).await.unwrap();
    assert_eq!(found.len(), 100);
    assert!(
        found
            .iter()
            .all(|(_, r)| r.metadata.tags["project"] == "p7")
    );

    let by_arg = CallQuery::new().argument("x", &4_242u64);
    let plan = db.explain(&by_arg).await.unwrap();
    assert!(
        plan.contains("arguments_by_value"),
        "the argument index is used:\n{plan}"
    );
    assert_eq!(db.calls().query(&by_arg).await.unwrap().len(), 1);
    let by_name = CallQuery::new().name("job").module("pipeline").version("2");
    assert!(
        db.explain(&by_name)
            .await
            .unwrap()
            .contains("calls_by_name")
    );
}

#[tokio::test]
async fn a_damaged_record_reads_as_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.sqlite");
    let db = Sqlite::open(&path).unwrap();
    let record = sample_record("f", "m", 1, &[]);
    let key = record.key();
    db.calls().put(&key, &record).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE calls SET record = x'c1ff00' WHERE key = ?1",
        [key.to_hex()],
    )
    .unwrap();
    assert_eq!(db.calls().get(&key).await.unwrap(), None);
    assert!(
        db.calls()
            .query(&CallQuery::new())
            .await
            .unwrap()
            .is_empty()
    );

    use flechette_core::storage::ValueStorage;
    let cache = flechette_core::Cache::new(db.values(), db.calls());
    let d = cache.save_value(&"intact").await.unwrap();
    conn.execute(
        "UPDATE vals SET bytes = x'a3616263' WHERE digest = ?1",
        [d.to_hex()],
    )
    .unwrap();
    assert_eq!(
        db.values().get(&d).await.unwrap(),
        None,
        "bytes that do not match the digest"
    );
    assert!(cache.load_value::<String>(&d).await.is_err());
    // The damaged bytes are gone, so saving the value again repairs it.
    assert!(!db.values().contains(&d).await.unwrap());
    assert_eq!(cache.save_value(&"intact").await.unwrap(), d);
    assert_eq!(cache.load_value::<String>(&d).await.unwrap(), "intact");
}

const CHILD_DB: &str = "FLECHETTE_SQLITE_CHILD_DB";
const CHILD_ID: &str = "FLECHETTE_SQLITE_CHILD_ID";
const KEYS: u64 = 200;

fn key_of(i: u64) -> flechette_core::Digest {
    call_key(
        "shared",
        "sqlite_tests",
        None,
        &[("x", digest(&i).unwrap())],
    )
}

async fn child(path: &str, id: u64) {
    let cache = flechette_sqlite::open(path).unwrap();
    for i in (id * KEYS)..((id + 1) * KEYS) {
        let record = flechette_core::CallRecord {
            name: "shared".into(),
            module: "sqlite_tests".into(),
            version: None,
            arguments: vec![("x".into(), cache.save_value(&i).await.unwrap())],
            result: cache.save_value(&(i * 2)).await.unwrap(),
            metadata: Default::default(),
        };
        cache.save_record(&record).await.unwrap();
    }
    let other = 1 - id;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut seen = 0;
        for i in (other * KEYS)..((other + 1) * KEYS) {
            if let Some(call) = cache.load(&key_of(i)).await.unwrap() {
                assert_eq!(call.result::<u64>().await.unwrap(), i * 2);
                seen += 1;
            }
        }
        if seen == KEYS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "process {id} saw {seen} of the other's calls"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn two_processes_share_one_sqlite_file() {
    if let (Ok(path), Ok(id)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ID)) {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(child(&path, id.parse().unwrap()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite");
    drop(Sqlite::open(&path).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "two_processes_share_one_sqlite_file",
                    "--exact",
                    "--nocapture",
                ])
                .env(CHILD_DB, &path)
                .env(CHILD_ID, id.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a child failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cache = flechette_sqlite::open(&path).unwrap();
        assert_eq!(
            cache.query(&CallQuery::new()).await.unwrap().len() as u64,
            2 * KEYS
        );
    });
}
