//! A directory of digest-named files, sharded by their first two hex
//! characters, written atomically (temp file, fsync, rename), and the
//! blocking pool that file I/O runs on.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::storage::StorageError;
use crate::{Digest, DigestPrefix};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// 64 bits that differ between processes (and containers whose process ids
/// coincide): the standard library's per-process random hash keys, mixed
/// with the time.
fn random_tag() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// A directory of digest-named files. Paths are built from parsed
/// [`Digest`]s only, so no string can address a file outside the root.
#[derive(Debug, Clone)]
pub(super) struct Shards {
    root: Arc<PathBuf>,
}

pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

impl Shards {
    pub(super) fn open(root: PathBuf) -> Result<Self, StorageError> {
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        Ok(Self {
            root: Arc::new(root),
        })
    }

    pub(super) fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    pub(super) fn read(&self, digest: &Digest) -> Result<Option<(PathBuf, Vec<u8>)>, StorageError> {
        let path = self.path(digest);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some((path, bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    pub(super) fn write(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path(digest);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let temp = dir.join(format!(
            ".tmp-{}-{}-{:016x}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            random_tag()
        ));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_err("write", &path)(e));
        }
        Ok(())
    }

    pub(super) fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    pub(super) fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub(super) fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        let shards: Vec<PathBuf> = match prefix {
            Some(p) => vec![self.root.join(p.shard())],
            None => read_dir_names(&self.root)?
                .into_iter()
                .filter(|n| n.len() == 2)
                .map(|n| self.root.join(n))
                .collect(),
        };
        let mut out = Vec::new();
        for shard in shards {
            for name in read_dir_names(&shard)? {
                if let Ok(d) = name.parse::<Digest>()
                    && prefix.is_none_or(|p| p.matches(&d))
                {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Marks the file of `digest` as written now (its modification time):
    /// a store of a value already there claims it anew. `false` when there
    /// is no such file.
    pub(super) fn touch(&self, digest: &Digest) -> Result<bool, StorageError> {
        let path = self.path(digest);
        let touched = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        match touched {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("touch", &path)(e)),
        }
    }

    /// When the file of `digest` was last written; `None` when there is
    /// none.
    pub(super) fn written(
        &self,
        digest: &Digest,
    ) -> Result<Option<crate::Timestamp>, StorageError> {
        let path = self.path(digest);
        match fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(at) => Ok(Some(crate::Timestamp::from(at))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    /// Removes files set aside as damaged (`.corrupt-*`) and temporary
    /// files (`.tmp-*`) last written before `before`.
    pub(super) fn clear_debris(
        &self,
        before: crate::Timestamp,
    ) -> Result<crate::storage::Debris, StorageError> {
        let mut debris = crate::storage::Debris::default();
        for shard in read_dir_names(&self.root)? {
            let dir = self.root.join(&shard);
            if shard.len() != 2 || !dir.is_dir() {
                continue;
            }
            for name in read_dir_names(&dir)? {
                let corrupt = name.contains(".corrupt-");
                if !corrupt && !name.starts_with(".tmp-") {
                    continue;
                }
                let path = dir.join(&name);
                let old = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| crate::Timestamp::from(at) < before);
                if !old {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) if corrupt => debris.corrupt += 1,
                    Ok(()) => debris.temp += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", &path)(e)),
                }
            }
        }
        Ok(debris)
    }

    /// Every digest-named file with its length in bytes.
    pub(super) fn sizes(&self) -> Result<Vec<(Digest, u64)>, StorageError> {
        let mut out = Vec::new();
        for shard in read_dir_names(&self.root)? {
            if shard.len() != 2 {
                continue;
            }
            let dir = self.root.join(&shard);
            for name in read_dir_names(&dir)? {
                if let Ok(d) = name.parse::<Digest>()
                    && let Ok(meta) = fs::metadata(dir.join(&name))
                {
                    out.push((d, meta.len()));
                }
            }
        }
        Ok(out)
    }

    /// Moves a damaged file aside (so the next write can replace it and
    /// nothing is lost) and warns; unless another writer has replaced it
    /// since `seen` was read.
    pub(super) fn quarantine(&self, path: &Path, seen: &[u8], why: &str) {
        if fs::read(path).is_ok_and(|now| now != seen) {
            return;
        }
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".corrupt-{}", crate::Timestamp::now().0));
        match fs::rename(path, &aside) {
            Ok(()) => tracing::warn!(?path, ?aside, "damaged cache file moved aside: {why}"),
            Err(e) => {
                tracing::warn!(?path, error = %e, "damaged cache file could not be moved aside: {why}")
            }
        }
    }
}

/// File names in a directory; a missing directory has none. Names that are
/// not UTF-8 cannot be digests and are skipped.
pub(super) fn read_dir_names(dir: &Path) -> Result<Vec<String>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    Ok(entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect())
}

/// Blocking-pool threads that write one batch of files at once: their
/// fsyncs overlap, and the file system commits them together.
const BATCH_WRITERS: usize = 8;

/// Writes many files (each atomically), on several blocking threads;
/// `skip_present` skips a digest whose file exists (a value, whose content
/// never changes), marking it written now instead. Returns the digests
/// written (or found present), and the first failure.
pub(super) async fn write_many(
    shards: &Shards,
    files: Vec<(Digest, Bytes)>,
    skip_present: bool,
) -> (Vec<Digest>, Result<(), StorageError>) {
    if files.is_empty() {
        return (Vec::new(), Ok(()));
    }
    let per_thread = files.len().div_ceil(BATCH_WRITERS);
    let mut files = files.into_iter();
    let mut threads = Vec::new();
    loop {
        let chunk: Vec<_> = files.by_ref().take(per_thread).collect();
        if chunk.is_empty() {
            break;
        }
        let shards = shards.clone();
        threads.push(tokio::task::spawn_blocking(move || {
            let mut done = Vec::with_capacity(chunk.len());
            for (digest, bytes) in chunk {
                // A value already there is claimed anew, not written again.
                let present = match skip_present.then(|| shards.touch(&digest)) {
                    Some(Err(e)) => return (done, Err(e)),
                    Some(Ok(present)) => present,
                    None => false,
                };
                if !present && let Err(e) = shards.write(&digest, &bytes) {
                    return (done, Err(e));
                }
                done.push(digest);
            }
            (done, Ok(()))
        }));
    }
    let mut outcome = Ok(());
    let mut written = Vec::new();
    for thread in threads {
        let (done, result) = match thread.await {
            Ok(finished) => finished,
            Err(e) => (Vec::new(), Err(StorageError::Backend(Box::new(e)))),
        };
        written.extend(done);
        if outcome.is_ok() {
            outcome = result;
        }
    }
    (written, outcome)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(Box::new(e)))?
}
