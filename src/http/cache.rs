//! `HttpCachePolicy`: RFC 9111's shared-cache rules for the cache layer's
//! policy hook.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{
    HeaderName, HeaderValue, AGE, AUTHORIZATION, DATE, ETAG, EXPIRES, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE, SET_COOKIE, VARY,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::cache_control::{age_header, date, initial_age, CacheControl};
use super::config::HttpCacheConfig;
use crate::cache::{Freshness, Policy, RequestMode};
use crate::config::{ConfigError, Validate};

/// Statuses a cache may store with heuristic freshness (RFC 9110 section
/// 15.1): the others need explicit freshness.
const HEURISTIC: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
/// Statuses this policy stores at all (206 needs range support it lacks).
const UNDERSTOOD: [u16; 14] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];
/// Request headers that make a `GET` bypass the cache: credentials, and
/// ranges and preconditions the cache does not evaluate.
const PERSONAL: [HeaderName; 7] = [
    AUTHORIZATION,
    RANGE,
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
];
/// Headers a 304 must not change in the stored response (its body stays),
/// and hop-by-hop headers.
const NOT_UPDATED: [&str; 9] = [
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

/// The cache layer's [`Policy`] for HTTP, with RFC 9111's rules for a shared
/// cache. Give it to [`CacheBuilder::policy`](crate::cache::CacheBuilder::policy)
/// for a cache of `Request<B>` to `Response<RB>` (`RB: Clone`, such as
/// `Bytes` from [`BufferResponseLayer`](super::BufferResponseLayer)); key
/// the cache by [`PathAndQuery`](super::key::PathAndQuery) (and the
/// authority, for several origins).
///
/// What it does, by hook:
///
/// - **Requests** ([`Policy::request_mode`]): a `GET` is looked up; `HEAD`,
///   `OPTIONS` and `TRACE` pass through; `POST`, `PUT`, `DELETE`, `PATCH`
///   (and unknown methods) pass through and invalidate the key, with every
///   variant, when their answer arrives (RFC 9111 section 4.4; on any
///   answer, not only on 2xx and 3xx: an error may still have changed the
///   resource). A `GET` also passes through (not answered from the store,
///   and its answer not stored) when it carries `Authorization`, `Range`, a
///   precondition (`If-None-Match`, ...), or `Cache-Control: no-store`,
///   `no-cache` or `max-age=0` (or `Pragma: no-cache`).
/// - **Storing** ([`Policy::freshness`]): not stored: `no-store`, `private`,
///   `Vary: *` or a `Vary` on a header outside
///   [`vary_on`](HttpCacheConfig::vary_on), `Set-Cookie` (unless allowed),
///   statuses it does not understand. Freshness: `s-maxage`, else
///   `max-age`, else `Expires` minus `Date`, else for heuristically
///   cacheable statuses a share of the time since `Last-Modified`, minus the
///   age the response already had (`Age`, or the time since its `Date`). A
///   response with `no-cache`, or without freshness but with a validator, is
///   stored stale, to be revalidated on each use; without validator or
///   stale window, not stored.
/// - **Stale windows**: `stale-while-revalidate=N` maps onto the cache's
///   stale-while-revalidate window and `stale-if-error=N` onto its
///   stale-if-error window (RFC 5861); without `stale-if-error`, the
///   cache's configured stale-if-error window applies, as an operator's
///   choice to serve stale when the origin fails. `must-revalidate`,
///   `proxy-revalidate`, `s-maxage` and `no-cache` close both windows.
/// - **Variants** ([`Policy::secondary_key`]): the values of the
///   [`vary_on`](HttpCacheConfig::vary_on) headers a request carries; two
///   requests that differ in one of them never share an entry.
/// - **Revalidation** ([`Policy::revalidation`], [`Policy::revalidated`]):
///   a stale entry with an `ETag` or `Last-Modified` is refreshed with a
///   conditional `GET` (`If-None-Match`, `If-Modified-Since`); a `304`
///   refreshes the stored response (its headers updated from the 304's,
///   except the body's framing) and its freshness; any other answer
///   replaces it.
/// - **Serving** ([`Policy::served`]): every response answered from the
///   store carries an `Age` header: the age it arrived with plus the time
///   it was stored.
///
/// Times from headers are read against the system clock (`Date`,
/// `Expires`); the time in the store is the cache's clock.
///
/// # Why not a crate for the rules
///
/// `http-cache-semantics` (the well-kept choice) models a cache that keeps
/// a policy object beside each response and asks it on every request, with
/// the original request at hand. The cache layer instead decides freshness
/// once, when it stores, into windows it judges itself on a lock-free hit
/// path, and keys variants before the lookup. The crate also predates
/// RFC 9111 and `stale-while-revalidate` / `stale-if-error`, which would
/// have to be parsed here anyway. What would remain of it (the max-age
/// arithmetic and the 304 header merge) is a few dozen lines, written here
/// against RFC 9111 rather than pulling in `time` for them.
#[derive(Clone, Debug)]
pub struct HttpCachePolicy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vary_on: Vec<HeaderName>,
    heuristic_percent: u32,
    max_heuristic: Duration,
    store_set_cookie: bool,
}

