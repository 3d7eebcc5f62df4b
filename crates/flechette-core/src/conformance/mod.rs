//! The storage conformance suite: one set of checks every backend passes.
//!
//! Backends run it from their tests (feature `conformance`):
//!
//! ```ignore
//! flechette_core::conformance::check_all(values, calls).await;
//! ```
//!
//! Each check panics, with a message naming the broken rule, when the
//! storage does not behave as the traits document. Give each run empty
//! storage.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::storage::{CallStorage, ValueStorage};
use crate::{
    Cache, CallQuery, CallRecord, D, Digest, DigestPrefix, Lifespan, Metadata, Runtime, Timestamp,
    digest, encoding,
};

mod bounds;

use bounds::gc_now;
pub use bounds::{
    check_capacity, check_capacity_kept_by_server, check_expiry, check_gc_while_writing,
    check_replaced_call_values, lifespan_record, save_lifespan_call,
};

/// Runs every check on empty value and call storage.
pub async fn check_all(values: Arc<dyn ValueStorage>, calls: Arc<dyn CallStorage>) {
    check_values(values.as_ref()).await;
    check_calls(calls.as_ref()).await;
    check_damaged_result(values.as_ref(), calls.as_ref()).await;
    check_cache(Cache::from_storage(values, calls)).await;
}

/// A result stored with bytes that do not match its digest never comes
/// back with the call from `get_with_result`: callers trust those bytes
/// without hashing them.
pub async fn check_damaged_result(values: &dyn ValueStorage, calls: &dyn CallStorage) {
    let (result, _) = encoded(&"the right result");
    let (_, wrong) = encoded(&"other bytes");
    values.put(&result, wrong).await.unwrap();
    let mut record = sample_record("damaged", "conformance", 1, &[]);
    record.result = result;
    let key = record.key();
    calls.put(&key, &record).await.unwrap();
    let (found, bytes) = calls
        .get_with_result(&key)
        .await
        .unwrap()
        .expect("the record is there");
    assert_eq!(found, record);
    if let Some(bytes) = bytes {
        assert_eq!(
            Digest::of_encoded(&bytes),
            result,
            "get_with_result returns only bytes that match the result digest"
        );
    }
    calls.remove(&key).await.unwrap();
    values.remove(&result).await.unwrap();
}

fn encoded(value: &impl serde::Serialize) -> (Digest, Bytes) {
    let bytes = encoding::to_vec(value).expect("test values encode");
    (Digest::of_encoded(&bytes), Bytes::from(bytes))
}

/// Values: put, get, contains, remove, list by prefix, large values,
/// idempotent puts.
pub async fn check_values(values: &dyn ValueStorage) {
    let (d, bytes) = encoded(&"conformance value");
    assert_eq!(
        values.get(&d).await.unwrap(),
        None,
        "a missing value is None"
    );
    assert!(
        !values.contains(&d).await.unwrap(),
        "a missing value is not contained"
    );
    assert!(
        !values.remove(&d).await.unwrap(),
        "removing a missing value is false"
    );
    values.put(&d, bytes.clone()).await.unwrap();
    values.put(&d, bytes.clone()).await.unwrap();
    assert_eq!(
        values.get(&d).await.unwrap(),
        Some(bytes.clone()),
        "a value reads back"
    );
    assert!(values.contains(&d).await.unwrap());

    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let (big_d, big_bytes) = encoded(&big);
    values.put(&big_d, big_bytes.clone()).await.unwrap();
    assert_eq!(
        values.get(&big_d).await.unwrap(),
        Some(big_bytes),
        "a 1 MiB value reads back"
    );

    let mut all = values.list(None).await.unwrap();
    all.sort();
    let mut want = vec![d, big_d];
    want.sort();
    assert_eq!(all, want, "list(None) lists every value once");
    let prefix = DigestPrefix::from(d);
    let short: DigestPrefix = D(&d.to_hex()[..6]).unwrap();
    assert_eq!(
        values.list(Some(&prefix)).await.unwrap(),
        [d],
        "a full prefix lists one"
    );
    assert!(
        values.list(Some(&short)).await.unwrap().contains(&d),
        "a short prefix lists it"
    );

    assert!(values.remove(&d).await.unwrap());
    assert_eq!(
        values.get(&d).await.unwrap(),
        None,
        "a removed value is gone"
    );
    assert!(values.remove(&big_d).await.unwrap());
    assert!(values.list(None).await.unwrap().is_empty());
}

