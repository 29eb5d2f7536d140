//! The canonical stack assembled by hand from the layers, over in-process
//! replicas: cache -> retry -> shard -> one balance per shard -> one breaker
//! per replica -> the replica. Pins that the layers compose (types, errors,
//! readiness) and that their shared signals join them up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::balance::{Balance, BalanceConfig, OutlierConfig, Replica, Strategy};
use tower_fleet::breaker::BreakerConfig;
use tower_fleet::cache::Cache;
use tower_fleet::key::{self, Key};
use tower_fleet::retry::{Backoff, Jitter, Retry};
use tower_fleet::shard::{Member, Shard};
use tower_fleet::BoxError;

/// A replica that answers `"<name>:<key>"`, counts its calls, and fails
/// while told to.
#[derive(Clone)]
struct Node {
    name: String,
    calls: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
}

impl Node {
    fn new(name: String) -> Node {
        Node {
            name,
            calls: Arc::default(),
            failing: Arc::default(),
        }
    }

    fn service(
        &self,
    ) -> impl Service<String, Response = Bytes, Error = BoxError, Future: Send>
           + Clone
           + Send
           + Sync
           + 'static {
        let node = self.clone();
        service_fn(move |key: String| {
            let node = node.clone();
            async move {
                node.calls.fetch_add(1, Ordering::SeqCst);
                if node.failing.load(Ordering::SeqCst) {
                    Err::<Bytes, BoxError>("replica failed".into())
                } else {
                    Ok(Bytes::from(format!("{}:{key}", node.name)))
                }
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_layers_compose_into_the_canonical_stack() {
    // Two shards of two replicas each.
    let nodes: Vec<Vec<Node>> = (0..2)
        .map(|s| (0..2).map(|r| Node::new(format!("s{s}r{r}"))).collect())
        .collect();
    let balance_config = BalanceConfig {
        strategy: Strategy::RoundRobin {},
        outlier: OutlierConfig {
            enabled: false,
            ..OutlierConfig::default()
        },
        ..BalanceConfig::default()
    };
    let breaker_config = BreakerConfig {
        consecutive_failures: Some(2),
        open_jitter: 0.0,
        ..BreakerConfig::replica()
    };
    let mut members = Vec::new();
    for (s, replicas) in nodes.iter().enumerate() {
        let balance = Balance::builder()
            .config(balance_config.clone())
            .replica_breakers(breaker_config.clone())
            .replicas(
                replicas
                    .iter()
                    .map(|n| Replica::new(n.name.as_str(), n.service())),
            )
            .build()
            .unwrap();
        members.push(Member::new(format!("shard-{s}"), balance));
    }
    let shard = Shard::builder()
        .key(|k: &String| Some(Key::from(k.as_str())))
        .health_from_source()
        .members(members)
        .build()
        .unwrap();
    let shard_handle = shard.handle();
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(
            Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(100),
                Jitter::None,
            )
            .unwrap(),
        )
        .build(shard)
        .unwrap();
    let mut stack = Cache::builder()
        .ttl(Duration::from_secs(60))
        .key_fn(key::from_fn(|k: &String| Some(Key::from(k.as_str()))))
        .build(retry)
        .unwrap();
    let cache = stack.handle();

    // A key reaches a replica of its owning shard.
    let key = "user:1".to_string();
    let owner = shard_handle.route(key.as_bytes()).unwrap();
    let answer = stack
        .ready()
        .await
        .unwrap()
        .call(key.clone())
        .await
        .unwrap();
    let replica = std::str::from_utf8(&answer)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let shard_index = owner.as_str().trim_start_matches("shard-");
    assert!(
        replica.starts_with(&format!("s{shard_index}")),
        "{replica} is not in {owner}"
    );

    // A cache hit never reaches a replica.
    let before: u64 = nodes
        .iter()
        .flatten()
        .map(|n| n.calls.load(Ordering::SeqCst))
        .sum();
    let again = stack
        .ready()
        .await
        .unwrap()
        .call(key.clone())
        .await
        .unwrap();
    assert_eq!(again, answer);
    let after: u64 = nodes
        .iter()
        .flatten()
        .map(|n| n.calls.load(Ordering::SeqCst))
        .sum();
    assert_eq!(before, after);
    assert_eq!(cache.snapshot().hits, 1);

    // A failing replica's errors are retried onto its sibling, and its
    // breaker opens so that traffic stops reaching it.
    let s: usize = shard_index.parse().unwrap();
    nodes[s][0].failing.store(true, Ordering::SeqCst);
    for i in 0..20 {
        let k = (0..10_000)
            .map(|j| format!("user:{i}:{j}"))
            .find(|k| shard_handle.route(k.as_bytes()).unwrap() == owner)
            .unwrap();
        let got = stack.ready().await.unwrap().call(k).await;
        assert!(got.is_ok(), "request {i} failed: {:?}", got.err());
    }
    assert!(
        nodes[s][0].calls.load(Ordering::SeqCst) <= 3,
        "the failing replica kept getting traffic after its breaker opened"
    );
}
