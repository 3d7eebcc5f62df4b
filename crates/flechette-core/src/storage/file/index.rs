//! What a file store knows of its directory, in memory: the calls (their
//! size, last read, expiry and the values they refer to) and the values
//! (their size, how many calls refer to them, when they were last
//! written). Eviction, expiry and the bound are decided here; the files
//! are removed by the caller, under the same lock.

use std::collections::HashMap;

use indexmap::IndexMap;

use crate::{CallRecord, Digest, Timestamp};

/// The disk a file takes, counted in blocks of this size (what most file
/// systems allocate).
pub(super) const BLOCK: u64 = 4096;

/// Disk taken by a file of `len` bytes.
pub(super) fn disk(len: u64) -> u64 {
    len.div_ceil(BLOCK).max(1) * BLOCK
}

/// How many calls an eviction samples.
const SAMPLES: usize = 16;

#[derive(Debug)]
struct IxCall {
    disk: u64,
    read: u64,
    stored: u64,
    expires: Option<Timestamp>,
    /// The values it refers to, each once.
    refs: Box<[Digest]>,
}

#[derive(Debug, Default)]
struct IxValue {
    disk: u64,
    refs: u32,
    written: u64,
    /// When this store last claimed it, on the lifespan clock.
    claimed: Option<Timestamp>,
}

/// The values a removed call leaves behind, to remove with it.
pub(super) type Orphans = Vec<Digest>;

#[derive(Debug, Default)]
pub(super) struct Index {
    calls: IndexMap<Digest, IxCall>,
    values: IndexMap<Digest, IxValue>,
    /// Calls whose files are being written: nothing removes them meanwhile.
    writing: HashMap<Digest, u32>,
    used: u64,
    tick: u64,
    cursor: usize,
    seed: u64,
}

/// The values `record` refers to, each once.
pub(super) fn refs_of(record: &CallRecord) -> Box<[Digest]> {
    let mut refs: Vec<Digest> = record.value_digests().copied().collect();
    refs.sort_unstable();
    refs.dedup();
    refs.into_boxed_slice()
}