/// A record of `name(x = arg)` with tags, full metadata and an open map.
pub fn sample_record(name: &str, module: &str, arg: u64, tags: &[(&str, &str)]) -> CallRecord {
    let start = Timestamp(1_700_000_000_000_000 + i64::try_from(arg).unwrap_or(0));
    CallRecord {
        name: name.into(),
        module: module.into(),
        version: arg.is_multiple_of(2).then(|| "2".to_owned()),
        arguments: vec![
            ("x".into(), digest(&arg).expect("encodes")),
            (
                "label".into(),
                digest(&format!("label-{arg}")).expect("encodes"),
            ),
        ],
        result: digest(&(arg * 10)).expect("encodes"),
        metadata: Metadata {
            runtime: Some(Runtime {
                timestart: start,
                timestop: start.plus(std::time::Duration::from_millis(5)),
                walltime: 0.005,
            }),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            lifespan: Some(Lifespan {
                created: start,
                update_after: Some(start.plus(std::time::Duration::from_secs(60))),
                expire_after: None,
            }),
            extra: BTreeMap::from([("host".to_owned(), serde_json::json!({"id": arg}))]),
        },
    }
}

async fn keys(calls: &dyn CallStorage, query: &CallQuery) -> Vec<Digest> {
    let mut found: Vec<Digest> = calls
        .query(query)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, record)| {
            assert_eq!(key, record.key(), "query returns each record with its key");
            key
        })
        .collect();
    found.sort();
    found
}

