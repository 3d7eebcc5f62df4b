//! A load test of examples/axum_service.rs: the example runs as its own
//! process on a free loopback port, and this test drives it with
//! concurrent keep-alive clients for a bounded time, then reads its
//! statistics.
//!
//! It prints `requests/s = N`, `p50 ms = N`, `p99 ms = N` and
//! `upstream calls = N`, and checks what the caches promise, never how
//! fast the machine is:
//!
//! * upstream calls ≤ keys × refresh windows + keys (one computation per
//!   key, then at most one background refresh per key per `update_after`);
//! * after warm-up no request misses the in-process tier, so no client
//!   waits for the upstream;
//! * every request succeeds.
//!
//! `FLECHETTE_LOAD_SECS` sets the load time (default 5 s);
//! `cargo test --test axum_load -- --nocapture` shows the report.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;

/// The example's refresh interval (`update_after`).
const REFRESH: Duration = Duration::from_secs(1);
const ITEMS: u64 = 20;
const PAGES: u64 = 5;
const CLIENTS: usize = 16;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps")
        .join("examples")
        .join(name)
}

/// Starts the example on a free port; its address. The child's output is
/// drained for its whole life (a closed pipe would make its writes fail).
fn start() -> (Server, SocketAddr) {
    let mut child = Command::new(example("axum_service"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example runs (cargo test builds it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (Server(child), addr)
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(sender: &mut SendRequest<Empty<Bytes>>, method: &str, path: &str) -> (u16, Bytes) {
    sender.ready().await.unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

fn path(i: u64) -> String {
    if i < ITEMS {
        format!("/item/{i}")
    } else {
        format!("/page/p{}", i - ITEMS)
    }
}

async fn stats(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = send(&mut connect(addr).await, "GET", "/admin/stats").await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

fn misses(stats: &serde_json::Value) -> u64 {
    stats["item"]["misses"].as_u64().unwrap() + stats["page"]["misses"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_service_under_load() {
    let secs: u64 = std::env::var("FLECHETTE_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let (_server, addr) = start();
    let keys = ITEMS + PAGES;

    // Warm-up: every key once.
    let warm_started = Instant::now();
    let mut sender = connect(addr).await;
    for i in 0..keys {
        let (status, _) = send(&mut sender, "GET", &path(i)).await;
        assert_eq!(status, 200, "{}", path(i));
    }
    let warm = stats(addr).await;
    assert_eq!(warm["upstream_calls"].as_u64().unwrap(), keys);

    // Load: CLIENTS keep-alive connections, each cycling over the keys.
    let load_started = Instant::now();
    let deadline = load_started + Duration::from_secs(secs);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        clients.spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::new();
            let mut i = c as u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                let (status, body) = send(&mut sender, "GET", &path(i % keys)).await;
                latencies.push(start.elapsed());
                assert_eq!(status, 200);
                assert!(!body.is_empty());
                i += 7;
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = clients.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = load_started.elapsed();
    let after = stats(addr).await;

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    let upstream = after["upstream_calls"].as_u64().unwrap();
    println!(
        "clients = {CLIENTS}, keys = {keys}, seconds = {:.1}",
        elapsed.as_secs_f64()
    );
    println!("requests = {}", latencies.len());
    println!(
        "requests/s = {:.0}",
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!("p50 ms = {:.2}", pct(0.50).as_secs_f64() * 1e3);
    println!("p99 ms = {:.2}", pct(0.99).as_secs_f64() * 1e3);
    println!("upstream calls = {upstream}");

    // Refresh windows over the whole run, warm-up included, rounded up.
    let run = warm_started.elapsed();
    let windows = run.as_millis().div_ceil(REFRESH.as_millis()) as u64;
    assert!(
        upstream <= keys * windows + keys,
        "{upstream} upstream calls > {keys} keys × {windows} windows + {keys}"
    );
    assert_eq!(
        misses(&after),
        misses(&warm),
        "after warm-up every request was answered in process (fresh or stale)"
    );
    assert!(
        after["item"]["refreshes_started"].as_u64().unwrap() > 0 || run < REFRESH * 2,
        "values older than update_after were refreshed"
    );
}

/// A service whose stdout is closed before it writes a line keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_survives_its_stdout_closing() {
    // Nobody reads its output, so it tells its address through a file.
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let mut child = Command::new(example("axum_service"))
        .args(["--port", "0", "--addr-file"])
        .arg(&addr_file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example runs (cargo test builds it)");
    drop(child.stdout.take()); // closed before the example's first line
    let mut server = Server(child);
    // Until it listens (the file is written after the bind), or dies.
    let addr: SocketAddr = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("the service died when its stdout closed: {status}");
        }
        match std::fs::read_to_string(&addr_file) {
            Ok(text) => break text.trim().parse().unwrap(),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let mut sender = connect(addr).await;
    // By now it has written its lines into the closed pipe.
    for _ in 0..3 {
        let (status, _) = send(&mut sender, "GET", "/item/1").await;
        assert_eq!(status, 200);
    }
    assert!(server.0.try_wait().unwrap().is_none(), "still running");
}
