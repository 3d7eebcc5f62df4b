//! What keeps a file within its bounds: calls past their `expire_after`
//! removed on read and by a sweep, the least recently read calls evicted
//! when the file is over `max_bytes`, and the reads recorded for that, in
//! batches.
//!
//! Every removal takes the values only the removed call referred to,
//! unless a value was written again after the call was stored (a writer
//! between saving its values and its record has claimed it).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use flechette_core::storage::{SweepReport, Sweeper};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::schema;

/// How many reads are kept for the next write to record; more are dropped
/// (recency is approximate by design).
const READS_KEPT: usize = 16_384;

/// How many calls one eviction round samples, and how many of the least
/// recently read of them it evicts.
const SAMPLE: usize = 64;
const EVICT_PER_ROUND: usize = 16;

/// At most this many rounds after one write: a write never stalls on a file
/// far over its bound (a smaller bound set on a large file shrinks it over
/// the next writes).
const MAX_ROUNDS: usize = 256;

/// The bounds of a file, and what they need at run time.
#[derive(Debug)]
pub(crate) struct State {
    /// Bytes of the file's pages in use; `None` for no bound.
    pub(crate) max_bytes: Option<u64>,
    pub(crate) sweep_budget: usize,
    pub(crate) sweeper: Sweeper,
    /// Keys read since the last write.
    reads: Mutex<Vec<String>>,
    /// The last stamp handed out (see [`stamp`](Self::stamp)).
    last: AtomicI64,
    /// Seeds the sampling of eviction.
    seed: AtomicU64,
}

impl State {
    pub(crate) fn new(
        max_bytes: Option<u64>,
        sweep_interval: Option<std::time::Duration>,
        sweep_budget: usize,
    ) -> Self {
        Self {
            max_bytes,
            sweep_budget,
            sweeper: Sweeper::new(sweep_interval),
            reads: Mutex::new(Vec::new()),
            last: AtomicI64::new(0),
            seed: AtomicU64::new(std::process::id().into()),
        }
    }

    /// Notes a read of the call `key` (hex), for least-recently-read
    /// eviction: a push onto a list that the next write records.
    pub(crate) fn read(&self, key: String) {
        if self.max_bytes.is_none() {
            return;
        }
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        if reads.len() < READS_KEPT {
            reads.push(key);
        }
    }

