//! File storage: one MessagePack file per digest in a directory, sharded by
//! the first two hex characters, written atomically (temp file, fsync,
//! rename) so readers never see a torn file and processes may share it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::{CallStorage, StorageError, ValueStorage, encode_record};
use crate::{CallQuery, CallRecord, Digest, DigestPrefix};

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
struct Shards {
    root: Arc<PathBuf>,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

impl Shards {
    fn open(root: PathBuf) -> Result<Self, StorageError> {
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        Ok(Self {
            root: Arc::new(root),
        })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    fn read(&self, digest: &Digest) -> Result<Option<(PathBuf, Vec<u8>)>, StorageError> {
        let path = self.path(digest);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some((path, bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn write(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StorageError> {
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

    fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
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

    /// Moves a damaged file aside (so the next write can replace it and
    /// nothing is lost) and warns; unless another writer has replaced it
    /// since `seen` was read.
    fn quarantine(&self, path: &Path, seen: &[u8], why: &str) {
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
fn read_dir_names(dir: &Path) -> Result<Vec<String>, StorageError> {
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
/// never changes).
async fn write_many(
    shards: &Shards,
    files: Vec<(Digest, Bytes)>,
    skip_present: bool,
) -> Result<(), StorageError> {
    if files.is_empty() {
        return Ok(());
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
            for (digest, bytes) in chunk {
                if skip_present && shards.contains(&digest) {
                    continue;
                }
                shards.write(&digest, &bytes)?;
            }
            Ok(())
        }));
    }
    let mut outcome = Ok(());
    for thread in threads {
        let written = thread
            .await
            .map_err(|e| StorageError::Backend(Box::new(e)))
            .and_then(|r| r);
        if outcome.is_ok() {
            outcome = written;
        }
    }
    outcome
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(Box::new(e)))?
}

/// Values as files under a directory.
#[derive(Debug, Clone)]
pub struct FileValues {
    shards: Shards,
}

impl FileValues {
    /// Opens (creating if needed) the value directory `dir`.
    ///
    /// # Errors
    ///
    /// Fails when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        Ok(Self {
            shards: Shards::open(dir.into())?,
        })
    }
}

#[async_trait]
impl ValueStorage for FileValues {
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        let (shards, digest) = (self.shards.clone(), *digest);
        blocking(move || {
            let Some((path, bytes)) = shards.read(&digest)? else {
                return Ok(None);
            };
            if Digest::of_encoded(&bytes) != digest {
                shards.quarantine(&path, &bytes, "content does not match its digest");
                return Ok(None);
            }
            Ok(Some(Bytes::from(bytes)))
        })
        .await
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        let (shards, digest) = (self.shards.clone(), *digest);
        blocking(move || shards.write(&digest, &bytes)).await
    }

    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        let (shards, digest) = (self.shards.clone(), *digest);
        blocking(move || Ok(shards.contains(&digest))).await
    }

    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        write_many(&self.shards, values.to_vec(), true).await
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        let (shards, digest) = (self.shards.clone(), *digest);
        blocking(move || shards.remove(&digest)).await
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        let (shards, prefix) = (self.shards.clone(), prefix.cloned());
        blocking(move || shards.list(prefix.as_ref())).await
    }
}

/// Call records as files under a directory.
#[derive(Debug, Clone)]
pub struct FileCalls {
    shards: Shards,
}

impl FileCalls {
    /// Opens (creating if needed) the record directory `dir`.
    ///
    /// # Errors
    ///
    /// Fails when the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        Ok(Self {
            shards: Shards::open(dir.into())?,
        })
    }

    /// The record under `key`; a damaged one is set aside and reported as
    /// [`StorageError::Damaged`].
    fn read(shards: &Shards, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        let Some((path, bytes)) = shards.read(key)? else {
            return Ok(None);
        };
        let why = match rmp_serde::from_slice::<CallRecord>(&bytes) {
            Ok(record) if record.key() == *key => return Ok(Some(record)),
            Ok(_) => "record does not match its key".to_owned(),
            Err(e) => format!("record does not decode: {e}"),
        };
        shards.quarantine(&path, &bytes, &why);
        Err(StorageError::Damaged { key: *key, why })
    }

    /// [`read`](Self::read), with a damaged record as absent.
    fn read_or_none(shards: &Shards, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        match Self::read(shards, key) {
            Err(StorageError::Damaged { .. }) => Ok(None),
            other => other,
        }
    }
}

#[async_trait]
impl CallStorage for FileCalls {
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        let (shards, key) = (self.shards.clone(), *key);
        blocking(move || Self::read_or_none(&shards, &key)).await
    }

    async fn get_with_result(
        &self,
        key: &Digest,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, StorageError> {
        let (shards, key) = (self.shards.clone(), *key);
        let record = blocking(move || Self::read(&shards, &key)).await?;
        Ok(record.map(|record| (record, None)))
    }

    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError> {
        let bytes = encode_record(record)?;
        let (shards, key) = (self.shards.clone(), *key);
        blocking(move || shards.write(&key, &bytes)).await
    }

    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        let files = records
            .iter()
            .map(|(key, record)| Ok((*key, Bytes::from(encode_record(record)?))))
            .collect::<Result<Vec<_>, StorageError>>()?;
        write_many(&self.shards, files, false).await
    }

    async fn remove(&self, key: &Digest) -> Result<bool, StorageError> {
        let (shards, key) = (self.shards.clone(), *key);
        blocking(move || shards.remove(&key)).await
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        let (shards, prefix) = (self.shards.clone(), prefix.cloned());
        blocking(move || shards.list(prefix.as_ref())).await
    }

    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        let (shards, query) = (self.shards.clone(), query.clone());
        blocking(move || {
            let mut out = Vec::new();
            for key in shards.list(None)? {
                if let Some(record) = Self::read_or_none(&shards, &key)?
                    && query.matches(&record)
                {
                    out.push((key, record));
                }
            }
            Ok(out)
        })
        .await
    }
}
