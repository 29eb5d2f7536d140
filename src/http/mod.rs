//! HTTP and gRPC: what every layer needs to know about them.
//!
//! PLACEHOLDER

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
