//! A storage node: an in-memory map of versioned values, served over HTTP.
//!
//! - `GET /data/{key}`: `200` with the entry as JSON (`{"value": ..,
//!   "version": ..}`, `value` null for a delete), or `404`;
//! - `PUT /data/{key}` with an entry as JSON: stored if its version is newer
//!   than the one held (so replays, repairs and copies never go back in
//!   time); `204`;
//! - `GET /dump`: every entry with its key, for a peer that catches up;
//! - `GET /healthz`: `200` once the node is ready, `503` while it copies its
//!   shard from its peers (see `catch_up`).
//!
//! At most `capacity` requests are served at once, each taking
//! `service_time` (simulated work); the rest wait their turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// A write's version: milliseconds, a counter within the millisecond, the
/// gateway that wrote it. Totally ordered; the greatest wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub millis: u64,
    pub counter: u32,
    pub gateway: u16,
}

/// A value (or a delete: `value` is `None`) with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub value: Option<String>,
    pub version: Version,
}

/// One line of `GET /dump`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DumpEntry {
    pub key: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// A node's state; clones share it.
#[derive(Clone)]
pub struct Node {
    store: Arc<Mutex<HashMap<String, Entry>>>,
    permits: Arc<Semaphore>,
    service_time: Duration,
    ready: Arc<AtomicBool>,
}

impl Node {
    /// An empty node serving `capacity` requests at once, each taking
    /// `service_time`; ready at once unless `ready` is false.
    pub fn new(capacity: usize, service_time: Duration, ready: bool) -> Node {
        Node {
            store: Arc::default(),
            permits: Arc::new(Semaphore::new(capacity)),
            service_time,
            ready: Arc::new(AtomicBool::new(ready)),
        }
    }

    /// Reports ready on `/healthz` from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Stores `entry` under `key` unless a newer (or equal) version is held.
    pub fn merge(&self, key: String, entry: Entry) {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        match store.get(&key) {
            Some(held) if held.version >= entry.version => {}
            _ => {
                store.insert(key, entry);
            }
        }
    }

    /// Merges a peer's `/dump` body; the number of entries in it.
    pub fn load_dump(&self, body: &[u8]) -> Result<usize, String> {
        let entries: Vec<DumpEntry> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let n = entries.len();
        for e in entries {
            self.merge(e.key, e.entry);
        }
        Ok(n)
    }

    /// Every entry.
    pub fn dump(&self) -> Vec<DumpEntry> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .iter()
            .map(|(key, entry)| DumpEntry {
                key: key.clone(),
                entry: entry.clone(),
            })
            .collect()
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/data/{key}", get(read).put(write))
            .route("/dump", get(dump))
            .route("/healthz", get(healthz))
            .with_state(self.clone())
    }

    /// Waits for a slot and does the simulated work.
    async fn work(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = self.permits.acquire().await.ok()?;
        if !self.service_time.is_zero() {
            tokio::time::sleep(self.service_time).await;
        }
        Some(permit)
    }
}

async fn read(State(node): State<Node>, Path(key): Path<String>) -> Response {
    let _slot = node.work().await;
    let held = node
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    match held {
        Some(entry) => Json(entry).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn write(
    State(node): State<Node>,
    Path(key): Path<String>,
    Json(entry): Json<Entry>,
) -> StatusCode {
    let _slot = node.work().await;
    node.merge(key, entry);
    StatusCode::NO_CONTENT
}

async fn dump(State(node): State<Node>) -> Json<Vec<DumpEntry>> {
    Json(node.dump())
}

async fn healthz(State(node): State<Node>) -> (StatusCode, &'static str) {
    if node.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "catching up from peers\n")
    }
}
