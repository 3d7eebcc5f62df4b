//! `#[cached]` on async functions and methods, with every option.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use flechette::{Cache, CallQuery, Failure, Freshness, cached, rerun};
use serde::Serialize;

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Squares, slowly.
#[cached(cache = Cache::memory())]
async fn square(x: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * x
}

#[tokio::test]
async fn a_free_function_keeps_its_signature_and_caches() {
    assert_eq!(square(4).await, 16);
    assert_eq!(square(4).await, 16);
    assert_eq!(SQUARE_RUNS.load(Ordering::SeqCst), 1);
    let f = square_cached();
    assert_eq!(f.name(), "square");
    assert!(f.contains((4,)).await.unwrap());
    assert_eq!(f.stats().hits, 1);
    let calls = f
        .cache()
        .query(&f.query().argument("x", &4u64))
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].module(), module_path!());
    assert_eq!(calls[0].arguments().names().collect::<Vec<_>>(), ["x"]);

    assert_eq!(rerun(square(4)).await, 16);
    assert_eq!(SQUARE_RUNS.load(Ordering::SeqCst), 2, "rerun recomputes");
    assert!(f.invalidate((4,)).await.unwrap());
    assert_eq!(square(4).await, 16);
    assert_eq!(SQUARE_RUNS.load(Ordering::SeqCst), 3, "invalidate forgets");
}

#[derive(Clone, Debug, PartialEq)]
enum FetchError {
    NotFound(u32),
    Cache(String),
}

impl From<Failure> for FetchError {
    fn from(f: Failure) -> Self {
        FetchError::Cache(f.to_string())
    }
}

static FETCH_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Not Serialize: a handle that must not enter the key.
struct Database {
    rows: Vec<String>,
}

static DB: LazyLock<Arc<Database>> = LazyLock::new(|| {
    Arc::new(Database {
        rows: vec!["zero".into(), "one".into()],
    })
});

#[cached(name = "fetch_row", version = "2", cache = Cache::memory(), ignore(db))]
async fn fetch(db: Arc<Database>, id: u32) -> Result<String, FetchError> {
    FETCH_RUNS.fetch_add(1, Ordering::SeqCst);
    db.rows
        .get(id as usize)
        .cloned()
        .ok_or(FetchError::NotFound(id))
}

#[tokio::test]
async fn results_cache_only_ok_and_ignored_parameters_stay_out_of_the_key() {
    assert_eq!(fetch(DB.clone(), 1).await, Ok("one".into()));
    assert_eq!(fetch(DB.clone(), 1).await, Ok("one".into()));
    assert_eq!(FETCH_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(fetch(DB.clone(), 9).await, Err(FetchError::NotFound(9)));
    assert_eq!(fetch(DB.clone(), 9).await, Err(FetchError::NotFound(9)));
    assert_eq!(
        FETCH_RUNS.load(Ordering::SeqCst),
        3,
        "errors are not cached"
    );

    let f = fetch_cached();
    assert_eq!(f.name(), "fetch_row");
    let call = f.load((1,)).await.unwrap().unwrap();
    assert_eq!(call.record().version.as_deref(), Some("2"));
    assert_eq!(call.arguments().names().collect::<Vec<_>>(), ["id"]);
}

#[derive(Clone, Serialize)]
struct Account {
    id: u32,
    #[serde(skip)]
    label: String,
}

static BALANCE_RUNS: AtomicUsize = AtomicUsize::new(0);
static LABEL_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Account {
    #[cached(name = "Account::balance", cache = Cache::memory())]
    async fn balance(&self, day: u32) -> u64 {
        BALANCE_RUNS.fetch_add(1, Ordering::SeqCst);
        u64::from(self.id) * 100 + u64::from(day)
    }

    #[cached(cache = Cache::memory(), ignore(self))]
    async fn shout(&self, word: String) -> String {
        LABEL_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{} says {word}", self.label)
    }
}

#[tokio::test]
async fn methods_take_the_receiver_into_the_key_unless_ignored() {
    let a = Account {
        id: 7,
        label: "savings".into(),
    };
    let renamed = Account {
        id: 7,
        label: "renamed".into(),
    };
    let b = Account {
        id: 8,
        label: "current".into(),
    };
    assert_eq!(a.balance(1).await, 701);
    assert_eq!(renamed.balance(1).await, 701);
    assert_eq!(
        BALANCE_RUNS.load(Ordering::SeqCst),
        1,
        "same identity, same key"
    );
    assert_eq!(b.balance(1).await, 801);
    assert_eq!(BALANCE_RUNS.load(Ordering::SeqCst), 2);
    // Helpers take the receiver explicitly.
    let f = Account::balance_cached();
    assert!(f.contains((a.clone(), 1)).await.unwrap());
    assert!(!f.contains((a.clone(), 2)).await.unwrap());
    let key = f.digest(&(b.clone(), 1)).unwrap();
    assert!(f.cache().contains(&key).await.unwrap());

    assert_eq!(a.shout("hi".into()).await, "savings says hi");
    assert_eq!(
        b.shout("hi".into()).await,
        "savings says hi",
        "self is not in the key"
    );
    assert_eq!(LABEL_RUNS.load(Ordering::SeqCst), 1);
}

static FRESH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = Cache::memory(), update_after = "100ms", expire_after = "1s", capacity = 10)]
async fn fresh(k: u8) -> usize {
    FRESH_RUNS.fetch_add(1, Ordering::SeqCst) + usize::from(k) - 1
}

