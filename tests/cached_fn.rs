//! Cached functions end to end: hits and misses, errors, damaged storage,
//! scopes and tags, rerun, digests in place of values.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use flechette::{
    Arg, Cache, CacheError, CachedFn, CallError, CallQuery, D, cache, digest, tags, with_cache,
};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn square(runs: &Arc<AtomicUsize>) -> CachedFn<(u64,), u64> {
    let runs = runs.clone();
    CachedFn::builder("square")
        .module("tests")
        .args(["x"])
        .build(move |(x,): (u64,)| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { x * x }
        })
}

#[tokio::test]
async fn a_second_call_is_a_hit() {
    let runs = counter();
    let f = square(&runs);
    with_cache(Cache::memory(), async {
        assert_eq!(f.call((3,)).await.unwrap(), 9);
        assert_eq!(f.call((3,)).await.unwrap(), 9);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(f.call((4,)).await.unwrap(), 16);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let record = f.load((3,)).await.unwrap().unwrap();
        let runtime = record.metadata().runtime.clone().unwrap();
        assert!(runtime.timestop >= runtime.timestart);
        assert!(record.metadata().lifespan.is_some());
        assert_eq!(record.digest(), f.digest(&(3,)).unwrap());
    })
    .await;
}

#[tokio::test]
async fn errors_are_returned_and_never_cached() {
    let runs = counter();
    let r = runs.clone();
    let parse = CachedFn::builder("parse")
        .args(["s"])
        .build_fallible(move |(s,): (String,)| {
            r.fetch_add(1, Ordering::SeqCst);
            async move { s.parse::<i32>() }
        });
    with_cache(Cache::memory(), async {
        let err = parse.call(("x".into(),)).await.unwrap_err();
        assert!(matches!(err, CallError::Failed(_)), "{err}");
        assert!(!parse.contains(("x".into(),)).await.unwrap());
        parse.call(("x".into(),)).await.unwrap_err();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "a failure is retried");
        assert_eq!(parse.call(("7".into(),)).await.unwrap(), 7);
        assert_eq!(parse.call(("7".into(),)).await.unwrap(), 7);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    })
    .await;
}

fn only_file_under(root: &Path, kind: &str, digest: &flechette::Digest) -> std::path::PathBuf {
    let hex = digest.to_hex();
    root.join(kind).join(&hex[..2]).join(hex)
}

#[tokio::test]
async fn a_corrupt_result_file_is_a_miss_and_a_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let runs = counter();
    let c = Cache::open(dir.path()).unwrap();
    with_cache(c.clone(), async {
        let first = square(&runs);
        first.call((5,)).await.unwrap();
        // Written behind the caller: durable once flushed.
        c.flush().await;
        let result = first.load((5,)).await.unwrap().unwrap().record().result;
        std::fs::write(
            only_file_under(dir.path(), "values", &result),
            b"\xff\x00garbage",
        )
        .unwrap();
        // A new process: the same function, nothing in memory.
        let restarted = square(&runs);
        assert_eq!(restarted.call((5,)).await.unwrap(), 25);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "recomputed");
        let again = square(&runs);
        assert_eq!(again.call((5,)).await.unwrap(), 25);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "and stored again");
    })
    .await;
}

