//! The `Cache` service: answers hits from the store, coalesces misses.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::core::{Core, Invalidation};
use super::error::CacheError;
use super::future::ResponseFuture;
use super::handle::CacheHandle;
use super::judge::Judged;
use super::load::{Call, Rules};
use super::memory::MemoryStore;
use super::miss::{Ctx, MissFuture};
use super::policy::{DefaultPolicy, Policy, RequestMode};
use super::store::{CacheKey, Store};
use crate::classify::{Classify, ErrorIsFailure};
use crate::key::{Identity, Key, KeyFn};
use crate::signal::Carrier;
use crate::BoxError;

/// Answers requests from a cache, and loads misses from the inner service:
/// one upstream call per key however many requests miss at once.
///
/// Built with [`Cache::builder`] or a [`CacheLayer`](super::CacheLayer). See
/// the [module docs](super) for the semantics; in short:
///
/// - `Clone`: all clones share one store, one set of loads in flight and one
///   [`CacheHandle`].
/// - Always ready: a hit is answered with a clone of the stored response
///   without touching the inner service, so hits are served while the backend
///   is saturated or failing. A miss clones the inner service and drives its
///   readiness inside the response future, bounded by `ready_timeout`
///   ([`CacheError::Overloaded`] after it).
/// - A request without a key (its [`KeyFn`] returns `None`) passes through
///   uncached (readiness still driven inside the future).
pub struct Cache<S, T, K = Identity, St = MemoryStore<T>, P = DefaultPolicy<T>, C = ErrorIsFailure>
{
    pub(crate) inner: S,
    pub(crate) core: Arc<Core<T, St>>,
    pub(crate) key_fn: Arc<K>,
    pub(crate) rules: Arc<Rules<P, C>>,
}

impl<S: Clone, T, K, St, P, C> Clone for Cache<S, T, K, St, P, C> {
    fn clone(&self) -> Self {
        Cache {
            inner: self.inner.clone(),
            core: self.core.clone(),
            key_fn: self.key_fn.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<S, T, K, St, P, C> fmt::Debug for Cache<S, T, K, St, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("freshness", &self.rules.freshness)
            .field("ready_timeout", &self.rules.ready_timeout)
            .finish_non_exhaustive()
    }
}

impl<S, T, K, St, P, C> Cache<S, T, K, St, P, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without the cache.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// A handle on the shared cache: invalidation, counters.
    pub fn handle(&self) -> CacheHandle<T, St> {
        CacheHandle {
            core: self.core.clone(),
        }
    }
}

/// The owned key of a request: its variant key if it has one, else its key.
#[inline(never)]
fn owned_key(variant: Option<Vec<u8>>, key: Key<'_>) -> CacheKey {
    match variant {
        Some(v) => CacheKey::from(Key::from(v)),
        None => CacheKey::from(key),
    }
}

/// Writes the key under which a request with a secondary key is stored.
fn variant_key(primary: &[u8], secondary: &[u8]) -> Vec<u8> {
    // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    let mut full = Vec::with_capacity(8 + primary.len() + secondary.len());
    full.extend_from_slice(&(primary.len() as u64).to_le_bytes());
    full.extend_from_slice(primary);
    full.extend_from_slice(secondary);
    full
}

impl<S, Req, K, St, P, C> Service<Req> for Cache<S, S::Response, K, St, P, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Response: Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Req: Carrier + Send + 'static,
    K: KeyFn<Req>,
    St: Store<S::Response>,
    P: Policy<Req, S::Response>,
    C: Classify<S::Response, S::Error> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = CacheError;
    type Future = ResponseFuture<S, Req, St, P, C>;

    /// Always ready: a miss drives the inner service's readiness inside its
    /// response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let core = &self.core;
        let Some(key) = self.key_fn.key(&req) else {
            return self.pass(req, None);
        };
        match self.rules.policy.request_mode(&req) {
            RequestMode::Lookup => {}
            RequestMode::Bypass => return self.pass(req, None),
            RequestMode::Invalidate => {
                let key = CacheKey::from(key);
                return self.pass(req, Some(key));
            }
        }
        // `Vec::new` does not allocate: only a policy that writes a secondary
        // key costs an allocation on a hit.
        let mut secondary = Vec::new();
        let (full, bucket) = if self.rules.policy.secondary_key(&req, &mut secondary) {
            let bucket = core.variant_fence(key.as_bytes()).0;
            (Some(variant_key(key.as_bytes(), &secondary)), Some(bucket))
        } else {
            (None, None)
        };
        let bytes = full.as_deref().unwrap_or(key.as_bytes());
        match core
            .store
            .lookup_with(bytes, |found| core.judge(found, bucket))
        {
            Some(Judged::Hit { answer, stored_for }) => {
                ResponseFuture::hit(self.rules.serve(core, answer, stored_for))
            }
            judged => {
                let key = owned_key(full, key);
                self.not_hit(req, key, bucket, judged)
            }
        }
    }
}

// Out of line, so that the hit path stays small.
impl<S, T, K, St, P, C> Cache<S, T, K, St, P, C> {
    /// A request passed through: one without a key, or one its policy
    /// bypasses; with `invalidate`, one whose answer (or cancellation)
    /// invalidates that key.
    #[inline(never)]
    fn pass<Req>(&self, req: Req, invalidate: Option<CacheKey>) -> ResponseFuture<S, Req, St, P, C>
    where
        S: Service<Req, Response = T> + Clone,
        T: Clone,
        St: Store<T>,
    {
        self.core.stats.passed_through.inc();
        let guard = invalidate.map(|key| Invalidation::new(self.core.clone(), key));
        let call = Call::new(self.inner.clone(), req, self.rules.ready_timeout);
        ResponseFuture::passing(call, guard)
    }

    /// Anything but a fresh hit: a store that must wait (`judged` is
    /// `None`), a stale or early-refreshed hit, a miss.
    #[inline(never)]
    fn not_hit<Req>(
        &self,
        req: Req,
        key: CacheKey,
        bucket: Option<usize>,
        judged: Option<Judged<T>>,
    ) -> ResponseFuture<S, Req, St, P, C>
    where
        S: Service<Req, Response = T> + Clone + Send + 'static,
        T: Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        Req: Carrier + Send + 'static,
        St: Store<T>,
        P: Policy<Req, T>,
        C: Classify<T, S::Error> + Send + Sync + 'static,
    {
        let ctx = |req, key| {
            let (inner, core, rules) = (self.inner.clone(), self.core.clone(), self.rules.clone());
            Ctx::new(inner, req, key, bucket, core, rules)
        };
        match judged {
            Some(Judged::Hit { answer, stored_for }) => {
                ResponseFuture::hit(self.rules.serve(&self.core, answer, stored_for))
            }
            Some(Judged::Other {
                found,
                age,
                early,
                now,
            }) => ResponseFuture::miss(MissFuture::dispatch(ctx(req, key), found, age, early, now)),
            None => {
                let get = self.core.store.get(key.clone());
                ResponseFuture::miss(MissFuture::looking(get, ctx(req, key)))
            }
        }
    }
}
