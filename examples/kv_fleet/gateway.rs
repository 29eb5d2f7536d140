//! The gateway: `GET`, `PUT` and `DELETE /kv/{key}` over the canonical stack
//! built from the configuration (`tower_fleet::stack`), each shard's
//! balancer in quorum mode.
//!
//! - A write (`PUT`, or `DELETE`, which writes a versioned tombstone) gets a
//!   version from the gateway's hybrid logical clock and goes to every
//!   replica of the key's shard; it succeeds once W acknowledge.
//! - A read asks the shard's replicas and succeeds once R answer; the newest
//!   version wins, and replicas that answered an older version, failed or
//!   did not answer are repaired in the background with the newest one.
//! - The stack's cache serves repeated reads; a write through this gateway
//!   invalidates the key first, so the gateway reads its own writes.
//! - A shard that cannot reach its quorum answers `503` with the reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::{service_fn, ServiceExt};
use tower_fleet::balance::{newest, QuorumKind, QuorumResponse};
use tower_fleet::cache::{Freshness, Policy, RequestMode};
use tower_fleet::key::Key;
use tower_fleet::signal::Envelope;
use tower_fleet::stack::{StackBuilder, StackConfig, StackError};

use tokio::sync::{mpsc, oneshot};

use crate::client::{send, HttpClient};
use crate::node::{Entry, Version};

/// The longest key accepted.
const MAX_KEY: usize = 1024;
/// How long one leg to a node may take.
const LEG_TIMEOUT: Duration = Duration::from_secs(5);

/// What the stack carries: a read or a versioned write of one key.
#[derive(Clone, Debug)]
pub enum Op {
    Get(String),
    Put(String, Entry),
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Get(k) | Op::Put(k, _) => k,
        }
    }
}

/// One node's answer: the key and the entry it holds (`None` for a write's
/// acknowledgement, or a key it does not have).
#[derive(Clone, Debug)]
pub struct NodeReply {
    pub key: String,
    pub entry: Option<Entry>,
}

type Req = Envelope<Op>;

/// Reads are cached; writes pass through and invalidate their key.
#[derive(Clone, Copy, Debug)]
struct ReadsOnly;

impl Policy<Req, NodeReply> for ReadsOnly {
    fn request_mode(&self, req: &Req) -> RequestMode {
        match req.payload {
            Op::Get(_) => RequestMode::Lookup,
            Op::Put(..) => RequestMode::Invalidate,
        }
    }

    fn freshness(&self, _response: &NodeReply, default: Freshness) -> Option<Freshness> {
        Some(default)
    }
}

/// A hybrid logical clock: versions grow with wall time, strictly, and
/// carry this gateway's id so two gateways never make the same one.
struct Hlc {
    id: u16,
    last: Mutex<(u64, u32)>,
}

impl Hlc {
    fn next(&self) -> Version {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = if now > last.0 {
            (now, 0)
        } else {
            (last.0, last.1 + 1)
        };
        Version {
            millis: last.0,
            counter: last.1,
            gateway: self.id,
        }
    }
}

/// A node's address as the stack gives it, turned into the service that
/// sends it one leg of a quorum call.
fn connect(
    client: HttpClient,
) -> impl Fn(&str) -> tower::util::BoxCloneSyncService<Req, NodeReply, LegError> {
    move |address: &str| {
        let (client, address) = (client.clone(), address.to_string());
        tower::util::BoxCloneSyncService::new(service_fn(move |req: Req| {
            let (client, address) = (client.clone(), address.clone());
            async move { leg(&client, &address, req.payload).await }
        }))
    }
}

/// Why one leg of a quorum call failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LegError(String);

async fn leg(client: &HttpClient, address: &str, op: Op) -> Result<NodeReply, LegError> {
    let url = format!("http://{address}/data/{}", op.key());
    match op {
        Op::Get(key) => {
            match send(client, http::Method::GET, &url, Bytes::new(), LEG_TIMEOUT).await {
                Some((StatusCode::OK, body)) => Ok(NodeReply {
                    key,
                    entry: Some(
                        serde_json::from_slice(&body)
                            .map_err(|e| LegError(format!("{address}: {e}")))?,
                    ),
                }),
                Some((StatusCode::NOT_FOUND, _)) => Ok(NodeReply { key, entry: None }),
                Some((status, _)) => Err(LegError(format!("{address}: {status}"))),
                None => Err(LegError(format!("{address}: no answer"))),
            }
        }
        Op::Put(key, entry) => {
            let body = serde_json::to_vec(&entry).map_err(|e| LegError(e.to_string()))?;
            let body = Bytes::from(body);
            match send(client, http::Method::PUT, &url, body, LEG_TIMEOUT).await {
                Some((status, _)) if status.is_success() => Ok(NodeReply { key, entry: None }),
                Some((status, _)) => Err(LegError(format!("{address}: {status}"))),
                None => Err(LegError(format!("{address}: no answer"))),
            }
        }
    }
}

fn version(reply: &NodeReply) -> Option<Version> {
    reply.entry.as_ref().map(|e| e.version)
}

