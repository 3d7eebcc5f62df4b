//! Results are written behind their callers: queued, visible to readers of
//! the cache at once, written in batches, bounded, flushed, and never
//! written back after an invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::storage::{
    Bytes, CallStorage, MemoryCalls, MemoryValues, StorageError, ValueStorage, async_trait,
};
use flechette::{Cache, CachedFn, CallQuery, CallRecord, Digest, DigestPrefix, WriteBehind};
use tokio::sync::watch;

/// Memory storage that behaves like I/O: its batch writes wait for a gate,
/// and a value can be made to fail.
#[derive(Clone)]
struct Gated {
    values: Arc<MemoryValues>,
    calls: Arc<MemoryCalls>,
    open: watch::Sender<bool>,
    /// Batches of records written, and the most calls in one.
    batches: Arc<AtomicUsize>,
    largest: Arc<AtomicUsize>,
    /// Bytes that fail to be written.
    poison: Arc<std::sync::Mutex<Option<Bytes>>>,
}

impl Gated {
    fn new(open: bool) -> Self {
        Self {
            values: Arc::default(),
            calls: Arc::default(),
            open: watch::Sender::new(open),
            batches: Arc::default(),
            largest: Arc::default(),
            poison: Arc::default(),
        }
    }

    fn cache(&self, bounds: WriteBehind) -> Cache {
        Cache::new(GatedValues(self.clone()), GatedCalls(self.clone())).with_write_behind(bounds)
    }

    /// The storage alone, as another process sees it.
    fn storage(&self) -> Cache {
        Cache::from_storage(self.values.clone(), self.calls.clone())
    }

    async fn gate(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
    }
}

struct GatedValues(Gated);
struct GatedCalls(Gated);

#[async_trait]
impl ValueStorage for GatedValues {
    async fn get(&self, d: &Digest) -> Result<Option<Bytes>, StorageError> {
        self.0.values.get(d).await
    }
    async fn put(&self, d: &Digest, b: Bytes) -> Result<(), StorageError> {
        self.put_many(&[(*d, b)]).await
    }
    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        self.0.gate().await;
        let poison = self.0.poison.lock().unwrap().clone();
        if values.iter().any(|(_, b)| Some(b) == poison.as_ref()) {
            return Err(StorageError::Backend("poisoned value".into()));
        }
        self.0.values.put_many(values).await
    }
    async fn contains(&self, d: &Digest) -> Result<bool, StorageError> {
        self.0.values.contains(d).await
    }
    async fn remove(&self, d: &Digest) -> Result<bool, StorageError> {
        self.0.values.remove(d).await
    }
    async fn list(&self, p: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.0.values.list(p).await
    }
}

#[async_trait]
impl CallStorage for GatedCalls {
    async fn get(&self, k: &Digest) -> Result<Option<CallRecord>, StorageError> {
        self.0.calls.get(k).await
    }
    async fn put(&self, k: &Digest, r: &CallRecord) -> Result<(), StorageError> {
        self.put_many(&[(*k, r.clone())]).await
    }
    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        self.0.gate().await;
        self.0.batches.fetch_add(1, Ordering::SeqCst);
        self.0.largest.fetch_max(records.len(), Ordering::SeqCst);
        self.0.calls.put_many(records).await
    }
    async fn remove(&self, k: &Digest) -> Result<bool, StorageError> {
        self.0.calls.remove(k).await
    }
    async fn list(&self, p: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.0.calls.list(p).await
    }
    async fn query(&self, q: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        self.0.calls.query(q).await
    }
}

fn doubling(cache: Cache, runs: &Arc<AtomicUsize>) -> CachedFn<(u64,), u64> {
    let runs = Arc::clone(runs);
    CachedFn::builder("doubling")
        .args(["x"])
        .cache(cache)
        .build(move |(x,): (u64,)| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { x * 2 }
        })
}

