//! The storage side of the miss-path bench: many misses from 16 tasks until
//! `flush`, against the raw writes of the same bytes.

use std::path::Path;
use std::time::{Duration, Instant};

use flechette::{Cache, CachedFn};

use crate::redis_server::RedisServer;

const TASKS: u64 = 16;

/// Wall time of `keys` distinct misses from 16 tasks through `f`, until
/// its cache is flushed.
async fn misses(f: &CachedFn<(u64,), String>, keys: u64) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut k = t;
            while k < keys {
                f.call((k,)).await.unwrap();
                k += TASKS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    f.cache().flush().await;
    start.elapsed()
}

/// Every row of every table of the SQLite file at `path`.
fn sqlite_rows(path: &Path) -> Vec<(String, Vec<rusqlite::types::Value>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let found: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.extend(found.into_iter().map(|row| (table.clone(), row)));
    }
    rows
}

/// Misses into a SQLite cache, against rusqlite inserting the same rows
/// into a file of the same schema, 100 rows a transaction, on the
/// blocking pool.
pub(crate) async fn sqlite(keys: u64) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flechette.sqlite");
    let cache: Cache = flechette::sqlite::open(&path).unwrap();
    let ours = misses(&crate::function(cache, keys), keys).await;

    let rows = sqlite_rows(&path);
    let raw_path = dir.path().join("raw.sqlite");
    drop(flechette::sqlite::Sqlite::open(&raw_path).unwrap()); // the schema
    let conn = std::sync::Arc::new(std::sync::Mutex::new(
        rusqlite::Connection::open(&raw_path).unwrap(),
    ));
    conn.lock()
        .unwrap()
        .pragma_update(None, "journal_mode", "WAL")
        .unwrap();
    let start = Instant::now();
    for chunk in rows.chunks(100) {
        let (conn, chunk) = (conn.clone(), chunk.to_vec());
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap();
            let tx = conn.transaction().unwrap();
            for (table, row) in &chunk {
                let marks = vec!["?"; row.len()].join(", ");
                tx.prepare_cached(&format!("INSERT OR IGNORE INTO {table} VALUES ({marks})"))
                    .unwrap()
                    .execute(rusqlite::params_from_iter(row.iter()))
                    .unwrap();
            }
            tx.commit().unwrap();
        })
        .await
        .unwrap();
    }
    (ours, start.elapsed())
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    out
}

/// Misses into a file cache, against a plain loop writing the same files
/// the same atomic way: a temp file, fsync, rename.
pub(crate) async fn file(keys: u64) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("flechette")).unwrap();
    let ours = misses(&crate::function(cache, keys), keys).await;

    let written = files(&dir.path().join("flechette"));
    let raw = dir.path().join("raw");
    let start = Instant::now();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        for (name, bytes) in written {
            let path = raw.join(name);
            let parent = path.parent().unwrap();
            std::fs::create_dir_all(parent).unwrap();
            let temp = parent.join(".tmp");
            let mut file = std::fs::File::create(&temp).unwrap();
            file.write_all(&bytes).unwrap();
            file.sync_all().unwrap();
            std::fs::rename(&temp, &path).unwrap();
        }
    })
    .await
    .unwrap();
    (ours, start.elapsed())
}

/// Misses into a Redis cache, against pipelined `SET`s (100 a pipeline) of
/// the same keys and bytes under another prefix.
pub(crate) async fn redis(keys: u64) -> Result<(Duration, Duration), String> {
    let server = RedisServer::try_start()?;
    let url = server.url();
    let store = flechette::redis::Redis::open(&url, "ours").unwrap();
    let cache = Cache::new(store.values(), store.calls());
    let ours = misses(&crate::function(cache, keys), keys).await;

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut names: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("ours:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        names.extend(found);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut entries = Vec::new();
    for chunk in names.chunks(1000) {
        let bytes: Vec<Vec<u8>> = redis::cmd("MGET")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .unwrap();
        entries.extend(chunk.iter().map(|n| format!("raw{n}")).zip(bytes));
    }
    let start = Instant::now();
    for chunk in entries.chunks(100) {
        let mut pipe = redis::pipe();
        for (name, bytes) in chunk {
            pipe.cmd("SET").arg(name).arg(bytes).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }
    let raw = start.elapsed();
    drop(server);
    Ok((ours, raw))
}
