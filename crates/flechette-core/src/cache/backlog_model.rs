//! Exhaustive interleavings of the write-behind protocol: savers, the
//! writer (take a batch, write its values and records, finish it) and an
//! eviction (cancel, wait for the batch holding the key, remove from
//! storage) are run in every order against the real [`Backlog`], and the
//! invariants are checked at the end of each schedule:
//!
//! * an evicted call is never in storage afterwards (nor seen by readers);
//! * nothing else is lost: a key not evicted ends stored, and a write
//!   queued after the eviction finished is kept;
//! * the queue ends empty and every call is through.

use std::collections::HashMap;

use super::*;
use crate::Metadata;

const KEYS: [u8; 2] = [1, 2];

fn key(k: u8) -> Digest {
    Digest::of_encoded(&[k])
}

/// The call a saver writes: `gen` tells the writes apart.
fn call(k: u8, generation: u8) -> (CallRecord, Vec<(Digest, Bytes)>) {
    let bytes = Bytes::from(vec![k, generation]);
    let result = Digest::of_encoded(&bytes);
    let record = CallRecord {
        name: format!("k{k}"),
        module: format!("g{generation}"),
        version: None,
        arguments: Vec::new(),
        result,
        metadata: Metadata::default(),
    };
    (record, vec![(result, bytes)])
}

fn generation(record: &CallRecord) -> u8 {
    record.module[1..].parse().expect("g<generation>")
}

#[derive(Clone, Default)]
struct World {
    backlog: Backlog,
    /// Storage: key → the generation stored.
    stored: HashMap<Digest, u8>,
    /// Generations pushed, per key, in order.
    pushed: HashMap<Digest, Vec<u8>>,
    /// Generations of the evicted key pushed before its eviction began.
    evicted: Vec<u8>,
    evicted_done: bool,
    /// The generation of key 1 queued after the eviction finished.
    after_eviction: Option<u8>,
    savers_done: usize,
}

#[derive(Clone)]
enum Actor {
    /// Saves `(key, generation)`; waits while the queue is full.
    Saver(u8, u8, bool),
    /// The writer: 0 take a batch, 1 write values and records, 2 finish.
    Writer(usize, Vec<Arc<Pending>>),
    /// Evicts key 1 once the first save of it is queued: 0 cancel,
    /// 1 wait for the batch, 2 remove from storage.
    Evictor(usize, Option<u64>),
}

const SAVERS: usize = 3;
const BOUNDS: WriteBehind = WriteBehind {
    max_entries: 2,
    max_bytes: 1 << 20,
    batch_entries: 2,
};

impl Actor {
    /// `None` when blocked, else whether the actor is done.
    fn step(&mut self, w: &mut World) -> Option<bool> {
        match self {
            Actor::Saver(k, generation, done) => {
                let (record, values) = call(*k, *generation);
                if *done || !w.backlog.has_room(Backlog::weight(&values), &BOUNDS) {
                    return None;
                }
                w.backlog.push(key(*k), record, values, None);
                w.pushed.entry(key(*k)).or_default().push(*generation);
                if *k == 1 && w.evicted_done {
                    w.after_eviction = Some(*generation);
                }
                *done = true;
                w.savers_done += 1;
                Some(true)
            }
            Actor::Writer(pc, batch) => match *pc {
                0 => {
                    if w.backlog.waiting() == 0 {
                        // Done once every saver is and nothing waits.
                        return (w.savers_done == SAVERS).then_some(true);
                    }
                    *batch = w.backlog.take_batch(BOUNDS.batch_entries);
                    *pc = 1;
                    Some(false)
                }
                1 => {
                    for c in batch.iter() {
                        w.stored.insert(c.key, generation(&c.record));
                    }
                    *pc = 2;
                    Some(false)
                }
                _ => {
                    w.backlog.finish_batch();
                    batch.clear();
                    *pc = 0;
                    Some(false)
                }
            },
            Actor::Evictor(pc, wait) => match *pc {
                0 => {
                    let before = w.pushed.get(&key(1)).cloned().unwrap_or_default();
                    if before.is_empty() {
                        return None;
                    }
                    w.evicted = before;
                    *wait = w.backlog.cancel(&key(1));
                    *pc = 1;
                    Some(false)
                }
                1 => {
                    if wait.is_some_and(|seq| !w.backlog.is_through(seq)) {
                        return None;
                    }
                    *pc = 2;
                    Some(false)
                }
                _ => {
                    w.stored.remove(&key(1));
                    w.evicted_done = true;
                    Some(true)
                }
            },
        }
    }
}

fn actors() -> Vec<Actor> {
    vec![
        Actor::Saver(1, 1, false),
        Actor::Saver(2, 2, false),
        Actor::Saver(1, 3, false),
        Actor::Writer(0, Vec::new()),
        Actor::Evictor(0, None),
    ]
}

fn check(w: &World, schedule: &[usize]) {
    assert!(w.backlog.is_empty(), "the queue ends empty");
    assert!(w.backlog.is_through(w.backlog.last_queued()));
    assert!(w.evicted_done);
    let stored = w.stored.get(&key(1));
    if let Some(g) = stored {
        assert!(
            !w.evicted.contains(g),
            "evicted generation {g} came back: {schedule:?}"
        );
    }
    // Key 1: a write queued after the eviction finished survives. One
    // queued while it ran may be removed with it (a miss later, never a
    // stale value), as with writes that go straight to storage.
    if let Some(g) = w.after_eviction {
        assert_eq!(stored, Some(&g), "the write after the eviction is kept");
    }
    // Key 2 is never evicted: it is stored, whatever the order.
    assert_eq!(w.stored.get(&key(2)), Some(&2), "no write is lost");
    for k in KEYS {
        assert!(w.backlog.pending(&key(k)).is_none());
    }
}

#[test]
fn an_eviction_wins_over_queued_and_in_flight_writes_and_nothing_else_is_lost() {
    // Depth first over states: each is the world, the actors and the
    // schedule that led there.
    let mut complete = 0;
    let mut stack = vec![(World::default(), actors(), vec![false; 5], Vec::new())];
    while let Some((w, actors, done, schedule)) = stack.pop() {
        if done.iter().all(|d| *d) {
            check(&w, &schedule);
            complete += 1;
            continue;
        }
        let mut runnable = false;
        for i in 0..actors.len() {
            if done[i] {
                continue;
            }
            let (mut w, mut actors, mut done) = (w.clone(), actors.clone(), done.clone());
            let Some(finished) = actors[i].step(&mut w) else {
                continue;
            };
            done[i] = finished;
            runnable = true;
            let mut schedule = schedule.clone();
            schedule.push(i);
            stack.push((w, actors, done, schedule));
        }
        assert!(runnable, "deadlock after {schedule:?}");
    }
    assert!(complete > 1_000, "{complete} schedules");
}
