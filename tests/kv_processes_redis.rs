//! Two `kv-fleet` gateways sharing the Redis cache tier (`--redis URL`,
//! features `kv-fleet` and `redis`), in front of one shard of three nodes,
//! every one a process on a loopback port.
//!
//! The gateways' `[cache] ttl` is five minutes, so a gateway that did not
//! hear of another's write would serve the old value for that long. With
//! the shared tier, a write through one gateway reaches the other's cached
//! copy over Redis pub/sub: the other gateway reads the new value within
//! [`INVALIDATION`] (far below the ttl) and never the old one again, and
//! each gateway reads its own writes at once.
//!
//! Redis is `TOWER_FLEET_REDIS_URL`, or a `redis-server` this test starts on
//! a free loopback port (and kills); without either the test fails, saying
//! so. Every wait polls a condition up to a deadline; every child process is
//! killed when its handle drops.

mod kv_procs;
mod redis_server;
use redis_server::RedisServer;

use std::process::Command;
use std::time::Duration;

use kv_procs::{
    client, gateway_tables, ready, send, wait_until, HttpClient, Proc, TempFile, DEADLINE,
};

/// The gateways' cache ttl: what a missed invalidation would cost.
const TTL: Duration = Duration::from_secs(300);

/// How long another gateway's write may take to reach a gateway's cache:
/// generous for a pub/sub round trip, and far below [`TTL`], so passing
/// within it cannot be the cached copy expiring.
const INVALIDATION: Duration = Duration::from_secs(30);

/// The gateways' stack: quorum W=2 and R=2 of 3, and a long-lived cache
/// (the shard's replicas are appended per run).
fn gateway_config(nodes: &[Proc]) -> String {
    let replicas: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.addr)).collect();
    let mut text = gateway_tables(&format!("{}s", TTL.as_secs()));
    text.push_str(&format!(
        "\n[[shards]]\nid = \"s0\"\nreplicas = [{}]\n",
        replicas.join(", ")
    ));
    text
}

/// Three nodes of shard s0 and two gateways sharing `redis`.
struct Fleet {
    _nodes: Vec<Proc>,
    gateways: Vec<Proc>,
    _config: TempFile,
}

impl Fleet {
    async fn start(client: &HttpClient, redis: &RedisServer) -> Fleet {
        let nodes: Vec<Proc> = (0..3)
            .map(|r| {
                Proc::start(
                    &format!("s0r{r}"),
                    &[
                        "--role",
                        "node",
                        "--listen",
                        "127.0.0.1:0",
                        "--shard",
                        "s0",
                        "--service-time",
                        "1ms",
                    ],
                )
            })
            .collect();
        let path = std::env::temp_dir().join(format!(
            "kv-fleet-redis-gateway-{}-{}.toml",
            std::process::id(),
            nodes[0].addr.port()
        ));
        std::fs::write(&path, gateway_config(&nodes)).unwrap();
        let config = TempFile(path);
        let path = config.0.to_str().unwrap().to_string();
        let gateways = (1..=2)
            .map(|id| {
                let id = id.to_string();
                Proc::start(
                    &format!("gateway {id}"),
                    &[
                        "--role",
                        "gateway",
                        "--listen",
                        "127.0.0.1:0",
                        "--config",
                        &path,
                        "--redis",
                        &redis.url,
                        "--id",
                        &id,
                    ],
                )
            })
            .collect();
        let fleet = Fleet {
            _nodes: nodes,
            gateways,
            _config: config,
        };
        for p in fleet._nodes.iter().chain(&fleet.gateways) {
            wait_until(&format!("{} to be ready", p.name), DEADLINE, || {
                ready(client, p)
            })
            .await;
        }
        // Each gateway subscribes to the invalidations in the background and
        // flushes its first tier when it does: wait for that, so that no
        // flush lands in the middle of a test's cached reads.
        let f = &fleet;
        for g in 0..fleet.gateways.len() {
            wait_until(
                &format!("gateway {g} to subscribe"),
                DEADLINE,
                || async move {
                    f.counter(client, g, "tower_fleet_redis_subscriptions_total")
                        .await
                        >= 1
                },
            )
            .await;
        }
        fleet
    }

    /// Reads `key` through gateway `g`: (status, body), a 404's body left out.
    async fn get(&self, client: &HttpClient, g: usize, key: &str) -> (u16, String) {
        let url = self.gateways[g].url(&format!("/kv/{key}"));
        match send(client, "GET", &url, "").await {
            (404, _) => (404, String::new()),
            answer => answer,
        }
    }

    /// Writes `key = value` (`None` deletes) through gateway `g`, which must
    /// acknowledge it and then read it back at once (read-your-writes).
    async fn write(&self, client: &HttpClient, g: usize, key: &str, value: Option<&str>) {
        let url = self.gateways[g].url(&format!("/kv/{key}"));
        let (method, body) = match value {
            Some(v) => ("PUT", v),
            None => ("DELETE", ""),
        };
        let (status, reply) = send(client, method, &url, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {key} through gateway {g}: {status} {reply}"
        );
        assert_eq!(
            self.get(client, g, key).await,
            expected(value),
            "gateway {g} must read its own write of {key}"
        );
    }

