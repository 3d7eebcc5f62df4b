//! Invalidation: forgetting cached calls when what they were computed from
//! changes.
//!
//! Run with `cargo run --example invalidation`. Every section prints what it
//! shows; docs/invalidation.md walks through the same steps. The example
//! runs on tokio's paused clock, so it prints the same lines on every run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn};
use tokio::time::sleep;

/// The system of record: the price of each item, in cents.
static PRICES: Mutex<BTreeMap<u32, u32>> = Mutex::new(BTreeMap::new());
/// How many times the price lookup ran.
static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The stock level of every item, upstream.
static STOCK: AtomicU32 = AtomicU32::new(5);
/// How many times the stock lookup ran.
static STOCK_RUNS: AtomicUsize = AtomicUsize::new(0);

/// How many reports were computed, in all processes.
static REPORT_RUNS: AtomicUsize = AtomicUsize::new(0);

fn set_price(item: u32, cents: u32) {
    PRICES.lock().expect("the price list").insert(item, cents);
}

fn price_runs() -> usize {
    PRICE_RUNS.load(Ordering::SeqCst)
}

/// A cached price lookup over `cache`.
fn price_fn(cache: Cache) -> CachedFn<(u32,), u32> {
    CachedFn::builder("price")
        .module("shop")
        .args(["item"])
        .cache(cache)
        .build(|(item,): (u32,)| async move {
            PRICE_RUNS.fetch_add(1, Ordering::SeqCst);
            let cents = PRICES.lock().expect("the price list").get(&item).copied();
            cents.unwrap_or(0)
        })
}

/// A cached stock lookup: the first one reads the level, then takes 10 s
/// to answer (a slow replica).
fn stock_fn() -> CachedFn<(u32,), u32> {
    CachedFn::builder("stock")
        .module("shop")
        .args(["item"])
        .cache(Cache::memory())
        .build(|(_item,): (u32,)| async move {
            let level = STOCK.load(Ordering::SeqCst);
            if STOCK_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
                sleep(Duration::from_secs(10)).await;
            }
            level
        })
}

/// The daily report as every process builds it, over the cache directory
/// `dir` that they share.
fn report_fn(dir: &Path) -> Result<CachedFn<(u32,), String>, Box<dyn std::error::Error>> {
    Ok(CachedFn::builder("daily_report")
        .module("shop")
        .args(["day"])
        .cache(Cache::open(dir)?)
        .build(|(day,): (u32,)| async move {
            let run = REPORT_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
            format!("report for day {day} (computation #{run})")
        }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every timer below runs on the paused clock: a 10 s wait is instant,
    // and the order of events is the same on every run.
    tokio::time::pause();

    let price = price_fn(Cache::memory());
    by_arguments(&price).await?;
    all_calls(&price).await?;
    rerun_instead(&price).await?;
    let stock = stock_fn();
    during_a_computation(&stock).await?;
    in_a_file_cache().await?;

    println!("\n== Statistics");
    for (name, stats) in [("price", price.stats()), ("stock", stock.stats())] {
        println!(
            "{name}: hits {}, misses {}, computations {}, hit ratio {:.3}",
            stats.hits,
            stats.misses,
            stats.computations,
            stats.hit_ratio()
        );
    }
    Ok(())
}

async fn by_arguments(price: &CachedFn<(u32,), u32>) -> Result<(), Box<dyn std::error::Error>> {
    println!("== Invalidating one call by its arguments");
    set_price(1, 250);
    set_price(2, 990);
    for _ in 0..2 {
        let cents = price.call((1,)).await?;
        println!("price(1) = {cents} (computations: {})", price_runs());
    }
    set_price(1, 275);
    println!("upstream: item 1 now costs 275");
    let cents = price.call((1,)).await?;
    println!(
        "price(1) = {cents} (computations: {}): the cached value, now stale",
        price_runs()
    );
    let evicted = price.invalidate((1,)).await?;
    println!("invalidate((1,)) = {evicted}: a stored call was evicted");
    let cents = price.call((1,)).await?;
    println!("price(1) = {cents} (computations: {})", price_runs());
    let evicted = price.invalidate((3,)).await?;
    println!("invalidate((3,)) = {evicted}: nothing was cached for item 3");
    Ok(())
}

async fn all_calls(price: &CachedFn<(u32,), u32>) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== Invalidating every call of the function");
    let cents = price.call((2,)).await?;
    println!("price(2) = {cents} (computations: {})", price_runs());
    set_price(1, 300);
    set_price(2, 1015);
    println!("upstream: every price goes up by 25");
    let evicted = price.invalidate_all().await?;
    println!("invalidate_all() = {evicted} stored calls evicted");
    println!("in-process entries left: {}", price.hot_len());
    for item in [1, 2] {
        let cents = price.call((item,)).await?;
        println!("price({item}) = {cents} (computations: {})", price_runs());
    }
    Ok(())
}

async fn rerun_instead(price: &CachedFn<(u32,), u32>) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== Rerun: recomputing without forgetting");
    set_price(1, 320);
    println!("upstream: item 1 now costs 320");
    let cents = price.rerun((1,)).await?;
    println!("rerun((1,)) = {cents} (computations: {})", price_runs());
    let cents = price.call((1,)).await?;
    println!(
        "price(1) = {cents} (computations: {}): the rerun overwrote the cached value",
        price_runs()
    );
    Ok(())
}

async fn during_a_computation(
    stock: &CachedFn<(u32,), u32>,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== An invalidation during a computation");
    let first = tokio::spawn({
        let stock = stock.clone();
        async move { stock.call((7,)).await }
    });
    sleep(Duration::from_secs(1)).await;
    println!("a first caller is computing stock(7): it read 5 and takes 10 s to answer");
    STOCK.store(4, Ordering::SeqCst);
    println!("upstream: the stock of item 7 drops to 4");
    let evicted = stock.invalidate((7,)).await?;
    println!("invalidate((7,)) = {evicted}: nothing stored yet, the computation is cut loose");
    let level = first.await??;
    println!("the first caller still gets {level}");
    println!("stored afterwards: {}", stock.contains((7,)).await?);
    for _ in 0..2 {
        let level = stock.call((7,)).await?;
        let runs = STOCK_RUNS.load(Ordering::SeqCst);
        println!("stock(7) = {level} (computations: {runs})");
    }
    Ok(())
}

async fn in_a_file_cache() -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== A stored call in a file cache, shared by processes");
    let dir = tempfile::tempdir()?;
    // Each `CachedFn` opens the directory on its own, as a process would.
    let a = report_fn(dir.path())?;
    for day in [1, 2] {
        println!("process A: report({day}) = {}", a.call((day,)).await?);
    }
    // Written behind the calls; a process flushes before another reads.
    a.cache().flush().await;
    let b = report_fn(dir.path())?;
    let report = b.call((1,)).await?;
    println!(
        "process B: report(1) = {report}, read from the directory (computations in B: {})",
        b.stats().computations
    );
    let evicted = b.invalidate((1,)).await?;
    println!("process B: invalidate((1,)) = {evicted}");
    println!("stored in the directory: {}", b.contains((1,)).await?);
    let report = a.call((1,)).await?;
    println!("process A: report(1) = {report}, from its in-process tier: no broadcast told it");
    let gc = Cache::open(dir.path())?.gc().await?;
    println!(
        "gc: {} values no record refers to removed, {} kept",
        gc.removed, gc.kept
    );
    let c = report_fn(dir.path())?;
    println!("process C: report(1) = {}", c.call((1,)).await?);
    Ok(())
}
