//! The executor wrapper on warm keys: 100,000 cached calls spawned through
//! `Executor::spawn_cached` (each a hit: a complete handle, no task) against
//! 100,000 plain `tokio::spawn`s of the same work, uncached.
//!
//! `cargo bench -p flechette-benches --bench executor` prints both wall
//! times (median of rounds) and `ratio wrapped_hits/plain_spawn = X.XX`.

use std::hint::black_box;
#[path = "../crates/flechette-core/benches/support/mod.rs"]
mod support;

use std::time::Instant;

use flechette::{Cache, CachedFn, Executor};

const CALLS: u64 = 100_000;
const KEYS: u64 = 1_000;

fn work(x: u64) -> u64 {
    x.wrapping_mul(2_654_435_761) >> 7
}

fn main() {
    let rounds = if std::env::args().any(|a| a == "--bench") {
        11
    } else {
        1
    };
    let rt = support::two_workers();
    let f = CachedFn::builder("executor_bench")
        .args(["x"])
        .cache(Cache::memory())
        .build(|(x,): (u64,)| async move { work(x) });
    let (mut wrapped, mut plain) = (Vec::new(), Vec::new());
    // Both loops run inside a worker task, as a service's handlers do.
    let (wrapped, plain) = rt.block_on(async move {
        tokio::spawn(async move {
            let exec = Executor::current();
            for x in 0..KEYS {
                exec.spawn_cached(&f, (x,)).await.unwrap();
            }
            for _ in 0..rounds {
                let start = Instant::now();
                for i in 0..CALLS {
                    let handle = exec.spawn_cached(&f, (i % KEYS,));
                    black_box(handle.await.unwrap());
                }
                wrapped.push(start.elapsed());

                let start = Instant::now();
                for i in 0..CALLS {
                    let x = i % KEYS;
                    black_box(tokio::spawn(async move { work(x) }).await.unwrap());
                }
                plain.push(start.elapsed());
            }
            assert_eq!(exec.stats().started, KEYS, "every timed call was a hit");
            (wrapped, plain)
        })
        .await
        .unwrap()
    });
    let (wrapped, plain) = (support::median(wrapped), support::median(plain));
    println!("{CALLS} calls on {KEYS} warm keys, median of {rounds} rounds");
    println!("executor wrapper (hits): {wrapped:?}");
    println!("plain tokio::spawn:      {plain:?}");
    println!(
        "ratio wrapped_hits/plain_spawn = {:.2}",
        wrapped.as_secs_f64() / plain.as_secs_f64()
    );
}
