//! The kv gateway's stack (`gateway.rs` serves it): the canonical stack
//! built from the configuration by `StackBuilder::build_quorum_with`, over
//! plain HTTP requests to the nodes' `/kv/{key}`, with the `http` feature's
//! parts:
//!
//! - the key is the path's second segment (`PathSegment(1)`, as
//!   [`key_path`] encodes it);
//! - a `5xx` or a connection error is a failure, a `404` an answer
//!   (`Http::classify`);
//! - `GET` and `PUT` are retried (`Http::retryable`; both are idempotent
//!   here, a `PUT` carrying its version);
//! - a node's `Retry-After` is honoured (`Http::retry_after`);
//! - request bodies are replayed to each replica of a quorum call and on
//!   retries (`Http::replay`).
//!
//! The quorum's merge keeps the answer with the newest version; its finish
//! step repairs the replicas that answered an older one (see the gateway's
//! docs) and hands the merged answer up the stack, where the retry layer
//! judges it and the cache keeps it. With the shared Redis tier, the cache
//! moves in front of the stack (see [`build`]).

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_fleet::balance::{newest, QuorumKind, QuorumResponse};
use tower_fleet::cache::{CacheConfig, Freshness, Policy, RequestMode};
use tower_fleet::http::key::PathSegment;
use tower_fleet::http::{Http, ReplayBody, SetOriginLayer};
use tower_fleet::stack::{StackBuilder, StackConfig, StackError, StackSnapshot};
use tower_fleet::BoxError;

use super::common::http::{client, send, HttpClient};
use super::gateway::{GatewayError, MAX_VALUE};
use super::hlc::{Version, VERSION_HEADER};
use super::node::{DumpEntry, Entry};

/// How long a read repair's write may take.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(5);

/// What the stack carries: HTTP requests for `/kv/{key}` whose bodies can
/// be replayed (to each replica of a quorum call, and on retries).
pub type NodeRequest = http::Request<ReplayBody<Full<Bytes>>>;
/// A node's answer, its body read whole.
pub type NodeResponse = http::Response<Bytes>;
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

/// The version a node's answer holds, from its [`VERSION_HEADER`] (`None`,
/// older than any, for none): the merge compares replies without parsing
/// their bodies.
fn version_of(res: &NodeResponse) -> Option<Version> {
    if res.status() != StatusCode::OK {
        return None;
    }
    Version::from_header(res.headers().get(VERSION_HEADER)?.to_str().ok()?)
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
        let newest = version_of(&answer.merged);
        let behind: Vec<_> = answer
            .replies
            .iter()
            .filter(|r| version_of(&r.response) < newest)
            .map(|r| &r.replica)
            .collect();
        // Replicas that agree (the usual case) cost no parsing at all.
        let repair = if behind.is_empty() {
            None
        } else {
            entry_of(&answer.merged).and_then(|newest| {
                let body = serde_json::to_vec(&newest.entry).ok()?;
                Some((Bytes::from(body), key_path(&newest.key)))
            })
        };
        if let Some((body, path)) = repair {
            for replica in behind {
                let (client, url, body) = (
                    client.clone(),
                    format!("http://{replica}{path}"),
                    body.clone(),
                );
                tokio::spawn(async move {
                    // A repair that fails is retried by the next read.
                    let _ = send(&client, http::Method::PUT, &url, body, REPAIR_TIMEOUT).await;
                });
            }
        }
        answer.merged
    }
}

/// Which shard owns a key, by the stack's shard layer.
pub type ShardOfKey = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Every layer's counters now.
pub type Snapshot = Box<dyn Fn() -> StackSnapshot + Send + Sync>;

/// What the gateway shows of its stack, with the stack's types erased.
pub struct StackView {
    /// Every layer's counters now.
    pub snapshot: Snapshot,
    /// Which shard owns a key.
    pub shard_of: ShardOfKey,
    /// With the shared Redis tier: publishes its counters.
    pub tier: Option<Box<dyn Fn() + Send + Sync>>,
}

/// Builds the stack from `config` on the current tokio runtime, and the
/// views of it the gateway keeps.
///
/// With `redis` (a URL, feature `redis`), the `[cache]` settings go to a
/// cache in front of the stack (instead of inside it) whose store is the
/// two-tier Redis store: the in-process tier first, Redis shared by every
/// gateway second. Its invalidations reach every gateway's first tier over
/// Redis pub/sub, so a write through one gateway is soon seen by all (see
/// `tower_fleet::cache::redis` for the guarantees).
pub fn build(
    mut config: StackConfig,
    redis: Option<&str>,
) -> Result<(KvStack, StackView), GatewayError> {
    let redis = match redis {
        Some(url) => {
            let cache = config.cache.take().ok_or_else(|| GatewayError::Redis {
                url: url.to_string(),
                why: "the shared tier is a cache: the stack needs a [cache] table".into(),
            })?;
            Some((url, cache))
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
    let mut view = StackView {
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
            let tier = shared_tier(stack, url, cache)?;
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
    Ok((stack, view))
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
fn shared_tier(stack: KvStack, url: &str, config: CacheConfig) -> Result<SharedTier, GatewayError> {
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
    _config: CacheConfig,
) -> Result<SharedTier, GatewayError> {
    Err(GatewayError::Redis {
        url: url.to_string(),
        why: "built without the `redis` feature (cargo build --features kv-fleet,redis)".into(),
    })
}
