//! Single flight: at most one computation per key at a time; everyone else
//! who asks meanwhile waits for that one's outcome.
//!
//! [`FlightTable`] is the whole bookkeeping, kept free of async so that it
//! can be checked by exhaustive interleaving (the `model` tests below drive
//! this very code through every order of its steps).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a flight must offer the table.
pub(crate) trait Invalidate {
    /// Marks the flight's result as no longer fresh: it must not be stored.
    fn invalidate(&self);
}

/// Who a caller is in a flight.
#[derive(Debug)]
pub(crate) enum Role<F> {
    /// Start the computation.
    Leader(Arc<F>),
    /// Wait for the one in flight.
    Waiter(Arc<F>),
}

/// The flights in progress, by key.
#[derive(Debug)]
pub(crate) struct FlightTable<K, F> {
    flights: HashMap<K, Arc<F>>,
}

impl<K, F> Default for FlightTable<K, F> {
    fn default() -> Self {
        Self {
            flights: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq, F: Invalidate> FlightTable<K, F> {
    /// Joins the flight for `key`, or starts one made by `make`.
    pub(crate) fn join_or_lead(&mut self, key: K, make: impl FnOnce() -> F) -> Role<F> {
        if let Some(f) = self.flights.get(&key) {
            return Role::Waiter(Arc::clone(f));
        }
        let f = Arc::new(make());
        self.flights.insert(key, Arc::clone(&f));
        Role::Leader(f)
    }

    /// Starts a flight for `key` unless one is running; `None` if one is.
    pub(crate) fn lead_if_idle(&mut self, key: K, make: impl FnOnce() -> F) -> Option<Arc<F>> {
        match self.join_or_lead(key, make) {
            Role::Leader(f) => Some(f),
            Role::Waiter(_) => None,
        }
    }

    /// Ends `flight`: removes it, unless the key already belongs to another.
    pub(crate) fn finish(&mut self, key: &K, flight: &Arc<F>) {
        if self
            .flights
            .get(key)
            .is_some_and(|f| Arc::ptr_eq(f, flight))
        {
            self.flights.remove(key);
        }
    }

    /// Invalidates the flight for `key`, if any: its result will not be
    /// stored, and the next caller starts a new flight. Returns it.
    pub(crate) fn invalidate(&mut self, key: &K) -> Option<Arc<F>> {
        let f = self.flights.remove(key)?;
        f.invalidate();
        Some(f)
    }

    /// The flight running for `key`, if any.
    pub(crate) fn running(&self, key: &K) -> Option<&Arc<F>> {
        self.flights.get(key)
    }

    /// Invalidates the flights whose key passes `pred`; returns them.
    pub(crate) fn invalidate_where(&mut self, pred: impl Fn(&K) -> bool) -> Vec<Arc<F>> {
        let mut marked = Vec::new();
        self.flights.retain(|k, f| {
            let hit = pred(k);
            if hit {
                f.invalidate();
                marked.push(Arc::clone(f));
            }
            !hit
        });
        marked
    }

    /// Invalidates every flight; returns them.
    pub(crate) fn invalidate_all(&mut self) -> Vec<Arc<F>> {
        self.flights
            .drain()
            .map(|(_, f)| {
                f.invalidate();
                f
            })
            .collect()
    }
}

/// The invalidation mark of one flight.
#[derive(Debug, Default)]
pub(crate) struct Mark {
    invalidated: AtomicBool,
}

impl Mark {
    /// Whether the flight was invalidated.
    pub(crate) fn is_set(&self) -> bool {
        self.invalidated.load(Ordering::SeqCst)
    }
}

impl Invalidate for Mark {
    fn invalidate(&self) {
        self.invalidated.store(true, Ordering::SeqCst);
    }
}

/// The flight of a cached function: what its waiters see, its mark, and
/// the lock held while it stores its result.
mod of_memo {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::watch;
    use tokio::time::Instant;

    use super::{Invalidate, Mark};
    use crate::error::CallError;
    use crate::memo::hot::HotKey;
    use crate::memo::stats::Counters;
    use crate::memo::{Job, Kind, Memo, Outcome, lock};

    /// What a flight has answered so far.
    pub(crate) enum Answer<T, E> {
        /// A stored value served while the flight goes on to refresh it; good
        /// for callers arriving before its expiry (none: it never expires).
        Early(T, Option<Instant>),
        /// The outcome of the flight.
        Done(Outcome<T, E>),
    }

    /// One computation in progress and the outcome its waiters receive.
    pub(crate) struct Flight<T, E> {
        pub(crate) id: u64,
        pub(crate) answer: watch::Sender<Option<Answer<T, E>>>,
        pub(crate) mark: Mark,
        /// Held while the result is stored: an invalidation waits for a store
        /// under way before it evicts, so it never returns with the
        /// invalidated result still in storage.
        pub(crate) storing: tokio::sync::Mutex<()>,
    }

    static NEXT_FLIGHT: AtomicU64 = AtomicU64::new(1);

    impl<T, E> Flight<T, E> {
        pub(crate) fn new() -> Self {
            Self {
                id: NEXT_FLIGHT.fetch_add(1, Ordering::Relaxed),
                answer: watch::Sender::new(None),
                mark: Mark::default(),
                storing: tokio::sync::Mutex::new(()),
            }
        }

        /// Publishes the flight's outcome.
        pub(crate) fn publish(&self, outcome: Outcome<T, E>) {
            self.answer.send_replace(Some(Answer::Done(outcome)));
        }

        /// Answers callers with a stored value until it expires, while the
        /// flight goes on; callers arriving after `expire_at` wait for the
        /// outcome.
        pub(crate) fn publish_early(&self, value: T, expire_at: Option<Instant>) {
            self.answer.send_if_modified(|answer| {
                if answer.is_some() {
                    return false;
                }
                *answer = Some(Answer::Early(value, expire_at));
                true
            });
        }

        pub(crate) fn is_done(&self) -> bool {
            matches!(*self.answer.borrow(), Some(Answer::Done(_)))
        }
    }

    impl<T, E> Flight<T, E> {
        /// Wakes the waiters of an invalidated flight: they leave it and enter
        /// again. Called once whatever the invalidation evicts is gone, so that
        /// a new flight they start cannot read it.
        pub(crate) fn release_waiters(&self) {
            self.answer.send_modify(|_| {});
        }
    }

    impl<T, E> Invalidate for Flight<T, E> {
        fn invalidate(&self) {
            self.mark.invalidate();
        }
    }

    /// A caller's place after it entered the flights of a key.
    pub(crate) enum Entered<A, T, E> {
        /// It started the flight, which runs its body: in the caller's own
        /// task when the computation is given, else in a task of its own.
        Leading(Arc<Flight<T, E>>, Option<crate::memo::leader::InPlace>),
        /// It waits for another caller's flight; if that flight is detached
        /// (invalidated) it enters again with its own arguments and body.
        Waiting(Arc<Flight<T, E>>, HotKey, A, Kind, Option<Job<A, T, E>>),
        /// It would wait on a flight its own task chain computes.
        Cycle(CallError<E>),
    }

    /// Publishes "abandoned" (or "panicked") if a flight ends without an
    /// outcome, and always takes the flight off the table.
    pub(crate) struct FlightGuard<A, T, E> {
        pub(crate) memo: Arc<Memo<A, T, E>>,
        pub(crate) key: HotKey,
        pub(crate) flight: Arc<Flight<T, E>>,
    }

    impl<A, T, E> Drop for FlightGuard<A, T, E> {
        fn drop(&mut self) {
            if !self.flight.is_done() {
                let panicked = std::thread::panicking();
                if panicked {
                    Counters::count(&self.memo.counters.failures);
                }
                self.flight.publish(Err(if panicked {
                    CallError::Panicked
                } else {
                    CallError::Abandoned
                }));
            }
            lock(&self.memo.flights).finish(&self.key, &self.flight);
        }
    }
}

pub(crate) use of_memo::{Answer, Entered, Flight, FlightGuard};

/// Exhaustive interleavings of the single-flight protocol: every order of
/// the steps of a few callers, a leader's store and an invalidation is run
/// against the real [`FlightTable`] and [`Mark`], and the invariants are
/// checked after each. The store steps mirror `Memo::store`: check the
/// mark, insert, check the mark again, remove if it was set meanwhile.
#[cfg(test)]
mod model {
    use std::sync::Mutex;

    use super::*;

    struct TestFlight {
        id: usize,
        mark: Mark,
        published: Mutex<Option<usize>>,
    }

    impl Invalidate for TestFlight {
        fn invalidate(&self) {
            self.mark.invalidate();
        }
    }

    #[derive(Default)]
    struct World {
        table: FlightTable<u8, TestFlight>,
        /// The hot tier's entry for the key: the id of the flight that stored it.
        hot: Option<usize>,
        flights: usize,
        /// Flights in the table when an invalidation landed.
        stale: Vec<usize>,
        invalidated: bool,
    }

    /// One caller: joins or leads; a leader computes, stores, publishes and
    /// finishes; a waiter waits for the publication.
    struct Caller {
        pc: usize,
        flight: Option<Arc<TestFlight>>,
        leader: bool,
        saw_mark: bool,
        got: Option<usize>,
        /// Starts only after the invalidation (a call made "afterwards").
        after_invalidation: bool,
    }

    impl Caller {
        fn new(after_invalidation: bool) -> Self {
            Self {
                pc: 0,
                flight: None,
                leader: false,
                saw_mark: false,
                got: None,
                after_invalidation,
            }
        }

        /// `None` when blocked, else whether the caller is done.
        fn step(&mut self, w: &mut World) -> Option<bool> {
            if self.pc == 0 {
                if self.after_invalidation && !w.invalidated {
                    return None;
                }
                let next = w.flights;
                match w.table.join_or_lead(0, || TestFlight {
                    id: next,
                    mark: Mark::default(),
                    published: Mutex::new(None),
                }) {
                    Role::Leader(f) => {
                        w.flights += 1;
                        self.leader = true;
                        self.flight = Some(f);
                    }
                    Role::Waiter(f) => self.flight = Some(f),
                }
                self.pc = 1;
                return Some(false);
            }
            let f = Arc::clone(self.flight.as_ref().expect("joined at step 0"));
            if !self.leader {
                let published = *f.published.lock().unwrap();
                return published.map(|v| {
                    self.got = Some(v);
                    true
                });
            }
            match self.pc {
                1 => self.saw_mark = f.mark.is_set(),
                2 => {
                    if !self.saw_mark {
                        w.hot = Some(f.id);
                    }
                }
                3 => self.saw_mark = f.mark.is_set(),
                4 => {
                    if self.saw_mark && w.hot == Some(f.id) {
                        w.hot = None;
                    }
                }
                5 => *f.published.lock().unwrap() = Some(f.id),
                _ => {
                    w.table.finish(&0, &f);
                    self.got = Some(f.id);
                    return Some(true);
                }
            }
            self.pc += 1;
            Some(false)
        }
    }

    /// Invalidates the key: the table first, then the hot tier.
    struct Invalidator {
        pc: usize,
    }

    impl Invalidator {
        fn step(&mut self, w: &mut World) -> Option<bool> {
            if self.pc == 0 {
                w.stale.extend(w.table.flights.values().map(|f| f.id));
                w.table.invalidate(&0);
                self.pc = 1;
                Some(false)
            } else {
                w.hot = None;
                w.invalidated = true;
                Some(true)
            }
        }
    }

    enum Actor {
        Caller(Caller),
        Invalidator(Invalidator),
    }

    impl Actor {
        fn step(&mut self, w: &mut World) -> Option<bool> {
            match self {
                Actor::Caller(c) => c.step(w),
                Actor::Invalidator(i) => i.step(w),
            }
        }
    }

    /// Runs `schedule` (actor indices) from a fresh world; `None` if an
    /// entry names a blocked or finished actor.
    fn replay(
        make: &dyn Fn() -> Vec<Actor>,
        schedule: &[usize],
    ) -> Option<(World, Vec<Actor>, Vec<bool>)> {
        let mut w = World::default();
        let mut actors = make();
        let mut done = vec![false; actors.len()];
        for &i in schedule {
            if done[i] {
                return None;
            }
            done[i] = actors[i].step(&mut w)?;
        }
        Some((w, actors, done))
    }

    /// Every complete schedule, depth first; panics on a deadlock.
    fn explore(make: &dyn Fn() -> Vec<Actor>, check: &dyn Fn(&World, &[Actor])) -> usize {
        let mut complete = 0;
        let mut stack: Vec<Vec<usize>> = vec![Vec::new()];
        while let Some(prefix) = stack.pop() {
            let (w, actors, done) = replay(make, &prefix).expect("prefixes are runnable");
            if done.iter().all(|d| *d) {
                check(&w, &actors);
                complete += 1;
                continue;
            }
            let mut runnable = false;
            for i in 0..actors.len() {
                let mut next = prefix.clone();
                next.push(i);
                if replay(make, &next).is_some() {
                    runnable = true;
                    stack.push(next);
                }
            }
            assert!(
                runnable,
                "deadlock: a caller waits forever after {prefix:?}"
            );
        }
        complete
    }

    fn got(a: &Actor) -> Option<usize> {
        match a {
            Actor::Caller(c) => c.got,
            Actor::Invalidator(_) => None,
        }
    }

    #[test]
    fn concurrent_callers_share_one_computation_and_nobody_hangs() {
        let make = || (0..3).map(|_| Actor::Caller(Caller::new(false))).collect();
        let schedules = explore(&make, &|w, actors| {
            assert!(w.table.flights.is_empty(), "every flight is finished");
            // Each caller got the value of the flight it joined or led, and
            // there were no more computations than flights.
            for a in actors {
                let v = got(a).expect("every caller got a value");
                assert!(v < w.flights);
            }
            assert_eq!(
                w.hot,
                Some(w.flights - 1),
                "the last flight's value is kept"
            );
        });
        assert!(schedules > 1_000, "{schedules} schedules");
    }

    #[test]
    fn an_invalidation_during_a_flight_wins() {
        let make = || {
            vec![
                Actor::Caller(Caller::new(false)),
                Actor::Invalidator(Invalidator { pc: 0 }),
                Actor::Caller(Caller::new(true)),
            ]
        };
        let schedules = explore(&make, &|w, actors| {
            if let Some(id) = w.hot {
                assert!(
                    !w.stale.contains(&id),
                    "a value invalidated in flight is served"
                );
            }
            let late = got(&actors[2]).expect("the later caller got a value");
            assert!(
                !w.stale.contains(&late),
                "the later caller got a stale value"
            );
        });
        assert!(schedules > 50, "{schedules} schedules");
    }
}
