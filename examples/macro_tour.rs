//! A tour of `#[cached]`: a plain async fn, an ignored parameter, a
//! `Result`, refresh and expiry, a capacity, and a method, each inspected
//! through the `<fn>_cached()` helper the attribute generates.
//!
//! Run with `cargo run --example macro_tour`; docs/macro.md explains every
//! option. The tour runs on tokio's paused clock, so it prints the same
//! lines on every run.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flechette::{Cache, Failure, cached, rerun};
use serde::Serialize;
use tokio::time::{advance, sleep};

fn count(runs: &AtomicUsize) -> usize {
    runs.load(Ordering::SeqCst)
}

static SLUG_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The URL slug of a title (pretend it is expensive). Without a `cache`
/// option, calls use the task's active cache: here the in-memory default.
#[cached]
async fn slug(title: String) -> String {
    SLUG_RUNS.fetch_add(1, Ordering::SeqCst);
    let words: Vec<String> = title.split_whitespace().map(str::to_lowercase).collect();
    words.join("-")
}

/// A client of a weather service: the body needs it, the key does not.
struct WeatherClient {
    region: &'static str,
    requests: AtomicUsize,
}

/// The forecast for a city; the client is left out of the key.
#[cached(ignore(client))]
async fn forecast(client: Arc<WeatherClient>, city: String) -> String {
    client.requests.fetch_add(1, Ordering::SeqCst);
    format!("sunny in {city} (answered by {})", client.region)
}

/// Why a lookup failed: the function's own error, or the caching machinery.
#[derive(Clone, Debug)]
enum LookupError {
    NoSuchHost(String),
    Cache(Failure),
}

impl From<Failure> for LookupError {
    fn from(failure: Failure) -> Self {
        LookupError::Cache(failure)
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NoSuchHost(host) => write!(f, "no such host: {host}"),
            LookupError::Cache(failure) => write!(f, "the cache gave up: {failure}"),
        }
    }
}

static RESOLVE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Resolves a host name. Only `Ok` is cached; a lookup that takes more
/// than 2 s is cancelled and becomes `LookupError::Cache(Failure::Timeout)`.
#[cached(timeout = "2s")]
async fn resolve(host: String) -> Result<String, LookupError> {
    RESOLVE_RUNS.fetch_add(1, Ordering::SeqCst);
    if host == "db.internal" {
        Ok("10.0.0.7".to_owned())
    } else if host == "slow.internal" {
        sleep(Duration::from_secs(30)).await;
        Ok("10.0.0.9".to_owned())
    } else {
        Err(LookupError::NoSuchHost(host))
    }
}

static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// An exchange rate quote: refreshed in the background once it is 10
/// minutes old, never served once it is an hour old.
#[cached(update_after = "10m", expire_after = "1h")]
async fn rate(pair: String) -> String {
    let run = RATE_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    format!("{pair} quote #{run}")
}

static THUMBNAIL_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Thumbnails: at most 3 stay decoded in process; the cache keeps them all.
#[cached(capacity = 3, cache = Cache::memory())]
async fn thumbnail(id: u32) -> String {
    THUMBNAIL_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("thumbnail-{id}.png")
}

/// A warehouse, identified by its id: the city is not part of the key.
#[derive(Clone, Serialize)]
struct Warehouse {
    id: u32,
    #[serde(skip)]
    city: String,
}

static STOCK_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Warehouse {
    /// Units of `sku` in stock (a slow inventory query, in real life).
    #[cached(name = "Warehouse::stock")]
    async fn stock(&self, sku: String) -> u32 {
        STOCK_RUNS.fetch_add(1, Ordering::SeqCst);
        match (self.id, sku.as_str()) {
            (1, "bolt") => 120,
            (2, "bolt") => 45,
            _ => 0,
        }
    }
}

