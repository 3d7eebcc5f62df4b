//! A buffered HTTP response as the cache keeps it, and what its
//! `Cache-Control` header says about keeping it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::{Deserialize, Serialize};

use crate::Freshness;

/// A response with its body buffered: what the layer stores and serves.
///
/// Status, headers (in order, repeated names kept) and body bytes; the
/// body is shared, so serving a hit copies no bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedResponse {
    status: u16,
    headers: Vec<(String, Bytes)>,
    body: Bytes,
}

impl CachedResponse {
    /// A response of `status` with `headers` and `body`.
    pub fn new(status: http::StatusCode, headers: &http::HeaderMap, body: Bytes) -> Self {
        Self {
            status: status.as_u16(),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        Bytes::copy_from_slice(value.as_bytes()),
                    )
                })
                .collect(),
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> http::StatusCode {
        // Only codes `StatusCode` accepted are stored; a damaged record
        // reads as 500 rather than a panic.
        http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The body bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// What the `Cache-Control` header(s) say.
    pub fn cache_control(&self) -> CacheControl {
        let mut cc = CacheControl::default();
        for (_, value) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
        {
            cc.parse(&String::from_utf8_lossy(value));
        }
        cc
    }

    /// The response to send: status, headers and the shared body.
    /// Headers that no longer parse (a damaged stored record) are left out.
    pub fn to_response(&self) -> http::Response<Full<Bytes>> {
        let mut response = http::Response::new(Full::new(self.body.clone()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// The directives of a response's `Cache-Control` that matter to a shared
/// cache. Unknown directives are ignored; a malformed number reads as
/// absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheControl {
    /// `no-store`: never stored.
    pub no_store: bool,
    /// `no-cache`: must be revalidated on every use; not stored here.
    pub no_cache: bool,
    /// `private`: for one user's cache only; not stored by a shared cache.
    pub private: bool,
    /// `max-age=N`.
    pub max_age: Option<Duration>,
    /// `s-maxage=N`: for shared caches, in place of `max-age`.
    pub s_maxage: Option<Duration>,
    /// `stale-while-revalidate=N`: may be served stale this long after
    /// expiry while it is refreshed.
    pub stale_while_revalidate: Option<Duration>,
}

impl CacheControl {
    fn parse(&mut self, header: &str) {
        for directive in header.split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || value.and_then(|v| v.parse().ok()).map(Duration::from_secs);
            match name.to_ascii_lowercase().as_str() {
                "no-store" => self.no_store = true,
                "no-cache" => self.no_cache = true,
                "private" => self.private = true,
                "max-age" => self.max_age = seconds(),
                "s-maxage" => self.s_maxage = seconds(),
                "stale-while-revalidate" => self.stale_while_revalidate = seconds(),
                _ => {}
            }
        }
    }

    /// Whether a shared cache may store the response.
    pub fn storable(&self) -> bool {
        !(self.no_store || self.no_cache || self.private)
    }

    /// How long the response stays fresh for a shared cache, given the
    /// layer's own policy:
    ///
    /// * no `s-maxage`/`max-age`: the layer's policy;
    /// * `max-age=N, stale-while-revalidate=M`: refreshed in the background
    ///   after N, no longer served after N + M;
    /// * `max-age=N` alone: no longer served after N, and refreshed in the
    ///   background after the layer's `update_after` if that comes first.
    pub fn freshness(&self, layer: Freshness) -> Freshness {
        let Some(age) = self.s_maxage.or(self.max_age) else {
            return layer;
        };
        match self.stale_while_revalidate {
            Some(swr) => Freshness::new().update_after(age).expire_after(age + swr),
            None => Freshness {
                update_after: layer.update_after.filter(|u| *u < age),
                expire_after: Some(age),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(header: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        cc.parse(header);
        cc
    }

    #[test]
    fn directives_are_read_in_any_case_and_spacing() {
        let c = cc("Public, MAX-AGE=60 ,s-maxage=\"30\", stale-while-revalidate=5");
        assert_eq!(c.max_age, Some(Duration::from_secs(60)));
        assert_eq!(c.s_maxage, Some(Duration::from_secs(30)));
        assert_eq!(c.stale_while_revalidate, Some(Duration::from_secs(5)));
        assert!(c.storable());
        for header in ["no-store", "private", "no-cache", "max-age=5, private"] {
            assert!(!cc(header).storable(), "{header}");
        }
        assert_eq!(cc("max-age=soon").max_age, None);
        assert_eq!(cc("").max_age, None);
    }

    #[test]
    fn freshness_follows_shared_cache_rules() {
        let layer = Freshness::new().update_after(Duration::from_secs(10));
        assert_eq!(cc("public").freshness(layer), layer);
        let f = cc("max-age=60").freshness(layer);
        assert_eq!(f.update_after, Some(Duration::from_secs(10)));
        assert_eq!(f.expire_after, Some(Duration::from_secs(60)));
        let f = cc("max-age=5").freshness(layer);
        assert_eq!(f.update_after, None, "refresh after expiry is pointless");
        let f = cc("max-age=60, s-maxage=20, stale-while-revalidate=40").freshness(layer);
        assert_eq!(f.update_after, Some(Duration::from_secs(20)));
        assert_eq!(f.expire_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_response_survives_the_round_trip_through_storage() {
        let mut headers = http::HeaderMap::new();
        headers.append("set-cookie", "a=1".parse().unwrap());
        headers.append("set-cookie", "b=2".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        let r = CachedResponse::new(http::StatusCode::OK, &headers, Bytes::from_static(b"hi"));
        let bytes = flechette_core::encoding::to_vec(&r).unwrap();
        let back: CachedResponse = flechette_core::encoding::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        let response = back.to_response();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
    }
}
