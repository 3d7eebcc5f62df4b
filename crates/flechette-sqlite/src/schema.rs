//! The schema and the writes that keep its indexes in step with the records.

use flechette_core::{CallRecord, Digest};
use rusqlite::{Connection, Transaction, params};

/// Pragmas, tables and indexes; idempotent.
pub(crate) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS vals (
            digest TEXT PRIMARY KEY,
            bytes BLOB NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS calls (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            module TEXT NOT NULL,
            version TEXT,
            result TEXT NOT NULL,
            record BLOB NOT NULL
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
         CREATE INDEX IF NOT EXISTS arguments_by_digest ON arguments (name, digest);
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
    )
}

/// Replaces the call under `key` and its index rows.
pub(crate) fn put_call(
    tx: &Transaction<'_>,
    key: &Digest,
    record: &CallRecord,
    bytes: &[u8],
) -> rusqlite::Result<()> {
    let key = key.to_hex();
    remove_call(tx, &key)?;
    tx.execute(
        "INSERT INTO calls (key, name, module, version, result, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![key, record.name, record.module, record.version, record.result.to_hex(), bytes],
    )?;
    let mut arg = tx.prepare_cached(
        "INSERT OR REPLACE INTO arguments (key, name, digest) VALUES (?1, ?2, ?3)",
    )?;
    for (name, digest) in &record.arguments {
        arg.execute(params![key, name, digest.to_hex()])?;
    }
    let mut tag = tx.prepare_cached("INSERT INTO tags (key, tag, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in &record.metadata.tags {
        tag.execute(params![key, k, v])?;
    }
    let mut meta =
        tx.prepare_cached("INSERT INTO metadata (key, entry, value) VALUES (?1, ?2, ?3)")?;
    let meta_data = &record.metadata;
    if let Some(r) = &meta_data.runtime {
        meta.execute(params![key, "runtime", json(r)])?;
    }
    if let Some(l) = &meta_data.lifespan {
        meta.execute(params![key, "lifespan", json(l)])?;
    }
    if !meta_data.tags.is_empty() {
        meta.execute(params![key, "tags", json(&meta_data.tags)])?;
    }
    for (k, v) in &meta_data.extra {
        meta.execute(params![key, k, json(v)])?;
    }
    Ok(())
}

/// Removes the call under `key` (hex) and its index rows; whether it was there.
pub(crate) fn remove_call(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<bool> {
    for table in ["arguments", "tags", "metadata"] {
        tx.execute(&format!("DELETE FROM {table} WHERE key = ?1"), [key])?;
    }
    Ok(tx.execute("DELETE FROM calls WHERE key = ?1", [key])? > 0)
}

/// JSON text of a metadata entry (map keys sorted, so equal values give
/// equal text).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}
