//! HTTP and gRPC for every layer: which responses are failures, which
//! requests may be sent again, which header names the shard key, how long a
//! response may be cached.
//!
//! Most users put the crate's layers in front of hyper, axum or tonic
//! clients. The layers speak only of the shared types ([`KeyFn`],
//! [`Classify`], [`Carrier`], [`Replay`], [`RetryAfter`], the cache's
//! [`Policy`](crate::cache::Policy)); this module fills each of them in for
//! `http::Request` and `http::Response`, so that no glue code is needed.
//! [`Http`] makes the pieces from one validated [`HttpConfig`], sharing one
//! set of counters.
//!
//! [`KeyFn`]: crate::key::KeyFn
//! [`Classify`]: crate::classify::Classify
//! [`Carrier`]: crate::signal::Carrier
//! [`Replay`]: crate::signal::Replay
//! [`RetryAfter`]: crate::signal::RetryAfter
//!
//! # A hyper client in the full stack
//!
//! Cache -> retry -> shard -> balance -> breaker -> timeout -> hyper, with a
//! loopback origin started in the example. Request bodies are buffered on
//! the way in (so that retries can replay them), response bodies on the way
//! out (so that the cache can keep them).
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_fleet::balance::{Balance, Replica};
//! use tower_fleet::breaker::BreakerConfig;
//! use tower_fleet::cache::Cache;
//! use tower_fleet::http::key::{Header, HttpKeyExt, PathAndQuery};
//! use tower_fleet::http::{Http, ReplayBody, SetOriginLayer};
//! use tower_fleet::retry::Retry;
//! use tower_fleet::shard::{Member, Shard};
//!
//! # async fn origin() -> std::net::SocketAddr {
//! #     // A loopback origin: answers every GET for a minute of caching.
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #     let addr = listener.local_addr().unwrap();
//! #     tokio::spawn(async move {
//! #         while let Ok((stream, _)) = listener.accept().await {
//! #             let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
//! #                 let body = format!("hello from {}", req.uri().path());
//! #                 Ok::<_, std::convert::Infallible>(http::Response::builder()
//! #                     .header("cache-control", "max-age=60")
//! #                     .body(Full::new(Bytes::from(body))).unwrap())
//! #             });
//! #             tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
//! #         }
//! #     });
//! #     addr
//! # }
//! # #[tokio::main] async fn main() -> Result<(), tower_fleet::BoxError> {
//! let replicas = [origin().await, origin().await];
//! let http = Http::builder().build()?;
//! let hyper = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
//!
//! // One replica: the transport sends to its address, gRPC statuses in
//! // trailers reach the classifiers, bodies are buffered within the timeout.
//! let replica = |addr: std::net::SocketAddr| -> Result<_, tower_fleet::BoxError> {
//!     Ok(ServiceBuilder::new()
//!         .timeout(Duration::from_secs(2))
//!         .layer(http.buffer_response_layer())
//!         .layer(http.end_of_stream_layer())
//!         .layer(SetOriginLayer::new(&format!("http://{addr}"))?)
//!         .service(hyper.clone()))
//! };
//! // One shard per replica here; each shard balances over its replicas,
//! // each behind its own breaker, all judging outcomes alike.
//! let mut shards = Vec::new();
//! for (i, addr) in replicas.into_iter().enumerate() {
//!     let balance = Balance::builder()
//!         .classify(http.classify())
//!         .replica_breakers(BreakerConfig::replica())
//!         .replica(Replica::new(addr.to_string(), replica(addr)?))
//!         .build()?;
//!     shards.push(Member::new(format!("shard-{i}"), balance));
//! }
//! // Route by the user header, else the tenant query parameter, else "anonymous".
//! let key = Header::named("x-user")?.or(tower_fleet::http::key::Query::new("tenant")).or_value("anonymous");
//! let shard = Shard::builder().key_fn(key).members(shards).build()?;
//! let retry = Retry::builder().policy(http.retry_policy()).build(shard)?;
//! let cache = Cache::builder()
//!     .key_fn(PathAndQuery)
//!     .policy(http.cache_policy())
//!     .classify(http.classify())
//!     .build(retry)?;
//! let cache_stats = cache.handle();
//! let mut client = ServiceBuilder::new().layer(http.buffer_request_layer()).service(cache);
//!
//! for _ in 0..2 {
//!     let req = http::Request::get("/greeting").header("x-user", "ada").body(Full::new(Bytes::new()))?;
//!     let res = client.ready().await?.call(req).await?;
//!     assert_eq!(res.body(), &Bytes::from_static(b"hello from /greeting"));
//! }
//! // The second answer came from the cache (with an `Age` header).
//! assert_eq!(cache_stats.snapshot().hits, 1);
//! # Ok(()) }
//! ```
//!
//! # The pieces, and where they go
//!
//! | piece | implements | where |
//! |---|---|---|
//! | [`key`]: [`Header`](key::Header), [`Path`](key::Path), [`PathAndQuery`](key::PathAndQuery), [`PathSegment`](key::PathSegment), [`Query`](key::Query), [`Cookie`](key::Cookie), [`Authority`](key::Authority); [`or`](key::HttpKeyExt::or), [`or_value`](key::HttpKeyExt::or_value) | `KeyFn` | shard, cache |
//! | [`HttpClassify`] | `Classify` | breaker, balancer, cache, retry |
//! | [`EndOfStreamLayer`] | gRPC trailers into `Classification::AtEnd` | right above the transport |
//! | [`ByMethod`], [`HttpRetryPolicy`] | `Retryable`, `RetryPolicy` | retry |
//! | [`HttpRetryAfter`] | `RetryAfter` | retry (inside `HttpRetryPolicy`) |
//! | [`HttpReplay`], [`BufferRequestLayer`], [`ReplayBody`] | `Replay` | retry, shard failover; the layer on top |
//! | [`BufferResponseLayer`], [`buffer_response`] | `Response<B>` into `Response<Bytes>` | inside the timeout |
//! | [`HttpCachePolicy`] | the cache's `Policy` | cache |
//! | [`SetOriginLayer`] | sends a request to one replica | per replica, above the client |
//! | `impl Carrier for http::Request` | deadline ([`Deadline`]) and attempt mark in extensions | every layer |
//!
//! # What counts as a failure
//!
//! A transport error, a 5xx, and by default 408 and 429
//! ([`HttpConfig::fail_on_408`], [`HttpConfig::fail_on_429`]); every other
//! status is an answer. For gRPC, the codes in
//! [`HttpConfig::grpc_failures`] (by default `UNAVAILABLE`,
//! `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN`). Where
//! the gRPC status is seen:
//!
//! - in the response headers of a trailers-only response (a call that fails
//!   before its first message): judged with the head;
//! - in the trailers, when [`buffer_response`] read the body (unary calls
//!   through [`BufferResponseLayer`]): judged with the head, from
//!   [`Trailers`];
//! - otherwise in the trailers at the end of a streamed body: the
//!   [`EndOfStreamLayer`] puts an [`EndOfStream`](crate::classify::EndOfStream)
//!   in the response, the classifier answers
//!   [`Classification::AtEnd`](crate::classify::Classification::AtEnd), and the
//!   body reports when it ends (a body dropped early reports `Ignore`).
//!
//! Server-streaming calls are marked long-lived
//! ([`Classification::LongLived`](crate::classify::Classification::LongLived):
//! judged by the head, never slow, holding no slot): put [`Streaming`] in the
//! request's extensions, or name the method's path in
//! [`EndOfStreamLayer::streaming_path`].
//!
//! # What is sent again
//!
//! Requests with idempotent methods (`GET`, `HEAD`, `OPTIONS`, `TRACE`,
//! `PUT`, `DELETE`); `POST` and `PATCH` only when marked, by the
//! [`Idempotent`] extension or the `Idempotency-Key` header
//! ([`HttpConfig::idempotency_header`]). A request of *any* method is sent
//! again when its attempt failed before it left the client ([`never_sent`]:
//! hyper-util could not connect, hyper cancelled it before writing it, an
//! open breaker or no replica below), never hedged. Copies come from
//! [`HttpReplay`]: bodies buffered up to [`HttpConfig::max_replay_body`] are
//! replayed per attempt; a larger body is sent once, counted
//! ([`HttpSnapshot::bodies_too_large`]), never lost.
//!
//! `Retry-After` (delta-seconds or an HTTP-date) and `grpc-retry-pushback-ms`
//! are read by [`HttpRetryAfter`] and replace the backoff; the retry layer
//! does not wait for hints beyond its `max_retry_after` or the request's
//! deadline. A malformed hint is ignored and counted
//! ([`HttpSnapshot::retry_after_malformed`]), never an error.
//!
//! # Caching
//!
//! [`HttpCachePolicy`] applies RFC 9111's rules for a shared cache; its docs
//! list them, and say why they are written here rather than taken from a
//! crate.
//!
//! # Guarantees and costs
//!
//! - Key extraction borrows from the request: no allocation (a fallback key
//!   costs a reference count).
//! - Classification reads the status and at most three headers or
//!   extensions; no allocation. The end-of-stream layer allocates once per
//!   gRPC response that reports at its end.
//! - Replay copies the header map and the extensions (allocations) and
//!   shares the buffered body.
//! - Buffering layers hold up to their cap per request in flight; nothing
//!   blocks; their futures are cancel-safe (dropping one drops the body and
//!   the call).
//! - Errors: [`HttpError`] for the buffering layers (the inner error is
//!   wrapped in [`HttpError::Inner`], its signals findable through
//!   [`ErrorSignals`](crate::signal::ErrorSignals)); the other layers pass
//!   the inner error through unchanged.
//! - Counters: [`Http::handle`] ([`HttpSnapshot`]).
//!
//! # Defaults
//!
//! | knob | default |
//! |---|---|
//! | `fail_on_408`, `fail_on_429` | `true` |
//! | `grpc_failures` | `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN` |
//! | `idempotency_header` | `idempotency-key` |
//! | `max_replay_body` | 64 KiB |
//! | `max_response_body` | 8 MiB |
//! | `cache.vary_on` | `accept`, `accept-encoding`, `accept-language` |
//! | `cache.heuristic_percent`, `cache.max_heuristic` | 10%, 1 day |
//! | `cache.store_set_cookie` | `false` |

