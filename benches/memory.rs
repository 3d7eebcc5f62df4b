//! Memory and disk per entry, and whether they stay bounded: flechette
//! against moka, each side in a child process of its own, measured by its
//! resident set before and after.
//!
//! `cargo bench -p flechette-benches --bench memory` prints:
//!
//! * `ratio flechette_bytes_per_entry/moka_bytes_per_entry = X.XX`:
//!   1,000,000 entries `u64 → 21-byte String`, a cached function (its
//!   capacity above the count) on the default in-memory cache against moka
//!   `future::Cache`. An informative line before it gives flechette's bytes
//!   per entry with the store unbounded, and how many calls the default
//!   bound kept.
//! * `bounded memory: rss_growth_mib = N`: 10,000,000 distinct-key misses of
//!   a function with `capacity(1_000)` and `expire_after(1 ms)` on the
//!   default in-memory cache; the line before gives the growth after the
//!   first 1,000,000.
//! * `bounded disk: sqlite_mib = N, file_mib = N`: the size on disk after
//!   200,000 distinct-key misses of 1 KiB values into a SQLite and a file
//!   cache bounded by `max_bytes` 64 MiB, after `flush` and a sweep.
//!
//! Without `--bench` (as `cargo test --benches` runs it) every size is cut
//! down to a smoke run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use flechette::storage::MemoryStore;
use flechette::{Cache, CachedFn};

/// Sizes of one run.
#[derive(Clone, Copy)]
struct Sizes {
    entries: u64,
    misses: u64,
    first_misses: u64,
    disk_misses: u64,
}

