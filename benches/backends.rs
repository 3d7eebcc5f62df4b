//! Lookups on a warm key through the SQLite and Redis backends, against a
//! raw rusqlite point query and a raw Redis GET of the same bytes.
//! Each side's median latency is taken over single lookups interleaved
//! with the other side's.
//!
//! `cargo bench -p flechette-benches --bench backends` prints the medians
//! and `ratio flechette_sqlite/raw_sqlite = X.XX` and
//! `ratio flechette_redis/raw_redis_get = X.XX`. The Redis half starts its
//! own `redis-server` on a free loopback port (Debian: `apt-get install
//! redis-server`). A flechette lookup fetches the call record and its
//! result together and checks the result against its digest; the raw
//! SQLite query runs on tokio's blocking pool, as an async service must
//! run it.

#[path = "../crates/flechette-redis/tests/support/server.rs"]
mod redis_server;
#[path = "../crates/flechette-core/benches/support/mod.rs"]
mod support;
use redis_server::RedisServer;

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flechette::storage::CallStorage;
use flechette::{Cache, CallRecord, Digest};

async fn save_call(cache: &Cache) -> (Digest, Digest) {
    let arg = cache.save_value(&42u64).await.unwrap();
    let result = cache
        .save_value(&"a warm result, ".repeat(20))
        .await
        .unwrap();
    let record = CallRecord {
        name: "warm".into(),
        module: "bench".into(),
        version: None,
        arguments: vec![("x".into(), arg)],
        result,
        metadata: Default::default(),
    };
    (cache.save_record(&record).await.unwrap(), result)
}

/// Median latency of each of two lookups, sampled one lookup at a time and
/// interleaved (the order alternating), so both see the same machine: a
/// busy moment slows a few samples of each, not a whole block of one.
async fn paired<A, AF, B, BF>(lookups: u32, mut ours: A, mut theirs: B) -> (Duration, Duration)
where
    A: FnMut() -> AF,
    AF: std::future::Future<Output = ()>,
    B: FnMut() -> BF,
    BF: std::future::Future<Output = ()>,
{
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..lookups {
        if i % 2 == 0 {
            a.push(sample(ours()).await);
            b.push(sample(theirs()).await);
        } else {
            b.push(sample(theirs()).await);
            a.push(sample(ours()).await);
        }
    }
    (support::median(a), support::median(b))
}

async fn sample(lookup: impl std::future::Future<Output = ()>) -> Duration {
    let start = Instant::now();
    lookup.await;
    start.elapsed()
}

async fn sqlite(lookups: u32) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    let db = flechette::sqlite::Sqlite::open(&path).unwrap();
    let cache = Cache::new(db.values(), db.calls());
    let (key, result) = save_call(&cache).await;
    let raw = Arc::new(Mutex::new(rusqlite::Connection::open(&path).unwrap()));
    let hex = result.to_hex();
    let calls = db.calls();
    paired(
        lookups,
        || async {
            black_box(calls.get_with_result(&key).await.unwrap().unwrap());
        },
        || {
            let (raw, hex) = (raw.clone(), hex.clone());
            async move {
                let bytes: Vec<u8> = tokio::task::spawn_blocking(move || {
                    raw.lock()
                        .unwrap()
                        .prepare_cached("SELECT bytes FROM vals WHERE digest = ?1")
                        .unwrap()
                        .query_row([hex], |r| r.get(0))
                        .unwrap()
                })
                .await
                .unwrap();
                black_box(bytes);
            }
        },
    )
    .await
}

async fn redis(lookups: u32) -> Result<(Duration, Duration), String> {
    let server = RedisServer::try_start()?;
    let url = server.url();
    let store = flechette::redis::Redis::open(&url, "bench").unwrap();
    let cache = Cache::new(store.values(), store.calls());
    let (key, result) = save_call(&cache).await;
    let calls = store.calls();
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let value_key = format!("bench:v:{result}");
    let times = paired(
        lookups,
        || async {
            black_box(calls.get_with_result(&key).await.unwrap().unwrap());
        },
        || {
            let (mut conn, value_key) = (conn.clone(), value_key.clone());
            async move {
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(value_key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                black_box(bytes);
            }
        },
    )
    .await;
    drop(server);
    Ok(times)
}

fn main() {
    // `cargo test --benches` passes no `--bench`: a short smoke run.
    let lookups = if std::env::args().any(|a| a == "--bench") {
        20_000
    } else {
        200
    };
    let rt = support::two_workers();
    rt.block_on(async {
        let (ours, raw) = sqlite(lookups).await;
        println!("sqlite lookup: flechette {ours:?}, raw rusqlite point query {raw:?}");
        println!(
            "ratio flechette_sqlite/raw_sqlite = {:.2}",
            ours.as_secs_f64() / raw.as_secs_f64()
        );
        match redis(lookups).await {
            Ok((ours, raw)) => {
                println!("redis lookup: flechette {ours:?}, raw GET {raw:?}");
                println!(
                    "ratio flechette_redis/raw_redis_get = {:.2}",
                    ours.as_secs_f64() / raw.as_secs_f64()
                );
            }
            Err(why) => println!("ratio flechette_redis/raw_redis_get = unavailable ({why})"),
        }
    });
}
