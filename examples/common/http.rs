//! The HTTP client a gateway uses to reach its fleet, and one bounded
//! exchange with it.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A pooled HTTP/1 client over plain TCP, sending bodies of type `B`.
pub type HttpClient<B = Body> = Client<HttpConnector, B>;

/// A hyper-util legacy client for loopback fleets: HTTP/1, `TCP_NODELAY`, a
/// short connect timeout (a dead node must fail fast, not hang), and idle
/// connections kept for a while so steady traffic does not reconnect.
pub fn client<B>() -> HttpClient<B>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// `method url` with a JSON `body`, bounded by `limit`: the status and the
/// whole body, or `None` on a connection error or timeout.
pub async fn send(
    client: &HttpClient<Full<Bytes>>,
    method: http::Method,
    url: &str,
    body: Bytes,
    limit: Duration,
) -> Option<(http::StatusCode, Bytes)> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .ok()?;
    let exchange = async {
        let response = client.request(request).await.ok()?;
        let status = response.status();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    tokio::time::timeout(limit, exchange).await.ok().flatten()
}
