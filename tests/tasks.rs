//! Tokio task integration: bind and spawn carry scopes, pass-through
//! handles, the executor wrapper, blocking functions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{
    Cache, CachedFn, CachedJoinSet, CallError, Executor, SpawnOptions, bind, bind_blocking,
    bind_fn, cache, current_tags, default_cache, tags, with_cache,
};

fn counted(name: &str, runs: &Arc<AtomicUsize>) -> CachedFn<(u32,), u32> {
    let runs = runs.clone();
    CachedFn::builder(name)
        .args(["x"])
        .build(move |(x,): (u32,)| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { x + 1 }
        })
}

#[tokio::test]
async fn a_spawned_call_uses_the_default_cache_unless_bound() {
    let runs = Arc::new(AtomicUsize::new(0));
    let f = counted("spawned_where", &runs);
    let mine = Cache::memory();
    let key_unbound = f.digest(&(1,)).unwrap();
    let key_bound = f.digest(&(2,)).unwrap();
    with_cache(mine.clone(), async {
        let g = f.clone();
        tokio::spawn(async move { g.call((1,)).await.unwrap() })
            .await
            .unwrap();
        tokio::spawn(f.bind((2,))).await.unwrap().unwrap();
    })
    .await;
    assert!(
        !mine.contains(&key_unbound).await.unwrap(),
        "task-locals do not cross spawn"
    );
    assert!(default_cache().contains(&key_unbound).await.unwrap());
    assert!(
        mine.contains(&key_bound).await.unwrap(),
        "bind carries the cache"
    );
    assert!(!default_cache().contains(&key_bound).await.unwrap());
}

#[tokio::test]
async fn the_captured_scope_wins_and_nested_calls_see_it() {
    let runs = Arc::new(AtomicUsize::new(0));
    let inner = counted("nested_inner", &runs);
    let i = inner.clone();
    let outer = CachedFn::builder("nested_outer")
        .args(["x"])
        .build(move |(x,): (u32,)| {
            let i = i.clone();
            async move { i.call((x,)).await.unwrap() * 10 }
        });
    let (captured, other) = (Cache::memory(), Cache::memory());
    // Bound inside one scope, to be run inside another.
    #[allow(clippy::async_yields_async)]
    let bound = with_cache(captured.clone(), async {
        bind(async move { outer.call((5,)).await })
    })
    .await;
    // Run it inside another scope: the captured one wins.
    assert_eq!(
        with_cache(other.clone(), tokio::spawn(bound))
            .await
            .unwrap()
            .unwrap(),
        60
    );
    let key = inner.digest(&(5,)).unwrap();
    assert!(
        captured.contains(&key).await.unwrap(),
        "the nested call stored in the captured cache"
    );
    assert!(!other.contains(&key).await.unwrap());
}

#[tokio::test]
async fn tags_survive_into_spawned_tasks() {
    let c = Cache::memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let f = counted("tagged_task", &runs);
    let g = f.clone();
    with_cache(
        c.clone(),
        tags([("job", "nightly")]).scope(async move {
            let seen = flechette::spawn(async { current_tags() }).await.unwrap();
            assert_eq!(seen["job"], "nightly");
            let mut set = tokio::task::JoinSet::new();
            set.spawn(g.bind((7,)));
            set.join_next().await.unwrap().unwrap().unwrap();
        }),
    )
    .await;
    let call = c.load(&f.digest(&(7,)).unwrap()).await.unwrap().unwrap();
    assert_eq!(call.metadata().tags["job"], "nightly");
}

#[tokio::test]
async fn bound_closures_carry_the_scope_to_blocking_threads_and_later_calls() {
    let mine = Cache::memory();
    let (later, blocking) = with_cache(mine.clone(), async {
        (
            bind_fn(|| async { cache() }),
            bind_blocking(|| cache().id()),
        )
    })
    .await;
    assert!(later().await.ptr_eq(&mine), "run later, from elsewhere");
    assert_eq!(
        tokio::task::spawn_blocking(blocking).await.unwrap(),
        mine.id()
    );
}

/// A pass-through function: its body spawns the work.
fn spawning(
    spawns: &Arc<AtomicUsize>,
    release: &Arc<tokio::sync::Notify>,
) -> CachedFn<(u32,), u32, tokio::task::JoinError> {
    let (spawns, release) = (spawns.clone(), release.clone());
    CachedFn::builder("pass_through")
        .args(["x"])
        .cache(Cache::memory())
        .build_spawning(move |(x,): (u32,)| {
            spawns.fetch_add(1, Ordering::SeqCst);
            let release = release.clone();
            tokio::spawn(async move {
                release.notified().await;
                if x == 0 {
                    panic!("no zero");
                }
                x * 3
            })
        })
}

#[tokio::test]
async fn pass_through_caches_on_completion_even_when_the_handle_is_dropped() {
    let spawns = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let f = spawning(&spawns, &release);
    let first = f.spawn((4,));
    assert!(!first.is_ready());
    let shared = f.spawn((4,));
    drop(first);
    release.notify_one();
    assert_eq!(shared.await.unwrap(), 12);
    assert_eq!(
        spawns.load(Ordering::SeqCst),
        1,
        "concurrent calls share one task"
    );
    assert!(f.contains((4,)).await.unwrap());

    let again = f.spawn((4,));
    assert!(
        again.is_ready(),
        "a hit is a complete handle of the same type"
    );
    assert_eq!(again.await.unwrap(), 12);
    assert_eq!(spawns.load(Ordering::SeqCst), 1, "a hit spawns nothing");
}

