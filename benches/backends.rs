//! Lookups on a warm key through the SQLite and Redis backends, against a
//! raw rusqlite point query and a raw Redis GET of the same bytes.
//!
//! `cargo bench -p flechette-benches --bench backends` prints the medians
//! and `ratio flechette_sqlite/raw_sqlite = X.XX` and
//! `ratio flechette_redis/raw_redis_get = X.XX`. The Redis half starts its
//! own `redis-server` on a free loopback port (Debian: `apt-get install
//! redis-server`). A flechette lookup fetches the call record and its
//! result together and checks the result against its digest; the raw
//! SQLite query runs on tokio's blocking pool, as an async service must
//! run it.

#[path = "../crates/flechette-core/benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flechette::storage::CallStorage;
use flechette::{Cache, CallRecord, Digest};

const LOOKUPS: u32 = 2_000;

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

async fn time<F, Fut>(mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    for _ in 0..LOOKUPS {
        f().await;
    }
    start.elapsed() / LOOKUPS
}

async fn sqlite(rounds: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    let db = flechette::sqlite::Sqlite::open(&path).unwrap();
    let cache = Cache::new(db.values(), db.calls());
    let (key, result) = save_call(&cache).await;
    let raw = Arc::new(Mutex::new(rusqlite::Connection::open(&path).unwrap()));
    let hex = result.to_hex();
    let calls = db.calls();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(
            time(|| async {
                black_box(calls.get_with_result(&key).await.unwrap().unwrap());
            })
            .await,
        );
        theirs.push(
            time(|| {
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
            })
            .await,
        );
    }
    (support::median(ours), support::median(theirs))
}

async fn redis(rounds: usize) -> Option<(Duration, Duration)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("redis://127.0.0.1:{port}/");
    let store = flechette::redis::Redis::open(&url, "bench").unwrap();
    let cache = Cache::new(store.values(), store.calls());
    let (key, result) = save_call(&cache).await;
    let calls = store.calls();
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let value_key = format!("bench:v:{result}");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(
            time(|| async {
                black_box(calls.get_with_result(&key).await.unwrap().unwrap());
            })
            .await,
        );
        theirs.push(
            time(|| {
                let (mut conn, value_key) = (conn.clone(), value_key.clone());
                async move {
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg(value_key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    black_box(bytes);
                }
            })
            .await,
        );
    }
    let _ = server.kill();
    let _ = server.wait();
    Some((support::median(ours), support::median(theirs)))
}

fn main() {
    let rounds = if std::env::args().any(|a| a == "--bench") {
        7
    } else {
        1
    };
    let rt = support::two_workers();
    rt.block_on(async {
        let (ours, raw) = sqlite(rounds).await;
        println!("sqlite lookup: flechette {ours:?}, raw rusqlite point query {raw:?}");
        println!(
            "ratio flechette_sqlite/raw_sqlite = {:.2}",
            ours.as_secs_f64() / raw.as_secs_f64()
        );
        match redis(rounds).await {
            Some((ours, raw)) => {
                println!("redis lookup: flechette {ours:?}, raw GET {raw:?}");
                println!(
                    "ratio flechette_redis/raw_redis_get = {:.2}",
                    ours.as_secs_f64() / raw.as_secs_f64()
                );
            }
            None => println!("ratio flechette_redis/raw_redis_get = unavailable (no redis-server)"),
        }
    });
}
