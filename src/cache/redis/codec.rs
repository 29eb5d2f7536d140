//! How values are written to Redis and read back: a codec the user chooses.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::BoxError;

/// Turns a cached value into the bytes stored in Redis, and back.
///
/// A value that fails to encode is simply not written to the shared tier
/// (it stays in the first tier); bytes that fail to decode are read as a
/// miss. Neither fails a request; both are reported as tracing events.
pub trait Codec<T>: Send + Sync + 'static {
    /// Appends the bytes of `value` to `out`.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError>;
    /// The value these bytes encode.
    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// Bytes pass through unchanged (one copy each way).
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesCodec;

impl Codec<Bytes> for BytesCodec {
    fn encode(&self, value: &Bytes, out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Bytes, BoxError> {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

/// Typed values as JSON (serde_json): readable with `redis-cli`, and
/// shared by gateways built from different versions as long as the
/// type's serde form agrees.
pub struct JsonCodec<T>(PhantomData<fn() -> T>);

impl<T> JsonCodec<T> {
    /// The JSON codec of `T`.
    pub fn new() -> JsonCodec<T> {
        JsonCodec(PhantomData)
    }
}

impl<T> Default for JsonCodec<T> {
    fn default() -> Self {
        JsonCodec::new()
    }
}

impl<T> Clone for JsonCodec<T> {
    fn clone(&self) -> Self {
        JsonCodec::new()
    }
}

impl<T> fmt::Debug for JsonCodec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonCodec")
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Codec<T> for JsonCodec<T> {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        serde_json::to_writer(out, value).map_err(Into::into)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        serde_json::from_slice(bytes).map_err(Into::into)
    }
}
