//! Call records and values as the in-memory store keeps them: the identity
//! of a function once per store (interned), argument digests inline,
//! timings and lifespan as plain numbers, short values inline.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::{CallRecord, Digest, Lifespan, Metadata, Runtime, Timestamp};

/// What calls of one function share: name, module, version, parameter names.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Identity {
    name: Box<str>,
    module: Box<str>,
    version: Option<Box<str>>,
    parameters: Box<[Box<str>]>,
}

impl Identity {
    fn matches(&self, record: &CallRecord) -> bool {
        *self.name == *record.name
            && *self.module == *record.module
            && self.version.as_deref() == record.version.as_deref()
            && self.parameters.len() == record.arguments.len()
            && self
                .parameters
                .iter()
                .zip(&record.arguments)
                .all(|(p, (n, _))| **p == **n)
    }
}

/// The identities of a store, each kept once.
#[derive(Debug, Default)]
pub(super) struct Identities {
    by_hash: Mutex<HashMap<u64, Vec<Arc<Identity>>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Identities {
    /// The identity of `record`'s function, shared with earlier calls.
    pub(super) fn intern(&self, record: &CallRecord) -> Arc<Identity> {
        let mut h = self.hasher.build_hasher();
        record.name.hash(&mut h);
        record.module.hash(&mut h);
        record.version.hash(&mut h);
        for (n, _) in &record.arguments {
            n.hash(&mut h);
        }
        let hash = h.finish();
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        let same = map.entry(hash).or_default();
        if let Some(found) = same.iter().find(|i| i.matches(record)) {
            return Arc::clone(found);
        }
        let identity = Arc::new(Identity {
            name: record.name.as_str().into(),
            module: record.module.as_str().into(),
            version: record.version.as_deref().map(Into::into),
            parameters: record
                .arguments
                .iter()
                .map(|(n, _)| n.as_str().into())
                .collect(),
        });
        same.push(Arc::clone(&identity));
        identity
    }

    /// Forgets identities no stored call has any more.
    pub(super) fn prune(&self) {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, same| {
            same.retain(|i| Arc::strong_count(i) > 1);
            !same.is_empty()
        });
    }
}

const HAS_RUNTIME: u8 = 1;
const HAS_LIFESPAN: u8 = 2;
const HAS_UPDATE: u8 = 4;
const HAS_EXPIRE: u8 = 8;

/// What most calls do not have: the digests of arguments after the first,
/// tags and open metadata.
#[derive(Debug)]
struct Rare {
    more: Box<[Digest]>,
    tags: BTreeMap<String, String>,
    extra: BTreeMap<String, serde_json::Value>,
}

/// One stored call.
#[derive(Debug)]
pub(super) struct StoredCall {
    identity: Arc<Identity>,
    /// The first argument's digest (of a function with no parameters, a
    /// copy of the result's, never read).
    first: Digest,
    result: Digest,
    flags: u8,
    timestart: i64,
    timestop: i64,
    walltime: f64,
    created: i64,
    update_after: i64,
    expire_after: i64,
    rare: Option<Box<Rare>>,
    /// When it was last read or written, in the store's read order.
    pub(super) last_read: u64,
}

impl StoredCall {
    pub(super) fn new(identity: Arc<Identity>, record: &CallRecord, last_read: u64) -> Self {
        let first = record.arguments.first().map_or(record.result, |(_, d)| *d);
        let more = record.arguments.get(1..).unwrap_or_default();
        let m = &record.metadata;
        let mut flags = 0;
        let (mut timestart, mut timestop, mut walltime) = (0, 0, 0.0);
        if let Some(r) = &m.runtime {
            flags |= HAS_RUNTIME;
            (timestart, timestop, walltime) = (r.timestart.0, r.timestop.0, r.walltime);
        }
        let (mut created, mut update_after, mut expire_after) = (0, 0, 0);
        if let Some(l) = &m.lifespan {
            flags |= HAS_LIFESPAN;
            created = l.created.0;
            if let Some(t) = l.update_after {
                flags |= HAS_UPDATE;
                update_after = t.0;
            }
            if let Some(t) = l.expire_after {
                flags |= HAS_EXPIRE;
                expire_after = t.0;
            }
        }
        let rare = (!more.is_empty() || !m.tags.is_empty() || !m.extra.is_empty()).then(|| {
            Box::new(Rare {
                more: more.iter().map(|(_, d)| *d).collect(),
                tags: m.tags.clone(),
                extra: m.extra.clone(),
            })
        });
        Self {
            identity,
            first,
            result: record.result,
            flags,
            timestart,
            timestop,
            walltime,
            created,
            update_after,
            expire_after,
            rare,
            last_read,
        }
    }

    /// When the call expires, if it does.
    pub(super) fn expires(&self) -> Option<Timestamp> {
        (self.flags & HAS_EXPIRE != 0).then_some(Timestamp(self.expire_after))
    }

    /// Whether it has expired at `now`.
    pub(super) fn expired(&self, now: Timestamp) -> bool {
        self.expires().is_some_and(|t| t <= now)
    }

    /// The digests of its arguments, in order.
    fn arguments(&self) -> impl Iterator<Item = &Digest> {
        let first = (!self.identity.parameters.is_empty()).then_some(&self.first);
        let more = self.rare.as_ref().map_or(&[][..], |r| &r.more[..]);
        first.into_iter().chain(more)
    }

