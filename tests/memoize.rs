//! The memoize layer: dog-pile collapsing, refresh and expiry, timeouts,
//! capacity, invalidation and statistics. Time is tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, CachedFn, CallError, Freshness, with_cache};
use tokio::sync::{Barrier, Notify};
use tokio::time::{advance, sleep};

const MS: Duration = Duration::from_millis(1);

/// A backend that counts its calls, answers `ok#N`, and can be told to fail.
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

#[derive(Debug, PartialEq)]
struct Down;

impl Backend {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn function(
        &self,
        configure: impl FnOnce(
            flechette::CachedFnBuilder<(u32,), String>,
        ) -> flechette::CachedFnBuilder<(u32,), String>,
    ) -> CachedFn<(u32,), String, Down> {
        let backend = self.clone();
        configure(
            CachedFn::builder("backend")
                .args(["k"])
                .cache(Cache::memory()),
        )
        .build_fallible(move |(_k,): (u32,)| {
            let backend = backend.clone();
            async move {
                sleep(10 * MS).await;
                let n = backend.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if backend.failing.load(Ordering::SeqCst) {
                    Err(Down)
                } else {
                    Ok(format!("ok#{n}"))
                }
            }
        })
    }
}

/// Lets spawned work run to completion on the paused clock.
async fn settle() {
    sleep(100 * MS).await;
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_concurrent_callers_on_a_cold_key_run_it_once() {
    let backend = Backend::default();
    let f = backend.function(|b| b);
    let barrier = Arc::new(Barrier::new(10_000));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10_000 {
        let (f, barrier) = (f.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            f.call((1,)).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap(), "ok#1");
    }
    assert_eq!(backend.calls(), 1);
    let stats = f.stats();
    assert_eq!(stats.computations, 1);
    assert_eq!(stats.misses + stats.hits, 10_000);
    assert_eq!(
        stats.collapsed + 1,
        stats.misses,
        "every other miss waited on the one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_does_not_strand_its_waiters() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (s, r, n) = (started.clone(), release.clone(), runs.clone());
    let f = CachedFn::builder("slow")
        .cache(Cache::memory())
        .build(move |(): ()| {
            let (s, r, n) = (s.clone(), r.clone(), n.clone());
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                s.notify_one();
                r.notified().await;
                42u64
            }
        });
    let leader = tokio::spawn({
        let f = f.clone();
        async move { f.call(()).await }
    });
    started.notified().await;
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.call(()).await })
        })
        .collect();
    tokio::task::yield_now().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    release.notify_one();
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap(), 42);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        f.call(()).await.unwrap(),
        42,
        "the result was cached after all"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_computation_fails_its_waiters_and_does_not_poison_the_key() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("fragile")
        .cache(Cache::memory())
        .build(move |(): ()| {
            let n = n.clone();
            async move {
                sleep(5 * MS).await;
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                7u8
            }
        });
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.call(()).await })
        })
        .collect();
    for c in calls {
        assert!(matches!(c.await.unwrap(), Err(CallError::Panicked)));
    }
    assert_eq!(f.call(()).await.unwrap(), 7, "the next call computes again");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(f.stats().failures, 1, "the panic is counted");
}

