//! The memoize layer behind [`CachedFn`](crate::CachedFn): a typed in-process
//! tier in front of the active cache, single-flight computations, refresh
//! and expiry, timeouts and invalidation.

mod across;
pub(crate) mod clock;
mod compute;
pub(crate) mod flight;
pub(crate) mod hot;
mod invalidate;
pub(crate) mod jitter;
mod leader;
pub(crate) mod lru;
pub(crate) mod policy;
mod start;
pub(crate) mod stats;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use flechette_core::encoding::{self, Sink};
use flechette_core::storage::{Coordinator, Invalidation, Lease};
use flechette_core::{
    Cache, CacheError, CallRecord, Digest, Lifespan, Metadata, Runtime, Timestamp, call_key,
};

use clock::{lifespan_now, to_instants};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;

use crate::args::Args;
use crate::error::CallError;
use crate::scope;
use across::Across;
use flight::{Answer, Entered, Flight, FlightGuard, FlightTable, Role};
pub(crate) use hot::ArgBytes;
use hot::{HotEntry, HotKey, HotKeyRef, HotTier, call_tag};
use policy::{Age, Deadlines, Freshness};
pub(crate) use start::{Probe, Step};
use stats::Counters;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type Func<A, T, E> = dyn Fn(A) -> BoxFuture<Result<T, E>> + Send + Sync;
/// The body a flight runs: the stored function, or one given with the call.
pub(crate) type Job<A, T, E> = Box<dyn FnOnce(A) -> BoxFuture<Result<T, E>> + Send>;
pub(crate) type LifespanFn<T> = Arc<dyn Fn(&T) -> Freshness + Send + Sync>;
type Outcome<T, E> = Result<T, CallError<E>>;

/// What identifies a function in call keys.
pub(crate) struct Ident {
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) version: Option<String>,
    pub(crate) arg_names: Vec<String>,
}

/// Which results are kept (all, unless told).
pub(crate) type KeepFn<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// How long results live, which are kept, and how long computations may
/// take.
pub(crate) struct Policy<T> {
    pub(crate) freshness: Freshness,
    pub(crate) lifespan: Option<LifespanFn<T>>,
    /// Spreads the lifespans of results computed together.
    pub(crate) jitter: Option<jitter::Jitter>,
    pub(crate) keep: Option<KeepFn<T>>,
    pub(crate) timeout: Option<Duration>,
    /// A computation running longer than this is reported (once).
    pub(crate) warn_after: Duration,
    /// Results are written before their callers get them.
    pub(crate) write_through: bool,
}

/// Counts and logs the writes of results that failed behind their callers.
pub(crate) struct Faults {
    pub(crate) counters: Arc<Counters>,
    pub(crate) function: String,
}

impl flechette_core::WriteFailed for Faults {
    fn write_failed(&self, key: &Digest, error: &flechette_core::storage::StorageError) {
        Counters::count(&self.counters.storage_faults);
        tracing::warn!(function = %self.function, %key, %error, "could not store the result");
    }
}

/// The body a call brings: none (use the stored function) or a closure.
#[doc(hidden)]
pub trait Body<A, T, E>: Send {
    /// The body as a job, or `None` to use the stored function.
    fn into_job(self) -> Option<Job<A, T, E>>;
}

/// No body of its own: the stored function runs.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Stored;

impl<A, T, E> Body<A, T, E> for Stored {
    fn into_job(self) -> Option<Job<A, T, E>> {
        None
    }
}

impl<A, T, E, F, Fut> Body<A, T, E> for F
where
    F: FnOnce(A) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    fn into_job(self) -> Option<Job<A, T, E>> {
        Some(Box::new(move |args| Box::pin(self(args))))
    }
}

/// Where a flight's task runs: a runtime (default: the current one), the
/// blocking pool or an async worker, and a name for its tracing span.
#[derive(Clone, Debug, Default)]
pub(crate) struct Placement {
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    pub(crate) blocking: bool,
    pub(crate) name: Option<Arc<str>>,
    /// The leader computes in its own task (see [`leader`]); spawned only if
    /// it goes away before the flight is done.
    pub(crate) in_place: bool,
}

/// Why a flight runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A miss: take a fresh stored value if there is one, else compute.
    Load,
    /// A stale hit: take a fresh stored value if there is one, else compute;
    /// a failure keeps the old value.
    Refresh,
    /// A rerun: compute and overwrite.
    Force,
}

/// Encodes into a stack buffer.
struct Buf<'a>(&'a mut ArgBytes);