#[tokio::test]
async fn a_panicking_pass_through_task_caches_nothing() {
    let spawns = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let f = spawning(&spawns, &release);
    let handle = f.spawn((0,));
    release.notify_one();
    let err = handle.await.unwrap_err();
    assert!(
        matches!(&err, CallError::Failed(e) if e.is_panic()),
        "{err:?}"
    );
    assert!(!f.contains((0,)).await.unwrap());
}

#[tokio::test]
async fn the_executor_answers_hits_spawns_misses_and_passes_plain_futures() {
    let runs = Arc::new(AtomicUsize::new(0));
    let f = counted("executed", &runs);
    let exec = Executor::current();
    let mine = Cache::memory();
    with_cache(mine.clone(), async {
        let miss = exec.spawn_cached(&f, (1,));
        assert!(!miss.is_ready());
        assert_eq!(miss.await.unwrap(), 2);
        for _ in 0..10 {
            let hit = exec.spawn_cached(&f, (1,));
            assert!(hit.is_ready());
            assert_eq!(hit.await.unwrap(), 2);
        }
        assert_eq!(exec.spawn(async { 41 + 1 }).await.unwrap(), 42);
    })
    .await;
    let stats = exec.stats();
    assert_eq!(
        (stats.answered, stats.started, stats.passed_through),
        (10, 1, 1)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        mine.contains(&f.digest(&(1,)).unwrap()).await.unwrap(),
        "the miss was bound to the submitter's cache"
    );
}

#[test]
fn spawn_options_reach_the_executor_and_never_the_function() {
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("other-runtime")
        .enable_all()
        .build()
        .unwrap();
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let threads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let t = threads.clone();
    let f = CachedFn::builder("placed")
        .args(["x"])
        .cache(Cache::memory())
        .build(move |(x,): (u32,)| {
            t.lock()
                .unwrap()
                .push(std::thread::current().name().unwrap_or("").to_owned());
            async move { x }
        });
    main.block_on(async {
        let exec = Executor::current();
        let on_other = SpawnOptions::new()
            .runtime(other.handle().clone())
            .name("batch-7");
        assert_eq!(exec.spawn_cached_with(&f, (1,), on_other).await.unwrap(), 1);
        let blocking = SpawnOptions::new().blocking(true);
        assert_eq!(exec.spawn_cached_with(&f, (2,), blocking).await.unwrap(), 2);
        assert_eq!(exec.spawn_cached(&f, (3,)).await.unwrap(), 3);
        // The options changed where the work ran, not the calls' keys.
        for x in 1..=3 {
            assert!(f.contains((x,)).await.unwrap());
        }
    });
    let threads = threads.lock().unwrap();
    assert_eq!(threads[0], "other-runtime");
    let main_thread = std::thread::current().name().unwrap_or("").to_owned();
    assert_ne!(
        threads[1], main_thread,
        "the blocking pool, not the caller's thread"
    );
    assert_eq!(
        threads[2], main_thread,
        "by default on the caller's runtime"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_functions_are_cached_and_collapse() {
    let runs = Arc::new(AtomicUsize::new(0));
    // The computation waits at a gate, opened once every caller is waiting.
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let (r, g) = (runs.clone(), gate.clone());
    let f = CachedFn::builder("cpu_bound")
        .args(["n"])
        .cache(Cache::memory())
        .build_blocking(move |(n,): (u64,)| {
            r.fetch_add(1, Ordering::SeqCst);
            let (open, ready) = &*g;
            let mut open = open.lock().unwrap();
            while !*open {
                open = ready.wait(open).unwrap();
            }
            (1..=n).product::<u64>()
        });
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.call((10,)).await.unwrap() })
        })
        .collect();
    while f.stats().collapsed < 19 {
        tokio::task::yield_now().await;
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    for c in calls {
        assert_eq!(c.await.unwrap(), 3_628_800);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(f.stats().collapsed, 19);

    let fragile = CachedFn::builder("cpu_panics")
        .cache(Cache::memory())
        .build_blocking(|(): ()| -> u8 { panic!("boom") });
    assert!(matches!(fragile.call(()).await, Err(CallError::Panicked)));
}

#[tokio::test]
async fn a_cached_join_set_keeps_hits_out_of_the_runtime() {
    let runs = Arc::new(AtomicUsize::new(0));
    let f = counted("join_set", &runs);
    with_cache(Cache::memory(), async {
        let mut set = CachedJoinSet::new();
        for x in 0..4 {
            set.spawn_cached(&f, (x,));
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            results.push(r.unwrap().unwrap());
        }
        results.sort();
        assert_eq!(results, [1, 2, 3, 4]);
        for x in 0..4 {
            set.spawn_cached(&f, (x,));
        }
        assert_eq!((set.len(), set.tasks()), (4, 0), "hits spawn no task");
        while set.join_next().await.is_some() {}
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_function_runs_inside_the_callers_scopes() {
    let f = CachedFn::builder("blocking_scope")
        .build_blocking(|(): ()| (cache().id(), current_tags().get("who").cloned()));
    let mine = Cache::memory();
    let seen = with_cache(mine.clone(), tags([("who", "caller")]).scope(f.call(())))
        .await
        .unwrap();
    assert_eq!(seen, (mine.id(), Some("caller".to_owned())));
}

#[tokio::test(start_paused = true)]
async fn a_pass_through_task_over_the_timeout_is_aborted() {
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = finished.clone();
    let f = CachedFn::builder("slow_task")
        .cache(Cache::memory())
        .timeout(Duration::from_secs(1))
        .build_spawning(move |(): ()| {
            let done = done.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                done.store(true, Ordering::SeqCst);
                1u8
            })
        });
    assert!(matches!(f.spawn(()).await, Err(CallError::Timeout(_))));
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "the task was aborted with the computation"
    );
}
