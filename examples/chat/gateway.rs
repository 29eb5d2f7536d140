//! A gateway: serves WebSocket clients and the chat page, and talks to the
//! nodes for them.
//!
//! - **Posts and history reads** go through the stack (cache -> retry ->
//!   shard -> breaker -> timeout -> HTTP client, `upstream.rs`). History
//!   reads are cached per room for `history_ttl`; a post through this
//!   gateway invalidates its room's entry, so this gateway's next read sees
//!   it. Posts through *other* gateways show in this gateway's cached
//!   history once the entry expires (live delivery is never cached, see
//!   below).
//! - **Failover**: the stack keeps each room on its owner (`hops = 0`).
//!   When a request fails after the stack's retries, or the owner answers
//!   that it was fenced or is stopping, the gateway gives the owner up: it
//!   removes it from the shard layer's membership, so the room goes to the
//!   next node of its preference list (rendezvous placement), and sends the
//!   request again with the same post id, so a post the old owner did store
//!   is not stored twice. The nodes given up on travel with every post, and
//!   nodes report those they know, so gateways learn from each other.
//! - **Live delivery**: one subscription per room to its owner (a streaming
//!   response of one JSON event per line), whatever the number of this
//!   gateway's clients in the room, ended when the last of them leaves. It keeps the last [`RECENT`] messages
//!   and the last sequence number seen; when the stream ends or fails it
//!   subscribes again (to the next owner, once the old one has been given
//!   up on) *after that number*, so its clients see no gap and no duplicate.
//!   Each client gets the room's history on joining, then every message
//!   with a higher number, in order.
//! - **Bad frames**: a frame that is not JSON text of a known shape closes
//!   that client's connection with code 1007 (1003 for binary frames) and a
//!   reason; a frame over [`MAX_FRAME`](crate::wire::MAX_FRAME) bytes closes
//!   it with 1009. A bad name or text gets an error frame and the connection
//!   stays. Other clients never notice.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{Method, Request, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::upstream::{
    self, HttpClient, NodeRequest, NodeResponse, Upstream, UpstreamConfig, UpstreamHandles,
};
use crate::wire::{
    self, ClientFrame, Event, History, Message, Post, Refusal, RefusalKind, ServerFrame,
};

/// How many recent messages a gateway keeps per room for its clients.
pub const RECENT: usize = 1_000;

/// How long a gateway keeps trying one post or history read (moving the
/// room along its preference list as nodes fail) before it answers with an
/// error frame.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

const PAGE: &str = include_str!("static/index.html");

/// One room's live feed on a gateway.
struct Feed {
    recent: Mutex<VecDeque<Message>>,
    last: watch::Sender<u64>,
    /// This gateway's clients in the room; changed under the feeds' lock.
    clients: watch::Sender<usize>,
}

/// A client's place in a room's feed: the subscription ends with the last.
struct Membership {
    gateway: Arc<Gateway>,
    room: String,
    feed: Arc<Feed>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut feeds = self.gateway.feeds.lock().unwrap();
        self.feed.clients.send_modify(|c| *c -= 1);
        if *self.feed.clients.borrow() == 0 {
            feeds.remove(&self.room);
        }
    }
}

impl Feed {
    fn after(&self, seq: u64) -> Result<Vec<Message>, u64> {
        let recent = self.recent.lock().unwrap();
        let Some(first) = recent.front().map(|m| m.seq) else {
            return Ok(Vec::new());
        };
        if first > seq + 1 && seq != 0 {
            return Err(first); // fell behind the buffer
        }
        Ok(recent.iter().filter(|m| m.seq > seq).cloned().collect())
    }
}

/// A gateway's state.
pub struct Gateway {
    upstream: Upstream,
    handles: UpstreamHandles,
    addresses: HashMap<String, SocketAddr>,
    /// The nodes given up on; subscriptions to them end when they join it.
    down: watch::Sender<BTreeSet<String>>,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    client: HttpClient,
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

enum Outgoing {
    Frame(ServerFrame),
    Close(u16, String),
}

impl Gateway {
    /// A gateway to the fleet `nodes`.
    pub fn new(
        nodes: &[(String, SocketAddr)],
        config: &UpstreamConfig,
    ) -> Result<Arc<Gateway>, tower_fleet::BoxError> {
        let client = upstream::http_client();
        let (upstream, handles) = upstream::build(nodes, config, client.clone())?;
        Ok(Arc::new(Gateway {
            upstream,
            handles,
            addresses: nodes.iter().cloned().collect(),
            down: watch::channel(BTreeSet::new()).0,
            feeds: Mutex::new(HashMap::new()),
            client,
            stopping: watch::channel(false).0,
        }))
    }

