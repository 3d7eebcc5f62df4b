//! The hit path: a warm key with a `u64` argument and a `String` value,
//! flechette's `CachedFn` against moka's `future::Cache::get_with`, a
//! `#[cached]` async fn, and a raw `quick_cache` get — measured in one run.
//!
//! `cargo bench -p flechette-benches --bench hit_path` prints criterion's
//! report, then `ratio flechette/<peer> = X.XX` per peer (medians, one task)
//! and `ratio flechette 2-task/1-task throughput = X.XX`.

#[path = "../crates/flechette-core/benches/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cached::proc_macro::cached;
use criterion::{Criterion, criterion_group};
use flechette::{Cache, CachedFn};
use tokio::runtime::Runtime;

const KEY: u64 = 42;

fn value(k: u64) -> String {
    format!("value-of-key-{k}")
}

#[cached]
async fn cached_peer(k: u64) -> String {
    value(k)
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn flechette_fn() -> CachedFn<(u64,), String> {
    CachedFn::builder("hit_path")
        .args(["k"])
        .cache(Cache::memory())
        .build(|(k,): (u64,)| async move { value(k) })
}

/// Times `iters` awaited calls of `call` inside one task.
fn run_loop<F, Fut>(rt: &Runtime, iters: u64, call: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(call().await);
        }
        start.elapsed()
    })
}

fn single_task(c: &mut Criterion) {
    let rt = current_thread();
    let f = flechette_fn();
    let moka: moka::future::Cache<u64, String> = moka::future::Cache::new(10_000);
    let quick: quick_cache::sync::Cache<u64, String> = quick_cache::sync::Cache::new(10_000);
    rt.block_on(async {
        f.call((KEY,)).await.unwrap();
        moka.get_with(KEY, async { value(KEY) }).await;
        cached_peer(KEY).await;
    });
    quick.insert(KEY, value(KEY));

    let mut group = c.benchmark_group("hit_path");
    group.bench_function("flechette", |b| {
        b.iter_custom(|iters| {
            run_loop(&rt, iters, || async {
                f.call((black_box(KEY),)).await.unwrap()
            })
        })
    });
    group.bench_function("moka", |b| {
        b.iter_custom(|iters| {
            run_loop(&rt, iters, || {
                moka.get_with(black_box(KEY), async { value(KEY) })
            })
        })
    });
    group.bench_function("cached", |b| {
        b.iter_custom(|iters| run_loop(&rt, iters, || cached_peer(black_box(KEY))))
    });
    group.bench_function("quick_cache", |b| {
        b.iter(|| quick.get(&black_box(KEY)).unwrap())
    });
    group.finish();
}

/// Calls on the warm key. A hit never yields, so a task stays on the
/// worker it started on. The loop's state is boxed by the worker itself:
/// two tasks spawned one after the other sit side by side in memory, and
/// their loop counters would otherwise share a cache line.
async fn hit_loop(f: &CachedFn<(u64,), String>, iters: u64) {
    Box::pin(async {
        for _ in 0..iters {
            black_box(f.call((black_box(KEY),)).await.unwrap());
        }
    })
    .await;
}

/// A number for the current thread.
fn thread_tag() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish() | 1
}

/// Yields until the two tasks stand on two different workers. (A barrier
/// would not do: the last task to arrive wakes the other onto its own
/// worker.)
async fn spread(me: usize, tags: &[AtomicU64; 2]) {
    loop {
        let mine = thread_tag();
        tags[me].store(mine, Ordering::SeqCst);
        let other = tags[1 - me].load(Ordering::SeqCst);
        if other != 0 && other != mine {
            return;
        }
        tokio::task::yield_now().await;
    }
}

fn two_tasks(c: &mut Criterion) {
    let rt = support::two_workers();
    let f = Arc::new(flechette_fn());
    // Warm the key from a worker, as a service's first request would.
    let warm = Arc::clone(&f);
    rt.block_on(async move {
        tokio::spawn(async move { warm.call((KEY,)).await.unwrap() })
            .await
            .unwrap()
    });
    let mut group = c.benchmark_group("hit_path_2_tasks");
    // One iteration is one call on each of two tasks running at once on two
    // workers, so `2 × (1-task time) / (2-task time)` is the throughput gain.
    group.bench_function("flechette", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let tags = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
                let tasks: Vec<_> = (0..2)
                    .map(|me| {
                        let (f, tags) = (Arc::clone(&f), Arc::clone(&tags));
                        tokio::spawn(async move {
                            spread(me, &tags).await;
                            let start = Instant::now();
                            hit_loop(&f, iters).await;
                            start.elapsed()
                        })
                    })
                    .collect();
                let mut slowest = Duration::ZERO;
                for t in tasks {
                    slowest = slowest.max(t.await.unwrap());
                }
                slowest
            })
        })
    });
    group.bench_function("flechette_1_task", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let f = Arc::clone(&f);
                tokio::spawn(async move {
                    let start = Instant::now();
                    hit_loop(&f, iters).await;
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4));
    targets = single_task, two_tasks
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    for peer in ["moka", "cached", "quick_cache"] {
        support::print_ratio(&format!("flechette/{peer}"), "hit_path", "flechette", peer);
    }
    match (
        support::median_ns("hit_path_2_tasks", "flechette_1_task"),
        support::median_ns("hit_path_2_tasks", "flechette"),
    ) {
        (Some(one), Some(two)) => {
            println!(
                "ratio flechette 2-task/1-task throughput = {:.2}",
                2.0 * one / two
            )
        }
        _ => println!("ratio flechette 2-task/1-task throughput = unavailable"),
    }
}
