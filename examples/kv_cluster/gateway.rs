//! The kv gateway: `GET`, `PUT` and `DELETE /kv/{key}` over the canonical
//! stack built from the configuration (`tower_fleet::stack`), each shard's
//! balancer in quorum mode. The in-process example and the `kv-fleet`
//! binary's `--role gateway` both run this gateway.
//!
//! - **The client to the fleet** is the stack built in `stack.rs`: plain
//!   HTTP requests to the nodes' `/kv/{key}` with the `http` feature's key
//!   extractor, classification, retries, Retry-After and body replay.
//! - **Writes.** A `PUT` (or a `DELETE`, which writes a versioned tombstone)
//!   gets a version from the gateway's hybrid logical clock (`hlc.rs`) and
//!   goes to every replica of the key's shard; it succeeds once W of them
//!   acknowledge. The newest version wins on every replica
//!   (**last-writer-wins**): of two concurrent writes to one key, the one
//!   with the greater version survives everywhere, whichever arrives last.
//! - **Reads.** A `GET` asks the shard's replicas and succeeds once R answer;
//!   the newest version among the answers wins (a tombstone reads as
//!   `404`). With R + W > N a read overlaps every acknowledged write, so a
//!   read sees the gateway's own writes and everyone's acknowledged ones.
//! - **Read repair.** Replicas whose answer to a read was older than the
//!   newest (or empty) are sent the newest entry in the background; a
//!   replica keeps whichever version is newer, so a repair never goes back
//!   in time. Replicas that had not answered when the quorum was met are
//!   left alone (their copy of the read is still running, and a later read
//!   they answer in time repairs them), and so are those that failed (a
//!   dead replica would only refuse the repair): repairs cost nothing while
//!   the replicas agree.
//! - **Tombstones.** Nodes keep them for their lifetime, so a replica that
//!   missed a `DELETE` can never bring the value back: its older version
//!   loses to the tombstone in every quorum read, and read repair writes the
//!   tombstone to it.
//! - **Cache.** The stack's cache serves repeated reads; a write through
//!   this gateway invalidates its key when the write completes, so the
//!   gateway reads its own writes. Other gateways' writes are seen when
//!   their cached copy expires (the `[cache] ttl`), or at once with the
//!   shared Redis tier (`--redis`, feature `redis`), whose invalidations
//!   reach every gateway.
//! - **Failures.** Retries, breakers and timeouts are the stack's. Shards
//!   do not fail over (a key lives on its own shard only): a shard that
//!   cannot reach its quorum answers `503` with the reason, and the other
//!   shards keep serving.
//! - **Bad input** is a `4xx` that says why: an empty key or one over
//!   [`MAX_KEY`] bytes (`400`), a value that is not UTF-8 (`400`) or is over
//!   [`MAX_VALUE`] bytes (`413`), a method other than `GET`/`PUT`/`DELETE`
//!   (`405`).

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::Full;
use tower::ServiceExt;
use tower_fleet::breaker::BreakerState;
use tower_fleet::stack::{StackConfig, StackError, StackSnapshot};
use tower_fleet::BoxError;

use super::hlc::{Hlc, Version};
use super::node::Entry;
use super::stack::{key_path, KvStack, NodeReply, StackView};

/// The longest key accepted, in bytes.
pub const MAX_KEY: usize = 1024;
/// The largest value accepted, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// A running gateway's state; clones share it.
#[derive(Clone)]
pub struct Gateway {
    stack: KvStack,
    hlc: Arc<Hlc>,
    view: Arc<StackView>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The stack could not be built from its configuration.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The shared Redis tier could not be set up.
    #[error("--redis {url}: {why}")]
    Redis {
        /// The URL given.
        url: String,
        /// What is wrong.
        why: String,
    },
}

/// How a gateway is built beyond its stack configuration.
#[derive(Clone, Debug, Default)]
pub struct GatewayOptions {
    /// This gateway's id in write versions: gateways writing to one fleet
    /// must have different ids.
    pub id: u32,
    /// The shared Redis cache tier's URL (feature `redis`), if any.
    pub redis: Option<String>,
}

impl Gateway {
    /// Builds the stack from `config` (shards by addresses, or by DNS names
    /// with the `dns` feature), on the current tokio runtime.
    ///
    /// With [`GatewayOptions::redis`], the stack's `[cache]` settings go to a
    /// cache in front of the stack (instead of inside it) whose store is
    /// the two-tier Redis store: the in-process tier first, Redis shared by
    /// every gateway second. Its invalidations reach every gateway's first
    /// tier over Redis pub/sub, so a write through one gateway is soon seen
    /// by all (see `tower_fleet::cache::redis` for the guarantees).
    pub fn new(config: StackConfig, options: GatewayOptions) -> Result<Gateway, GatewayError> {
        let (stack, view) = super::stack::build(config, options.redis.as_deref())?;
        Ok(Gateway {
            stack,
            hlc: Arc::new(Hlc::new(options.id)),
            view: Arc::new(view),
        })
    }

