//! An exact least-recently-used list for tiny in-process tiers.
//!
//! A scan-resistant policy splits its capacity into a protected part and a
//! probation part; with a handful of entries that split leaves no room (at
//! capacity 2, one slot each: a scan keeps its first key and forgets the
//! second most recent). Up to [`SMALL`] entries the tier is this list
//! instead: every entry is ordered by its last use, and a full list drops
//! the least recently used.

use std::sync::Mutex;

use super::hot::{HotEntry, HotKey, HotKeyRef};

/// The largest capacity (in entries, without a weigher) kept in an exact
/// LRU list.
pub(crate) const SMALL: u64 = 16;

/// Entries, least recently used first.
pub(crate) struct Lru<T> {
    capacity: usize,
    entries: Mutex<Vec<(HotKey, HotEntry<T>)>>,
}

fn same(a: HotKeyRef<'_>, b: &HotKey) -> bool {
    a.cache == b.cache && *a.args == *b.args
}

impl<T: Clone> Lru<T> {
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity.clamp(1, SMALL)).unwrap_or(1);
        Self {
            capacity,
            entries: Mutex::new(Vec::with_capacity(capacity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(HotKey, HotEntry<T>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry under `key`, now the most recently used.
    pub(crate) fn get(&self, key: HotKeyRef<'_>) -> Option<HotEntry<T>> {
        let mut entries = self.lock();
        let at = entries.iter().position(|(k, _)| same(key, k))?;
        let used = entries.remove(at);
        let entry = used.1.clone();
        entries.push(used);
        Some(entry)
    }

    /// Inserts (or replaces) `key`; returns how many entries were evicted
    /// to make room (a replacement evicts nothing).
    pub(crate) fn insert(&self, key: HotKey, entry: HotEntry<T>) -> u64 {
        let mut entries = self.lock();
        if let Some(at) = entries.iter().position(|(k, _)| *k == key) {
            entries.remove(at);
            entries.push((key, entry));
            return 0;
        }
        let mut evicted = 0;
        while entries.len() >= self.capacity {
            entries.remove(0);
            evicted += 1;
        }
        entries.push((key, entry));
        evicted
    }

    pub(crate) fn remove_if(&self, key: HotKeyRef<'_>, pred: impl Fn(&HotEntry<T>) -> bool) {
        self.lock().retain(|(k, e)| !(same(key, k) && pred(e)));
    }

    pub(crate) fn retain(&self, keep: impl Fn(&HotKey, &HotEntry<T>) -> bool) {
        self.lock().retain(|(k, e)| keep(k, e));
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
