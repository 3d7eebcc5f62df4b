//! File backend: put and get of 1 KiB and 1 MiB values.
//!
//! A put writes a temp file, fsyncs and renames it: its cost is the disk's.
//! A get reads the file and verifies it against its digest.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flechette_core::Digest;
use flechette_core::encoding::to_vec;
use flechette_core::storage::{FileValues, ValueStorage};

fn file_backend(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = FileValues::open(dir.path()).unwrap();
    let mut group = c.benchmark_group("file_backend");
    group.sample_size(20);
    for (label, size) in [("1KiB", 1usize << 10), ("1MiB", 1 << 20)] {
        let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let bytes = Bytes::from(to_vec(&value).unwrap());
        let digest = Digest::of_encoded(&bytes);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("put_{label}"), |b| {
            b.iter(|| rt.block_on(store.put(&digest, bytes.clone())).unwrap())
        });
        group.bench_function(format!("get_{label}"), |b| {
            b.iter(|| black_box(rt.block_on(store.get(&digest)).unwrap().unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, file_backend);
criterion_main!(benches);
