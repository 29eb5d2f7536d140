//! A chat node: an HTTP server that owns some rooms and keeps a copy of
//! others.
//!
//! # Placement and replication
//!
//! Every node and every gateway maps a room to nodes with the same
//! rendezvous placement over the same node ids. A room's *preference list*
//! is that order; the room belongs to the first node of the list that is not
//! known to be down, and that owner copies each post to the next node of the
//! list (its *replica*) before it acknowledges the post. Rendezvous (like
//! the ring) has the property this needs: once a room's owner is removed,
//! the room goes exactly to the node that was second, the one that holds the
//! copy.
//!
//! The owner numbers a room's messages 1, 2, 3... It holds the room's lock
//! while it numbers a post, copies it to the replica and stores it, so
//! numbers never skip or repeat; a message is stored and sent to the
//! subscribers only once the replica has it. A post whose id the room holds
//! already (a client's retry) is acknowledged with its first number.
//!
//! # Takeover and the fence
//!
//! Nodes do not watch each other: gateways decide that a node is down (a
//! post or history read failed after the stack's retries, or a subscription
//! could not connect) and pass the nodes they gave up on along with each
//! post. A node that receives a post for a room it is now first for takes
//! the room over: it raises the room's *epoch* to one more than the highest
//! it has seen, and copies its whole history of the room to its own replica
//! before acknowledging anything.
//!
//! Each copy carries the sender's epoch, and a node refuses a copy whose
//! epoch is lower than the room's epoch it knows, or not higher than its own
//! while it owns the room. The old owner's replica is the successor, so once
//! the successor has taken the room, every copy the old owner sends is
//! refused, and the old owner (slow, not dead) cannot acknowledge another
//! post: it marks the room fenced, answers 409 from then on, and ends its
//! subscriptions to the room. Two nodes never both acknowledge posts for one
//! room, because an acknowledgement needs the replica's acceptance and the
//! replica accepts one epoch at a time, under the room's lock.
//!
//! An acknowledged message survives the loss of one node: it is on the owner
//! and on the replica, and the replica is the room's next owner. The
//! successor continues from the last number it holds, which is at least the
//! last acknowledged one: no gap, no duplicate. (A message the replica took
//! but the dead owner never acknowledged is kept and delivered: the client's
//! retry, with the same id, is acknowledged with that number.)
//!
//! # Failure model
//!
//! Nodes fail by stopping (crash-stop) or by being slow; messages may be
//! delayed or lost; a node that has been given up on never comes back in the
//! same run (a rejoin would need a membership service to hand its rooms
//! back). The argument above holds while at most one of a room's owner and
//! its replica fails at a time, i.e. the replica of a new owner gets the
//! room's history before the next failure. A replica that stops is replaced
//! by the next live node of the list once the owner or a gateway has seen it
//! refuse connections; the owner copies the whole history to the new
//! replica first. Not covered: a *replica* wrongly believed down by some
//! parties and alive to others (the owner would stop copying to it while
//! another gateway could still make it the owner); that needs agreement on
//! membership (a consensus store), which this example leaves out.
//!
//! # HTTP API
//!
//! - `POST /rooms/{room}/posts` ([`Post`] in, [`Ack`] or a [`Refusal`] out)
//! - `POST /rooms/{room}/replicate` ([`Replicate`] in; 200 or 409)
//! - `GET /rooms/{room}/history` ([`History`])
//! - `GET /rooms/{room}/subscribe?after=N`: the stored messages after `N`,
//!   then each new one, one [`Event`] per line, until the node stops serving
//!   the room.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tower_fleet::key::KeyHasher;
use tower_fleet::shard::{Placement, Rendezvous, ShardSpec};

use crate::room::Room;
use crate::upstream::{send, HttpClient};
use crate::wire::{self, Ack, Event, History, Message, Post, Refusal, RefusalKind, Replicate};

/// The most rooms one node holds; a post or subscription for one more is
/// refused with 503.
pub const MAX_ROOMS: usize = 10_000;

/// One room on this node.
struct Slot {
    state: tokio::sync::Mutex<RoomState>,
    events: broadcast::Sender<Event>,
}

#[derive(Debug)]
struct RoomState {
    room: Room,
    /// The highest epoch seen for the room.
    epoch: u64,
    /// Whether this node owns the room (at `epoch`).
    owner: bool,
    /// A successor took the room: this node refuses posts for it.
    fenced: bool,
    /// The replica that has this owner's whole history, at `epoch`.
    synced: Option<String>,
}

