//! File storage: one MessagePack file per digest in a directory, sharded by
//! the first two hex characters, written atomically (temp file, fsync,
//! rename) so readers never see a torn file and processes may share it;
//! bounded in bytes of disk, forgetting expired calls by itself.

mod calls;
mod index;
mod shards;
mod values;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{DEFAULT_SWEEP_BUDGET, DEFAULT_SWEEP_INTERVAL, StorageError, SweepReport, Sweeper};
use crate::{Digest, Timestamp};
use index::Index;
use shards::{Shards, blocking};

pub use calls::FileCalls;
pub use values::FileValues;

/// The values and calls of one file cache level: `dir/values` and
/// `dir/calls` (what [`Cache::open`](crate::Cache::open) opens).
///
/// # Bounds
///
/// With [`max_bytes`](FileBuilder::max_bytes) (none unless set), the store
/// keeps the disk its files take (counted in 4 KiB blocks) within that
/// bound: a write that takes it over evicts the least recently read of 16
/// sampled calls, until it is within, with the values only those calls
/// referred to. A value a remaining call refers to is never evicted, nor
/// one written again since the evicted call was stored (a writer between
/// its values and its record has claimed it).
///
/// # Expiry
///
/// A call past its `expire_after` is removed when it is read, and by a
/// sweep every [`sweep_interval`](FileBuilder::sweep_interval) (30 s unless
/// set) on the runtime of the first write, which examines at most
/// [`sweep_budget`](FileBuilder::sweep_budget) calls and stops with the
/// store. The values only it referred to go with it.
///
/// # The index
///
/// What the store knows of its directory (sizes, reads, expiry, which
/// values each call refers to) it keeps in memory, about 100 bytes a call:
/// opening a store reads every record once. Calls written by another
/// process after that are learnt when this one reads them; until then,
/// another process's record that shares a value with a call this one
/// evicts may lose that value, and then reads as a miss. Bound a directory
/// that several processes write from one of them, or give each its own.
#[derive(Clone, Debug)]
pub struct FileStore {
    values: Shards,
    calls: Shards,
    state: Arc<State>,
}

/// Builds a [`FileStore`].
#[derive(Clone, Debug)]
#[must_use]
pub struct FileBuilder {
    dir: PathBuf,
    max_bytes: Option<u64>,
    sweep_interval: Option<Duration>,
    sweep_budget: usize,
}

impl FileBuilder {
    /// The bound, in bytes of disk taken by the store's files.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// How often the periodic sweep runs; `None` for never (expired calls
    /// then go only when read, or by [`Cache::sweep`](crate::Cache::sweep)).
    pub fn sweep_interval(mut self, every: Option<Duration>) -> Self {
        self.sweep_interval = every;
        self
    }

    /// How many calls one sweep examines at most.
    pub fn sweep_budget(mut self, calls: usize) -> Self {
        self.sweep_budget = calls;
        self
    }

    /// Opens the store: creates the directories if needed and reads what
    /// they hold into the index.
    ///
    /// # Errors
    ///
    /// Fails when a directory cannot be created or listed.
    pub fn open(self) -> Result<FileStore, StorageError> {
        let values = Shards::open(self.dir.join("values"))?;
        let calls = Shards::open(self.dir.join("calls"))?;
        let state = State::open(
            Some(values.clone()),
            Some(calls.clone()),
            self.max_bytes,
            self.sweep_interval,
            self.sweep_budget,
        )?;
        Ok(FileStore {
            values,
            calls,
            state: Arc::new(state),
        })
    }
}

impl FileStore {
    /// A builder for the store in `dir`: unbounded, sweeping every 30 s.
    pub fn builder(dir: impl AsRef<Path>) -> FileBuilder {
        FileBuilder {
            dir: dir.as_ref().to_path_buf(),
            max_bytes: None,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            sweep_budget: DEFAULT_SWEEP_BUDGET,
        }
    }

