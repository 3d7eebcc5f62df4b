//! `CacheStack`: caches in tiers, read from the fastest down, hits copied up.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{Cache, Level};
use crate::{CacheError, CallRecord, Digest};

/// Caches stacked in levels: level 0 is read first and takes every write;
/// a hit found at a deeper level is copied into level 0 once; eviction
/// removes a call from every level.
///
/// A stack becomes a [`Cache`] and is used wherever a cache is:
///
/// ```
/// use flechette_core::{Cache, CacheStack};
/// let local = Cache::memory();
/// let remote = Cache::memory();
/// let cache: Cache = CacheStack::new().push(local).push(remote).into();
/// assert_eq!(cache.depth(), 2);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct CacheStack {
    caches: Vec<Cache>,
}

impl CacheStack {
    /// An empty stack.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `cache` below the levels already pushed (its own levels, if it
    /// is a stack, keep their order).
    pub fn push(mut self, cache: Cache) -> Self {
        self.caches.push(cache);
        self
    }

    /// The stacked cache.
    ///
    /// # Panics
    ///
    /// Panics when no cache was pushed.
    pub fn build(self) -> Cache {
        assert!(
            !self.caches.is_empty(),
            "a cache stack needs at least one cache"
        );
        let levels: Vec<Level> = self
            .caches
            .iter()
            .flat_map(|c| c.level_list().iter().cloned())
            .collect();
        // The shared tier's single flight serves the whole stack.
        let coordinator = self.caches.iter().find_map(|c| c.coordinator().cloned());
        let broadcast = self.caches.iter().find_map(|c| c.broadcast().cloned());
        Cache::with_parts(levels, coordinator, broadcast)
    }
}

impl From<CacheStack> for Cache {
    fn from(stack: CacheStack) -> Self {
        stack.build()
    }
}

impl<I: IntoIterator<Item = Cache>> From<I> for CacheStack {
    fn from(caches: I) -> Self {
        Self {
            caches: caches.into_iter().collect(),
        }
    }
}

impl Cache {
    /// Copies `record` (found at `level`) and its values into level 0, once
    /// per key however many readers race here.
    pub(super) async fn backfill(
        &self,
        key: &Digest,
        record: &CallRecord,
        level: usize,
    ) -> Result<(), CacheError> {
        let cell = self
            .inner
            .backfills
            .entry(*key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let result = cell
            .get_or_try_init(|| self.copy_up(key, record, level))
            .await
            .map(|_| ());
        self.inner
            .backfills
            .remove_if(key, |_, c| Arc::ptr_eq(c, &cell));
        result
    }

    async fn copy_up(
        &self,
        key: &Digest,
        record: &CallRecord,
        level: usize,
    ) -> Result<(), CacheError> {
        let top = &self.inner.levels[0];
        // A reader that lost the race may arrive after the copy finished.
        if top.calls.get(key).await?.is_some() {
            return Ok(());
        }
        let source = &self.inner.levels[level];
        for digest in record.value_digests() {
            if top.values.contains(digest).await? {
                continue;
            }
            match source.values.get(digest).await? {
                Some(bytes) => top.values.put(digest, bytes).await?,
                None => match self.load_encoded(digest).await? {
                    Some(bytes) => top.values.put(digest, bytes).await?,
                    None => return Err(CacheError::MissingValue(*digest)),
                },
            }
        }
        // Put only if level 0 still has nothing: a newer record may have
        // been written there meanwhile.
        if top.calls.get(key).await?.is_some() {
            return Ok(());
        }
        top.calls.put(key, record).await?;
        // An eviction that ran during the copy removed the source: take
        // the copy back out rather than resurrect the call.
        let queued = source.writer().is_some_and(|w| w.pending(key).is_some());
        if !queued && source.calls.get(key).await?.is_none() {
            top.calls.remove(key).await?;
            return Ok(());
        }
        tracing::debug!(%key, level, "cache stack: copied call into level 0");
        Ok(())
    }
}
