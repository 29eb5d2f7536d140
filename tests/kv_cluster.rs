//! The kv example end to end (`examples/kv_cluster`): a small fleet and its
//! gateway in this process, on ephemeral loopback ports, driven over HTTP.
//! Every wait is for a condition, with a deadline that only catches hangs.
#![allow(dead_code)]

mod kv_example;
use kv_example::{cluster, common, gateway, node, stack};

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower_fleet::breaker::BreakerState;
use tower_fleet::stack::StackConfig;

use cluster::Cluster;
use common::http::HttpClient;
use common::wait::{wait_until, GENEROUS};
use gateway::GatewayOptions;
use node::NodeConfig;

type Client = HttpClient<Full<Bytes>>;

/// 3 shards x 3 replicas, quorum W = 2, R = 2; fast nodes.
fn config(cache: bool) -> StackConfig {
    config_with(cache, 3, 3)
}

/// [`config`] with `attempts` per request, and breakers that open (and
/// balancers that eject a replica) after `failures` consecutive failures.
fn config_with(cache: bool, attempts: u32, failures: u32) -> StackConfig {
    let mut toml = format!(
        "[retry]\nmax_attempts = {attempts}\n\
         [retry.backoff]\nbase = \"1ms\"\nmax = \"10ms\"\n\
         [retry.budget]\nratio = 0.5\nmin_per_second = 50\n\
         [shard]\nhops = 0\n\
         [balance]\nready_timeout = \"250ms\"\n\
         [balance.quorum]\nread = 2\nwrite = 2\n\
         [balance.outlier]\nconsecutive_failures = {failures}\n\
         [breaker]\nconsecutive_failures = {failures}\nopen_duration = \"30s\"\n\
         [timeout]\nrequest = \"2s\"\n",
    );
    if cache {
        toml.push_str("[cache]\nttl = \"60s\"\n");
    }
    for s in 0..3 {
        toml.push_str(&format!(
            "[[shards]]\nid = \"s{s}\"\nreplicas = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\n"
        ));
    }
    toml::from_str(&toml).unwrap()
}

fn fast_nodes() -> NodeConfig {
    NodeConfig {
        concurrency: 16,
        service_time: Duration::from_micros(200),
    }
}

async fn start(cache: bool) -> Cluster {
    start_with(config(cache)).await
}

async fn start_with(config: StackConfig) -> Cluster {
    Cluster::start(config, fast_nodes(), GatewayOptions::default(), |_| {
        axum::Router::new()
    })
    .await
    .unwrap()
}

async fn send(client: &Client, method: &str, url: &str, body: &str) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.expect("the gateway answers");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn put(client: &Client, cluster: &Cluster, key: &str, value: &str) -> (u16, String) {
    send(client, "PUT", &cluster.url(&format!("/kv/{key}")), value).await
}

