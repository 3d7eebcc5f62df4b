//! The memoize layer behind [`CachedFn`](crate::CachedFn): a typed in-process
//! tier in front of the active cache, single-flight computations, refresh
//! and expiry, timeouts and invalidation.

pub(crate) mod clock;
pub(crate) mod flight;
pub(crate) mod hot;
pub(crate) mod lru;
pub(crate) mod policy;
pub(crate) mod stats;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
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
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use crate::args::Args;
use crate::error::CallError;
use crate::scope;
use flight::{FlightTable, Invalidate, Mark, Role};
use hot::{ArgBytes, HotEntry, HotKey, HotKeyRef, HotTier};
use policy::{Age, Deadlines, Freshness};
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
    pub(crate) keep: Option<KeepFn<T>>,
    pub(crate) timeout: Option<Duration>,
    /// A computation running longer than this is reported (once).
    pub(crate) warn_after: Duration,
}

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
    id: u64,
    answer: watch::Sender<Option<Answer<T, E>>>,
    mark: Mark,
    /// Held while the result is stored: an invalidation waits for a store
    /// under way before it evicts, so it never returns with the
    /// invalidated result still in storage.
    storing: tokio::sync::Mutex<()>,
}

static NEXT_FLIGHT: AtomicU64 = AtomicU64::new(1);

impl<T, E> Flight<T, E> {
    fn new() -> Self {
        Self {
            id: NEXT_FLIGHT.fetch_add(1, Ordering::Relaxed),
            answer: watch::Sender::new(None),
            mark: Mark::default(),
            storing: tokio::sync::Mutex::new(()),
        }
    }

    /// Publishes the flight's outcome.
    fn publish(&self, outcome: Outcome<T, E>) {
        self.answer.send_replace(Some(Answer::Done(outcome)));
    }

    /// Answers callers with a stored value until it expires, while the
    /// flight goes on; callers arriving after `expire_at` wait for the
    /// outcome.
    fn publish_early(&self, value: T, expire_at: Option<Instant>) {
        self.answer.send_if_modified(|answer| {
            if answer.is_some() {
                return false;
            }
            *answer = Some(Answer::Early(value, expire_at));
            true
        });
    }

    fn is_done(&self) -> bool {
        matches!(*self.answer.borrow(), Some(Answer::Done(_)))
    }
}

impl<T, E> Flight<T, E> {
    /// Wakes the waiters of an invalidated flight: they leave it and enter
    /// again. Called once whatever the invalidation evicts is gone, so that
    /// a new flight they start cannot read it.
    fn release_waiters(&self) {
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
    /// It started the flight, which runs its body.
    Leading(Arc<Flight<T, E>>),
    /// It waits for another caller's flight; if that flight is detached
    /// (invalidated) it enters again with its own arguments and body.
    Waiting(Arc<Flight<T, E>>, HotKey, A, Kind, Option<Job<A, T, E>>),
    /// It would wait on a flight its own task chain computes.
    Cycle(CallError<E>),
}

/// What the synchronous start of a call decided.
pub(crate) enum Step<A, T, E> {
    /// Answered from the hot tier.
    Done(T),
    /// To be answered by a flight (running the given body, if any).
    Fly(HotKey, A, Kind, Option<Job<A, T, E>>),
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
}

/// What the cross-process single flight decided.
enum Across {
    /// This process computes (holding the lease, when one was taken).
    Lead(Option<Lease>),
    /// Another process computed; its result was served.
    Served,
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
        self.0.extend_from_slice(bytes);
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
    /// The caches whose invalidation broadcast this function listens to.
    pub(crate) listening: Mutex<std::collections::HashSet<u64>>,
}

/// Publishes "abandoned" (or "panicked") if a flight ends without an
/// outcome, and always takes the flight off the table.
struct FlightGuard<A, T, E> {
    memo: Arc<Memo<A, T, E>>,
    key: HotKey,
    flight: Arc<Flight<T, E>>,
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

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The hot-tier bytes of `args`.
    #[inline]
    fn arg_bytes(args: &A) -> Result<ArgBytes, CallError<E>> {
        let mut buf = ArgBytes::new();
        encoding::write_to(args, &mut Buf(&mut buf))?;
        Ok(buf)
    }