    /// The HTTP routes: `/kv/{key}` and `/healthz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/kv/{key}", get(read).put(write).delete(delete))
            .route("/kv", get(empty_key).put(empty_key).delete(empty_key))
            .route("/kv/", get(empty_key).put(empty_key).delete(empty_key))
            .route("/healthz", get(|| async { "ok\n" }))
            .layer(DefaultBodyLimit::max(MAX_VALUE))
            .with_state(self.clone())
    }

    /// Every layer's counters now.
    pub fn snapshot(&self) -> StackSnapshot {
        (self.view.snapshot)()
    }

    /// Publishes every layer's counters (and the Redis tier's, with one)
    /// through the `metrics` facade.
    pub fn publish_metrics(&self) {
        self.snapshot().publish();
        if let Some(tier) = &self.view.tier {
            tier();
        }
    }

    /// The id of the shard that owns `key`.
    pub fn shard_of(&self, key: &str) -> Option<String> {
        (self.view.shard_of)(key)
    }

    /// The state of the breaker in front of the replica at `address` of `shard`.
    pub fn breaker(&self, shard: &str, address: &str) -> Option<BreakerState> {
        self.snapshot()
            .breakers
            .into_iter()
            .find(|(s, a, _)| s.as_str() == shard && a == address)
            .map(|(_, _, b)| b.state)
    }

    fn call(
        &self,
        method: http::Method,
        key: &str,
        body: Bytes,
    ) -> impl Future<Output = Result<NodeReply, BoxError>> + Send + 'static {
        let request = http::Request::builder()
            .method(method)
            .uri(key_path(key))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let stack = self.stack.clone();
        async move {
            let reply = stack.oneshot(request?).await?;
            match reply.status {
                200 | 404 => Ok(reply),
                status => Err(format!("a replica refused the request: {status}").into()),
            }
        }
    }

    /// Reads `key`: its value, `None` if absent or deleted.
    pub async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        let reply = self.call(http::Method::GET, key, Bytes::new()).await?;
        if let Some(entry) = &reply.entry {
            // Later writes of this gateway order after what it has seen.
            self.hlc.observe(entry.version);
        }
        Ok(reply.entry.filter(|e| !e.tombstone).map(|e| e.value))
    }

    /// Writes `value` under `key` (`None` deletes it): the version written.
    pub async fn put(&self, key: &str, value: Option<String>) -> Result<Version, BoxError> {
        let version = self.hlc.now();
        let entry = Entry {
            tombstone: value.is_none(),
            value: value.unwrap_or_default(),
            version,
        };
        let body = serde_json::to_vec(&entry)?;
        self.call(http::Method::PUT, key, body.into()).await?;
        Ok(version)
    }
}

/// A key the gateway refuses, as the `400` that says why.
fn refused(key: &str) -> Option<Response> {
    if key.is_empty() {
        return Some(empty_key_response());
    }
    (key.len() > MAX_KEY).then(|| {
        let why = format!("keys are at most {MAX_KEY} bytes (got {})\n", key.len());
        (StatusCode::BAD_REQUEST, why).into_response()
    })
}

fn empty_key_response() -> Response {
    (StatusCode::BAD_REQUEST, "the key is empty: use /kv/{key}\n").into_response()
}

async fn empty_key() -> Response {
    empty_key_response()
}

/// A stack error as the `503` that says why (a shard without its quorum,
/// every replica's breaker open, the retry budget spent...).
fn unavailable(e: BoxError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("unavailable: {e}\n"),
    )
        .into_response()
}

async fn read(State(gateway): State<Gateway>, Path(key): Path<String>) -> Response {
    if let Some(bad) = refused(&key) {
        return bad;
    }
    match gateway.get(&key).await {
        Ok(Some(value)) => value.into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such key\n").into_response(),
        Err(e) => unavailable(e),
    }
}

async fn write(State(gateway): State<Gateway>, Path(key): Path<String>, body: Bytes) -> Response {
    if let Some(bad) = refused(&key) {
        return bad;
    }
    let Ok(value) = String::from_utf8(body.to_vec()) else {
        return (StatusCode::BAD_REQUEST, "values are UTF-8 text\n").into_response();
    };
    match gateway.put(&key, Some(value)).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => unavailable(e),
    }
}

async fn delete(State(gateway): State<Gateway>, Path(key): Path<String>) -> Response {
    if let Some(bad) = refused(&key) {
        return bad;
    }
    match gateway.put(&key, None).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => unavailable(e),
    }
}
