//! The typed in-process tier: decoded values by (cache, argument bytes),
//! bounded by a capacity and evicted by quick_cache's policy.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use equivalent::Equivalent;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use smallvec::SmallVec;
use tokio::time::Instant;

use super::policy::Deadlines;
use super::stats::Counters;

/// Argument bytes, on the stack when short.
pub(crate) type ArgBytes = SmallVec<[u8; 64]>;

/// A key of the tier, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HotKey {
    pub(crate) cache: u64,
    pub(crate) args: Box<[u8]>,
}

/// A key of the tier, borrowed for lookups.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HotKeyRef<'a> {
    pub(crate) cache: u64,
    pub(crate) args: &'a [u8],
}

impl Hash for HotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        HotKeyRef::from(self).hash(state);
    }
}

impl Hash for HotKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.cache);
        state.write(self.args);
    }
}

impl<'a> From<&'a HotKey> for HotKeyRef<'a> {
    fn from(k: &'a HotKey) -> Self {
        Self {
            cache: k.cache,
            args: &k.args,
        }
    }
}

impl HotKeyRef<'_> {
    pub(crate) fn to_owned_key(self) -> HotKey {
        HotKey {
            cache: self.cache,
            args: self.args.into(),
        }
    }
}

impl Equivalent<HotKey> for HotKeyRef<'_> {
    fn equivalent(&self, key: &HotKey) -> bool {
        self.cache == key.cache && *self.args == *key.args
    }
}

/// A decoded value with its deadlines.
#[derive(Clone, Debug)]
pub(crate) struct HotEntry<T> {
    pub(crate) value: T,
    pub(crate) deadlines: Deadlines<Instant>,
    /// The flight that put it here.
    pub(crate) owner: u64,
    /// The call it is the result of.
    pub(crate) call_key: flechette_core::Digest,
}

/// The weight of a value in the tier.
pub(crate) type WeighFn<T> = Arc<dyn Fn(&T) -> u32 + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Weigh<T>(Option<WeighFn<T>>);

impl<T> Weighter<HotKey, HotEntry<T>> for Weigh<T> {
    fn weight(&self, _key: &HotKey, entry: &HotEntry<T>) -> u64 {
        self.0.as_ref().map_or(1, |f| u64::from(f(&entry.value)))
    }
}

/// Counts evictions into the function's statistics.
#[derive(Clone)]
pub(crate) struct CountEvictions(Arc<Counters>);

impl<T> Lifecycle<HotKey, HotEntry<T>> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: HotKey, _entry: HotEntry<T>) {
        Counters::count(&self.0.evictions);
    }
}

/// The tier itself.
pub(crate) struct HotTier<T> {
    map: QuickCache<HotKey, HotEntry<T>, Weigh<T>, DefaultHashBuilder, CountEvictions>,
}

impl<T: Clone> HotTier<T> {
    /// A tier holding at most `capacity` weight (entries, without a weigher).
    pub(crate) fn new(capacity: u64, weigh: Option<WeighFn<T>>, counters: Arc<Counters>) -> Self {
        let estimated = usize::try_from(capacity.min(1 << 16))
            .unwrap_or(1 << 16)
            .max(16);
        Self {
            map: QuickCache::with(
                estimated,
                capacity.max(1),
                Weigh(weigh),
                DefaultHashBuilder::default(),
                CountEvictions(counters),
            ),
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: HotKeyRef<'_>) -> Option<HotEntry<T>> {
        self.map.get(&key)
    }

    pub(crate) fn insert(&self, key: HotKey, entry: HotEntry<T>) {
        self.map.insert(key, entry);
    }

    pub(crate) fn remove(&self, key: HotKeyRef<'_>) {
        self.map.remove(&key);
    }

    /// Removes the entry under `key` if the flight `owner` put it there.
    pub(crate) fn remove_owned(&self, key: HotKeyRef<'_>, owner: u64) {
        self.map.remove_if(&key, |entry| entry.owner == owner);
    }

    /// Removes the entries of these argument bytes under every cache.
    pub(crate) fn remove_args(&self, args: &[u8]) {
        self.map.retain(|k, _| *k.args != *args);
    }

    /// Removes the entries under cache `cache` that `drop` selects.
    pub(crate) fn remove_where(&self, cache: u64, drop: impl Fn(&HotEntry<T>) -> bool) {
        self.map.retain(|k, e| !(k.cache == cache && drop(e)));
    }

    pub(crate) fn clear(&self) {
        self.map.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
