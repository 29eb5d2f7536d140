//! The plumbing of the tests that run the `kv-fleet` binary as processes
//! (`kv_processes`, `kv_processes_redis`): start a process and learn its
//! address, kill it, talk HTTP to it with bounded waits, and poll a
//! condition up to a deadline. Every child process is killed when its
//! handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Bounds every start-up and request: only catches hangs.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A running `kv-fleet` process; killed (SIGKILL) and reaped on drop.
pub struct Proc {
    /// What the test calls it, in its failure messages.
    pub name: String,
    /// The process itself.
    pub child: Child,
    /// Where it listens, as it said on stdout.
    pub addr: SocketAddr,
}

impl Proc {
    /// Starts `kv-fleet` with `args` and waits for the line that says where
    /// it listens (`kv-fleet ... listening on ADDR`).
    pub fn start(name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv-fleet"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start kv-fleet: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads every line, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let mut proc = Proc {
            name: name.to_string(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(addr) => proc.addr = addr.parse().expect("a socket address"),
            Err(_) => {
                let status = proc.child.try_wait();
                panic!("{name} did not say where it listens within {DEADLINE:?} ({status:?})")
            }
        }
        proc
    }

    /// `http://ADDR{path}` on this process.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL: no shutdown, no goodbye; its connections reset.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A file that is removed on drop.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A plain-HTTP hyper client with full bodies.
pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A new [`HttpClient`] on the tokio runtime.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request, bounded so a hang fails the test: (status, body).
pub async fn send(client: &HttpClient, method: &str, url: &str, body: &str) -> (u16, String) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = tokio::time::timeout(DEADLINE, client.request(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {url} hung"));
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = tokio::time::timeout(DEADLINE, res.into_body().collect())
                .await
                .unwrap_or_else(|_| panic!("{method} {url}: body hung"))
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            (status, body)
        }
        Err(e) => (0, format!("connection error: {e}")),
    }
}

/// Polls `cond` until it holds; fails the test after `deadline`.
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    deadline: Duration,
    mut cond: impl FnMut() -> F,
) {
    let end = Instant::now() + deadline;
    while !cond().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `proc` answers `GET /healthz` with 200 (ready to serve).
pub async fn ready(client: &HttpClient, proc: &Proc) -> bool {
    send(client, "GET", &proc.url("/healthz"), "").await.0 == 200
}

/// The gateways' stack without its shards: the tables of
/// deploy/gateway.yaml's gateway.toml (quorum W=2 and R=2 of 3, strict
/// shards), with a cache of `cache_ttl`. The test appends its shards.
pub fn gateway_tables(cache_ttl: &str) -> String {
    format!(
        r#"
[cache]
ttl = "{cache_ttl}"

[retry]
max_attempts = 3
timeout = "5s"

[shard]
hops = 0

[balance]
ready_timeout = "250ms"

[balance.quorum]
n = "all"
read = 2
write = 2

[breaker]
consecutive_failures = 5
open_duration = "1s"

[timeout]
request = "2s"
"#
    )
}
