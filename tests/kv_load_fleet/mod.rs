//! A small sharded fleet behind a gateway built by the `stack` builder, for
//! the load generator's end-to-end tests: real HTTP nodes on ephemeral ports
//! with bounded capacity (a semaphore and a service time), a node that can be
//! killed (listener closed, open connections dropped), and a gateway serving
//! `GET`/`PUT /kv/{key}` and `GET /metrics`.
//!
//! Each request goes to one replica of the owning shard (no quorum here):
//! enough to show the layers absorbing a dead replica under load.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_fleet::http::key::PathSegment;
use tower_fleet::http::{Http, ReplayBody, SetOriginLayer};
use tower_fleet::stack::{StackBuilder, StackConfig, StackSnapshot};
use tower_fleet::BoxError;

use crate::common::server::{serve_local, ServerHandle};
use crate::faults::FaultTarget;
use crate::load::ShardOf;

/// One storage node: an in-memory map behind a capacity limit.
pub struct Node {
    /// Its address.
    pub addr: SocketAddr,
    server: ServerHandle,
    faults: Arc<Faults>,
}

/// What a node has been told to get wrong.
#[derive(Default)]
struct Faults {
    /// Service time multiplier (0 means 1).
    slow: AtomicU32,
    /// The fraction of requests to fail, as f64 bits.
    flaky: AtomicU64,
}

impl FaultTarget for Arc<Node> {
    /// Crashes the node: the listener closes, open connections drop.
    fn kill(&self) {
        let server = self.server.clone();
        tokio::spawn(async move { server.kill().await });
    }

    fn set_slow(&self, factor: u32) {
        self.faults.slow.store(factor, Ordering::Relaxed);
    }

    fn set_flaky(&self, rate: f64) {
        self.faults.flaky.store(rate.to_bits(), Ordering::Relaxed);
    }
}

/// A request's whole body (empty if it could not be read).
async fn body_bytes(req: Request<Body>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

async fn start_node(service_time: Duration, concurrency: usize) -> Arc<Node> {
    let map = Arc::new(Mutex::new(HashMap::<String, Bytes>::new()));
    let slots = Arc::new(Semaphore::new(concurrency));
    let faults = Arc::new(Faults::default());
    let serve = {
        let faults = faults.clone();
        move |req: Request<Body>| {
            let (map, slots, faults) = (map.clone(), slots.clone(), faults.clone());
            async move {
                let _slot = slots.acquire().await.unwrap();
                let slow = faults.slow.load(Ordering::Relaxed).max(1);
                tokio::time::sleep(service_time * slow).await;
                let flaky = f64::from_bits(faults.flaky.load(Ordering::Relaxed));
                if flaky > 0.0 && rand::random::<f64>() < flaky {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "flaky").into_response();
                }
                let key = req.uri().path().to_string();
                if req.method() == Method::PUT {
                    let body = body_bytes(req).await;
                    map.lock().unwrap().insert(key, body);
                    return StatusCode::NO_CONTENT.into_response();
                }
                let value = map.lock().unwrap().get(&key).cloned();
                match value {
                    // Reads may be cached briefly; a PUT through the gateway invalidates.
                    Some(v) => ([("cache-control", "max-age=5")], v).into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }
        }
    };
    let server = serve_local(Router::new().fallback(serve)).await.unwrap();
    Arc::new(Node {
        addr: server.addr(),
        server,
        faults,
    })
}

/// A fleet of `shards` x `replicas` nodes and one gateway.
pub struct Fleet {
    /// The gateway's address.
    pub gateway: SocketAddr,
    /// The gateway's server: it serves as long as this handle lives.
    pub server: ServerHandle,
    /// Nodes by name (`s{shard}r{replica}`).
    pub nodes: BTreeMap<String, Arc<Node>>,
    /// Which shard owns a key.
    pub shard_of: ShardOf,
    /// Node address -> node name.
    pub names: BTreeMap<String, String>,
    /// Every layer's counters now.
    pub snapshot: Arc<dyn Fn() -> StackSnapshot + Send + Sync>,
}

/// The shape of a fleet.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Shards.
    pub shards: usize,
    /// Replicas per shard.
    pub replicas: usize,
    /// Each node's service time per request.
    pub service_time: Duration,
    /// Requests each node serves at once.
    pub concurrency: usize,
    /// Whether the gateway's stack has a cache.
    pub cache: bool,
}