/// The fleet as a node sees it: every node's address, and the placement.
struct Fleet {
    addresses: HashMap<String, SocketAddr>,
    placement: Rendezvous,
}

/// A chat node's state.
pub struct Node {
    id: String,
    /// Set once every node's address is known (after the servers start).
    fleet: OnceLock<Fleet>,
    capacity: usize,
    rooms: Mutex<HashMap<String, Arc<Slot>>>,
    down: Mutex<BTreeSet<String>>,
    client: HttpClient,
    stopping: watch::Sender<bool>,
    stalled: watch::Sender<bool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a copy to the replica failed.
enum CopyError {
    Fenced(u64),
    Unreachable,
    Failed,
}

impl Node {
    /// Node `id`, keeping `capacity` messages per room. It refuses posts
    /// (503) until it is given its fleet ([`join`](Node::join)).
    pub fn new(id: &str, capacity: usize, client: HttpClient) -> Arc<Node> {
        Arc::new(Node {
            id: id.to_string(),
            fleet: OnceLock::new(),
            capacity,
            rooms: Mutex::new(HashMap::new()),
            down: Mutex::new(BTreeSet::new()),
            client,
            stopping: watch::channel(false).0,
            stalled: watch::channel(false).0,
        })
    }

    /// Gives the node its fleet: every node's id and address, its own
    /// included. Fails on an empty fleet or a second call.
    pub fn join(&self, nodes: &[(String, SocketAddr)]) -> Result<(), tower_fleet::BoxError> {
        let specs: Vec<ShardSpec> = nodes.iter().map(|(id, _)| ShardSpec::new(id)).collect();
        let fleet = Fleet {
            addresses: nodes.iter().cloned().collect(),
            placement: Rendezvous::build(KeyHasher::xxh3(), &specs)?,
        };
        self.fleet
            .set(fleet)
            .map_err(|_| format!("{} already has its fleet", self.id).into())
    }

    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The HTTP routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/rooms/{room}/posts", post(post_handler))
            .route("/rooms/{room}/replicate", post(replicate_handler))
            .route("/rooms/{room}/history", get(history_handler))
            .route("/rooms/{room}/subscribe", get(subscribe_handler))
            .with_state(self.clone())
    }

    /// Stops acknowledging anything and ends every subscription (the node
    /// is being killed).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Makes posts wait, holding their room's lock, before copying to the
    /// replica, until [`resume`](Node::resume): a slow owner, for tests.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Ends a [`stall`](Node::stall).
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// The messages this node holds for `room` (as owner or as replica).
    pub async fn messages(&self, room: &str) -> Vec<Message> {
        match self.slot(room) {
            Some(slot) => slot.state.lock().await.room.after(0),
            None => Vec::new(),
        }
    }

    fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    fn down_list(&self) -> Vec<String> {
        self.down.lock().unwrap().iter().cloned().collect()
    }

    fn mark_down(&self, nodes: &[String]) {
        let mut down = self.down.lock().unwrap();
        for n in nodes {
            let known = self
                .fleet
                .get()
                .is_some_and(|f| f.addresses.contains_key(n));
            if n != &self.id && known {
                down.insert(n.clone());
            }
        }
    }

    /// The room's preference list without the nodes known to be down.
    fn live_list(&self, room: &str) -> Vec<String> {
        let Some(fleet) = self.fleet.get() else {
            return Vec::new();
        };
        let down = self.down.lock().unwrap();
        fleet
            .placement
            .preference_list(room.as_bytes(), fleet.placement.shards().len())
            .into_iter()
            .filter(|id| !down.contains(id.as_str()))
            .map(|id| id.as_str().to_string())
            .collect()
    }

    fn slot(&self, room: &str) -> Option<Arc<Slot>> {
        let mut rooms = self.rooms.lock().unwrap();
        if let Some(slot) = rooms.get(room) {
            return Some(slot.clone());
        }
        if rooms.len() >= MAX_ROOMS {
            return None;
        }
        let slot = Arc::new(Slot {
            state: tokio::sync::Mutex::new(RoomState {
                room: Room::new(self.capacity),
                epoch: 0,
                owner: false,
                fenced: false,
                synced: None,
            }),
            events: broadcast::channel(1024).0,
        });
        rooms.insert(room.to_string(), slot.clone());
        Some(slot)
    }