    /// The synchronous start of a call: answered from the hot tier (fresh,
    /// or stale while one refresh starts), or handed on to a flight.
    #[inline]
    pub(crate) fn start<B: Body<A, T, E>>(
        self: &Arc<Self>,
        args: A,
        body: B,
    ) -> Result<Step<A, T, E>, CallError<E>> {
        let cache_id = self.cache_id();
        let bytes = Self::arg_bytes(&args)?;
        let key = HotKeyRef {
            cache: cache_id,
            args: &bytes,
        };
        if scope::rerunning() {
            return Ok(Step::Fly(
                key.to_owned_key(),
                args,
                Kind::Force,
                body.into_job(),
            ));
        }
        if let Some(entry) = self.hot.get(key) {
            let age = if entry.deadlines.never() {
                Age::Fresh
            } else {
                entry.deadlines.age(Instant::now())
            };
            match age {
                Age::Fresh => {
                    self.counters.hits.incr();
                    return Ok(Step::Done(entry.value));
                }
                Age::Stale => {
                    self.counters.stale_hits.incr();
                    self.refresh(key.to_owned_key(), args, body.into_job());
                    return Ok(Step::Done(entry.value));
                }
                Age::Expired => self.hot.remove(key),
            }
        }
        self.counters.misses.incr();
        Ok(Step::Fly(
            key.to_owned_key(),
            args,
            Kind::Load,
            body.into_job(),
        ))
    }

    /// Joins the flight for `key` or leads a new one, and waits for it.
    pub(crate) async fn fly(
        self: &Arc<Self>,
        key: HotKey,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
    ) -> Outcome<T, E> {
        let placement = Placement::default();
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
                self.launch(key, Arc::clone(&flight), args, kind, job, placement);
                Entered::Leading(flight)
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
                Entered::Leading(flight) => {
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
            self.launch(key, flight, args, Kind::Refresh, job, &Placement::default());
        }
    }

