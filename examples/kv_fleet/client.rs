//! The HTTP client the binary uses to reach nodes (gateway legs, read
//! repair, a node's catch-up).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// A pooled HTTP/1 client over plain TCP, sending whole bodies.
pub type HttpClient = crate::common::http::HttpClient<Full<Bytes>>;

/// The examples' shared client (`examples/common/http.rs`): it fails fast on
/// a dead node with a short connect timeout, no Nagle delay, and keeps idle
/// connections for steady traffic.
pub use crate::common::http::client;

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
