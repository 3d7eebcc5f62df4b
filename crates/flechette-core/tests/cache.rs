//! Cache behaviour: short digests, stacks, lazy loading, queries, gc.

mod common;

use std::sync::Arc;

use common::{Counting, save_call};
use flechette_core::storage::{MemoryCalls, MemoryValues};
use flechette_core::{
    Cache, CacheError, CacheStack, CallQuery, D, Digest, PrefixError, TableOptions, digest,
};

#[tokio::test]
async fn expand_finds_one_digest_and_reports_misses_and_ambiguity() {
    let cache = Cache::memory();
    let mut saved = Vec::new();
    for i in 0..300u64 {
        saved.push(cache.save_value(&i).await.unwrap());
    }
    let target = saved[7];
    let unique = cache.shrink(&target).await.unwrap();
    assert!(unique.as_str().len() >= 4);
    assert_eq!(cache.expand(&unique).await.unwrap(), target);
    assert_eq!(cache.expand(&target.into()).await.unwrap(), target);

    // Missing.
    let absent = digest(&"absent").unwrap();
    let missing = cache.shrink(&absent).await.unwrap();
    let err = cache.expand(&missing).await.unwrap_err();
    assert!(matches!(err, CacheError::NotFound { .. }), "{err}");

    // Ambiguous: find two saved digests sharing 4 characters.
    let mut sorted = saved.clone();
    sorted.sort();
    let pair = sorted
        .windows(2)
        .find(|w| w[0].to_hex()[..4] == w[1].to_hex()[..4])
        .expect("300 digests share some 4-character prefix");
    let four = D(&pair[0].to_hex()[..4]).unwrap();
    match cache.expand(&four).await.unwrap_err() {
        CacheError::Ambiguous {
            matches,
            unique_len,
            ..
        } => {
            assert!(matches >= 2);
            assert!(unique_len > 4);
            let longer = D(&pair[0].to_hex()[..unique_len]).unwrap();
            assert_eq!(cache.expand(&longer).await.unwrap(), pair[0]);
        }
        other => panic!("expected ambiguity, got {other}"),
    }
    let msg = cache.expand(&four).await.unwrap_err().to_string();
    assert!(
        msg.contains("ambiguous") && msg.contains("characters would be unique"),
        "{msg}"
    );
}