async fn get(client: &Client, cluster: &Cluster, key: &str) -> (u16, String) {
    send(client, "GET", &cluster.url(&format!("/kv/{key}")), "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_read_back_and_a_delete_reads_as_not_found() {
    let cluster = start(true).await;
    let client = common::http::client();
    for i in 0..20 {
        let (key, value) = (format!("user:{i}"), format!("value {i}"));
        assert_eq!(put(&client, &cluster, &key, &value).await.0, 204);
        assert_eq!(get(&client, &cluster, &key).await, (200, value));
    }
    let url = cluster.url("/kv/user:3");
    assert_eq!(send(&client, "DELETE", &url, "").await.0, 204);
    assert_eq!(get(&client, &cluster, "user:3").await.0, 404);
    assert_eq!(get(&client, &cluster, "never-written").await.0, 404);
    // The write reached every replica of its shard (W = 2 acknowledged, the
    // third finished in the background).
    let shard = cluster.gateway.shard_of("user:7").unwrap();
    let s: usize = shard[1..].parse().unwrap();
    wait_until("every replica holds user:7", GENEROUS, || async {
        cluster
            .shard(s)
            .iter()
            .all(|n| n.entry("user:7").is_some_and(|e| e.value == "value 7"))
    })
    .await
    .unwrap();
    let (status, body) = send(&client, "GET", &cluster.url("/healthz"), "").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_loses_one_replica_keeps_serving_and_its_breaker_opens() {
    let cluster = start(false).await;
    let client = common::http::client();
    let dead = cluster.shard(1)[0].clone();
    dead.kill().await;
    for i in 0..40 {
        let key = cluster.key_on(1, &format!("a{i}-"));
        let value = format!("v{i}");
        assert_eq!(
            put(&client, &cluster, &key, &value).await,
            (204, String::new())
        );
        assert_eq!(get(&client, &cluster, &key).await, (200, value));
    }
    let address = dead.addr().to_string();
    wait_until("the dead replica's breaker opens", GENEROUS, || async {
        cluster.gateway.breaker("s1", &address) == Some(BreakerState::Open)
    })
    .await
    .unwrap();
    // The live replicas' breakers stayed closed.
    for live in &cluster.shard(1)[1..] {
        let state = cluster.gateway.breaker("s1", &live.addr().to_string());
        assert_eq!(state, Some(BreakerState::Closed), "{}", live.name());
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_loses_its_quorum_answers_503_and_the_others_keep_serving() {
    let cluster = start(false).await;
    let client = common::http::client();
    let lost = cluster.key_on(2, "lost-");
    assert_eq!(put(&client, &cluster, &lost, "before").await.0, 204);
    cluster.shard(2)[0].kill().await;
    cluster.shard(2)[1].kill().await;
    let (status, body) = get(&client, &cluster, &lost).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("unavailable:"), "{body}");
    let (status, body) = put(&client, &cluster, &lost, "after").await;
    assert_eq!(status, 503, "{body}");
    for shard in [0, 1] {
        for i in 0..10 {
            let key = cluster.key_on(shard, &format!("ok{i}-"));
            assert_eq!(put(&client, &cluster, &key, "v").await.0, 204, "{key}");
            assert_eq!(get(&client, &cluster, &key).await, (200, "v".into()));
        }
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_replica_s_errors_are_absorbed_by_retries_within_the_budget() {
    // Up to 5 attempts; breakers and outlier ejection that tolerate a flaky
    // replica's bursts, so that every call fans out to all three.
    let cluster = start_with(config_with(false, 5, 50)).await;
    let client = common::http::client();
    // One flaky replica of three is absorbed by the quorum (2 of 3) alone.
    // Two of them fail a call now and then (both fail: 1 in 16), and the
    // retry layer sends it again: no request fails.
    cluster.shard(0)[0].set_flaky(0.25);
    cluster.shard(0)[1].set_flaky(0.25);
    for i in 0..150 {
        let key = cluster.key_on(0, &format!("f{i}-"));
        assert_eq!(
            put(&client, &cluster, &key, "v").await,
            (204, String::new())
        );
        assert_eq!(get(&client, &cluster, &key).await, (200, "v".into()));
    }
    let retry = cluster.gateway.snapshot().retry.expect("the stack retries");
    assert!(retry.retries > 0, "{retry:?}");
    assert_eq!(retry.budget_exhausted, 0, "{retry:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_a_repeated_get_and_a_put_through_the_gateway_invalidates_it() {
    let cluster = start(true).await;
    let client = common::http::client();
    let served = || cluster.fleet.nodes().map(|n| n.served()).sum::<u64>();
    assert_eq!(put(&client, &cluster, "hot", "one").await.0, 204);
    assert_eq!(get(&client, &cluster, "hot").await, (200, "one".into()));
    // Let the first read's third leg and any repair finish.
    wait_until("the fleet is idle", GENEROUS, || async {
        let before = served();
        tokio::time::sleep(Duration::from_millis(50)).await;
        served() == before
    })
    .await
    .unwrap();
    let before = served();
    for _ in 0..10 {
        assert_eq!(get(&client, &cluster, "hot").await, (200, "one".into()));
    }
    assert_eq!(served(), before, "cached reads reached the fleet");
    assert_eq!(put(&client, &cluster, "hot", "two").await.0, 204);
    assert_eq!(get(&client, &cluster, "hot").await, (200, "two".into()));
    let cache = cluster.gateway.snapshot().cache.expect("the stack caches");
    assert!(cache.hits >= 10, "{cache:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_4xx() {
    let cluster = start(true).await;
    let client = common::http::client();
    let long = "k".repeat(gateway::MAX_KEY + 1);
    let cases = [
        ("PUT", "/kv/".to_string(), "v".to_string(), 400, "empty"),
        ("GET", "/kv".to_string(), String::new(), 400, "empty"),
        ("GET", format!("/kv/{long}"), String::new(), 400, "at most"),
        ("PUT", format!("/kv/{long}"), "v".into(), 400, "at most"),
        (
            "DELETE",
            format!("/kv/{long}"),
            String::new(),
            400,
            "at most",
        ),
        ("POST", "/kv/a".to_string(), "v".into(), 405, ""),
        ("PATCH", "/kv/a".to_string(), "v".into(), 405, ""),
        (
            "PUT",
            "/kv/a".to_string(),
            "v".repeat(gateway::MAX_VALUE + 1),
            413,
            "",
        ),
    ];
    for (method, path, body, status, says) in cases {
        let (got, text) = send(&client, method, &cluster.url(&path), &body).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(text.contains(says), "{method} {path}: {text}");
    }
    // A value that is not UTF-8.
    let req = http::Request::put(cluster.url("/kv/a"))
        .body(Full::new(Bytes::from_static(&[0xff, 0xfe])))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 400);
    // The largest accepted value and key still work.
    let key = "k".repeat(gateway::MAX_KEY);
    let value = "v".repeat(gateway::MAX_VALUE);
    assert_eq!(put(&client, &cluster, &key, &value).await.0, 204);
    assert_eq!(get(&client, &cluster, &key).await, (200, value));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_reserved_characters_round_trip_and_route_alike() {
    let cluster = start(true).await;
    let client = common::http::client();
    for (key, encoded) in [
        ("a b", "a%20b"),
        ("dir/file?x=1#y", "dir%2Ffile%3Fx%3D1%23y"),
        ("caf\u{e9}", "caf%C3%A9"),
        ("user:42@eu", "user:42@eu"),
    ] {
        assert_eq!(stack::key_path(key), format!("/kv/{encoded}"));
        let value = format!("value of {key}");
        let url = cluster.url(&format!("/kv/{encoded}"));
        assert_eq!(send(&client, "PUT", &url, &value).await.0, 204, "{key}");
        assert_eq!(send(&client, "GET", &url, "").await, (200, value.clone()));
        assert_eq!(cluster.gateway.get(key).await.unwrap(), Some(value.clone()));
        // Stored under the decoded key, on the shard the gateway says.
        let shard = cluster.gateway.shard_of(key).unwrap();
        let nodes = cluster.shard(shard[1..].parse().unwrap());
        wait_until("the owning shard holds the key", GENEROUS, || async {
            nodes.iter().filter(|n| n.entry(key).is_some()).count() >= 2
        })
        .await
        .unwrap();
    }
    cluster.stop().await;
}

#[test]
fn a_bad_config_file_is_an_error_that_names_the_file_and_the_field() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("kv-cluster-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[retry]\nmax_attempts = 0\n[[shards]]\nid = \"s0\"\nreplicas = [\"a:1\"]\n",
    )
    .unwrap();
    let err = cluster::load_config(Some(&path)).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("max_attempts"), "{err}");
    let missing = dir.join("kv-cluster-no-such-file.toml");
    let err = cluster::load_config(Some(&missing)).unwrap_err();
    assert!(err.contains("kv-cluster-no-such-file.toml"), "{err}");
    // The default parses and validates.
    assert_eq!(cluster::load_config(None).unwrap().shards.len(), 4);
}

#[tokio::test]
async fn a_shard_named_by_dns_is_refused_by_the_in_process_fleet() {
    let mut config = config(false);
    config.shards[1].replicas.clear();
    config.shards[1].discovery = Some("kv-s1.example:80".into());
    let err = Cluster::start(config, fast_nodes(), GatewayOptions::default(), |_| {
        axum::Router::new()
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("shards[1] uses `discovery`"),
        "{err}"
    );
}
