//! A storage node: an in-memory map `key -> (value, version, tombstone)` behind
//! an HTTP API, with a bounded, simulated capacity and fault injection.
//!
//! Capacity: at most `concurrency` requests are served at once, each taking
//! `service_time` (times the slow factor); the others queue. So a node's
//! throughput is `concurrency / service_time`, whatever the CPU.
//!
//! Routes:
//! - `GET /kv/{key}`: `200` with the [`Entry`] and its key as JSON (a
//!   [`DumpEntry`]; tombstones included, so a quorum read can tell "deleted"
//!   from "never written"), `404` if unknown;
//! - `PUT /kv/{key}` with an [`Entry`] as JSON: stores it if its version is newer
//!   than the stored one (last-writer-wins) and answers the stored entry, as `GET` does;
//! - both answers carry the entry's version in the `kv-version` header too;
//! - `DELETE /kv/{key}` with a [`Version`] as JSON: stores a tombstone at that version;
//! - a node shutting down answers `503` with `Retry-After: 1`;
//! - `GET /dump`: every entry with its key, for a restarted node to copy a peer;
//! - `GET /healthz`: `200 ok` once the node is ready, `503` while it copies
//!   its shard from its peers (the `kv-fleet` binary's catch-up; a node of
//!   the in-process fleet is ready at once).
//!
//! Tombstones are kept for the node's lifetime, so they outlive any replica
//! that missed the delete and a stale value cannot come back.
//!
//! The same node serves the in-process fleet ([`start`], controlled through a
//! [`NodeControl`]) and the `kv-fleet` binary's `--role node` ([`Node`] and
//! its [`router`](Node::router), served on the address the user gives).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::common::server::{self, ServerHandle};
use super::hlc::{Version, VERSION_HEADER};

/// One stored value (or tombstone) with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The value; empty for a tombstone.
    #[serde(default)]
    pub value: String,
    /// The write's version.
    pub version: Version,
    /// `true` if the key was deleted at `version`.
    #[serde(default)]
    pub tombstone: bool,
}

/// One line of `GET /dump`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpEntry {
    /// The key.
    pub key: String,
    /// Its entry.
    #[serde(flatten)]
    pub entry: Entry,
}

/// A node's capacity.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    /// Requests served at once.
    pub concurrency: usize,
    /// Time each request takes.
    pub service_time: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            concurrency: 32,
            service_time: Duration::from_millis(1),
        }
    }
}

struct Inner {
    name: String,
    config: NodeConfig,
    map: Mutex<HashMap<String, Entry>>,
    permits: Semaphore,
    slow: AtomicU32,
    /// Fraction of requests to fail, as `f64` bits.
    flaky: AtomicU64,
    served: AtomicU64,
    ready: AtomicBool,
}

/// A node's state and routes, not yet served; clones share the state.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// An empty node named `name`; `ready` is what `/healthz` says until
    /// [`set_ready`](Self::set_ready).
    pub fn new(name: &str, config: NodeConfig, ready: bool) -> Node {
        Node {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                config,
                map: Mutex::new(HashMap::new()),
                permits: Semaphore::new(config.concurrency.max(1)),
                slow: AtomicU32::new(1),
                flaky: AtomicU64::new(0f64.to_bits()),
                served: AtomicU64::new(0),
                ready: AtomicBool::new(ready),
            }),
        }
    }

    /// The node's routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
            .route("/dump", get(dump))
            .route("/healthz", get(healthz))
            .with_state(self.inner.clone())
    }

    /// Reports ready on `/healthz` from now on.
    pub fn set_ready(&self) {
        self.inner.ready.store(true, Ordering::SeqCst);
    }

    /// Merges a peer's `/dump` body (newer versions win); the number of
    /// entries in it.
    pub fn load_dump(&self, body: &[u8]) -> Result<usize, String> {
        let entries: Vec<DumpEntry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let n = entries.len();
        for e in entries {
            self.inner.apply(&e.key, e.entry);
        }
        Ok(n)
    }
}

/// Controls one running node; clones control the same node.
#[derive(Clone)]
pub struct NodeControl {
    inner: Arc<Inner>,
    server: ServerHandle,
}

