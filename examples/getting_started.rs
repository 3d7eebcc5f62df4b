//! Getting started with flechette: a tour of the content-addressed call cache.
//!
//! Run with `cargo run --example getting_started`. Every section prints what
//! it shows; docs/getting-started.md walks through the same steps.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use flechette::{Arg, Cache, CachedFn, CallQuery, D, TableOptions, digest, tags, with_cache};
use serde::Serialize;

/// A slow calculation: the second call with the same argument is instant.
static LONG_RUNNING: LazyLock<CachedFn<(u64,), u64>> = LazyLock::new(|| {
    CachedFn::builder("long_running_calculation")
        .module(module_path!())
        .args(["x"])
        .build(|(x,)| async move {
            println!("  running calculation for {x}...");
            tokio::time::sleep(Duration::from_millis(300)).await;
            x * x
        })
});

/// A recursive function whose inner calls are cached too.
static FIB: LazyLock<CachedFn<(u64,), u64>> = LazyLock::new(|| {
    CachedFn::builder("fib")
        .module(module_path!())
        .args(["n"])
        .build(|(n,)| async move {
            if n < 2 {
                return n;
            }
            let a = FIB.call((n - 1,)).await.expect("fib never fails");
            let b = FIB.call((n - 2,)).await.expect("fib never fails");
            a + b
        })
});

/// A receiver whose identity is its id: the label does not enter the key.
#[derive(Clone, Serialize)]
struct Account {
    id: u32,
    #[serde(skip)]
    label: String,
}

fn elapsed(start: Instant) -> String {
    format!("{:.2} s", start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Cache::memory();
    with_cache(cache.clone(), tour(cache)).await
}

async fn tour(cache: Cache) -> Result<(), Box<dyn std::error::Error>> {
    println!("== A long-running calculation");
    let start = Instant::now();
    LONG_RUNNING.call((2,)).await?;
    println!("first call took {}", elapsed(start));
    let start = Instant::now();
    LONG_RUNNING.call((2,)).await?;
    println!("second call took {}", elapsed(start));
    let start = Instant::now();
    LONG_RUNNING.call((100,)).await?;
    println!("a new argument took {}", elapsed(start));

    println!("\n== A recursive function");
    let start = Instant::now();
    println!("fib(60) = {} in {}", FIB.call((60,)).await?, elapsed(start));

    println!("\n== Passing a short digest in place of a value");
    let double = CachedFn::builder("double")
        .module(module_path!())
        .args(["x"])
        .build(|(x,): (u64,)| async move {
            println!("  doubling {x}...");
            x * 2
        });
    let v = LONG_RUNNING.call((10,)).await?;
    let value_digest = digest(&v)?;
    println!("value digest of {v}: {value_digest}");
    let short = cache.shrink(&value_digest).await?;
    println!("short digest: {short}");
    let by_digest = double.call_with((Arg::stored(D(short.as_str())?),)).await?;
    println!("double(D({short:?})) = {by_digest}");
    println!(
        "double(100) is the same call: cached = {}",
        double.contains((100,)).await?
    );

    println!("\n== Querying calls");
    let table = cache
        .table(&LONG_RUNNING.query(), &TableOptions::new())
        .await?;
    println!("{table}");
    let options = TableOptions::new().arguments(["x"]).result(true);
    println!("{}", cache.table(&LONG_RUNNING.query(), &options).await?);
    let q = CallQuery::new().argument("x", &100u64);
    println!(
        "calls with x = 100:\n{}",
        cache.table(&q, &TableOptions::new()).await?
    );

    println!("\n== Tags");
    let add = CachedFn::builder("another_calculation")
        .module(module_path!())
        .args(["a", "b"])
        .build(|(a, b): (i64, i64)| async move { a + b });
    tags([("project", "my_project"), ("category", "testing")])
        .scope(async {
            add.call((1, 2)).await?;
            add.call((3, 4)).await
        })
        .await?;
    for call in cache.query(&add.query().has_tag("project")).await? {
        println!("{} tags {:?}", call.name(), call.metadata().tags);
    }
    let q = add
        .query()
        .argument("a", &3i64)
        .tag("project", "my_project");
    for call in cache.query(&q).await? {
        println!(
            "3 + 4 = {} (tag project = my_project)",
            call.result::<i64>().await?
        );
    }
    let q = CallQuery::new().module(module_path!()).has_tag("category");
    println!(
        "{}",
        cache
            .table(&q, &TableOptions::new().arguments(["a", "b"]))
            .await?
    );

    println!("\n== Methods: the receiver is an argument");
    // A method's receiver enters the key through its `Serialize` identity.
    let compute = CachedFn::builder("Account::compute")
        .module(module_path!())
        .args(["self", "x"])
        .build(|(account, x): (Account, u32)| async move {
            println!("  computing {} + {x} for {}...", account.id, account.label);
            tokio::time::sleep(Duration::from_millis(300)).await;
            account.id + x
        });
    let account = Account {
        id: 10,
        label: "savings".into(),
    };
    let start = Instant::now();
    println!(
        "result {} in {}",
        compute.call((account.clone(), 5)).await?,
        elapsed(start)
    );
    let renamed = Account {
        label: "renamed".into(),
        ..account.clone()
    };
    let start = Instant::now();
    println!(
        "a new label, same identity: {} in {}",
        compute.call((renamed, 5)).await?,
        elapsed(start)
    );
    let changed = Account { id: 20, ..account };
    let start = Instant::now();
    println!(
        "a new id is a new call: {} in {}",
        compute.call((changed, 5)).await?,
        elapsed(start)
    );

    println!("\n== Lazy loading");
    let key = FIB.digest(&(20,))?;
    let lazy = cache.load(&key).await?.expect("fib(20) was computed above");
    println!(
        "got a lazy call of {} with arguments {:?}",
        lazy.name(),
        lazy.arguments().names().collect::<Vec<_>>()
    );
    println!("result (loaded now): {}", lazy.result::<u64>().await?);
    let fetched = lazy.fetch().await?;
    println!(
        "fetched: n = {}, digest unchanged = {}",
        fetched.argument::<u64>("n")?,
        fetched.digest() == lazy.digest()
    );
    Ok(())
}