/// Lets background refreshes finish (instant on the paused clock).
async fn settle() {
    sleep(Duration::from_millis(10)).await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every timer below runs on the paused clock: `advance` moves it, and a
    // timeout fires without waiting.
    tokio::time::pause();

    println!("== A plain async fn");
    let title = "Caching With Flechette";
    for _ in 0..2 {
        let s = slug(title.into()).await;
        println!(
            "slug({title:?}) = {s:?} (computations: {})",
            count(&SLUG_RUNS)
        );
    }
    let f = slug_cached();
    let stored = f.load((title.to_owned(),)).await?.expect("stored");
    println!(
        "slug_cached(): name {}, module {}, hits {}, misses {}",
        f.name(),
        stored.module(),
        f.stats().hits,
        f.stats().misses
    );
    rerun(slug(title.into())).await;
    let after_rerun = count(&SLUG_RUNS);
    let evicted = f.invalidate((title.to_owned(),)).await?;
    slug(title.into()).await;
    println!(
        "computations after a rerun: {after_rerun}; invalidate = {evicted}, then a call: {}",
        count(&SLUG_RUNS)
    );

    println!("\n== An ignored parameter: the client is not part of the key");
    let east = Arc::new(WeatherClient {
        region: "eu-east",
        requests: AtomicUsize::new(0),
    });
    let west = Arc::new(WeatherClient {
        region: "eu-west",
        requests: AtomicUsize::new(0),
    });
    println!(
        "east client: {}",
        forecast(east.clone(), "Lyon".into()).await
    );
    println!(
        "west client: {}",
        forecast(west.clone(), "Lyon".into()).await
    );
    let stored = forecast_cached().contains(("Lyon".to_owned(),)).await?;
    println!(
        "requests: east {}, west {}; forecast_cached().contains((\"Lyon\",)) = {stored}",
        count(&east.requests),
        count(&west.requests)
    );

    println!("\n== A Result: only Ok is cached");
    let hosts = [
        "db.internal",
        "db.internal",
        "nowhere.internal",
        "nowhere.internal",
        "slow.internal",
    ];
    for host in hosts {
        let shown = match resolve(host.to_owned()).await {
            Ok(ip) => format!("Ok({ip})"),
            Err(e) => format!("Err({e})"),
        };
        let runs = count(&RESOLVE_RUNS);
        println!("resolve({host:?}) = {shown} (computations: {runs})");
    }
    let ok = resolve_cached()
        .contains(("db.internal".to_owned(),))
        .await?;
    let err = resolve_cached()
        .contains(("nowhere.internal".to_owned(),))
        .await?;
    println!("stored: db.internal {ok}, nowhere.internal {err}");

    println!("\n== update_after = \"10m\", expire_after = \"1h\", on the paused clock");
    let pair = || "EUR/USD".to_owned();
    println!("at 0 min: {}", rate(pair()).await);
    advance(Duration::from_secs(5 * 60)).await;
    println!("at 5 min: {} (fresh)", rate(pair()).await);
    advance(Duration::from_secs(10 * 60)).await;
    println!(
        "at 15 min: {} (stale: served at once, a refresh starts)",
        rate(pair()).await
    );
    settle().await;
    println!(
        "a moment later: {} (refreshed in the background)",
        rate(pair()).await
    );
    advance(Duration::from_secs(2 * 60 * 60)).await;
    println!(
        "two hours later: {} (expired: the caller waited)",
        rate(pair()).await
    );
    let s = rate_cached().stats();
    println!(
        "stats: hits {}, stale hits {}, misses {}",
        s.hits, s.stale_hits, s.misses
    );

    println!("\n== capacity = 3 bounds the in-process tier, not the cache");
    for id in 0..10 {
        thumbnail(id).await;
    }
    let f = thumbnail_cached();
    println!(
        "computations: {}; at most 3 entries in process: {}",
        count(&THUMBNAIL_RUNS),
        f.hot_len() <= 3
    );
    let mut all_stored = true;
    for id in 0..10 {
        all_stored &= f.contains((id,)).await?;
    }
    println!("all 10 stored in the cache: {all_stored}");
    for id in 0..10 {
        thumbnail(id).await;
    }
    println!(
        "computations after reading all 10 again: {}",
        count(&THUMBNAIL_RUNS)
    );

    println!("\n== A method, named \"Warehouse::stock\"");
    let lyon = Warehouse {
        id: 1,
        city: "Lyon".into(),
    };
    let renamed = Warehouse {
        city: "Lyon Part-Dieu".into(),
        ..lyon.clone()
    };
    let turin = Warehouse {
        id: 2,
        city: "Turin".into(),
    };
    for warehouse in [&lyon, &renamed, &turin] {
        let units = warehouse.stock("bolt".into()).await;
        println!(
            "{} (warehouse {}): {units} bolts (computations: {})",
            warehouse.city,
            warehouse.id,
            count(&STOCK_RUNS)
        );
    }
    let f = Warehouse::stock_cached();
    let key = (lyon.clone(), "bolt".to_owned());
    println!(
        "Warehouse::stock_cached(): name {}, contains((lyon, \"bolt\")) = {}",
        f.name(),
        f.contains(key.clone()).await?
    );
    let evicted = f.invalidate(key).await?;
    let units = lyon.stock("bolt".into()).await;
    println!(
        "invalidate = {evicted}, then Lyon: {units} bolts (computations: {})",
        count(&STOCK_RUNS)
    );
    let s = f.stats();
    println!("stats: hits {}, misses {}", s.hits, s.misses);
    Ok(())
}