/// `f(x) = "x-run<n>"`, whose first computation waits for the returned
/// `Notify`; the counter counts computations.
fn held_first_run(
    name: &str,
    cache: Cache,
) -> (CachedFn<(u8,), String>, Arc<Notify>, Arc<AtomicUsize>) {
    let release = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let (r, n) = (release.clone(), runs.clone());
    let f = CachedFn::builder(name)
        .args(["x"])
        .cache(cache)
        .build(move |(x,): (u8,)| {
            let (r, n) = (r.clone(), n.clone());
            async move {
                let run = n.fetch_add(1, Ordering::SeqCst) + 1;
                if run == 1 {
                    r.notified().await;
                }
                format!("{x}-run{run}")
            }
        });
    (f, release, runs)
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_during_a_computation_wins() {
    let (f, release, runs) = held_first_run("late", Cache::memory());
    let first = tokio::spawn({
        let f = f.clone();
        async move { f.call((1,)).await }
    });
    tokio::task::yield_now().await;
    sleep(MS).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the first computation is in flight"
    );
    f.invalidate((1,)).await.unwrap();
    release.notify_one();
    assert_eq!(
        first.await.unwrap().unwrap(),
        "1-run1",
        "its own caller still gets it"
    );
    settle().await;
    assert!(
        !f.contains((1,)).await.unwrap(),
        "the late result was not stored"
    );
    assert_eq!(
        f.call((1,)).await.unwrap(),
        "1-run2",
        "and is not served afterwards"
    );
    assert_eq!(f.call((1,)).await.unwrap(), "1-run2");
}

#[tokio::test(start_paused = true)]
async fn stale_values_are_served_while_one_background_refresh_runs() {
    let backend = Backend::default();
    let f = backend.function(|b| b.update_after(100 * MS).expire_after(1000 * MS));
    assert_eq!(f.call((1,)).await.unwrap(), "ok#1");
    advance(50 * MS).await;
    assert_eq!(f.call((1,)).await.unwrap(), "ok#1", "fresh");
    advance(60 * MS).await;
    // Stale: every read answers at once with the old value; one refresh runs.
    for _ in 0..20 {
        assert_eq!(f.call((1,)).await.unwrap(), "ok#1");
    }
    settle().await;
    assert_eq!(backend.calls(), 2, "one refresh for twenty stale reads");
    assert_eq!(f.call((1,)).await.unwrap(), "ok#2");
    let stats = f.stats();
    assert_eq!(stats.stale_hits, 20);
    assert_eq!(stats.refreshes_started, 1);
    assert_eq!(stats.refreshes_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn the_memoize_showcase_sequence() {
    let backend = Backend::default();
    let f = backend.function(|b| b.update_after(1000 * MS).expire_after(5000 * MS));
    let mut seen = Vec::new();
    let mut read = |r: Result<String, CallError<Down>>| {
        seen.push(match r {
            Ok(v) => v,
            Err(CallError::Failed(e)) => format!("error {:?}", *e),
            Err(other) => format!("unexpected {other:?}"),
        })
    };
    read(f.call((1,)).await); // computed
    advance(500 * MS).await;
    read(f.call((1,)).await); // fresh
    advance(1000 * MS).await;
    read(f.call((1,)).await); // stale: served, refresh starts
    settle().await;
    read(f.call((1,)).await); // the refreshed value
    backend.failing.store(true, Ordering::SeqCst);
    advance(1500 * MS).await;
    read(f.call((1,)).await); // stale, refresh fails in the background
    settle().await;
    advance(1000 * MS).await;
    read(f.call((1,)).await); // still served, refresh retried and fails
    settle().await;
    advance(3000 * MS).await;
    read(f.call((1,)).await); // expired: waits, and gets the failure
    assert_eq!(
        seen,
        ["ok#1", "ok#1", "ok#1", "ok#2", "ok#2", "ok#2", "error Down"],
    );
    let stats = f.stats();
    assert_eq!(stats.refreshes_failed, 2);
    assert_eq!(stats.failures, 3);
    backend.failing.store(false, Ordering::SeqCst);
    assert!(f.call((1,)).await.unwrap().starts_with("ok#"), "recovers");
}

#[tokio::test(start_paused = true)]
async fn expired_values_are_recomputed_and_the_wait_is_collapsed() {
    let backend = Backend::default();
    let f = backend.function(|b| b.expire_after(100 * MS));
    assert_eq!(f.call((1,)).await.unwrap(), "ok#1");
    advance(150 * MS).await;
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.call((1,)).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), "ok#2");
    }
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn lifespans_may_depend_on_the_value() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("max_age")
        .args(["max_age_ms"])
        .cache(Cache::memory())
        .lifespan(|v: &(u64, usize)| Freshness::new().expire_after(Duration::from_millis(v.0)))
        .build(move |(max_age,): (u64,)| {
            let n = n.clone();
            async move { (max_age, n.fetch_add(1, Ordering::SeqCst)) }
        });
    let short = f.call((100,)).await.unwrap();
    let long = f.call((10_000,)).await.unwrap();
    advance(500 * MS).await;
    assert_ne!(
        f.call((100,)).await.unwrap(),
        short,
        "short max-age expired"
    );
    assert_eq!(
        f.call((10_000,)).await.unwrap(),
        long,
        "long max-age still fresh"
    );
    let stored = f.load((10_000,)).await.unwrap().unwrap();
    let lifespan = stored.metadata().lifespan.clone().unwrap();
    let expire = lifespan.expire_after.unwrap();
    assert_eq!(
        expire.0 - lifespan.created.0,
        10_000_000,
        "stored as absolute times"
    );
}