    /// Every value digest it refers to.
    pub(super) fn value_digests(&self) -> impl Iterator<Item = &Digest> {
        self.arguments().chain(std::iter::once(&self.result))
    }

    /// Bytes it keeps on the heap of its own (not its identity, which is
    /// shared, nor the map's slot).
    pub(super) fn heap_bytes(&self) -> usize {
        self.rare.as_ref().map_or(0, |r| {
            let more = if r.more.is_empty() {
                0
            } else {
                16 + 32 * r.more.len()
            };
            let tags: usize = r.tags.iter().map(|(k, v)| 64 + k.len() + v.len()).sum();
            let extra: usize = r.extra.keys().map(|k| 128 + k.len()).sum();
            64 + more + tags + extra
        })
    }

    /// The record again.
    pub(super) fn record(&self) -> CallRecord {
        let id = &self.identity;
        let f = self.flags;
        CallRecord {
            name: id.name.to_string(),
            module: id.module.to_string(),
            version: id.version.as_deref().map(str::to_owned),
            arguments: id
                .parameters
                .iter()
                .zip(self.arguments())
                .map(|(n, d)| (n.to_string(), *d))
                .collect(),
            result: self.result,
            metadata: Metadata {
                runtime: (f & HAS_RUNTIME != 0).then_some(Runtime {
                    timestart: Timestamp(self.timestart),
                    timestop: Timestamp(self.timestop),
                    walltime: self.walltime,
                }),
                tags: self
                    .rare
                    .as_ref()
                    .map(|r| r.tags.clone())
                    .unwrap_or_default(),
                lifespan: (f & HAS_LIFESPAN != 0).then(|| Lifespan {
                    created: Timestamp(self.created),
                    update_after: (f & HAS_UPDATE != 0).then_some(Timestamp(self.update_after)),
                    expire_after: (f & HAS_EXPIRE != 0).then_some(Timestamp(self.expire_after)),
                }),
                extra: self
                    .rare
                    .as_ref()
                    .map(|r| r.extra.clone())
                    .unwrap_or_default(),
            },
        }
    }
}

/// How many value bytes are kept inline.
const INLINE: usize = 22;

/// Value bytes: inline when short, else one exact shared allocation (an
/// `Arc<[u8]>` is half the size of a `Bytes`, and a read shares it all the
/// same).
#[derive(Debug)]
pub(super) enum ValueBytes {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Arc<[u8]>),
}

impl ValueBytes {
    pub(super) fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Self::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            }
        } else {
            Self::Heap(bytes.into())
        }
    }

    pub(super) fn get(&self) -> Bytes {
        match self {
            Self::Inline { len, bytes } => Bytes::copy_from_slice(&bytes[..usize::from(*len)]),
            Self::Heap(b) => Bytes::from_owner(Arc::clone(b)),
        }
    }

    /// Bytes on the heap: the value and its two reference counts.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Heap(b) => b.len() + 16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(arguments: usize, metadata: Metadata) -> CallRecord {
        CallRecord {
            name: "f".into(),
            module: "m".into(),
            version: Some("2".into()),
            arguments: (0..arguments)
                .map(|i| (format!("a{i}"), crate::digest(&i).unwrap()))
                .collect(),
            result: crate::digest(&"r").unwrap(),
            metadata,
        }
    }

    #[test]
    fn a_stored_call_gives_its_record_back() {
        let full = Metadata {
            runtime: Some(Runtime {
                timestart: Timestamp(1),
                timestop: Timestamp(5),
                walltime: 4e-6,
            }),
            tags: [("t".to_owned(), "v".to_owned())].into(),
            lifespan: Some(Lifespan {
                created: Timestamp(5),
                update_after: None,
                expire_after: Some(Timestamp(9)),
            }),
            extra: [("x".to_owned(), serde_json::json!([1, 2]))].into(),
        };
        let identities = Identities::default();
        for record in [
            record(0, Metadata::default()),
            record(1, Metadata::default()),
            record(2, Metadata::default()),
            record(1, full.clone()),
            record(3, full),
        ] {
            let stored = StoredCall::new(identities.intern(&record), &record, 0);
            assert_eq!(stored.record(), record);
        }
    }

    #[test]
    fn a_stored_call_is_small() {
        assert!(std::mem::size_of::<StoredCall>() <= 144);
    }

    #[test]
    fn identities_are_kept_once_and_pruned_when_unused() {
        let identities = Identities::default();
        let a = identities.intern(&record(1, Metadata::default()));
        let b = identities.intern(&record(1, Metadata::default()));
        assert!(Arc::ptr_eq(&a, &b));
        let c = identities.intern(&record(2, Metadata::default()));
        assert!(!Arc::ptr_eq(&a, &c), "other parameters, other identity");
        drop((b, c));
        identities.prune();
        let map = identities.by_hash.lock().unwrap();
        assert_eq!(map.values().map(Vec::len).sum::<usize>(), 1);
    }

    #[test]
    fn short_values_are_inline() {
        assert!(std::mem::size_of::<ValueBytes>() <= 24);
        for len in [0, 1, INLINE, INLINE + 1, 1000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let v = ValueBytes::new(&bytes);
            assert_eq!(v.get(), bytes);
            assert_eq!(v.heap_bytes() == 0, len <= INLINE);
        }
    }
}
