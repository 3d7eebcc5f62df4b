//! Cache stacks: a fast local cache over a slow shared one.
//!
//! A file-backed cache plays the "remote" level that other processes share;
//! an in-memory cache is the "local" level. A call computed elsewhere (here:
//! into the remote cache directly) is found through the stack, and the hit
//! is copied into the local level, so the next read never leaves memory.
//!
//! Run with `cargo run --example cache_stack`.

use flechette::{Cache, CacheStack, CachedFn, with_cache};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let remote = Cache::open(dir.path().join("remote"))?;
    let local = Cache::memory();
    let stack: Cache = CacheStack::new()
        .push(local.clone())
        .push(remote.clone())
        .into();

    let slow_add = CachedFn::builder("slow_add")
        .module(module_path!())
        .args(["a", "b"])
        .build(|(a, b): (i64, i64)| async move {
            println!("  computing {a} + {b}...");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            a + b
        });
    let key = slow_add.digest(&(1, 2))?;

    println!("== Another process fills the remote cache");
    with_cache(remote.clone(), slow_add.call((1, 2))).await?;
    println!("remote has the call: {}", remote.contains(&key).await?);
    println!("local has the call:  {}", local.contains(&key).await?);

    println!("\n== This process reads through the stack");
    let value = with_cache(stack.clone(), slow_add.call((1, 2))).await?;
    println!("1 + 2 = {value} (no computation: found in the remote level)");
    println!("local has the call now: {}", local.contains(&key).await?);

    println!("\n== New calls are written to the local level only");
    with_cache(stack.clone(), slow_add.call((3, 4))).await?;
    let new_key = slow_add.digest(&(3, 4))?;
    println!(
        "local: {}, remote: {}",
        local.contains(&new_key).await?,
        remote.contains(&new_key).await?
    );

    println!("\n== Eviction removes a call from every level");
    stack.evict(&key).await?;
    println!(
        "after evict: local {}, remote {}",
        local.contains(&key).await?,
        remote.contains(&key).await?
    );
    Ok(())
}
