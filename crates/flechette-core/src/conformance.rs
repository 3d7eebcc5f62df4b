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

/// A record of `name(x = arg)` whose result is `result`, expiring at
/// `expire_after`.
fn expiring(name: &str, arg: Digest, result: Digest, expire_after: Timestamp) -> CallRecord {
    CallRecord {
        name: name.into(),
        module: "conformance".into(),
        version: None,
        arguments: vec![("x".into(), arg)],
        result,
        metadata: Metadata {
            lifespan: Some(Lifespan {
                created: Timestamp(expire_after.0 - 1_000_000),
                update_after: None,
                expire_after: Some(expire_after),
            }),
            ..Metadata::default()
        },
    }
}

/// Expiry honoured by storage: a call past its `expire_after` reads as
/// absent and is gone after a sweep, while a live call and every value it
/// refers to stay — also a value it shares with an expired call. Give it a
/// cache of one level.
pub async fn check_expiry(cache: Cache) {
    let now = crate::clock::now();
    let past = Timestamp(now.0 - 1_000_000);
    let future = now.plus(std::time::Duration::from_secs(3_600));
    let shared = cache.save_value(&"shared argument").await.unwrap();
    let live_result = cache.save_value(&"live result").await.unwrap();
    let dead_result = cache.save_value(&"dead result").await.unwrap();
    let live = cache
        .save_record(&expiring("live", shared, live_result, future))
        .await
        .unwrap();
    let swept = cache
        .save_record(&expiring("swept", shared, dead_result, past))
        .await
        .unwrap();
    let read = cache
        .save_record(&expiring("read", shared, dead_result, past))
        .await
        .unwrap();
    assert!(
        cache.load(&read).await.unwrap().is_none(),
        "an expired call reads as absent"
    );
    // A backend that expires by a time to live (Redis) has nothing left to
    // sweep; the others remove it now (their own tests count what).
    let report = cache.sweep(1_000).await.unwrap();
    assert!(
        report.expired <= 1,
        "only the unread expired call: {report:?}"
    );
    for key in [swept, read] {
        assert!(
            cache.load(&key).await.unwrap().is_none(),
            "an expired call is gone after a sweep"
        );
    }
    let found: Vec<Digest> = cache
        .query(&CallQuery::new())
        .await
        .unwrap()
        .into_iter()
        .map(|lazy| lazy.record().key())
        .collect();
    assert_eq!(found, [live], "only the live call is left");
    let lazy = cache
        .load(&live)
        .await
        .unwrap()
        .expect("the live call stays");
    assert_eq!(lazy.result::<String>().await.unwrap(), "live result");
    assert_eq!(
        lazy.arguments().get::<String>("x").await.unwrap(),
        "shared argument",
        "a value a live call shares with expired ones stays"
    );
    assert!(cache.evict(&live).await.unwrap());
}

/// A bound honoured by storage: writing calls of about four times
/// `max_bytes` (each with a 1 KiB result) evicts some, never one of the
/// calls read after every write, and never a value a remaining call refers
/// to. Give it a cache of one level bounded by `max_bytes` (at least
/// 64 KiB).
pub async fn check_capacity(cache: Cache, max_bytes: usize) {
    let kept: Vec<Digest> = (0..4u64).map(kilobyte_key).collect();
    let mut keys = Vec::new();
    for i in 0..4u64 {
        keys.push(save_kilobyte_call(&cache, i).await);
    }
    assert_eq!(keys, kept);
    let calls = 4 * max_bytes / 1024;
    for i in 4..calls as u64 {
        keys.push(save_kilobyte_call(&cache, i).await);
        for key in &kept {
            assert!(
                cache.load(key).await.unwrap().is_some(),
                "a call read after every write is not evicted"
            );
        }
    }
    cache.flush().await;
    let mut left = 0;
    for key in &keys {
        let Some(lazy) = cache.load(key).await.unwrap() else {
            continue;
        };
        left += 1;
        let result: Vec<u8> = lazy.result().await.unwrap();
        assert_eq!(result.len(), 1024, "a remaining call keeps its result");
        lazy.arguments().get::<u64>("x").await.unwrap();
    }
    assert!(left < keys.len(), "over its bound, storage evicts calls");
    assert!(left >= kept.len());
}

fn kilobyte_record(i: u64) -> (CallRecord, Vec<u8>) {
    let result = vec![u8::try_from(i % 251).unwrap_or(0); 1024];
    let record = CallRecord {
        name: "kilobyte".into(),
        module: "conformance".into(),
        version: None,
        arguments: vec![("x".into(), digest(&i).expect("encodes"))],
        result: digest(&result).expect("encodes"),
        metadata: Metadata::default(),
    };
    (record, result)
}

fn kilobyte_key(i: u64) -> Digest {
    kilobyte_record(i).0.key()
}