    /// Opens the store in `dir`, unbounded.
    ///
    /// # Errors
    ///
    /// As [`FileBuilder::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::builder(dir).open()
    }

    /// The store's values, as value storage.
    pub fn values(&self) -> FileValues {
        FileValues::on(self.values.clone(), Arc::clone(&self.state))
    }

    /// The store's calls, as call storage.
    pub fn calls(&self) -> FileCalls {
        FileCalls::on(self.calls.clone(), Arc::clone(&self.state))
    }

    /// Bytes of disk the store's files take, as the bound counts them.
    pub fn used_bytes(&self) -> u64 {
        self.state.index().used()
    }

    /// How many calls the store knows.
    pub fn calls_len(&self) -> usize {
        self.state.index().calls_len()
    }

    /// Waits until `n` periodic sweeps have finished (see
    /// [`Sweeper::finished`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn sweeps_finished(&self, n: u64) {
        self.state.sweeper.finished(n).await;
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The directories of a store, its index and its sweeper.
#[derive(Debug)]
struct State {
    values: Option<Shards>,
    calls: Option<Shards>,
    index: Mutex<Index>,
    max_bytes: Option<u64>,
    sweep_budget: usize,
    sweeper: Sweeper,
}

impl State {
    /// A store over `values` and `calls` (either may be absent: a value or
    /// call storage opened on its own), their files read into the index.
    fn open(
        values: Option<Shards>,
        calls: Option<Shards>,
        max_bytes: Option<u64>,
        sweep_interval: Option<Duration>,
        sweep_budget: usize,
    ) -> Result<Self, StorageError> {
        let mut index = Index::default();
        if let Some(values) = &values {
            for (digest, len) in values.sizes()? {
                index.found_value(digest, len);
            }
        }
        if let Some(calls) = &calls {
            for (key, len) in calls.sizes()? {
                if let Ok(Some((record, _))) = calls::read(calls, &key) {
                    index.found_call(key, &record, len);
                }
            }
        }
        Ok(Self {
            values,
            calls,
            index: Mutex::new(index),
            max_bytes,
            sweep_budget,
            sweeper: Sweeper::new(sweep_interval),
        })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the files of values a removed call left behind; how many.
    fn remove_values(&self, orphans: &[Digest]) -> Result<usize, StorageError> {
        let Some(values) = &self.values else {
            return Ok(0);
        };
        let mut removed = 0;
        for digest in orphans {
            if values.remove(digest)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the call `key` with the values only it referred to, with
    /// the index locked; `Some(values removed)` when it was known.
    fn drop_call(&self, index: &mut Index, key: &Digest) -> Result<Option<usize>, StorageError> {
        let Some(orphans) = index.remove_call(key) else {
            return Ok(None);
        };
        if let Some(calls) = &self.calls {
            calls.remove(key)?;
        }
        for digest in &orphans {
            index.forget_value(digest);
        }
        self.remove_values(&orphans).map(Some)
    }

    /// Removes values a replaced or unwritten record left behind, with the
    /// index locked.
    fn drop_orphans(&self, index: &mut Index, orphans: &[Digest]) -> Result<(), StorageError> {
        for digest in orphans {
            index.forget_value(digest);
        }
        self.remove_values(orphans).map(drop)
    }

    /// Evicts calls while over the bound, with the index locked.
    fn enforce(&self, index: &mut Index) -> Result<(), StorageError> {
        let Some(max) = self.max_bytes else {
            return Ok(());
        };
        // Values no call refers to go first, once older than gc's grace
        // period (a writer may be about to refer to a younger one): a bound
        // filled by them must not take every call.
        let before = Timestamp(crate::clock::now().0 - micros(crate::DEFAULT_GC_GRACE));
        while index.used() > max {
            let loose = index.loose_values(before);
            if !loose.is_empty() {
                self.drop_orphans(index, &loose)?;
                continue;
            }
            let Some(victim) = index.victim() else { break };
            self.drop_call(index, &victim)?;
        }
        Ok(())
    }

    /// Removes up to `budget` examined calls that are expired at `now`.
    fn sweep(&self, budget: usize, now: Timestamp) -> Result<SweepReport, StorageError> {
        let mut index = self.index();
        let (expired, examined) = index.expired(budget, now);
        let mut report = SweepReport {
            examined,
            ..SweepReport::default()
        };
        for key in expired {
            if let Some(values) = self.drop_call(&mut index, &key)? {
                report.expired += 1;
                report.values += values;
            }
        }
        Ok(report)
    }

    /// Starts the periodic sweep unless it runs.
    fn ensure_sweeper(self: &Arc<Self>) {
        if !self.sweeper.idle() {
            return;
        }
        let weak = Arc::downgrade(self);
        self.sweeper.ensure(move || {
            let state = weak.upgrade()?;
            Some(async move {
                let budget = state.sweep_budget;
                let now = crate::clock::now();
                let swept = blocking(move || state.sweep(budget, now)).await;
                if let Err(e) = swept {
                    tracing::warn!(error = %e, "file cache: the sweep of expired calls failed");
                }
            })
        });
    }
}
