//! The stack builder: `StackConfig` as data (round trip, every validation
//! error by its path, the example file), and behaviour through the built
//! stack over in-process replicas.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::breaker::BreakerState;
use tower_fleet::key::Key;
use tower_fleet::signal::{AttemptMark, Carrier, Envelope};
use tower_fleet::stack::{ShardEntry, StackBuilder, StackConfig, StackError};
use tower_fleet::{BoxError, Validate};

/// In-process replicas by address: each answers `"<address>|<key>"`, counts
/// its calls, and fails while told to.
#[derive(Clone, Default)]
struct Fleet {
    calls: Arc<Mutex<HashMap<String, u64>>>,
    failing: Arc<Mutex<HashMap<String, bool>>>,
    total: Arc<AtomicU64>,
}

type Req = Envelope<String>;

impl Fleet {
    fn connect(
        &self,
    ) -> impl Fn(&str) -> tower::util::BoxCloneSyncService<Req, Bytes, BoxError> + Send + Sync + 'static
    {
        let fleet = self.clone();
        move |address: &str| {
            let (fleet, address) = (fleet.clone(), address.to_string());
            tower::util::BoxCloneSyncService::new(service_fn(move |req: Req| {
                let (fleet, address) = (fleet.clone(), address.clone());
                async move {
                    *fleet
                        .calls
                        .lock()
                        .unwrap()
                        .entry(address.clone())
                        .or_default() += 1;
                    fleet.total.fetch_add(1, Ordering::SeqCst);
                    if fleet
                        .failing
                        .lock()
                        .unwrap()
                        .get(&address)
                        .copied()
                        .unwrap_or(false)
                    {
                        return Err::<Bytes, BoxError>(format!("{address} failed").into());
                    }
                    Ok(Bytes::from(format!("{address}|{}", req.payload)))
                }
            }))
        }
    }

    fn calls(&self, address: &str) -> u64 {
        self.calls
            .lock()
            .unwrap()
            .get(address)
            .copied()
            .unwrap_or(0)
    }

    fn fail(&self, address: &str, failing: bool) {
        self.failing
            .lock()
            .unwrap()
            .insert(address.to_string(), failing);
    }
}

fn by_payload(r: &Req) -> Option<Key<'_>> {
    Some(Key::from(r.payload.as_str()))
}

fn config(text: &str) -> StackConfig {
    let config: StackConfig = toml::from_str(text).expect("parses");
    config.validate().expect("valid");
    config
}

const TWO_BY_TWO: &str = r#"
    [shard]
    ready_timeout = "100ms"
    [balance]
    ready_timeout = "100ms"
    [balance.outlier]
    enabled = false
    [[shards]]
    id = "a"
    replicas = ["a0", "a1"]
    [[shards]]
    id = "b"
    replicas = ["b0", "b1"]
"#;

fn answered_by(answer: &Bytes) -> String {
    String::from_utf8_lossy(answer)
        .split('|')
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn the_example_file_parses_validates_and_round_trips() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml"))
        .unwrap();
    let parsed = config(&text);
    assert_eq!(parsed.shards.len(), 3);
    assert!(parsed.cache.is_some() && parsed.retry.is_some() && parsed.breaker.is_some());
    let again: StackConfig = toml::from_str(&toml::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(again, parsed);
}

#[tokio::test]
async fn the_example_file_builds() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fleet.toml"))
        .unwrap();
    let fleet = Fleet::default();
    let (mut stack, handle) = StackBuilder::new(config(&text))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    let answer = stack
        .ready()
        .await
        .unwrap()
        .call(Envelope::new("k".to_string()))
        .await
        .unwrap();
    assert!(answer.ends_with(b"|k"));
    assert_eq!(handle.breakers().len(), 9);
    assert_eq!(handle.snapshot().balances.len(), 3);
}

