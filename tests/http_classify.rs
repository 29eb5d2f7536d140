//! Classification of HTTP statuses, gRPC codes (in headers, in trailers
//! through the end-of-stream layer, in kept trailers) and transport errors;
//! retryability by method and marker; recognition of connection errors.

#![cfg(feature = "http")]

mod http_common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_fleet::classify::{Classification, Classify, Outcome};
use tower_fleet::http::{
    is_connection_error, never_sent, ByMethod, EndOfStreamLayer, GrpcCode, GrpcCodes, HttpClassify,
    HttpRetryPolicy, Idempotent, Streaming, Trailers,
};
use tower_fleet::retry::{RetryPolicy, Retryable};
use tower_fleet::signal::{Unavailable, UnavailableKind};
use tower_fleet::BoxError;

fn status(code: u16) -> Result<Response<()>, BoxError> {
    Ok(Response::builder().status(code).body(()).unwrap())
}

fn grpc(headers: &[(&str, &str)]) -> Result<Response<()>, BoxError> {
    let mut b = Response::builder().header("content-type", "application/grpc+proto");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Ok(b.body(()).unwrap())
}

#[test]
fn http_statuses_classify_as_the_table_says() {
    use Outcome::*;
    let table: [(u16, Outcome, Outcome); 12] = [
        // status, default, with 408 and 429 turned off
        (200, Success, Success),
        (204, Success, Success),
        (301, Success, Success),
        (400, Success, Success),
        (404, Success, Success),
        (408, Failure, Success),
        (429, Failure, Success),
        (499, Success, Success),
        (500, Failure, Failure),
        (501, Failure, Failure),
        (503, Failure, Failure),
        (599, Failure, Failure),
    ];
    let default = HttpClassify::default();
    let lenient = HttpClassify::new().fail_on_408(false).fail_on_429(false);
    for (code, by_default, by_lenient) in table {
        assert_eq!(
            default.classify(&status(code)),
            Classification::Now(by_default),
            "{code} by default"
        );
        assert_eq!(
            lenient.classify(&status(code)),
            Classification::Now(by_lenient),
            "{code} with 408/429 off"
        );
    }
    let transport: Result<Response<()>, BoxError> = Err("connection reset".into());
    assert_eq!(default.classify(&transport), Classification::Now(Failure));
}

#[test]
fn grpc_codes_in_headers_classify_by_the_failure_set() {
    let c = HttpClassify::default();
    let failing = [
        GrpcCode::Unavailable,
        GrpcCode::DeadlineExceeded,
        GrpcCode::ResourceExhausted,
        GrpcCode::Internal,
        GrpcCode::Unknown,
    ];
    for n in 0..=16 {
        let code = GrpcCode::from_i32(n);
        let expected = if failing.contains(&code) {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        let res = grpc(&[("grpc-status", &n.to_string())]);
        assert_eq!(c.classify(&res), Classification::Now(expected), "{code}");
    }
    // A custom set.
    let strict = c.grpc_failures([GrpcCode::NotFound].into_iter().collect());
    assert_eq!(
        strict.classify(&grpc(&[("grpc-status", "5")])),
        Classification::Now(Outcome::Failure)
    );
    assert_eq!(
        strict.classify(&grpc(&[("grpc-status", "14")])),
        Classification::Now(Outcome::Success)
    );
    // A gRPC answer with an HTTP error status is judged by the status.
    let mut res = grpc(&[]).unwrap();
    *res.status_mut() = http::StatusCode::BAD_GATEWAY;
    assert_eq!(c.response(&res), Classification::Now(Outcome::Failure));
    // Without the end-of-stream layer, a 200 head with no status succeeds.
    assert_eq!(
        c.classify(&grpc(&[])),
        Classification::Now(Outcome::Success)
    );
}

#[test]
fn grpc_codes_in_kept_trailers_classify_at_once() {
    let c = HttpClassify::default();
    for (code, expected) in [("0", Outcome::Success), ("14", Outcome::Failure)] {
        let mut res = grpc(&[]).unwrap();
        let mut t = HeaderMap::new();
        t.insert("grpc-status", code.parse().unwrap());
        res.extensions_mut().insert(Trailers(t));
        assert_eq!(c.response(&res), Classification::Now(expected), "{code}");
    }
}

type GrpcBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A gRPC origin whose body ends with these trailers (or none).
fn grpc_stream(
    trailers: Option<&'static str>,
) -> impl Service<
    Request<()>,
    Response = Response<GrpcBody>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<GrpcBody>, Infallible>>,
> + Clone {
    service_fn(move |_req: Request<()>| async move {
        let mut frames = vec![Ok(Frame::data(Bytes::from_static(b"message")))];
        if let Some(code) = trailers {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", code.parse().unwrap());
            frames.push(Ok(Frame::trailers(t)));
        }
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(futures::stream::iter(frames)).boxed())
                .unwrap(),
        )
    })
}

