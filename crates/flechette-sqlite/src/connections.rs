//! The connections to a file: one that writes, a few that read beside it,
//! and where each kind of work runs (the blocking pool, or inline for a
//! point lookup).

use std::path::Path;
use std::sync::{Arc, Mutex};

use flechette_core::storage::StorageError;
use rusqlite::Connection;

use crate::bounds::State;
use crate::schema;

/// Connections to a SQLite cache file, shared by its value and call
/// storage: one that writes, and a few that read beside it (the file is in
/// WAL mode, so reads wait neither for a write batch nor for each other).
/// Cheap to clone.
#[derive(Clone)]
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
    /// Read connections; none for an in-memory database, which reads on
    /// `conn`.
    readers: Arc<Readers>,
    /// Whether point lookups run on the calling thread.
    inline: bool,
    /// The file's bounds, the reads recorded for them and the sweeper.
    pub(crate) state: Arc<State>,
}

/// How many read connections a file gets.
const READERS: usize = 4;

#[derive(Default)]
struct Readers {
    conns: Vec<Arc<Mutex<Connection>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").finish_non_exhaustive()
    }
}

/// Whether SQLite refused `e`'s statement because another connection
/// holds a lock it needs.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Backend(Box::new(e))
}

impl Sqlite {
    /// Opens (creating if needed) the SQLite file at `path`, unbounded,
    /// sweeping expired calls every 30 s ([`builder`](Self::builder) sets
    /// a bound and the sweep).
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be opened or its schema created.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::builder(path.as_ref()).open()
    }

    pub(crate) fn open_file(path: &Path, state: State) -> Result<Self, StorageError> {
        let conn = Connection::open(path).map_err(backend)?;
        schema::prepare(&conn).map_err(backend)?;
        let conns = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path)?;
                schema::prepare_reader(&reader)?;
                Ok(Arc::new(Mutex::new(reader)))
            })
            .collect::<rusqlite::Result<_>>()
            .map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Readers {
                conns,
                next: Default::default(),
            }),
            inline: true,
            state: Arc::new(state),
        })
    }

    /// An in-memory database (for tests), unbounded.
    ///
    /// # Errors
    ///
    /// Fails when SQLite cannot create it.
    pub fn memory() -> Result<Self, StorageError> {
        Self::memory_builder().open()
    }

    pub(crate) fn open_memory(state: State) -> Result<Self, StorageError> {
        let conn = Connection::open_in_memory().map_err(backend)?;
        schema::prepare(&conn).map_err(backend)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::default(),
            inline: false,
            state: Arc::new(state),
        })
    }

    /// Whether point lookups (a call by key with its result, a value by
    /// digest) run on the calling thread; on by default for a file.
    ///
    /// A lookup of a file in WAL mode waits for no writer, so inline it is
    /// one B-tree probe of pages the OS has cached, a microsecond or two,
    /// where a trip to the blocking pool and back costs ten or more. It
    /// does not wait for a lock held by another connection: its busy
    /// timeout is zero, so a connection in use or a locked file sends it to
    /// the blocking pool. (SQLite still retries by itself, briefly, when a
    /// read begins just as another connection resets the WAL: rare, and
    /// usually microseconds.) Turn it off when
    /// the file sits on storage slow enough that a page read would hold
    /// up an async worker. Listing queries and every write always run on
    /// the blocking pool.
    #[must_use]
    pub fn inline_lookups(mut self, on: bool) -> Self {
        self.inline = on && !self.readers.conns.is_empty();
        self
    }

    /// Runs `f` with the writing connection on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        Self::on(Arc::clone(&self.conn), f).await
    }

    /// Runs the write `f` with the writing connection on the blocking pool
    /// (with the stamp of the write: see `State::stamp`), then keeps the file within its bound (see `bounds::after_write`);
    /// starts the periodic sweep on the current runtime if it is not
    /// running.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        self.ensure_sweeper();
        let state = Arc::clone(&self.state);
        let now = state.stamp();
        self.run(move |conn| {
            let out = f(conn, now)?;
            crate::bounds::after_write(conn, &state, now)?;
            Ok(out)
        })
        .await
    }

    /// Starts the periodic sweep of expired calls unless it runs.
    fn ensure_sweeper(&self) {
        if !self.state.sweeper.idle() {
            return;
        }
        let conn = Arc::downgrade(&self.conn);
        let state = Arc::downgrade(&self.state);
        self.state.sweeper.ensure(move || {
            let (conn, state) = (conn.upgrade()?, state.upgrade()?);
            Some(async move {
                let now = flechette_core::clock::now().0;
                let budget = state.sweep_budget;
                let swept = Self::on(conn, move |c| crate::bounds::sweep(c, now, budget)).await;
                match swept {
                    Ok(report) if report.expired > 0 => {
                        tracing::debug!(
                            expired = report.expired,
                            values = report.values,
                            "sqlite: swept expired calls"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "sqlite: the sweep of expired calls failed")
                    }
                }
            })
        });
    }

    /// Runs a read `f` on the blocking pool, with one of the read
    /// connections (taking turns).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let readers = &self.readers.conns;
        if readers.is_empty() {
            return self.run(f).await;
        }
        let turn = self
            .readers
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A read connection waits for no lock unless told to (see
        // `lookup`); on the pool it may.
        let patient = move |conn: &mut Connection| {
            conn.busy_timeout(schema::BUSY_TIMEOUT)?;
            let out = f(conn);
            if let Err(e) = conn.busy_timeout(std::time::Duration::ZERO) {
                tracing::warn!(error = %e, "sqlite: could not reset a read connection's busy timeout");
            }
            out
        };
        Self::on(Arc::clone(&readers[turn % readers.len()]), patient).await
    }

    /// Runs a point lookup `f` (a read-only row by primary key) on the
    /// calling thread, with the first read connection that is free, and
    /// without waiting on the busy handler: when every connection is busy, the file is
    /// locked, inline lookups are off (or the database is in memory), it
    /// runs on the blocking pool as [`read`](Self::read) does.
    pub(crate) async fn lookup<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        if self.inline {
            for conn in &self.readers.conns {
                let Ok(mut conn) = conn.try_lock() else {
                    continue;
                };
                // The read connections' busy timeout is zero.
                match f(&mut conn) {
                    Err(e) if is_busy(&e) => break,
                    found => return found.map_err(backend),
                }
            }
        }
        self.read(f).await
    }

    async fn on<T: Send + 'static>(
        conn: Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(backend)?
        .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The busy timeout, in milliseconds, of the connection `conn`.
    fn busy_timeout(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_inline_lookup_never_waits_for_a_lock_and_a_busy_one_moves_to_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(dir.path().join("c.sqlite")).unwrap();
        let tries = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (t, s) = (Arc::clone(&tries), Arc::clone(&seen));
        // The first try reports the file as locked, as SQLite would.
        let found = db
            .lookup(move |conn| {
                s.lock().unwrap().push((
                    busy_timeout(conn)?,
                    std::thread::current().name().map(str::to_owned),
                ));
                if t.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        None,
                    ));
                }
                Ok(7)
            })
            .await
            .unwrap();
        assert_eq!(found, 7);
        let seen = seen.lock().unwrap().clone();
        let main = std::thread::current().name().map(str::to_owned);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], (0, main.clone()), "inline, waiting for no lock");
        assert_eq!(seen[1].0, 10_000, "on the pool, with the busy timeout");
        assert_ne!(seen[1].1, main, "on a thread of the pool");
        // A read on the pool waits for locks, and leaves its connection
        // waiting for none again.
        for _ in 0..READERS {
            assert_eq!(db.read(|c| busy_timeout(c)).await.unwrap(), 10_000);
        }
        for conn in &db.readers.conns {
            assert_eq!(busy_timeout(&conn.lock().unwrap()).unwrap(), 0);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_inline_lookups_a_lookup_runs_on_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(dir.path().join("c.sqlite"))
            .unwrap()
            .inline_lookups(false);
        let main = std::thread::current().id();
        let ran_on = db
            .lookup(|_| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(ran_on, main);
        let db = db.inline_lookups(true);
        let ran_on = db
            .lookup(|_| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(ran_on, main);
    }
}
