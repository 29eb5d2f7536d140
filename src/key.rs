//! Request keys and how they are hashed.
//!
//! Routing by key (the [`shard`](crate::shard) layer) and caching by key (the
//! cache layer) both start from a [`KeyFn`]: a function from a request to the
//! bytes of its key, or `None` when the request has no key. A [`Key`] borrows
//! those bytes from the request where the request holds them, so that looking a
//! key up allocates nothing:
//!
//! ```
//! use tower_fleet::key::{self, Key, KeyFn};
//!
//! struct Get { user: String }
//!
//! // `key::from_fn` lets the closure return bytes borrowed from the request.
//! let by_user = key::from_fn(|req: &Get| Some(Key::from(req.user.as_str())));
//! let req = Get { user: "ada".into() };
//! assert_eq!(by_user.key(&req).unwrap().as_bytes(), b"ada");
//! ```
//!
//! # Stable hashing: part of the compatibility promise
//!
//! Every router of a fleet must send a key to the same shard, whichever
//! process, machine, platform or crate version it runs. So keys are hashed as
//! *bytes*, with a specified function, never with `std::hash::Hash` (whose
//! output for a type may change between Rust versions) or a randomly seeded
//! hasher:
//!
//! - strings and byte strings hash their bytes as they are;
//! - integers hash as fixed-width little-endian bytes; `usize` and `isize` as
//!   64-bit, so 32- and 64-bit platforms agree;
//! - the default [`KeyHasher`] is xxh3-64 with seed 0;
//! - [`KeyHasher::siphash13`] is SipHash-1-3 keyed with a fleet-wide secret, for
//!   keys that untrusted clients choose: without the secret nobody can craft
//!   keys that all land on one shard.
//!
//! **The mapping from key to shard is part of this crate's compatibility
//! promise.** For a given membership, placement algorithm and configuration,
//! a key maps to the same shard in every release of a major version; golden
//! vector tests pin it. A change to it is a breaking change and is announced
//! as one.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Validate};

/// The bytes of a request's key: borrowed from the request, a small inline
/// integer, or owned.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    repr: Repr<'a>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr<'a> {
    Borrowed(&'a [u8]),
    Inline { buf: [u8; 16], len: u8 },
    Owned(Vec<u8>),
    Shared(Bytes),
}

impl<'a> Key<'a> {
    /// A key made of these bytes, borrowed.
    #[inline]
    pub fn borrowed(bytes: &'a [u8]) -> Key<'a> {
        Key {
            repr: Repr::Borrowed(bytes),
        }
    }

    /// The canonical bytes of the key, which is what gets hashed.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Borrowed(b) => b,
            Repr::Inline { buf, len } => &buf[..usize::from(*len)],
            Repr::Owned(v) => v,
            Repr::Shared(b) => b,
        }
    }

    /// An owned copy of this key that no longer borrows from the request.
    pub fn into_owned(self) -> Key<'static> {
        let repr = match self.repr {
            Repr::Borrowed(b) => Repr::Owned(b.to_vec()),
            Repr::Inline { buf, len } => Repr::Inline { buf, len },
            Repr::Owned(v) => Repr::Owned(v),
            Repr::Shared(b) => Repr::Shared(b),
        };
        Key { repr }
    }

    #[inline]
    fn inline(bytes: &[u8]) -> Key<'static> {
        let mut buf = [0u8; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        Key {
            repr: Repr::Inline {
                buf,
                len: bytes.len() as u8,
            },
        }
    }
}

impl fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.as_bytes()) {
            Ok(s) => write!(f, "Key({s:?})"),
            Err(_) => write!(f, "Key({:02x?})", self.as_bytes()),
        }
    }
}

impl AsRef<[u8]> for Key<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<'a> From<&'a str> for Key<'a> {
    #[inline]
    fn from(s: &'a str) -> Self {
        Key::borrowed(s.as_bytes())
    }
}

impl<'a> From<&'a String> for Key<'a> {
    #[inline]
    fn from(s: &'a String) -> Self {
        Key::borrowed(s.as_bytes())
    }
}

