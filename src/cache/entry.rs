//! Stored entries: a response (or a negatively cached error) with its times.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::error::SharedError;
use super::horizon::Bounds;
use crate::clock::Ticks;

/// How long a stored response may be served.
///
/// Fresh for `ttl` after it was stored; then, for `stale_while_revalidate`,
/// served stale at once while one background refresh runs; and for
/// `stale_if_error`, served stale only when a fresh load fails. The default
/// comes from [`CacheConfig`](super::CacheConfig); a
/// [`Policy`](super::Policy) may set it per response (HTTP `max-age`,
/// `stale-while-revalidate`, `stale-if-error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Freshness {
    /// How long the response is fresh.
    pub ttl: Duration,
    /// How long after `ttl` it is served stale while one refresh runs.
    pub stale_while_revalidate: Duration,
    /// How long after `ttl` it is served stale when a load fails.
    pub stale_if_error: Duration,
}

impl Freshness {
    /// Fresh for `ttl`, never served stale.
    pub fn ttl(ttl: Duration) -> Freshness {
        Freshness {
            ttl,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        }
    }

    /// How long after it was stored the entry can be served at all: the end
    /// of the later stale window. A store may drop the entry after that.
    pub fn lifetime(&self) -> Duration {
        self.ttl
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
    }
}

/// One stored response, or one negatively cached error, with the times that
/// decide how it is served. Cloning it clones the response (use `Bytes` or
/// `Arc<_>`) and shares its times.
///
/// A hit reads only what sits inline, beside the response: the time until
/// which it is fresh. The other times (when it was stored, its stale
/// windows, how long its load took, its last read for time-to-idle) live in
/// one allocation shared by the entry's clones, read by the rarer paths.
/// The cache judges hits in place in the store (see
/// [`Store::lookup_with`](super::Store::lookup_with)), so a hit clones the
/// response and nothing else.
///
/// Stores keep entries opaque; the cache judges their age. A store that
/// persists entries elsewhere (a remote tier) rebuilds them with
/// [`Entry::new`] from the value and the times it saved.
pub struct Entry<T> {
    value: Result<T, SharedError>,
    fresh_until: Ticks,
    times: Arc<Times>,
}

/// The times of an entry that a fresh hit does not read.
struct Times {
    stored: Ticks,
    swr_until: Ticks,
    sie_until: Ticks,
    /// How long the load that produced it took (the "delta" of early refresh).
    load_nanos: u64,
    /// With a secondary key: the variant generation the load started under.
    variant_gen: Option<u64>,
    /// The last read, for time-to-idle (written only when it is on).
    last_access: AtomicU64,
}

impl<T: Clone> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            fresh_until: self.fresh_until,
            times: self.times.clone(),
        }
    }
}

impl<T> fmt::Debug for Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("negative", &self.value.is_err())
            .field("stored_at", &self.stored_at())
            .field("fresh_until", &self.fresh_until())
            .finish_non_exhaustive()
    }
}

/// How an entry may be served now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    Fresh,
    /// In the stale-while-revalidate window.
    Revalidate,
    /// In the stale-if-error window (and past stale-while-revalidate).
    IfError,
    /// Past every window, or idle for longer than time-to-idle.
    Dead,
}

impl<T> Entry<T> {
    /// An entry for `value`, stored at `stored_at`, served as `freshness` says.
    /// Its last read is tracked for time-to-idle from `stored_at`.
    pub fn new(value: T, stored_at: Instant, freshness: Freshness) -> Entry<T> {
        Entry::build(
            Ok(value),
            Ticks::from_instant(stored_at),
            freshness,
            Duration::ZERO,
            None,
        )
    }

    pub(crate) fn build(
        value: Result<T, SharedError>,
        stored: Ticks,
        freshness: Freshness,
        load_time: Duration,
        variant_gen: Option<u64>,
    ) -> Entry<T> {
        let fresh_until = stored.plus(freshness.ttl);
        Entry {
            value,
            fresh_until,
            times: Arc::new(Times {
                stored,
                swr_until: fresh_until.plus(freshness.stale_while_revalidate),
                sie_until: fresh_until.plus(freshness.stale_if_error),
                load_nanos: u64::try_from(load_time.as_nanos()).unwrap_or(u64::MAX),
                variant_gen,
                last_access: AtomicU64::new(stored.0),
            }),
        }
    }