#[tokio::test]
async fn grpc_codes_in_trailers_are_reported_at_the_end_of_the_stream() {
    let c = HttpClassify::default();
    for (trailers, expected) in [
        (Some("0"), Outcome::Success),
        (Some("5"), Outcome::Success),
        (Some("14"), Outcome::Failure),
        (Some("13"), Outcome::Failure),
        // Ending without a status reads as UNKNOWN.
        (None, Outcome::Failure),
    ] {
        let mut svc = EndOfStreamLayer::new().layer(grpc_stream(trailers));
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        let Classification::AtEnd(eos) = c.classify(&res) else {
            panic!("{trailers:?}: the outcome comes at the end of the stream");
        };
        assert_eq!(eos.outcome(), None);
        let body = res.unwrap().into_body();
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"message"));
        assert_eq!(eos.outcome(), Some(expected), "{trailers:?}");
    }
}

#[tokio::test]
async fn a_grpc_body_dropped_before_its_end_is_ignored() {
    let c = HttpClassify::default();
    let mut svc = EndOfStreamLayer::new().layer(grpc_stream(Some("14")));
    let res = svc.ready().await.unwrap().call(Request::new(())).await;
    let Classification::AtEnd(eos) = c.classify(&res) else {
        panic!("expected AtEnd");
    };
    drop(res);
    assert_eq!(eos.outcome(), Some(Outcome::Ignore));
}

#[tokio::test]
async fn trailers_only_and_plain_http_responses_carry_no_end_of_stream() {
    let c = HttpClassify::default();
    let only = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "14")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
    });
    let res = EndOfStreamLayer::new()
        .layer(only)
        .oneshot(Request::new(()))
        .await;
    assert_eq!(c.classify(&res), Classification::Now(Outcome::Failure));
    let plain = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hi"))))
    });
    let res = EndOfStreamLayer::new()
        .layer(plain)
        .oneshot(Request::new(()))
        .await;
    assert_eq!(c.classify(&res), Classification::Now(Outcome::Success));
}

#[tokio::test]
async fn streaming_calls_are_long_lived_by_mark_or_by_path() {
    let c = HttpClassify::default();
    let layer = EndOfStreamLayer::new().streaming_path("/chat.Room/Watch");
    let by_path = Request::get("/chat.Room/Watch").body(()).unwrap();
    let res = layer.layer(grpc_stream(Some("0"))).oneshot(by_path).await;
    assert_eq!(
        c.classify(&res),
        Classification::LongLived(Outcome::Success)
    );
    let mut marked = Request::get("/chat.Room/Other").body(()).unwrap();
    marked.extensions_mut().insert(Streaming);
    let res = layer.layer(grpc_stream(Some("0"))).oneshot(marked).await;
    assert_eq!(
        c.classify(&res),
        Classification::LongLived(Outcome::Success)
    );
    let unmarked = Request::get("/chat.Room/Other").body(()).unwrap();
    let res = layer.layer(grpc_stream(Some("0"))).oneshot(unmarked).await;
    assert!(matches!(c.classify(&res), Classification::AtEnd(_)));
    // A streaming head that failed is judged a failure, still long-lived.
    let mut res = grpc(&[("grpc-status", "14")]).unwrap();
    res.extensions_mut().insert(Streaming);
    assert_eq!(
        c.response(&res),
        Classification::LongLived(Outcome::Failure)
    );
    let _ = GrpcCodes::DEFAULT_FAILURES;
}

