//! Statistics of a cached function, counted without contention on the hit path.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

const STRIPES: usize = 16;

/// Stripes a thread can own. The others are never owned: the threads
/// beyond the first `OWNABLE` add to them atomically, spread over them in
/// turn.
const OWNABLE: usize = 12;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter split over cache lines, so threads counting at once do not
/// fight over one line.
///
/// A thread owns a stripe from its first count until it ends, and only
/// its owner writes to it: an increment is a load and a store, with no
/// locked instruction. (Stripes are released when their thread ends and
/// claimed by later threads with acquire and release ordering, so a new
/// owner goes on from its predecessor's last count.)
#[derive(Default)]
pub(crate) struct Striped([Padded; STRIPES]);

/// Which stripes are owned.
static OWNED: [AtomicBool; OWNABLE] = [const { AtomicBool::new(false) }; OWNABLE];

/// A thread's stripe: [`UNCLAIMED`] until its first count, then the index
/// of the stripe it owns, or of a shared one (`OWNABLE` or more).
struct Slot(Cell<usize>);

const UNCLAIMED: usize = usize::MAX;

/// The shared stripe the next thread without a stripe of its own takes.
static NEXT_SHARED: AtomicUsize = AtomicUsize::new(0);

fn shared() -> usize {
    OWNABLE + NEXT_SHARED.fetch_add(1, Ordering::Relaxed) % (STRIPES - OWNABLE)
}

impl Drop for Slot {
    fn drop(&mut self) {
        let i = self.0.get();
        if i < OWNABLE {
            OWNED[i].store(false, Ordering::Release);
        }
    }
}

thread_local! {
    static SLOT: Slot = const { Slot(Cell::new(UNCLAIMED)) };
}

/// The stripe the current thread counts on.
#[inline]
fn stripe() -> usize {
    SLOT.try_with(|s| {
        let i = s.0.get();
        if i != UNCLAIMED {
            return i;
        }
        let claimed = (0..OWNABLE)
            .find(|&i| {
                OWNED[i]
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            })
            .unwrap_or_else(shared);
        s.0.set(claimed);
        claimed
    })
    // A count from a thread-local destructor, after the slot's own.
    .unwrap_or(OWNABLE)
}

impl Striped {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let i = stripe();
        let count = &self.0[i].0;
        if i < OWNABLE {
            // Only this thread writes this stripe.
            count.store(
                count.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            count.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

/// The live counters of one cached function.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: Striped,
    pub(crate) stale_hits: Striped,
    pub(crate) misses: Striped,
    pub(crate) collapsed: Striped,
    pub(crate) refreshes_started: AtomicU64,
    pub(crate) refreshes_failed: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) computations: AtomicU64,
    pub(crate) computation_nanos: AtomicU64,
    pub(crate) running: AtomicU64,
    pub(crate) waited_across: AtomicU64,
    pub(crate) storage_faults: AtomicU64,
}

impl Counters {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one computation that ended, after `took`.
    pub(crate) fn record_computation(&self, took: Duration) {
        self.computations.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.computation_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a computation as running until the guard drops.
    pub(crate) fn running(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(&self.running)
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            hits: self.hits.get(),
            stale_hits: self.stale_hits.get(),
            misses: self.misses.get(),
            collapsed: self.collapsed.get(),
            refreshes_started: get(&self.refreshes_started),
            refreshes_failed: get(&self.refreshes_failed),
            evictions: get(&self.evictions),
            timeouts: get(&self.timeouts),
            failures: get(&self.failures),
            computations: get(&self.computations),
            computation_time: Duration::from_nanos(get(&self.computation_nanos)),
            running: get(&self.running),
            waited_across: get(&self.waited_across),
            storage_faults: get(&self.storage_faults),
        }
    }
}

/// Marks one computation as running while it lives.
pub(crate) struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of what a cached function has done since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Calls answered from the in-process tier with a fresh value.
    pub hits: u64,
    /// Calls answered with a stale value while a refresh was due.
    pub stale_hits: u64,
    /// Calls that missed the in-process tier (answered from storage, a
    /// computation in flight, or a new computation).
    pub misses: u64,
    /// Calls that waited on a computation another call had started.
    pub collapsed: u64,
    /// Background refreshes started.
    pub refreshes_started: u64,
    /// Background refreshes whose computation failed, panicked or timed out.
    pub refreshes_failed: u64,
    /// Entries evicted from the in-process tier for capacity.
    pub evictions: u64,
    /// Computations cancelled by the timeout.
    pub timeouts: u64,
    /// Computations that returned an error or panicked (background
    /// refreshes included; a timeout counts in `timeouts`).
    pub failures: u64,
    /// Computations that ran to an end: with a value, an error, a panic or
    /// a timeout (background refreshes included).
    pub computations: u64,
    /// Time spent in those computations, summed.
    pub computation_time: Duration,
    /// Computations running now (a gauge).
    pub running: u64,
    /// Times a computation waited for another process sharing the cache to
    /// finish the same call (cross-process single flight).
    pub waited_across: u64,
    /// Storage operations that failed (a corrupt entry, Redis down, a full
    /// disk): each was a miss or a lost write, and a warning.
    pub storage_faults: u64,
}

impl Stats {
    /// Fresh and stale hits over all calls, or 0 before any call.
    pub fn hit_ratio(&self) -> f64 {
        let hits = self.hits + self.stale_hits;
        let total = hits + self.misses;
        if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    /// Threads counting at once, more than there are stripes to own, then
    /// a second wave (on the stripes the first released, when their
    /// thread-local destructors have run by then): no count is lost.
    #[test]
    fn every_count_is_kept_by_owners_sharers_and_successors() {
        let counter = Striped::default();
        const THREADS: usize = 3 * STRIPES;
        const EACH: u64 = 20_000;
        for _wave in 0..2 {
            let start = Barrier::new(THREADS);
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        start.wait();
                        for _ in 0..EACH {
                            counter.incr();
                        }
                        counter.add(2);
                    });
                }
            });
        }
        assert_eq!(counter.get(), 2 * THREADS as u64 * (EACH + 2));
    }

    /// The invariant that makes a plain load and store exact: no two live
    /// threads own one stripe, and the threads beyond the ownable stripes
    /// share the others. Twice: the second wave may claim stripes the
    /// first released.
    #[test]
    fn no_two_live_threads_own_one_stripe() {
        const THREADS: usize = 2 * STRIPES;
        for _wave in 0..2 {
            let (start, stop) = (Barrier::new(THREADS), Barrier::new(THREADS));
            let stripes: Vec<usize> = std::thread::scope(|s| {
                let threads: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            let i = stripe();
                            assert_eq!(stripe(), i, "a thread keeps its stripe");
                            stop.wait(); // every thread holds its stripe until all have one
                            i
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let mut owned: Vec<usize> = stripes.iter().copied().filter(|&i| i < OWNABLE).collect();
            let shared = stripes
                .iter()
                .filter(|&&i| (OWNABLE..STRIPES).contains(&i))
                .count();
            assert_eq!(owned.len() + shared, THREADS, "{stripes:?}");
            assert!(shared >= THREADS - OWNABLE, "{stripes:?}");
            owned.sort_unstable();
            owned.dedup();
            assert_eq!(
                owned.len() + shared,
                THREADS,
                "two threads own one stripe: {stripes:?}"
            );
        }
    }
}
