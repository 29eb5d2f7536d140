//! A tour of the shard layer, in one process and a few seconds:
//!
//! 1. a fleet of four in-memory key-value "nodes" behind a `Shard` router:
//!    writes spread evenly, and every key is read back from the node that owns it;
//! 2. a fifth node joins: consistent hashing moves only about a fifth of the keys;
//! 3. one node hangs: its keys fail fast with a typed "unavailable" error while
//!    the other nodes keep answering (strict ownership, for stateful shards);
//! 4. the same hang with `hops = 1` (for stateless fleets): requests move on to
//!    the next node of the key's preference list instead.
//!
//! ```text
//! cargo run --release --example shard_tour
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Service, ServiceExt};
use tower_fleet::key::Key;
use tower_fleet::shard::{Member, PlacementConfig, Shard, ShardError};
use tower_fleet::signal::{Carrier, ErrorSignals};
use tower_fleet::BoxError;

/// A request to a node.
#[derive(Clone, Debug)]
enum Op {
    Put(String, String),
    Get(String),
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put(k, _) | Op::Get(k) => k,
        }
    }
}

impl Carrier for Op {}

/// An in-memory key-value node. It can be made to hang (never ready), as a
/// node with a full connection pool or a stalled process would.
#[derive(Clone)]
struct Node {
    name: String,
    data: Arc<Mutex<HashMap<String, String>>>,
    hung: Arc<AtomicBool>,
}

impl Node {
    fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            data: Arc::default(),
            hung: Arc::default(),
        }
    }

    fn len(&self) -> usize {
        self.data.lock().map(|d| d.len()).unwrap_or(0)
    }
}

impl Service<Op> for Node {
    type Response = (String, Option<String>);
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.hung.load(Ordering::Relaxed) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, op: Op) -> Self::Future {
        let name = self.name.clone();
        let value = match self.data.lock() {
            Ok(mut data) => match op {
                Op::Put(k, v) => data.insert(k, v),
                Op::Get(k) => data.get(&k).cloned(),
            },
            Err(_) => None,
        };
        Box::pin(async move { Ok((name, value)) })
    }
}

fn key_of(op: &Op) -> Option<Key<'_>> {
    Some(Key::from(op.key()))
}

const KEYS: usize = 20_000;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("tower-fleet shard tour\n======================\n");

    // 1. Four nodes behind a Maglev router.
    let nodes: Vec<Node> = ["node-a", "node-b", "node-c", "node-d"]
        .map(Node::new)
        .to_vec();
    let mut fleet = Shard::builder()
        .key_fn(key_of)
        .ready_timeout(Duration::from_millis(200))
        .members(
            nodes
                .iter()
                .map(|n| Member::new(n.name.as_str(), n.clone())),
        )
        .build()?;
    for i in 0..KEYS {
        let key = format!("user:{i}");
        fleet
            .ready()
            .await?
            .call(Op::Put(key, format!("profile {i}")))
            .await?;
    }
    println!("1. Wrote {KEYS} keys through a Maglev router over 4 nodes:");
    for n in &nodes {
        println!(
            "   {:<8} holds {:>5} keys ({:.1}%)",
            n.name,
            n.len(),
            100.0 * n.len() as f64 / KEYS as f64
        );
    }
    let mut misplaced = 0;
    for i in (0..KEYS).step_by(97) {
        let key = format!("user:{i}");
        let (answered_by, value) = fleet.ready().await?.call(Op::Get(key.clone())).await?;
        let owner = fleet.handle().route(key.as_bytes()).map(|s| s.to_string());
        if value.is_none() || owner.as_deref() != Some(answered_by.as_str()) {
            misplaced += 1;
        }
    }
    println!("   Read back every 97th key: {misplaced} answered by a node other than the owner.\n");

    // 2. A fifth node joins.
    let before: Vec<Option<String>> = (0..KEYS)
        .map(|i| {
            fleet
                .handle()
                .route(format!("user:{i}").as_bytes())
                .map(|s| s.to_string())
        })
        .collect();
    let newcomer = Node::new("node-e");
    fleet
        .handle()
        .insert(Member::new("node-e", newcomer.clone()))?;
    let moved = (0..KEYS)
        .filter(|&i| {
            fleet
                .handle()
                .route(format!("user:{i}").as_bytes())
                .map(|s| s.to_string())
                != before[i]
        })
        .count();
    println!(
        "2. node-e joined: {moved} of {KEYS} keys ({:.1}%) now belong to another node;",
        100.0 * moved as f64 / KEYS as f64
    );
    println!("   the optimum is 1/5 = 20.0%. A stateful fleet copies just those keys to node-e.\n");

    // 3. One node hangs; strict ownership.
    nodes[1].hung.store(true, Ordering::Relaxed);
    let (mut ok, mut unavailable, mut other) = (0, 0, 0);
    let mut retry_hint = None;
    let started = std::time::Instant::now();
    let reads = (0..400).map(|i| fleet.clone().oneshot(Op::Get(format!("user:{i}"))));
    for result in futures::future::join_all(reads).await {
        match result {
            Ok(_) => ok += 1,
            Err(e @ ShardError::Unavailable { .. }) => {
                unavailable += 1;
                retry_hint = e.unavailable().map(|signal| format!("{e} ({signal})"));
            }
            Err(_) => other += 1,
        }
    }
    println!(
        "3. node-b hangs (never ready). 400 concurrent reads with hops = 0 (strict ownership):"
    );
    println!("   {ok} answered by their owners at once, {unavailable} failed with ShardError::Unavailable after");
    println!(
        "   ready_timeout (200ms; all done in {:?}), {other} other errors;",
        started.elapsed()
    );
    if let Some(hint) = retry_hint {
        println!("   e.g. \"{hint}\" (it carries the shared unavailable signal, so retry and caches can react).");
    }
    let stats = fleet.handle().snapshot();
    if let Some(b) = stats.shard("node-b") {
        println!(
            "   node-b's counters: {} requests, {} not-ready timeouts.\n",
            b.requests, b.not_ready_timeouts
        );
    }

    // 4. The same hang in a stateless fleet: move on along the preference list.
    let cache_nodes: Vec<Node> = ["cache-a", "cache-b", "cache-c", "cache-d"]
        .map(Node::new)
        .to_vec();
    cache_nodes[1].hung.store(true, Ordering::Relaxed);
    let stateless = Shard::builder()
        .placement(PlacementConfig::ring(160))
        .key_fn(key_of)
        .hops(1)
        .ready_timeout(Duration::from_millis(50))
        .members(
            cache_nodes
                .iter()
                .map(|n| Member::new(n.name.as_str(), n.clone())),
        )
        .build()?;
    let (mut ok, mut failed) = (0, 0);
    let writes = (0..400).map(|i| {
        stateless
            .clone()
            .oneshot(Op::Put(format!("user:{i}"), "x".into()))
    });
    for result in futures::future::join_all(writes).await {
        match result {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                eprintln!(
                    "   unexpected: {e} (unavailable signal: {:?})",
                    e.unavailable()
                );
            }
        }
    }
    let stats = stateless.handle().snapshot();
    println!("4. The same hang in a stateless fleet with hops = 1 (ring placement):");
    println!("   {ok} of 400 writes succeeded, {failed} failed; {} moved on to the next node of their preference list.", stats.failovers);
    println!("\nNext: BENCHMARKS.md for speed and balance, `cargo test` for the guarantees.");
    Ok(())
}