impl std::fmt::Debug for NodeControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeControl")
            .field("name", &self.inner.name)
            .field("addr", &self.addr())
            .finish()
    }
}

/// Starts a node named `name` on an ephemeral loopback port.
pub async fn start(name: &str, config: NodeConfig) -> std::io::Result<NodeControl> {
    let node = Node::new(name, config, true);
    let server = server::serve_local(node.router()).await?;
    Ok(NodeControl {
        inner: node.inner,
        server,
    })
}

impl NodeControl {
    /// The node's name (`s1r2`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Crashes the node: connections refused, open ones reset.
    pub async fn kill(&self) {
        self.server.kill().await;
    }

    /// Stops the node gracefully.
    pub async fn stop(&self) {
        self.server.stop().await;
    }

    /// Whether the node still accepts connections.
    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// Multiplies the service time by `factor` (1 = normal speed).
    pub fn set_slow(&self, factor: u32) {
        self.inner.slow.store(factor.max(1), Ordering::Relaxed);
    }

    /// Makes that fraction of requests (0.0 to 1.0) answer `500`.
    pub fn set_flaky(&self, rate: f64) {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.inner.flaky.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Requests answered so far (`/kv` routes only, faults included).
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// The stored entry for `key`, read directly (for tests and repair checks).
    pub fn entry(&self, key: &str) -> Option<Entry> {
        self.inner
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Stores `entry` directly if it is newer (for tests that stage stale replicas).
    pub fn apply(&self, key: &str, entry: Entry) -> Entry {
        self.inner.apply(key, entry)
    }
}

impl Inner {
    fn apply(&self, key: &str, entry: Entry) -> Entry {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(stored) if stored.version >= entry.version => stored.clone(),
            _ => {
                map.insert(key.to_owned(), entry.clone());
                entry
            }
        }
    }

    /// Takes a capacity slot for the service time, then decides whether this
    /// request fails (flaky). `Err` is the response to send instead.
    async fn serve(&self) -> Result<(), Response> {
        let _permit = self.permits.acquire().await.map_err(|_| unavailable())?;
        let factor = self.slow.load(Ordering::Relaxed);
        tokio::time::sleep(self.config.service_time * factor).await;
        self.served.fetch_add(1, Ordering::Relaxed);
        let rate = f64::from_bits(self.flaky.load(Ordering::Relaxed));
        if rate > 0.0 && rand::random::<f64>() < rate {
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response());
        }
        Ok(())
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        "node shutting down",
    )
        .into_response()
}

/// The `200` answer holding `entry` of `key`, its version also in the
/// [`VERSION_HEADER`] header.
fn stored(key: String, entry: Entry) -> Response {
    let version = entry.version.to_header();
    ([(VERSION_HEADER, version)], Json(DumpEntry { key, entry })).into_response()
}

async fn get_key(State(node): State<Arc<Inner>>, Path(key): Path<String>) -> Response {
    if let Err(res) = node.serve().await {
        return res;
    }
    let entry = node
        .map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    match entry {
        Some(entry) => stored(key, entry),
        None => (StatusCode::NOT_FOUND, "no such key").into_response(),
    }
}

async fn put_key(
    State(node): State<Arc<Inner>>,
    Path(key): Path<String>,
    Json(entry): Json<Entry>,
) -> Response {
    if let Err(res) = node.serve().await {
        return res;
    }
    let kept = node.apply(&key, entry);
    stored(key, kept)
}

async fn delete_key(
    State(node): State<Arc<Inner>>,
    Path(key): Path<String>,
    Json(version): Json<Version>,
) -> Response {
    if let Err(res) = node.serve().await {
        return res;
    }
    let tombstone = Entry {
        value: String::new(),
        version,
        tombstone: true,
    };
    let kept = node.apply(&key, tombstone);
    stored(key, kept)
}

async fn healthz(State(node): State<Arc<Inner>>) -> Response {
    if node.ready.load(Ordering::SeqCst) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "catching up from peers").into_response()
    }
}

async fn dump(State(node): State<Arc<Inner>>) -> Json<Vec<DumpEntry>> {
    let map = node.map.lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<DumpEntry> = map
        .iter()
        .map(|(key, entry)| DumpEntry {
            key: key.clone(),
            entry: entry.clone(),
        })
        .collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    Json(all)
}