#[tokio::test]
async fn callers_are_answered_before_storage_and_flush_waits_for_it() {
    let storage = Gated::new(false);
    let cache = storage.cache(WriteBehind::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(cache.clone(), &runs);
    for x in 0..5 {
        assert_eq!(f.call((x,)).await.unwrap(), x * 2, "answered, storage shut");
    }
    let key = f.digest(&(3,)).unwrap();
    assert!(
        !storage.storage().contains(&key).await.unwrap(),
        "nothing written yet"
    );
    // Readers of this cache see the queued calls already.
    assert!(cache.contains(&key).await.unwrap());
    let restarted = doubling(cache.clone(), &runs);
    assert_eq!(restarted.call((3,)).await.unwrap(), 6);
    assert_eq!(runs.load(Ordering::SeqCst), 5, "served from the queue");

    storage.open.send_replace(true);
    cache.flush().await;
    for x in 0..5 {
        let key = f.digest(&(x,)).unwrap();
        assert!(
            storage.storage().contains(&key).await.unwrap(),
            "{x} durable"
        );
    }
    assert!(
        storage.batches.load(Ordering::SeqCst) < 5,
        "written in batches, not one by one"
    );
}

#[tokio::test]
async fn a_full_queue_holds_the_caller_back() {
    let storage = Gated::new(false);
    let cache = storage.cache(WriteBehind::new(2, 1 << 20));
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(cache.clone(), &runs);
    f.call((1,)).await.unwrap();
    f.call((2,)).await.unwrap();
    // The queue holds two calls: the third caller waits for room.
    let third = tokio::spawn({
        let f = f.clone();
        async move { f.call((3,)).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(
        !third.is_finished(),
        "the third call waits while the queue is full"
    );
    storage.open.send_replace(true);
    assert_eq!(third.await.unwrap().unwrap(), 6);
    cache.flush().await;
    assert!(
        storage.largest.load(Ordering::SeqCst) <= 2,
        "never more than the bound queued"
    );
    let stored = storage.storage().query(&CallQuery::new()).await.unwrap();
    assert_eq!(stored.len(), 3);
}

#[tokio::test]
async fn an_invalidation_drops_a_queued_write_and_outlasts_one_in_progress() {
    let storage = Gated::new(false);
    let cache = storage.cache(WriteBehind::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(cache.clone(), &runs);
    // 1 is taken into a batch (held at the gate), 2 waits behind it.
    f.call((1,)).await.unwrap();
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    f.call((2,)).await.unwrap();
    assert!(
        f.invalidate((2,)).await.unwrap(),
        "the queued call counts as evicted"
    );
    // Invalidating 1 waits for its batch to land, then removes it.
    let invalidating = tokio::spawn({
        let f = f.clone();
        async move { f.invalidate((1,)).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!invalidating.is_finished(), "waits for the batch holding 1");
    storage.open.send_replace(true);
    assert!(invalidating.await.unwrap().unwrap());
    cache.flush().await;
    let other = storage.storage();
    for x in [1, 2] {
        let key = f.digest(&(x,)).unwrap();
        assert!(
            !other.contains(&key).await.unwrap(),
            "{x} is not resurrected"
        );
        assert!(!cache.contains(&key).await.unwrap());
    }
    f.call((1,)).await.unwrap();
    f.call((2,)).await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 4, "both computed again");
}

#[tokio::test(start_paused = true)]
async fn another_process_sees_a_call_within_ten_milliseconds_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(Cache::open(dir.path()).unwrap(), &runs);
    let other = Cache::open(dir.path()).unwrap();
    f.call((7,)).await.unwrap();
    let key = f.digest(&(7,)).unwrap();
    // The writer adds no delay of its own: on the paused clock, time does
    // not move while the file writes run.
    let seen = tokio::time::timeout(Duration::from_millis(10), async {
        while !other.contains(&key).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "visible to another handle within 10 ms");
}

#[tokio::test]
async fn write_through_makes_a_result_durable_before_the_caller_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let f: CachedFn<(u64,), u64> = CachedFn::builder("durable")
        .args(["x"])
        .cache(Cache::open(dir.path()).unwrap())
        .write_through(true)
        .build(|(x,): (u64,)| async move { x + 1 });
    let other = Cache::open(dir.path()).unwrap();
    f.call((1,)).await.unwrap();
    assert!(other.contains(&f.digest(&(1,)).unwrap()).await.unwrap());
}

#[tokio::test]
async fn a_failed_write_in_a_batch_is_counted_for_its_call_alone() {
    let storage = Gated::new(false);
    let cache = storage.cache(WriteBehind::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(cache.clone(), &runs);
    // The result of 3 (the encoding of 6) cannot be written.
    let six = flechette::encoding::to_vec(&6u64).unwrap();
    *storage.poison.lock().unwrap() = Some(Bytes::from(six));
    for x in 1..=5 {
        f.call((x,)).await.unwrap();
    }
    storage.open.send_replace(true);
    cache.flush().await;
    assert_eq!(f.stats().storage_faults, 1, "{:?}", f.stats());
    let other = storage.storage();
    for x in 1..=5 {
        let stored = other.contains(&f.digest(&(x,)).unwrap()).await.unwrap();
        assert_eq!(stored, x != 3, "{x}");
    }
    assert_eq!(f.call((3,)).await.unwrap(), 6, "still served in process");
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_writes_what_is_queued() {
    let storage = Gated::new(true);
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(storage.cache(WriteBehind::default()), &runs);
    f.call((9,)).await.unwrap();
    let key = f.digest(&(9,)).unwrap();
    drop(f);
    let other = storage.storage();
    let written = tokio::time::timeout(Duration::from_secs(1), async {
        while !other.contains(&key).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(written.is_ok(), "the closed queue was written out");
}

#[test]
fn calls_left_by_a_runtime_that_shut_down_are_written_by_the_next() {
    let storage = Gated::new(false);
    let cache = storage.cache(WriteBehind::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let f = doubling(cache.clone(), &runs);
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    first.block_on(async {
        for x in 1..=3 {
            f.call((x,)).await.unwrap();
        }
        tokio::task::yield_now().await;
    });
    drop(first);
    storage.open.send_replace(true);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    second.block_on(async {
        cache.flush().await;
        let other = storage.storage();
        for x in 1..=3 {
            assert!(other.contains(&f.digest(&(x,)).unwrap()).await.unwrap());
        }
    });
}