impl Shape {
    /// `shards` x `replicas` nodes serving 8 requests at once in
    /// `service_time`, with a cache.
    pub fn new(shards: usize, replicas: usize, service_time: Duration) -> Shape {
        Shape {
            shards,
            replicas,
            service_time,
            concurrency: 8,
            cache: true,
        }
    }
}

/// Starts the fleet and its gateway (retry, breakers, timeouts; a cache if
/// the shape says so).
pub async fn start(shape: Shape) -> Fleet {
    let mut nodes = BTreeMap::new();
    let mut toml = String::from(
        "[retry]\nmax_attempts = 3\n\
         [breaker]\nconsecutive_failures = 3\n[timeout]\nrequest = \"2s\"\n",
    );
    if shape.cache {
        toml.push_str("[cache]\nttl = \"30s\"\n");
    }
    for s in 0..shape.shards {
        let mut addrs = Vec::new();
        for r in 0..shape.replicas {
            let node = start_node(shape.service_time, shape.concurrency).await;
            addrs.push(format!("\"{}\"", node.addr));
            nodes.insert(format!("s{s}r{r}"), node);
        }
        toml.push_str(&format!(
            "[[shards]]\nid = \"s{s}\"\nreplicas = [{}]\n",
            addrs.join(", ")
        ));
    }
    let config: StackConfig = toml::from_str(&toml).unwrap();
    let http = Http::builder().build().unwrap();
    let hyper = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let connect = {
        let http = http.clone();
        move |addr: &str| {
            ServiceBuilder::new()
                .layer(http.buffer_response_layer())
                .layer(SetOriginLayer::new(&format!("http://{addr}")).unwrap())
                .service(hyper.clone())
        }
    };
    let (stack, handle) = StackBuilder::new(config)
        .connector(connect)
        .key_fn(PathSegment(1))
        .classify(http.classify())
        .retryable(http.retryable())
        .retry_after(http.retry_after())
        .cache_policy(http.cache_policy())
        .replay(http.replay())
        .build()
        .unwrap();
    // Boxed so the handler's future has a nameable, plainly `Send` type.
    let client: BoxCloneSyncService<Request<Full<Bytes>>, Response<Bytes>, BoxError> =
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(http.buffer_request_layer())
                .service(stack)
                .map_err(BoxError::from),
        );
    let names = nodes
        .iter()
        .map(|(name, n)| (n.addr.to_string(), name.clone()))
        .collect();
    let shard_of: ShardOf = {
        let handle = handle.clone();
        Arc::new(move |key: &str| {
            handle
                .shard()
                .route(key.as_bytes())
                .map_or_else(|| "none".to_string(), |s| s.to_string())
        })
    };
    let kv = {
        let handle = handle.clone();
        move |Path(key): Path<String>, req: Request<Body>| {
            let (mut client, handle) = (client.clone(), handle.clone());
            async move {
                let method = req.method().clone();
                let body = body_bytes(req).await;
                let forward = Request::builder()
                    .method(method.clone())
                    .uri(format!("/kv/{key}"))
                    .body(Full::new(body))
                    .unwrap();
                let answer = match client.ready().await {
                    Ok(ready) => ready.call(forward).await,
                    Err(e) => Err(e),
                };
                if method == Method::PUT {
                    if let Some(cache) = handle.cache() {
                        cache.invalidate(&key).await;
                    }
                }
                match answer {
                    Ok(res) => res.map(Body::from),
                    Err(e) => {
                        let mut res = Response::new(Body::from(format!("unavailable: {e}")));
                        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                        res
                    }
                }
            }
        }
    };
    let snapshot = {
        let handle = handle.clone();
        Arc::new(move || handle.snapshot())
    };
    let router = Router::new()
        .route("/kv/{key}", get(kv.clone()).put(kv))
        .merge(crate::prometheus::metrics_route(handle));
    let server = serve_local(router).await.unwrap();
    Fleet {
        gateway: server.addr(),
        server,
        nodes,
        shard_of,
        names,
        snapshot,
    }
}
