//! Redis storage against a real `redis-server` on 127.0.0.1, started here:
//! the conformance suite, and a server that dies and comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flechette_core::conformance::check_all;
use flechette_redis::Redis;

#[path = "support/server.rs"]
mod support;
use support::RedisServer as Server;

/// A plain connection, to look at or damage what the backend stored.
async fn raw(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_storage_conforms() {
    let server = Server::start();
    let redis = Redis::open(&server.url(), "conformance").unwrap();
    check_all(Arc::new(redis.values()), Arc::new(redis.calls())).await;
}

#[tokio::test]
async fn prefixes_keep_caches_apart() {
    let server = Server::start();
    let a = flechette_redis::open(&server.url(), "a").unwrap();
    let b = flechette_redis::open(&server.url(), "b").unwrap();
    let d = a.save_value(&"only in a").await.unwrap();
    assert!(a.contains_value(&d).await.unwrap());
    assert!(!b.contains_value(&d).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_returning_while_redis_is_down_and_it_is_used_again_after() {
    let mut server = Server::start();
    let cache = flechette_redis::open(&server.url(), "outage").unwrap();
    let make = || {
        flechette::CachedFn::builder("double")
            .args(["x"])
            .cache(cache.clone())
            .build(|(x,): (u64,)| async move { x * 2 })
    };
    let f = make();
    assert_eq!(f.call((1,)).await.unwrap(), 2);
    assert!(
        cache.contains(&f.digest(&(1,)).unwrap()).await.unwrap(),
        "stored in Redis"
    );

    server.kill();
    // Each operation on the dead connection ends in its timeout: no hang.
    assert_eq!(
        f.call((2,)).await.unwrap(),
        4,
        "computed locally while Redis is down"
    );
    assert_eq!(make().call((3,)).await.unwrap(), 6);
    assert!(
        cache.contains(&f.digest(&(1,)).unwrap()).await.is_err(),
        "the outage is an error, not a hang"
    );

    server.restart();
    // The connection manager reconnects on its own: a new call is stored again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let key = f.digest(&(4,)).unwrap();
    loop {
        make().call((4,)).await.unwrap();
        if cache.contains(&key).await.unwrap_or(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis was not used again after it came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_missing_one_key_compute_it_once() {
    let server = Server::start();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Three instances: each its own Redis client, in-process tier and flights.
    let instances: Vec<_> = (0..3)
        .map(|_| {
            let runs = runs.clone();
            let cache = flechette_redis::open(&server.url(), "single_flight").unwrap();
            flechette::CachedFn::builder("slow")
                .args(["x"])
                .cache(cache)
                .build(move |(x,): (u64,)| {
                    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        x * 10
                    }
                })
        })
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let calls: Vec<_> = instances
        .iter()
        .map(|f| {
            let (f, barrier) = (f.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                f.call((7,)).await.unwrap()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 70);
    }
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "exactly one computation across instances"
    );
    let waited: u64 = instances.iter().map(|f| f.stats().waited_across).sum();
    assert!(waited <= 2, "{waited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_another_instance_within_a_second() {
    let server = Server::start();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let instance = || {
        let runs = runs.clone();
        let cache = flechette_redis::open(&server.url(), "broadcast").unwrap();
        flechette::CachedFn::builder("price")
            .args(["item"])
            .cache(cache)
            .build(move |(item,): (u32,)| {
                let run = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { (item, run) }
            })
    };
    let (a, b) = (instance(), instance());
    let first = a.call((1,)).await.unwrap();
    assert_eq!(
        b.call((1,)).await.unwrap(),
        first,
        "b reads a's stored result"
    );
    b.call((2,)).await.unwrap();
    assert_eq!(b.hot_len(), 2);
    // Both instances listen once their subscriptions are in place.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, listeners): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("broadcast:invalidate")
            .query_async(&mut conn)
            .await
            .unwrap();
        if listeners >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the instances never subscribed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    a.invalidate((1,)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while b.hot_len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the invalidation did not reach b within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = b.call((1,)).await.unwrap();
    assert_ne!(again, first, "b recomputes: the value is gone everywhere");

    a.invalidate_all().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while b.hot_len() != 0 {
        assert!(
            Instant::now() < deadline,
            "invalidate_all did not reach b within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stores the call `m::f() = "forty-two"`; its key and record.
async fn store_forty_two(
    cache: &flechette_core::Cache,
) -> (flechette_core::Digest, flechette_core::CallRecord) {
    let result = cache.save_value(&"forty-two").await.unwrap();
    let record = flechette_core::CallRecord {
        name: "f".into(),
        module: "m".into(),
        version: None,
        arguments: vec![],
        result,
        metadata: Default::default(),
    };
    (cache.save_record(&record).await.unwrap(), record)
}

#[tokio::test]
async fn a_lookup_returns_the_record_and_its_result_together() {
    use flechette_core::storage::{CallStorage, ValueStorage};
    let server = Server::start();
    let redis = Redis::open(&server.url(), "lookup").unwrap();
    let cache = flechette_core::Cache::new(redis.values(), redis.calls());
    let (key, record) = store_forty_two(&cache).await;
    let (found, bytes) = redis.calls().get_with_result(&key).await.unwrap().unwrap();
    assert_eq!(found, record);
    let bytes = bytes.expect("the result came with the record");
    assert_eq!(
        flechette_core::encoding::from_slice::<String>(&bytes).unwrap(),
        "forty-two"
    );
    assert_eq!(
        Some(bytes),
        redis.values().get(&record.result).await.unwrap()
    );

    // Redis forgets its scripts on a restart or a flush: the lookup loads
    // its script again.
    let mut raw = raw(&server).await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let (again, _) = redis.calls().get_with_result(&key).await.unwrap().unwrap();
    assert_eq!(again, record);

    // Without its result value, the record comes alone.
    redis.values().remove(&record.result).await.unwrap();
    let (alone, bytes) = redis.calls().get_with_result(&key).await.unwrap().unwrap();
    assert_eq!((alone, bytes), (record, None));

    cache.evict(&key).await.unwrap();
    assert!(redis.calls().get_with_result(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn damaged_stored_calls_read_as_misses() {
    use flechette_core::storage::CallStorage;
    let server = Server::start();
    let redis = Redis::open(&server.url(), "damaged").unwrap();
    let cache = flechette_core::Cache::new(redis.values(), redis.calls());
    let (key, record) = store_forty_two(&cache).await;
    let result = record.result;
    let other = cache.save_value(&"something else").await.unwrap();
    let raw_key = format!("damaged:c:{key}");
    let mut raw = raw(&server).await;
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&raw_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(&stored[..64], result.to_hex().as_bytes(), "header first");

    let mut wrong_header = other.to_hex().into_bytes();
    wrong_header.extend_from_slice(&stored[64..]);
    let damaged: [Vec<u8>; 4] = [
        stored[..10].to_vec(),                         // shorter than the header
        stored[..stored.len() - 5].to_vec(),           // truncated record
        wrong_header,                                  // header names another result
        [&stored[..64], &b"\xc1garbage"[..]].concat(), // not MessagePack
    ];
    for bytes in damaged {
        let () = redis::cmd("SET")
            .arg(&raw_key)
            .arg(bytes)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(redis.calls().get(&key).await.unwrap().is_none());
        assert!(redis.calls().get_with_result(&key).await.unwrap().is_none());
    }
    // Stored again, the call is whole.
    cache.save_record(&record).await.unwrap();
    assert_eq!(redis.calls().get(&key).await.unwrap(), Some(record));
}

#[tokio::test]
async fn a_damaged_value_is_removed_and_saved_again() {
    use flechette_core::storage::ValueStorage;
    let server = Server::start();
    let redis = Redis::open(&server.url(), "repair").unwrap();
    let cache = flechette_core::Cache::new(redis.values(), redis.calls());
    let (key, record) = store_forty_two(&cache).await;
    let mut raw = raw(&server).await;
    let () = redis::cmd("SET")
        .arg(format!("repair:v:{}", record.result))
        .arg(&b"\xa3abc"[..])
        .query_async(&mut raw)
        .await
        .unwrap();
    // The lookup brings the damaged bytes with the record; they fail the
    // digest check, the value read on its own fails it too and removes them.
    let (found, bytes) = cache.load_with_result(&key).await.unwrap().unwrap();
    assert_eq!((found, bytes), (record.clone(), None));
    assert!(!redis.values().contains(&record.result).await.unwrap());
    // The next save of the result stores it again.
    assert_eq!(cache.save_value(&"forty-two").await.unwrap(), record.result);
    let (_, bytes) = cache.load_with_result(&key).await.unwrap().unwrap();
    assert_eq!(
        flechette_core::encoding::from_slice::<String>(&bytes.unwrap()).unwrap(),
        "forty-two"
    );
}