    /// The stored response, or the negatively cached error.
    pub fn value(&self) -> Result<&T, &SharedError> {
        self.value.as_ref()
    }

    /// Whether this entry holds a negatively cached error.
    pub fn is_negative(&self) -> bool {
        self.value.is_err()
    }

    /// When the entry was stored.
    pub fn stored_at(&self) -> Instant {
        self.times.stored.to_instant()
    }

    /// Until when the entry is fresh.
    pub fn fresh_until(&self) -> Instant {
        self.fresh_until.to_instant()
    }

    /// After this instant the entry is never served: a store may drop it.
    pub fn expires_at(&self) -> Instant {
        self.times.swr_until.max(self.times.sie_until).to_instant()
    }

    /// The freshness the entry was stored with.
    pub fn freshness(&self) -> Freshness {
        let t = &*self.times;
        Freshness {
            ttl: self.fresh_until.since(t.stored),
            stale_while_revalidate: t.swr_until.since(self.fresh_until),
            stale_if_error: t.sie_until.since(self.fresh_until),
        }
    }

    /// How long the entry has been stored at `now` (zero if `now` is
    /// earlier than its store).
    #[inline]
    pub(crate) fn age_at(&self, now: Ticks) -> Duration {
        now.since(self.times.stored)
    }

    pub(crate) fn variant_gen(&self) -> Option<u64> {
        self.times.variant_gen
    }

    pub(crate) fn load_time(&self) -> Duration {
        Duration::from_nanos(self.times.load_nanos)
    }

    pub(crate) fn fresh_until_ticks(&self) -> Ticks {
        self.fresh_until
    }

    /// Whether the entry is still alive at `upper` (not idle for longer
    /// than `tti`); records an access at `seen` (a time no later than now)
    /// once in a while.
    #[inline]
    fn alive(&self, upper: Ticks, seen: Ticks, tti: Duration) -> bool {
        let last_access = &self.times.last_access;
        let last = Ticks(last_access.load(Ordering::Relaxed));
        if upper.since(last) > tti {
            return false;
        }
        // Write the access time only once in a while, so hot entries do
        // not bounce their cache line between cores on every hit.
        if seen.since(last) > tti / 32 {
            last_access.store(seen.0, Ordering::Relaxed);
        }
        true
    }

    /// How the entry may be served at `now`, and records the access for
    /// time-to-idle.
    #[inline]
    pub(crate) fn age(&self, now: Ticks, tti: Option<Duration>) -> Age {
        if tti.is_some_and(|tti| !self.alive(now, now, tti)) {
            return Age::Dead;
        }
        let t = &*self.times;
        if now < self.fresh_until {
            Age::Fresh
        } else if now < t.swr_until {
            Age::Revalidate
        } else if now < t.sie_until {
            Age::IfError
        } else {
            Age::Dead
        }
    }

    /// Whether the entry is fresh (and, with time-to-idle, not idle) at
    /// every time up to `bounds.upper`: then it is fresh now, whatever the
    /// exact time. Records the access for time-to-idle at `bounds.lower`, a
    /// time no later than now, so an entry can only die early, never late.
    #[inline]
    pub(crate) fn fresh_through(&self, bounds: Bounds, tti: Option<Duration>) -> bool {
        bounds.upper < self.fresh_until
            && tti.is_none_or(|tti| self.alive(bounds.upper, bounds.lower, tti))
    }

    /// Whether a load that failed at `now` may still answer with this entry.
    pub(crate) fn serves_if_error(&self, now: Ticks) -> bool {
        self.value.is_ok() && now < self.times.sie_until
    }

    /// A clone of the stored response (or error).
    #[inline]
    pub(crate) fn answer(&self) -> Result<T, SharedError>
    where
        T: Clone,
    {
        self.value.clone()
    }
}