    /// Waits (up to [`INVALIDATION`]) until gateway `g` reads `value` for
    /// `key`, allowing only `old` meanwhile; then it must never read
    /// anything else again.
    async fn converges(
        &self,
        client: &HttpClient,
        g: usize,
        key: &str,
        old: Option<&str>,
        value: Option<&str>,
    ) {
        let (old, new) = (expected(old), expected(value));
        let what = format!("gateway {g} to read {key} = {new:?} (another gateway's write)");
        wait_until(&what, INVALIDATION, || async {
            let got = self.get(client, g, key).await;
            assert!(
                got == old || got == new,
                "gateway {g} read {key} = {got:?}: neither {old:?} nor {new:?}"
            );
            got == new
        })
        .await;
        for _ in 0..20 {
            assert_eq!(
                self.get(client, g, key).await,
                new,
                "gateway {g} went back to an old {key} after the invalidation"
            );
        }
    }

    /// The sum of one counter over its label sets on gateway `g`'s `/metrics`.
    async fn counter(&self, client: &HttpClient, g: usize, name: &str) -> u64 {
        let (status, text) = send(client, "GET", &self.gateways[g].url("/metrics"), "").await;
        assert_eq!(status, 200, "gateway {g}'s /metrics: {text}");
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .map(|l| {
                let v = l.rsplit(' ').next().unwrap();
                v.parse::<f64>()
                    .unwrap_or_else(|_| panic!("a number in {l:?}")) as u64
            })
            .sum()
    }
}

/// What a `GET` answers for `value` (`None`: absent or deleted).
fn expected(value: Option<&str>) -> (u16, String) {
    match value {
        Some(v) => (200, v.to_string()),
        None => (404, String::new()),
    }
}

/// Counts the calls that reached the shard's replicas (the cache's misses
/// of both tiers): `tower_fleet_quorum_calls_total`.
const ORIGIN_CALLS: &str = "tower_fleet_quorum_calls_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_gateway_reaches_the_others_cached_copy_through_redis() {
    let redis = RedisServer::start();
    let client = client();
    let fleet = Fleet::start(&client, &redis).await;
    // Keys of this run only: the gateways' namespace ("kv") is fixed, and
    // TOWER_FLEET_REDIS_URL may name a server other runs share.
    let run = format!("{}-{}", std::process::id(), fleet.gateways[0].addr.port());

    for i in 0..5 {
        let key = format!("k{i}-{run}");
        // Gateway 0 writes v1; gateway 1 reads it, and caches it: more reads
        // of it do not reach the replicas.
        fleet.write(&client, 0, &key, Some("v1")).await;
        assert_eq!(fleet.get(&client, 1, &key).await, expected(Some("v1")));
        let calls = fleet.counter(&client, 1, ORIGIN_CALLS).await;
        for _ in 0..5 {
            assert_eq!(fleet.get(&client, 1, &key).await, expected(Some("v1")));
        }
        assert_eq!(
            fleet.counter(&client, 1, ORIGIN_CALLS).await,
            calls,
            "gateway 1 serves {key} from its cache"
        );

        // Gateway 0 overwrites it: gateway 1 drops its cached v1 when the
        // invalidation arrives, long before its ttl would.
        fleet.write(&client, 0, &key, Some("v2")).await;
        fleet
            .converges(&client, 1, &key, Some("v1"), Some("v2"))
            .await;

        // And the other way round: gateway 1 writes, gateway 0 (which has
        // v2 cached from reading its own write) sees it.
        fleet.write(&client, 1, &key, Some("v3")).await;
        fleet
            .converges(&client, 0, &key, Some("v2"), Some("v3"))
            .await;

        // A delete is a write too.
        fleet.write(&client, 0, &key, None).await;
        fleet.converges(&client, 1, &key, Some("v3"), None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_the_redis_tier_serves_prometheus_metrics() {
    let redis = RedisServer::start();
    let client = client();
    let fleet = Fleet::start(&client, &redis).await;
    let key = format!("m-{}", fleet.gateways[0].addr.port());
    fleet.write(&client, 0, &key, Some("v")).await;

    let (status, text) = send(&client, "GET", &fleet.gateways[0].url("/metrics"), "").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&format!("# TYPE {ORIGIN_CALLS} counter")),
        "{text}"
    );
    assert!(
        fleet.counter(&client, 0, ORIGIN_CALLS).await >= 2,
        "a write and a read reached the replicas: {text}"
    );
    assert!(text.contains("tower_fleet_breaker_calls_total{"), "{text}");
    // The cache in front of the stack and the Redis tier under it.
    for counter in [
        "tower_fleet_cache_misses_total",
        "tower_fleet_cache_invalidations_total",
        "tower_fleet_redis_gets_total",
        "tower_fleet_redis_subscriptions_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {counter} counter")),
            "no {counter} in:\n{text}"
        );
    }
}

#[test]
fn a_gateway_refuses_redis_without_a_cache_table() {
    let path = std::env::temp_dir().join(format!("kv-fleet-no-cache-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[shards]]\nid = \"s0\"\nreplicas = [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    let _cleanup = TempFile(path.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_kv-fleet"))
        .args(["--role", "gateway", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .args(["--redis", "redis://127.0.0.1:1/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--redis redis://127.0.0.1:1/"), "{stderr}");
    assert!(stderr.contains("[cache]"), "{stderr}");
}