#[tokio::test(start_paused = true)]
async fn a_persistent_cache_honours_stored_lifespans_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let make = |runs: Arc<AtomicUsize>| {
        CachedFn::builder("persisted")
            .args(["ttl_s"])
            .cache(Cache::open(dir.path()).unwrap())
            .lifespan(|v: &(u64, usize)| Freshness::new().expire_after(Duration::from_secs(v.0)))
            .build(move |(ttl,): (u64,)| {
                let n = runs.clone();
                async move { (ttl, n.fetch_add(1, Ordering::SeqCst)) }
            })
    };
    let first = make(runs.clone());
    first.call((0,)).await.unwrap();
    first.call((3600,)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Written behind the callers: flushed before the "restart".
    first.cache().flush().await;
    let restarted = make(runs.clone());
    restarted.call((3600,)).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "an hour-long lifespan is still fresh"
    );
    restarted.call((0,)).await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "a zero lifespan has expired on disk"
    );
}

#[tokio::test(start_paused = true)]
async fn a_computation_over_the_timeout_fails_every_waiter_and_caches_nothing() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("slowpoke")
        .cache(Cache::memory())
        .timeout(Duration::from_secs(1))
        .build(move |(): ()| {
            let n = n.clone();
            async move {
                let run = n.fetch_add(1, Ordering::SeqCst);
                if run == 0 {
                    sleep(Duration::from_secs(10)).await;
                }
                run
            }
        });
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.call(()).await })
        })
        .collect();
    for c in calls {
        assert!(
            matches!(c.await.unwrap(), Err(CallError::Timeout(d)) if d == Duration::from_secs(1))
        );
    }
    assert!(!f.contains(()).await.unwrap());
    assert_eq!(f.stats().timeouts, 1);
    assert_eq!(f.call(()).await.unwrap(), 1, "the next call computes again");
}