#[test]
fn retryability_follows_the_method_and_the_markers() {
    let by_method = ByMethod::default();
    let table = [
        ("GET", None, false, true),
        ("HEAD", None, false, true),
        ("OPTIONS", None, false, true),
        ("TRACE", None, false, true),
        ("PUT", None, false, true),
        ("DELETE", None, false, true),
        ("POST", None, false, false),
        ("PATCH", None, false, false),
        ("CONNECT", None, false, false),
        ("PURGE", None, false, false),
        ("POST", Some("idempotency-key"), false, true),
        ("PATCH", Some("idempotency-key"), false, true),
        ("POST", Some("x-other"), false, false),
        ("POST", None, true, true),
    ];
    for (method, header, extension, expected) in table {
        let mut b = Request::builder().method(method).uri("/r");
        if let Some(h) = header {
            b = b.header(h, "k-1");
        }
        let mut req = b.body(()).unwrap();
        if extension {
            req.extensions_mut().insert(Idempotent);
        }
        assert_eq!(
            by_method.is_retryable(&req),
            expected,
            "{method} {header:?} {extension}"
        );
    }
    let custom = ByMethod::new().marker_header(http::HeaderName::from_static("x-retry-ok"));
    let req = Request::post("/r")
        .header("x-retry-ok", "1")
        .body(())
        .unwrap();
    assert!(custom.is_retryable(&req));
    let none = ByMethod::new().without_marker_header();
    let req = Request::post("/r")
        .header("idempotency-key", "1")
        .body(())
        .unwrap();
    assert!(!none.is_retryable(&req));
}

/// A hyper-util client error from a port nothing listens on.
async fn connect_error() -> BoxError {
    let addr = http_common::refused_addr().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    Box::new(client.get(uri).await.unwrap_err())
}

/// A hyper error for a request the connection never took.
async fn canceled_error() -> BoxError {
    let (client, _server) = tokio::io::duplex(1024);
    let (mut tx, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
        hyper_util::rt::TokioIo::new(client),
    )
    .await
    .unwrap();
    drop(conn);
    Box::new(
        tx.send_request(Request::new(Empty::new()))
            .await
            .unwrap_err(),
    )
}

#[derive(Debug, thiserror::Error)]
#[error("wrapped")]
struct Wrapped(#[source] BoxError);

#[tokio::test]
async fn connection_errors_are_recognised_through_the_source_chain() {
    let connect = connect_error().await;
    let canceled = canceled_error().await;
    let refused: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let reset: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    let open: BoxError = Box::new(Unavailable::new(UnavailableKind::CircuitOpen));
    let server: BoxError = Box::new(Unavailable::new(UnavailableKind::Server));
    let plain: BoxError = "boom".into();
    let table: Vec<(&str, BoxError, bool, bool)> = vec![
        // name, error, never sent, connection error
        ("connect", connect, true, true),
        ("canceled", canceled, true, true),
        ("refused", refused, true, true),
        ("reset", reset, false, true),
        ("breaker open", open, true, false),
        ("server unavailable", server, false, false),
        ("plain", plain, false, false),
    ];
    let policy = HttpRetryPolicy::default();
    for (name, err, unsent, connection) in table {
        assert_eq!(never_sent(&*err), unsent, "{name}");
        assert_eq!(is_connection_error(&*err), connection, "{name}");
        // Found however deeply it is wrapped, and by the retry policy.
        let wrapped: BoxError = Box::new(Wrapped(Box::new(Wrapped(err))));
        assert_eq!(never_sent(&*wrapped), unsent, "{name} wrapped");
        let outcome: Result<Response<()>, BoxError> = Err(wrapped);
        assert_eq!(
            RetryPolicy::<Request<Full<Bytes>>, _, _>::never_sent(&policy, &outcome),
            unsent,
            "{name} by the policy"
        );
        assert_eq!(
            RetryPolicy::<Request<Full<Bytes>>, _, _>::outcome(&policy, &outcome),
            Outcome::Failure
        );
    }
    let ok: Result<Response<()>, BoxError> = Ok(Response::new(()));
    assert!(!RetryPolicy::<Request<Full<Bytes>>, _, _>::never_sent(
        &policy, &ok
    ));
    let _ = Duration::ZERO;
}
