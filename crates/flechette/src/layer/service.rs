//! The service a [`ResponseCacheLayer`](super::ResponseCacheLayer) wraps
//! around an inner one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use serde::Serialize;
use tower_service::Service;

use super::{CachedResponse, Shared, Uncached};
use crate::CallError;

/// The body of a response from [`ResponseCache`]: buffered bytes for keyed
/// requests (served from the cache or just stored), the inner service's own
/// body for requests passed through.
pub type ResponseBody<B> = Either<Full<Bytes>, B>;

/// The future of [`ResponseCache::call`].
pub type ResponseFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody<B>>, E>> + Send>>;

/// A service answering keyed requests from the cache and the rest from the
/// inner service; made by [`ResponseCacheLayer`](super::ResponseCacheLayer).
pub struct ResponseCache<S, K> {
    inner: S,
    shared: Arc<Shared<K>>,
}

impl<S, K> ResponseCache<S, K> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<K>>) -> Self {
        Self { inner, shared }
    }
}

impl<S: Clone, K> Clone for ResponseCache<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, K> std::fmt::Debug for ResponseCache<S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, K, ReqBody, ResBody> Service<http::Request<ReqBody>> for ResponseCache<S, K>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Clone + Send + Sync + 'static,
    K: Serialize + Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Answers a keyed request from the cache, computing (once, however
    /// many identical requests arrive meanwhile) with the inner service on
    /// a miss or a refresh; passes other requests through.
    ///
    /// The inner service runs in a task of its own: dropping the returned
    /// future stops the waiting, not the upstream call, whose response is
    /// still stored and handed to the other waiters.
    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // The clone polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let (parts, body) = request.into_parts();
        let Some(key) = (shared.key)(&parts) else {
            let response = ready.call(http::Request::from_parts(parts, body));
            return Box::pin(async move { Ok(response.await?.map(Either::Right)) });
        };
        let request = http::Request::from_parts(parts, body);
        Box::pin(async move {
            let upstream = Arc::clone(&shared);
            let found = shared
                .cached
                .call_fn((key,), move |_| fetch(ready, request, upstream))
                .await;
            let response = match found {
                Ok(response) => response.to_response(),
                Err(e) => answer::<S::Error>(&e)?,
            };
            Ok(response.map(Either::Left))
        })
    }
}

/// Calls the inner service and buffers its response; a response the layer
/// does not accept comes back as the error that keeps it out of the cache.
async fn fetch<S, K, ReqBody, ResBody>(
    mut inner: S,
    request: http::Request<ReqBody>,
    shared: Arc<Shared<K>>,
) -> Result<CachedResponse, Uncached>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Error: Send + Sync + 'static,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let response = inner
        .call(request)
        .await
        .map_err(|e| Uncached::Inner(Arc::new(e)))?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| Uncached::Body(e.into().to_string()))?
        .to_bytes();
    let response = CachedResponse::new(parts.status, &parts.headers, bytes);
    if shared.storable(&response) {
        Ok(response)
    } else {
        Err(Uncached::Rejected(response))
    }
}

/// The answer to a request whose computation produced no cached response.
fn answer<E: Clone + 'static>(
    error: &CallError<Uncached>,
) -> Result<http::Response<Full<Bytes>>, E> {
    let (status, why) = match error {
        CallError::Failed(uncached) => match &**uncached {
            Uncached::Rejected(response) => return Ok(response.to_response()),
            Uncached::Inner(e) => match e.downcast_ref::<E>() {
                Some(e) => return Err(e.clone()),
                // Another service behind the same layer computed this key.
                None => (http::StatusCode::BAD_GATEWAY, "upstream failed".to_owned()),
            },
            Uncached::Body(e) => (
                http::StatusCode::BAD_GATEWAY,
                format!("upstream body failed: {e}"),
            ),
        },
        CallError::Timeout(_) => (http::StatusCode::GATEWAY_TIMEOUT, error.to_string()),
        _ => (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    tracing::warn!(%status, "response cache: {why}");
    let mut response = http::Response::new(Full::new(Bytes::from(why)));
    *response.status_mut() = status;
    Ok(response)
}