#[tokio::test(start_paused = true)]
async fn capacity_bounds_the_in_process_tier() {
    let f = CachedFn::builder("bounded")
        .args(["i"])
        .cache(Cache::memory())
        .capacity(50)
        .build(|(i,): (u32,)| async move { i });
    for i in 0..1_000 {
        f.call((i,)).await.unwrap();
    }
    assert!(f.hot_len() <= 50, "{} entries", f.hot_len());
    assert!(f.stats().evictions >= 900, "{:?}", f.stats());
    // Evicted entries are still in the cache below.
    assert!(f.contains((3,)).await.unwrap());
    assert_eq!(f.call((3,)).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_weigher_bounds_the_tier_by_weight() {
    let f = CachedFn::builder("weighed")
        .args(["n"])
        .cache(Cache::memory())
        .capacity(1_000)
        .weigher(|v: &String| u32::try_from(v.len()).unwrap())
        .build(|(n,): (usize,)| async move { "x".repeat(n) });
    for i in 0..100 {
        f.call((100 + i,)).await.unwrap();
    }
    assert!(
        f.hot_len() <= 10,
        "{} values of 100+ bytes in 1000",
        f.hot_len()
    );
}

#[tokio::test(start_paused = true)]
async fn expired_entries_do_not_pile_up() {
    let f = CachedFn::builder("short_lived")
        .args(["i"])
        .cache(Cache::memory())
        .capacity(100)
        .expire_after(10 * MS)
        .build(|(i,): (u32,)| async move { i });
    for round in 0..20 {
        for i in 0..100 {
            f.call((round * 100 + i,)).await.unwrap();
        }
        advance(20 * MS).await;
    }
    assert!(f.hot_len() <= 100);
}

#[tokio::test(start_paused = true)]
async fn invalidation_by_arguments_and_for_the_whole_function() {
    let backend = Backend::default();
    let remote = Cache::memory();
    let local = Cache::memory();
    let stack: Cache = flechette::CacheStack::new()
        .push(local.clone())
        .push(remote.clone())
        .into();
    let b = backend.clone();
    let f = CachedFn::builder("inv")
        .args(["k"])
        .build_fallible(move |(k,): (u32,)| {
            let b = b.clone();
            async move {
                Ok::<_, Down>(format!(
                    "{k}:{}",
                    b.calls.fetch_add(1, Ordering::SeqCst) + 1
                ))
            }
        });
    with_cache(stack, async {
        assert_eq!(f.call((1,)).await.unwrap(), "1:1");
        assert_eq!(f.call((2,)).await.unwrap(), "2:2");
        // Put the call in the deeper level too, as another process would.
        let key = f.digest(&(1,)).unwrap();
        let lazy = local.load(&key).await.unwrap().unwrap();
        remote.save(&lazy.fetch().await.unwrap()).await.unwrap();

        assert!(f.invalidate((1,)).await.unwrap());
        assert!(!local.contains(&key).await.unwrap() && !remote.contains(&key).await.unwrap());
        assert_eq!(f.call((1,)).await.unwrap(), "1:3");
        assert_eq!(
            f.call((2,)).await.unwrap(),
            "2:2",
            "other arguments are untouched"
        );

        assert_eq!(f.invalidate_all().await.unwrap(), 2);
        assert_eq!(f.call((2,)).await.unwrap(), "2:4");
        assert_eq!(f.call((1,)).await.unwrap(), "1:5");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn rerun_still_recomputes_nested_calls_with_the_hot_tier() {
    let (inner_runs, outer_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let ir = inner_runs.clone();
    let inner = CachedFn::builder("inner").build(move |(): ()| {
        let ir = ir.clone();
        async move { ir.fetch_add(1, Ordering::SeqCst) }
    });
    let (i, or) = (inner.clone(), outer_runs.clone());
    let outer = CachedFn::builder("outer").build(move |(): ()| {
        let (i, or) = (i.clone(), or.clone());
        async move {
            or.fetch_add(1, Ordering::SeqCst);
            i.call(()).await.unwrap()
        }
    });
    with_cache(Cache::memory(), async {
        assert_eq!(outer.call(()).await.unwrap(), 0);
        assert_eq!(outer.call(()).await.unwrap(), 0);
        assert_eq!(outer.rerun(()).await.unwrap(), 1);
        assert_eq!(
            outer.call(()).await.unwrap(),
            1,
            "the rerun overwrote the hot tier"
        );
        assert_eq!(
            inner.call(()).await.unwrap(),
            1,
            "and the nested call's too"
        );
        assert_eq!(outer_runs.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn statistics_count_what_happened() {
    let backend = Backend::default();
    let f = backend.function(|b| b.update_after(100 * MS));
    f.call((1,)).await.unwrap();
    f.call((1,)).await.unwrap();
    f.call((2,)).await.unwrap();
    advance(200 * MS).await;
    f.call((1,)).await.unwrap();
    settle().await;
    let s = f.stats();
    assert_eq!((s.hits, s.misses, s.stale_hits), (1, 2, 1));
    assert_eq!((s.refreshes_started, s.computations), (1, 3));
    assert!(s.computation_time >= Duration::from_millis(30));
    assert!((s.hit_ratio() - 0.5).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_background_refresh_carries_the_callers_cache_and_tags() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("tagged_refresh")
        .update_after(100 * MS)
        .build(move |(): ()| {
            let n = n.clone();
            async move { n.fetch_add(1, Ordering::SeqCst) }
        });
    let cache = Cache::memory();
    with_cache(cache.clone(), async {
        flechette::tags([("stage", "first")])
            .scope(f.call(()))
            .await
            .unwrap();
        advance(150 * MS).await;
        let stale = flechette::tags([("stage", "refresh")])
            .scope(f.call(()))
            .await
            .unwrap();
        assert_eq!(stale, 0);
    })
    .await;
    settle().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let call = cache.load(&f.digest(&()).unwrap()).await.unwrap().unwrap();
    assert_eq!(
        call.result::<usize>().await.unwrap(),
        1,
        "the refresh wrote to the caller's cache"
    );
    assert_eq!(
        call.metadata().tags["stage"],
        "refresh",
        "with the caller's tags"
    );
}

#[tokio::test(start_paused = true)]
async fn invalidation_reaches_the_in_process_entries_of_every_cache() {
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("two_caches")
        .args(["x"])
        .build(move |(x,): (u8,)| {
            let n = n.clone();
            async move { (x, n.fetch_add(1, Ordering::SeqCst)) }
        });
    let (a, b) = (Cache::memory(), Cache::memory());
    with_cache(a.clone(), f.call((1,))).await.unwrap();
    with_cache(b.clone(), f.call((1,))).await.unwrap();
    assert_eq!(f.hot_len(), 2);
    assert!(with_cache(a.clone(), f.invalidate((1,))).await.unwrap());
    assert_eq!(f.hot_len(), 0, "both in-process entries are gone");
    assert!(
        b.contains(&f.digest(&(1,)).unwrap()).await.unwrap(),
        "b's storage is b's own"
    );
    assert_eq!(
        with_cache(b, f.call((1,))).await.unwrap(),
        (1, 1),
        "b reads its stored value"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn invalidate_all_leaves_other_versions_alone() {
    let cache = Cache::memory();
    let make = |version: Option<&str>| {
        let b = CachedFn::builder("versions")
            .args(["x"])
            .cache(cache.clone());
        let b = match version {
            Some(v) => b.version(v),
            None => b,
        };
        b.build(|(x,): (u8,)| async move { x })
    };
    let (plain, v2) = (make(None), make(Some("2")));
    plain.call((1,)).await.unwrap();
    v2.call((1,)).await.unwrap();
    assert_eq!(plain.invalidate_all().await.unwrap(), 1);
    assert!(v2.contains((1,)).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_lifespan_too_long_to_represent_means_forever() {
    let f = CachedFn::builder("forever")
        .cache(Cache::memory())
        .update_after(Duration::MAX)
        .expire_after(Duration::MAX)
        .build(|(): ()| async { 1u8 });
    assert_eq!(f.call(()).await.unwrap(), 1);
    advance(Duration::from_secs(86_400 * 365)).await;
    assert_eq!(f.call(()).await.unwrap(), 1);
    assert_eq!(f.stats().computations, 1);
}

/// Call storage whose `remove` (or, with `hold_put`, `put`) does its work
/// at once but answers only when let go: the windows in which an
/// invalidation has evicted but not yet marked the running computations,
/// or a computation has written its record but not yet checked its mark.
struct SlowRemove {
    inner: flechette::storage::MemoryCalls,
    gate: Arc<Notify>,
    removing: Arc<Notify>,
    hold_put: bool,
}

#[flechette::storage::async_trait]
impl flechette::storage::CallStorage for SlowRemove {
    async fn get(
        &self,
        key: &flechette::Digest,
    ) -> Result<Option<flechette::CallRecord>, flechette::storage::StorageError> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: &flechette::Digest,
        record: &flechette::CallRecord,
    ) -> Result<(), flechette::storage::StorageError> {
        let put = self.inner.put(key, record).await;
        if self.hold_put {
            self.removing.notify_one();
            self.gate.notified().await;
        }
        put
    }
    async fn remove(
        &self,
        key: &flechette::Digest,
    ) -> Result<bool, flechette::storage::StorageError> {
        let removed = self.inner.remove(key).await;
        if !self.hold_put {
            self.removing.notify_one();
            self.gate.notified().await;
        }
        removed
    }
    async fn list(
        &self,
        prefix: Option<&flechette::DigestPrefix>,
    ) -> Result<Vec<flechette::Digest>, flechette::storage::StorageError> {
        self.inner.list(prefix).await
    }
    async fn query(
        &self,
        query: &flechette::CallQuery,
    ) -> Result<Vec<(flechette::Digest, flechette::CallRecord)>, flechette::storage::StorageError>
    {
        self.inner.query(query).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_computation_finishing_while_the_invalidation_evicts_is_not_kept() {
    let (gate, removing) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let calls = SlowRemove {
        inner: flechette::storage::MemoryCalls::default(),
        gate: gate.clone(),
        removing: removing.clone(),
        hold_put: false,
    };
    let cache = Cache::from_storage(
        Arc::new(flechette::storage::MemoryValues::default()),
        Arc::new(calls),
    );
    let (f, release, runs) = held_first_run("racy", cache);
    let first = tokio::spawn({
        let f = f.clone();
        async move { f.call((1,)).await }
    });
    sleep(MS).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "in flight");
    // The invalidation evicts (nothing stored yet) and is held there.
    let invalidation = tokio::spawn({
        let f = f.clone();
        async move { f.invalidate((1,)).await }
    });
    removing.notified().await;
    // Meanwhile the computation finishes and stores its result.
    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap(), "1-run1");
    settle().await;
    // The invalidation completes; the result computed before it must go.
    gate.notify_waiters();
    gate.notify_one();
    let _ = invalidation.await.unwrap();
    settle().await;
    assert!(
        !f.contains((1,)).await.unwrap(),
        "a result computed before the invalidation stayed stored"
    );
    assert_eq!(f.call((1,)).await.unwrap(), "1-run2");
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_waits_for_a_store_under_way() {
    let (gate, writing) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let calls = SlowRemove {
        inner: flechette::storage::MemoryCalls::default(),
        gate: gate.clone(),
        removing: writing.clone(),
        hold_put: true,
    };
    let cache = Cache::from_storage(
        Arc::new(flechette::storage::MemoryValues::default()),
        Arc::new(calls),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let n = runs.clone();
    let f = CachedFn::builder("stored_late")
        .args(["x"])
        .cache(cache.clone())
        .build(move |(x,): (u8,)| {
            let run = n.fetch_add(1, Ordering::SeqCst) + 1;
            async move { format!("{x}-run{run}") }
        });
    let first = tokio::spawn({
        let f = f.clone();
        async move { f.call((1,)).await }
    });
    // The computation has written its record and is held before its check.
    writing.notified().await;
    let invalidation = tokio::spawn({
        let f = f.clone();
        async move { f.invalidate((1,)).await }
    });
    settle().await;
    assert!(
        !invalidation.is_finished(),
        "the invalidation returned while the invalidated result was being stored"
    );
    gate.notify_one();
    assert_eq!(first.await.unwrap().unwrap(), "1-run1");
    invalidation.await.unwrap().unwrap();
    assert!(!f.contains((1,)).await.unwrap());
    gate.notify_one(); // for the next computation's record
    assert_eq!(f.call((1,)).await.unwrap(), "1-run2");
}
