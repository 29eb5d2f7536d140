//! The kv gateway: `GET`, `PUT` and `DELETE /kv/{key}` over the canonical
//! stack built from the configuration (`tower_fleet::stack`), each shard's
//! balancer in quorum mode. The in-process example and the `kv-fleet`
//! binary's `--role gateway` both run this gateway.
//!
//! - **The client to the fleet** is the stack over plain HTTP requests to
//!   the nodes' `/kv/{key}`, with the `http` feature's parts: the key is the
//!   path's second segment (`PathSegment(1)`), a `5xx` or a connection error
//!   is a failure while a `404` is an answer (`Http::classify`), `GET` and
//!   `PUT` are retried (`Http::retryable`, both idempotent here), a node's
//!   `Retry-After` is honoured, and request bodies are replayed to each
//!   replica of a quorum call and on retries (`Http::replay`).
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
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_fleet::balance::{newest, QuorumKind, QuorumResponse};
use tower_fleet::breaker::BreakerState;
use tower_fleet::cache::{Freshness, Policy, RequestMode};
use tower_fleet::http::key::PathSegment;
use tower_fleet::http::{Http, ReplayBody, SetOriginLayer};
use tower_fleet::stack::{StackBuilder, StackConfig, StackError, StackSnapshot};
use tower_fleet::BoxError;

use super::common::http::{client, HttpClient};
use super::hlc::{Hlc, Version};
use super::node::{DumpEntry, Entry};

/// The longest key accepted, in bytes.
pub const MAX_KEY: usize = 1024;
/// The largest value accepted, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// How long a read repair's write may take.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(5);

/// What the stack carries: HTTP requests for `/kv/{key}` whose bodies can
/// be replayed (to each replica of a quorum call, and on retries).
type NodeRequest = http::Request<ReplayBody<Full<Bytes>>>;
/// A node's answer, its body read whole.
type NodeResponse = http::Response<Bytes>;
type Client = HttpClient<Full<Bytes>>;

/// What a quorum call gives the gateway: the status of the merged (newest)
/// answer and the entry it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReply {
    /// The merged answer's status: `200` with an entry, `404` without; any
    /// other is a node refusing the request.
    pub status: u16,
    /// The newest entry the answering replicas hold, if any.
    pub entry: Option<Entry>,
}

/// The stack as the gateway holds it: requests as the gateway builds them
/// (the `http` feature's buffer layer makes their bodies replayable), boxed
/// so that its future has a nameable, `Send` type for the server's tasks.
pub type KvStack = BoxCloneSyncService<http::Request<Full<Bytes>>, NodeReply, BoxError>;

/// Reads are cached; writes pass through and invalidate their key.
/// Answers other than `200` and `404` are not stored.
#[derive(Clone, Copy, Debug)]
struct ReadsOnly;

impl ReadsOnly {
    fn mode<B>(req: &http::Request<B>) -> RequestMode {
        if req.method() == http::Method::GET {
            RequestMode::Lookup
        } else {
            RequestMode::Invalidate
        }
    }
}

/// The stack's own cache, in front of the quorum's merged answers.
impl<B> Policy<http::Request<B>, NodeResponse> for ReadsOnly {
    fn request_mode(&self, req: &http::Request<B>) -> RequestMode {
        Self::mode(req)
    }

    fn freshness(&self, res: &NodeResponse, default: Freshness) -> Option<Freshness> {
        matches!(res.status().as_u16(), 200 | 404).then_some(default)
    }
}

/// The shared Redis tier's cache, in front of the whole stack.
impl<B> Policy<http::Request<B>, NodeReply> for ReadsOnly {
    fn request_mode(&self, req: &http::Request<B>) -> RequestMode {
        Self::mode(req)
    }

    fn freshness(&self, reply: &NodeReply, default: Freshness) -> Option<Freshness> {
        matches!(reply.status, 200 | 404).then_some(default)
    }
}

