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

type Row = Vec<rusqlite::types::Value>;

/// Every row of `table` in the SQLite file open on `conn`.
fn table_rows(conn: &rusqlite::Connection, table: &str) -> Vec<Row> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn text(v: &rusqlite::types::Value) -> &str {
    match v {
        rusqlite::types::Value::Text(t) => t,
        other => panic!("not text: {other:?}"),
    }
}

/// Every row the misses of keys `0..keys` stored in the SQLite file at
/// `path`, in the order a naive writer inserting each miss as it happens
/// would write them: per key, its values (the argument, then the result),
/// its call, then the call's index rows. Each row once.
fn sqlite_rows(path: &Path, keys: u64) -> Vec<(&'static str, Row)> {
    use std::collections::HashMap;
    let conn = rusqlite::Connection::open(path).unwrap();
    let by_first = |table| -> HashMap<String, Vec<Row>> {
        let mut map: HashMap<String, Vec<Row>> = HashMap::new();
        for row in table_rows(&conn, table) {
            map.entry(text(&row[0]).to_owned()).or_default().push(row);
        }
        map
    };
    let (mut vals, mut calls) = (by_first("vals"), by_first("calls"));
    let mut index: Vec<(&'static str, HashMap<String, Vec<Row>>)> =
        ["arguments", "tags", "metadata"]
            .into_iter()
            .map(|t| (t, by_first(t)))
            .collect();
    // The call of key k is the one whose argument has k's digest.
    let mut call_of: HashMap<String, String> = HashMap::new();
    for rows in index[0].1.values() {
        for row in rows {
            call_of.insert(text(&row[2]).to_owned(), text(&row[0]).to_owned());
        }
    }
    let mut out = Vec::new();
    for k in 0..keys {
        let arg = flechette::digest(&k).unwrap().to_hex();
        let call = &call_of[&arg];
        let row = calls.remove(call).unwrap().remove(0);
        for digest in [arg.clone(), text(&row[4]).to_owned()] {
            out.extend(
                vals.remove(&digest)
                    .into_iter()
                    .flatten()
                    .map(|r| ("vals", r)),
            );
        }
        out.push(("calls", row));
        for (table, rows) in &mut index {
            out.extend(rows.remove(call).into_iter().flatten().map(|r| (*table, r)));
        }
    }
    assert!(calls.is_empty(), "every stored call is one of the misses");
    assert!(vals.is_empty(), "every stored value is one of theirs");
    for (table, rows) in &index {
        assert!(rows.is_empty(), "every row of {table} is one of theirs");
    }
    out
}

/// Misses into a SQLite cache, against rusqlite inserting the same rows
/// into a file of the same schema, in the order of the misses, 100 rows a
/// transaction, on the blocking pool.
pub(crate) async fn sqlite(keys: u64) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flechette.sqlite");
    let cache: Cache = flechette::sqlite::open(&path).unwrap();
    let ours = misses(&crate::function(cache, keys), keys).await;

    let rows = sqlite_rows(&path, keys);
    let raw_path = dir.path().join("raw.sqlite");
    drop(flechette::sqlite::Sqlite::open(&raw_path).unwrap()); // the schema
    let conn = std::sync::Arc::new(std::sync::Mutex::new(
        rusqlite::Connection::open(&raw_path).unwrap(),
    ));
    {
        // The durability of flechette's connection: WAL, and an fsync at
        // checkpoints rather than at every commit.
        let conn = conn.lock().unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    }
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
