//! The miss path: calls of keys never seen before, flechette against moka
//! and against the raw storage writes the misses amount to, side by side in
//! one run.
//!
//! `cargo bench -p flechette-benches --bench miss_path` prints, per line,
//! the medians it compares and then:
//!
//! * `ratio flechette_memory_miss/moka_miss = X.XX`: per miss, 100,000
//!   distinct keys awaited one after another in one task, the in-memory
//!   cache against moka's `get_with` on new keys (median of rounds).
//! * `ratio flechette_sqlite_miss/flechette_memory_miss = X.XX`: the median
//!   latency a caller sees for one miss with a SQLite file cache under the
//!   hot tier, against the in-memory cache (misses interleaved).
//! * `ratio flechette_sqlite_misses/raw_sqlite_inserts = X.XX`: wall time
//!   of 100,000 misses from 16 tasks until `Cache::flush` returns, against
//!   rusqlite inserting the same rows (the same values and records, byte
//!   for byte, in the order of the misses) in transactions of 100 rows on
//!   the blocking pool.
//! * `ratio flechette_file_misses/raw_file_writes = X.XX`: 10,000 misses
//!   into a file cache until `flush`, against a loop writing the same files
//!   the same atomic way (temp file, fsync, rename).
//! * `ratio flechette_redis_misses/raw_redis_pipeline = X.XX`: 100,000
//!   misses from 16 tasks until `flush`, against pipelined `SET`s of the
//!   same bytes. The Redis part starts its own `redis-server` on a free
//!   loopback port.
//!
//! Without `--bench` (as `cargo test --benches` runs it) every size is cut
//! down to a smoke run.

#[path = "../crates/flechette-redis/tests/support/server.rs"]
mod redis_server;
#[path = "miss_path/storage.rs"]
mod storage;
#[path = "../crates/flechette-core/benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use flechette::{Cache, CachedFn};

/// The value every computation returns: a short string.
fn value(k: u64) -> String {
    format!("value-of-key-{k}")
}

/// A fresh cached function over `cache` holding every key of a round.
fn function(cache: Cache, keys: u64) -> CachedFn<(u64,), String> {
    CachedFn::builder("miss_path")
        .args(["k"])
        .capacity(keys)
        .cache(cache)
        .build(|(k,): (u64,)| async move { value(k) })
}

/// Sizes of one run.
struct Sizes {
    rounds: usize,
    memory_keys: u64,
    latency_samples: u64,
    bulk_keys: u64,
    file_keys: u64,
}

impl Sizes {
    fn new() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            Self {
                rounds: 5,
                memory_keys: 100_000,
                latency_samples: 20_000,
                bulk_keys: 100_000,
                file_keys: 10_000,
            }
        } else {
            Self {
                rounds: 1,
                memory_keys: 500,
                latency_samples: 200,
                bulk_keys: 500,
                file_keys: 100,
            }
        }
    }
}

/// Per-miss time of `keys` misses in one task, flechette's in-memory cache
/// and moka, rounds interleaved; medians over rounds.
async fn memory_against_moka(sizes: &Sizes) -> (Duration, Duration) {
    let keys = sizes.memory_keys;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..sizes.rounds {
        let f = function(Cache::memory(), keys);
        let start = Instant::now();
        for k in 0..keys {
            black_box(f.call((k,)).await.unwrap());
        }
        ours.push(start.elapsed() / keys as u32);
        drop(f);

        let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(keys);
        let start = Instant::now();
        for k in 0..keys {
            black_box(moka.get_with(k, async move { value(k) }).await);
        }
        theirs.push(start.elapsed() / keys as u32);
    }
    (support::median(ours), support::median(theirs))
}

/// Median caller-visible latency of one miss on a SQLite file cache and on
/// the in-memory cache, misses interleaved.
async fn sqlite_against_memory(sizes: &Sizes) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let on_disk: Cache = flechette::sqlite::open(dir.path().join("cache.sqlite")).unwrap();
    let n = sizes.latency_samples;
    let sqlite = function(on_disk.clone(), n);
    let memory = function(Cache::memory(), n);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for k in 0..n {
        let start = Instant::now();
        black_box(sqlite.call((k,)).await.unwrap());
        a.push(start.elapsed());
        let start = Instant::now();
        black_box(memory.call((k,)).await.unwrap());
        b.push(start.elapsed());
    }
    on_disk.flush().await;
    (support::median(a), support::median(b))
}

fn ratio(label: &str, ours: Duration, theirs: Duration) {
    println!(
        "ratio {label} = {:.2}",
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

fn main() {
    let sizes = Sizes::new();
    let rt = support::two_workers();
    rt.block_on(async {
        let (ours, moka) = memory_against_moka(&sizes).await;
        println!("memory miss: flechette {ours:?}, moka get_with {moka:?}");
        ratio("flechette_memory_miss/moka_miss", ours, moka);

        let (sqlite, memory) = sqlite_against_memory(&sizes).await;
        println!("miss latency: sqlite cache {sqlite:?}, memory cache {memory:?}");
        ratio(
            "flechette_sqlite_miss/flechette_memory_miss",
            sqlite,
            memory,
        );

        let (ours, raw) = storage::sqlite(sizes.bulk_keys).await;
        println!("sqlite misses until flush: flechette {ours:?}, raw inserts {raw:?}");
        ratio("flechette_sqlite_misses/raw_sqlite_inserts", ours, raw);

        let (ours, raw) = storage::file(sizes.file_keys).await;
        println!("file misses until flush: flechette {ours:?}, raw writes {raw:?}");
        ratio("flechette_file_misses/raw_file_writes", ours, raw);

        match storage::redis(sizes.bulk_keys).await {
            Ok((ours, raw)) => {
                println!("redis misses until flush: flechette {ours:?}, raw pipelines {raw:?}");
                ratio("flechette_redis_misses/raw_redis_pipeline", ours, raw);
            }
            Err(why) => {
                println!("ratio flechette_redis_misses/raw_redis_pipeline = unavailable ({why})")
            }
        }
    });
}