    /// The time of a write or a read, in microseconds of the lifespan
    /// clock (`flechette_core::clock`), made strictly increasing in this
    /// process so that two writes are ordered even when the clock stands
    /// still (a paused test clock) or steps back.
    pub(crate) fn stamp(&self) -> i64 {
        let now = flechette_core::clock::now().0;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    fn take_reads(&self) -> Vec<String> {
        std::mem::take(&mut *self.reads.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A key to start an eviction sample at: 16 random hex digits.
    fn sample_start(&self) -> String {
        let x = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        format!("{:016x}", z ^ (z >> 31))
    }
}

/// After a write on the writing connection: records the reads since the
/// last one (their time is `now`) and, when the file is over its bound,
/// evicts calls until it is within. Returns how many calls it evicted.
pub(crate) fn after_write(
    conn: &mut Connection,
    state: &State,
    now: i64,
) -> rusqlite::Result<usize> {
    let Some(max) = state.max_bytes else {
        return Ok(0);
    };
    let reads = state.take_reads();
    if !reads.is_empty() {
        let tx = conn.transaction()?;
        {
            let mut touch =
                tx.prepare_cached("UPDATE calls SET read_at = ?2 WHERE key = ?1 AND read_at < ?2")?;
            for key in &reads {
                touch.execute(params![key, now])?;
            }
        }
        tx.commit()?;
    }
    evict(conn, state, max, now)
}

/// Bytes of the file's pages in use (free pages, which SQLite reuses, not
/// counted).
pub(crate) fn in_use_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
    Ok(pages * pragma("page_size")?)
}

/// Evicts calls while the file is over `max` bytes: each round samples
/// calls from a random key on and evicts the least recently read quarter
/// of them. Once over the bound, it goes down to 15/16 of it, so that the
/// next writes do not evict again at once.
fn evict(conn: &mut Connection, state: &State, max: u64, now: i64) -> rusqlite::Result<usize> {
    let grace = i64::try_from(flechette_core::DEFAULT_GC_GRACE.as_micros()).unwrap_or(i64::MAX);
    let before = now.saturating_sub(grace);
    let mut evicted = 0;
    for round in 0..MAX_ROUNDS {
        let limit = if round == 0 { max } else { max - max / 16 };
        if in_use_bytes(conn)? <= limit {
            break;
        }
        let tx = conn.transaction()?;
        // Values no call refers to go first, once older than gc's grace
        // period: a bound filled by them must not take every call.
        if drop_loose(&tx, state, before)? > 0 {
            tx.commit()?;
            continue;
        }
        let start = state.sample_start();
        let mut sample = sampled(&tx, "key >= ?1", &start, SAMPLE)?;
        if sample.len() < SAMPLE {
            let more = sampled(&tx, "key < ?1", &start, SAMPLE - sample.len())?;
            sample.extend(more);
        }
        if sample.is_empty() {
            break;
        }
        sample.sort_by_key(|(_, read_at)| *read_at);
        let n = (sample.len() / 4).clamp(1, EVICT_PER_ROUND);
        for (key, _) in &sample[..n] {
            if remove_with_values(&tx, key, None)?.is_some() {
                evicted += 1;
            }
        }
        tx.commit()?;
    }
    Ok(evicted)
}

/// Of values sampled from a random digest on, removes those no call refers
/// to and last written before `before`; how many.
fn drop_loose(tx: &Transaction<'_>, state: &State, before: i64) -> rusqlite::Result<usize> {
    let start = state.sample_start();
    let sample: Vec<(String, i64)> = tx
        .prepare_cached(
            "SELECT digest, written FROM vals WHERE digest >= ?1 ORDER BY digest LIMIT ?2",
        )?
        .query_map(params![start, SAMPLE as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let old: Vec<String> = sample
        .into_iter()
        .filter(|(_, written)| *written < before)
        .map(|(digest, _)| digest)
        .collect();
    // `drop_orphans` removes a value written up to the time given.
    drop_orphans(tx, &old, before - 1)
}

fn sampled(
    tx: &Transaction<'_>,
    range: &str,
    start: &str,
    n: usize,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let sql = format!("SELECT key, read_at FROM calls WHERE {range} ORDER BY key LIMIT ?2");
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![start, n as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Removes the call `key` (hex) with the values only it referred to, and
/// that were not written again since it was stored. With `expired_at`, only
/// when the call is past its `expire_after` at that time (a newer record
/// may have replaced an expired one). `Some(values removed)` when the call
/// was removed.
pub(crate) fn remove_with_values(
    tx: &Transaction<'_>,
    key: &str,
    expired_at: Option<i64>,
) -> rusqlite::Result<Option<usize>> {
    let row: Option<(i64, String, Option<i64>)> = tx
        .prepare_cached("SELECT stored_at, result, expire_after FROM calls WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((stored_at, result, expire_after)) = row else {
        return Ok(None);
    };
    if let Some(now) = expired_at
        && expire_after.is_none_or(|at| at > now)
    {
        return Ok(None);
    }
    let candidates = values_of(tx, key, result)?;
    schema::remove_call(tx, key)?;
    drop_orphans(tx, &candidates, stored_at).map(Some)
}

/// The values the call `key` refers to: its arguments' and `result`.
pub(crate) fn values_of(
    tx: &Transaction<'_>,
    key: &str,
    result: String,
) -> rusqlite::Result<Vec<String>> {
    let mut candidates: Vec<String> = tx
        .prepare_cached("SELECT digest FROM arguments WHERE key = ?1")?
        .query_map([key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    candidates.push(result);
    candidates.sort_unstable();
    candidates.dedup();
    Ok(candidates)
}

/// Removes each of `candidates`, values a removed call stored at
/// `stored_at` referred to, that no call refers to any more and that was
/// not written since; how many.
pub(crate) fn drop_orphans(
    tx: &Transaction<'_>,
    candidates: &[String],
    stored_at: i64,
) -> rusqlite::Result<usize> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM vals WHERE digest = ?1 AND written <= ?2
           AND NOT EXISTS (SELECT 1 FROM calls WHERE result = ?1)
           AND NOT EXISTS (SELECT 1 FROM arguments WHERE digest = ?1)",
    )?;
    let mut values = 0;
    for digest in candidates {
        values += delete.execute(params![digest, stored_at])?;
    }
    Ok(values)
}

/// Removes up to `budget` calls past their `expire_after` at `now`, with
/// the values only they referred to, then checkpoints the WAL.
pub(crate) fn sweep(
    conn: &mut Connection,
    now: i64,
    budget: usize,
) -> rusqlite::Result<SweepReport> {
    let tx = conn.transaction()?;
    let keys: Vec<String> = tx
        .prepare_cached(
            "SELECT key FROM calls WHERE expire_after IS NOT NULL AND expire_after <= ?1 LIMIT ?2",
        )?
        .query_map(
            params![now, i64::try_from(budget).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut report = SweepReport::default();
    report.examined = keys.len();
    for key in &keys {
        if let Some(values) = remove_with_values(&tx, key, Some(now))? {
            report.expired += 1;
            report.values += values;
        }
    }
    tx.commit()?;
    // Maintenance of the file while at it: the WAL is copied into the
    // database and cut back to nothing (a WAL grows past its limit while
    // readers hold it, and shrinks only at such a checkpoint). A reader
    // that holds it still leaves the checkpoint partial, which is fine.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(report)
}
