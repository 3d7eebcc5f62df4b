//! The checks of the bounds: expiry and capacity honoured by storage, `gc`
//! beside writers, the values of replaced calls, and their helpers.

use std::sync::Arc;

use crate::{Cache, CallQuery, CallRecord, Digest, Lifespan, Metadata, Timestamp, digest};

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

/// A bound kept by the storage server itself (Redis's `maxmemory` with an
/// LFU or LRU policy), which may evict a value while a call that refers
/// to it stays: writing `calls` calls (each with a 1 KiB result, several
/// times the server's bound) evicts some; a call read after every write
/// keeps its record, its result and its argument; any other call that
/// remains answers its result and argument rightly or as missing, never
/// with other bytes.
pub async fn check_capacity_kept_by_server(cache: Cache, calls: u64) {
    let kept: Vec<Digest> = (0..4u64).map(kilobyte_key).collect();
    for i in 0..calls {
        save_kilobyte_call(&cache, i).await;
        if i < 4 {
            continue;
        }
        for key in &kept {
            assert!(
                cache.load(key).await.unwrap().is_some(),
                "a call read after every write is not evicted"
            );
        }
    }
    cache.flush().await;
    let mut whole = 0;
    for i in 0..calls {
        let Some(lazy) = cache.load(&kilobyte_key(i)).await.unwrap() else {
            assert!(i >= 4, "a call read after every write stays");
            continue;
        };
        let result = lazy.result::<Vec<u8>>().await;
        let argument = lazy.arguments().get::<u64>("x").await;
        if i < 4 {
            assert!(
                result.is_ok() && argument.is_ok(),
                "a kept call keeps its result and argument"
            );
        }
        match (result, argument) {
            (Ok(r), Ok(x)) => {
                assert_eq!((r, x), (kilobyte_record(i).1, i), "no other bytes");
                whole += 1;
            }
            (Ok(r), Err(_)) => assert_eq!(r, kilobyte_record(i).1, "no other bytes"),
            (Err(_), Ok(x)) => assert_eq!(x, i, "no other bytes"),
            (Err(_), Err(_)) => {}
        }
    }
    assert!(whole < calls, "over its bound, the server evicts");
    assert!(whole >= kept.len() as u64);
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
pub(super) async fn gc_now(cache: &Cache) -> crate::GcReport {
    let now = crate::GcOptions::new().grace(std::time::Duration::ZERO);
    cache.gc_with(now, |_| {}).await.unwrap()
}
