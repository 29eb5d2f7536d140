//! End to end over real loopback HTTP servers (hyper), through the whole
//! stack: body buffering -> cache -> retry -> shard -> balance -> breaker ->
//! timeout -> hyper-util's client. Outcomes only, never durations; every
//! request is bounded by a generous timeout that only catches hangs.

#![cfg(feature = "http")]

mod http_common;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use http_common::{response, Origin};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_fleet::balance::{Balance, Replica};
use tower_fleet::breaker::BreakerConfig;
use tower_fleet::cache::Cache;
use tower_fleet::http::key::{PathAndQuery, PathSegment};
use tower_fleet::http::{Http, ReplayBody, SetOriginLayer};
use tower_fleet::retry::{Backoff, Jitter, Retry};
use tower_fleet::shard::{Member, Shard};

/// Answers by path: `/cached` for a minute, `/flaky` 503 then 200,
/// `/orders` 503 then 201.
fn origin() -> Origin {
    Origin::new(|seen, _n| match seen.path.as_str() {
        "/cached" => response(200, &[("cache-control", "max-age=60")], "cached body"),
        path => {
            let earlier = calls_to(path);
            let first = earlier.load(std::sync::atomic::Ordering::SeqCst) == 0;
            earlier.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match (path, first) {
                (_, true) => response(503, &[], "try again"),
                ("/orders", false) => response(201, &[], "created"),
                _ => response(200, &[], "fine now"),
            }
        }
    })
}

fn calls_to(path: &str) -> &'static std::sync::atomic::AtomicUsize {
    use std::sync::atomic::AtomicUsize;
    static FLAKY: AtomicUsize = AtomicUsize::new(0);
    static ORDERS: AtomicUsize = AtomicUsize::new(0);
    static OTHER: AtomicUsize = AtomicUsize::new(0);
    match path {
        "/flaky" => &FLAKY,
        "/orders" => &ORDERS,
        _ => &OTHER,
    }
}

async fn send<S>(svc: &mut S, method: &str, path: &str) -> http::Response<Bytes>
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<Bytes>>,
    S::Error: std::fmt::Debug,
{
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let ready = tokio::time::timeout(Duration::from_secs(30), svc.ready());
    let svc = ready.await.expect("ready in time").unwrap();
    tokio::time::timeout(Duration::from_secs(30), svc.call(req))
        .await
        .expect("answered in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_stack_caches_retries_and_leaves_posts_alone() {
    let origin = origin();
    // Two shards, one replica each, both served by the same origin.
    let addrs = [origin.listen().await, origin.listen().await];
    let http = Http::builder().build().unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();

    let members = addrs.iter().enumerate().map(|(i, addr)| {
        let replica = ServiceBuilder::new()
            .timeout(Duration::from_secs(10))
            .layer(http.buffer_response_layer())
            .layer(http.end_of_stream_layer())
            .layer(SetOriginLayer::new(&format!("http://{addr}")).unwrap())
            .service(client.clone());
        let balance = Balance::builder()
            .classify(http.classify())
            .replica_breakers(BreakerConfig::replica())
            .replica(Replica::new(addr.to_string(), replica))
            .build()
            .unwrap();
        Member::new(format!("shard-{i}"), balance)
    });
    let shard = Shard::builder()
        .key_fn(PathSegment(0))
        .members(members)
        .build()
        .unwrap();
    let retry = Retry::builder()
        .policy(http.retry_policy())
        .backoff(
            Backoff::new(
                Duration::from_millis(5),
                Duration::from_millis(5),
                Jitter::None,
            )
            .unwrap(),
        )
        .build(shard)
        .unwrap();
    let cache = Cache::builder()
        .key_fn(PathAndQuery)
        .policy(http.cache_policy())
        .classify(http.classify())
        .build(retry)
        .unwrap();
    let cache_handle = cache.handle();
    let mut client = ServiceBuilder::new()
        .layer(http.buffer_request_layer())
        .service(cache);

    let count = |path: &str| origin.seen().iter().filter(|s| s.path == path).count();

    // A cacheable GET: the second is answered from the cache, with an Age.
    let first = send(&mut client, "GET", "/cached").await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("age").is_none());
    let second = send(&mut client, "GET", "/cached").await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.body(), &Bytes::from_static(b"cached body"));
    assert!(
        second.headers().get("age").is_some(),
        "served from the cache"
    );
    assert_eq!(count("/cached"), 1, "one upstream call");
    assert_eq!(cache_handle.snapshot().hits, 1);

    // 503 then 200: retried, and the success is the answer.
    let flaky = send(&mut client, "GET", "/flaky").await;
    assert_eq!(flaky.status(), 200);
    assert_eq!(flaky.body(), &Bytes::from_static(b"fine now"));
    assert_eq!(count("/flaky"), 2);

    // A POST that fails once is not retried: its failure is the answer.
    let order = send(&mut client, "POST", "/orders").await;
    assert_eq!(order.status(), 503);
    assert_eq!(count("/orders"), 1);
    assert_eq!(
        origin.seen().last().unwrap().body,
        Bytes::from_static(b"payload")
    );
    assert_eq!(http.handle().snapshot().bodies_buffered, 4);
}