    /// Spawns the task of a flight, inside the caller's tags and rerun mode.
    fn launch(
        self: &Arc<Self>,
        key: HotKey,
        flight: Arc<Flight<T, E>>,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
        placement: &Placement,
    ) {
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
        let task = scope
            .with_cache(cache.clone())
            .enter(async move {
                let guard = guard;
                guard.memo.run(&guard, cache, args, kind, job).await;
            })
            .instrument(span);
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

    /// The body of a flight.
    async fn run(
        &self,
        guard: &FlightGuard<A, T, E>,
        cache: Cache,
        args: A,
        kind: Kind,
        job: Option<Job<A, T, E>>,
    ) {
        let flight = &guard.flight;
        let digests = match args.digests() {
            Ok(d) => d,
            Err(e) => return flight.publish(Err(e.into())),
        };
        let call_key = self.key_of(&digests);
        let mut refreshing = kind == Kind::Refresh;
        if kind != Kind::Force
            && let Some((value, deadlines, age)) = self.stored(&cache, &call_key).await
        {
            self.promote(&guard.key, flight, &call_key, value.clone(), deadlines);
            if age == Age::Fresh {
                return flight.publish(Ok(value));
            }
            // Stale: served to callers until it expires, while this flight
            // refreshes it.
            flight.publish_early(value, deadlines.expire_at);
            // Served stale from storage: refresh it in this same flight.
            if !refreshing {
                Counters::count(&self.counters.refreshes_started);
                refreshing = true;
            }
        }
        // Across processes sharing the cache: one computes, the others wait
        // for its result.
        let mut lease = None;
        if kind != Kind::Force
            && let Some(coordinator) = cache.coordinator()
        {
            match self
                .lead_across(coordinator, &cache, &call_key, guard)
                .await
            {
                Across::Lead(held) => lease = held,
                Across::Served => return,
            }
        }
        let computed = self.compute(args, job).await;
        let release = async {
            if let (Some(coordinator), Some(lease)) = (cache.coordinator(), &lease)
                && let Err(e) = coordinator.release(&call_key, lease).await
            {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not release the cross-process lease; it expires by itself");
            }
        };
        match computed {
            Ok((value, record, values)) => {
                if self.keeps(&value) {
                    self.store(&guard.key, flight, &cache, value.clone(), &record, values)
                        .await;
                } else if refreshing || kind == Kind::Force {
                    // A refused result replaces nothing: the value it would
                    // have refreshed goes, so it is not served again.
                    self.drop_refused(&guard.key, &cache, &call_key).await;
                }
                release.await;
                flight.publish(Ok(value));
            }
            Err(e) => {
                if refreshing {
                    Counters::count(&self.counters.refreshes_failed);
                    tracing::warn!(function = %self.ident.name, error = %ErrorKind(&e), "background refresh failed; the old value is kept until it expires");
                }
                release.await;
                // Whoever was served the stored value keeps it; callers
                // still waiting get the error.
                flight.publish(Err(e));
            }
        }
    }

    /// Takes the computation of `call_key` across processes, or waits for
    /// the process that holds it and serves its result.
    async fn lead_across(
        &self,
        coordinator: &Arc<dyn Coordinator>,
        cache: &Cache,
        call_key: &Digest,
        guard: &FlightGuard<A, T, E>,
    ) -> Across {
        // Long enough for the computation; a holder that dies frees the key
        // when its lease expires.
        let ttl = self.policy.timeout.unwrap_or(Duration::from_secs(60)) + Duration::from_secs(5);
        loop {
            match coordinator.acquire(call_key, ttl).await {
                Ok(Some(lease)) => {
                    // Another process may have stored it just before.
                    if let Some((value, deadlines, Age::Fresh)) = self.stored(cache, call_key).await
                    {
                        let _ = coordinator.release(call_key, &lease).await;
                        self.serve(guard, call_key, value, deadlines);
                        return Across::Served;
                    }
                    return Across::Lead(Some(lease));
                }
                Ok(None) => {
                    Counters::count(&self.counters.waited_across);
                    if let Err(e) = coordinator.wait_released(call_key, ttl).await {
                        Counters::count(&self.counters.storage_faults);
                        tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "cross-process wait failed; computing here");
                        return Across::Lead(None);
                    }
                    if let Some((value, deadlines, Age::Fresh)) = self.stored(cache, call_key).await
                    {
                        self.serve(guard, call_key, value, deadlines);
                        return Across::Served;
                    }
                    // The holder failed or its result is gone: try to take over.
                }
                Err(e) => {
                    Counters::count(&self.counters.storage_faults);
                    tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "cross-process single flight unavailable; computing here");
                    return Across::Lead(None);
                }
            }
        }
    }

    /// Answers the flight with a value another process stored.
    fn serve(
        &self,
        guard: &FlightGuard<A, T, E>,
        call_key: &Digest,
        value: T,
        deadlines: Deadlines<Instant>,
    ) {
        self.promote(
            &guard.key,
            &guard.flight,
            call_key,
            value.clone(),
            deadlines,
        );
        guard.flight.publish(Ok(value));
    }