mod body;
mod buffer;
mod builder;
mod cache;
mod cache_control;
mod carrier;
mod classify;
mod config;
mod eos;
mod error;
mod grpc;
mod handle;
pub mod key;
mod origin;
mod replay;
mod retry_after;
mod retryable;
mod transport;

pub use body::{
    buffer_response, BufferResponse, BufferResponseFuture, BufferResponseLayer, Trailers,
};
pub use buffer::{BufferRequest, BufferRequestFuture, BufferRequestLayer};
pub use builder::{Http, HttpBuilder};
pub use cache::HttpCachePolicy;
pub use carrier::Deadline;
pub use classify::{HttpClassify, Streaming};
pub use config::{HttpCacheConfig, HttpConfig};
pub use eos::{EndOfStreamLayer, EndOfStreamService, EosBody, EosFuture};
pub use error::HttpError;
pub use grpc::{GrpcCode, GrpcCodes};
pub use handle::{HttpHandle, HttpSnapshot};
pub use origin::{SetOrigin, SetOriginLayer};
pub use replay::{HttpReplay, ReplayBody, ReplayableBody};
pub use retry_after::{
    parse_pushback, parse_retry_after, HttpRetryAfter, MalformedHint, GRPC_RETRY_PUSHBACK_MS,
};
pub use retryable::{ByMethod, HttpRetryPolicy, Idempotent, IDEMPOTENCY_KEY};
pub use transport::{is_connection_error, never_sent};
