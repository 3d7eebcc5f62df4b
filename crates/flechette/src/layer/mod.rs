//! A tower [`Layer`](tower_layer::Layer) that caches the HTTP responses of
//! a [`Service`](tower_service::Service) (feature `tower`).
//!
//! Each request is keyed by a closure over its method, URI and headers;
//! requests without a key pass through untouched. A keyed request is a
//! call of one [`CachedFn`] whose argument is the key, so everything a
//! cached function does applies: concurrent identical requests collapse
//! into one upstream call, `update_after` refreshes in the background while
//! the old response is served, `expire_after` forces a fresh one, a timeout
//! answers `504 Gateway Timeout`, invalidation by key, statistics, and any
//! [`Cache`] (memory, file, SQLite, Redis) for the stored responses.
//!
//! Response bodies are buffered and kept as bytes ([`CachedResponse`]).
//! Only responses the layer accepts are stored: by default status 200
//! without `Set-Cookie`, and never one whose `Cache-Control` says
//! `no-store`, `no-cache` or `private`. A response that is not stored is
//! still the answer to every request collapsed onto it. `max-age`,
//! `s-maxage` and `stale-while-revalidate` set each stored response's
//! lifespan ([`CacheControl::freshness`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use flechette::layer::ResponseCacheLayer;
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let layer = ResponseCacheLayer::builder("pages", |req: &http::request::Parts| {
//!     (req.method == http::Method::GET).then(|| req.uri.path().to_owned())
//! })
//! .update_after(Duration::from_secs(60))
//! .build();
//!
//! let service = ServiceBuilder::new().layer(layer.clone()).service_fn(
//!     |req: http::Request<Full<Bytes>>| async move {
//!         let page = format!("page {}", req.uri().path());
//!         Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(page))))
//!     },
//! );
//!
//! let request = http::Request::get("/about").body(Full::default()).unwrap();
//! let response = service.clone().oneshot(request).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "page /about");
//! assert_eq!(layer.stats().computations, 1);
//! # }
//! ```

mod response;
mod service;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// The `http` crate whose types the layer speaks (`Request`, `Response`,
/// `request::Parts` for key closures), so a service needs no dependency of
/// its own to name them.
pub use http;
pub use response::{CacheControl, CachedResponse};
pub use service::{ResponseBody, ResponseCache, ResponseFuture};

use crate::{Cache, CacheError, CachedFn, CachedFnBuilder, Freshness, Stats};

type KeyFn<K> = dyn Fn(&http::request::Parts) -> Option<K> + Send + Sync;
type AcceptFn = dyn Fn(&CachedResponse) -> bool + Send + Sync;

/// Why a computed response is not a cached value: shared by every request
/// collapsed onto the computation.
#[derive(thiserror::Error)]
pub(crate) enum Uncached {
    /// The layer did not accept it; it is still the answer.
    #[error("response not accepted for caching (status {})", .0.status())]
    Rejected(CachedResponse),
    /// The inner service failed (its error, type-erased).
    #[error("upstream service failed")]
    Inner(Arc<dyn std::any::Any + Send + Sync>),
    /// The response body failed while it was buffered.
    #[error("upstream body failed: {0}")]
    Body(String),
}

impl std::fmt::Debug for Uncached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A [`Layer`](tower_layer::Layer) caching responses; see the
/// [module](self). Cheap to clone: clones (and every service it wraps)
/// share one cache, so the key must tell their requests apart (include
/// the path).
pub struct ResponseCacheLayer<K> {
    shared: Arc<Shared<K>>,
}

pub(crate) struct Shared<K> {
    pub(crate) cached: CachedFn<(K,), CachedResponse, Uncached>,
    pub(crate) key: Box<KeyFn<K>>,
    accept: Box<AcceptFn>,
    cache_control: bool,
}

impl<K> Shared<K> {
    /// Whether `response` is stored.
    pub(crate) fn storable(&self, response: &CachedResponse) -> bool {
        (self.accept)(response) && (!self.cache_control || response.cache_control().storable())
    }
}

impl<K> Clone for ResponseCacheLayer<K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> std::fmt::Debug for ResponseCacheLayer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCacheLayer").finish_non_exhaustive()
    }
}

impl<S, K> tower_layer::Layer<S> for ResponseCacheLayer<K> {
    type Service = ResponseCache<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache::new(inner, Arc::clone(&self.shared))
    }
}