/// Calls: put, get, remove, list, and every filter of [`CallQuery`].
pub async fn check_calls(calls: &dyn CallStorage) {
    let records = [
        sample_record("f", "m", 1, &[("project", "p1")]),
        sample_record("f", "m", 2, &[("project", "p2"), ("category", "x")]),
        sample_record("g", "m", 3, &[]),
        sample_record("f", "other", 4, &[("project", "p1")]),
    ];
    let key = |i: usize| records[i].key();
    assert_eq!(
        calls.get(&key(0)).await.unwrap(),
        None,
        "a missing call is None"
    );
    for r in &records {
        calls.put(&r.key(), r).await.unwrap();
    }
    calls.put(&key(0), &records[0]).await.unwrap();
    for r in &records {
        assert_eq!(
            calls.get(&r.key()).await.unwrap().as_ref(),
            Some(r),
            "a record reads back whole"
        );
    }
    let mut listed = calls.list(None).await.unwrap();
    listed.sort();
    let mut all: Vec<Digest> = (0..4).map(key).collect();
    all.sort();
    assert_eq!(listed, all, "list(None) lists every call once");
    let short = D(&key(2).to_hex()[..8]).unwrap();
    assert!(calls.list(Some(&short)).await.unwrap().contains(&key(2)));

    let sorted = |mut v: Vec<Digest>| {
        v.sort();
        v
    };
    let q = CallQuery::new;
    assert_eq!(keys(calls, &q()).await, all, "an empty query matches all");
    assert_eq!(
        keys(calls, &q().name("f")).await,
        sorted(vec![key(0), key(1), key(3)])
    );
    assert_eq!(
        keys(calls, &q().name("f").module("m")).await,
        sorted(vec![key(0), key(1)])
    );
    assert_eq!(
        keys(calls, &q().version("2")).await,
        sorted(vec![key(1), key(3)])
    );
    assert_eq!(
        keys(calls, &q().argument("x", &3u64)).await,
        [key(2)],
        "argument by value"
    );
    let arg_prefix = D(&digest(&2u64).unwrap().to_hex()[..10]).unwrap();
    assert_eq!(
        keys(calls, &q().argument_digest("x", arg_prefix)).await,
        [key(1)],
        "argument by short digest"
    );
    assert_eq!(
        keys(calls, &q().argument("label", &"label-4")).await,
        [key(3)]
    );
    assert!(keys(calls, &q().argument("nope", &1u64)).await.is_empty());
    assert_eq!(
        keys(calls, &q().result(&30u64)).await,
        [key(2)],
        "result by value"
    );
    assert_eq!(
        keys(calls, &q().has_tag("project")).await,
        sorted(vec![key(0), key(1), key(3)])
    );
    assert_eq!(keys(calls, &q().has_tag("category")).await, [key(1)]);
    assert_eq!(
        keys(calls, &q().tag("project", "p1")).await,
        sorted(vec![key(0), key(3)])
    );
    assert_eq!(
        keys(calls, &q().tag("project", "p1").module("m")).await,
        [key(0)]
    );
    assert!(keys(calls, &q().tag("project", "p9")).await.is_empty());
    assert_eq!(keys(calls, &q().has_metadata("host")).await, all);
    assert_eq!(
        keys(calls, &q().metadata("host", serde_json::json!({"id": 3}))).await,
        [key(2)]
    );
    assert_eq!(
        keys(calls, &q().has_metadata("tags").name("g")).await,
        Vec::<Digest>::new()
    );

    assert!(calls.remove(&key(0)).await.unwrap());
    assert!(
        !calls.remove(&key(0)).await.unwrap(),
        "removing twice is false"
    );
    assert_eq!(calls.get(&key(0)).await.unwrap(), None);
    assert_eq!(
        keys(calls, &q().tag("project", "p1")).await,
        [key(3)],
        "a removed call leaves the indexes"
    );
    for i in 1..4 {
        calls.remove(&key(i)).await.unwrap();
    }
    assert!(calls.list(None).await.unwrap().is_empty());
}

/// A cache over the storage: save and load lazily, expand and shrink,
/// contains, evict, gc.
pub async fn check_cache(cache: Cache) {
    let arg = cache.save_value(&7u64).await.unwrap();
    let result = cache.save_value(&"seven").await.unwrap();
    let loose = cache.save_value(&"loose").await.unwrap();
    let record = CallRecord {
        name: "h".into(),
        module: "conformance".into(),
        version: None,
        arguments: vec![("x".into(), arg)],
        result,
        metadata: Metadata::default(),
    };
    let key = cache.save_record(&record).await.unwrap();
    let lazy = cache.load(&key).await.unwrap().expect("saved");
    assert_eq!(lazy.result::<String>().await.unwrap(), "seven");
    assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), 7);
    assert!(cache.contains(&key).await.unwrap());
    let (found, bytes) = cache.load_with_result(&key).await.unwrap().expect("saved");
    assert_eq!(found, record, "the record comes back with its result");
    assert_eq!(
        encoding::from_slice::<String>(&bytes.expect("the result is there")).unwrap(),
        "seven"
    );
    for d in [key, arg, result] {
        let short = cache.shrink(&d).await.unwrap();
        assert_eq!(
            cache.expand(&short).await.unwrap(),
            d,
            "shrink then expand gives the digest back"
        );
    }
    // Without a grace period: the loose value was written just now.
    let report = gc_now(&cache).await;
    assert_eq!(
        (report.kept, report.removed),
        (2, 1),
        "gc removes only the loose value"
    );
    assert!(cache.load_encoded(&loose).await.unwrap().is_none());
    assert!(cache.evict(&key).await.unwrap());
    assert!(!cache.contains(&key).await.unwrap());
}
