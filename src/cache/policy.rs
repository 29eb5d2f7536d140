//! `Policy`: what is stored, for how long, under which variant, and how a
//! stale entry is revalidated. The hook the `http` feature fills.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::entry::Freshness;

/// How the cache treats one request, as its [`Policy`] decides
/// ([`Policy::request_mode`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestMode {
    /// Answered from the store when it can be, loaded and stored otherwise
    /// (the default).
    #[default]
    Lookup,
    /// Sent to the inner service as it is: neither answered from the store
    /// nor stored (an HTTP request with `Authorization`, a `HEAD`).
    Bypass,
    /// Sent to the inner service as it is, and its key (with every variant)
    /// invalidated when the answer arrives or the call is dropped: an HTTP
    /// `POST`, `PUT`, `DELETE` or `PATCH` changes the resource.
    Invalidate,
}

/// Decides what the cache stores and for how long, and how it revalidates.
///
/// The default ([`DefaultPolicy`]) stores every `Ok` response that passes the
/// optional `cache_if` predicate, for the configured [`Freshness`]. An HTTP
/// policy (the `http` feature) fills the four hooks from RFC 9111:
///
/// - [`secondary_key`](Policy::secondary_key): a variant key (HTTP `Vary`),
///   appended to the request's key. A policy learns which request headers a
///   resource varies on from its responses (in [`freshness`](Policy::freshness)).
///   Invalidating the primary key invalidates all its variants.
/// - [`freshness`](Policy::freshness): whether a response may be stored, and
///   for how long (`Cache-Control: max-age`, `no-store`, ...).
/// - [`revalidation`](Policy::revalidation): a conditional request
///   (`If-None-Match`) to send instead of the original when a stale entry is
///   refreshed.
/// - [`revalidated`](Policy::revalidated): turns the answer to that request
///   into the response to store and return: a "not modified" answer refreshes
///   the stale response (its headers updated), anything else replaces it.
///
/// Two more hooks act on every request: [`request_mode`](Policy::request_mode)
/// lets a request bypass the cache or invalidate its key (HTTP's unsafe
/// methods), and [`served`](Policy::served) adjusts a stored response each
/// time it is answered from the store (HTTP's `Age` header).
///
/// Only `freshness` is required. The hooks run on misses and refreshes; on a
/// hit only `request_mode`, `secondary_key` and `served` run (and a hit
/// allocates only when the policy writes a secondary key or `served` does).
pub trait Policy<Req, T>: Send + Sync + 'static {
    /// How the cache treats `req`: looked up (the default), passed through,
    /// or passed through invalidating its key. A request without a key is
    /// passed through whatever this says.
    fn request_mode(&self, req: &Req) -> RequestMode {
        let _ = req;
        RequestMode::Lookup
    }

    /// Writes the secondary key of `req` into `out` and returns `true`, or
    /// returns `false` when the request has none (the default).
    fn secondary_key(&self, req: &Req, out: &mut Vec<u8>) -> bool {
        let _ = (req, out);
        false
    }

    /// How long `response` may be served, or `None` if it must not be
    /// stored. `default` is the configured freshness.
    fn freshness(&self, response: &T, default: Freshness) -> Option<Freshness>;

    /// A conditional request that revalidates `stale`, sent instead of `req`
    /// when the stale entry is refreshed; `None` (the default) sends `req`.
    fn revalidation(&self, req: &Req, stale: &T) -> Option<Req> {
        let _ = (req, stale);
        None
    }

    /// The response to store and return, given the answer to a revalidation
    /// request. The default returns the answer as it is.
    fn revalidated(&self, stale: &T, answer: T) -> T {
        let _ = stale;
        answer
    }

    /// The response to answer with, given a copy of a stored one that has
    /// been in the store for `age`. Runs for every answer from the store:
    /// fresh hits, stale hits and stale-if-error answers (not for answers of
    /// a load). The default returns it unchanged.
    fn served(&self, response: T, age: Duration) -> T {
        let _ = age;
        response
    }
}

type Predicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// The default policy: every `Ok` response that passes `cache_if` (all of
/// them when none is set) is stored for the configured freshness.
pub struct DefaultPolicy<T> {
    cache_if: Option<Predicate<T>>,
}

impl<T> DefaultPolicy<T> {
    /// Stores every `Ok` response.
    pub fn new() -> DefaultPolicy<T> {
        DefaultPolicy { cache_if: None }
    }

    /// Stores the `Ok` responses for which `f` returns `true`.
    pub fn cache_if(f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DefaultPolicy<T> {
        DefaultPolicy {
            cache_if: Some(Arc::new(f)),
        }
    }
}

impl<T> Default for DefaultPolicy<T> {
    fn default() -> Self {
        DefaultPolicy::new()
    }
}

impl<T> Clone for DefaultPolicy<T> {
    fn clone(&self) -> Self {
        DefaultPolicy {
            cache_if: self.cache_if.clone(),
        }
    }
}

impl<T> fmt::Debug for DefaultPolicy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultPolicy")
            .field("cache_if", &self.cache_if.is_some())
            .finish()
    }
}

impl<Req, T: 'static> Policy<Req, T> for DefaultPolicy<T> {
    #[inline]
    fn freshness(&self, response: &T, default: Freshness) -> Option<Freshness> {
        match &self.cache_if {
            Some(f) if !f(response) => None,
            _ => Some(default),
        }
    }
}

/// Stores every `Ok` response for the configured freshness: the
/// [`DefaultPolicy`] without a `cache_if`, for any response type (so it can
/// be named before the response type is known, as the stack builder does).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreEveryOk;

impl<Req, T> Policy<Req, T> for StoreEveryOk {
    #[inline]
    fn freshness(&self, _response: &T, default: Freshness) -> Option<Freshness> {
        Some(default)
    }
}