/// After a read: writes the newest entry back to the replicas that lag.
fn repair(
    client: HttpClient,
) -> impl FnOnce(QuorumResponse<NodeReply, NodeReply>) -> NodeReply + Clone {
    move |answer: QuorumResponse<NodeReply, NodeReply>| {
        if let Some(entry) = &answer.merged.entry {
            for replica in answer.lagging(version) {
                let (client, key, entry) =
                    (client.clone(), answer.merged.key.clone(), entry.clone());
                tokio::spawn(async move {
                    let url = format!("http://{replica}/data/{key}");
                    let Ok(body) = serde_json::to_vec(&entry) else {
                        return;
                    };
                    send(&client, http::Method::PUT, &url, body.into(), LEG_TIMEOUT).await;
                });
            }
        }
        answer.merged
    }
}

/// The canonical stack from `config`, each shard's balancer in quorum mode.
fn build(
    config: StackConfig,
) -> Result<
    impl tower::Service<
            Req,
            Response = NodeReply,
            Error = impl std::fmt::Display,
            Future = impl std::future::Future,
        > + Clone,
    StackError,
> {
    let client = crate::client::client();
    let choose = |req: &Req| match req.payload {
        Op::Get(_) => QuorumKind::Read,
        Op::Put(..) => QuorumKind::Write,
    };
    let (stack, _handle) = StackBuilder::new(config)
        .connector(connect(client.clone()))
        .key(|req: &Req| Some(Key::from(req.payload.key())))
        .cache_policy(ReadsOnly)
        .build_quorum_with(choose, newest(version), repair(client))?;
    Ok(stack)
}

/// One call for the stack's task: the operation and where to answer.
type Call = (Op, oneshot::Sender<Result<NodeReply, String>>);

/// The gateway's state: a line to the task that drives the stack, and the
/// clock. Clones share both.
#[derive(Clone)]
pub struct Gateway {
    calls: mpsc::UnboundedSender<Call>,
    hlc: Arc<Hlc>,
}

impl Gateway {
    /// Builds the stack from `config` (shards by addresses or DNS names) on
    /// a thread of its own.
    ///
    /// The stack's response futures are driven on that thread's runtime
    /// (rustc cannot prove them `Send` for every lifetime the HTTP server's
    /// tasks demand); each request crosses over through a channel.
    pub fn new(config: StackConfig, id: u16) -> Result<Gateway, String> {
        let (calls, mut incoming) = mpsc::unbounded_channel::<Call>();
        let (built_tx, built_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kv-fleet-stack".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = built_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let stack = match build(config) {
                        Ok(stack) => {
                            let _ = built_tx.send(Ok(()));
                            stack
                        }
                        Err(e) => {
                            let _ = built_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    while let Some((op, answer)) = incoming.recv().await {
                        let stack = stack.clone();
                        tokio::task::spawn_local(async move {
                            let reply = stack.oneshot(Envelope::new(op)).await;
                            let _ = answer.send(reply.map_err(|e| e.to_string()));
                        });
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        built_rx
            .recv()
            .map_err(|_| "the stack's thread stopped".to_string())??;
        Ok(Gateway {
            calls,
            hlc: Arc::new(Hlc {
                id,
                last: Mutex::new((0, 0)),
            }),
        })
    }

    async fn call(&self, op: Op) -> Result<NodeReply, String> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send((op, tx))
            .map_err(|_| "the stack stopped".to_string())?;
        rx.await
            .map_err(|_| "the stack dropped the call".to_string())?
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/kv/{key}", get(read).put(write).delete(delete))
            .route("/healthz", get(|| async { "ready\n" }))
            .with_state(self.clone())
    }

    async fn put(&self, key: String, value: Option<String>) -> Response {
        if let Some(bad) = refused(&key) {
            return bad;
        }
        let entry = Entry {
            value,
            version: self.hlc.next(),
        };
        match self.call(Op::Put(key, entry)).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => unavailable(e),
        }
    }
}

/// A key the gateway refuses, as the `400` that says why.
fn refused(key: &str) -> Option<Response> {
    (key.len() > MAX_KEY).then(|| {
        let why = format!("keys are at most {MAX_KEY} bytes\n");
        (StatusCode::BAD_REQUEST, why).into_response()
    })
}

fn unavailable(e: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
}

async fn read(State(gateway): State<Gateway>, Path(key): Path<String>) -> Response {
    if let Some(bad) = refused(&key) {
        return bad;
    }
    match gateway.call(Op::Get(key)).await {
        Ok(NodeReply {
            entry: Some(Entry {
                value: Some(value), ..
            }),
            ..
        }) => value.into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, "no such key\n").into_response(),
        Err(e) => unavailable(e),
    }
}

async fn write(State(gateway): State<Gateway>, Path(key): Path<String>, body: Bytes) -> Response {
    match String::from_utf8(body.to_vec()) {
        Ok(value) => gateway.put(key, Some(value)).await,
        Err(_) => (StatusCode::BAD_REQUEST, "values are UTF-8 text\n").into_response(),
    }
}

async fn delete(State(gateway): State<Gateway>, Path(key): Path<String>) -> Response {
    gateway.put(key, None).await
}
