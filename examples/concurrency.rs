//! Concurrency with flechette on tokio, section by section:
//!
//! 1. `bind`: carry the active cache and tags into spawned tasks
//!    (a `JoinSet`; a bound call passed around; worker processes);
//! 2. pass-through: a cached function that spawns its own task;
//! 3. the executor wrapper: hits answered without spawning, misses bound to
//!    the submitter, options that belong to the executor; the blocking pool.
//!
//! Run with `cargo run --example concurrency`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flechette::{Cache, CachedFn, Executor, SpawnOptions, TaskHandle, with_cache};
use tokio::task::JoinSet;

fn add() -> CachedFn<(i64, i64), i64> {
    CachedFn::builder("add")
        .module("concurrency")
        .args(["x", "y"])
        .build(|(x, y): (i64, i64)| async move { x + y })
}

/// Another module's helper: it runs whatever bound call it is given.
async fn run_elsewhere<F: std::future::Future>(call: F) -> F::Output {
    tokio::spawn(async {}).await.ok();
    call.await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== 1a. bind with a JoinSet");
    let add = add();
    let my_cache = Cache::memory();
    let results = with_cache(my_cache.clone(), async {
        let mut set = JoinSet::new();
        for x in 0..4 {
            set.spawn(add.bind((x, x + 1)));
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.expect("task").expect("add"));
        }
        results.sort();
        results
    })
    .await;
    println!("results: {results:?}");
    println!(
        "in my_cache: {}",
        my_cache.contains(&add.digest(&(0, 1))?).await?
    );

    println!("\n== 1b. a bound call passed around");
    let other_cache = Cache::memory();
    let mut bound = None;
    with_cache(other_cache.clone(), async {
        bound = Some(add.bind((10, 20))); // bind once, inside the scope
    })
    .await;
    // No scope at the call site: the bound call carries its cache.
    let bound = bound.expect("bound above");
    println!("result: {}", run_elsewhere(bound).await?);
    println!(
        "in other_cache: {}",
        other_cache.contains(&add.digest(&(10, 20))?).await?
    );

    println!("\n== 1c. processes sharing a file cache");
    let dir = tempfile::tempdir()?;
    let first = Cache::open(dir.path())?;
    let second = Cache::open(dir.path())?; // as another process would open it
    with_cache(first.clone(), async { add.call((2, 3)).await }).await?;
    // Results are written behind the caller: flushed, they are on disk.
    first.flush().await;
    println!(
        "a second handle on the directory sees the call: {}",
        second.contains(&add.digest(&(2, 3))?).await?
    );
    println!("(examples/processes.rs runs real worker processes on one directory)");

    println!("\n== 2. pass-through: the cached function spawns the work");
    let spawns = Arc::new(AtomicUsize::new(0));
    let s = spawns.clone();
    let square = CachedFn::builder("square_task")
        .module("concurrency")
        .args(["x"])
        .build_spawning(move |(x,): (u64,)| {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move { x * x })
        });
    let pass_cache = Cache::memory();
    with_cache(pass_cache.clone(), async {
        let handle: TaskHandle<u64, _> = square.spawn((4,));
        println!(
            "first call returns a handle at once; complete: {}",
            handle.is_ready()
        );
        println!("result: {}", handle.await.expect("the task"));
        let again: TaskHandle<u64, _> = square.spawn((4,));
        println!(
            "second call: a handle of the same type, complete: {}",
            again.is_ready()
        );
        println!(
            "result: {}, tasks spawned in all: {}",
            again.await.expect("hit"),
            spawns.load(Ordering::SeqCst)
        );
    })
    .await;

    println!("\n== 3a. the executor wrapper: hits never spawn");
    let triple = CachedFn::builder("triple")
        .module("concurrency")
        .args(["x"])
        .build(|(x,): (u64,)| async move { x * 3 });
    let exec = Executor::current();
    let exec_cache = Cache::memory();
    with_cache(exec_cache.clone(), async {
        let first: Vec<_> = (0..4).map(|x| exec.spawn_cached(&triple, (x,))).collect();
        let mut results = Vec::new();
        for h in first {
            results.push(h.await.expect("triple"));
        }
        println!("first pass (misses, computed in tasks): {results:?}");
        let second: Vec<_> = (0..4).map(|x| exec.spawn_cached(&triple, (x,))).collect();
        println!(
            "second pass all complete at once: {}",
            second.iter().all(TaskHandle::is_ready)
        );
        let mut cached = Vec::new();
        for h in second {
            cached.push(h.await.expect("triple"));
        }
        println!("cached results: {cached:?}");
        println!(
            "plain futures pass through: {}",
            exec.spawn(async { "untouched" }).await.expect("task")
        );
    })
    .await;
    let stats = exec.stats();
    println!(
        "executor: {} answered without spawning, {} started, {} passed through",
        stats.answered, stats.started, stats.passed_through
    );

    println!("\n== 3b. the blocking pool");
    let slow_sum = CachedFn::builder("slow_sum")
        .module("concurrency")
        .args(["n"])
        .build_blocking(|(n,): (u64,)| (1..=n).sum::<u64>());
    let blocking_cache = Cache::memory();
    with_cache(blocking_cache.clone(), async {
        println!(
            "sum 1..=1000000 on the blocking pool: {}",
            slow_sum.call((1_000_000,)).await.expect("sum")
        );
        let h = exec.spawn_cached_with(&triple, (100,), SpawnOptions::new().blocking(true));
        println!(
            "an async function sent to the blocking pool by the executor: {}",
            h.await.expect("triple")
        );
    })
    .await;

    println!("\n== 3c. options belong to the executor, arguments to the function");
    let options = SpawnOptions::new().name("nightly-batch").blocking(false);
    let tripled = with_cache(exec_cache.clone(), async {
        exec.spawn_cached_with(&triple, (7,), options).await
    })
    .await;
    println!(
        "triple(7) = {} (named task; the key is triple(7)'s)",
        tripled.expect("triple")
    );
    println!(
        "stored under triple's own key: {}",
        exec_cache.contains(&triple.digest(&(7,))?).await?
    );
    Ok(())
}
