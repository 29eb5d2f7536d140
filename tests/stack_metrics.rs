//! The `metrics` feature: every layer's counters reach the `metrics` facade
//! with Prometheus-style names and `shard`/`replica` labels.
#![cfg(feature = "metrics")]

use std::convert::Infallible;

use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::key::Key;
use tower_fleet::stack::{StackBuilder, StackConfig};

#[tokio::test]
async fn every_layer_publishes_its_counters_as_prometheus_text() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");

    let config: StackConfig = toml::from_str(
        r#"
        [cache]
        ttl = "60s"
        [retry]
        max_attempts = 2
        [breaker]
        consecutive_failures = 5
        [[shards]]
        id = "kv-0"
        replicas = ["r0", "r1"]
        [[shards]]
        id = "kv-1"
        replicas = ["r2", "r3"]
        "#,
    )
    .unwrap();
    let connect = |_address: &str| service_fn(|k: String| async move { Ok::<_, Infallible>(k) });
    let (mut stack, handle) = StackBuilder::new(config)
        .connector(connect)
        .key(|k: &String| Some(Key::from(k.as_str())))
        .build()
        .unwrap();
    for i in 0..20 {
        stack
            .ready()
            .await
            .unwrap()
            .call(format!("k{}", i % 5))
            .await
            .unwrap();
    }
    handle.publish_metrics();
    let text = prometheus.render();

    // Every line is a comment or `name{labels} value`.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        assert!(value.parse::<f64>().is_ok(), "not a number: {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels: {line}"
            );
        }
    }
    for expected in [
        "tower_fleet_cache_hits_total 15",
        "tower_fleet_cache_misses_total 5",
        "tower_fleet_retry_requests_total 5",
        "tower_fleet_shard_requests_total{shard=\"kv-0\"}",
        "tower_fleet_balance_requests_total{shard=\"kv-1\",replica=\"r2\"}",
        "tower_fleet_breaker_state{shard=\"kv-0\",replica=\"r0\"} 0",
        "tower_fleet_breaker_calls_total{shard=\"kv-1\",replica=\"r3\"}",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
}