async fn save_kilobyte_call(cache: &Cache, i: u64) -> Digest {
    let (record, result) = kilobyte_record(i);
    cache.save_value(&i).await.unwrap();
    cache.save_value(&result).await.unwrap();
    cache.save_record(&record).await.unwrap()
}

/// A record of `name(x = arg)` in module `bounds` whose result is
/// `result`, created now and expiring `expire_in` from now (never for
/// `None`): for tests of expiry.
pub fn lifespan_record(
    name: &str,
    arg: &Digest,
    result: &Digest,
    expire_in: Option<std::time::Duration>,
) -> CallRecord {
    let now = crate::clock::now();
    CallRecord {
        name: name.into(),
        module: "bounds".into(),
        version: None,
        arguments: vec![("x".into(), *arg)],
        result: *result,
        metadata: Metadata {
            lifespan: expire_in.map(|d| Lifespan {
                created: now,
                update_after: None,
                expire_after: Some(now.plus(d)),
            }),
            ..Metadata::default()
        },
    }
}

/// Saves `arg` and `result` and a [`lifespan_record`] of them; its key.
pub async fn save_lifespan_call(
    cache: &Cache,
    name: &str,
    arg: u64,
    result: &str,
    expire_in: Option<std::time::Duration>,
) -> Digest {
    let a = cache.save_value(&arg).await.unwrap();
    let r = cache.save_value(result).await.unwrap();
    cache
        .save_record(&lifespan_record(name, &a, &r, expire_in))
        .await
        .unwrap()
}

/// Waits until `done` says so: for work a storage does on the blocking
/// pool by itself (a periodic sweep), which a paused test clock does not
/// wait for. Between looks the runtime runs its other tasks and this thread
/// sleeps a millisecond of real time (the paused clock stands still); after
/// 30 s of real time it panics with `what`.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..30_000 {
        if done().await {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("gave up waiting for {what}");
}

/// `gc` on a live cache: eight tasks write calls (values, a yield, then the
/// record, as a writer between values and record is) while `gc` runs again
/// and again; no value of a completed call is lost. Then a `gc` without a
/// grace period removes a value no record refers to. Repeated `rounds`
/// times, each on a fresh cache from `fresh`. Run it on a runtime with
/// several workers.
pub async fn check_gc_while_writing(rounds: usize, mut fresh: impl FnMut() -> Cache) {
    for round in 0..rounds {
        let cache = fresh();
        let orphan = cache.save_value(&"no record refers to it").await.unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let (cache, done) = (cache.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut runs = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
                    cache.gc().await.unwrap();
                    runs += 1;
                    tokio::task::yield_now().await;
                }
                runs
            })
        };
        let writers: Vec<_> = (0..8u64)
            .map(|w| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    let mut keys = Vec::new();
                    for i in 0..4u64 {
                        let arg = w * 100 + i;
                        let a = cache.save_value(&arg).await.unwrap();
                        let r = cache.save_value(&format!("result {arg}")).await.unwrap();
                        tokio::task::yield_now().await;
                        let record = lifespan_record("written", &a, &r, None);
                        keys.push((arg, cache.save_record(&record).await.unwrap()));
                    }
                    keys
                })
            })
            .collect();
        let mut keys = Vec::new();
        for writer in writers {
            keys.extend(writer.await.unwrap());
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(collector.await.unwrap() >= 1);
        for (arg, key) in &keys {
            let lazy = cache
                .load(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: call {arg} is there"));
            assert_eq!(
                lazy.result::<String>().await.unwrap(),
                format!("result {arg}"),
                "round {round}: the result of call {arg} survived gc"
            );
            assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), *arg);
        }
        // Some time passes, so that without a grace period the orphan is
        // older than the start of the gc even where write times are
        // milliseconds (Redis).
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let report = gc_now(&cache).await;
        assert_eq!((report.kept, report.removed), (64, 1), "round {round}");
        assert!(cache.load_encoded(&orphan).await.unwrap().is_none());
    }
}

/// A call stored again with another result (a refresh) takes the old
/// result with it, and keeps the argument both refer to. For backends that
/// know which calls refer to a value (memory, files, SQLite).
pub async fn check_replaced_call_values(cache: Cache) {
    let first = save_lifespan_call(&cache, "refreshed", 1, "old result", None).await;
    let second = save_lifespan_call(&cache, "refreshed", 1, "new result", None).await;
    assert_eq!(first, second, "one call, stored twice");
    cache.flush().await;
    let old = digest(&"old result").expect("encodes");
    assert!(
        cache.load_encoded(&old).await.unwrap().is_none(),
        "the replaced result went with the old record"
    );
    let lazy = cache.load(&second).await.unwrap().expect("stored");
    assert_eq!(lazy.result::<String>().await.unwrap(), "new result");
    assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), 1);
}

/// `gc` without a grace period.
async fn gc_now(cache: &Cache) -> crate::GcReport {
    let now = crate::GcOptions::new().grace(std::time::Duration::ZERO);
    cache.gc_with(now, |_| {}).await.unwrap()
}