#[test]
fn every_invalid_field_is_named_by_its_path() {
    let cases: &[(&str, &str)] = &[
        ("", "shards"),
        ("[[shards]]\nid = \"a\"", "shards[0].replicas"),
        ("[[shards]]\nid = \"\"\nreplicas = [\"x\"]", "shards[0].id"),
        ("[[shards]]\nid = \"a\"\nreplicas = [\"x\"]\n[[shards]]\nid = \"a\"\nreplicas = [\"y\"]", "shards[1].id"),
        ("[[shards]]\nid = \"a\"\nweight = 0\nreplicas = [\"x\"]", "shards[0].weight"),
        ("[[shards]]\nid = \"a\"\nreplicas = [\"x\", \"\"]", "shards[0].replicas[1]"),
        ("[[shards]]\nid = \"a\"\nreplicas = [\"x\"]\n[[shards]]\nid = \"b\"\nreplicas = [\"y\", \"z\", \"y\"]", "shards[1].replicas[2]"),
        ("[shard.placement]\nalgorithm = \"maglev\"\ntable_size = 4\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "shard.placement.table_size"),
        ("[shard.placement]\nalgorithm = \"maglev\"\ntable_size = 2\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]\n[[shards]]\nid = \"b\"\nreplicas = [\"y\"]\n[[shards]]\nid = \"c\"\nreplicas = [\"z\"]", "shards"),
        ("[shard.placement]\nalgorithm = \"jump\"\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "shards"),
        ("[cache]\nttl = \"0s\"\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "cache.ttl"),
        ("[retry]\nmax_attempts = 0\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "retry.max_attempts"),
        ("[balance]\nready_timeout = \"0s\"\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "balance.ready_timeout"),
        ("[breaker]\nhalf_open_calls = 0\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "breaker.half_open_calls"),
        ("[timeout]\nrequest = \"0s\"\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "timeout.request"),
        ("[retry]\ntimeout = \"1s\"\n[timeout]\nrequest = \"2s\"\n[[shards]]\nid = \"a\"\nreplicas = [\"x\"]", "timeout.request"),
    ];
    for (text, path) in cases {
        let parsed: StackConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let err = parsed.validate().expect_err(text);
        assert_eq!(err.field(), *path, "{text}: {err}");
    }
    assert!(
        toml::from_str::<StackConfig>("[cahce]\nttl = \"1s\"").is_err(),
        "unknown tables are refused"
    );
    assert!(toml::from_str::<StackConfig>("[[shards]]\nid = \"a\"\nreplica = [\"x\"]").is_err());
}

#[tokio::test]
async fn a_key_always_reaches_a_replica_of_its_owning_shard() {
    let fleet = Fleet::default();
    let (mut stack, handle) = StackBuilder::new(config(TWO_BY_TWO))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    for i in 0..200 {
        let key = format!("user:{i}");
        let answer = stack
            .ready()
            .await
            .unwrap()
            .call(Envelope::new(key.clone()))
            .await
            .unwrap();
        let owner = handle.shard().route(key.as_bytes()).unwrap();
        assert!(
            answered_by(&answer).starts_with(owner.as_str()),
            "{key} owned by {owner}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_whose_breaker_opens_stops_receiving_traffic() {
    let fleet = Fleet::default();
    // Round robin, so that a0 keeps its share until its breaker opens (the
    // default peak-EWMA would steer away from it by itself).
    let text = format!(
        "{}\n[breaker]\nconsecutive_failures = 2\nopen_duration = \"60s\"\nopen_jitter = 0.0\n[retry]\nmax_attempts = 3",
        TWO_BY_TWO.replace("[balance.outlier]", "[balance.strategy]\nkind = \"round_robin\"\n[balance.outlier]")
    );
    let (mut stack, handle) = StackBuilder::new(config(&text))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    fleet.fail("a0", true);
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("k{i}"))
        .filter(|k| handle.shard().route(k.as_bytes()).unwrap().as_str() == "a")
        .take(40)
        .collect();
    for k in &keys {
        let answer = stack
            .ready()
            .await
            .unwrap()
            .call(Envelope::new(k.clone()))
            .await;
        assert!(
            answer.is_ok(),
            "retries and the breaker absorb a0's failures"
        );
    }
    let breaker = handle.breaker("a", "a0").unwrap();
    assert_eq!(breaker.state(), BreakerState::Open);
    let before = fleet.calls("a0");
    assert!(
        before <= 3,
        "a0 took {before} calls before its breaker opened"
    );
    for k in &keys {
        stack
            .ready()
            .await
            .unwrap()
            .call(Envelope::new(k.clone()))
            .await
            .unwrap();
    }
    assert_eq!(
        fleet.calls("a0"),
        before,
        "no traffic to a0 while its breaker is open"
    );
}

#[tokio::test]
async fn a_cache_hit_never_reaches_a_replica() {
    let fleet = Fleet::default();
    let text = format!("{TWO_BY_TWO}\n[cache]\nttl = \"60s\"");
    let (mut stack, handle) = StackBuilder::new(config(&text))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    let first = stack
        .ready()
        .await
        .unwrap()
        .call(Envelope::new("user:7".to_string()))
        .await
        .unwrap();
    let calls = fleet.total.load(Ordering::SeqCst);
    for _ in 0..10 {
        let again = stack
            .ready()
            .await
            .unwrap()
            .call(Envelope::new("user:7".to_string()))
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    assert_eq!(fleet.total.load(Ordering::SeqCst), calls);
    assert_eq!(handle.cache().unwrap().snapshot().hits, 10);
}

#[tokio::test]
async fn without_a_cache_table_every_request_reaches_the_fleet() {
    let fleet = Fleet::default();
    let (mut stack, handle) = StackBuilder::new(config(TWO_BY_TWO))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    for _ in 0..5 {
        stack
            .ready()
            .await
            .unwrap()
            .call(Envelope::new("user:7".to_string()))
            .await
            .unwrap();
    }
    assert_eq!(fleet.total.load(Ordering::SeqCst), 5);
    assert!(handle.cache().is_none() && handle.retry().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_to_another_replica_of_the_same_shard() {
    let fleet = Fleet::default();
    // Least-request picks the replica with fewer requests in flight, or at
    // random on a tie: only the attempt mark keeps a retry off the replica
    // that just failed.
    let text = format!(
        "{}\n[retry]\nmax_attempts = 2\n[retry.budget]\nenabled = false\n",
        TWO_BY_TWO.replace(
            "[balance.outlier]",
            "[balance.strategy]\nkind = \"least_request\"\n[balance.outlier]"
        )
    );
    let (mut stack, handle) = StackBuilder::new(config(&text))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("k{i}"))
        .filter(|k| handle.shard().route(k.as_bytes()).unwrap().as_str() == "b")
        .take(30)
        .collect();
    fleet.fail("b0", true);
    for k in &keys {
        let mut req = Envelope::new(k.clone());
        assert!(req.set_attempt(AttemptMark::new()));
        let answer = stack.ready().await.unwrap().call(req).await;
        let answer = answer.unwrap_or_else(|e| panic!("{k}: the retry went back to b0: {e}"));
        assert_eq!(answered_by(&answer), "b1");
    }
    assert!(
        fleet.calls("b0") > 0,
        "some first attempts reached b0 and were retried"
    );
}

#[tokio::test]
async fn membership_changes_reach_the_right_balancer() {
    let fleet = Fleet::default();
    let (mut stack, handle) = StackBuilder::new(config(TWO_BY_TWO))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    handle.add_replica("a", "a2").unwrap();
    assert_eq!(handle.balance("a").unwrap().replicas().len(), 3);
    assert_eq!(handle.balance("b").unwrap().replicas().len(), 2);
    assert!(handle.breaker("a", "a2").is_some());
    assert!(handle.remove_replica("a", "a0"));
    assert!(handle.remove_replica("a", "a1"));
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| handle.shard().route(k.as_bytes()).unwrap().as_str() == "a")
        .unwrap();
    let answer = stack
        .ready()
        .await
        .unwrap()
        .call(Envelope::new(key))
        .await
        .unwrap();
    assert_eq!(answered_by(&answer), "a2");
    assert!(matches!(
        handle.add_replica("z", "z0"),
        Err(StackError::UnknownShard(_))
    ));
}

#[test]
fn building_outside_a_runtime_is_a_typed_error() {
    let fleet = Fleet::default();
    let built = StackBuilder::new(StackConfig::fleet(vec![ShardEntry::new("a", ["a0"])]))
        .connector(fleet.connect())
        .key(by_payload)
        .build();
    let Err(err) = built else {
        panic!("built a stack outside a runtime");
    };
    assert!(matches!(err, StackError::NoRuntime(_)), "{err}");
}

#[tokio::test]
async fn clones_of_the_stack_share_its_layers() {
    let fleet = Fleet::default();
    let text = format!("{TWO_BY_TWO}\n[cache]\nttl = \"60s\"");
    let (stack, handle) = StackBuilder::new(config(&text))
        .connector(fleet.connect())
        .key(by_payload)
        .build()
        .unwrap();
    let mut one = stack.clone();
    let mut two = stack;
    one.ready()
        .await
        .unwrap()
        .call(Envelope::new("x".to_string()))
        .await
        .unwrap();
    two.ready()
        .await
        .unwrap()
        .call(Envelope::new("x".to_string()))
        .await
        .unwrap();
    assert_eq!(handle.cache().unwrap().snapshot().hits, 1);
}

#[cfg(not(feature = "dns"))]
#[tokio::test]
async fn a_dns_shard_without_the_dns_feature_is_a_typed_error() {
    let with_dns = config(
        r#"
        [[shards]]
        id = "s0"
        discovery = "kv-s0.kv.svc.cluster.local:8080"
    "#,
    );
    let err = StackBuilder::new(with_dns)
        .connector(Fleet::default().connect())
        .key(by_payload)
        .build()
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, StackError::DiscoveryUnavailable { shard, name }
            if shard.as_str() == "s0" && name == "kv-s0.kv.svc.cluster.local:8080"),
        "{err}"
    );
    assert!(err.to_string().contains("`dns` feature"), "{err}");
}

#[tokio::test]
async fn build_quorum_with_finishes_each_answer_before_the_cache_keeps_it() {
    use tower_fleet::balance::{newest, QuorumKind, QuorumResponse};
    let config = config(
        r#"
        [cache]
        ttl = "60s"
        [balance.quorum]
        read = 3
        write = 2
        [[shards]]
        id = "only"
        replicas = ["v1", "v3", "v2"]
    "#,
    );
    // Each replica answers the version in its name.
    let connect = |address: &str| {
        let version: u32 = address[1..].parse().unwrap();
        service_fn(move |_req: Req| async move { Ok::<_, BoxError>(version) })
    };
    let lagging = Arc::new(Mutex::new(Vec::new()));
    let seen = lagging.clone();
    let finish = move |answer: QuorumResponse<u32, u32>| {
        let mut behind: Vec<String> = answer
            .lagging(|v| *v)
            .into_iter()
            .map(|r| r.to_string())
            .collect();
        behind.sort();
        seen.lock().unwrap().push(behind);
        format!("newest {}", answer.merged)
    };
    let (mut stack, handle) = StackBuilder::new(config)
        .connector(connect)
        .key(by_payload)
        .build_quorum_with(QuorumKind::Read, newest(|v: &u32| *v), finish)
        .unwrap();
    for _ in 0..2 {
        let answer = stack
            .ready()
            .await
            .unwrap()
            .call(Envelope::new("k".to_string()))
            .await
            .unwrap();
        assert_eq!(answer, "newest 3");
    }
    // The first call was finished once, naming the replicas behind; the
    // second was a cache hit of the finished response.
    assert_eq!(*lagging.lock().unwrap(), [vec!["v1", "v2"]]);
    assert_eq!(handle.cache().unwrap().snapshot().hits, 1);
}
