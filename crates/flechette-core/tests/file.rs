//! The file backend: damaged files, path safety, and processes sharing a cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flechette_core::storage::{CallStorage, FileCalls, FileValues, ValueStorage};
use flechette_core::{Cache, CallRecord, D, Digest, Metadata};

fn file_of(root: &Path, kind: &str, digest: &Digest) -> PathBuf {
    let hex = digest.to_hex();
    root.join(kind).join(&hex[..2]).join(hex)
}

fn corrupt_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for kind in ["values", "calls"] {
        let Ok(shards) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        for shard in shards.flatten() {
            for file in std::fs::read_dir(shard.path()).unwrap().flatten() {
                if file.file_name().to_string_lossy().contains(".corrupt-") {
                    found.push(file.path());
                }
            }
        }
    }
    found
}

async fn record(cache: &Cache, x: u64, result: &str) -> Digest {
    let record = CallRecord {
        name: "f".into(),
        module: "file_tests".into(),
        version: None,
        arguments: vec![("x".into(), cache.save_value(&x).await.unwrap())],
        result: cache.save_value(result).await.unwrap(),
        metadata: Metadata::default(),
    };
    cache.save_record(&record).await.unwrap()
}

#[tokio::test]
async fn values_and_records_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let key = record(&cache, 4, "four").await;
    assert!(file_of(dir.path(), "calls", &key).is_file());
    let reopened = Cache::open(dir.path()).unwrap();
    let call = reopened.load(&key).await.unwrap().unwrap();
    assert_eq!(call.result::<String>().await.unwrap(), "four");
    assert_eq!(
        reopened
            .expand(&reopened.shrink(&key).await.unwrap())
            .await
            .unwrap(),
        key
    );
}

#[tokio::test]
async fn a_truncated_value_is_a_miss_and_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let values = FileValues::open(dir.path().join("values")).unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let digest = cache.save_value(&vec!["some text"; 50]).await.unwrap();
    let path = file_of(dir.path(), "values", &digest);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    assert_eq!(values.get(&digest).await.unwrap(), None);
    assert!(!path.exists(), "the damaged file is moved out of the way");
    assert_eq!(corrupt_files(dir.path()).len(), 1, "and kept, not deleted");
    // The next write replaces it.
    cache.save_value(&vec!["some text"; 50]).await.unwrap();
    assert!(values.get(&digest).await.unwrap().is_some());
}

#[tokio::test]
async fn corrupt_and_truncated_records_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    let calls = FileCalls::open(dir.path().join("calls")).unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let garbled = record(&cache, 1, "one").await;
    let truncated = record(&cache, 2, "two").await;
    let swapped = record(&cache, 3, "three").await;

    std::fs::write(
        file_of(dir.path(), "calls", &garbled),
        b"\xc1\xff not msgpack",
    )
    .unwrap();
    let path = file_of(dir.path(), "calls", &truncated);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    // A valid record stored under the wrong key.
    let valid = std::fs::read(file_of(dir.path(), "calls", &swapped)).unwrap();
    let fourth = record(&cache, 4, "four").await;
    std::fs::write(file_of(dir.path(), "calls", &fourth), &valid).unwrap();

    assert!(
        cache.contains(&swapped).await.unwrap(),
        "the original is untouched"
    );
    for key in [garbled, truncated, fourth] {
        assert_eq!(calls.get(&key).await.unwrap(), None);
        assert!(!cache.contains(&key).await.unwrap());
    }
    assert_eq!(corrupt_files(dir.path()).len(), 3);
    let all = cache
        .query(&flechette_core::CallQuery::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "queries skip damaged records");
}

#[tokio::test]
async fn stray_files_in_the_directory_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let key = record(&cache, 1, "one").await;
    std::fs::write(dir.path().join("calls").join("README"), b"hello").unwrap();
    std::fs::create_dir_all(dir.path().join("calls").join("zz")).unwrap();
    std::fs::write(
        dir.path().join("calls").join("zz").join("not-a-digest"),
        b"x",
    )
    .unwrap();
    let found = cache
        .query(&flechette_core::CallQuery::new())
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest(), key);
    let shrunk = cache.shrink(&key).await.unwrap();
    assert_eq!(cache.expand(&shrunk).await.unwrap(), key);
    assert!(D("zzzz").is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn a_cache_directory_with_a_non_utf8_name_works() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let odd = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"cache-\xff\xfe"));
    let cache = Cache::open(&odd).unwrap();
    let key = record(&cache, 9, "nine").await;
    let call = cache.load(&key).await.unwrap().unwrap();
    assert_eq!(call.result::<String>().await.unwrap(), "nine");
}

const CHILD_DIR: &str = "FLECHETTE_TEST_CHILD_DIR";
const CHILD_ID: &str = "FLECHETTE_TEST_CHILD_ID";
const KEYS: u64 = 150;

/// Writes its own keys and a shared range, then waits to read every key the
/// other process writes.
fn child(dir: &str, id: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cache = Cache::open(dir).unwrap();
        let other = 1 - id;
        for i in 0..KEYS {
            record(&cache, id * 1000 + i, &format!("p{id}-{i}")).await;
            record(&cache, 5000 + i, &format!("shared-{i}")).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < KEYS {
            assert!(
                Instant::now() < deadline,
                "process {id} saw only {seen} keys of the other"
            );
            seen = 0;
            for i in 0..KEYS {
                let key = flechette_core::call_key(
                    "f",
                    "file_tests",
                    None,
                    &[("x", flechette_core::digest(&(other * 1000 + i)).unwrap())],
                );
                if let Some(call) = cache.load(&key).await.unwrap() {
                    assert_eq!(
                        call.result::<String>().await.unwrap(),
                        format!("p{other}-{i}")
                    );
                    seen += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn two_processes_share_one_file_cache() {
    if let (Ok(dir), Ok(id)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ID)) {
        child(&dir, id.parse().unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "two_processes_share_one_file_cache",
                    "--exact",
                    "--nocapture",
                ])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_ID, id.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a child process failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        corrupt_files(dir.path()).is_empty(),
        "no torn file was ever read"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cache = Cache::open(dir.path()).unwrap();
        let all = cache
            .query(&flechette_core::CallQuery::new())
            .await
            .unwrap();
        assert_eq!(all.len() as u64, 3 * KEYS);
        for call in all {
            call.fetch().await.unwrap();
        }
    });
}