#[tokio::test(start_paused = true)]
async fn update_after_and_expire_after_take_human_durations() {
    assert_eq!(fresh(1).await, 0);
    tokio::time::advance(Duration::from_millis(150)).await;
    assert_eq!(fresh(1).await, 0, "stale, served at once");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(fresh(1).await, 1, "refreshed in the background");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(fresh(1).await, 2, "expired, recomputed");
}

#[derive(Clone, Debug, PartialEq)]
struct Slow;

impl From<Failure> for Slow {
    fn from(_: Failure) -> Self {
        Slow
    }
}

#[cached(cache = Cache::memory(), timeout = "1s")]
async fn sluggish(k: u8) -> Result<u8, Slow> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(k)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_turns_into_the_functions_error() {
    assert_eq!(sluggish(1).await, Err(Slow));
    assert_eq!(sluggish_cached().stats().timeouts, 1);
}

#[cached(cache = Cache::memory(), lifespan = |v: &(u64, u64)| Freshness::new().expire_after(Duration::from_secs(v.0)))]
async fn max_age(seconds: u64) -> (u64, u64) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    (seconds, RUNS.fetch_add(1, Ordering::SeqCst) as u64)
}

#[tokio::test(start_paused = true)]
async fn lifespans_come_from_the_value() {
    let short = max_age(1).await;
    let long = max_age(100).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_ne!(max_age(1).await, short);
    assert_eq!(max_age(100).await, long);
}

#[cached(cache = Cache::memory(), version = "3", hash_code)]
async fn versioned(x: u8) -> u8 {
    x + 1
}

#[tokio::test]
async fn hash_code_folds_the_body_into_the_version() {
    versioned(1).await;
    let q = CallQuery::new().name("versioned");
    let calls = versioned_cached().cache().query(&q).await.unwrap();
    let version = calls[0].record().version.clone().unwrap();
    assert!(
        version.starts_with("3#") && version.len() == 2 + 16,
        "{version}"
    );
}

static CONSTANT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Every parameter ignored: the key is constant (py-memoize's
/// `test_should_return_same_value_on_constant_key_function`).
#[cached(cache = Cache::memory(), ignore(arg, kwarg))]
async fn constant_key(arg: u32, kwarg: String) -> String {
    CONSTANT_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{arg}-{kwarg}")
}

static NO_PARAM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = Cache::memory())]
async fn no_parameters() -> usize {
    NO_PARAM_RUNS.fetch_add(1, Ordering::SeqCst)
}

static OWNER_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Owner {
    name: &'static str,
}

impl Clone for Owner {
    fn clone(&self) -> Self {
        Owner { name: self.name }
    }
}

impl Owner {
    #[cached(cache = Cache::memory(), ignore(self))]
    async fn greeting(&self) -> String {
        OWNER_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("hello from {}", self.name)
    }
}

#[tokio::test]
async fn a_function_whose_key_is_constant_caches_one_value() {
    assert_eq!(constant_key(1, "a".into()).await, "1-a");
    assert_eq!(constant_key(2, "b".into()).await, "1-a", "same key");
    assert_eq!(CONSTANT_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(constant_key_cached().stats().hits, 1);

    assert_eq!(no_parameters().await, 0);
    assert_eq!(no_parameters().await, 0);
    assert_eq!(NO_PARAM_RUNS.load(Ordering::SeqCst), 1);

    let (a, b) = (Owner { name: "a" }, Owner { name: "b" });
    assert_eq!(a.greeting().await, "hello from a");
    assert_eq!(b.greeting().await, "hello from a", "self is not in the key");
    assert_eq!(OWNER_RUNS.load(Ordering::SeqCst), 1);
    assert!(Owner::greeting_cached().contains(()).await.unwrap());
}

static DOUBLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = Cache::memory())]
async fn double(x: u64) -> u64 {
    DOUBLE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * 2
}

#[tokio::test]
async fn the_helper_is_a_full_cached_function() {
    use flechette::{Arg, D};
    let f = double_cached();
    // A stored argument value, given by a short digest (fleche's
    // `double(D(short))`).
    let digest = f.cache().save_value(&21u64).await.unwrap();
    let short = f.cache().shrink(&digest).await.unwrap();
    let prefix = D(&short.to_string()).unwrap();
    assert_eq!(f.call_with((Arg::stored(prefix),)).await.unwrap(), 42);
    assert_eq!(DOUBLE_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(double(21).await, 42, "the same call");
    assert_eq!(DOUBLE_RUNS.load(Ordering::SeqCst), 1);
    // Every method of a builder-made function works on it.
    assert_eq!(f.call((5,)).await.unwrap(), 10);
    assert_eq!(f.rerun((5,)).await.unwrap(), 10);
    assert_eq!(DOUBLE_RUNS.load(Ordering::SeqCst), 3);
    assert_eq!(f.spawn((6,)).await.unwrap(), 12);
}

/// A directory for the file caches below, one per process.
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

fn durable_cache() -> Cache {
    Cache::open(DIR.path().join("durable")).unwrap()
}

#[cached(cache = durable_cache(), write_through)]
async fn durable(x: u64) -> u64 {
    x + 100
}

#[tokio::test]
async fn write_through_makes_a_result_durable_before_the_call_returns() {
    assert_eq!(durable(1).await, 101);
    // Another handle on the directory, as another process: no flush needed.
    let other = Cache::open(DIR.path().join("durable")).unwrap();
    let key = durable_cached().digest(&(1,)).unwrap();
    assert!(other.contains(&key).await.unwrap());
}
