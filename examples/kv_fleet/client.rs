//! The HTTP client a node uses to catch up from its peers.

use bytes::Bytes;
use http_body_util::Full;

/// A pooled HTTP/1 client over plain TCP, sending whole bodies.
pub type HttpClient = crate::common::http::HttpClient<Full<Bytes>>;

/// The examples' shared client (`examples/common/http.rs`): it fails fast on
/// a dead node with a short connect timeout, no Nagle delay, and keeps idle
/// connections for steady traffic.
pub use crate::common::http::client;

/// One bounded exchange: the status and the whole body, or `None`.
pub use crate::common::http::send;
