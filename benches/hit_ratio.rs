//! Hit ratios of the in-process tier against moka's on Zipf traces: 100,000
//! keys, 300,000 requests, a fixed seed, α 0.9 and 0.7, capacities 1,000 and
//! 10,000. Both caches see the same trace; a miss inserts the key.
//!
//! `cargo bench -p flechette-benches --bench hit_ratio` prints one line per
//! trace: `hit_ratio <trace> flechette = X.XXX moka = X.XXX`.

use flechette::{Cache, CachedFn};

const KEYS: usize = 100_000;
const REQUESTS: usize = 300_000;
const SEED: u64 = 0x5eed_f1ec_4e77_e000;

/// splitmix64: a small, well-mixed generator, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `REQUESTS` keys drawn from a Zipf distribution of exponent `alpha` over
/// `KEYS` keys (key 0 the most popular), by inverting the cumulative weights.
fn zipf_trace(alpha: f64, seed: u64) -> Vec<u64> {
    let mut cumulative = Vec::with_capacity(KEYS);
    let mut total = 0.0;
    for rank in 1..=KEYS {
        total += 1.0 / (rank as f64).powf(alpha);
        cumulative.push(total);
    }
    let mut rng = Rng(seed);
    (0..REQUESTS)
        .map(|_| {
            let u = rng.unit() * total;
            cumulative.partition_point(|&c| c < u) as u64
        })
        .collect()
}

async fn flechette_ratio(trace: &[u64], capacity: u64) -> f64 {
    let f = CachedFn::builder("hit_ratio")
        .args(["k"])
        .cache(Cache::memory())
        .capacity(capacity)
        .build(|(k,): (u64,)| async move { k });
    for &k in trace {
        f.call((k,)).await.unwrap();
    }
    let stats = f.stats();
    stats.hits as f64 / trace.len() as f64
}

async fn moka_ratio(trace: &[u64], capacity: u64) -> f64 {
    let cache: moka::future::Cache<u64, u64> = moka::future::Cache::new(capacity);
    let mut hits = 0u64;
    for &k in trace {
        if cache.get(&k).await.is_some() {
            hits += 1;
        } else {
            cache.insert(k, k).await;
        }
    }
    hits as f64 / trace.len() as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for alpha in [0.9, 0.7] {
        let trace = zipf_trace(alpha, SEED);
        for capacity in [1_000u64, 10_000] {
            let (ours, moka) = rt.block_on(async {
                (
                    flechette_ratio(&trace, capacity).await,
                    moka_ratio(&trace, capacity).await,
                )
            });
            println!("hit_ratio zipf{alpha}_cap{capacity} flechette = {ours:.3} moka = {moka:.3}");
        }
    }
}