impl Sink for Buf<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0.put(bytes);
    }

    #[inline]
    fn put_u8(&mut self, byte: u8) {
        self.0.put_u8(byte);
    }
}

/// The shared state of one cached function.
pub(crate) struct Memo<A, T, E> {
    pub(crate) ident: Ident,
    pub(crate) cache: Option<Cache>,
    /// The function; `None` for one whose body comes with each call.
    pub(crate) func: Option<Box<Func<A, T, E>>>,
    pub(crate) policy: Policy<T>,
    pub(crate) hot: HotTier<T>,
    pub(crate) flights: Mutex<FlightTable<HotKey, Flight<T, E>>>,
    pub(crate) counters: Arc<Counters>,
    /// Where writes behind the callers report failures.
    pub(crate) faults: Arc<Faults>,
    /// The caches whose invalidation broadcast this function listens to.
    pub(crate) listening: Mutex<std::collections::HashSet<u64>>,
}

pub(crate) fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<A, T: Clone + Send + Sync + 'static, E> Memo<A, T, E> {
    /// The state of a function called `ident`, over `cache` (the active
    /// cache if `None`), with an in-process tier of `hot` capacity (and
    /// weigher).
    pub(crate) fn new(
        ident: Ident,
        cache: Option<Cache>,
        func: Option<Box<Func<A, T, E>>>,
        policy: Policy<T>,
        hot: (u64, Option<hot::WeighFn<T>>),
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let faults = Arc::new(Faults {
            counters: Arc::clone(&counters),
            function: ident.name.clone(),
        });
        Self {
            hot: HotTier::new(hot.0, hot.1, Arc::clone(&counters)),
            ident,
            cache,
            func,
            policy,
            flights: Mutex::default(),
            counters,
            faults,
            listening: Mutex::default(),
        }
    }
}

