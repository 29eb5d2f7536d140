//! gRPC status codes, and the set of them that count as failures.

use std::fmt;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// A gRPC status code (the `grpc-status` header or trailer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)] // the names are the protocol's
#[repr(u8)]
pub enum GrpcCode {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

const ALL: [GrpcCode; 17] = [
    GrpcCode::Ok,
    GrpcCode::Cancelled,
    GrpcCode::Unknown,
    GrpcCode::InvalidArgument,
    GrpcCode::DeadlineExceeded,
    GrpcCode::NotFound,
    GrpcCode::AlreadyExists,
    GrpcCode::PermissionDenied,
    GrpcCode::ResourceExhausted,
    GrpcCode::FailedPrecondition,
    GrpcCode::Aborted,
    GrpcCode::OutOfRange,
    GrpcCode::Unimplemented,
    GrpcCode::Internal,
    GrpcCode::Unavailable,
    GrpcCode::DataLoss,
    GrpcCode::Unauthenticated,
];

impl GrpcCode {
    /// The code with this number; numbers gRPC does not define are
    /// [`Unknown`](GrpcCode::Unknown), as the gRPC libraries read them.
    pub fn from_i32(n: i32) -> GrpcCode {
        usize::try_from(n)
            .ok()
            .and_then(|i| ALL.get(i).copied())
            .unwrap_or(GrpcCode::Unknown)
    }

    /// The code in a `grpc-status` value (ASCII digits). A value that is not
    /// a number is [`Unknown`](GrpcCode::Unknown).
    pub fn parse(value: &[u8]) -> GrpcCode {
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .map_or(GrpcCode::Unknown, GrpcCode::from_i32)
    }

    /// The code in the `grpc-status` entry of `headers` (response headers of
    /// a trailers-only response, or trailers), if there is one.
    pub fn from_headers(headers: &HeaderMap) -> Option<GrpcCode> {
        headers
            .get("grpc-status")
            .map(|v| GrpcCode::parse(v.as_bytes()))
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A set of gRPC codes, in one word (copied into each response body that
/// reports at its end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrpcCodes(u32);

impl GrpcCodes {
    /// No code.
    pub const NONE: GrpcCodes = GrpcCodes(0);

    /// The codes that count as failures by default: `UNAVAILABLE`,
    /// `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL` and `UNKNOWN`.
    /// They say the server (or the path to it) is in trouble; the others
    /// (`NOT_FOUND`, `INVALID_ARGUMENT`, ...) are answers about the request.
    pub const DEFAULT_FAILURES: GrpcCodes = GrpcCodes(
        1 << GrpcCode::Unavailable as u32
            | 1 << GrpcCode::DeadlineExceeded as u32
            | 1 << GrpcCode::ResourceExhausted as u32
            | 1 << GrpcCode::Internal as u32
            | 1 << GrpcCode::Unknown as u32,
    );

    /// Whether `code` is in the set.
    #[inline]
    pub fn contains(self, code: GrpcCode) -> bool {
        self.0 & (1 << code as u32) != 0
    }

    /// The set with `code` added.
    #[must_use]
    pub fn with(self, code: GrpcCode) -> GrpcCodes {
        GrpcCodes(self.0 | 1 << code as u32)
    }
}

impl FromIterator<GrpcCode> for GrpcCodes {
    fn from_iter<I: IntoIterator<Item = GrpcCode>>(iter: I) -> Self {
        iter.into_iter().fold(GrpcCodes::NONE, GrpcCodes::with)
    }
}

impl Default for GrpcCodes {
    fn default() -> Self {
        GrpcCodes::DEFAULT_FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_like_the_grpc_libraries_read_them() {
        assert_eq!(GrpcCode::parse(b"14"), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::parse(b"0"), GrpcCode::Ok);
        assert_eq!(GrpcCode::parse(b"16"), GrpcCode::Unauthenticated);
        assert_eq!(GrpcCode::parse(b"17"), GrpcCode::Unknown);
        assert_eq!(GrpcCode::parse(b"-1"), GrpcCode::Unknown);
        assert_eq!(GrpcCode::parse(b"x"), GrpcCode::Unknown);
        for (i, code) in ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
        }
        let set: GrpcCodes = [GrpcCode::NotFound].into_iter().collect();
        assert!(set.contains(GrpcCode::NotFound) && !set.contains(GrpcCode::Ok));
        assert!(GrpcCodes::default().contains(GrpcCode::Unknown));
        assert!(!GrpcCodes::default().contains(GrpcCode::NotFound));
    }
}