    fn refuse(&self, kind: RefusalKind, epoch: u64, reason: impl Into<String>) -> Response {
        let status = match kind {
            RefusalKind::Fenced => StatusCode::CONFLICT,
            RefusalKind::NotOwner => StatusCode::MISDIRECTED_REQUEST,
            RefusalKind::NoReplica | RefusalKind::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            RefusalKind::BadRequest => StatusCode::BAD_REQUEST,
        };
        let body = Refusal {
            reason: reason.into(),
            kind,
            epoch,
            down: self.down_list(),
        };
        (status, axum::Json(body)).into_response()
    }

    // The refusals are boxed: a `Response` is large for an `Err`.
    fn parse<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, Box<Response>> {
        serde_json::from_slice(body).map_err(|e| {
            Box::new(self.refuse(RefusalKind::BadRequest, 0, format!("bad request body: {e}")))
        })
    }

    fn fenced(&self, room: &str, epoch: u64) -> Response {
        self.refuse(RefusalKind::Fenced, epoch, format!("{room} was taken over"))
    }

    /// The room's slot, for a request naming it.
    fn slot_for(&self, room: &str) -> Result<Arc<Slot>, Box<Response>> {
        wire::check_name("room", room)
            .map_err(|e| Box::new(self.refuse(RefusalKind::BadRequest, 0, e)))?;
        self.slot(room)
            .ok_or_else(|| Box::new(self.refuse(RefusalKind::NoReplica, 0, "too many rooms")))
    }

    async fn copy(
        &self,
        to: &str,
        room: &str,
        epoch: u64,
        messages: Vec<Message>,
    ) -> Result<(), CopyError> {
        let fleet = self.fleet.get().ok_or(CopyError::Failed)?;
        let address = fleet.addresses.get(to).ok_or(CopyError::Failed)?;
        let body = serde_json::to_vec(&Replicate {
            epoch,
            from: self.id.clone(),
            messages,
        })
        .map_err(|_| CopyError::Failed)?;
        let url = format!("http://{address}/rooms/{room}/replicate");
        match send(&self.client, Method::POST, url, body.into()).await {
            Ok(r) if r.status == StatusCode::OK => Ok(()),
            Ok(r) if r.status == StatusCode::CONFLICT => {
                let refusal: Option<Refusal> = serde_json::from_slice(&r.body).ok();
                Err(CopyError::Fenced(refusal.map_or(epoch + 1, |r| r.epoch)))
            }
            Ok(_) => Err(CopyError::Failed),
            Err(e) if is_connect_error(&*e) => Err(CopyError::Unreachable),
            Err(_) => Err(CopyError::Failed),
        }
    }
}

/// Whether a client error means the peer refused the connection (it has
/// stopped), as opposed to a slow or broken exchange.
pub fn is_connect_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return e.is_connect();
        }
        source = e.source();
    }
    false
}

async fn post_handler(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    body: Bytes,
) -> Response {
    let post: Post = match node.parse(&body) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    if let Err(e) = wire::check_name("id", &post.id)
        .and(wire::check_name("user", &post.user))
        .and(wire::check_text(&post.text))
    {
        return node.refuse(RefusalKind::BadRequest, 0, e);
    }
    node.mark_down(&post.down);
    if node.stopping() {
        return node.refuse(RefusalKind::Stopping, 0, "node stopping");
    }
    if node.fleet.get().is_none() {
        return node.refuse(RefusalKind::NoReplica, 0, "node starting");
    }
    let live = node.live_list(&room);
    if live.first() != Some(&node.id) {
        return node.refuse(
            RefusalKind::NotOwner,
            0,
            format!("{room} belongs to {:?}", live.first()),
        );
    }
    let slot = match node.slot_for(&room) {
        Ok(slot) => slot,
        Err(refusal) => return *refusal,
    };
    let mut st = slot.state.lock().await;
    if st.fenced {
        return node.fenced(&room, st.epoch);
    }
    if !st.owner {
        // Taking the room (first post, or over from a node given up on).
        st.epoch += 1;
        st.owner = true;
        st.synced = None;
    }
    let epoch = st.epoch;
    let _ = node.stalled.subscribe().wait_for(|s| !*s).await;
    let Some(replica) = node.live_list(&room).get(1).cloned() else {
        return node.refuse(RefusalKind::NoReplica, epoch, "no live replica");
    };
    let copy = if st.synced.as_deref() != Some(replica.as_str()) {
        node.copy(&replica, &room, epoch, st.room.after(0)).await
    } else {
        Ok(())
    };
    let message = st.room.next(&room, &post);
    let copy = match (copy, st.room.seq_of(&post.id)) {
        (Ok(()), Some(_)) => Ok(()),
        (Ok(()), None) => {
            st.synced = Some(replica.clone());
            node.copy(&replica, &room, epoch, vec![message.clone()])
                .await
        }
        (e, _) => e,
    };
    match copy {
        Ok(()) => st.synced = Some(replica),
        Err(CopyError::Fenced(theirs)) => {
            st.fenced = true;
            st.owner = false;
            st.epoch = st.epoch.max(theirs);
            let _ = slot.events.send(Event::Moved);
            return node.fenced(&room, st.epoch);
        }
        Err(CopyError::Unreachable) => {
            node.mark_down(&[replica]);
            return node.refuse(RefusalKind::NoReplica, epoch, "replica unreachable");
        }
        Err(CopyError::Failed) => {
            return node.refuse(RefusalKind::NoReplica, epoch, "replica failed");
        }
    }
    if node.stopping() {
        return node.refuse(RefusalKind::Stopping, epoch, "node stopping");
    }
    let seq = match st.room.seq_of(&post.id) {
        Some(seq) => seq,
        None => {
            st.room.append(message.clone());
            let _ = slot.events.send(Event::Message(message.clone()));
            message.seq
        }
    };
    axum::Json(Ack {
        seq,
        down: node.down_list(),
    })
    .into_response()
}