impl<A, T, E> Memo<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// The id of the cache calls use now, without cloning it.
    #[inline]
    fn cache_id(&self) -> u64 {
        match &self.cache {
            Some(c) => c.id(),
            None => scope::active_cache_id(),
        }
    }

    /// The cache calls use now.
    pub(crate) fn cache(&self) -> Cache {
        self.cache.clone().unwrap_or_else(scope::cache)
    }

    /// The call key of the given argument digests.
    pub(crate) fn key_of(&self, digests: &[Digest]) -> Digest {
        let named: Vec<(&str, Digest)> = self
            .ident
            .arg_names
            .iter()
            .map(String::as_str)
            .zip(digests.iter().copied())
            .collect();
        call_key(
            &self.ident.name,
            &self.ident.module,
            self.ident.version.as_deref(),
            &named,
        )
    }

    /// Joins the flight for `key` or leads a new one, and waits for it.
    pub(crate) async fn fly(
        self: &Arc<Self>,
        key: HotKey,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
    ) -> Outcome<T, E> {
        let placement = Placement {
            in_place: leader::may_compute_in_place(),
            ..Placement::default()
        };
        let entered = self.enter(key, args, kind, job, &placement);
        self.finish(entered, &placement).await
    }

    /// Joins the flight for `key`, or starts one where `placement` says.
    pub(crate) fn enter(
        self: &Arc<Self>,
        key: HotKey,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
        placement: &Placement,
    ) -> Entered<A, T, E> {
        self.enter_again(key, args, kind, job, placement, false)
    }

    /// [`enter`](Self::enter), for the first time or (`again`) after the
    /// flight it waited on was detached: a caller counts as collapsed once.
    fn enter_again(
        self: &Arc<Self>,
        key: HotKey,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
        placement: &Placement,
        again: bool,
    ) -> Entered<A, T, E> {
        let (role, superseded) = {
            let mut table = lock(&self.flights);
            // Waiting on (or, for a rerun, replacing) a flight this very
            // task chain computes would never end.
            if table.running(&key).is_some_and(|f| scope::computing(f.id)) {
                drop(table);
                return Entered::Cycle(self.cycle(&args));
            }
            // A rerun never takes an answer already on its way.
            let superseded = (kind == Kind::Force)
                .then(|| table.invalidate(&key))
                .flatten();
            (table.join_or_lead(key.clone(), Flight::new), superseded)
        };
        if let Some(old) = superseded {
            old.release_waiters();
        }
        match role {
            Role::Waiter(flight) => {
                if !again {
                    self.counters.collapsed.incr();
                }
                Entered::Waiting(flight, key, args, kind, job)
            }
            Role::Leader(flight) => {
                let task = self.task(key, Arc::clone(&flight), args, kind, job, placement);
                if placement.in_place {
                    return Entered::Leading(flight, Some(leader::InPlace::new(task)));
                }
                Self::spawn(task, placement);
                Entered::Leading(flight, None)
            }
        }
    }

    /// The error of a call that would wait on its own computation.
    fn cycle(&self, args: &A) -> CallError<E> {
        let key = match args.digests() {
            Ok(digests) => self.key_of(&digests).to_hex()[..12].to_owned(),
            Err(e) => return e.into(),
        };
        CallError::Cycle {
            function: self.ident.name.clone(),
            key,
        }
    }

    /// Waits for the flight a caller entered; a waiter whose flight is
    /// detached enters again (joining or starting a new computation).
    pub(crate) async fn finish(
        self: &Arc<Self>,
        mut entered: Entered<A, T, E>,
        placement: &Placement,
    ) -> Outcome<T, E> {
        loop {
            match entered {
                Entered::Leading(flight, Some(task)) => {
                    return self.lead_in_place(&flight, task).await;
                }
                Entered::Leading(flight, None) => {
                    return Self::wait(&flight, false)
                        .await
                        .unwrap_or(Err(CallError::Abandoned));
                }
                Entered::Cycle(e) => return Err(e),
                Entered::Waiting(flight, key, args, kind, job) => {
                    if let Some(outcome) = Self::wait(&flight, true).await {
                        return outcome;
                    }
                    entered = self.enter_again(key, args, kind, job, placement, true);
                }
            }
        }
    }

    /// Waits for what `flight` answers: its outcome, or a stored value it
    /// serves that has not expired. `None` when `detachable` and the flight
    /// was invalidated: the caller no longer waits for it.
    async fn wait(flight: &Flight<T, E>, detachable: bool) -> Option<Outcome<T, E>> {
        let detached = || detachable && flight.mark.is_set();
        let mut rx = flight.answer.subscribe();
        let answer = rx
            .wait_for(|answer| {
                detached()
                    || match answer {
                        Some(Answer::Done(_)) => true,
                        Some(Answer::Early(_, expire_at)) => {
                            expire_at.is_none_or(|at| Instant::now() < at)
                        }
                        None => false,
                    }
            })
            .await;
        if detached() {
            return None;
        }
        Some(match answer.as_deref() {
            Ok(Some(Answer::Done(outcome))) => outcome.clone(),
            Ok(Some(Answer::Early(value, _))) => Ok(value.clone()),
            Ok(None) | Err(_) => Err(CallError::Abandoned),
        })
    }

    /// Starts one background refresh of `key`, unless a flight runs already.
    fn refresh(self: &Arc<Self>, key: HotKey, args: A, job: Option<Job<A, T, E>>) {
        let flight = lock(&self.flights).lead_if_idle(key.clone(), Flight::new);
        if let Some(flight) = flight {
            Counters::count(&self.counters.refreshes_started);
            let placement = Placement::default();
            let task = self.task(key, flight, args, Kind::Refresh, job, &placement);
            Self::spawn(task, &placement);
        }
    }

    /// The computation of a flight as a future, inside the caller's tags
    /// and rerun mode.
    fn task(
        self: &Arc<Self>,
        key: HotKey,
        flight: Arc<Flight<T, E>>,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
        placement: &Placement,
    ) -> BoxFuture<()> {
        let scope = scope::capture().computing(flight.id);
        let cache = self.cache.clone().unwrap_or_else(|| scope.cache());
        self.listen_to(&cache);
        let guard = FlightGuard {
            memo: Arc::clone(self),
            key,
            flight,
        };
        let span = tracing::debug_span!(
            "flechette.flight",
            function = %self.ident.name,
            kind = ?kind,
            task = placement.name.as_deref().unwrap_or(""),
        );
        Box::pin(
            scope
                .with_cache(cache.clone())
                .enter(async move {
                    let guard = guard;
                    guard.memo.run(&guard, cache, args, kind, job).await;
                })
                .instrument(span),
        )
    }

    /// Runs the computation of a flight in a task of its own, where
    /// `placement` says.
    fn spawn(task: BoxFuture<()>, placement: &Placement) {
        let runtime = placement
            .runtime
            .clone()
            .unwrap_or_else(tokio::runtime::Handle::current);
        if placement.blocking {
            let on = runtime.clone();
            runtime.spawn_blocking(move || on.block_on(task));
        } else {
            runtime.spawn(task);
        }
    }
}
