//! How a file is opened: its bound, its sweep, where lookups run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flechette_core::storage::{DEFAULT_SWEEP_BUDGET, DEFAULT_SWEEP_INTERVAL, StorageError};

use crate::Sqlite;
use crate::bounds::State;

/// Builds a [`Sqlite`]: where the database is, how large it may grow and
/// how often expired calls are swept.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use flechette_core::Cache;
/// use flechette_sqlite::Sqlite;
///
/// let dir = tempfile::tempdir()?;
/// let db = Sqlite::builder(dir.path().join("cache.sqlite"))
///     .max_bytes(64 << 20)
///     .open()?;
/// let cache = Cache::new(db.values(), db.calls());
/// # let _ = cache;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SqliteBuilder {
    path: Option<PathBuf>,
    max_bytes: Option<u64>,
    sweep_interval: Option<Duration>,
    sweep_budget: usize,
    inline: bool,
}

impl Sqlite {
    /// A builder for the file at `path`: unbounded, sweeping every 30 s
    /// up to 10,000 expired calls, point lookups inline.
    pub fn builder(path: impl AsRef<Path>) -> SqliteBuilder {
        SqliteBuilder {
            path: Some(path.as_ref().to_path_buf()),
            ..SqliteBuilder::memory()
        }
    }

    /// A builder for an in-memory database (for tests), with the defaults
    /// of [`builder`](Self::builder).
    pub fn memory_builder() -> SqliteBuilder {
        SqliteBuilder::memory()
    }
}

impl SqliteBuilder {
    fn memory() -> Self {
        Self {
            path: None,
            max_bytes: None,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            sweep_budget: DEFAULT_SWEEP_BUDGET,
            inline: true,
        }
    }

    /// The bound: the bytes of the database's pages in use (free pages,
    /// which SQLite reuses, are not counted; the file does not shrink). A
    /// write that takes the database over it evicts the least recently read
    /// of sampled calls, with the values only they referred to, until the
    /// database is at 15/16 of it.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// How often the sweep of expired calls runs, on the runtime of the
    /// first write; `None` for never (expired calls then go when read, or
    /// by [`Cache::sweep`](flechette_core::Cache::sweep)).
    pub fn sweep_interval(mut self, every: Option<Duration>) -> Self {
        self.sweep_interval = every;
        self
    }

    /// How many expired calls one sweep removes at most.
    pub fn sweep_budget(mut self, calls: usize) -> Self {
        self.sweep_budget = calls;
        self
    }

    /// Whether point lookups run on the calling thread (see
    /// [`Sqlite::inline_lookups`]).
    pub fn inline_lookups(mut self, on: bool) -> Self {
        self.inline = on;
        self
    }

    /// Opens the database (creating the file and its schema if needed).
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be opened or its schema created.
    pub fn open(self) -> Result<Sqlite, StorageError> {
        let state = State::new(self.max_bytes, self.sweep_interval, self.sweep_budget);
        let db = match &self.path {
            Some(path) => Sqlite::open_file(path, state)?,
            None => Sqlite::open_memory(state)?,
        };
        Ok(db.inline_lookups(self.inline))
    }
}
