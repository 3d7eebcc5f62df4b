//! Dog-piling: concurrent misses on one key, with and without collapsing.
//!
//! The scenario of the py-memoize README: 50 batches of 5 concurrent calls,
//! 70 ms apart, against a backend that takes 10 ms; values are refreshed
//! after 200 ms. flechette (one computation per key, refreshed in the
//! background while the old value is served) runs side by side with a naive
//! get-then-insert cache with a 200 ms TTL.
//!
//! Run with `cargo run --example dogpile`; add `-- --expire-after-ms 400`
//! to also expire flechette's values after 400 ms, and `--paused` to run on
//! tokio's paused test clock (exact and instant; the tests use it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn};
use tokio::sync::Mutex;
use tokio::time::Instant;

const CONCURRENT: usize = 5;
const BATCHES: usize = 50;
const BETWEEN: Duration = Duration::from_millis(70);
const TTL: Duration = Duration::from_millis(200);
const BACKEND: Duration = Duration::from_millis(10);
const BLOCKED: Duration = Duration::from_millis(5);

/// The slow backend: counts its calls.
async fn backend(calls: &AtomicUsize) -> usize {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(BACKEND).await;
    n
}

/// A cache that checks, and on a miss computes and inserts: every caller
/// that misses at the same time calls the backend.
struct Naive {
    entries: Mutex<HashMap<u8, (Instant, usize)>>,
    calls: Arc<AtomicUsize>,
}

impl Naive {
    async fn get(&self) -> usize {
        if let Some((at, v)) = self.entries.lock().await.get(&0)
            && at.elapsed() < TTL
        {
            return *v;
        }
        let v = backend(&self.calls).await;
        self.entries.lock().await.insert(0, (Instant::now(), v));
        v
    }
}

fn main() {
    let paused = std::env::args().any(|a| a == "--paused");
    let runtime = if paused {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    runtime.expect("a tokio runtime").block_on(scenario());
}

fn expire_after() -> Option<Duration> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--expire-after-ms")?;
    let ms = args.get(at + 1)?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

async fn scenario() {
    let flechette_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&flechette_calls);
    let mut builder = CachedFn::builder("backend")
        .cache(Cache::memory())
        .update_after(TTL);
    if let Some(expire) = expire_after() {
        builder = builder.expire_after(expire);
    }
    let cached = Arc::new(builder.build(move |(): ()| {
        let calls = Arc::clone(&calls);
        async move { backend(&calls).await }
    }));
    let naive = Arc::new(Naive {
        entries: Mutex::new(HashMap::new()),
        calls: Arc::new(AtomicUsize::new(0)),
    });

    let mut blocked = 0;
    for _ in 0..BATCHES {
        let batch: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let cached = Arc::clone(&cached);
                tokio::spawn(async move {
                    let start = Instant::now();
                    cached.call(()).await.expect("the backend never fails");
                    start.elapsed()
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for call in batch {
            slowest = slowest.max(call.await.expect("a call task panicked"));
        }
        if slowest >= BLOCKED {
            blocked += 1;
        }
        let batch: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let naive = Arc::clone(&naive);
                tokio::spawn(async move { naive.get().await })
            })
            .collect();
        for call in batch {
            call.await.expect("a call task panicked");
        }
        tokio::time::sleep(BETWEEN).await;
    }

    let predicted = (BETWEEN.as_millis() as usize * BATCHES) / TTL.as_millis() as usize;
    println!(
        "flechette backend calls: {}",
        flechette_calls.load(Ordering::SeqCst)
    );
    println!(
        "naive backend calls: {}",
        naive.calls.load(Ordering::SeqCst)
    );
    println!("predicted backend calls: {predicted}");
    println!("flechette blocked batches: {blocked}");
}
