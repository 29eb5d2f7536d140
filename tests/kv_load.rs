//! The kv example under load: the load generator's maths and the summary,
//! and the real fleet and gateway (`examples/kv_cluster/cluster.rs`) under
//! load with faults injected.
#![cfg(all(feature = "http", feature = "metrics"))]
#![allow(dead_code)]

mod kv_example;
use kv_example::{cluster, faults, flags, gateway, load, node, prometheus, report, scale, summary};

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name(s: &str, first: fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(first) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Parses the Prometheus text format (version 0.0.4) strictly: every line
/// is empty, a comment (`# HELP` / `# TYPE` well formed), or a sample
/// `name{label="value",...} value [timestamp]`.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.as_slice() {
                ["TYPE", name, kind] => {
                    if !is_name(name, metric_start) {
                        return Err(err("bad metric name"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(kind) {
                        return Err(err("bad type"));
                    }
                }
                ["HELP", name, ..] if !is_name(name, metric_start) => {
                    return Err(err("bad metric name"))
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !is_name(name, metric_start) {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = rest.find('=').ok_or_else(|| err("label without ="))?;
                let label = &rest[..eq];
                if !is_name(label, label_start) {
                    return Err(err("bad label name"));
                }
                let mut chars = rest[eq + 1..].char_indices();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(err("unquoted label value"));
                }
                let mut value = String::new();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => return Err(err("bad escape")),
                        },
                        '"' => {
                            end = Some(eq + 1 + i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| err("unterminated label value"))?;
                labels.push((label.to_string(), value));
                rest = &rest[end..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| err("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("bad value"))?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(err("trailing text"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

#[test]
fn the_prometheus_parser_reads_samples_and_refuses_malformed_lines() {
    let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n\
                b{shard=\"s1\",replica=\"s1r0\"} 0.5 1700000000\n\
                c{v=\"q\\\"\\\\\\n\"} +Inf\n";
    let samples = parse_prometheus(text).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].value, 3.0);
    assert_eq!(samples[1].label("shard"), Some("s1"));
    assert_eq!(samples[1].label("replica"), Some("s1r0"));
    assert_eq!(samples[2].label("v"), Some("q\"\\\n"));
    for bad in [
        "a-b 1",
        "a{shard=s1} 1",
        "a{shard=\"s1\" 1",
        "a one",
        "a",
        "a 1 2 3",
        "# TYPE a countr",
        "a{1x=\"\"} 1",
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

/// A stand-in gateway: keys with an odd number answer 503, others 200 (GET)
/// or 204 (PUT); anything else is a 400.
async fn fake_gateway() -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::{Request, Response, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let key = req
                        .uri()
                        .path()
                        .strip_prefix("/kv/k")
                        .and_then(|n| n.parse::<u64>().ok());
                    let status = match (req.method().as_str(), key) {
                        (_, Some(n)) if n % 2 == 1 => StatusCode::SERVICE_UNAVAILABLE,
                        ("GET", Some(_)) => StatusCode::OK,
                        ("PUT", Some(_)) => StatusCode::NO_CONTENT,
                        _ => StatusCode::BAD_REQUEST,
                    };
                    let mut res = Response::new(Full::new(bytes::Bytes::from_static(b"x")));
                    *res.status_mut() = status;
                    Ok::<_, std::convert::Infallible>(res)
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn parity_of_key(key: &str) -> String {
    let n: u64 = key[1..].parse().unwrap();
    if n % 2 == 1 { "odd" } else { "even" }.to_string()
}

/// A quiet run (no progress line) at `pace` for `millis`.
fn quiet(pace: load::Pace, millis: u64) -> load::LoadConfig {
    load::LoadConfig {
        pace,
        duration: std::time::Duration::from_millis(millis),
        progress: false,
        ..load::LoadConfig::default()
    }
}

/// Runs `config` against the stand-in gateway, its shards being key parity.
async fn against_stand_in(
    config: load::LoadConfig,
    events: Vec<load::Scheduled>,
) -> report::LoadReport {
    let gateway = fake_gateway().await;
    load::run(gateway, &config, std::sync::Arc::new(parity_of_key), events)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_generator_counts_failures_by_operation_shard_and_cause() {
    let config = load::LoadConfig {
        reads: 0.5,
        keys: 50,
        zipf: 0.0,
        ..quiet(load::Pace::Concurrency(4), 300)
    };
    let report = against_stand_in(config, Vec::new()).await;
    let (even, odd) = (report.shard("even"), report.shard("odd"));
    assert_eq!(even.failed(), 0, "{report:?}");
    assert!(even.reads.ok > 0 && even.writes.ok > 0, "{report:?}");
    assert_eq!((odd.reads.ok, odd.writes.ok), (0, 0), "{report:?}");
    assert!(odd.reads.failed > 0 && odd.writes.failed > 0, "{report:?}");
    assert_eq!(report.causes.get("503").copied(), Some(report.failed()));
    assert_eq!(report.requests(), report.histogram.len());
    assert_eq!(report.shards.len(), 2);
}

#[tokio::test]
async fn the_open_loop_sends_exactly_the_scheduled_requests() {
    let report = against_stand_in(quiet(load::Pace::Rate(1000.0), 500), Vec::new()).await;
    // 1000/s for 0.5 s is 500 requests, each sent or counted as not sent.
    assert_eq!(report.requests() + report.not_sent, 500, "{report:?}");
}

#[tokio::test]
async fn scheduled_actions_fire_during_the_run() {
    let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = fired.clone();
    let event = load::Scheduled {
        at: std::time::Duration::from_millis(50),
        what: "flag".into(),
        action: Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)),
    };
    against_stand_in(quiet(load::Pace::Concurrency(1), 200), vec![event]).await;
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn the_metrics_route_serves_a_stack_s_counters_as_prometheus_text() {
    use tower::{Service, ServiceExt};
    let config: tower_fleet::stack::StackConfig = toml::from_str(
        r#"
        [cache]
        ttl = "60s"
        [retry]
        max_attempts = 2
        [[shards]]
        id = "m0"
        replicas = ["m0r0", "m0r1"]
        "#,
    )
    .unwrap();
    let connect = |_: &str| {
        tower::service_fn(|k: String| async move { Ok::<_, std::convert::Infallible>(k) })
    };
    let (mut stack, handle) = tower_fleet::stack::StackBuilder::new(config)
        .connector(connect)
        .key(|k: &String| Some(tower_fleet::key::Key::from(k.as_str())))
        .build()
        .unwrap();
    for i in 0..10 {
        stack
            .ready()
            .await
            .unwrap()
            .call(format!("k{}", i % 2))
            .await
            .unwrap();
    }
    let response = prometheus::metrics_route(handle)
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        prometheus::PROMETHEUS_TEXT
    );
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let samples = parse_prometheus(std::str::from_utf8(&body).unwrap()).unwrap();
    // The recorder is the process's, shared with the other tests' stacks:
    // look at the series only this stack has (its shard and replica names).
    let calls: f64 = samples
        .iter()
        .filter(|s| {
            s.name == "tower_fleet_balance_requests_total" && s.label("shard") == Some("m0")
        })
        .map(|s| s.value)
        .sum();
    // Ten calls over two keys: two cache misses reached a replica.
    assert_eq!(calls, 2.0, "{samples:?}");
}

/// Starts the kv example's fleet and gateway (with `/metrics`) from
/// `config`, with nodes of `node`'s capacity.
async fn start(
    config: tower_fleet::stack::StackConfig,
    node: node::NodeConfig,
) -> cluster::Cluster {
    cluster::Cluster::start(config, node, gateway::GatewayOptions::default(), |g| {
        let g = g.clone();
        prometheus::metrics_route_with(move || g.publish_metrics())
    })
    .await
    .unwrap()
}

/// The example's stack (examples/kv_cluster.toml), with `shards` shards.
fn example_config(shards: usize, cache: bool) -> tower_fleet::stack::StackConfig {
    let mut config = scale::fleet_config(&cluster::default_config(), shards);
    if cache {
        config.cache = cluster::default_config().cache;
    }
    config
}

/// Runs `config` against `cluster` with `faults` injected; returns the
/// report and what the layers did meanwhile.
async fn run_with_faults(
    cluster: &cluster::Cluster,
    config: &load::LoadConfig,
    faults: &[(String, flags::Fault)],
) -> (report::LoadReport, summary::LayerCounters) {
    let events = faults::plan(faults, config.duration, |name| {
        cluster.fleet.node(name).cloned()
    })
    .unwrap();
    let before = summary::LayerCounters::from_snapshot(&cluster.gateway.snapshot());
    let report = load::run(cluster.addr(), config, cluster.shard_of(), events)
        .await
        .unwrap();
    let layers = summary::LayerCounters::from_snapshot(&cluster.gateway.snapshot()).since(&before);
    (report, layers)
}

fn quick_nodes(service_time: std::time::Duration) -> node::NodeConfig {
    node::NodeConfig {
        concurrency: 8,
        service_time,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_loses_one_replica_under_load_fails_no_read_or_write() {
    let cluster = start(
        example_config(3, true),
        quick_nodes(std::time::Duration::from_millis(1)),
    )
    .await;
    let config = load::LoadConfig {
        keys: 300,
        pace: load::Pace::Concurrency(16),
        duration: std::time::Duration::from_secs(3),
        progress: false,
        ..load::LoadConfig::default()
    };
    let kill = [(
        "s1r0".to_string(),
        flags::Fault::Kill(Some(std::time::Duration::from_secs(1))),
    )];
    let (report, layers) = run_with_faults(&cluster, &config, &kill).await;
    let table = summary::Summary {
        report: &report,
        layers: &layers,
        names: &cluster.names,
    };
    println!("{table}");
    let s1 = report.shard("s1");
    assert!(s1.reads.ok > 0 && s1.writes.ok > 0, "{table}");
    assert_eq!(s1.reads.failed, 0, "failed reads of s1:\n{table}");
    assert_eq!(s1.writes.failed, 0, "failed writes of s1:\n{table}");
    assert_eq!(report.failed(), 0, "{table}");
    // The layers at work: the quorum fan-outs met their quorum without the
    // dead replica, whose calls failed until its breaker opened.
    let dead = cluster.fleet.node("s1r0").unwrap().addr().to_string();
    let dead = &layers.replicas[&("s1".to_string(), dead)];
    assert!(dead.failures >= 1, "{table}");
    assert!(dead.breaker_opens >= 1, "{table}");
    assert_eq!(layers.quorum_failures, 0, "{table}");
    cluster.stop().await;
}

#[tokio::test]
async fn the_gateway_serves_every_layer_s_counters_as_prometheus_text() {
    let cluster = start(
        example_config(2, true),
        quick_nodes(std::time::Duration::ZERO),
    )
    .await;
    let config = load::LoadConfig {
        keys: 20,
        pace: load::Pace::Concurrency(2),
        duration: std::time::Duration::from_millis(300),
        progress: false,
        ..load::LoadConfig::default()
    };
    load::run(cluster.addr(), &config, cluster.shard_of(), Vec::new())
        .await
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = cluster.url("/metrics").parse().unwrap();
    let response = client.get(uri).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = std::str::from_utf8(&body).unwrap();
    let samples = parse_prometheus(text).unwrap();
    let has = |name: &str, labels: &[&str]| {
        samples
            .iter()
            .any(|s| s.name == name && labels.iter().all(|l| s.label(l).is_some()))
    };
    for (name, labels) in [
        ("tower_fleet_cache_misses_total", &[][..]),
        ("tower_fleet_retry_requests_total", &[]),
        ("tower_fleet_shard_requests_total", &["shard"]),
        ("tower_fleet_balance_requests_total", &["shard", "replica"]),
        ("tower_fleet_quorum_calls_total", &["shard"]),
        ("tower_fleet_breaker_calls_total", &["shard", "replica"]),
        ("tower_fleet_breaker_state", &["shard", "replica"]),
    ] {
        assert!(has(name, labels), "no {name} with {labels:?} in:\n{text}");
    }
    let quorum_calls: f64 = samples
        .iter()
        .filter(|s| s.name == "tower_fleet_quorum_calls_total")
        .map(|s| s.value)
        .sum();
    assert!(quorum_calls > 0.0, "{text}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_replica_s_errors_are_absorbed() {
    let cluster = start(
        example_config(2, false),
        quick_nodes(std::time::Duration::from_millis(1)),
    )
    .await;
    let config = quiet(load::Pace::Concurrency(8), 1500);
    let flaky = [("s0r2".to_string(), flags::Fault::Flaky(0.3))];
    let (report, layers) = run_with_faults(&cluster, &config, &flaky).await;
    let flaky = cluster.fleet.node("s0r2").unwrap().addr().to_string();
    let flaky = &layers.replicas[&("s0".to_string(), flaky)];
    assert!(flaky.failures >= 1, "{layers:?}");
    assert_eq!(report.failed(), 0, "{:?} {layers:?}", report.causes);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_replica_is_left_behind_by_the_quorum_and_costs_no_request() {
    // One shard, no cache: every request reaches its three replicas, which
    // serve 4 at once in 5 ms (800/s); the slow one takes 50 ms (80/s).
    let cluster = start(
        example_config(1, false),
        node::NodeConfig {
            concurrency: 4,
            service_time: std::time::Duration::from_millis(5),
        },
    )
    .await;
    let config = load::LoadConfig {
        zipf: 0.0,
        ..quiet(load::Pace::Concurrency(16), 2000)
    };
    let slow = [("s0r1".to_string(), flags::Fault::Slow)];
    let (report, layers) = run_with_faults(&cluster, &config, &slow).await;
    let table = summary::Summary {
        report: &report,
        layers: &layers,
        names: &cluster.names,
    };
    assert_eq!(report.failed(), 0, "{table}");
    // Quorums of two were met by the fast pair; the slow replica, served
    // ten times slower, answered far fewer of the calls sent to it.
    let served = |name: &str| cluster.fleet.node(name).unwrap().served();
    let (slow, fast) = (served("s0r1"), served("s0r0").min(served("s0r2")));
    assert!(slow * 3 < fast, "slow {slow}, fast {fast}\n{table}");
    cluster.stop().await;
}
