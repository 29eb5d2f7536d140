//! The kv example's versioning (`examples/kv_cluster/gateway.rs`):
//! tombstones against stale replicas, concurrent writers converging by
//! last-writer-wins, read repair. Real nodes and gateways on loopback;
//! waits are for conditions, with deadlines that only catch hangs.
#![allow(dead_code)]

mod kv_example;
use kv_example::{cluster, common, gateway, hlc, node};

use std::time::Duration;

use tower_fleet::stack::StackConfig;

use cluster::Cluster;
use common::wait::{wait_until, GENEROUS};
use gateway::{Gateway, GatewayOptions};
use hlc::Version;
use node::{Entry, NodeConfig, NodeControl};

/// 2 shards x 3 replicas, quorum W = 2, R = 2, no cache (every read reaches
/// the replicas).
fn config() -> StackConfig {
    let mut toml = String::from(
        "[retry]\nmax_attempts = 3\n\
         [retry.backoff]\nbase = \"1ms\"\nmax = \"10ms\"\n\
         [shard]\nhops = 0\n\
         [balance.quorum]\nread = 2\nwrite = 2\n\
         [breaker]\nconsecutive_failures = 50\n\
         [timeout]\nrequest = \"2s\"\n",
    );
    for s in 0..2 {
        toml.push_str(&format!(
            "[[shards]]\nid = \"s{s}\"\nreplicas = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\n"
        ));
    }
    toml::from_str(&toml).unwrap()
}

async fn start() -> Cluster {
    let node = NodeConfig {
        concurrency: 16,
        service_time: Duration::from_micros(200),
    };
    Cluster::start(
        config(),
        node,
        GatewayOptions { id: 1, redis: None },
        |_| axum::Router::new(),
    )
    .await
    .unwrap()
}

/// A second gateway over the same fleet, with its own id.
fn second_gateway(cluster: &Cluster) -> Gateway {
    Gateway::new(
        cluster.config.clone(),
        GatewayOptions { id: 2, redis: None },
    )
    .unwrap()
}

fn entry(value: &str, millis: u64) -> Entry {
    Entry {
        value: value.into(),
        version: Version {
            millis,
            counter: 0,
            gateway: 9,
        },
        tombstone: false,
    }
}

/// The replicas of the shard that owns `key`.
fn replicas<'a>(cluster: &'a Cluster, key: &str) -> &'a [NodeControl] {
    let shard = cluster.gateway.shard_of(key).unwrap();
    cluster.shard(shard[1..].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_a_replica_missed_still_reads_as_not_found_and_is_repaired() {
    let cluster = start().await;
    let gateway = &cluster.gateway;
    let key = "doomed";
    gateway.put(key, Some("alive".into())).await.unwrap();
    let nodes = replicas(&cluster, key);
    wait_until("every replica holds the value", GENEROUS, || async {
        nodes.iter().all(|n| n.entry(key).is_some())
    })
    .await
    .unwrap();
    // The first replica fails every request while the delete is written:
    // the delete is acknowledged by the other two and misses it.
    nodes[0].set_flaky(1.0);
    gateway.put(key, None).await.unwrap();
    wait_until(
        "the other two replicas hold the tombstone",
        GENEROUS,
        || async {
            nodes[1..]
                .iter()
                .all(|n| n.entry(key).is_some_and(|e| e.tombstone))
        },
    )
    .await
    .unwrap();
    nodes[0].set_flaky(0.0);
    let stale = nodes[0].entry(key).unwrap();
    assert!(!stale.tombstone && stale.value == "alive", "{stale:?}");
    // Whichever two replicas a read asks, one of them holds the tombstone,
    // which is newer than the stale value: the key stays deleted.
    for _ in 0..30 {
        assert_eq!(gateway.get(key).await.unwrap(), None);
    }
    // And a read that the stale replica answered in time wrote the
    // tombstone back to it.
    wait_until("read repair delivers the tombstone", GENEROUS, || async {
        assert_eq!(gateway.get(key).await.unwrap(), None);
        nodes[0].entry(key).is_some_and(|e| e.tombstone)
    })
    .await
    .unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_brings_a_stale_replica_up_to_date() {
    let cluster = start().await;
    let key = "repair-me";
    let nodes = replicas(&cluster, key);
    // Staged directly on the nodes: two hold the new value, one the old.
    nodes[0].apply(key, entry("old", 1_000));
    nodes[1].apply(key, entry("new", 2_000));
    nodes[2].apply(key, entry("new", 2_000));
    assert_eq!(
        cluster.gateway.get(key).await.unwrap().as_deref(),
        Some("new")
    );
    // The first read that the stale replica answers in time (among the
    // first two) repairs it.
    wait_until("the stale replica is repaired", GENEROUS, || async {
        let read = cluster.gateway.get(key).await.unwrap();
        assert_eq!(read.as_deref(), Some("new"));
        let got = nodes[0].entry(key).unwrap();
        got.value == "new" && got.version.millis == 2_000
    })
    .await
    .unwrap();
    // A replica that has nothing for the key is repaired too.
    let key = "absent-on-one";
    let nodes = replicas(&cluster, key);
    nodes[1].apply(key, entry("x", 3_000));
    nodes[2].apply(key, entry("x", 3_000));
    assert_eq!(
        cluster.gateway.get(key).await.unwrap().as_deref(),
        Some("x")
    );
    wait_until("the empty replica is repaired", GENEROUS, || async {
        let read = cluster.gateway.get(key).await.unwrap();
        assert_eq!(read.as_deref(), Some("x"));
        nodes[0].entry(key).is_some_and(|e| e.value == "x")
    })
    .await
    .unwrap();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_two_gateways_converge_to_one_value_everywhere() {
    let cluster = start().await;
    let (one, two) = (cluster.gateway.clone(), second_gateway(&cluster));
    let keys: Vec<String> = (0..20).map(|i| format!("contended-{i}")).collect();
    let mut writes = tokio::task::JoinSet::new();
    for round in 0..5 {
        for key in &keys {
            for (name, gateway) in [("one", one.clone()), ("two", two.clone())] {
                let (key, value) = (key.clone(), format!("{name}-{round}"));
                writes.spawn(async move {
                    let version = gateway.put(&key, Some(value.clone())).await.unwrap();
                    (key, version, value)
                });
            }
        }
    }
    // The value each key must end with: the one with the greatest version.
    let mut winners = std::collections::BTreeMap::new();
    while let Some(done) = writes.join_next().await {
        let (key, version, value) = done.unwrap();
        let best = winners.entry(key).or_insert((version, value.clone()));
        if version > best.0 {
            *best = (version, value);
        }
    }
    for (key, (version, value)) in &winners {
        let nodes = replicas(&cluster, key);
        wait_until("every replica holds the newest write", GENEROUS, || async {
            nodes
                .iter()
                .all(|n| n.entry(key).is_some_and(|e| e.version == *version))
        })
        .await
        .unwrap();
        for n in nodes {
            assert_eq!(&n.entry(key).unwrap().value, value, "{key} on {}", n.name());
        }
        for gateway in [&one, &two] {
            assert_eq!(gateway.get(key).await.unwrap().as_ref(), Some(value));
        }
    }
    cluster.stop().await;
}
