//! The typed in-process tier: decoded values by (cache, argument bytes),
//! bounded by a capacity. Up to [`SMALL`] entries it is an exact LRU list;
//! above, quick_cache's scan-resistant policy, on one shard below 2,048
//! entries (so the tier fills to exactly its capacity) and with at least
//! two slots per shard for new entries (so the most recent keys of a scan
//! stay).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use equivalent::Equivalent;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};
use smallvec::SmallVec;
use tokio::time::Instant;

use super::lru::{Lru, SMALL};
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

/// Counts evictions into the function's statistics: entries dropped to
/// respect the capacity, not entries replaced by a newer value of their key.
#[derive(Clone)]
pub(crate) struct CountEvictions;

/// What one insert evicted.
#[derive(Default)]
pub(crate) struct Evicting {
    /// The key being inserted, when it was already present: its old value
    /// leaving is a replacement.
    replacing: Option<HotKey>,
    evicted: u64,
}

impl<T> Lifecycle<HotKey, HotEntry<T>> for CountEvictions {
    type RequestState = Evicting;

    fn on_evict(&self, state: &mut Evicting, key: HotKey, _entry: HotEntry<T>) {
        if state.replacing.as_ref() == Some(&key) {
            state.replacing = None;
        } else {
            state.evicted += 1;
        }
    }
}

type Quick<T> = QuickCache<HotKey, HotEntry<T>, Weigh<T>, DefaultHashBuilder, CountEvictions>;

/// Where the entries live: an exact LRU list for tiny capacities, a sharded
/// scan-resistant cache otherwise.
enum Store<T> {
    Exact(Lru<T>),
    Quick(Quick<T>),
}

/// The tier itself.
pub(crate) struct HotTier<T> {
    store: Store<T>,
    counters: Arc<Counters>,
}

/// Capacity a shard of the sharded cache holds at least (one shard below
/// twice this): a tier that small is filled exactly to its capacity.
const SHARD_ENTRIES: u64 = 1024;

/// The share of a shard kept for entries used more than once (quick_cache's
/// default), lowered so that at least two slots stay for new entries.
fn hot_allocation(shard_capacity: u64) -> f64 {
    let c = shard_capacity.max(3) as f64;
    (0.97f64).min((c - 2.0) / c)
}

fn shards(capacity: u64) -> usize {
    let most = std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 4)
        .next_power_of_two();
    let by_size = usize::try_from(capacity / SHARD_ENTRIES).unwrap_or(usize::MAX);
    match by_size {
        0 | 1 => 1,
        n => (1usize << n.ilog2()).min(most),
    }
}

impl<T: Clone> HotTier<T> {
    /// A tier holding at most `capacity` weight (entries, without a weigher).
    pub(crate) fn new(capacity: u64, weigh: Option<WeighFn<T>>, counters: Arc<Counters>) -> Self {
        let capacity = capacity.max(1);
        if weigh.is_none() && capacity <= SMALL {
            return Self {
                store: Store::Exact(Lru::new(capacity)),
                counters,
            };
        }
        let estimated = usize::try_from(capacity.min(1 << 16))
            .unwrap_or(1 << 16)
            .max(16);
        let shards = shards(capacity);
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(estimated)
            .weight_capacity(capacity)
            .hot_allocation(hot_allocation(capacity / shards as u64))
            .build()
            .unwrap_or_else(|e| unreachable!("hot tier options are valid: {e:?}"));
        Self {
            store: Store::Quick(QuickCache::with_options(
                options,
                Weigh(weigh),
                DefaultHashBuilder::default(),
                CountEvictions,
            )),
            counters,
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: HotKeyRef<'_>) -> Option<HotEntry<T>> {
        match &self.store {
            Store::Quick(map) => map.get(&key),
            Store::Exact(list) => list.get(key),
        }
    }

    pub(crate) fn insert(&self, key: HotKey, entry: HotEntry<T>) {
        let evicted = match &self.store {
            Store::Quick(map) => {
                let mut state = Evicting {
                    replacing: map.contains_key(&key).then(|| key.clone()),
                    evicted: 0,
                };
                map.insert_with_lifecycle(key, entry, &mut state);
                state.evicted
            }
            Store::Exact(list) => list.insert(key, entry),
        };
        if evicted > 0 {
            self.counters
                .evictions
                .fetch_add(evicted, Ordering::Relaxed);
        }
    }

    pub(crate) fn remove(&self, key: HotKeyRef<'_>) {
        self.remove_if(key, |_| true);
    }

    /// Removes the entry under `key` if the flight `owner` put it there.
    pub(crate) fn remove_owned(&self, key: HotKeyRef<'_>, owner: u64) {
        self.remove_if(key, |entry| entry.owner == owner);
    }

    fn remove_if(&self, key: HotKeyRef<'_>, pred: impl Fn(&HotEntry<T>) -> bool) {
        match &self.store {
            Store::Quick(map) => drop(map.remove_if(&key, |e| pred(e))),
            Store::Exact(list) => list.remove_if(key, pred),
        }
    }

    fn retain(&self, keep: impl Fn(&HotKey, &HotEntry<T>) -> bool) {
        match &self.store {
            Store::Quick(map) => map.retain(keep),
            Store::Exact(list) => list.retain(keep),
        }
    }

    /// Removes the entries of these argument bytes under every cache.
    pub(crate) fn remove_args(&self, args: &[u8]) {
        self.retain(|k, _| *k.args != *args);
    }

    /// Removes the entries under cache `cache` that `drop` selects.
    pub(crate) fn remove_where(&self, cache: u64, drop: impl Fn(&HotEntry<T>) -> bool) {
        self.retain(|k, e| !(k.cache == cache && drop(e)));
    }

    pub(crate) fn clear(&self) {
        match &self.store {
            Store::Quick(map) => map.clear(),
            Store::Exact(list) => list.clear(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.store {
            Store::Quick(map) => map.len(),
            Store::Exact(list) => list.len(),
        }
    }
}
