//! The HTTP client the binary uses to reach nodes (gateway legs, read
//! repair, a node's catch-up).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A pooled HTTP/1 client over plain TCP.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A client that fails fast on a dead node: a short connect timeout, no
/// Nagle delay, idle connections kept for steady traffic.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// `method url` with `body`, bounded by `limit`: the status and the whole
/// body, or `None` on a connection error or timeout.
pub async fn send(
    client: &HttpClient,
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