impl Default for HttpCachePolicy {
    fn default() -> Self {
        HttpCachePolicy::build(&HttpCacheConfig::default())
    }
}

impl HttpCachePolicy {
    /// A policy with these settings, validated.
    pub fn new(config: &HttpCacheConfig) -> Result<HttpCachePolicy, ConfigError> {
        config.validate()?;
        Ok(HttpCachePolicy::build(config))
    }

    /// A policy from settings already validated.
    fn build(config: &HttpCacheConfig) -> HttpCachePolicy {
        HttpCachePolicy {
            inner: Arc::new(Inner {
                vary_on: config
                    .vary_on
                    .iter()
                    .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                    .collect(),
                heuristic_percent: u32::from(config.heuristic_percent),
                max_heuristic: config.max_heuristic,
                store_set_cookie: config.store_set_cookie,
            }),
        }
    }

    /// How long `res` is fresh, and whether it may be stored at all, at
    /// `now` (see the type's docs).
    pub fn freshness_at<B>(
        &self,
        res: &Response<B>,
        default: Freshness,
        now: SystemTime,
    ) -> Option<Freshness> {
        let headers = res.headers();
        let status = res.status().as_u16();
        if !UNDERSTOOD.contains(&status) {
            return None;
        }
        let cc = CacheControl::of(headers);
        if cc.no_store || cc.private || !self.varies_within_keys(headers) {
            return None;
        }
        if !self.inner.store_set_cookie && headers.contains_key(SET_COOKIE) {
            return None;
        }
        let explicit = cc
            .s_maxage
            .or(cc.max_age)
            .map(Duration::from_secs)
            .or_else(|| expires(headers, now));
        let lifetime = match explicit {
            Some(d) => Some(d),
            None if HEURISTIC.contains(&status) || cc.public => self.heuristic(headers, now),
            // Statuses like 302 need explicit freshness.
            None => return None,
        };
        let strict =
            cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some() || cc.no_cache;
        let ttl = if cc.no_cache {
            Duration::ZERO
        } else {
            lifetime
                .unwrap_or(Duration::ZERO)
                .saturating_sub(initial_age(headers, now))
        };
        let (swr, sie) = if strict {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (
                cc.stale_while_revalidate
                    .map_or(Duration::ZERO, Duration::from_secs),
                cc.stale_if_error
                    .map_or(default.stale_if_error, Duration::from_secs),
            )
        };
        let validator = headers.contains_key(ETAG) || headers.contains_key(LAST_MODIFIED);
        if ttl.is_zero() && swr.is_zero() && sie.is_zero() && !validator {
            // Stale at once, and nothing to revalidate it with.
            return None;
        }
        Some(Freshness {
            ttl,
            stale_while_revalidate: swr,
            stale_if_error: sie,
        })
    }

    /// Whether every header the response varies on is one requests are
    /// keyed by.
    fn varies_within_keys(&self, headers: &HeaderMap) -> bool {
        headers.get_all(VARY).iter().all(|v| {
            let Ok(v) = v.to_str() else { return false };
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .all(|n| {
                    n != "*"
                        && self
                            .inner
                            .vary_on
                            .iter()
                            .any(|h| h.as_str().eq_ignore_ascii_case(n))
                })
        })
    }