impl Sizes {
    fn new(bench: bool) -> Self {
        if bench {
            Self {
                entries: 1_000_000,
                misses: 10_000_000,
                first_misses: 1_000_000,
                disk_misses: 200_000,
            }
        } else {
            Self {
                entries: 2_000,
                misses: 20_000,
                first_misses: 2_000,
                disk_misses: 200,
            }
        }
    }
}

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A 21-byte string.
fn value(k: u64) -> String {
    format!("value-{k:015}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One side, in this (child) process: prints `side <name> = <number>`
/// lines for the parent.
fn side(name: &str, sizes: Sizes) {
    let rt = runtime();
    rt.block_on(async {
        match name {
            "moka" => {
                let before = rss();
                let cache: moka::future::Cache<u64, String> = moka::future::Cache::builder()
                    .max_capacity(2 * sizes.entries)
                    .build();
                for k in 0..sizes.entries {
                    cache.get_with(k, async move { value(k) }).await;
                }
                cache.run_pending_tasks().await;
                let grown = rss().saturating_sub(before);
                assert_eq!(cache.entry_count(), sizes.entries);
                println!("side moka = {}", grown / sizes.entries);
            }
            "flechette" | "flechette_unbounded" => {
                let before = rss();
                let store = if name == "flechette" {
                    MemoryStore::new()
                } else {
                    MemoryStore::builder().max_bytes(usize::MAX).build()
                };
                let f = CachedFn::builder("memory")
                    .args(["k"])
                    .capacity(2 * sizes.entries)
                    .cache(Cache::in_memory(&store))
                    .build(|(k,): (u64,)| async move { value(k) });
                for k in 0..sizes.entries {
                    f.call((k,)).await.expect("computed");
                }
                let grown = rss().saturating_sub(before);
                println!("side {name} = {}", grown / sizes.entries);
                println!("side {name}_calls = {}", store.calls_len());
                drop(f);
            }
            "bounded" => {
                let before = rss();
                // As `Cache::memory()`, with a handle to count what it holds.
                let store = MemoryStore::new();
                let f = CachedFn::builder("bounded")
                    .args(["k"])
                    .capacity(1_000)
                    .expire_after(Duration::from_millis(1))
                    .cache(Cache::in_memory(&store))
                    .build(|(k,): (u64,)| async move { value(k) });
                for k in 0..sizes.misses {
                    f.call((k,)).await.expect("computed");
                    if k + 1 == sizes.first_misses {
                        println!("side bounded_first = {}", rss().saturating_sub(before));
                        println!("side bounded_first_calls = {}", store.calls_len());
                    }
                }
                println!("side bounded = {}", rss().saturating_sub(before));
                println!("side bounded_calls = {}", store.calls_len());
            }
            "sqlite" | "file" => {
                let dir = tempfile::tempdir().expect("a temp dir");
                let cache: Cache = if name == "sqlite" {
                    let db = flechette::sqlite::Sqlite::builder(dir.path().join("cache.sqlite"))
                        .max_bytes(DISK_MAX_BYTES)
                        .open()
                        .expect("opens");
                    Cache::new(db.values(), db.calls())
                } else {
                    let store = flechette::storage::FileStore::builder(dir.path())
                        .max_bytes(DISK_MAX_BYTES)
                        .open()
                        .expect("opens");
                    Cache::new(store.values(), store.calls())
                };
                let f = CachedFn::builder("disk")
                    .args(["k"])
                    .capacity(1_000)
                    .cache(cache.clone())
                    .build(|(k,): (u64,)| async move { kilobyte(k) });
                for k in 0..sizes.disk_misses {
                    f.call((k,)).await.expect("computed");
                }
                cache.flush().await;
                cache.sweep(usize::MAX).await.expect("sweeps");
                println!("side {name} = {}", dir_bytes(dir.path()));
            }
            other => panic!("no side {other}"),
        }
    });
}

/// The bound of the disk caches: 64 MiB.
const DISK_MAX_BYTES: u64 = 64 << 20;

/// 1 KiB, distinct for every key.
fn kilobyte(k: u64) -> Vec<u8> {
    k.to_le_bytes().repeat(128)
}

/// The disk a directory takes: the blocks of its files.
fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Runs one side in a child process and reads its numbers.
fn child(name: &str, bench: bool) -> Vec<(String, u64)> {
    let mut command = Command::new(std::env::current_exe().expect("this program"));
    command.args(["--side", name]);
    if bench {
        command.arg("--bench");
    }
    let out = command.output().expect("the child runs");
    assert!(
        out.status.success(),
        "side {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("side "))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
        .collect()
}

fn get(numbers: &[(String, u64)], name: &str) -> u64 {
    numbers
        .iter()
        .find(|(k, _)| k == name)
        .map_or_else(|| panic!("no number {name}"), |(_, v)| *v)
}

const MIB: f64 = (1 << 20) as f64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let sizes = Sizes::new(bench);
    if let Some(i) = args.iter().position(|a| a == "--side") {
        side(&args[i + 1], sizes);
        return;
    }
    let moka = get(&child("moka", bench), "moka");
    let ours = child("flechette", bench);
    let unbounded = get(&child("flechette_unbounded", bench), "flechette_unbounded");
    println!(
        "bytes per entry: flechette {} (default bound; {} of {} calls kept in storage), \
         flechette with storage unbounded {unbounded}, moka {moka}",
        get(&ours, "flechette"),
        get(&ours, "flechette_calls"),
        sizes.entries,
    );
    println!(
        "ratio flechette_bytes_per_entry/moka_bytes_per_entry = {:.2}",
        get(&ours, "flechette") as f64 / moka.max(1) as f64
    );
    let bounded = child("bounded", bench);
    println!(
        "bounded memory in detail: {:.1} MiB grown after {} misses ({} calls stored), {:.1} MiB after {} ({} calls stored)",
        get(&bounded, "bounded_first") as f64 / MIB,
        sizes.first_misses,
        get(&bounded, "bounded_first_calls"),
        get(&bounded, "bounded") as f64 / MIB,
        sizes.misses,
        get(&bounded, "bounded_calls"),
    );
    println!(
        "bounded memory: rss_growth_mib = {:.0}",
        get(&bounded, "bounded") as f64 / MIB
    );
    let sqlite = get(&child("sqlite", bench), "sqlite") as f64 / MIB;
    let file = get(&child("file", bench), "file") as f64 / MIB;
    println!("bounded disk: sqlite_mib = {sqlite:.0}, file_mib = {file:.0}");
}
