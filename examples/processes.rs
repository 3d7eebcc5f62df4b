//! Several processes sharing one file cache.
//!
//! The parent starts worker processes (this same program, re-invoked with
//! `--worker`), which compute overlapping ranges of keys into one cache
//! directory. Each worker logs the keys it had to compute; the parent then
//! shows that every result is present and that no process computed a key
//! twice. A key one worker stored is a hit for the others when they get to
//! it later.
//!
//! Run with `cargo run --example processes`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flechette::{Cache, CachedFn};

const WORKERS: u64 = 3;
const KEYS_PER_WORKER: u64 = 20;
const OVERLAP_STEP: u64 = 8;

fn cube(dir: &Path, log: Arc<Mutex<Vec<u64>>>) -> CachedFn<(u64,), u64> {
    let cache = Cache::open(dir.join("cache")).expect("the cache directory opens");
    CachedFn::builder("cube")
        .module("processes")
        .args(["x"])
        .cache(cache)
        .build(move |(x,): (u64,)| {
            log.lock().expect("log lock").push(x);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                x * x * x
            }
        })
}

async fn worker(id: u64, dir: PathBuf) {
    let computed = Arc::new(Mutex::new(Vec::new()));
    let f = cube(&dir, computed.clone());
    let start = id * OVERLAP_STEP;
    for x in start..start + KEYS_PER_WORKER {
        assert_eq!(f.call((x,)).await.expect("cube never fails"), x * x * x);
        // Twice: the second call is always a hit in this process.
        f.call((x,)).await.expect("cube never fails");
    }
    // Results are written behind the callers: write them before exiting.
    f.cache().flush().await;
    let mut file = std::fs::File::create(dir.join(format!("worker-{id}.log"))).expect("log file");
    for x in computed.lock().expect("log lock").iter() {
        writeln!(file, "{x}").expect("log write");
    }
}

fn parent() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = std::env::current_exe().expect("this program's path");
    let children: Vec<_> = (0..WORKERS)
        .map(|id| {
            Command::new(&exe)
                .arg("--worker")
                .arg(id.to_string())
                .arg(dir.path())
                .spawn()
                .expect("a worker process starts")
        })
        .collect();
    for mut child in children {
        assert!(
            child.wait().expect("a worker ends").success(),
            "a worker failed"
        );
    }

    let mut computed: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for id in 0..WORKERS {
        let log = std::fs::read_to_string(dir.path().join(format!("worker-{id}.log")))
            .expect("a worker log");
        for line in log.lines() {
            computed
                .entry(line.parse().expect("a key"))
                .or_default()
                .push(id);
        }
        let n = log.lines().count();
        println!("worker {id} computed: {n} of its {KEYS_PER_WORKER} keys");
    }
    let keys = (WORKERS - 1) * OVERLAP_STEP + KEYS_PER_WORKER;
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let present = rt.block_on(async {
        let f = cube(dir.path(), Arc::default());
        let mut present = 0;
        for x in 0..keys {
            if f.contains((x,)).await.expect("the cache reads") {
                present += 1;
            }
        }
        present
    });
    let most_per_process = computed
        .values()
        .map(|ids| {
            let mut per = BTreeMap::new();
            for id in ids {
                *per.entry(id).or_insert(0) += 1;
            }
            per.into_values().max().unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let shared = computed.values().filter(|ids| ids.len() == 1).count() as u64;
    println!("keys: {keys}, results present: {present}");
    println!("keys computed by exactly one process: {shared}");
    println!("most computations of one key in one process: {most_per_process}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        let id = args[2].parse().expect("a worker id");
        let dir = PathBuf::from(&args[3]);
        tokio::runtime::Runtime::new()
            .expect("a tokio runtime")
            .block_on(worker(id, dir));
    } else {
        parent();
    }
}
