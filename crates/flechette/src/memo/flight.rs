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
    /// stored, and the next caller starts a new flight.
    pub(crate) fn invalidate(&mut self, key: &K) {
        if let Some(f) = self.flights.remove(key) {
            f.invalidate();
        }
    }

    /// Invalidates every flight.
    pub(crate) fn invalidate_all(&mut self) {
        for (_, f) in self.flights.drain() {
            f.invalidate();
        }
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
