//! The schema and the writes that keep its indexes in step with the records.

use flechette_core::{CallRecord, Digest};
use rusqlite::{Connection, Transaction, params};

/// How long a statement waits for a lock held by another connection
/// before it fails with "database is busy".
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The pragmas of a connection that reads beside the writing one (the
/// file's WAL mode and schema are the writing connection's to set). Its
/// busy timeout is zero: a lookup on the caller's thread must not wait for
/// a lock, and a read on the blocking pool sets [`BUSY_TIMEOUT`] while it
/// runs.
pub(crate) fn prepare_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::ZERO)?;
    conn.pragma_update(None, "cache_size", -16_384)
}

/// Pragmas, tables and indexes; idempotent.
pub(crate) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 64 MiB of page cache: large batches stay in memory until commit.
    conn.pragma_update(None, "cache_size", -65_536)?;
    // After a checkpoint the WAL is cut back to 4 MiB: it does not keep the
    // size of the largest batch ever written.
    conn.pragma_update(None, "journal_size_limit", 4 << 20)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS vals (
            digest TEXT PRIMARY KEY,
            bytes BLOB NOT NULL,
            written INTEGER NOT NULL DEFAULT 0
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS calls (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            module TEXT NOT NULL,
            version TEXT,
            result TEXT NOT NULL,
            has_runtime INTEGER NOT NULL,
            has_lifespan INTEGER NOT NULL,
            record BLOB NOT NULL,
            stored_at INTEGER NOT NULL DEFAULT 0,
            read_at INTEGER NOT NULL DEFAULT 0,
            expire_after INTEGER
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS calls_by_name ON calls (name, module);
         CREATE INDEX IF NOT EXISTS calls_by_module ON calls (module);
         CREATE INDEX IF NOT EXISTS calls_by_result ON calls (result);
         CREATE TABLE IF NOT EXISTS arguments (
            key TEXT NOT NULL,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (key, name)
         ) WITHOUT ROWID;
         DROP INDEX IF EXISTS arguments_by_digest;
         CREATE INDEX IF NOT EXISTS arguments_by_value ON arguments (digest, name);
         CREATE TABLE IF NOT EXISTS tags (
            key TEXT NOT NULL,
            tag TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (key, tag)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS tags_by_value ON tags (tag, value);
         CREATE TABLE IF NOT EXISTS metadata (
            key TEXT NOT NULL,
            entry TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (key, entry)
         ) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS metadata_by_value ON metadata (entry, value);",
    )?;
    migrate(conn)?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS calls_by_expiry ON calls (expire_after)
            WHERE expire_after IS NOT NULL;",
    )
}

/// Brings a file written before the bounds up to date: the columns they
/// need, and the `expire_after` of every record with a lifespan (from the
/// record itself). Values and calls of such a file count as written and
/// read long ago.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has = |conn: &Connection, table: &str, column: &str| -> rusqlite::Result<bool> {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
        for name in names {
            if name? == column {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if has(conn, "vals", "written")? && has(conn, "calls", "expire_after")? {
        return Ok(());
    }
    // Another process may be migrating the same file: the write lock first,
    // then a second look.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if !has(&tx, "vals", "written")? {
        tx.execute_batch("ALTER TABLE vals ADD COLUMN written INTEGER NOT NULL DEFAULT 0")?;
    }
    if has(&tx, "calls", "expire_after")? {
        return tx.commit();
    }
    tx.execute_batch(
        "ALTER TABLE calls ADD COLUMN stored_at INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE calls ADD COLUMN read_at INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE calls ADD COLUMN expire_after INTEGER;",
    )?;
    let lifespans: Vec<(String, i64)> = {
        let mut stmt = tx.prepare("SELECT key, record FROM calls WHERE has_lifespan = 1")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut found = Vec::new();
        for row in rows {
            let (key, bytes) = row?;
            let expiry = flechette_core::storage::decode_record(&bytes)
                .ok()
                .and_then(|r| r.metadata.lifespan?.expire_after);
            if let Some(at) = expiry {
                found.push((key, at.0));
            }
        }
        found
    };
    {
        let mut set = tx.prepare("UPDATE calls SET expire_after = ?2 WHERE key = ?1")?;
        for (key, at) in &lifespans {
            set.execute(params![key, at])?;
        }
    }
    tx.commit()
}

/// Stores the call under `key` with its index rows, replacing an older one.
pub(crate) fn put_call(
    tx: &Transaction<'_>,
    key: &Digest,
    record: &CallRecord,
    bytes: &[u8],
    stamp: i64,
) -> rusqlite::Result<()> {
    let key = key.to_hex();
    let insert = "INSERT INTO calls (key, name, module, version, result, has_runtime,
                                     has_lifespan, record, stored_at, read_at, expire_after)
                  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)
                  ON CONFLICT (key) DO NOTHING";
    let expire_after = record
        .metadata
        .lifespan
        .as_ref()
        .and_then(|l| l.expire_after)
        .map(|at| at.0);
    let result = record.result.to_hex();
    let meta = &record.metadata;
    let row = params![
        key,
        record.name,
        record.module,
        record.version,
        result,
        meta.runtime.is_some(),
        meta.lifespan.is_some(),
        bytes,
        stamp,
        expire_after
    ];
    // A record that was there is replaced with its index rows; the values
    // only it referred to go once the new record's rows are in.
    let mut replaced = None;
    if tx.prepare_cached(insert)?.execute(row)? == 0 {
        let (stored_at, result): (i64, String) = tx
            .prepare_cached("SELECT stored_at, result FROM calls WHERE key = ?1")?
            .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))?;
        replaced = Some((crate::bounds::values_of(tx, &key, result)?, stored_at));
        remove_call(tx, &key)?;
        tx.prepare_cached(insert)?.execute(row)?;
    }
    let mut arg =
        tx.prepare_cached("INSERT INTO arguments (key, name, digest) VALUES (?1, ?2, ?3)")?;
    for (name, digest) in &record.arguments {
        arg.execute(params![key, name, digest.to_hex()])?;
    }
    let mut tag = tx.prepare_cached("INSERT INTO tags (key, tag, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in &meta.tags {
        tag.execute(params![key, k, v])?;
    }
    // Runtime and lifespan are columns, tags their own table: the metadata
    // table holds the open map, as JSON text (keys sorted).
    let mut entry =
        tx.prepare_cached("INSERT INTO metadata (key, entry, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in &meta.extra {
        entry.execute(params![key, k, v.to_string()])?;
    }
    if let Some((candidates, stored_at)) = replaced {
        crate::bounds::drop_orphans(tx, &candidates, stored_at)?;
    }
    Ok(())
}

/// Removes the call under `key` (hex) and its index rows; whether it was there.
pub(crate) fn remove_call(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<bool> {
    for delete in [
        "DELETE FROM arguments WHERE key = ?1",
        "DELETE FROM tags WHERE key = ?1",
        "DELETE FROM metadata WHERE key = ?1",
    ] {
        tx.prepare_cached(delete)?.execute([key])?;
    }
    Ok(tx
        .prepare_cached("DELETE FROM calls WHERE key = ?1")?
        .execute([key])?
        > 0)
}