    /// A share of the time since `Last-Modified` (by the `Date`, else now).
    fn heuristic(&self, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        let modified = date(headers, &LAST_MODIFIED)?;
        let at = date(headers, &DATE).unwrap_or(now);
        let since = at.duration_since(modified).ok()?;
        let share = since.as_secs() / 100 * u64::from(self.inner.heuristic_percent)
            + since.as_secs() % 100 * u64::from(self.inner.heuristic_percent) / 100;
        Some(Duration::from_secs(share).min(self.inner.max_heuristic))
    }
}

/// `Expires` minus `Date` (or now); an invalid `Expires` is already
/// expired (RFC 9111 section 5.3).
fn expires(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers.get(EXPIRES)?;
    let Some(at) = date(headers, &EXPIRES) else {
        return Some(Duration::ZERO);
    };
    let from = date(headers, &DATE).unwrap_or(now);
    Some(at.duration_since(from).unwrap_or(Duration::ZERO))
}

impl<B, RB> Policy<Request<B>, Response<RB>> for HttpCachePolicy
where
    B: Default + 'static,
    RB: Clone + 'static,
{
    fn request_mode(&self, req: &Request<B>) -> RequestMode {
        match *req.method() {
            Method::GET => {}
            Method::HEAD | Method::OPTIONS | Method::TRACE | Method::CONNECT => {
                return RequestMode::Bypass
            }
            _ => return RequestMode::Invalidate,
        }
        let h = req.headers();
        let cc = CacheControl::of(h);
        let personal = PERSONAL.iter().any(|name| h.contains_key(name));
        if personal || cc.no_store || cc.no_cache || cc.max_age == Some(0) {
            RequestMode::Bypass
        } else {
            RequestMode::Lookup
        }
    }

    fn secondary_key(&self, req: &Request<B>, out: &mut Vec<u8>) -> bool {
        let mut wrote = false;
        for (i, name) in self.inner.vary_on.iter().enumerate() {
            for value in req.headers().get_all(name) {
                // Index and length first, so that values cannot run together.
                out.push(i as u8);
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value.as_bytes());
                wrote = true;
            }
        }
        wrote
    }

    fn freshness(&self, response: &Response<RB>, default: Freshness) -> Option<Freshness> {
        self.freshness_at(response, default, SystemTime::now())
    }

    fn revalidation(&self, req: &Request<B>, stale: &Response<RB>) -> Option<Request<B>> {
        let etag = stale.headers().get(ETAG);
        let modified = stale.headers().get(LAST_MODIFIED);
        if etag.is_none() && modified.is_none() {
            return None;
        }
        let mut conditional = Request::new(B::default());
        *conditional.method_mut() = Method::GET;
        *conditional.uri_mut() = req.uri().clone();
        *conditional.version_mut() = req.version();
        *conditional.headers_mut() = req.headers().clone();
        *conditional.extensions_mut() = req.extensions().clone();
        let h = conditional.headers_mut();
        if let Some(etag) = etag {
            h.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(modified) = modified {
            h.insert(IF_MODIFIED_SINCE, modified.clone());
        }
        Some(conditional)
    }

    fn revalidated(&self, stale: &Response<RB>, answer: Response<RB>) -> Response<RB> {
        if answer.status() != StatusCode::NOT_MODIFIED {
            return answer;
        }
        let mut fresh = stale.clone();
        let h = fresh.headers_mut();
        // Validated just now: the age it had is gone (the 304 may bring its own).
        h.remove(AGE);
        for name in answer.headers().keys() {
            if NOT_UPDATED.contains(&name.as_str()) {
                continue;
            }
            h.remove(name);
            for value in answer.headers().get_all(name) {
                h.append(name.clone(), value.clone());
            }
        }
        fresh
    }

    fn served(&self, mut response: Response<RB>, age: Duration) -> Response<RB> {
        let total = age_header(response.headers()).saturating_add(age);
        response
            .headers_mut()
            .insert(AGE, HeaderValue::from(total.as_secs()));
        response
    }
}
