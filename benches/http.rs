//! HTTP integration benches, each against its anchor in the same run:
//!
//! - `http-key/*`: key extraction, against a bare `HeaderMap::get` (the
//!   floor of any header-based key).
//! - `http-classify/*`: classifying a response, against the crate's default
//!   `ErrorIsFailure` (which looks at nothing).
//! - `http-replay/*`: copying a request for a retry, against `http`'s own
//!   `Request::clone`.
//! - `http-retry-after/*`: reading a hint, against `httpdate` alone.
//! - `http-cache/*`: a cache hit of an `http::Response<Bytes>`, the HTTP
//!   policy (request mode, vary key, `Age` header) against the default
//!   policy on the same cache.
//!
//! Futures are polled once by hand with a no-op waker inside an entered
//! tokio runtime (every hit is ready at once), so no executor cost is
//! measured.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use tower::Service;
use tower_fleet::cache::Cache;
use tower_fleet::classify::{Classify, ErrorIsFailure};
use tower_fleet::http::key::{Cookie, Header, HttpKeyExt, PathAndQuery, PathSegment, Query};
use tower_fleet::http::{parse_retry_after, HttpCachePolicy, HttpClassify, HttpReplay, ReplayBody};
use tower_fleet::key::KeyFn;
use tower_fleet::signal::Replay;
use tower_fleet::BoxError;

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    g
}

/// A request as a client sends it: a few headers, a cookie, a query.
fn request(body: usize) -> Request<Full<Bytes>> {
    Request::get("/users/42/posts?page=2&user=ada")
        .header("host", "api.example")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, br")
        .header("user-agent", "tower-fleet-bench/1")
        .header("x-request-id", "0f3c1a9e-77aa-4c1e-9d2b-5b1e0c9d8f10")
        .header("x-user", "ada")
        .header("cookie", "theme=dark; session=s-123; lang=en")
        .body(Full::new(Bytes::from(vec![b'x'; body])))
        .unwrap()
}

fn keys(c: &mut Criterion) {
    let req = request(0);
    let mut g = group(c, "http-key");
    g.bench_function("anchor-headermap-get/extract/1", |b| {
        b.iter(|| {
            black_box(
                black_box(&req)
                    .headers()
                    .get("x-user")
                    .map(|v| v.as_bytes().len()),
            )
        })
    });
    let header = Header::named("x-user").unwrap();
    g.bench_function("header/extract/1", |b| {
        b.iter(|| black_box(header.key(black_box(&req)).map(|k| k.as_bytes().len())))
    });
    g.bench_function("path-segment/extract/1", |b| {
        b.iter(|| {
            black_box(
                PathSegment(1)
                    .key(black_box(&req))
                    .map(|k| k.as_bytes().len()),
            )
        })
    });
    let query = Query::new("user");
    g.bench_function("query/extract/1", |b| {
        b.iter(|| black_box(query.key(black_box(&req)).map(|k| k.as_bytes().len())))
    });
    let cookie = Cookie::new("session");
    g.bench_function("cookie/extract/1", |b| {
        b.iter(|| black_box(cookie.key(black_box(&req)).map(|k| k.as_bytes().len())))
    });
    // The first two are absent: the third extractor answers.
    let chain = Header::named("x-tenant")
        .unwrap()
        .or(Query::new("tenant"))
        .or(Cookie::new("session"))
        .or_value("anonymous");
    g.bench_function("or-chain/extract/3", |b| {
        b.iter(|| black_box(chain.key(black_box(&req)).map(|k| k.as_bytes().len())))
    });
    g.finish();
}

