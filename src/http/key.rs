//! Key extractors for `http::Request`: the equivalents of Envoy's hash
//! policies, for the shard and cache layers' [`KeyFn`].
//!
//! Each borrows the key's bytes from the request (no allocation), as they
//! are on the wire: header values, path segments, query values and cookie
//! values are not decoded or normalised, so that extraction is free and two
//! routers always agree. [`Or`] and [`OrValue`] combine them.

use bytes::Bytes;
use http::header::{HeaderName, COOKIE, HOST};
use http::Request;

use crate::config::ConfigError;
use crate::key::{Key, KeyFn};

/// The value of a request header (the first one, if it repeats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header(HeaderName);

impl Header {
    /// The header `name`.
    pub fn new(name: HeaderName) -> Header {
        Header(name)
    }

    /// The header named `name`, or an error naming it if it is not a valid
    /// header name.
    pub fn named(name: &str) -> Result<Header, ConfigError> {
        HeaderName::from_bytes(name.as_bytes())
            .map(Header)
            .map_err(|_| ConfigError::new("header", name, "not a valid header name"))
    }
}

impl<B> KeyFn<Request<B>> for Header {
    #[inline]
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        req.headers()
            .get(&self.0)
            .map(|v| Key::borrowed(v.as_bytes()))
    }
}

/// The request's path (without the query).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Path;

impl<B> KeyFn<Request<B>> for Path {
    #[inline]
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        Some(Key::from(req.uri().path()))
    }
}

/// The request's path and query: what names a resource on one origin (the
/// usual cache key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathAndQuery;

impl<B> KeyFn<Request<B>> for PathAndQuery {
    #[inline]
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        let uri = req.uri();
        Some(Key::from(
            uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
        ))
    }
}

/// One segment of the path, counted from 0 after the leading `/`:
/// `PathSegment(1)` of `/users/42/posts` is `42`. Absent when the path has
/// fewer segments, or the segment is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathSegment(pub usize);

impl<B> KeyFn<Request<B>> for PathSegment {
    #[inline]
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        let path = req.uri().path();
        let path = path.strip_prefix('/').unwrap_or(path);
        path.split('/')
            .nth(self.0)
            .filter(|s| !s.is_empty())
            .map(Key::from)
    }
}

/// The raw (still percent-encoded) value of one query parameter, the first
/// if it repeats. A parameter given without `=` has an empty value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query(String);

impl Query {
    /// The parameter `name`, compared as it is written in the query.
    pub fn new(name: impl Into<String>) -> Query {
        Query(name.into())
    }
}

impl<B> KeyFn<Request<B>> for Query {
    #[inline]
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        req.uri().query()?.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == self.0).then(|| Key::from(value))
        })
    }
}

/// The value of one cookie from the `Cookie` header(s), without the quotes
/// a value may be written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie(String);

impl Cookie {
    /// The cookie `name`.
    pub fn new(name: impl Into<String>) -> Cookie {
        Cookie(name.into())
    }
}

impl<B> KeyFn<Request<B>> for Cookie {
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        req.headers().get_all(COOKIE).iter().find_map(|header| {
            header.as_bytes().split(|b| *b == b';').find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|b| *b == b'=')?;
                let (name, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
                if name != self.0.as_bytes() {
                    return None;
                }
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                Some(Key::borrowed(value))
            })
        })
    }
}

/// The request's authority: from the URI when it has one (absolute form,
/// HTTP/2), else the `Host` header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Authority;

impl<B> KeyFn<Request<B>> for Authority {
    #[inline]
    fn key<'r>(&self, req: &'r Request<B>) -> Option<Key<'r>> {
        match req.uri().authority() {
            Some(a) => Some(Key::from(a.as_str())),
            None => req.headers().get(HOST).map(|h| Key::borrowed(h.as_bytes())),
        }
    }
}

/// The first key of `A`, else the key of `B`: Envoy's list of hash
/// policies, tried in order. Build with [`HttpKeyExt::or`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Or<A, B>(pub A, pub B);

impl<Req, A: KeyFn<Req>, B: KeyFn<Req>> KeyFn<Req> for Or<A, B> {
    #[inline]
    fn key<'r>(&self, req: &'r Req) -> Option<Key<'r>> {
        self.0.key(req).or_else(|| self.1.key(req))
    }
}

/// The key of `A`, else a fixed key, so that every request has one (the
/// fallback costs a reference-count increment). Build with
/// [`HttpKeyExt::or_value`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrValue<A>(pub A, pub Bytes);

impl<Req, A: KeyFn<Req>> KeyFn<Req> for OrValue<A> {
    #[inline]
    fn key<'r>(&self, req: &'r Req) -> Option<Key<'r>> {
        // A reference count, not a copy of the bytes.
        Some(self.0.key(req).unwrap_or_else(|| Key::from(self.1.clone())))
    }
}

/// Combinators for key extractors.
///
/// ```
/// use tower_fleet::http::key::{Cookie, Header, HttpKeyExt, Query};
/// use tower_fleet::key::KeyFn;
///
/// // The user id header, else the `user` query parameter, else the session
/// // cookie, else "anonymous".
/// let key = Header::named("x-user-id").unwrap()
///     .or(Query::new("user"))
///     .or(Cookie::new("session"))
///     .or_value("anonymous");
///
/// let req = http::Request::get("/feed?user=ada").body(()).unwrap();
/// assert_eq!(key.key(&req).unwrap().as_bytes(), b"ada");
/// let req = http::Request::get("/feed").header("cookie", "theme=dark; session=s1").body(()).unwrap();
/// assert_eq!(key.key(&req).unwrap().as_bytes(), b"s1");
/// let req = http::Request::get("/feed").body(()).unwrap();
/// assert_eq!(key.key(&req).unwrap().as_bytes(), b"anonymous");
/// ```
pub trait HttpKeyExt: Sized {
    /// This key, else `other`'s.
    fn or<B>(self, other: B) -> Or<Self, B> {
        Or(self, other)
    }

    /// This key, else `value`.
    fn or_value(self, value: impl Into<Bytes>) -> OrValue<Self> {
        OrValue(self, value.into())
    }
}

impl HttpKeyExt for Header {}
impl HttpKeyExt for Path {}
impl HttpKeyExt for PathAndQuery {}
impl HttpKeyExt for PathSegment {}
impl HttpKeyExt for Query {}
impl HttpKeyExt for Cookie {}
impl HttpKeyExt for Authority {}
impl<A, B> HttpKeyExt for Or<A, B> {}