impl<'a> From<&'a [u8]> for Key<'a> {
    #[inline]
    fn from(b: &'a [u8]) -> Self {
        Key::borrowed(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Key<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Key::borrowed(b)
    }
}

impl<'a> From<&'a Vec<u8>> for Key<'a> {
    #[inline]
    fn from(b: &'a Vec<u8>) -> Self {
        Key::borrowed(b)
    }
}

impl<'a> From<&'a Bytes> for Key<'a> {
    #[inline]
    fn from(b: &'a Bytes) -> Self {
        Key::borrowed(b)
    }
}

impl From<String> for Key<'static> {
    fn from(s: String) -> Self {
        Key {
            repr: Repr::Owned(s.into_bytes()),
        }
    }
}

impl From<Vec<u8>> for Key<'static> {
    fn from(v: Vec<u8>) -> Self {
        Key {
            repr: Repr::Owned(v),
        }
    }
}

impl From<Bytes> for Key<'static> {
    fn from(b: Bytes) -> Self {
        Key {
            repr: Repr::Shared(b),
        }
    }
}

macro_rules! int_keys {
    ($($t:ty => $as:ty),* $(,)?) => {$(
        impl From<$t> for Key<'static> {
            /// Fixed-width little-endian bytes.
            #[inline]
            fn from(n: $t) -> Self {
                Key::inline(&(n as $as).to_le_bytes())
            }
        }
    )*};
}

int_keys!(
    u8 => u8, u16 => u16, u32 => u32, u64 => u64, u128 => u128, usize => u64,
    i8 => i8, i16 => i16, i32 => i32, i64 => i64, i128 => i128, isize => i64,
);

/// Gives a request's key, or `None` when the request has none.
///
/// Implemented for functions `fn(&Req) -> Option<Key<'_>>` and for closures
/// passed through [`from_fn`] (or given to a builder method that takes a
/// closure, such as [`ShardBuilder::key`](crate::shard::ShardBuilder::key)):
/// the compiler cannot tie a closure's returned key to the request's lifetime
/// on its own.
pub trait KeyFn<Req> {
    /// The key of `req`.
    fn key<'r>(&self, req: &'r Req) -> Option<Key<'r>>;
}

impl<Req, F> KeyFn<Req> for F
where
    F: for<'r> Fn(&'r Req) -> Option<Key<'r>>,
{
    #[inline]
    fn key<'r>(&self, req: &'r Req) -> Option<Key<'r>> {
        self(req)
    }
}

/// Turns a closure into a [`KeyFn`], tying the returned key's lifetime to the
/// request's (which the compiler cannot infer for a closure on its own).
pub fn from_fn<Req, F>(f: F) -> F
where
    F: for<'r> Fn(&'r Req) -> Option<Key<'r>>,
{
    f
}

/// The request is its own key: for requests that are strings, byte strings or
/// integers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<Req> KeyFn<Req> for Identity
where
    for<'r> &'r Req: Into<Key<'r>>,
{
    #[inline]
    fn key<'r>(&self, req: &'r Req) -> Option<Key<'r>> {
        Some(req.into())
    }
}

/// Hashes key bytes to a `u64` with a specified, stable function.
///
/// The default is xxh3-64 with seed 0. [`KeyHasher::siphash13`] keys the hash
/// with a secret; its `Debug` output never shows the secret.
///
/// ```
/// use tower_fleet::key::{HashSecret, KeyHasher};
///
/// let h = KeyHasher::default();
/// assert_eq!(h.hash(b"user:42"), xxhash_rust::xxh3::xxh3_64(b"user:42"));
///
/// let secret: HashSecret = "000102030405060708090a0b0c0d0e0f".parse().unwrap();
/// let keyed = KeyHasher::siphash13(secret);
/// assert_ne!(keyed.hash(b"user:42"), h.hash(b"user:42"));
/// assert!(!format!("{keyed:?}").contains("0a0b"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyHasher {
    kind: HasherKind,
}