fn classify(c: &mut Criterion) {
    let ok: Result<Response<Bytes>, BoxError> = Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Bytes::new())
        .unwrap());
    let grpc: Result<Response<Bytes>, BoxError> = Ok(Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", "14")
        .body(Bytes::new())
        .unwrap());
    let http = HttpClassify::default();
    let mut g = group(c, "http-classify");
    g.bench_function("anchor-error-is-failure/classify/1", |b| {
        b.iter(|| black_box(ErrorIsFailure.classify(black_box(&ok)).now()))
    });
    g.bench_function("status/classify/1", |b| {
        b.iter(|| black_box(http.classify(black_box(&ok)).now()))
    });
    g.bench_function("grpc-header/classify/1", |b| {
        b.iter(|| black_box(http.classify(black_box(&grpc)).now()))
    });
    g.finish();
}

fn replay(c: &mut Criterion) {
    let mut g = group(c, "http-replay");
    let replay = HttpReplay::new();
    for size in [0usize, 1024] {
        let req = request(size);
        g.bench_function(format!("anchor-request-clone/copy/{size}"), |b| {
            b.iter(|| black_box(black_box(&req).clone()))
        });
        g.bench_function(format!("http-replay/copy/{size}"), |b| {
            b.iter(|| black_box(replay.replay(black_box(&req))))
        });
        let (parts, body) = request(size).into_parts();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let buffered = rt.block_on(ReplayBody::buffer(body, 64 * 1024)).unwrap();
        let req = Request::from_parts(parts, buffered);
        g.bench_function(format!("http-replay-buffered/copy/{size}"), |b| {
            b.iter(|| black_box(replay.replay(black_box(&req))))
        });
    }
    g.finish();
}

fn retry_after(c: &mut Criterion) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_400);
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let mut g = group(c, "http-retry-after");
    g.bench_function("anchor-httpdate/parse/date", |b| {
        b.iter(|| black_box(httpdate::parse_http_date(black_box(date)).ok()))
    });
    g.bench_function("retry-after/parse/date", |b| {
        b.iter(|| black_box(parse_retry_after(black_box(date.as_bytes()), now).ok()))
    });
    g.bench_function("retry-after/parse/delta", |b| {
        b.iter(|| black_box(parse_retry_after(black_box(b"120"), now).ok()))
    });
    g.finish();
}

/// Answers every request at once with a cacheable response.
#[derive(Clone, Copy)]
struct Origin;

impl Service<Request<Full<Bytes>>> for Origin {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Bytes>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        ready(Ok(Response::builder()
            .header("cache-control", "max-age=3600")
            .header("content-type", "application/json")
            .header("vary", "accept-encoding")
            .body(Bytes::from_static(b"{\"user\":\"ada\"}"))
            .unwrap()))
    }
}

fn once<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a hit is ready on its first poll"),
    }
}

fn cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut plain = Cache::builder()
        .key_fn(PathAndQuery)
        .ttl(Duration::from_secs(3600))
        .build(Origin)
        .unwrap();
    let mut http = Cache::builder()
        .key_fn(PathAndQuery)
        .policy(HttpCachePolicy::default())
        .build(Origin)
        .unwrap();
    let bare = || {
        Request::get("/users/42")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let negotiated = || {
        Request::get("/users/42")
            .header("accept-encoding", "gzip")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // Fill both, then every call below is a hit.
    once(plain.call(bare())).unwrap();
    once(http.call(bare())).unwrap();
    once(http.call(negotiated())).unwrap();
    let mut g = group(c, "http-cache");
    g.bench_function("anchor-default-policy/hit/1", |b| {
        b.iter_batched(
            bare,
            |req| once(plain.call(req)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("http-policy/hit/1", |b| {
        b.iter_batched(
            bare,
            |req| once(http.call(req)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("http-policy-vary/hit/1", |b| {
        b.iter_batched(
            negotiated,
            |req| once(http.call(req)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    assert_eq!(
        http.handle().snapshot().loads,
        2,
        "every bench call was a hit"
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    keys(&mut c);
    classify(&mut c);
    replay(&mut c);
    retry_after(&mut c);
    cache(&mut c);
    c.final_summary();
}
