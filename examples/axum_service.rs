//! An axum service in front of a slow upstream (50 ms a call), cached two
//! ways:
//!
//! * `GET /item/{id}`: a handler wrapped by `#[cached]`, keyed by the item
//!   id and ignoring its `State` parameter;
//! * `GET /page/{name}`: a plain handler behind the tower
//!   [`ResponseCacheLayer`], keyed by the request path.
//!
//! Both refresh in the background one second after a value was computed
//! (`update_after`), and nothing expires, so after warm-up no client waits
//! for the upstream. Admin routes:
//!
//! * `GET /admin/stats`: both caches' statistics and the upstream call
//!   count, as JSON;
//! * `POST /admin/invalidate/item/{id}` and `POST /admin/invalidate/page/{name}`:
//!   drop one entry (by argument, by key).
//!
//! ```text
//! cargo run --example axum_service                  # serves on 127.0.0.1:3000
//! cargo run --example axum_service -- --port 0      # any free port (printed)
//! cargo run --example axum_service -- --demo        # a scripted tour, then exits
//! ```
//!
//! `tests/axum_load.rs` starts this binary and drives it with concurrent
//! clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flechette::cached;
use flechette::layer::ResponseCacheLayer;
use serde::{Deserialize, Serialize};

/// Refresh in the background after this long.
const REFRESH: Duration = Duration::from_secs(1);

/// The slow upstream: counts its calls.
#[derive(Default)]
struct Upstream {
    calls: AtomicU64,
}

impl Upstream {
    async fn fetch(&self, what: String) -> (String, u64) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        (what, n)
    }
}

#[derive(Clone, Default)]
struct App {
    upstream: Arc<Upstream>,
}

/// The key of `/item/{id}`: an extractor that is also `Serialize` (axum's
/// `Path` is not, so it cannot be a key itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ItemId(u64);

impl<S: Send + Sync> FromRequestParts<S> for ItemId {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<u64>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self(id))
    }
}

/// What `/item/{id}` answers: cached as a value, sent as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Item {
    id: u64,
    name: String,
    /// Which upstream call produced it.
    upstream_call: u64,
}

impl IntoResponse for Item {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// `GET /item/{id}`: the `State` is not part of the key.
#[cached(
    name = "item",
    module = "axum_service",
    ignore(app),
    update_after = "1s"
)]
async fn item(app: State<App>, id: ItemId) -> Item {
    let (name, upstream_call) = app.upstream.fetch(format!("item {}", id.0)).await;
    Item {
        id: id.0,
        name,
        upstream_call,
    }
}

/// `GET /page/{name}`: plain; the layer caches its responses.
async fn page(State(app): State<App>, Path(name): Path<String>) -> impl IntoResponse {
    let (text, call) = app.upstream.fetch(format!("page {name}")).await;
    (
        [("cache-control", "public")],
        format!("{text} (upstream call {call})"),
    )
}

type PageLayer = ResponseCacheLayer<String>;

fn page_layer() -> PageLayer {
    ResponseCacheLayer::builder("page", |req: &axum::http::request::Parts| {
        (req.method == axum::http::Method::GET).then(|| req.uri.path().to_owned())
    })
    .module("axum_service")
    .update_after(REFRESH)
    .build()
}

fn router(app: App, pages: PageLayer) -> Router {
    let admin_pages = pages.clone();
    let invalidate_page = move |Path(name): Path<String>| {
        let pages = admin_pages.clone();
        async move {
            let dropped = pages
                .invalidate(format!("/page/{name}"))
                .await
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok::<_, (StatusCode, String)>(Json(serde_json::json!({ "invalidated": dropped })))
        }
    };
    let stats_pages = pages.clone();
    let stats = move |State(app): State<App>| {
        let pages = stats_pages.clone();
        async move {
            Json(serde_json::json!({
                "item": item_cached().stats(),
                "page": pages.stats(),
                "upstream_calls": app.upstream.calls.load(Ordering::SeqCst),
            }))
        }
    };
    Router::new()
        .route("/item/{id}", get(item))
        .route("/page/{name}", get(page).layer(pages))
        .route("/admin/stats", get(stats))
        .route("/admin/invalidate/item/{id}", post(invalidate_item))
        .route("/admin/invalidate/page/{name}", post(invalidate_page))
        .with_state(app)
}

/// `POST /admin/invalidate/item/{id}`: by argument.
async fn invalidate_item(
    Path(id): Path<u64>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let dropped = item_cached()
        .invalidate((ItemId(id),))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(serde_json::json!({ "invalidated": dropped })))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = args.iter().any(|a| a == "--demo");
    let port = match args.iter().position(|a| a == "--port") {
        Some(i) => args.get(i + 1).ok_or("--port needs a number")?.parse()?,
        None if demo => 0,
        None => 3000,
    };
    let app = App::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    // `--addr-file PATH`: where a supervisor (or a test) finds the address,
    // written whole (to a temporary name, then renamed).
    if let Some(i) = args.iter().position(|a| a == "--addr-file") {
        let path = std::path::PathBuf::from(args.get(i + 1).ok_or("--addr-file needs a path")?);
        let partial = path.with_extension("partial");
        std::fs::write(&partial, addr.to_string())?;
        std::fs::rename(&partial, &path)?;
    }
    let server = axum::serve(listener, router(app.clone(), page_layer()));
    if demo {
        tokio::spawn(async move { server.await });
        return tour(addr).await;
    }
    // A service must not die because its log pipe went away: these lines
    // are written if stdout still listens, and dropped otherwise.
    say(format_args!("listening on http://{addr}"));
    say(format_args!(
        "try: curl http://{addr}/item/1   curl http://{addr}/page/home   curl http://{addr}/admin/stats"
    ));
    server.await?;
    Ok(())
}

/// Writes a line to stdout, ignoring a closed stdout (`println!` panics).
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// A scripted tour: requests and what the caches did.
async fn tour(addr: std::net::SocketAddr) -> Result<(), Error> {
    let client = Client { addr };
    let show = |path: &str, (status, body): (u16, String)| println!("{path} -> {status} {body}");
    for path in ["/item/1", "/item/1", "/page/home", "/page/home"] {
        show(path, client.request("GET", path).await?);
    }
    // Ten concurrent requests for a new item: one upstream call.
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..10 {
        burst.spawn(async move { client.request("GET", "/item/2").await });
    }
    let mut bodies = std::collections::BTreeSet::new();
    while let Some(response) = burst.join_next().await {
        bodies.insert(response??.1);
    }
    println!("10 concurrent /item/2 -> {} distinct body", bodies.len());
    let path = "/admin/invalidate/item/1";
    show(path, client.request("POST", path).await?);
    show("/item/1", client.request("GET", "/item/1").await?);
    let (_, stats) = client.request("GET", "/admin/stats").await?;
    let stats: serde_json::Value = serde_json::from_str(&stats)?;
    println!("upstream calls: {}", stats["upstream_calls"]);
    println!("item computations: {}", stats["item"]["computations"]);
    println!(
        "page hits: {}, computations: {}",
        stats["page"]["hits"], stats["page"]["computations"]
    );
    Ok(())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A minimal HTTP/1.1 client over hyper, one connection per request.
#[derive(Clone, Copy)]
struct Client {
    addr: std::net::SocketAddr,
}

impl Client {
    async fn request(self, method: &str, path: &str) -> Result<(u16, String), Error> {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