impl<K> ResponseCacheLayer<K>
where
    K: Serialize + Send + Sync + 'static,
{
    /// A builder for a layer named `name` (the cached function's name in
    /// stored records), keying requests with `key`; `None` passes the
    /// request through uncached.
    pub fn builder(
        name: impl Into<String>,
        key: impl Fn(&http::request::Parts) -> Option<K> + Send + Sync + 'static,
    ) -> ResponseCacheLayerBuilder<K> {
        ResponseCacheLayerBuilder {
            inner: CachedFn::builder(name).args(["request"]),
            key: Box::new(key),
            accept: Box::new(|r: &CachedResponse| {
                r.status() == http::StatusCode::OK && r.header("set-cookie").is_none()
            }),
            freshness: Freshness::FOREVER,
            cache_control: true,
        }
    }

    /// Drops the response stored for `key` (from the in-process tier and
    /// the cache); whether there was one.
    ///
    /// # Errors
    ///
    /// When the key cannot be encoded or the storage fails.
    pub async fn invalidate(&self, key: K) -> Result<bool, CacheError> {
        self.shared.cached.invalidate((key,)).await
    }

    /// Drops every stored response of this layer; how many.
    ///
    /// # Errors
    ///
    /// When the storage fails.
    pub async fn invalidate_all(&self) -> Result<usize, CacheError> {
        self.shared.cached.invalidate_all().await
    }

    /// What the layer has done: hits, stale hits, misses, upstream calls
    /// (`loads`), collapsed requests, refreshes, timeouts.
    pub fn stats(&self) -> Stats {
        self.shared.cached.stats()
    }

    /// The cached function behind the layer (its stored calls can be
    /// queried like any other's).
    pub fn cached_fn(&self) -> &CachedFn<(K,), CachedResponse, impl Send + Sync + 'static> {
        &self.shared.cached
    }
}

/// Configures a [`ResponseCacheLayer`].
#[must_use]
pub struct ResponseCacheLayerBuilder<K> {
    inner: CachedFnBuilder<(K,), CachedResponse>,
    key: Box<KeyFn<K>>,
    accept: Box<AcceptFn>,
    freshness: Freshness,
    cache_control: bool,
}

impl<K> std::fmt::Debug for ResponseCacheLayerBuilder<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCacheLayerBuilder")
            .field("freshness", &self.freshness)
            .field("cache_control", &self.cache_control)
            .finish_non_exhaustive()
    }
}

impl<K> ResponseCacheLayerBuilder<K>
where
    K: Serialize + Send + Sync + 'static,
{
    /// Which responses are stored (default: status 200 without
    /// `Set-Cookie`). `Cache-Control: no-store`, `no-cache` and `private`
    /// are never stored unless [`cache_control(false)`](Self::cache_control).
    pub fn accept(mut self, f: impl Fn(&CachedResponse) -> bool + Send + Sync + 'static) -> Self {
        self.accept = Box::new(f);
        self
    }

    /// Whether responses' `Cache-Control` decides what is stored and for
    /// how long (default `true`).
    pub fn cache_control(mut self, obey: bool) -> Self {
        self.cache_control = obey;
        self
    }

    /// Refresh a response in the background once it is this old, serving
    /// the old one meanwhile.
    pub fn update_after(mut self, d: Duration) -> Self {
        self.freshness.update_after = Some(d);
        self
    }

    /// Stop serving a response once it is this old.
    pub fn expire_after(mut self, d: Duration) -> Self {
        self.freshness.expire_after = Some(d);
        self
    }

    /// Answer `504 Gateway Timeout` (and store nothing) when the upstream
    /// takes longer than `d`; the upstream call is dropped.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.inner = self.inner.timeout(d);
        self
    }

    /// At most this many responses (or this much weight) in process.
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.inner = self.inner.capacity(capacity);
        self
    }

    /// Weigh each response by its body length (in KiB, at least 1), so
    /// [`capacity`](Self::capacity) bounds memory rather than a count.
    pub fn weigh_by_body(mut self) -> Self {
        self.inner = self.inner.weigher(|r: &CachedResponse| {
            u32::try_from(r.body().len() / 1024 + 1).unwrap_or(u32::MAX)
        });
        self
    }

    /// The module recorded with stored responses.
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.inner = self.inner.module(module);
        self
    }

    /// A version recorded with (and keying) stored responses: change it to
    /// stop serving responses stored by an older service.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.inner = self.inner.version(version);
        self
    }

    /// The cache stored responses go to (default: the task's active cache).
    pub fn cache(mut self, cache: impl Into<Cache>) -> Self {
        self.inner = self.inner.cache(cache);
        self
    }

    /// The layer.
    pub fn build(self) -> ResponseCacheLayer<K> {
        let (layer, obey) = (self.freshness, self.cache_control);
        let cached = self
            .inner
            .lifespan(move |r: &CachedResponse| {
                if obey {
                    r.cache_control().freshness(layer)
                } else {
                    layer
                }
            })
            .build_unbound();
        ResponseCacheLayer {
            shared: Arc::new(Shared {
                cached,
                key: self.key,
                accept: self.accept,
                cache_control: self.cache_control,
            }),
        }
    }
}
