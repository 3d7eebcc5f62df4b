//! The tower response-cache layer over a counting upstream, on tokio's
//! paused clock: key extraction, collapsing, which responses are stored,
//! Cache-Control lifespans, background refresh, invalidation, timeouts.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flechette::Cache;
use flechette::layer::{ResponseCacheLayer, ResponseCacheLayerBuilder};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, advance};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

/// An upstream that counts its calls, sleeps 50 ms and answers from the
/// path: `/item/<n>` → 200 "item n v<call>", `/missing` → 404,
/// `/cookie` → 200 with Set-Cookie, `/cc/<header>` → 200 with that
/// Cache-Control, `/slow` → after 10 s.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicUsize>,
}

impl Upstream {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(
        &self,
    ) -> BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible> {
        let calls = Arc::clone(&self.calls);
        BoxCloneSyncService::new(tower::service_fn(move |req: Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let path = req.uri().path().to_owned();
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut response = Response::builder();
                if path == "/missing" {
                    response = response.status(StatusCode::NOT_FOUND);
                } else if path == "/cookie" {
                    response = response.header("set-cookie", "session=1");
                } else if let Some(cc) = path.strip_prefix("/cc/") {
                    response = response.header("cache-control", cc.replace('_', " "));
                } else if path == "/slow" {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                let lang = req
                    .headers()
                    .get("accept-language")
                    .map_or("", |v| v.to_str().unwrap());
                let body = format!("{path} {lang} v{n}");
                Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).unwrap())
            }
        }))
    }
}

/// GET requests keyed by path and `Accept-Language`; others pass through.
fn builder() -> ResponseCacheLayerBuilder<(String, String)> {
    ResponseCacheLayer::builder("pages", |req: &http::request::Parts| {
        (req.method == Method::GET).then(|| {
            let lang = req
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (req.uri.path().to_owned(), lang)
        })
    })
    .cache(Cache::memory())
}

async fn send<S>(service: &S, method: Method, path: &str, lang: &str) -> (StatusCode, String)
where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Response: Into<Response<flechette::layer::ResponseBody<Full<Bytes>>>>,
    S::Error: std::fmt::Debug,
{
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("accept-language", lang)
        .body(Full::default())
        .unwrap();
    let response: Response<_> = service.clone().oneshot(request).await.unwrap().into();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get<S>(service: &S, path: &str) -> String
where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Response: Into<Response<flechette::layer::ResponseBody<Full<Bytes>>>>,
    S::Error: std::fmt::Debug,
{
    send(service, Method::GET, path, "en").await.1
}

#[tokio::test(start_paused = true)]
async fn requests_are_keyed_by_the_extracted_key_and_unkeyed_ones_pass_through() {
    let upstream = Upstream::default();
    let layer = builder().build();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.service());
    assert_eq!(get(&service, "/item/1").await, "/item/1 en v1");
    assert_eq!(get(&service, "/item/1").await, "/item/1 en v1");
    assert_eq!(get(&service, "/item/2").await, "/item/2 en v2");
    let (_, german) = send(&service, Method::GET, "/item/1", "de").await;
    assert_eq!(german, "/item/1 de v3", "a header in the key");
    let (_, posted) = send(&service, Method::POST, "/item/1", "en").await;
    assert_eq!(posted, "/item/1 en v4", "no key: passed through");
    let (_, posted) = send(&service, Method::POST, "/item/1", "en").await;
    assert_eq!(posted, "/item/1 en v5");
    assert_eq!(upstream.calls(), 5);
    let stats = layer.stats();
    assert_eq!((stats.hits, stats.computations), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn concurrent_identical_requests_make_one_upstream_call() {
    let upstream = Upstream::default();
    let service = tower::ServiceBuilder::new()
        .layer(builder().build())
        .service(upstream.service());
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (service, barrier) = (service.clone(), Arc::clone(&barrier));
        tasks.spawn(async move {
            barrier.wait().await;
            get(&service, "/item/7").await
        });
    }
    while let Some(body) = tasks.join_next().await {
        assert_eq!(body.unwrap(), "/item/7 en v1");
    }
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn only_accepted_responses_are_stored_but_every_waiter_gets_the_answer() {
    let upstream = Upstream::default();
    let layer = builder().build();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.service());
    // 404: answered (to both collapsed requests), not stored.
    let (a, b) = tokio::join!(
        send(&service, Method::GET, "/missing", "en"),
        send(&service, Method::GET, "/missing", "en")
    );
    assert_eq!(a, (StatusCode::NOT_FOUND, "/missing en v1".to_owned()));
    assert_eq!(a, b);
    assert_eq!(upstream.calls(), 1, "collapsed even though not stored");
    assert_eq!(get(&service, "/missing").await, "/missing en v2");
    // Set-Cookie and Cache-Control: no-store / private are never stored.
    for path in ["/cookie", "/cc/no-store", "/cc/private,_max-age=60"] {
        let before = upstream.calls();
        get(&service, path).await;
        get(&service, path).await;
        assert_eq!(upstream.calls(), before + 2, "{path} stored");
    }
    // A custom rule: 404s too.
    let upstream = Upstream::default();
    let service = tower::ServiceBuilder::new()
        .layer(
            builder()
                .accept(|r| r.status().is_success() || r.status() == StatusCode::NOT_FOUND)
                .build(),
        )
        .service(upstream.service());
    get(&service, "/missing").await;
    get(&service, "/missing").await;
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn cache_control_max_age_sets_the_lifespan() {
    let upstream = Upstream::default();
    let service = tower::ServiceBuilder::new()
        .layer(builder().build())
        .service(upstream.service());
    let path = "/cc/max-age=10";
    assert!(get(&service, path).await.ends_with("v1"));
    advance(Duration::from_secs(9)).await;
    assert!(get(&service, path).await.ends_with("v1"), "fresh at 9 s");
    advance(Duration::from_secs(2)).await;
    assert!(get(&service, path).await.ends_with("v2"), "expired at 11 s");
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_serves_the_old_response_and_refreshes_behind_it() {
    let upstream = Upstream::default();
    let layer = builder().build();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.service());
    let path = "/cc/max-age=10,_stale-while-revalidate=30";
    assert!(get(&service, path).await.ends_with("v1"));
    advance(Duration::from_secs(15)).await;
    let start = Instant::now();
    assert!(get(&service, path).await.ends_with("v1"), "stale, served");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "without waiting for upstream"
    );
    // The refresh finishes in the background.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(get(&service, path).await.ends_with("v2"));
    assert_eq!(layer.stats().refreshes_started, 1);
    // Past max-age + stale-while-revalidate of v2, a request waits.
    advance(Duration::from_secs(41)).await;
    let start = Instant::now();
    assert!(get(&service, path).await.ends_with("v3"));
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "waited for upstream"
    );
}

