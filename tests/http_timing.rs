//! Retries of HTTP requests on tokio's paused clock, through hyper on both
//! ends of in-memory `tokio::io::duplex` pipes: Retry-After is waited for
//! exactly, POSTs are not retried unless never sent, bodies are replayed
//! or sent once.

#![cfg(feature = "http")]

mod http_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use http_common::{response, Origin};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_fleet::http::{
    BufferRequestLayer, BufferResponse, BufferResponseLayer, Http, HttpRetryPolicy,
};
use tower_fleet::retry::Retry;
use tower_fleet::BoxError;

fn flaky(headers: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::new(move |_req, n| {
        if n == 1 {
            response(503, headers, "busy")
        } else {
            response(200, &[], "ok")
        }
    })
}

async fn send<S, B>(svc: &mut S, req: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    svc.ready().await?.call(req).await
}

type Retrying = Retry<BufferResponse<http_common::Duplex>, HttpRetryPolicy>;

/// The retry layer with the HTTP policy over hyper to `origin`.
fn retrying(origin: &Origin) -> Retrying {
    let http = Http::builder().build().unwrap();
    Retry::builder()
        .policy(http.retry_policy())
        .build(http.buffer_response_layer().layer(origin.duplex()))
        .unwrap()
}

fn req(method: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/r")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_503_with_retry_after_1_is_retried_after_one_second() {
    let origin = flaky(&[("retry-after", "1")]);
    let mut svc = retrying(&origin);
    let res = send(&mut svc, req("GET", "")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), &Bytes::from_static(b"ok"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].at - seen[0].at, Duration::from_secs(1));
    assert_eq!(svc.handle().snapshot().retries, 1);
}

#[tokio::test(start_paused = true)]
async fn a_post_that_fails_is_not_retried() {
    let origin = flaky(&[("retry-after", "1")]);
    let mut svc = retrying(&origin);
    let start = tokio::time::Instant::now();
    let res = send(&mut svc, req("POST", "order")).await.unwrap();
    assert_eq!(res.status(), 503, "the failure is returned as it is");
    assert_eq!(origin.calls(), 1);
    assert_eq!(tokio::time::Instant::now(), start, "nothing waited");
    // Marked with an idempotency key, it is retried.
    let mut keyed = req("POST", "order");
    keyed
        .headers_mut()
        .insert("idempotency-key", "o-1".parse().unwrap());
    let origin = flaky(&[]);
    let mut svc = retrying(&origin);
    let res = send(&mut svc, keyed).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_post_that_was_never_sent_is_retried() {
    let origin = flaky(&[]);
    let transport = origin.duplex();
    let refusals = Arc::new(AtomicUsize::new(0));
    let seen = refusals.clone();
    // The first connection is refused: nothing reached the origin.
    let refusing = service_fn(move |r: Request<Full<Bytes>>| {
        let mut transport = transport.clone();
        let refused = seen.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if refused {
                return Err(BoxError::from(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                )));
            }
            ServiceExt::<Request<Full<Bytes>>>::ready(&mut transport)
                .await?
                .call(r)
                .await
        }
    });
    let http = Http::builder().build().unwrap();
    let mut svc = Retry::builder()
        .policy(http.retry_policy())
        .build(http.buffer_response_layer().layer(refusing))
        .unwrap();
    let res = send(&mut svc, req("POST", "order")).await.unwrap();
    assert_eq!(res.status(), 503, "sent once, its failure returned");
    assert_eq!(origin.calls(), 1);
    assert_eq!(origin.seen()[0].body, Bytes::from_static(b"order"));
    assert_eq!(svc.handle().snapshot().retries, 1);
}

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_is_not_waited_for() {
    for hint in ["3600", "99999999999999999999"] {
        let origin = Origin::new(move |_r, _n| response(503, &[("retry-after", hint)], "busy"));
        let mut svc = retrying(&origin);
        let start = tokio::time::Instant::now();
        let res = send(&mut svc, req("GET", "")).await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(origin.calls(), 1, "{hint}");
        assert_eq!(tokio::time::Instant::now(), start, "{hint}: nothing waited");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_returns_the_response_at_once() {
    let origin = flaky(&[("retry-after", "5")]);
    let http = Http::builder().build().unwrap();
    let mut svc = Retry::builder()
        .timeout(Duration::from_secs(2))
        .policy(http.retry_policy())
        .build(http.buffer_response_layer().layer(origin.duplex()))
        .unwrap();
    let res = send(&mut svc, req("GET", "")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn small_bodies_are_replayed_and_large_ones_sent_once_and_counted() {
    let http = Http::builder().max_replay_body(16).build().unwrap();
    let stack = |origin: &Origin| {
        let retry = Retry::builder()
            .backoff(
                tower_fleet::retry::Backoff::new(
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                    tower_fleet::retry::Jitter::None,
                )
                .unwrap(),
            )
            .policy(http.retry_policy())
            .build(http.buffer_response_layer().layer(origin.duplex()))
            .unwrap();
        http.buffer_request_layer().layer(retry)
    };
    // A small PUT: both attempts carry the whole body.
    let origin = flaky(&[]);
    let mut svc = stack(&origin);
    let res = send(&mut svc, req("PUT", "small")).await.unwrap();
    assert_eq!(res.status(), 200);
    let bodies: Vec<Bytes> = origin.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(bodies, vec![Bytes::from_static(b"small"); 2]);
    // A large PUT: sent once, whole, and counted.
    let origin = flaky(&[]);
    let mut svc = stack(&origin);
    let large = "a body longer than sixteen bytes";
    let res = send(&mut svc, req("PUT", large)).await.unwrap();
    assert_eq!(res.status(), 503, "not retried");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].body,
        Bytes::from_static(large.as_bytes()),
        "never lost"
    );
    let counters = http.handle().snapshot();
    assert_eq!(
        (counters.bodies_buffered, counters.bodies_too_large),
        (1, 1)
    );
    assert_eq!(counters.not_replayed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_larger_than_the_cap_reaches_the_origin_whole() {
    let origin = Origin::new(|_r, _n| response(200, &[], "stored"));
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = (0..64)
        .map(|i| {
            Ok(http_body::Frame::data(Bytes::from(format!(
                "chunk-{i:02};"
            ))))
        })
        .collect();
    let body = http_body_util::StreamBody::new(futures::stream::iter(chunks));
    let req = Request::post("/upload").body(body).unwrap();
    let mut svc = BufferRequestLayer::new(100).layer(origin.duplex());
    let res = send(&mut svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let expected: String = (0..64).map(|i| format!("chunk-{i:02};")).collect();
    assert_eq!(origin.seen()[0].body, Bytes::from(expected));
    let _ = BufferResponseLayer::new(1);
}