fn expiry(record: &CallRecord) -> Option<Timestamp> {
    record.metadata.lifespan.as_ref()?.expire_after
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Bytes of disk the known files take.
    pub(super) fn used(&self) -> u64 {
        self.used
    }

    pub(super) fn calls_len(&self) -> usize {
        self.calls.len()
    }

    /// A value found on disk when the directory was opened.
    pub(super) fn found_value(&mut self, digest: Digest, len: u64) {
        let entry = self.values.entry(digest).or_default();
        if entry.disk == 0 {
            entry.disk = disk(len);
            self.used += entry.disk;
        }
    }

    /// A value about to be written (or found written): its write is a new
    /// claim on it, so that no call stored before it takes it away.
    pub(super) fn claim_value(&mut self, digest: Digest, len: u64, now: Timestamp) {
        let tick = self.tick();
        let entry = self.values.entry(digest).or_default();
        entry.written = tick;
        entry.claimed = Some(now);
        if entry.disk == 0 {
            entry.disk = disk(len);
            self.used += entry.disk;
        }
    }

    /// A value claimed whose file was not written after all: forgotten
    /// unless a call refers to it.
    pub(super) fn unclaim_value(&mut self, digest: &Digest) {
        if self.values.get(digest).is_some_and(|v| v.refs == 0) {
            self.forget_value(digest);
        }
    }

    /// Whether `gc` may remove the value `digest`, written before `before`
    /// as far as its file tells: not while a call (or a record being
    /// written) refers to it, nor when this store claimed it at or after
    /// `before` (a writer's claim comes before it touches the file).
    pub(super) fn collectable(&self, digest: &Digest, before: Timestamp) -> bool {
        self.values
            .get(digest)
            .is_none_or(|v| v.refs == 0 && v.claimed.is_none_or(|at| at < before))
    }

    /// Notes that the files of `keys` are being written.
    pub(super) fn writing(&mut self, keys: impl Iterator<Item = Digest>) {
        for key in keys {
            *self.writing.entry(key).or_default() += 1;
        }
    }

    /// Notes that the file of `key` is no longer being written.
    pub(super) fn written(&mut self, key: &Digest) {
        if let Some(n) = self.writing.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.writing.remove(key);
            }
        }
    }

    /// Whether the call `key` is past its `expire_after` at `now`, as
    /// known (a record read may be older than the one indexed).
    pub(super) fn is_expired(&self, key: &Digest, now: Timestamp) -> bool {
        self.calls
            .get(key)
            .and_then(|c| c.expires)
            .is_some_and(|at| at <= now)
    }

    /// A value removed from disk.
    pub(super) fn forget_value(&mut self, digest: &Digest) {
        if let Some(v) = self.values.swap_remove(digest) {
            self.used -= v.disk;
        }
    }

    /// Counts references to the values of a record about to be written, so
    /// that nothing removes them meanwhile.
    pub(super) fn pin(&mut self, refs: &[Digest]) {
        for digest in refs {
            self.values.entry(*digest).or_default().refs += 1;
        }
    }

    /// Undoes [`pin`](Self::pin) for a record that was not written; the
    /// values no call refers to any more are returned, to remove.
    pub(super) fn unpin(&mut self, refs: &[Digest], stored: u64) -> Orphans {
        let mut orphans = Vec::new();
        for digest in refs {
            if let Some(v) = self.values.get_mut(digest) {
                v.refs = v.refs.saturating_sub(1);
                if v.refs == 0 && v.written <= stored {
                    orphans.push(*digest);
                }
            }
        }
        orphans
    }

    /// A call written, its values pinned before: it replaces an older one
    /// under its key, whose orphaned values are returned.
    pub(super) fn put_call(
        &mut self,
        key: Digest,
        record: &CallRecord,
        refs: Box<[Digest]>,
        len: u64,
    ) -> Orphans {
        let tick = self.tick();
        let call = IxCall {
            disk: disk(len),
            read: tick,
            stored: tick,
            expires: expiry(record),
            refs,
        };
        self.used += call.disk;
        match self.calls.insert(key, call) {
            Some(old) => self.release(old),
            None => Vec::new(),
        }
    }

    /// A call found on disk (when opening, or read after another process
    /// wrote it): known from now on, as read long ago.
    pub(super) fn found_call(&mut self, key: Digest, record: &CallRecord, len: u64) {
        if self.calls.contains_key(&key) {
            return;
        }
        let refs = refs_of(record);
        self.pin(&refs);
        let call = IxCall {
            disk: disk(len),
            read: 0,
            stored: 0,
            expires: expiry(record),
            refs,
        };
        self.used += call.disk;
        self.calls.insert(key, call);
    }

    /// Whether the call `key` is known.
    pub(super) fn knows(&self, key: &Digest) -> bool {
        self.calls.contains_key(key)
    }

    /// Notes a read of `key`.
    pub(super) fn read_call(&mut self, key: &Digest) {
        let tick = self.tick();
        if let Some(call) = self.calls.get_mut(key) {
            call.read = tick;
        }
    }

    /// Forgets the call `key`; `None` when it was not known, else the
    /// values only it referred to (and not written again since it was
    /// stored), to remove with it.
    pub(super) fn remove_call(&mut self, key: &Digest) -> Option<Orphans> {
        if self.writing.contains_key(key) {
            return None;
        }
        let call = self.calls.swap_remove(key)?;
        Some(self.release(call))
    }

    fn release(&mut self, call: IxCall) -> Orphans {
        self.used -= call.disk;
        self.unpin(&call.refs, call.stored)
    }

    /// The next number of the sampling sequence, below `n` (not 0).
    fn sample_index(&mut self, n: usize) -> usize {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        usize::try_from((z ^ (z >> 31)) % n as u64).unwrap_or(0)
    }

    /// Of a few sampled values, those no call refers to and that were not
    /// claimed at or after `before` (a writer may be about to refer to
    /// them): what a bound takes before it evicts calls.
    pub(super) fn loose_values(&mut self, before: Timestamp) -> Vec<Digest> {
        let n = self.values.len();
        let mut found = Vec::new();
        for _ in 0..SAMPLES.min(n) {
            let i = self.sample_index(n);
            if let Some((digest, v)) = self.values.get_index(i)
                && v.refs == 0
                && v.claimed.is_none_or(|at| at < before)
                && !found.contains(digest)
            {
                found.push(*digest);
            }
        }
        found
    }

    /// The least recently read of a few sampled calls, to evict.
    pub(super) fn victim(&mut self) -> Option<Digest> {
        let n = self.calls.len();
        if n == 0 {
            return None;
        }
        let mut best: Option<(u64, Digest)> = None;
        for _ in 0..SAMPLES.min(n) {
            let i = self.sample_index(n);
            let (key, call) = self.calls.get_index(i)?;
            if best.is_none_or(|(read, _)| call.read < read) {
                best = Some((call.read, *key));
            }
        }
        best.map(|(_, key)| key)
    }

    /// Examines up to `budget` calls from where the last look stopped;
    /// the expired ones, to remove, and how many were examined.
    pub(super) fn expired(&mut self, budget: usize, now: Timestamp) -> (Vec<Digest>, usize) {
        let n = self.calls.len();
        let examined = budget.min(n);
        let mut found = Vec::new();
        for step in 0..examined {
            let i = (self.cursor + step) % n;
            if let Some((key, call)) = self.calls.get_index(i)
                && call.expires.is_some_and(|at| at <= now)
            {
                found.push(*key);
            }
        }
        if n > 0 {
            self.cursor = (self.cursor + examined) % n;
        }
        (found, examined)
    }
}
