//! The HTTP client a gateway uses to reach its fleet.

use std::time::Duration;

use axum::body::Body;
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