#[derive(Clone, Default, PartialEq, Eq)]
enum HasherKind {
    #[default]
    Xxh3,
    Sip13(HashSecret),
}

impl KeyHasher {
    /// xxh3-64 with seed 0 (the default).
    pub fn xxh3() -> KeyHasher {
        KeyHasher {
            kind: HasherKind::Xxh3,
        }
    }

    /// SipHash-1-3 keyed with a fleet-wide secret. Every router of a fleet must
    /// be given the same secret.
    pub fn siphash13(secret: HashSecret) -> KeyHasher {
        KeyHasher {
            kind: HasherKind::Sip13(secret),
        }
    }

    /// The hash of `key`'s bytes.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        match &self.kind {
            HasherKind::Xxh3 => xxhash_rust::xxh3::xxh3_64(key),
            HasherKind::Sip13(secret) => {
                use std::hash::Hasher;
                let mut h = siphasher::sip::SipHasher13::new_with_key(&secret.0);
                h.write(key);
                h.finish()
            }
        }
    }

    /// The hash of a [`Key`].
    #[inline]
    pub fn hash_key(&self, key: &Key<'_>) -> u64 {
        self.hash(key.as_bytes())
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            HasherKind::Xxh3 => f.write_str("KeyHasher::Xxh3"),
            HasherKind::Sip13(_) => f.write_str("KeyHasher::SipHash13 { secret: <redacted> }"),
        }
    }
}

/// The 128-bit secret of the keyed hasher. Never printed, never serialized.
///
/// Parsed from 32 hexadecimal digits.
#[derive(Clone, PartialEq, Eq)]
pub struct HashSecret([u8; 16]);

impl HashSecret {
    /// A secret from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> HashSecret {
        HashSecret(bytes)
    }
}

impl fmt::Debug for HashSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashSecret(<redacted>)")
    }
}

/// A hash secret that is not 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a hash secret must be 32 hexadecimal digits (16 bytes), got {len} characters")]
pub struct BadSecret {
    len: usize,
}

impl std::str::FromStr for HashSecret {
    type Err = BadSecret;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = BadSecret { len: s.len() };
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad);
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad.clone())?;
        }
        Ok(HashSecret(out))
    }
}

impl<'de> Deserialize<'de> for HashSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which function hashes keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    /// xxh3-64, seed 0.
    #[default]
    Xxh3,
    /// SipHash-1-3 keyed with a fleet-wide secret.
    Siphash13,
}

/// Configuration of the key hasher.
///
/// ```toml
/// algorithm = "siphash13"
/// secret_env = "FLEET_HASH_SECRET"   # or: secret = "<32 hex digits>"
/// ```
///
/// The secret is never serialized: a configuration written back out keeps
/// `secret_env` but drops an inline `secret`, so secrets do not leak into logs
/// or files. Prefer `secret_env`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HasherConfig {
    /// `"xxh3"` (default) or `"siphash13"`.
    pub algorithm: HashAlgorithm,
    /// The keyed hasher's secret, 32 hex digits. Never serialized.
    #[serde(skip_serializing)]
    pub secret: Option<HashSecret>,
    /// The name of an environment variable that holds the secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

impl HasherConfig {
    /// The hasher this configuration describes.
    pub fn build(&self) -> Result<KeyHasher, ConfigError> {
        match self.algorithm {
            HashAlgorithm::Xxh3 => Ok(KeyHasher::xxh3()),
            HashAlgorithm::Siphash13 => {
                if let Some(secret) = &self.secret {
                    return Ok(KeyHasher::siphash13(secret.clone()));
                }
                let Some(var) = &self.secret_env else {
                    return Err(ConfigError::new(
                        "secret",
                        "none",
                        "siphash13 needs `secret` or `secret_env`",
                    ));
                };
                let value = std::env::var(var).map_err(|_| {
                    ConfigError::new("secret_env", var, "the environment variable is not set")
                })?;
                let secret = value
                    .parse()
                    .map_err(|e: BadSecret| ConfigError::new("secret_env", var, e.to_string()))?;
                Ok(KeyHasher::siphash13(secret))
            }
        }
    }
}

