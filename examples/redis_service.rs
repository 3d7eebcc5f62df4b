//! Two instances of one cached async function sharing a Redis: a result
//! computed by one is served to the other, concurrent misses run once
//! across both, and an invalidation in one reaches the other's in-process
//! tier.
//!
//! Start a Redis first, then run the example:
//!
//! ```text
//! redis-server --port 6379 --save ""      # Debian: apt-get install redis-server
//! cargo run --example redis_service       # or: ... -- redis://HOST:PORT/
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::CachedFn;

/// One service instance: its own Redis client, in-process tier and flights.
fn instance(
    url: &str,
    computed: Arc<AtomicUsize>,
) -> Result<CachedFn<(u32,), String>, Box<dyn std::error::Error>> {
    let cache = flechette::redis::open(url, "redis_service_example")?;
    Ok(CachedFn::builder("quote")
        .module("redis_service")
        .args(["item"])
        .cache(cache)
        .build(move |(item,): (u32,)| {
            let n = computed.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await; // a slow upstream
                format!("quote for item {item} (computation #{n})")
            }
        }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".into());
    if std::net::TcpStream::connect(url.trim_start_matches("redis://").trim_end_matches('/'))
        .is_err()
    {
        eprintln!(
            "no Redis at {url}: start one with `redis-server --port 6379 --save \"\"` and run again"
        );
        std::process::exit(1);
    }
    let computed = Arc::new(AtomicUsize::new(0));
    let a = instance(&url, computed.clone())?;
    let b = instance(&url, computed.clone())?;
    a.invalidate_all().await?;

    println!("== both instances miss item 1 at once");
    let (x, y) = tokio::join!(a.call((1,)), b.call((1,)));
    println!("a: {}", x?);
    println!("b: {}", y?);
    println!(
        "computations across both: {}",
        computed.load(Ordering::SeqCst)
    );

    println!("\n== b asks for item 2 after a computed it");
    a.call((2,)).await?;
    println!("b: {}", b.call((2,)).await?);
    println!(
        "computations across both: {}",
        computed.load(Ordering::SeqCst)
    );

    println!("\n== a invalidates item 1; b's in-process copy goes too");
    let before = b.hot_len();
    a.invalidate((1,)).await?;
    for _ in 0..100 {
        if b.hot_len() < before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("b holds {} of {before} entries in process", b.hot_len());
    println!("b: {}", b.call((1,)).await?);
    println!(
        "computations across both: {}",
        computed.load(Ordering::SeqCst)
    );
    Ok(())
}
