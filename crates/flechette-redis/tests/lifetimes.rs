//! How long Redis keeps values: the grace period for a value nothing
//! refers to, the life of the calls that hold it, and `gc` beside that.

use std::time::Duration;

use flechette_core::conformance::{
    check_capacity_kept_by_server, check_expiry, check_gc_while_writing, lifespan_record,
};
use flechette_core::{Cache, DEFAULT_GC_GRACE, GcOptions};

#[path = "support/server.rs"]
mod support;
use support::RedisServer as Server;

/// The time to live of the value `digest` in milliseconds (-1: none, -2:
/// no such key).
async fn pttl(server: &Server, prefix: &str, digest: &flechette_core::Digest) -> i64 {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("PTTL")
        .arg(format!("{prefix}:v:{digest}"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_honours_expiry() {
    let server = Server::start();
    check_expiry(flechette_redis::open(&server.url(), "expiry").unwrap()).await;
}

#[tokio::test]
async fn values_live_as_long_as_the_calls_that_hold_them() {
    let server = Server::start();
    let cache = flechette_redis::open(&server.url(), "t").unwrap();
    let grace = i64::try_from(DEFAULT_GC_GRACE.as_millis()).unwrap();
    let hour = Duration::from_secs(3_600);

    let loose = cache.save_value(&"loose").await.unwrap();
    let ttl = pttl(&server, "t", &loose).await;
    assert!(ttl > grace - 60_000 && ttl <= grace, "a loose value: {ttl}");

    let (arg, shared) = (
        cache.save_value(&1u64).await.unwrap(),
        cache.save_value(&"shared").await.unwrap(),
    );
    cache
        .save_record(&lifespan_record("hourly", &arg, &shared, Some(hour)))
        .await
        .unwrap();
    let ttl = pttl(&server, "t", &shared).await;
    assert!(
        ttl > 3_500_000 && ttl <= 3_600_000,
        "held for an hour: {ttl}"
    );

    let other = cache.save_value(&2u64).await.unwrap();
    cache
        .save_record(&lifespan_record("forever", &other, &shared, None))
        .await
        .unwrap();
    let century = 100 * 365 * 24 * 3_600 * 1_000_i64;
    let held = pttl(&server, "t", &shared).await;
    assert!(held > century - 60_000, "held for a century: {held}");
    assert!(pttl(&server, "t", &other).await > century - 60_000);

    // Saved again, and held by another expiring call: it stays a century.
    cache.save_value(&"shared").await.unwrap();
    cache
        .save_record(&lifespan_record("again", &arg, &shared, Some(hour)))
        .await
        .unwrap();
    assert!(
        pttl(&server, "t", &shared).await > century - 60_000,
        "a life is never shortened"
    );

    // Saved again, a loose value's grace period starts again.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(format!("t:v:{loose}"))
        .arg(1_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    cache.save_value(&"loose").await.unwrap();
    assert!(pttl(&server, "t", &loose).await > grace - 60_000);
}

#[tokio::test]
async fn gc_reads_when_a_value_was_last_written_from_its_time_to_live() {
    let server = Server::start();
    let cache: Cache = flechette_redis::open(&server.url(), "gc").unwrap();
    let loose = cache.save_value(&"loose").await.unwrap();
    let (arg, result) = (
        cache.save_value(&1u64).await.unwrap(),
        cache.save_value(&"result").await.unwrap(),
    );
    let key = cache
        .save_record(&lifespan_record("f", &arg, &result, None))
        .await
        .unwrap();
    cache.flush().await;
    // The call goes; its values, held for a century, no longer are; they
    // were held just now, so like the loose one they are young.
    assert!(cache.evict(&key).await.unwrap());
    let report = cache.gc().await.unwrap();
    assert_eq!((report.removed, report.young), (0, 3), "{report:?}");
    // Some time passes: Redis tells times in milliseconds, and without a
    // grace period a value written in the millisecond gc starts is young.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let report = cache
        .gc_with(GcOptions::new().grace(Duration::ZERO), |_| {})
        .await
        .unwrap();
    assert_eq!((report.removed, report.young), (3, 0), "{report:?}");
    assert!(cache.load_encoded(&arg).await.unwrap().is_none());
    assert!(cache.load_encoded(&loose).await.unwrap().is_none());
    // A value stored before values had a time to live goes whatever its
    // age, once nothing refers to it.
    let old = cache.save_value(&"old").await.unwrap();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("PERSIST")
        .arg(format!("gc:v:{old}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cache.gc().await.unwrap().removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_beside_eight_writers_loses_no_value() {
    let server = Server::start();
    let url = server.url();
    let mut n = 0;
    check_gc_while_writing(100, || {
        n += 1;
        flechette_redis::open(&url, &format!("gc{n}")).unwrap()
    })
    .await;
}

/// A field of `INFO` as a number.
async fn info(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").query_async(conn).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has {field}"))
}

/// Sets `maxmemory` and its policy on a running server.
async fn bound(conn: &mut redis::aio::MultiplexedConnection, maxmemory: &str, policy: &str) {
    for (name, value) in [("maxmemory", maxmemory), ("maxmemory-policy", policy)] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(conn)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_capacity_conforms_under_maxmemory_with_lfu() {
    // LFU, because Redis's LRU clock counts in whole seconds: every key
    // written within the same second looks as recent as one read in it.
    // Reading a call touches all of its values, so the calls read after
    // every write keep them.
    let server = Server::start();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    bound(&mut conn, "2mb", "allkeys-lfu").await;
    let cache = flechette_redis::open(&server.url(), "capacity").unwrap();
    check_capacity_kept_by_server(cache, 4 * 2048).await;
    assert!(info(&mut conn, "evicted_keys").await > 0, "Redis evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_maxmemory_redis_evicts_and_every_call_still_answers_right() {
    // Redis bounds itself: `maxmemory` with an LRU policy. A call whose
    // result Redis evicted reads as a miss and is computed again; nothing
    // fails and no answer is wrong.
    let server = Server::start();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    bound(&mut conn, "2mb", "allkeys-lru").await;
    let cache = flechette_redis::open(&server.url(), "bounded").unwrap();
    let computed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = std::sync::Arc::clone(&computed);
    let kilobyte = flechette::CachedFn::builder("kilobyte")
        .args(["i"])
        .capacity(1)
        .cache(cache.clone())
        .build(move |(i,): (u64,)| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { vec![u8::try_from(i % 251).unwrap(); 1024] }
        });
    let expect = |i: u64| vec![u8::try_from(i % 251).unwrap(); 1024];
    for i in 0..8_000u64 {
        assert_eq!(kilobyte.call((i,)).await.unwrap(), expect(i));
        if i % 500 == 0 {
            cache.flush().await;
            for hot in 0..4 {
                assert_eq!(kilobyte.call((hot,)).await.unwrap(), expect(hot));
            }
        }
    }
    cache.flush().await;
    assert!(info(&mut conn, "evicted_keys").await > 0, "Redis evicted");
    // Redis evicts before each command, so a write may take it a little
    // over its bound (measured: 0.04 % over 4 MiB); it stays within 1/32.
    let used = info(&mut conn, "used_memory").await;
    assert!(used <= (2 << 20) + (2 << 20) / 32, "{used} bytes used");
    for i in (0..8_000u64).step_by(499) {
        assert_eq!(kilobyte.call((i,)).await.unwrap(), expect(i), "call {i}");
    }
}

#[tokio::test]
async fn saving_again_a_value_a_removed_call_held_protects_it_from_gc() {
    // A record without a lifespan held the value an hour ago and was then
    // removed; a writer saves the value again, on its way to a record of
    // its own: gc, running meanwhile, keeps it.
    let server = Server::start();
    let cache: Cache = flechette_redis::open(&server.url(), "again").unwrap();
    let arg = cache.save_value(&1u64).await.unwrap();
    let result = cache.save_value(&"held").await.unwrap();
    let key = cache
        .save_record(&lifespan_record("f", &arg, &result, None))
        .await
        .unwrap();
    assert!(cache.evict(&key).await.unwrap());
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let century = 100 * 365 * 24 * 3_600 * 1_000_i64;
    for digest in [arg, result] {
        let _: () = redis::cmd("PEXPIRE")
            .arg(format!("again:v:{digest}"))
            .arg(century - 3_600_000)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    cache.save_value(&"held").await.unwrap();
    let report = cache.gc().await.unwrap();
    assert_eq!(
        (report.removed, report.young),
        (1, 1),
        "the argument, held an hour ago, goes; the value saved again stays"
    );
    assert!(cache.load_encoded(&result).await.unwrap().is_some());
}
