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
use tokio::time::Instant;

use super::lru::{Lru, SMALL};
use super::policy::Deadlines;
use super::stats::Counters;

/// Argument bytes, on the stack when short: the canonical encoding of a
/// call's arguments, written by many tiny puts. A fixed array and a length
/// (spilling to the heap past [`INLINE`] bytes), because a hit spends a
/// good part of its time here: a put is one bounds check and a copy.
pub(crate) struct ArgBytes {
    inline: [u8; INLINE],
    len: usize,
    spill: Vec<u8>,
}

/// How many argument bytes stay on the stack.
const INLINE: usize = 64;

impl ArgBytes {
    pub(crate) fn new() -> Self {
        Self {
            inline: [0; INLINE],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end <= INLINE && self.spill.is_empty() {
            self.inline[self.len..end].copy_from_slice(bytes);
            self.len = end;
        } else {
            self.spill_put(bytes);
        }
    }

    #[inline]
    pub(crate) fn put_u8(&mut self, byte: u8) {
        if self.len < INLINE && self.spill.is_empty() {
            self.inline[self.len] = byte;
            self.len += 1;
        } else {
            self.spill_put(&[byte]);
        }
    }

    #[cold]
    fn spill_put(&mut self, bytes: &[u8]) {
        if self.spill.is_empty() {
            self.spill.reserve(2 * INLINE + bytes.len());
            self.spill.extend_from_slice(&self.inline[..self.len]);
        }
        self.spill.extend_from_slice(bytes);
        self.len = self.spill.len();
    }
}

impl std::ops::Deref for ArgBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

/// Whether two short byte strings are equal, compared in place: the
/// common key of a few bytes is not worth a call to `memcmp`.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    a == b
}

/// How many key bytes an owned key keeps in place.
const KEY_INLINE: usize = 22;

/// The argument bytes of an owned key: in place when short (the common
/// key of a number or a short string costs no allocation), else boxed.
#[derive(Clone)]
pub(crate) enum KeyBytes {
    Inline { len: u8, bytes: [u8; KEY_INLINE] },
    Boxed(Box<[u8]>),
}

impl From<&[u8]> for KeyBytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= KEY_INLINE {
            let mut bytes = [0; KEY_INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Self::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Self::Boxed(b.into())
        }
    }
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Boxed(b) => b,
        }
    }
}

impl PartialEq for KeyBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for KeyBytes {}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A key of the tier, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HotKey {
    pub(crate) cache: u64,
    pub(crate) args: KeyBytes,
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
        self.cache == key.cache && same_bytes(self.args, &key.args)
    }
}

/// A decoded value with its deadlines.
#[derive(Clone, Debug)]
pub(crate) struct HotEntry<T> {
    pub(crate) value: T,
    pub(crate) deadlines: Deadlines<Instant>,
    /// The flight that put it here.
    pub(crate) owner: u64,
    /// The call it is the result of, by the first eight bytes of its key
    /// (see [`call_tag`]).
    pub(crate) call: u64,
}

/// A call key shortened for the tier: the first eight bytes of a SHA-256
/// digest. Two calls of one cache sharing them is a 2^-64 chance per
/// pair, and its only effect is that invalidating one also drops the
/// other from the tier (a miss, never a wrong answer).
pub(crate) fn call_tag(key: &flechette_core::Digest) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&key.as_bytes()[..8]);
    u64::from_le_bytes(word)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes put one by one and in pieces, across the inline capacity,
    /// read back as written.
    #[test]
    fn argument_bytes_read_back_as_written_inline_and_spilled() {
        for total in [0, 1, 15, 16, 17, 63, 64, 65, 200, 1_000] {
            let want: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            let mut bytes = ArgBytes::new();
            let mut at = 0;
            for (n, piece) in want.chunks(7).enumerate() {
                if n % 2 == 0 {
                    bytes.put(piece);
                } else {
                    piece.iter().for_each(|&b| bytes.put_u8(b));
                }
                at += piece.len();
                assert_eq!(&*bytes, &want[..at], "after {at} of {total}");
            }
            assert_eq!(&*bytes, &want[..]);
        }
    }

    /// A short key takes no allocation and is no bigger than a boxed one
    /// with its cache id.
    #[test]
    fn owned_keys_are_small_and_keep_their_bytes() {
        assert!(std::mem::size_of::<HotKey>() <= 32);
        for len in [0, 1, KEY_INLINE, KEY_INLINE + 1, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key = KeyBytes::from(&bytes[..]);
            assert_eq!(&*key, &bytes[..]);
            assert_eq!(matches!(key, KeyBytes::Inline { .. }), len <= KEY_INLINE);
        }
    }

    #[test]
    fn short_and_long_keys_compare_by_content() {
        let key = |args: &[u8]| HotKey {
            cache: 1,
            args: args.into(),
        };
        let long: Vec<u8> = (0..40).collect();
        for (a, b, same) in [
            (&b"abc"[..], &b"abc"[..], true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (&long[..], &long[..], true),
            (&long[..], &long[..39], false),
            (&long[..22], &long[..22], true),
            (&long[..22], &long[..23], false),
            (&long[..23], &long[..23], true),
        ] {
            let probe = HotKeyRef { cache: 1, args: a };
            assert_eq!(probe.equivalent(&key(b)), same, "{a:?} {b:?}");
            let other_cache = HotKeyRef { cache: 2, args: a };
            assert!(!other_cache.equivalent(&key(b)));
        }
    }
}
