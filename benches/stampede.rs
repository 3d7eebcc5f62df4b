//! A stampede: 10,000 tasks ask for one cold key whose loader takes 10 ms,
//! flechette's `CachedFn` against moka's `get_with`, in one run.
//!
//! `cargo bench -p flechette-benches --bench stampede` prints, per library,
//! the loader executions (1 for flechette) and the wall time until every
//! task has its value, then `ratio flechette/moka stampede wall = X.XX`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
#[path = "../crates/flechette-core/benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use flechette::{Cache, CachedFn};

const TASKS: usize = 10_000;
const ROUNDS: usize = 15;
const LOAD: Duration = Duration::from_millis(10);

async fn load(k: u64, runs: &AtomicUsize) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(LOAD).await;
    format!("value-of-key-{k}")
}

/// One stampede on a fresh cache: (wall time, loader executions).
async fn flechette_round() -> (Duration, usize) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let f = Arc::new(
        CachedFn::builder("stampede")
            .args(["k"])
            .cache(Cache::memory())
            .build(move |(k,): (u64,)| {
                let r = Arc::clone(&r);
                async move { load(k, &r).await }
            }),
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.call((7,)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "value-of-key-7");
    }
    (start.elapsed(), runs.load(Ordering::SeqCst))
}

async fn moka_round() -> (Duration, usize) {
    let runs = Arc::new(AtomicUsize::new(0));
    let cache: moka::future::Cache<u64, String> = moka::future::Cache::new(10_000);
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move { cache.get_with(7, load(7, &runs)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "value-of-key-7");
    }
    (start.elapsed(), runs.load(Ordering::SeqCst))
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep it short.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        1
    };
    let rt = support::two_workers();
    let (mut fl, mut mo) = (Vec::new(), Vec::new());
    let (mut fl_runs, mut mo_runs) = (0, 0);
    rt.block_on(async {
        for _ in 0..rounds {
            let (wall, runs) = flechette_round().await;
            fl.push(wall);
            fl_runs = fl_runs.max(runs);
            let (wall, runs) = moka_round().await;
            mo.push(wall);
            mo_runs = mo_runs.max(runs);
        }
    });
    let (fl, mo) = (support::median(fl), support::median(mo));
    println!(
        "stampede of {TASKS} tasks on one cold key, loader {LOAD:?}, median of {rounds} rounds"
    );
    println!("flechette: executions {fl_runs}, wall {fl:?}");
    println!("moka:      executions {mo_runs}, wall {mo:?}");
    println!(
        "ratio flechette/moka stampede wall = {:.2}",
        fl.as_secs_f64() / mo.as_secs_f64()
    );
    assert_eq!(fl_runs, 1, "flechette must run the loader once");
}
