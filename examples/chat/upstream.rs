//! A gateway's way to the nodes: posts and history reads through the stack
//! (cache -> retry -> shard -> breaker -> timeout -> HTTP client), and the
//! plain HTTP client that the subscriptions and the nodes' replication use.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};
use tower_fleet::cache::{CacheHandle, Freshness, Policy, RequestMode};
use tower_fleet::classify::ErrorIsFailure;
use tower_fleet::key::Key;
use tower_fleet::shard::ShardHandle;
use tower_fleet::signal::Carrier;
use tower_fleet::stack::{BalanceOf, StackBuilder, StackConfig};
use tower_fleet::BoxError;

pub use crate::common::http::{client as http_client, HttpClient};

/// A request from a gateway to a room's owner, through the stack.
#[derive(Clone, Debug)]
pub enum NodeRequest {
    /// `POST /rooms/{room}/posts` with a JSON [`Post`](crate::wire::Post).
    Post {
        /// The room (the shard and cache key).
        room: String,
        /// The JSON body.
        body: Bytes,
    },
    /// `GET /rooms/{room}/history`.
    History {
        /// The room (the shard and cache key).
        room: String,
    },
}

impl NodeRequest {
    /// The room this request is for.
    pub fn room(&self) -> &str {
        match self {
            NodeRequest::Post { room, .. } | NodeRequest::History { room } => room,
        }
    }
}

impl Carrier for NodeRequest {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

/// A node's answer: its status and body (any status; transport failures are
/// errors).
#[derive(Clone, Debug)]
pub struct NodeResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

/// Sends one request to a JSON endpoint and collects the answer.
pub async fn send(
    client: &HttpClient,
    method: Method,
    url: String,
    body: Bytes,
) -> Result<NodeResponse, BoxError> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Body::from(body))?;
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(NodeResponse { status, body })
}

/// The transport at the bottom of the stack: one node's address.
#[derive(Clone, Debug)]
pub struct NodeClient {
    base: Arc<str>,
    client: HttpClient,
}

impl Service<NodeRequest> for NodeClient {
    type Response = NodeResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<NodeResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: NodeRequest) -> Self::Future {
        let client = self.client.clone();
        let (method, url, body) = match req {
            NodeRequest::Post { room, body } => (
                Method::POST,
                format!("{}/rooms/{room}/posts", self.base),
                body,
            ),
            NodeRequest::History { room } => (
                Method::GET,
                format!("{}/rooms/{room}/history", self.base),
                Bytes::new(),
            ),
        };
        Box::pin(async move { send(&client, method, url, body).await })
    }
}

/// The cache policy: history reads are cached when the node answered 200;
/// a post passes through and invalidates its room's entry.
#[derive(Clone, Copy, Debug)]
pub struct ChatCachePolicy;

impl Policy<NodeRequest, NodeResponse> for ChatCachePolicy {
    fn request_mode(&self, req: &NodeRequest) -> RequestMode {
        match req {
            NodeRequest::Post { .. } => RequestMode::Invalidate,
            NodeRequest::History { .. } => RequestMode::Lookup,
        }
    }

    fn freshness(&self, response: &NodeResponse, default: Freshness) -> Option<Freshness> {
        (response.status == StatusCode::OK).then_some(default)
    }
}

/// The stack as one boxed service.
pub type Upstream = BoxCloneSyncService<NodeRequest, NodeResponse, BoxError>;

/// How a gateway reaches the nodes.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// One attempt's limit on one node: past it the attempt fails (and is
    /// retried once).
    pub attempt_timeout: Duration,
    /// How long a history read is served from the gateway's cache. Posts
    /// through the same gateway invalidate it at once; posts through other
    /// gateways show after this long at most (live delivery is not cached).
    pub history_ttl: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            attempt_timeout: Duration::from_secs(2),
            history_ttl: Duration::from_secs(2),
        }
    }
}

/// The stack's configuration document for these nodes: one shard per node
/// (one replica each), rendezvous placement (so that a room's second node in
/// the preference list is where it goes when its owner is removed), strict
/// ownership (`hops = 0`: the gateway moves a room only by removing its
/// owner, see `gateway.rs`), two attempts, a breaker per node.
pub fn stack_config(nodes: &[(String, SocketAddr)], config: &UpstreamConfig) -> String {
    let mut doc = format!(
        r#"
[cache]
ttl = "{ttl}ms"
[retry]
max_attempts = 2
max_retry_after = "50ms"
[retry.backoff]
base = "10ms"
max = "50ms"
[shard.placement]
algorithm = "rendezvous"
[breaker]
consecutive_failures = 5
[timeout]
request = "{timeout}ms"
"#,
        ttl = config.history_ttl.as_millis(),
        timeout = config.attempt_timeout.as_millis(),
    );
    for (id, addr) in nodes {
        doc.push_str(&format!(
            "[[shards]]\nid = \"{id}\"\nreplicas = [\"{addr}\"]\n"
        ));
    }
    doc
}

/// The handles a gateway keeps on its stack.
#[derive(Clone, Debug)]
pub struct UpstreamHandles {
    /// The shard layer's membership: a node the gateway gives up on is
    /// removed here, and its rooms move to their next node.
    pub shard: ShardHandle<BalanceOf<NodeClient, NodeRequest, ErrorIsFailure>>,
    /// The history cache.
    pub cache: CacheHandle<NodeResponse>,
}

/// Builds the stack for these nodes.
pub fn build(
    nodes: &[(String, SocketAddr)],
    config: &UpstreamConfig,
    client: HttpClient,
) -> Result<(Upstream, UpstreamHandles), BoxError> {
    let doc: StackConfig = toml::from_str(&stack_config(nodes, config))?;
    let (stack, handle) = StackBuilder::new(doc)
        .connector(move |address: &str| NodeClient {
            base: format!("http://{address}").into(),
            client: client.clone(),
        })
        .key(|req: &NodeRequest| Some(Key::from(req.room())))
        .cache_policy(ChatCachePolicy)
        .build()?;
    let handles = UpstreamHandles {
        shard: handle.shard().clone(),
        cache: handle
            .cache()
            .cloned()
            .ok_or("the chat's stack has a cache")?,
    };
    Ok((BoxCloneSyncService::new(stack.map_err(Into::into)), handles))
}