#[tokio::test]
async fn a_truncated_record_file_is_a_miss_and_a_recompute() {
    let dir = tempfile::tempdir().unwrap();
    let runs = counter();
    let c = Cache::open(dir.path()).unwrap();
    with_cache(c.clone(), async {
        let first = square(&runs);
        first.call((6,)).await.unwrap();
        c.flush().await;
        let path = only_file_under(dir.path(), "calls", &first.digest(&(6,)).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        let restarted = square(&runs);
        assert_eq!(restarted.call((6,)).await.unwrap(), 36);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(restarted.contains((6,)).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_failing_storage_degrades_to_computing() {
    // A cache whose call directory is a file: every record read and write fails.
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path()).unwrap();
    std::fs::remove_dir_all(dir.path().join("calls")).unwrap();
    std::fs::write(dir.path().join("calls"), b"not a directory").unwrap();
    let runs = counter();
    with_cache(c.clone(), async {
        let f = square(&runs);
        assert_eq!(f.call((2,)).await.unwrap(), 4);
        assert_eq!(
            f.call((2,)).await.unwrap(),
            4,
            "the in-process tier still serves"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The first read failed, and so does the write behind the caller:
        // both are counted.
        c.flush().await;
        assert_eq!(f.stats().storage_faults, 2, "{:?}", f.stats());
        let restarted = square(&runs);
        assert_eq!(restarted.call((2,)).await.unwrap(), 4);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "nothing could be stored");
        assert!(
            restarted.stats().storage_faults > 0,
            "and the faults are counted"
        );
    })
    .await;
}

#[tokio::test]
async fn the_active_cache_follows_scopes_and_a_fixed_cache_wins() {
    let (a, b, fixed) = (Cache::memory(), Cache::memory(), Cache::memory());
    let runs = counter();
    let f = square(&runs);
    with_cache(a.clone(), async {
        assert!(cache().ptr_eq(&a));
        f.call((1,)).await.unwrap();
        with_cache(b.clone(), async {
            assert!(cache().ptr_eq(&b));
            f.call((1,)).await.unwrap();
        })
        .await;
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each cache computes once");
    let key = f.digest(&(1,)).unwrap();
    assert!(a.contains(&key).await.unwrap() && b.contains(&key).await.unwrap());

    let g = CachedFn::builder("g")
        .cache(fixed.clone())
        .build(|(): ()| async { 1u8 });
    with_cache(a.clone(), g.call(())).await.unwrap();
    assert_eq!(
        fixed
            .query(&CallQuery::new().name("g"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.query(&CallQuery::new().name("g"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tags_are_recorded_merged_and_queryable() {
    let c = Cache::memory();
    let runs = counter();
    let f = square(&runs);
    with_cache(c.clone(), async {
        tags([("project", "p1"), ("stage", "outer")])
            .scope(async {
                f.call((1,)).await.unwrap();
                tags([("stage", "inner")])
                    .scope(f.call((2,)))
                    .await
                    .unwrap();
            })
            .await;
        f.call((3,)).await.unwrap();
    })
    .await;
    let calls = c
        .query(&CallQuery::new().tag("project", "p1"))
        .await
        .unwrap();
    assert_eq!(calls.len(), 2);
    let inner = c
        .query(&CallQuery::new().tag("stage", "inner"))
        .await
        .unwrap();
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].metadata().tags["project"], "p1");
    assert_eq!(inner[0].arguments().get::<u64>("x").await.unwrap(), 2);
    assert_eq!(
        c.query(&CallQuery::new().has_tag("stage"))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        c.query(&f.query().argument("x", &3u64))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn rerun_recomputes_nested_calls_too() {
    let (outer_runs, inner_runs) = (counter(), counter());
    let inner = square(&inner_runs);
    let i = inner.clone();
    let o = outer_runs.clone();
    let outer = CachedFn::builder("outer")
        .args(["x"])
        .build(move |(x,): (u64,)| {
            o.fetch_add(1, Ordering::SeqCst);
            let i = i.clone();
            async move { i.call((x,)).await.unwrap() + 1 }
        });
    with_cache(Cache::memory(), async {
        assert_eq!(outer.call((3,)).await.unwrap(), 10);
        assert_eq!(outer.call((3,)).await.unwrap(), 10);
        assert_eq!(
            (
                outer_runs.load(Ordering::SeqCst),
                inner_runs.load(Ordering::SeqCst)
            ),
            (1, 1)
        );
        assert_eq!(outer.rerun((3,)).await.unwrap(), 10);
        assert_eq!(
            (
                outer_runs.load(Ordering::SeqCst),
                inner_runs.load(Ordering::SeqCst)
            ),
            (2, 2)
        );
        assert_eq!(outer.call((3,)).await.unwrap(), 10);
        assert_eq!(
            outer_runs.load(Ordering::SeqCst),
            2,
            "rerun mode ends with the call"
        );
    })
    .await;
}

#[tokio::test]
async fn a_digest_in_place_of_a_value_gives_the_same_call() {
    let c = Cache::memory();
    let runs = counter();
    let f = square(&runs);
    with_cache(c.clone(), async {
        let stored = c.save_value(&12u64).await.unwrap();
        let short = c.shrink(&stored).await.unwrap();
        let by_digest = f.call_with((Arg::stored(short),)).await.unwrap();
        assert_eq!(by_digest, 144);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(f.call((12,)).await.unwrap(), 144);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the value hits the call made by digest"
        );
        assert_eq!(f.call_with((Arg::Value(12),)).await.unwrap(), 144);
        assert_eq!(f.call_with((Arg::stored(stored),)).await.unwrap(), 144);
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let absent = D(&digest(&"absent").unwrap().to_hex()[..12]).unwrap();
        let err = f.call_with((Arg::stored(absent),)).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Argument(e) if matches!(**e, CacheError::NotFound { .. })),
            "{err}"
        );
        let wrong_type = c.save_value("text").await.unwrap();
        let err = f.call_with((Arg::stored(wrong_type),)).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Argument(e) if matches!(**e, CacheError::Decode(_))),
            "{err}"
        );
    })
    .await;
}

#[test]
#[should_panic(expected = "2 argument names for 1 arguments")]
fn argument_names_must_match_the_arity() {
    let _ = CachedFn::builder("f")
        .args(["a", "b"])
        .build(|(a,): (u8,)| async move { a });
}

/// A miss stores each argument once, as its own canonical encoding under
/// its own digest, whatever its type: the bytes come out of the call's key
/// bytes, not from encoding each argument again.
#[tokio::test]
async fn a_miss_stores_each_argument_under_its_own_digest() {
    type Args3 = (String, Vec<u8>, Option<(i64, f64)>);
    let c = Cache::memory();
    let f: CachedFn<Args3, usize> = CachedFn::builder("mixed")
        .module("tests")
        .args(["name", "blob", "pair"])
        .cache(c.clone())
        .build(|(name, blob, pair): Args3| async move {
            name.len() + blob.len() + usize::from(pair.is_some())
        });
    let name = "n".repeat(40);
    let blob = vec![9u8; 300];
    let pair = Some((-3i64, 0.5f64));
    f.call((name.clone(), blob.clone(), pair)).await.unwrap();
    c.flush().await;
    let calls = c.query(&f.query()).await.unwrap();
    assert_eq!(calls.len(), 1);
    let record = calls[0].record();
    let digests: Vec<_> = record
        .arguments
        .iter()
        .map(|(n, d)| (n.as_str(), *d))
        .collect();
    assert_eq!(
        digests,
        [
            ("name", digest(&name).unwrap()),
            ("blob", digest(&blob).unwrap()),
            ("pair", digest(&pair).unwrap()),
        ]
    );
    let args = calls[0].arguments();
    assert_eq!(args.get::<String>("name").await.unwrap(), name);
    assert_eq!(args.get::<Vec<u8>>("blob").await.unwrap(), blob);
    assert_eq!(args.get::<Option<(i64, f64)>>("pair").await.unwrap(), pair);
}
