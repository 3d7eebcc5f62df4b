//! Digest speed: a small key, and a large byte vector against raw SHA-256.
//!
//! `cargo bench -p flechette-core --bench digest` prints criterion's report,
//! then `ratio digest/raw_sha256 = X.XX` (target at most 1.25).

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use sha2::{Digest as _, Sha256};

fn small(c: &mut Criterion) {
    let key = (123_456_789u64, String::from("sixteen-chars-xx"));
    c.bench_function("digest_u64_string16", |b| {
        b.iter(|| flechette_core::digest(black_box(&key)).unwrap())
    });
    c.bench_function("digest_u64", |b| {
        b.iter(|| flechette_core::digest(black_box(&5u64)).unwrap())
    });
    c.bench_function("of_encoded_23_bytes", |b| {
        b.iter(|| flechette_core::Digest::of_encoded(black_box(&[7u8; 23])))
    });
    let same_bytes = [7u8; 41];
    c.bench_function("raw_sha256_41_bytes", |b| {
        b.iter(|| Sha256::digest(black_box(&same_bytes)))
    });
}

fn large(c: &mut Criterion) {
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut group = c.benchmark_group("digest_64mib");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("flechette_digest", |b| {
        b.iter(|| flechette_core::digest(black_box(&data)).unwrap())
    });
    group.bench_function("raw_sha256", |b| {
        b.iter(|| Sha256::digest(black_box(&data)))
    });
    group.finish();
}

criterion_group!(benches, small, large);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    support::print_ratio(
        "digest/raw_sha256",
        "digest_64mib",
        "flechette_digest",
        "raw_sha256",
    );
    if let Some(ns) = support::median_ns("digest_u64_string16", "") {
        println!("digest of (u64, 16-char String) = {ns:.1} ns (target at most 150 ns)");
    }
}