#[test]
fn prefixes_under_four_characters_or_not_hex_are_errors() {
    assert!(matches!(D("60a"), Err(PrefixError::TooShort(_))));
    assert!(matches!(D(""), Err(PrefixError::TooShort(_))));
    assert!(matches!(D("60079f7x"), Err(PrefixError::NotHex(_))));
    assert!(matches!(D("../../etc/passwd"), Err(PrefixError::NotHex(_))));
    assert!(D("60079f79").is_ok());
    assert!(D("60a").unwrap_err().to_string().contains("at least 4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stack_copies_a_deep_hit_into_level_zero_once_under_50_readers() {
    let (local_calls, local_counts) = Counting::new(MemoryCalls::new());
    let (local_values, value_counts) = Counting::new(MemoryValues::new());
    let local = Cache::new(local_values, local_calls);
    let remote = Cache::memory();
    let key = save_call(&remote, "f", 1, "one", &[]).await;
    let stack: Cache = CacheStack::new()
        .push(local.clone())
        .push(remote.clone())
        .into();

    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (stack, barrier) = (stack.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            let call = stack
                .load(&key)
                .await
                .unwrap()
                .expect("found in the remote level");
            call.result::<String>().await.unwrap()
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap(), "one");
    }
    assert_eq!(
        local_counts.puts(),
        1,
        "the record is copied into level 0 once"
    );
    assert_eq!(
        value_counts.puts(),
        2,
        "argument and result copied once each"
    );
    assert!(local.contains(&key).await.unwrap());
}

#[tokio::test]
async fn stack_writes_to_level_zero_and_evicts_everywhere() {
    let (local, remote) = (Cache::memory(), Cache::memory());
    let stack: Cache = CacheStack::from([local.clone(), remote.clone()]).into();
    let key = save_call(&stack, "f", 2, "two", &[]).await;
    assert!(local.contains(&key).await.unwrap());
    assert!(!remote.contains(&key).await.unwrap());

    let deep = save_call(&remote, "f", 3, "three", &[]).await;
    assert!(
        stack.contains(&deep).await.unwrap(),
        "contains looks at every level"
    );
    stack.load(&deep).await.unwrap().unwrap();
    assert!(local.contains(&deep).await.unwrap());
    assert!(stack.evict(&deep).await.unwrap());
    assert!(!local.contains(&deep).await.unwrap());
    assert!(!remote.contains(&deep).await.unwrap());
}

#[tokio::test]
async fn lazy_calls_read_values_only_when_asked() {
    let (values, counts) = Counting::new(MemoryValues::new());
    let cache = Cache::new(values, MemoryCalls::new());
    let key = save_call(&cache, "f", 5, "five", &[("k", "v")]).await;
    let before = counts.gets();

    let lazy = cache.load(&key).await.unwrap().unwrap();
    assert_eq!(lazy.name(), "f");
    assert_eq!(lazy.metadata().tags["k"], "v");
    assert_eq!(counts.gets(), before, "loading reads no value");
    let listed = cache.query(&CallQuery::new()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(counts.gets(), before, "querying reads no value");

    assert_eq!(lazy.result::<String>().await.unwrap(), "five");
    assert_eq!(counts.gets(), before + 1);
    assert_eq!(lazy.arguments().get::<u64>("x").await.unwrap(), 5);
    assert_eq!(counts.gets(), before + 2);
    assert_eq!(
        lazy.arguments().get_value("x").await.unwrap(),
        serde_json::json!(5)
    );
    assert!(matches!(
        lazy.arguments().get::<u64>("nope").await,
        Err(CacheError::NoSuchArgument(_))
    ));

    let fetched = lazy.fetch().await.unwrap();
    assert_eq!(fetched.digest(), lazy.digest());
    assert_eq!(fetched.result::<String>().unwrap(), "five");
    assert_eq!(fetched.argument::<u64>("x").unwrap(), 5);
}

#[tokio::test]
async fn a_wrong_type_is_a_decode_error_not_a_panic() {
    let cache = Cache::memory();
    let key = save_call(&cache, "f", 5, "five", &[]).await;
    let lazy = cache.load(&key).await.unwrap().unwrap();
    let err = lazy.result::<u64>().await.unwrap_err();
    assert!(matches!(err, CacheError::Decode(_)), "{err}");
}

#[tokio::test]
async fn contains_means_loadable() {
    let values = Arc::new(MemoryValues::new());
    let cache = Cache::from_storage(values.clone(), Arc::new(MemoryCalls::new()));
    let key = save_call(&cache, "f", 1, "one", &[]).await;
    assert!(cache.contains(&key).await.unwrap());
    let record = cache.load(&key).await.unwrap().unwrap().record().clone();
    use flechette_core::storage::ValueStorage;
    values.remove(&record.result).await.unwrap();
    assert!(!cache.contains(&key).await.unwrap());
}

#[tokio::test]
async fn queries_filter_by_name_argument_digest_and_tags() {
    let cache = Cache::memory();
    save_call(&cache, "f", 1, "a", &[("project", "p1")]).await;
    save_call(&cache, "f", 2, "b", &[("project", "p2"), ("category", "x")]).await;
    save_call(&cache, "g", 1, "c", &[]).await;

    let count = |q: CallQuery| {
        let cache = cache.clone();
        async move { cache.query(&q).await.unwrap().len() }
    };
    assert_eq!(count(CallQuery::new()).await, 3);
    assert_eq!(count(CallQuery::new().name("f")).await, 2);
    assert_eq!(count(CallQuery::new().module("tests").name("g")).await, 1);
    assert_eq!(count(CallQuery::new().argument("x", &1u64)).await, 2);
    assert_eq!(
        count(CallQuery::new().argument("x", &1u8)).await,
        2,
        "any integer width"
    );
    let d: Digest = digest(&2u64).unwrap();
    assert_eq!(count(CallQuery::new().argument_digest("x", d)).await, 1);
    let short = D(&d.to_hex()[..10]).unwrap();
    assert_eq!(count(CallQuery::new().argument_digest("x", short)).await, 1);
    assert_eq!(count(CallQuery::new().result("c")).await, 1);
    assert_eq!(count(CallQuery::new().has_tag("project")).await, 2);
    assert_eq!(count(CallQuery::new().has_tag("category")).await, 1);
    assert_eq!(count(CallQuery::new().tag("project", "p1")).await, 1);
    assert_eq!(count(CallQuery::new().tag("project", "p3")).await, 0);
    assert_eq!(
        count(CallQuery::new().has_metadata("tags").name("g")).await,
        0
    );
    assert_eq!(
        count(
            CallQuery::new()
                .name("f")
                .argument("x", &2u64)
                .tag("category", "x")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn tables_show_arguments_results_and_tags() {
    let cache = Cache::memory();
    save_call(&cache, "f", 1, "a", &[("project", "p1")]).await;
    save_call(&cache, "f", 2, "b,\"quoted\"", &[]).await;
    let options = TableOptions::new().arguments(["x", "project"]).result(true);
    let table = cache.table(&CallQuery::new(), &options).await.unwrap();
    assert_eq!(
        table.columns,
        [
            "call",
            "name",
            "module",
            "x",
            "a_project",
            "result",
            "timestart",
            "walltime",
            "project"
        ]
    );
    assert_eq!(table.rows.len(), 2);
    let text = table.to_string();
    assert!(text.contains("| call"), "{text}");
    let csv = table.to_csv();
    assert!(csv.contains("\"b,\"\"quoted\"\"\""), "{csv}");
    let json = table.to_json();
    assert_eq!(json.as_array().unwrap().len(), 2);
    for row in json.as_array().unwrap() {
        let prefix = D(row["call"].as_str().unwrap()).unwrap();
        let key = cache.expand(&prefix).await.unwrap();
        assert!(cache.contains(&key).await.unwrap());
    }
}

#[tokio::test]
async fn gc_removes_only_unreferenced_values() {
    let cache = Cache::memory();
    let key = save_call(&cache, "f", 1, "kept", &[]).await;
    let loose = cache.save_value(&"loose").await.unwrap();
    let report = cache.gc().await.unwrap();
    assert_eq!((report.kept, report.young, report.removed), (2, 1, 0));
    let now = flechette_core::GcOptions::new().grace(std::time::Duration::ZERO);
    let report = cache.gc_with(now, |_| {}).await.unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(report.kept, 2);
    assert!(cache.contains(&key).await.unwrap());
    assert!(cache.load_value::<String>(&loose).await.is_err());
}