impl Validate for HasherConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.build().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_hash_as_fixed_width_little_endian() {
        assert_eq!(Key::from(1u64).as_bytes(), &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Key::from(1usize).as_bytes(), Key::from(1u64).as_bytes());
        assert_eq!(Key::from(-1isize).as_bytes(), Key::from(-1i64).as_bytes());
        assert_eq!(Key::from(0x0102u16).as_bytes(), &[2, 1]);
        assert_eq!(Key::from(7u128).as_bytes().len(), 16);
    }

    #[test]
    fn string_and_byte_keys_hash_alike() {
        let h = KeyHasher::default();
        let owned = String::from("user:42");
        let a = h.hash_key(&Key::from("user:42"));
        assert_eq!(a, h.hash_key(&Key::from(&owned)));
        assert_eq!(a, h.hash_key(&Key::from(owned.clone())));
        assert_eq!(a, h.hash_key(&Key::from(b"user:42")));
        assert_eq!(a, h.hash_key(&Key::from(Bytes::from_static(b"user:42"))));
        assert_eq!(a, h.hash_key(&Key::from(owned.into_bytes())));
    }

    #[test]
    fn hash_values_are_pinned() {
        // These values are part of the compatibility promise.
        let h = KeyHasher::default();
        assert_eq!(h.hash(b""), 0x2d06_8005_38d3_94c2);
        assert_eq!(h.hash(b"user:42"), xxhash_rust::xxh3::xxh3_64(b"user:42"));
        let keyed = KeyHasher::siphash13(HashSecret::from_bytes(*b"0123456789abcdef"));
        assert_eq!(keyed.hash(b"user:42"), keyed.clone().hash(b"user:42"));
        let other = KeyHasher::siphash13(HashSecret::from_bytes(*b"0123456789abcdeg"));
        assert_ne!(keyed.hash(b"user:42"), other.hash(b"user:42"));
    }

    #[test]
    fn secrets_are_parsed_and_never_shown() {
        let s: HashSecret = "00112233445566778899aabbccddeeff".parse().unwrap();
        assert_eq!(format!("{s:?}"), "HashSecret(<redacted>)");
        assert!("0011".parse::<HashSecret>().is_err());
        assert!("zz112233445566778899aabbccddeeff"
            .parse::<HashSecret>()
            .is_err());
        let cfg = HasherConfig {
            algorithm: HashAlgorithm::Siphash13,
            secret: Some(s),
            secret_env: None,
        };
        assert!(!format!("{cfg:?}").contains("8899"));
        let text = toml::to_string(&cfg).unwrap();
        assert!(!text.contains("8899"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn keyed_hasher_without_secret_is_a_config_error() {
        let cfg: HasherConfig = toml::from_str("algorithm = \"siphash13\"").unwrap();
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field(), "secret");
        let cfg: HasherConfig =
            toml::from_str("algorithm = \"siphash13\"\nsecret_env = \"TOWER_FLEET_SURELY_UNSET\"")
                .unwrap();
        assert_eq!(cfg.validate().unwrap_err().field(), "secret_env");
        assert!(toml::from_str::<HasherConfig>("algoritm = \"xxh3\"").is_err());
    }

    #[test]
    fn closures_borrow_keys_from_requests() {
        struct Req {
            id: String,
        }
        let kf = from_fn(|r: &Req| Some(Key::from(r.id.as_str())));
        let req = Req { id: "k".into() };
        assert_eq!(kf.key(&req).unwrap().as_bytes(), b"k");
        let by_num = from_fn(|r: &u64| Some(Key::from(*r)));
        assert_eq!(by_num.key(&5).unwrap().as_bytes(), &5u64.to_le_bytes());
        assert_eq!(Identity.key(&String::from("x")).unwrap().as_bytes(), b"x");
    }
}