    /// The page at `/` and the WebSocket at `/ws`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route("/ws", get(ws_handler))
            .with_state(self.clone())
    }

    /// The stack's handles (the cache's counters, the shard membership).
    pub fn handles(&self) -> &UpstreamHandles {
        &self.handles
    }

    /// The nodes this gateway has given up on.
    pub fn down(&self) -> Vec<String> {
        self.down.borrow().iter().cloned().collect()
    }

    /// Ends the subscriptions (the gateway is stopping).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Gives up on `node`: its rooms move to their next node.
    pub fn give_up(&self, node: &str) {
        if !self.addresses.contains_key(node)
            || !self
                .down
                .send_if_modified(|down| down.insert(node.to_string()))
        {
            return;
        }
        tracing::info!(node, "gateway gives up on node");
        // Keep one member: an empty membership would answer nothing at all.
        if self.handles.shard.members().len() > 1 {
            let _ = self.handles.shard.remove(node);
        }
    }

    /// Sends a request made by `make` to the room's owner, moving the room
    /// along its preference list as owners fail, until a 200 or the deadline.
    async fn call(
        &self,
        room: &str,
        make: impl Fn(Vec<String>) -> NodeRequest,
    ) -> Result<NodeResponse, String> {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let mut pause = Duration::from_millis(5);
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let Some(owner) = self.handles.shard.route(room.as_bytes()) else {
                return Err("no node".into());
            };
            let owner = owner.as_str().to_string();
            match self.upstream.clone().oneshot(make(self.down())).await {
                Ok(r) if r.status == StatusCode::OK => return Ok(r),
                Ok(r) => {
                    let refusal: Option<Refusal> = serde_json::from_slice(&r.body).ok();
                    let Some(refusal) = refusal else {
                        return Err(format!("node {owner} answered {}", r.status));
                    };
                    for n in &refusal.down {
                        self.give_up(n);
                    }
                    match refusal.kind {
                        RefusalKind::BadRequest => return Err(refusal.reason),
                        RefusalKind::Fenced | RefusalKind::Stopping => self.give_up(&owner),
                        RefusalKind::NotOwner | RefusalKind::NoReplica => {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(200));
                        }
                    }
                    last_error = format!("{owner}: {}", refusal.reason);
                }
                Err(e) => {
                    last_error = format!("{owner}: {e}");
                    self.give_up(&owner);
                }
            }
        }
        Err(format!("gave up: {last_error}"))
    }

    /// Posts to a room; the message's sequence number once two nodes hold it.
    pub async fn post(&self, room: &str, id: &str, user: &str, text: &str) -> Result<u64, String> {
        let response = self
            .call(room, |down| {
                let post = Post {
                    id: id.to_string(),
                    user: user.to_string(),
                    text: text.to_string(),
                    down,
                };
                NodeRequest::Post {
                    room: room.to_string(),
                    body: serde_json::to_vec(&post).unwrap_or_default().into(),
                }
            })
            .await?;
        let ack: wire::Ack = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        for n in &ack.down {
            self.give_up(n);
        }
        Ok(ack.seq)
    }

    /// A room's history, through the cache.
    pub async fn history(&self, room: &str) -> Result<Vec<Message>, String> {
        let response = self
            .call(room, |_| NodeRequest::History {
                room: room.to_string(),
            })
            .await?;
        let history: History = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        Ok(history.messages)
    }

    /// How many rooms this gateway follows (has clients in).
    pub fn rooms_followed(&self) -> usize {
        self.feeds.lock().unwrap().len()
    }

    /// Joins a client to a room's feed, starting the room's subscription if
    /// it is the gateway's first client there.
    fn join(self: &Arc<Self>, room: &str) -> Membership {
        let mut feeds = self.feeds.lock().unwrap();
        let (feed, new) = match feeds.get(room) {
            Some(feed) => (feed.clone(), false),
            None => {
                let feed = Arc::new(Feed {
                    recent: Mutex::new(VecDeque::new()),
                    last: watch::channel(0).0,
                    clients: watch::channel(0).0,
                });
                feeds.insert(room.to_string(), feed.clone());
                (feed, true)
            }
        };
        feed.clients.send_modify(|c| *c += 1);
        if new {
            tokio::spawn(self.clone().follow(room.to_string(), feed.clone()));
        }
        Membership {
            gateway: self.clone(),
            room: room.to_string(),
            feed,
        }
    }

    /// The subscription of one room: follows its owner, resuming after the
    /// last number seen.
    async fn follow(self: Arc<Self>, room: String, feed: Arc<Feed>) {
        let mut stopping = self.stopping.subscribe();
        let mut clients = feed.clients.subscribe();
        let mut pause = Duration::from_millis(5);
        loop {
            if *stopping.borrow() || *clients.borrow() == 0 {
                return;
            }
            let got = tokio::select! {
                got = self.subscribe_once(&room, &feed) => got,
                _ = stopping.wait_for(|s| *s) => return,
                _ = clients.wait_for(|c| *c == 0) => return,
            };
            if got {
                pause = Duration::from_millis(5);
            } else {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }

    /// One subscription, until it ends; whether it delivered anything.
    async fn subscribe_once(&self, room: &str, feed: &Feed) -> bool {
        let Some(owner) = self.handles.shard.route(room.as_bytes()) else {
            return false;
        };
        let owner = owner.as_str().to_string();
        let Some(address) = self.addresses.get(&owner) else {
            return false;
        };
        let after = *feed.last.borrow();
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!(
                "http://{address}/rooms/{room}/subscribe?after={after}"
            ))
            .body(axum::body::Body::empty());
        let Ok(request) = request else { return false };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                if crate::node::is_connect_error(&e) {
                    self.give_up(&owner);
                }
                return false;
            }
        };
        if response.status() != StatusCode::OK {
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let refusal: Option<Refusal> = body.ok().and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(r) = refusal {
                if matches!(r.kind, RefusalKind::Fenced | RefusalKind::Stopping) {
                    self.give_up(&owner);
                }
            }
            return false;
        }
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        let mut got = false;
        // A slow owner given up on may keep the stream open without sending
        // what its successor now acknowledges: leave it at once.
        let mut down = self.down.subscribe();
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                _ = down.wait_for(|d| d.contains(&owner)) => return true,
            };
            let Some(Ok(frame)) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                match serde_json::from_slice::<Event>(&line) {
                    Ok(Event::Message(m)) => {
                        got = true;
                        let mut recent = feed.recent.lock().unwrap();
                        if m.seq > *feed.last.borrow() {
                            let seq = m.seq;
                            recent.push_back(m);
                            if recent.len() > RECENT {
                                recent.pop_front();
                            }
                            feed.last.send_replace(seq);
                        }
                    }
                    Ok(Event::Moved) => return true,
                    Err(e) => tracing::warn!(%e, "bad subscription line"),
                }
            }
        }
        got
    }
}

