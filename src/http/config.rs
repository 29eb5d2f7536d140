//! `HttpConfig`: the settings of the HTTP integration, as data.

use std::time::Duration;

use http::header::HeaderName;
use serde::{Deserialize, Serialize};

use super::grpc::{GrpcCode, GrpcCodes};
use super::retryable::IDEMPOTENCY_KEY;
use crate::config::{ConfigError, Validate};

/// The settings of the HTTP integration: classification, retryability,
/// body buffering and the cache policy. Every field has a default; build
/// the pieces with [`Http::new`](super::Http::new).
///
/// ```
/// use tower_fleet::http::HttpConfig;
/// use tower_fleet::Validate;
///
/// let config: HttpConfig = toml::from_str(r#"
///     fail_on_429 = false
///     max_replay_body = 16384
///     grpc_failures = ["UNAVAILABLE", "DEADLINE_EXCEEDED"]
///     [cache]
///     vary_on = ["accept-encoding"]
/// "#).unwrap();
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Whether `408 Request Timeout` is a failure. Default `true`: the
    /// server gave up waiting, which says as much about it as a 503. Turn it
    /// off when your servers send 408 for clients that are slow on purpose.
    pub fail_on_408: bool,
    /// Whether `429 Too Many Requests` is a failure. Default `true`: it asks
    /// for a wait, which the retry layer honours (`Retry-After`) only for
    /// failures, and breakers and balancers should back off an endpoint that
    /// sheds. Turn it off when 429 is a per-tenant quota that says nothing
    /// about the endpoint's health.
    pub fail_on_429: bool,
    /// The gRPC codes that are failures. Default `UNAVAILABLE`,
    /// `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN`:
    /// those that say the server (or the way to it) is in trouble. `OK`
    /// cannot be one.
    pub grpc_failures: Vec<GrpcCode>,
    /// The request header that marks a POST or PATCH as retryable. Default
    /// `"idempotency-key"`; `None` leaves only the
    /// [`Idempotent`](super::Idempotent) extension. Must be a valid header name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_header: Option<String>,
    /// The largest request body, in bytes, buffered for replay. Default
    /// 64 KiB, from 0 (no body is replayable, only bodyless requests)
    /// upwards. A larger body is sent once. Raise it for retried uploads;
    /// every request in flight may hold this much.
    pub max_replay_body: u64,
    /// The largest response body, in bytes, buffered by
    /// [`BufferResponseLayer`](super::BufferResponseLayer). Default 8 MiB,
    /// at least 1. A larger one fails with
    /// [`HttpError::BodyTooLarge`](super::HttpError::BodyTooLarge).
    pub max_response_body: u64,
    /// The cache policy.
    pub cache: HttpCacheConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            fail_on_408: true,
            fail_on_429: true,
            grpc_failures: vec![
                GrpcCode::Unavailable,
                GrpcCode::DeadlineExceeded,
                GrpcCode::ResourceExhausted,
                GrpcCode::Internal,
                GrpcCode::Unknown,
            ],
            idempotency_header: Some(IDEMPOTENCY_KEY.to_string()),
            max_replay_body: 64 * 1024,
            max_response_body: 8 * 1024 * 1024,
            cache: HttpCacheConfig::default(),
        }
    }
}

impl HttpConfig {
    /// The gRPC failure codes as a set.
    pub fn grpc_codes(&self) -> GrpcCodes {
        self.grpc_failures.iter().copied().collect()
    }

    pub(crate) fn idempotency_header_name(&self) -> Result<Option<HeaderName>, ConfigError> {
        self.idempotency_header
            .as_deref()
            .map(|h| header_name("idempotency_header", h))
            .transpose()
    }
}

impl Validate for HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.grpc_failures.contains(&GrpcCode::Ok) {
            return Err(ConfigError::new(
                "grpc_failures",
                "OK",
                "OK cannot be a failure",
            ));
        }
        self.idempotency_header_name()?;
        if self.max_response_body == 0 {
            return Err(ConfigError::new(
                "max_response_body",
                0,
                "must be at least 1 byte",
            ));
        }
        self.cache.validate().map_err(|e| e.within("cache"))
    }
}

/// The settings of the RFC 9111 cache policy ([`HttpCachePolicy`](super::HttpCachePolicy)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpCacheConfig {
    /// The request headers a stored response may vary on (`Vary`). Default
    /// `accept`, `accept-encoding`, `accept-language`. Requests are keyed by
    /// the values of these headers; a response that varies on any other
    /// header (or on `*`) is not stored, since the cache could not tell its
    /// variants apart. Add the headers your origins vary on (`origin` for
    /// CORS); each one present in requests splits their entries.
    pub vary_on: Vec<String>,
    /// The share of a response's age since `Last-Modified` that it is fresh
    /// for when it has no explicit freshness (RFC 9111 section 4.2.2), in
    /// percent. Default 10, from 0 (no heuristic freshness) to 100.
    pub heuristic_percent: u8,
    /// The longest heuristic freshness. Default 1 day; must be more than 0.
    /// Lower it when origins send `Last-Modified` but change content often.
    #[serde(with = "crate::config::duration")]
    pub max_heuristic: Duration,
    /// Whether responses that set cookies are stored. Default `false`: a
    /// shared cache would hand one user's cookie to the next. RFC 9111
    /// allows it; turn it on only for origins whose cookies are not
    /// personal.
    pub store_set_cookie: bool,
}

impl Default for HttpCacheConfig {
    fn default() -> Self {
        HttpCacheConfig {
            vary_on: vec![
                "accept".to_string(),
                "accept-encoding".to_string(),
                "accept-language".to_string(),
            ],
            heuristic_percent: 10,
            max_heuristic: Duration::from_secs(86_400),
            store_set_cookie: false,
        }
    }
}

impl HttpCacheConfig {
    pub(crate) fn vary_names(&self) -> Result<Vec<HeaderName>, ConfigError> {
        self.vary_on
            .iter()
            .enumerate()
            .map(|(i, h)| header_name(&format!("vary_on[{i}]"), h))
            .collect()
    }
}

impl Validate for HttpCacheConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.vary_names()?;
        if self.vary_on.len() > 255 {
            return Err(ConfigError::new(
                "vary_on",
                self.vary_on.len(),
                "at most 255 headers",
            ));
        }
        if self.heuristic_percent > 100 {
            return Err(ConfigError::new(
                "heuristic_percent",
                self.heuristic_percent,
                "must be from 0 to 100",
            ));
        }
        crate::config::non_zero_duration("max_heuristic", self.max_heuristic)
    }
}

fn header_name(field: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new(field, name, "not a valid header name"))
}
