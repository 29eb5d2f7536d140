//! The stack builder with shards found by DNS: `discovery = "name:port"`
//! shards get their replicas from the (here scripted) resolver, follow its
//! answers, and keep their membership when it fails.
#![cfg(feature = "dns")]

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::discover::{Resolve, ResolveFuture};
use tower_fleet::key::Key;
use tower_fleet::signal::Envelope;
use tower_fleet::stack::{StackBuilder, StackConfig, StackError};
use tower_fleet::{BoxError, Validate};

type Req = Envelope<String>;

/// Answers every name with the addresses set last (`None`: an error).
#[derive(Clone, Default)]
struct Answers(Arc<Mutex<Option<Vec<SocketAddr>>>>);

impl Answers {
    fn set(&self, lasts: Option<&[u8]>) {
        *self.0.lock().unwrap() = lasts.map(|l| {
            l.iter()
                .map(|&i| SocketAddr::from(([10, 1, 0, i], 7000)))
                .collect()
        });
    }
}

impl Resolve for Answers {
    fn resolve(&self, _name: &str) -> ResolveFuture {
        let answer = self.0.lock().unwrap().clone();
        Box::pin(async move {
            answer.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "SERVFAIL"))
        })
    }
}

fn connect(address: &str) -> tower::util::BoxCloneSyncService<Req, Bytes, BoxError> {
    let address = address.to_string();
    tower::util::BoxCloneSyncService::new(service_fn(move |req: Req| {
        let answer = format!("{address}|{}", req.payload);
        async move { Ok::<_, BoxError>(Bytes::from(answer)) }
    }))
}

fn by_payload(r: &Req) -> Option<Key<'_>> {
    Some(Key::from(r.payload.as_str()))
}

async fn get<S>(stack: &mut S, key: &str) -> Bytes
where
    S: Service<Req, Response = Bytes>,
    S::Error: std::fmt::Debug,
{
    stack
        .ready()
        .await
        .unwrap()
        .call(Envelope::new(key.to_string()))
        .await
        .unwrap()
}

const ONE_DNS_SHARD: &str = r#"
    [dns]
    interval = "1s"
    timeout = "500ms"
    [[shards]]
    id = "s0"
    dns = "kv-s0.kv.svc.cluster.local:7000"
"#;

#[test]
fn a_dns_shard_parses_with_either_spelling_and_round_trips() {
    let config: StackConfig = toml::from_str(ONE_DNS_SHARD).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.shards[0].discovery.as_deref(),
        Some("kv-s0.kv.svc.cluster.local:7000")
    );
    assert_eq!(
        config.dns.as_ref().unwrap().interval,
        Duration::from_secs(1)
    );
    let again: StackConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
    assert_eq!(again, config);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dns_answers_become_the_shards_replicas_and_failures_keep_them() {
    let answers = Answers::default();
    answers.set(Some(&[1, 2]));
    let config: StackConfig = toml::from_str(ONE_DNS_SHARD).unwrap();
    let (mut stack, handle) = StackBuilder::new(config)
        .connector(connect)
        .key(by_payload)
        .dns_resolver(answers.clone())
        .build()
        .unwrap();
    let replicas = |h: &tower_fleet::stack::StackHandle<_, _, _>| {
        let mut r: Vec<String> = h
            .balance("s0")
            .unwrap()
            .replicas()
            .into_iter()
            .map(|r| r.id.to_string())
            .collect();
        r.sort();
        r
    };
    common::eventually("both addresses to join", || replicas(&handle).len() == 2).await;
    assert_eq!(replicas(&handle), ["10.1.0.1:7000", "10.1.0.2:7000"]);
    // Discovered replicas are connected and guarded like configured ones.
    assert_eq!(handle.breakers().len(), 2);
    let answer = get(&mut stack, "user:1").await;
    assert!(answer.starts_with(b"10.1.0."), "{answer:?}");

    // One address goes away: it leaves the balancer and the breaker list.
    answers.set(Some(&[2]));
    common::eventually("10.1.0.1 to leave", || replicas(&handle).len() == 1).await;
    assert_eq!(replicas(&handle), ["10.1.0.2:7000"]);
    assert_eq!(handle.breakers().len(), 1);

    // DNS fails, then answers empty: the shard keeps its replica and serves.
    let dns = handle.dns("s0").expect("s0 is discovered").clone();
    answers.set(None);
    common::eventually("a failed resolution", || dns.snapshot().failures >= 1).await;
    answers.set(Some(&[]));
    let failed = dns.snapshot().failures;
    common::eventually("an empty answer", || dns.snapshot().failures > failed).await;
    assert_eq!(replicas(&handle), ["10.1.0.2:7000"]);
    let answer = get(&mut stack, "user:2").await;
    assert!(answer.starts_with(b"10.1.0.2:7000|"), "{answer:?}");
    assert_eq!(dns.snapshot().addresses.len(), 1);
    assert!(dns.snapshot().consecutive_failures >= 2);
}

#[tokio::test]
async fn a_discovery_name_without_a_port_names_the_field() {
    let config: StackConfig = toml::from_str(
        r#"
        [[shards]]
        id = "s0"
        replicas = ["a"]
        [[shards]]
        id = "s1"
        discovery = "kv-s1.kv.svc"
    "#,
    )
    .unwrap();
    let err = StackBuilder::new(config)
        .connector(connect)
        .key(by_payload)
        .build()
        .map(|_| ())
        .unwrap_err();
    match err {
        StackError::Config(e) => assert_eq!(e.field(), "shards[1].discovery"),
        other => panic!("expected a config error, got {other}"),
    }
}

#[cfg(feature = "metrics")]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_discovery_counters_are_published_per_shard() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
    let answers = Answers::default();
    answers.set(Some(&[1, 2, 3]));
    let (_stack, handle) = StackBuilder::new(toml::from_str(ONE_DNS_SHARD).unwrap())
        .connector(connect)
        .key(by_payload)
        .dns_resolver(answers.clone())
        .build()
        .unwrap();
    let dns = handle.dns("s0").unwrap().clone();
    common::eventually("a resolution", || dns.snapshot().resolutions >= 1).await;
    handle.publish_metrics();
    let text = prometheus.render();
    for expected in [
        "tower_fleet_dns_addresses{shard=\"s0\"} 3",
        "tower_fleet_dns_inserted_total{shard=\"s0\"} 3",
        "tower_fleet_dns_consecutive_failures{shard=\"s0\"} 0",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
}