#[tokio::test(start_paused = true)]
async fn update_after_refreshes_in_the_background() {
    let upstream = Upstream::default();
    let layer = builder().update_after(Duration::from_secs(1)).build();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.service());
    assert!(get(&service, "/item/1").await.ends_with("v1"));
    for round in 2..=4 {
        advance(Duration::from_secs(2)).await;
        let start = Instant::now();
        // Still the previous version, at once; the refresh runs behind it.
        assert!(
            get(&service, "/item/1")
                .await
                .ends_with(&format!("v{}", round - 1))
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            get(&service, "/item/1")
                .await
                .ends_with(&format!("v{round}"))
        );
    }
    assert_eq!(upstream.calls(), 4);
    assert_eq!(layer.stats().refreshes_started, 3);
}

#[tokio::test(start_paused = true)]
async fn invalidation_by_key_and_statistics() {
    let upstream = Upstream::default();
    let layer = builder().build();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.service());
    get(&service, "/item/1").await;
    get(&service, "/item/2").await;
    assert!(
        layer
            .invalidate(("/item/1".into(), "en".into()))
            .await
            .unwrap()
    );
    assert!(
        !layer
            .invalidate(("/item/1".into(), "fr".into()))
            .await
            .unwrap()
    );
    assert!(get(&service, "/item/1").await.ends_with("v3"), "recomputed");
    assert!(get(&service, "/item/2").await.ends_with("v2"), "untouched");
    assert_eq!(layer.invalidate_all().await.unwrap(), 2);
    assert!(get(&service, "/item/2").await.ends_with("v4"));
    let stats = layer.stats();
    assert_eq!((stats.computations, stats.hits), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn a_slow_upstream_times_out_with_504_and_nothing_is_stored() {
    let upstream = Upstream::default();
    let layer = builder().timeout(Duration::from_secs(1)).build();
    let service = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(upstream.service());
    let (status, _) = send(&service, Method::GET, "/slow", "en").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _) = send(&service, Method::GET, "/slow", "en").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(upstream.calls(), 2);
    assert_eq!(layer.stats().timeouts, 2);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_error_reaches_every_collapsed_caller() {
    #[derive(Clone, Debug, PartialEq)]
    struct Down;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let service = tower::ServiceBuilder::new()
        .layer(builder().build())
        .service(tower::service_fn(move |_req: Request<Full<Bytes>>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<Response<Full<Bytes>>, _>(Down)
            }
        }));
    let request = || Request::get("/x").body(Full::<Bytes>::default()).unwrap();
    let (a, b) = tokio::join!(
        service.clone().oneshot(request()),
        service.clone().oneshot(request())
    );
    assert_eq!(a.unwrap_err(), Down);
    assert_eq!(b.unwrap_err(), Down);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn responses_persist_in_the_cache_beneath() {
    let dir = tempfile::tempdir().unwrap();
    let cache = flechette::sqlite::open(dir.path().join("pages.sqlite")).unwrap();
    let upstream = Upstream::default();
    let service = tower::ServiceBuilder::new()
        .layer(builder().cache(cache.clone()).build())
        .service(upstream.service());
    get(&service, "/item/1").await;
    // A new layer (a restarted service) over the same file: served from it.
    let service = tower::ServiceBuilder::new()
        .layer(builder().cache(cache).build())
        .service(upstream.service());
    assert_eq!(get(&service, "/item/1").await, "/item/1 en v1");
    assert_eq!(upstream.calls(), 1);
}
