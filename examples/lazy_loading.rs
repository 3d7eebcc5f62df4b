//! Lazy loading: a call's record comes back at once, its values only when
//! asked for.
//!
//! A cached function renders text reports (large results) into a cache whose
//! value storage counts every value read from it. Loading, listing and
//! querying calls reads records only; an argument or a result is read when
//! the program asks for it, and the counter printed after each step shows
//! what was fetched. docs/lazy-loading.md walks through the same steps.
//!
//! Run with `cargo run --example lazy_loading`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flechette::storage::{
    Bytes, MemoryCalls, MemoryValues, StorageError, ValueStorage, async_trait,
};
use flechette::{Cache, CachedFn, Digest, DigestPrefix, tags, with_cache};

/// Values in memory that count every value read, and its size in bytes.
#[derive(Default)]
struct CountingValues {
    inner: MemoryValues,
    reads: AtomicUsize,
    bytes: AtomicUsize,
}

impl CountingValues {
    /// Prints what was read since the last report; counting starts again.
    fn report(&self) {
        let reads = self.reads.swap(0, Ordering::SeqCst);
        let bytes = self.bytes.swap(0, Ordering::SeqCst);
        println!("  [values read: {reads}, {bytes} bytes]");
    }
}

#[async_trait]
impl ValueStorage for CountingValues {
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        let found = self.inner.get(digest).await?;
        if let Some(bytes) = &found {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.bytes.fetch_add(bytes.len(), Ordering::SeqCst);
        }
        Ok(found)
    }
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.inner.put(digest, bytes).await
    }
    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        self.inner.contains(digest).await
    }
    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        self.inner.remove(digest).await
    }
    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.inner.list(prefix).await
    }
}

/// A report of `rows` lines of 17 characters each: a large result.
fn render_report() -> CachedFn<(String, u32), String> {
    CachedFn::builder("render_report")
        .module(module_path!())
        .args(["region", "rows"])
        .build(|(region, rows): (String, u32)| async move {
            println!("  rendering {region}, {rows} rows...");
            let line = |i: u32| format!("{region:>8} {i:07}\n");
            (0..rows).map(line).collect::<String>()
        })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let values = Arc::new(CountingValues::default());
    let cache = Cache::from_storage(values.clone(), Arc::new(MemoryCalls::new()));
    let report = render_report();

    println!("== Computing three reports");
    with_cache(cache.clone(), async {
        tags([("batch", "monday")])
            .scope(async {
                report.call(("north".into(), 1_000)).await?;
                report.call(("south".into(), 3_000)).await
            })
            .await?;
        tags([("batch", "tuesday")])
            .scope(report.call(("north".into(), 10_000)))
            .await
    })
    .await?;
    // Results are written behind the calls; until the writer has stored them
    // a read is answered from its queue, which the counter does not see.
    // Flushing makes every read below a read of the storage.
    cache.flush().await;
    values.report();

    println!("\n== Loading one call: its record, no values");
    let key = report.digest(&("south".to_string(), 3_000))?;
    let lazy = cache.load(&key).await?.expect("south, 3000 was computed");
    let arguments = lazy.arguments();
    let names: Vec<&str> = arguments.names().collect();
    println!("{}::{}, arguments {names:?}", lazy.module(), lazy.name());
    println!("tags: {:?}", lazy.metadata().tags);
    println!("contains: {}", cache.contains(&key).await?);
    values.report();

    println!("\n== Reading values one at a time");
    let rows: u32 = arguments.get("rows").await?;
    println!("rows = {rows}");
    values.report();
    let text: String = lazy.result().await?;
    let lines = text.lines().count();
    println!("result: {lines} lines, {} bytes of text", text.len());
    values.report();
    let text: String = lazy.result().await?;
    println!("asked again: {} bytes of text", text.len());
    values.report();

    println!("\n== fetch(): every value in one go");
    let call = lazy.fetch().await?;
    values.report();
    let region: String = call.argument("region")?;
    let rows: u32 = call.argument("rows")?;
    let text: String = call.result()?;
    println!("{region}, {rows} rows, {} bytes of text", text.len());
    println!("same key: {}", call.digest() == lazy.digest());
    values.report();

    println!("\n== Listing calls: records only");
    for call in cache.query(&report.query()).await? {
        let short = cache.shrink(&call.digest()).await?;
        let batch = &call.metadata().tags["batch"];
        println!("{short}  {}  batch = {batch}", call.name());
    }
    values.report();

    println!("\n== Querying by argument, then loading the one result");
    let q = report.query().argument("rows", &10_000u32);
    let found = cache.query(&q).await?;
    println!("{} call with rows = 10000", found.len());
    values.report();
    let text: String = found[0].result().await?;
    println!("its result: {} bytes of text", text.len());
    values.report();

    println!("\n== A short digest stands for the call");
    let short = cache.shrink(&key).await?;
    let full = cache.expand(&short).await?;
    println!("{short} expands to {full}");
    println!("the key of south, 3000: {}", full == key);

    println!("\n== A cached function reads only the result of a hit");
    // A new instance, as a restarted process builds it: nothing in memory yet.
    let restarted = render_report();
    let text = with_cache(cache.clone(), restarted.call(("north".into(), 1_000))).await?;
    println!("north, 1000 rows: {} bytes of text", text.len());
    values.report();
    let text = with_cache(cache.clone(), restarted.call(("north".into(), 1_000))).await?;
    println!("again, from memory: {} bytes of text", text.len());
    values.report();
    Ok(())
}