async fn replicate_handler(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    body: Bytes,
) -> Response {
    let copy: Replicate = match node.parse(&body) {
        Ok(c) => c,
        Err(refusal) => return *refusal,
    };
    if node.stopping() {
        return node.refuse(RefusalKind::Stopping, 0, "node stopping");
    }
    let slot = match node.slot_for(&room) {
        Ok(slot) => slot,
        Err(refusal) => return *refusal,
    };
    let mut st = slot.state.lock().await;
    if copy.epoch < st.epoch || (st.owner && copy.epoch <= st.epoch) {
        return node.refuse(
            RefusalKind::Fenced,
            st.epoch,
            format!(
                "{room} is at epoch {}, copy from {} at {}",
                st.epoch, copy.from, copy.epoch
            ),
        );
    }
    if st.owner {
        // A later owner exists: stop serving the room.
        st.owner = false;
        st.fenced = true;
        let _ = slot.events.send(Event::Moved);
    }
    st.epoch = copy.epoch;
    for m in copy.messages {
        if m.room == room && st.room.append(m.clone()) {
            let _ = slot.events.send(Event::Message(m));
        }
    }
    StatusCode::OK.into_response()
}

async fn history_handler(State(node): State<Arc<Node>>, Path(room): Path<String>) -> Response {
    let slot = match node.slot_for(&room) {
        Ok(slot) => slot,
        Err(refusal) => return *refusal,
    };
    let st = slot.state.lock().await;
    if st.fenced {
        return node.fenced(&room, st.epoch);
    }
    axum::Json(History {
        messages: st.room.after(0),
    })
    .into_response()
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn subscribe_handler(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    Query(after): Query<After>,
) -> Response {
    if node.stopping() {
        return node.refuse(RefusalKind::Stopping, 0, "node stopping");
    }
    let slot = match node.slot_for(&room) {
        Ok(slot) => slot,
        Err(refusal) => return *refusal,
    };
    let st = slot.state.lock().await;
    if st.fenced {
        return node.fenced(&room, st.epoch);
    }
    let backlog: Vec<Event> = st
        .room
        .after(after.after)
        .into_iter()
        .map(Event::Message)
        .collect();
    let live = slot.events.subscribe();
    drop(st);
    let stopping = node.stopping.subscribe();
    let state = (backlog.into_iter(), live, stopping, false);
    let stream = futures::stream::unfold(
        state,
        |(mut backlog, mut live, mut stopping, done)| async move {
            if done {
                return None;
            }
            let event = match backlog.next() {
                Some(e) => e,
                None => tokio::select! {
                    r = live.recv() => match r {
                        Ok(e) => e,
                        // Lagged or closed: end; the gateway resumes after its last number.
                        Err(_) => return None,
                    },
                    _ = stopping.wait_for(|s| *s) => return None,
                },
            };
            let done = matches!(event, Event::Moved);
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            Some((
                Ok::<_, Infallible>(Bytes::from(line)),
                (backlog, live, stopping, done),
            ))
        },
    );
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
