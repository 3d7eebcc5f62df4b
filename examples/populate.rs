//! Fills a SQLite cache with a few calls, for trying the `flechette`
//! command (docs/cli.md uses it).
//!
//! Run with `cargo run --example populate -- demo.sqlite`.

use flechette::{CachedFn, tags};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo.sqlite".into());
    let cache = flechette::sqlite::open(&path)?;
    let square = CachedFn::builder("square")
        .module("demo")
        .args(["x"])
        .cache(cache.clone())
        .build(|(x,): (u64,)| async move { x * x });
    let greet = CachedFn::builder("greet")
        .module("demo")
        .args(["name"])
        .cache(cache.clone())
        .build(|(name,): (String,)| async move { format!("hello, {name}") });
    tags([("project", "p1")])
        .scope(async {
            for x in 1..=3 {
                square.call((x,)).await?;
            }
            Ok::<_, flechette::CallError<std::convert::Infallible>>(())
        })
        .await?;
    for name in ["ada", "grace"] {
        greet.call((name.to_owned(),)).await?;
    }
    // Results are written behind the calls: flush before the process exits.
    cache.flush().await;
    println!("filled {path} with 5 calls");
    Ok(())
}