async fn ws_handler(State(gateway): State<Arc<Gateway>>, ws: WebSocketUpgrade) -> Response {
    // Frames up to 64 KiB are read whole, so that one over MAX_FRAME gets
    // a close frame with a reason rather than a torn connection.
    ws.max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .on_upgrade(move |socket| client_session(gateway, socket))
        .into_response()
}

async fn client_session(gateway: Arc<Gateway>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Outgoing>(1024);
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let message = match out {
                Outgoing::Frame(frame) => match serde_json::to_string(&frame) {
                    Ok(text) => WsMessage::Text(text.into()),
                    Err(_) => continue,
                },
                Outgoing::Close(code, reason) => {
                    let _ = sink
                        .send(WsMessage::Close(Some(CloseFrame {
                            code,
                            reason: Utf8Bytes::from(reason),
                        })))
                        .await;
                    break;
                }
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut joined: HashMap<String, (String, JoinHandle<()>)> = HashMap::new();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(WsMessage::Text(text)) => text,
            Ok(WsMessage::Binary(_)) => {
                let _ = tx
                    .send(Outgoing::Close(
                        1003,
                        "binary frames are not accepted".into(),
                    ))
                    .await;
                break;
            }
            Ok(WsMessage::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                // Past the 64 KiB read limit the frame is not read at all.
                let reason = e.to_string();
                let code = if reason.contains("Space limit") {
                    1009
                } else {
                    1002
                };
                let _ = tx
                    .send(Outgoing::Close(code, format!("unreadable frame: {reason}")))
                    .await;
                break;
            }
        };
        if text.len() > wire::MAX_FRAME {
            let reason = format!(
                "frame of {} bytes exceeds the limit of {}",
                text.len(),
                wire::MAX_FRAME
            );
            let _ = tx.send(Outgoing::Close(1009, reason)).await;
            break;
        }
        let frame: ClientFrame = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx
                    .send(Outgoing::Close(1007, format!("malformed frame: {e}")))
                    .await;
                break;
            }
        };
        tasks.retain(|t| !t.is_finished());
        match frame {
            ClientFrame::Join { room, user } => {
                if let Err(reason) =
                    wire::check_name("room", &room).and(wire::check_name("user", &user))
                {
                    refuse(&tx, None, reason).await;
                    continue;
                }
                if let Some((_, old)) = joined.remove(&room) {
                    old.abort();
                }
                let forwarder = tokio::spawn(forward(gateway.clone(), room.clone(), tx.clone()));
                joined.insert(room, (user, forwarder));
            }
            ClientFrame::Post { room, id, text } => {
                let Some((user, _)) = joined.get(&room) else {
                    let reason = format!("join {room} before posting to it");
                    refuse(&tx, Some(id), reason).await;
                    continue;
                };
                if let Err(reason) = wire::check_name("id", &id).and(wire::check_text(&text)) {
                    refuse(&tx, Some(id), reason).await;
                    continue;
                }
                let (gateway, tx, user) = (gateway.clone(), tx.clone(), user.clone());
                tasks.push(tokio::spawn(async move {
                    let frame = match gateway.post(&room, &id, &user, &text).await {
                        Ok(seq) => ServerFrame::Ack { room, id, seq },
                        Err(reason) => ServerFrame::Error {
                            id: Some(id),
                            reason,
                        },
                    };
                    let _ = tx.send(Outgoing::Frame(frame)).await;
                }));
            }
            ClientFrame::History { room } => {
                if let Err(reason) = wire::check_name("room", &room) {
                    refuse(&tx, None, reason).await;
                    continue;
                }
                let (gateway, tx) = (gateway.clone(), tx.clone());
                tasks.push(tokio::spawn(async move {
                    let frame = match gateway.history(&room).await {
                        Ok(messages) => ServerFrame::History { room, messages },
                        Err(reason) => ServerFrame::Error { id: None, reason },
                    };
                    let _ = tx.send(Outgoing::Frame(frame)).await;
                }));
            }
        }
    }
    for (_, (_, forwarder)) in joined {
        forwarder.abort();
    }
    for task in tasks {
        task.abort();
    }
    drop(tx);
    let _ = writer.await;
}