/// The path of `key` on a node: `/kv/` and the key, percent-encoded except
/// for unreserved characters and `:` and `@`. The stack's key is this
/// segment (`PathSegment(1)`, not decoded), so every gateway routes a key
/// alike.
pub fn key_path(key: &str) -> String {
    let mut path = String::with_capacity(4 + key.len());
    path.push_str("/kv/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

/// The entry (with its key) in a node's `200` answer: a `GET` answers what
/// it holds, a `PUT` what it kept.
fn entry_of(res: &NodeResponse) -> Option<DumpEntry> {
    if res.status() != StatusCode::OK {
        return None;
    }
    serde_json::from_slice(res.body()).ok()
}

/// The version a node's answer holds (`None`, older than any, for none).
fn version_of(res: &NodeResponse) -> Option<Version> {
    entry_of(res).map(|e| e.entry.version)
}

/// A node's address as the stack gives it, turned into a client for it:
/// hyper, the request's origin set to the node, the answer's body read
/// whole (bounded) so that the merge and the cache can hold it.
fn connect(
    http: Http,
) -> impl Fn(&str) -> BoxCloneSyncService<NodeRequest, NodeResponse, BoxError> {
    let hyper: HttpClient<ReplayBody<Full<Bytes>>> = client();
    move |address: &str| match SetOriginLayer::new(&format!("http://{address}")) {
        Ok(origin) => BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(http.buffer_response_layer())
                .layer(origin)
                .service(hyper.clone())
                .map_err(BoxError::from),
        ),
        // An address that is no origin fails every call, as a dead node would.
        Err(e) => {
            let why = format!("replica {address}: {e}");
            BoxCloneSyncService::new(service_fn(move |_: NodeRequest| {
                let why = why.clone();
                async move { Err::<NodeResponse, BoxError>(why.into()) }
            }))
        }
    }
}

/// A merged answer as the gateway reads it.
fn reply_of(res: &NodeResponse) -> NodeReply {
    NodeReply {
        status: res.status().as_u16(),
        entry: entry_of(res).map(|d| d.entry),
    }
}

/// After a quorum call: the newest entry written back to the replicas whose
/// answer was older, in the background; the merged answer goes on up the
/// stack (to the retry layer's classification and the cache).
fn repair(
    client: Client,
) -> impl FnOnce(QuorumResponse<NodeResponse, NodeResponse>) -> NodeResponse + Clone {
    move |answer: QuorumResponse<NodeResponse, NodeResponse>| {
        let newest = entry_of(&answer.merged);
        if let Some(newest) = &newest {
            let behind = answer
                .replies
                .iter()
                .filter(|r| version_of(&r.response) < Some(newest.entry.version));
            for reply in behind {
                let Ok(body) = serde_json::to_vec(&newest.entry) else {
                    continue;
                };
                let (client, url) = (
                    client.clone(),
                    format!("http://{}{}", reply.replica, key_path(&newest.key)),
                );
                tokio::spawn(async move {
                    // A repair that fails is retried by the next read.
                    let _ = send(&client, http::Method::PUT, &url, body.into()).await;
                });
            }
        }
        answer.merged
    }
}

/// `method url` with a JSON `body`, bounded by [`REPAIR_TIMEOUT`].
async fn send(client: &Client, method: http::Method, url: &str, body: Bytes) -> Option<StatusCode> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .ok()?;
    let exchange = async {
        let response = client.request(request).await.ok()?;
        let status = response.status();
        response.into_body().collect().await.ok()?;
        Some(status)
    };
    tokio::time::timeout(REPAIR_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

/// Which shard owns a key, by the stack's shard layer.
type ShardOfKey = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Every layer's counters now.
type Snapshot = Box<dyn Fn() -> StackSnapshot + Send + Sync>;

/// What the gateway shows of its stack, with the stack's types erased.
struct View {
    snapshot: Snapshot,
    shard_of: ShardOfKey,
    /// With the shared Redis tier: publishes its counters.
    tier: Option<Box<dyn Fn() + Send + Sync>>,
}

/// A running gateway's state; clones share it.
#[derive(Clone)]
pub struct Gateway {
    stack: KvStack,
    hlc: Arc<Hlc>,
    view: Arc<View>,
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
    pub fn new(mut config: StackConfig, options: GatewayOptions) -> Result<Gateway, GatewayError> {
        let redis = match &options.redis {
            Some(url) => {
                let cache = config.cache.take().ok_or_else(|| GatewayError::Redis {
                    url: url.clone(),
                    why: "the shared tier is a cache: the stack needs a [cache] table".into(),
                })?;
                Some((url.clone(), cache))
            }
            None => None,
        };
        let http = Http::builder()
            .max_replay_body(MAX_VALUE as u64 * 2)
            .build()
            .map_err(StackError::from)?;
        let choose = |req: &NodeRequest| {
            if req.method() == http::Method::GET {
                QuorumKind::Read
            } else {
                QuorumKind::Write
            }
        };
        // The `http` feature's key extractor, classification (5xx and
        // connection errors are failures), retryable methods, Retry-After
        // handling and body replay.
        let builder = StackBuilder::new(config)
            .connector(connect(http.clone()))
            .key_fn(PathSegment(1))
            .classify(http.classify())
            .retryable(http.retryable())
            .retry_after(http.retry_after())
            .replay(http.replay())
            .cache_policy(ReadsOnly);
        let (stack, handle) =
            builder.build_quorum_with(choose, newest(version_of), repair(client()))?;
        let stack = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(http.buffer_request_layer())
                .service(stack)
                .map_response(|res| reply_of(&res))
                .map_err(|e| BoxError::from(e.to_string())),
        );
        let mut view = View {
            snapshot: Box::new({
                let handle = handle.clone();
                move || handle.snapshot()
            }),
            shard_of: Box::new(move |key: &str| {
                let path = key_path(key);
                let segment = &path["/kv/".len()..];
                handle
                    .shard()
                    .route(segment.as_bytes())
                    .map(|s| s.to_string())
            }),
            tier: None,
        };
        let stack = match redis {
            Some((url, cache)) => {
                let tier = shared_tier(stack, &url, cache)?;
                // The cache is outside the stack: its counters are shown as
                // the stack's cache's.
                let (inner, cache) = (view.snapshot, tier.cache);
                view.snapshot = Box::new(move || {
                    let mut snapshot = inner();
                    snapshot.cache = Some(cache());
                    snapshot
                });
                view.tier = Some(tier.publish);
                tier.stack
            }
            None => stack,
        };
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

/// A stack behind the shared Redis tier, and views of that tier.
struct SharedTier {
    /// The cache in front of the stack.
    stack: KvStack,
    /// The cache's counters.
    cache: Box<dyn Fn() -> tower_fleet::cache::CacheSnapshot + Send + Sync>,
    /// Publishes the Redis tier's counters.
    publish: Box<dyn Fn() + Send + Sync>,
}

/// `stack` behind a cache whose store is the shared Redis tier.
#[cfg(feature = "redis")]
fn shared_tier(
    stack: KvStack,
    url: &str,
    config: tower_fleet::cache::CacheConfig,
) -> Result<SharedTier, GatewayError> {
    use tower_fleet::cache::redis::{JsonCodec, RedisStore, RedisTierConfig};
    use tower_fleet::cache::Cache;
    let failed = |why: String| GatewayError::Redis {
        url: url.to_string(),
        why,
    };
    let mut tier = RedisTierConfig::default();
    tier.namespace = "kv".into();
    let store = RedisStore::connect(url, tier, JsonCodec::<NodeReply>::new())
        .map_err(|e| failed(e.to_string()))?;
    let cache = Cache::builder()
        .config(config)
        .key_fn(PathSegment(1))
        .policy(ReadsOnly)
        .store(store.clone())
        .build(stack)
        .map_err(|e| failed(e.to_string()))?;
    let handle = cache.handle();
    Ok(SharedTier {
        stack: BoxCloneSyncService::new(cache.map_err(|e| BoxError::from(e.to_string()))),
        cache: Box::new(move || handle.snapshot()),
        publish: Box::new(move || store.snapshot().publish()),
    })
}

/// Without the `redis` feature there is no shared tier to use.
#[cfg(not(feature = "redis"))]
fn shared_tier(
    _stack: KvStack,
    url: &str,
    _config: tower_fleet::cache::CacheConfig,
) -> Result<SharedTier, GatewayError> {
    Err(GatewayError::Redis {
        url: url.to_string(),
        why: "built without the `redis` feature (cargo build --features kv-fleet,redis)".into(),
    })
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