    /// A stored call under `key` that has not expired, with its deadlines.
    async fn stored(&self, cache: &Cache, key: &Digest) -> Option<(T, Deadlines<Instant>, Age)> {
        // The record and its result together: one round trip where the
        // storage can.
        let (record, bytes) = match cache.load_with_result(key).await {
            Ok(found) => found?,
            Err(e) => {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, %key, error = %e, "cache read failed; computing");
                return None;
            }
        };
        let deadlines = record.metadata.lifespan.as_ref().map_or(
            Deadlines {
                update_at: None,
                expire_at: None,
            },
            to_instants,
        );
        let age = deadlines.age(Instant::now());
        if age == Age::Expired {
            return None;
        }
        let decoded = bytes
            .ok_or(CacheError::MissingValue(record.result))
            .and_then(|b| encoding::from_slice::<T>(&b).map_err(CacheError::from));
        match decoded {
            Ok(value) => Some((value, deadlines, age)),
            Err(e) => {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, %key, error = %e, "cached result unreadable; computing");
                None
            }
        }
    }

    /// Runs the function once (bounded by the timeout) and prepares what to
    /// store: the value, its record, and the encoded values.
    async fn compute(
        &self,
        args: A,
        job: Option<Job<A, T, E>>,
    ) -> Result<(T, CallRecord, Vec<(Digest, Bytes)>), CallError<E>> {
        let encoded = args.encode()?;
        let timestart = Timestamp::now();
        let started = Instant::now();
        let fut = match (job, &self.func) {
            (Some(job), _) => job(args),
            (None, Some(func)) => func(args),
            (None, None) => return Err(CallError::Unbound),
        };
        let running = self.counters.running();
        let fut = watch_slow(&self.ident.name, self.policy.warn_after, CatchUnwind(fut));
        let outcome = match self.policy.timeout {
            Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
            None => Some(fut.await),
        };
        drop(running);
        let took = started.elapsed();
        self.counters.record_computation(took);
        let value = match outcome {
            Some(Ok(Ok(value))) => value,
            Some(Ok(Err(e))) => {
                Counters::count(&self.counters.failures);
                return Err(CallError::Failed(Arc::new(e)));
            }
            Some(Err(Panicked)) => {
                Counters::count(&self.counters.failures);
                return Err(CallError::Panicked);
            }
            None => {
                Counters::count(&self.counters.timeouts);
                let limit = self.policy.timeout.unwrap_or_default();
                return Err(CallError::Timeout(limit));
            }
        };
        let result = encoding::to_vec(&value)?;
        let result_digest = Digest::of_encoded(&result);
        let timestop = Timestamp::now();
        let created = lifespan_now();
        let freshness = self.freshness(&value);
        let record = CallRecord {
            name: self.ident.name.clone(),
            module: self.ident.module.clone(),
            version: self.ident.version.clone(),
            arguments: self
                .ident
                .arg_names
                .iter()
                .cloned()
                .zip(encoded.iter().map(|(d, _)| *d))
                .collect(),
            result: result_digest,
            metadata: Metadata {
                runtime: Some(Runtime {
                    timestart,
                    timestop,
                    walltime: took.as_secs_f64(),
                }),
                tags: scope::current_tags(),
                lifespan: Some(Lifespan {
                    created,
                    update_after: freshness.update_after.map(|d| created.plus(d)),
                    expire_after: freshness.expire_after.map(|d| created.plus(d)),
                }),
                extra: Default::default(),
            },
        };
        let mut values = encoded;
        values.push((result_digest, Bytes::from(result)));
        Ok((value, record, values))
    }

    /// Forgets the value a refused refresh (or rerun) would have replaced,
    /// in process and in storage.
    async fn drop_refused(&self, key: &HotKey, cache: &Cache, call_key: &Digest) {
        self.hot.remove(key.into());
        if let Err(e) = cache.evict(call_key).await {
            Counters::count(&self.counters.storage_faults);
            tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not evict a call whose refresh was not kept");
        }
    }

    /// Whether `value` is kept (stored and put in the hot tier).
    fn keeps(&self, value: &T) -> bool {
        self.policy.keep.as_ref().is_none_or(|keep| keep(value))
    }

    fn freshness(&self, value: &T) -> Freshness {
        self.policy
            .lifespan
            .as_ref()
            .map_or(self.policy.freshness, |f| f(value))
    }

    /// Stores a computed value in the hot tier and the cache, unless the
    /// flight was invalidated; an invalidation that lands meanwhile wins.
    async fn store(
        &self,
        key: &HotKey,
        flight: &Flight<T, E>,
        cache: &Cache,
        value: T,
        record: &CallRecord,
        values: Vec<(Digest, Bytes)>,
    ) {
        let _storing = flight.storing.lock().await;
        if flight.mark.is_set() {
            return;
        }
        let freshness = self.freshness(&value);
        let now = Instant::now();
        let deadlines = Deadlines {
            update_at: freshness.update_after.and_then(|d| now.checked_add(d)),
            expire_at: freshness.expire_after.and_then(|d| now.checked_add(d)),
        };
        let call_key = record.key();
        if !self.promote(key, flight, &call_key, value, deadlines) {
            return;
        }
        let saved: Result<(), CacheError> = async {
            for (digest, bytes) in values {
                cache.save_encoded(&digest, bytes).await?;
            }
            cache.save_record(record).await?;
            Ok(())
        }
        .await;
        if let Err(e) = saved {
            Counters::count(&self.counters.storage_faults);
            tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not store the result");
        }
        if flight.mark.is_set() {
            // Invalidated while saving: take back this flight's own record,
            // and nothing a later flight wrote.
            self.hot.remove_owned(key.into(), flight.id);
            match cache.load_record(&call_key).await {
                Ok(Some(stored)) if stored == *record => {
                    if let Err(e) = cache.evict(&call_key).await {
                        Counters::count(&self.counters.storage_faults);
                        tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not evict an invalidated result");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    Counters::count(&self.counters.storage_faults);
                    tracing::warn!(function = %self.ident.name, key = %call_key, error = %e, "could not check an invalidated result");
                }
            }
        }
    }

    /// Puts a value in the hot tier for `flight`, unless the flight was
    /// invalidated; an invalidation that lands meanwhile takes it back out.
    /// Whether the value stays.
    fn promote(
        &self,
        key: &HotKey,
        flight: &Flight<T, E>,
        call_key: &Digest,
        value: T,
        deadlines: Deadlines<Instant>,
    ) -> bool {
        if flight.mark.is_set() {
            return false;
        }
        self.hot.insert(
            key.clone(),
            HotEntry {
                value,
                deadlines,
                owner: flight.id,
                call_key: *call_key,
            },
        );
        if flight.mark.is_set() {
            self.hot.remove_owned(key.into(), flight.id);
            return false;
        }
        true
    }

    /// Starts listening to the invalidation broadcast of `cache`, once.
    fn listen_to(self: &Arc<Self>, cache: &Cache) {
        let Some(broadcast) = cache.broadcast() else {
            return;
        };
        if !lock(&self.listening).insert(cache.id()) {
            return;
        }
        let mut messages = broadcast.subscribe();
        let (memo, cache_id) = (Arc::downgrade(self), cache.id());
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let message = messages.recv().await;
                let Some(memo) = memo.upgrade() else { return };
                match message {
                    Ok(message) => memo.forget(cache_id, &message),
                    // Missed messages: forget everything of this cache.
                    Err(RecvError::Lagged(_)) => memo.hot.remove_where(cache_id, |_| true),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// Applies an invalidation that another process (or this one) sent.
    fn forget(&self, cache_id: u64, message: &Invalidation) {
        let ident = &self.ident;
        if message.name != ident.name
            || message.module != ident.module
            || message.version != ident.version
        {
            return;
        }
        match message.key {
            Some(key) => self.hot.remove_where(cache_id, |e| e.call_key == key),
            None => self.hot.remove_where(cache_id, |_| true),
        }
    }

    /// Tells the other processes sharing `cache` to forget `key` (all calls
    /// for `None`).
    async fn announce(&self, cache: &Cache, key: Option<Digest>) {
        if let Some(broadcast) = cache.broadcast() {
            let message = Invalidation {
                name: self.ident.name.clone(),
                module: self.ident.module.clone(),
                version: self.ident.version.clone(),
                key,
            };
            if let Err(e) = broadcast.publish(&message).await {
                Counters::count(&self.counters.storage_faults);
                tracing::warn!(function = %self.ident.name, error = %e, "could not broadcast an invalidation");
            }
        }
    }

    /// Drops the entry of `args` from the hot tier (under every cache), the
    /// flights, and every level of the active cache.
    pub(crate) async fn invalidate(&self, args: &A) -> Result<bool, CacheError> {
        let mut bytes = ArgBytes::new();
        encoding::write_to(args, &mut Buf(&mut bytes))?;
        let call_key = self.key_of(&args.digests()?);
        let forget = || {
            let marked = lock(&self.flights).invalidate_where(|k| *k.args == *bytes);
            self.hot.remove_args(&bytes);
            marked
        };
        // Mark the running flights, and wait for any that is storing its
        // result: from then on none of them writes, and the eviction takes
        // whatever they wrote. Mark again after: a flight started meanwhile
        // may have read the old record, and must not promote it.
        let mut marked = forget();
        for flight in &marked {
            drop(flight.storing.lock().await);
        }
        let cache = self.cache();
        let evicted = cache.evict(&call_key).await;
        marked.extend(forget());
        // Only now may the detached waiters start anew: nothing they read
        // is the invalidated call.
        for flight in marked {
            flight.release_waiters();
        }
        self.announce(&cache, Some(call_key)).await;
        evicted
    }

    /// Drops every entry of this function from the hot tier, the flights
    /// and every level of the active cache; returns how many stored calls
    /// were evicted.
    pub(crate) async fn invalidate_all(
        &self,
        query: flechette_core::CallQuery,
    ) -> Result<usize, CacheError> {
        let forget = || {
            let marked = lock(&self.flights).invalidate_all();
            self.hot.clear();
            marked
        };
        // As in `invalidate`: mark running flights and wait for their
        // stores before the evictions, and mark again after.
        let mut marked = forget();
        for flight in &marked {
            drop(flight.storing.lock().await);
        }
        let cache = self.cache();
        let mut evicted = 0;
        let mut outcome = Ok(());
        match cache.query(&query).await {
            Ok(calls) => {
                for call in calls {
                    // An unversioned function's query matches every version.
                    if call.record().version != self.ident.version {
                        continue;
                    }
                    match cache.evict(&call.digest()).await {
                        Ok(removed) => evicted += usize::from(removed),
                        Err(e) => {
                            outcome = Err(e);
                            break;
                        }
                    }
                }
            }
            Err(e) => outcome = Err(e),
        }
        // Whatever storage did, the process forgets, and tells the others.
        marked.extend(forget());
        for flight in marked {
            flight.release_waiters();
        }
        self.announce(&cache, None).await;
        outcome.map(|()| evicted)
    }
}

/// Displays a call error without requiring `E: Display`.
struct ErrorKind<'a, E>(&'a CallError<E>);

impl<E> std::fmt::Display for ErrorKind<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            CallError::Failed(_) => f.write_str("the function returned an error"),
            CallError::Timeout(d) => write!(f, "timed out after {d:?}"),
            CallError::Panicked => f.write_str("the function panicked"),
            CallError::Abandoned => f.write_str("abandoned"),
            CallError::Encode(e) => write!(f, "{e}"),
            CallError::Argument(e) => write!(f, "{e}"),
            CallError::Unbound => f.write_str("no function body"),
            CallError::Cycle { .. } => f.write_str("a cycle"),
        }
    }
}

/// A panic inside the computation, caught where it happened.
struct Panicked;

/// Polls a future, turning a panic in it into [`Panicked`]: the flight
/// reports it as [`CallError::Panicked`] and counts it, like an error.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(_) => std::task::Poll::Ready(Err(Panicked)),
        }
    }
}

/// Runs `fut`, warning once (naming the function) if it is still running
/// after `after`.
async fn watch_slow<F: Future>(function: &str, after: Duration, fut: F) -> F::Output {
    if after == Duration::MAX {
        return fut.await;
    }
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        biased;
        out = &mut fut => return out,
        () = tokio::time::sleep(after) => {}
    }
    tracing::warn!(function = %function, running_for = ?after, "a computation is still running; callers of its key wait for it (invalidate the key to detach them)");
    fut.await
}