/// Answers a client's request with an error frame; its connection stays.
async fn refuse(tx: &mpsc::Sender<Outgoing>, id: Option<String>, reason: String) {
    let _ = tx
        .send(Outgoing::Frame(ServerFrame::Error { id, reason }))
        .await;
}

/// Sends one client a room's history, then every newer message in order.
async fn forward(gateway: Arc<Gateway>, room: String, tx: mpsc::Sender<Outgoing>) {
    let membership = gateway.join(&room);
    let feed = membership.feed.clone();
    let mut changed = feed.last.subscribe();
    let history = match gateway.history(&room).await {
        Ok(h) => h,
        Err(reason) => {
            refuse(&tx, None, reason).await;
            Vec::new()
        }
    };
    let mut last = history.last().map_or(0, |m| m.seq);
    let joined = ServerFrame::Joined {
        room: room.clone(),
        messages: history,
    };
    if tx.send(Outgoing::Frame(joined)).await.is_err() {
        return;
    }
    loop {
        changed.mark_unchanged();
        let messages = match feed.after(last) {
            Ok(m) => m,
            Err(first) => {
                let reason = format!("client fell behind in {room}: at {last}, kept from {first}");
                let _ = tx.send(Outgoing::Close(1008, reason)).await;
                return;
            }
        };
        for m in messages {
            last = m.seq;
            if tx
                .send(Outgoing::Frame(ServerFrame::Message(m)))
                .await
                .is_err()
            {
                return;
            }
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}
