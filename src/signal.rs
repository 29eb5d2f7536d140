//! The shared signals through which the layers meet.
//!
//! tower-fleet's layers work alone, and they work better together because
//! they share a few small types rather than knowing each other:
//!
//! - **Health** ([`HealthSignal`], [`HealthPublisher`]): whether an endpoint
//!   can take requests now, or is unavailable until some instant. Breakers,
//!   outlier ejection and balancers publish it; routers read it to skip an
//!   endpoint without polling it.
//! - **Unavailable, retry after** ([`Unavailable`]): the error every "nothing
//!   available" path returns (an open breaker, a shard that is not ready, a
//!   balancer with no replica, an HTTP 503 with `Retry-After`), carrying the
//!   time after which trying again makes sense. Retry and stale-if-error find
//!   it in any error through [`ErrorSignals`], however deeply it is wrapped.
//! - **Deadline** ([`Carrier::deadline`], [`DeadlineExceeded`]): the instant
//!   after which nobody waits for the response. Every wait in every layer ends
//!   by it.
//! - **Attempt mark** ([`AttemptMark`]): which attempt this is, and a cell,
//!   shared by all copies of one request, to which balancers append the
//!   endpoints they used, so that a retry can avoid the one that just failed.
//! - **Replay** ([`Replay`]): how to get another copy of a request for a
//!   retry, a hedge, a failover or a fan-out, or `None` when it cannot be
//!   copied (then it is sent once, never lost).
//!
//! Requests carry the deadline and the attempt mark through the [`Carrier`]
//! trait. It has default methods, so a request type that carries nothing
//! implements it with one line; [`Envelope`] carries both for any payload,
//! and the `http` feature implements it for `http::Request` (in extensions).
//!
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use tower_fleet::signal::{Carrier, Envelope};
//!
//! struct Lookup { id: u64 }
//! impl Carrier for Lookup {} // carries nothing: no deadline, no attempt mark
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let req = Envelope::new(Lookup { id: 7 }).with_deadline(Instant::now() + Duration::from_secs(1));
//! assert!(req.deadline().is_some());
//! assert_eq!(req.payload.id, 7);
//! # }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::{Clock, Ticks};
use crate::BoxError;

// ---------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------

/// What a [`HealthSignal`] says about its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// It can take requests now.
    Available,
    /// It cannot take requests; `until` is when it may again (`None`: unknown,
    /// until its publisher says otherwise).
    Unavailable {
        /// When the endpoint expects to be available again, if known.
        until: Option<Instant>,
    },
}

impl Health {
    /// Whether the endpoint can take requests now.
    pub fn is_available(&self) -> bool {
        matches!(self, Health::Available)
    }
}

const AVAILABLE: u64 = 0;
const UNTIL_TOLD: u64 = u64::MAX;

#[derive(Debug)]
struct HealthCell {
    /// `AVAILABLE`, `UNTIL_TOLD`, or the [`Ticks`] until which it is unavailable.
    until: AtomicU64,
}

/// The read side of an endpoint's health: cheap to clone, one atomic load to read.
///
/// A signal whose "unavailable until" instant has passed reads as available:
/// publishers need no timer to bring an endpoint back.
#[derive(Clone)]
pub struct HealthSignal {
    cell: Arc<HealthCell>,
}

/// The write side of an endpoint's health, held by whoever judges it.
#[derive(Clone)]
pub struct HealthPublisher {
    cell: Arc<HealthCell>,
}

/// A new health signal, available, with its publisher.
pub fn health() -> (HealthPublisher, HealthSignal) {
    let cell = Arc::new(HealthCell {
        until: AtomicU64::new(AVAILABLE),
    });
    (
        HealthPublisher { cell: cell.clone() },
        HealthSignal { cell },
    )
}

impl HealthSignal {
    /// A signal that nobody publishes to: always available.
    pub fn always_available() -> HealthSignal {
        health().1
    }

    /// The health now, by `clock`. Reads the clock only when the endpoint was
    /// marked unavailable until a known instant.
    #[inline]
    pub fn health(&self, clock: &Clock) -> Health {
        match self.cell.until.load(Ordering::Acquire) {
            AVAILABLE => Health::Available,
            UNTIL_TOLD => Health::Unavailable { until: None },
            t if clock.ticks().0 >= t => Health::Available,
            t => Health::Unavailable {
                until: Some(Ticks(t).to_instant()),
            },
        }
    }

    /// Whether the endpoint can take requests now, by `clock`.
    #[inline]
    pub fn is_available(&self, clock: &Clock) -> bool {
        self.health(clock).is_available()
    }

    /// How long until the endpoint may be available again, from `now`: zero
    /// when it is available, `None` when unknown.
    pub fn retry_after(&self, now: Instant) -> Option<Duration> {
        match self.cell.until.load(Ordering::Acquire) {
            AVAILABLE => Some(Duration::ZERO),
            UNTIL_TOLD => None,
            t => Some(Ticks(t).to_instant().saturating_duration_since(now)),
        }
    }
}

impl HealthPublisher {
    /// Marks the endpoint available.
    pub fn set_available(&self) {
        self.cell.until.store(AVAILABLE, Ordering::Release);
    }

    /// Marks the endpoint unavailable until `until`; it reads as available
    /// after that without further calls.
    pub fn set_unavailable_until(&self, until: Instant) {
        let t = Ticks::from_instant(until).0.clamp(1, UNTIL_TOLD - 1);
        self.cell.until.store(t, Ordering::Release);
    }

    /// Marks the endpoint unavailable until [`set_available`](Self::set_available)
    /// or [`set_unavailable_until`](Self::set_unavailable_until) is called.
    pub fn set_unavailable(&self) {
        self.cell.until.store(UNTIL_TOLD, Ordering::Release);
    }

    /// A read side of this signal.
    pub fn signal(&self) -> HealthSignal {
        HealthSignal {
            cell: self.cell.clone(),
        }
    }
}

impl fmt::Debug for HealthSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HealthSignal")
            .field(&self.cell.until.load(Ordering::Relaxed))
            .finish()
    }
}

impl fmt::Debug for HealthPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HealthPublisher")
            .field(&self.cell.until.load(Ordering::Relaxed))
            .finish()
    }
}

/// A service that publishes its own health, such as a circuit breaker or a
/// balancer. Routers built over such services can skip the unavailable ones.
pub trait HealthSource {
    /// The service's health signal.
    fn health_signal(&self) -> HealthSignal;
}

// ---------------------------------------------------------------------------
// Unavailable, retry after
// ---------------------------------------------------------------------------

/// Why nothing could take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnavailableKind {
    /// A circuit breaker is open.
    CircuitOpen,
    /// An endpoint did not become ready within the configured wait.
    NotReady,
    /// No endpoint of a set (a shard's replicas, the shards of a fleet) is available.
    NoneAvailable,
    /// Load was shed: too many requests are already waiting.
    Overloaded,
    /// A quorum of replicas could not be reached.
    QuorumFailed,
    /// The server said so (HTTP 503 with `Retry-After`, gRPC pushback).
    Server,
}

impl fmt::Display for UnavailableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnavailableKind::CircuitOpen => "circuit breaker open",
            UnavailableKind::NotReady => "endpoint not ready in time",
            UnavailableKind::NoneAvailable => "no endpoint available",
            UnavailableKind::Overloaded => "overloaded",
            UnavailableKind::QuorumFailed => "quorum not reached",
            UnavailableKind::Server => "server unavailable",
        })
    }
}

/// "Unavailable, retry after": the error every "nothing available" path
/// carries, so that retry and stale-if-error can react at once.
///
/// Layers put it in their own error types as the error's `source()`, so
/// [`ErrorSignals::unavailable`] finds it through any wrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable {
    kind: UnavailableKind,
    retry_after: Option<Duration>,
}

impl Unavailable {
    /// A new signal of this kind, with no retry-after hint.
    pub fn new(kind: UnavailableKind) -> Unavailable {
        Unavailable {
            kind,
            retry_after: None,
        }
    }

    /// The same signal with a retry-after hint.
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Unavailable {
        self.retry_after = after;
        self
    }

    /// Why nothing was available.
    pub fn kind(&self) -> UnavailableKind {
        self.kind
    }

    /// How long after the error was made trying again makes sense, if known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unavailable: {}", self.kind)?;
        if let Some(after) = self.retry_after {
            write!(f, " (retry after {after:?})")?;
        }
        Ok(())
    }
}

impl StdError for Unavailable {}

/// The request's deadline passed before it could be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request deadline exceeded")]
pub struct DeadlineExceeded;

/// Finds the shared signals in an error, however it is wrapped.
///
/// Implemented for [`BoxError`] (it walks the `source()` chain), for the
/// crate's own error types, and for common leaf errors. A request error type
/// of your own can implement it in a line, or with a walk of its chain:
///
/// ```
/// use tower_fleet::signal::{ErrorSignals, Unavailable, UnavailableKind};
///
/// let err: tower_fleet::BoxError = Box::new(Unavailable::new(UnavailableKind::CircuitOpen));
/// assert_eq!(err.unavailable().unwrap().kind(), UnavailableKind::CircuitOpen);
/// ```
pub trait ErrorSignals {
    /// The "unavailable, retry after" signal this error carries, if any.
    fn unavailable(&self) -> Option<&Unavailable>;

    /// Whether this error says the request's deadline passed.
    fn deadline_exceeded(&self) -> bool {
        false
    }

    /// This error as a `std` error, so that readers can walk its `source()`
    /// chain for signals this trait does not name (the `http` feature looks
    /// there for connection errors that prove a request was never sent).
    ///
    /// The default, `None`, hides the chain. `BoxError`, `std::io::Error`
    /// and the crate's own errors return themselves.
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        None
    }
}

/// The [`Unavailable`] signal in `err` or anywhere along its `source()` chain.
pub fn find_unavailable<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Unavailable> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(u) = e.downcast_ref::<Unavailable>() {
            return Some(u);
        }
        cur = e.source();
    }
    None
}

/// Whether `err` or anything along its `source()` chain is [`DeadlineExceeded`].
pub fn find_deadline_exceeded(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<DeadlineExceeded>() {
            return true;
        }
        cur = e.source();
    }
    false
}

impl ErrorSignals for BoxError {
    fn unavailable(&self) -> Option<&Unavailable> {
        find_unavailable(&**self)
    }
    fn deadline_exceeded(&self) -> bool {
        find_deadline_exceeded(&**self)
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&**self)
    }
}

impl ErrorSignals for Unavailable {
    fn unavailable(&self) -> Option<&Unavailable> {
        Some(self)
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

impl ErrorSignals for DeadlineExceeded {
    fn unavailable(&self) -> Option<&Unavailable> {
        None
    }
    fn deadline_exceeded(&self) -> bool {
        true
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

impl ErrorSignals for std::io::Error {
    fn unavailable(&self) -> Option<&Unavailable> {
        find_unavailable(self)
    }
    fn deadline_exceeded(&self) -> bool {
        find_deadline_exceeded(self)
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

impl ErrorSignals for std::convert::Infallible {
    fn unavailable(&self) -> Option<&Unavailable> {
        match *self {}
    }
}

impl ErrorSignals for tower::timeout::error::Elapsed {
    fn unavailable(&self) -> Option<&Unavailable> {
        None
    }
    fn as_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self)
    }
}

// ---------------------------------------------------------------------------
// Retry-after hints from outcomes
// ---------------------------------------------------------------------------

/// Reads a "retry after" hint from a call's outcome: how long to wait before
/// sending the request again.
///
/// The retry layer asks it after each failed attempt, and a hint wins over the
/// backoff. [`ErrorRetryAfter`] (the default) finds the [`Unavailable`] signal
/// in an error (an open breaker's, a shard's, a balancer's); the `http`
/// feature adds one that also reads an HTTP `Retry-After` header from a
/// response. Implemented for closures `Fn(&Result<Res, E>) -> Option<Duration>`.
///
/// ```
/// use std::time::Duration;
/// use tower_fleet::signal::{ErrorRetryAfter, RetryAfter, Unavailable, UnavailableKind};
///
/// let open: Result<(), tower_fleet::BoxError> = Err(Box::new(
///     Unavailable::new(UnavailableKind::CircuitOpen).with_retry_after(Some(Duration::from_secs(2))),
/// ));
/// assert_eq!(ErrorRetryAfter.retry_after(&open), Some(Duration::from_secs(2)));
///
/// // A protocol that answers "busy, try in 1s" in its responses:
/// let busy = |r: &Result<&str, std::io::Error>| match r {
///     Ok("busy") => Some(Duration::from_secs(1)),
///     _ => None,
/// };
/// assert_eq!(busy.retry_after(&Ok("busy")), Some(Duration::from_secs(1)));
/// ```
pub trait RetryAfter<Res, E> {
    /// The wait the outcome asks for, if it asks for one.
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<Duration>;
}

/// Reads the retry-after of the [`Unavailable`] signal an error carries,
/// through [`ErrorSignals`]. Responses carry no hint.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorRetryAfter;

impl<Res, E: ErrorSignals> RetryAfter<Res, E> for ErrorRetryAfter {
    #[inline]
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<Duration> {
        match outcome {
            Ok(_) => None,
            Err(e) => e.unavailable().and_then(Unavailable::retry_after),
        }
    }
}

/// Never reads a hint: for error types that do not implement [`ErrorSignals`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRetryAfter;

impl<Res, E> RetryAfter<Res, E> for NoRetryAfter {
    #[inline]
    fn retry_after(&self, _outcome: &Result<Res, E>) -> Option<Duration> {
        None
    }
}

impl<Res, E, F> RetryAfter<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Option<Duration>,
{
    #[inline]
    fn retry_after(&self, outcome: &Result<Res, E>) -> Option<Duration> {
        self(outcome)
    }
}

// ---------------------------------------------------------------------------
// Attempt mark
// ---------------------------------------------------------------------------

/// A stable identity of one endpoint (replica), for the attempt mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub u64);

impl EndpointId {
    /// The identity of an endpoint named `name` (its address, or its id),
    /// hashed with xxh3 so that it agrees across processes.
    pub fn of(name: &str) -> EndpointId {
        EndpointId(xxhash_rust::xxh3::xxh3_64(name.as_bytes()))
    }
}

/// How many endpoints an attempt mark remembers; later ones are dropped.
const MAX_TRIED: usize = 16;

/// Which attempt a request is, and the endpoints its attempts used.
///
/// All copies of one request share the cell of tried endpoints, so a balancer
/// that appends the replica it picked lets the next attempt pick another
/// (Envoy's previous-hosts predicate). It remembers at most 16 endpoints.
#[derive(Clone)]
pub struct AttemptMark {
    attempt: u32,
    tried: Arc<Mutex<Vec<EndpointId>>>,
}

impl Default for AttemptMark {
    fn default() -> Self {
        AttemptMark::new()
    }
}

impl AttemptMark {
    /// The mark of a first attempt, with no endpoint tried.
    pub fn new() -> AttemptMark {
        AttemptMark {
            attempt: 1,
            tried: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The mark of the next attempt: the number plus one, the same cell.
    #[must_use]
    pub fn next(&self) -> AttemptMark {
        AttemptMark {
            attempt: self.attempt.saturating_add(1),
            tried: self.tried.clone(),
        }
    }

    /// Records that an attempt of this request used `endpoint`.
    pub fn record(&self, endpoint: EndpointId) {
        let mut tried = self.tried.lock().unwrap_or_else(|p| p.into_inner());
        if tried.len() < MAX_TRIED {
            tried.push(endpoint);
        }
    }

    /// Whether an attempt of this request used `endpoint`.
    pub fn was_tried(&self, endpoint: EndpointId) -> bool {
        self.tried
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&endpoint)
    }

    /// The endpoints used so far, in order.
    pub fn tried(&self) -> Vec<EndpointId> {
        self.tried.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl fmt::Debug for AttemptMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptMark")
            .field("attempt", &self.attempt)
            .field("tried", &self.tried())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Carrier and Envelope
// ---------------------------------------------------------------------------

/// A request that can carry the per-request signals: its deadline and its
/// attempt mark.
///
/// Every method has a default, so a request type that carries nothing
/// implements it with `impl Carrier for MyRequest {}`. Strings, byte strings,
/// integers and `()` implement it that way already. Wrap a request in
/// [`Envelope`] to give it a deadline and an attempt mark.
pub trait Carrier {
    /// The instant after which nobody waits for the response.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Sets the deadline; returns `false` when the request cannot carry one.
    fn set_deadline(&mut self, deadline: Instant) -> bool {
        let _ = deadline;
        false
    }

    /// The attempt mark, if the request carries one.
    fn attempt(&self) -> Option<&AttemptMark> {
        None
    }

    /// Sets the attempt mark; returns `false` when the request cannot carry one.
    fn set_attempt(&mut self, mark: AttemptMark) -> bool {
        let _ = mark;
        false
    }

    /// Whether [`set_attempt`](Self::set_attempt) would keep a mark.
    ///
    /// Layers ask before they make a mark for a request that has none, since
    /// making one allocates and a request that cannot carry it would drop it.
    /// The default, `true`, is always correct (at worst a mark is made and
    /// dropped); the types of this crate that carry nothing answer `false`.
    fn can_carry_attempt(&self) -> bool {
        true
    }
}

macro_rules! carries_nothing {
    ($($t:ty),* $(,)?) => {$(
        impl Carrier for $t {
            fn can_carry_attempt(&self) -> bool {
                false
            }
        }
    )*};
}

carries_nothing!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    String,
    bytes::Bytes,
);

carries_nothing!(&str, &[u8]);

impl<T> Carrier for Vec<T> {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

impl<T: ?Sized> Carrier for Box<T> {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

impl<T: ?Sized> Carrier for Arc<T> {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

/// Any payload with a deadline and an attempt mark.
#[derive(Clone, Debug, Default)]
pub struct Envelope<T> {
    /// The request itself.
    pub payload: T,
    deadline: Option<Instant>,
    attempt: Option<AttemptMark>,
}

impl<T> Envelope<T> {
    /// `payload` with no deadline and no attempt mark.
    pub fn new(payload: T) -> Envelope<T> {
        Envelope {
            payload,
            deadline: None,
            attempt: None,
        }
    }

    /// The same envelope with a deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Envelope<T> {
        self.deadline = Some(deadline);
        self
    }

    /// The same envelope with a deadline `timeout` from now.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Envelope<T> {
        self.with_deadline(Instant::now() + timeout)
    }

    /// The payload, without the envelope.
    pub fn into_inner(self) -> T {
        self.payload
    }
}

impl<T> Carrier for Envelope<T> {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn set_deadline(&mut self, deadline: Instant) -> bool {
        self.deadline = Some(deadline);
        true
    }
    fn attempt(&self) -> Option<&AttemptMark> {
        self.attempt.as_ref()
    }
    fn set_attempt(&mut self, mark: AttemptMark) -> bool {
        self.attempt = Some(mark);
        true
    }
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

/// How to get another copy of a request: for a retry, a hedge, a failover to
/// another shard or a fan-out to several replicas.
///
/// `None` means the request cannot be copied (a streamed body, say); layers
/// then send it once and return that outcome, never drop it, and count it.
/// Implemented for closures `Fn(&Req) -> Option<Req>`.
pub trait Replay<Req> {
    /// A copy of `req` to send again, or `None`.
    fn replay(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneReplay;

impl<Req: Clone> Replay<Req> for CloneReplay {
    #[inline]
    fn replay(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Never copies requests: each is sent once.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<Req> Replay<Req> for NoReplay {
    #[inline]
    fn replay(&self, _req: &Req) -> Option<Req> {
        None
    }
}

impl<Req, F> Replay<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    fn replay(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// The earlier of an optional deadline and `bound` from `now`.
pub fn wait_until(now: Instant, bound: Duration, deadline: Option<Instant>) -> Instant {
    let by_bound = now
        .checked_add(bound)
        .unwrap_or(now + Duration::from_secs(86_400 * 365));
    match deadline {
        Some(d) if d < by_bound => d,
        _ => by_bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn health_returns_by_itself_after_its_instant() {
        let clock = Clock::default();
        let (publisher, signal) = health();
        assert_eq!(signal.health(&clock), Health::Available);
        let until = Instant::now() + Duration::from_secs(10);
        publisher.set_unavailable_until(until);
        assert_eq!(
            signal.health(&clock),
            Health::Unavailable { until: Some(until) }
        );
        assert_eq!(
            signal.retry_after(Instant::now()),
            Some(Duration::from_secs(10))
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(signal.is_available(&clock));
        publisher.set_unavailable();
        assert_eq!(signal.health(&clock), Health::Unavailable { until: None });
        assert_eq!(signal.retry_after(Instant::now()), None);
        publisher.set_available();
        assert!(publisher.signal().is_available(&clock));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Unavailable);

    #[test]
    fn unavailable_is_found_through_wrapping() {
        let u = Unavailable::new(UnavailableKind::CircuitOpen)
            .with_retry_after(Some(Duration::from_secs(3)));
        let boxed: BoxError = Box::new(Outer(u.clone()));
        assert_eq!(boxed.unavailable(), Some(&u));
        let io = std::io::Error::other(Outer(u.clone()));
        assert_eq!(io.unavailable(), Some(&u));
        assert_eq!(
            u.to_string(),
            "unavailable: circuit breaker open (retry after 3s)"
        );
        let plain: BoxError = "nope".into();
        assert_eq!(plain.unavailable(), None);
        let late: BoxError = Box::new(DeadlineExceeded);
        assert!(late.deadline_exceeded());
        assert!(!plain.deadline_exceeded());
    }

    #[test]
    fn errors_expose_their_chain_for_other_readers() {
        let boxed: BoxError = Box::new(Outer(Unavailable::new(UnavailableKind::NotReady)));
        let chain = boxed.as_error().unwrap();
        assert!(chain.is::<Outer>());
        assert!(chain.source().unwrap().is::<Unavailable>());
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(io.as_error().unwrap().is::<std::io::Error>());
        struct Opaque;
        impl ErrorSignals for Opaque {
            fn unavailable(&self) -> Option<&Unavailable> {
                None
            }
        }
        assert!(Opaque.as_error().is_none(), "the default hides the chain");
    }

    #[test]
    fn retry_after_hints_come_from_errors_or_closures() {
        let after = Some(Duration::from_millis(750));
        let open: Result<u8, BoxError> = Err(Box::new(Outer(
            Unavailable::new(UnavailableKind::CircuitOpen).with_retry_after(after),
        )));
        assert_eq!(ErrorRetryAfter.retry_after(&open), after);
        assert_eq!(NoRetryAfter.retry_after(&open), None);
        let plain: Result<u8, BoxError> = Err("boom".into());
        assert_eq!(ErrorRetryAfter.retry_after(&plain), None);
        assert_eq!(ErrorRetryAfter.retry_after(&Ok::<u8, BoxError>(1)), None);
        let by_value =
            |r: &Result<u8, BoxError>| r.as_ref().ok().map(|v| Duration::from_secs(u64::from(*v)));
        assert_eq!(by_value.retry_after(&Ok(3)), Some(Duration::from_secs(3)));
    }

    #[test]
    fn only_carriers_that_keep_a_mark_say_they_can() {
        assert!(Envelope::new(1u8).can_carry_attempt());
        assert!(!String::new().can_carry_attempt());
        assert!(!"str".can_carry_attempt());
        assert!(!vec![1u8].can_carry_attempt());
        struct Custom;
        impl Carrier for Custom {}
        assert!(
            Custom.can_carry_attempt(),
            "the default must never skip a mark a custom type keeps"
        );
    }

    #[test]
    fn attempt_marks_share_their_tried_endpoints() {
        let first = AttemptMark::new();
        let second = first.next();
        assert_eq!((first.attempt(), second.attempt()), (1, 2));
        first.record(EndpointId::of("10.0.0.1:80"));
        assert!(second.was_tried(EndpointId::of("10.0.0.1:80")));
        assert!(!second.was_tried(EndpointId::of("10.0.0.2:80")));
        for i in 0..100 {
            second.record(EndpointId(i));
        }
        assert_eq!(first.tried().len(), MAX_TRIED);
    }

    #[test]
    fn envelopes_carry_signals_and_replay_keeps_the_cell() {
        let mut e = Envelope::new("payload");
        assert!(e.set_attempt(AttemptMark::new()));
        let copy = CloneReplay.replay(&e).unwrap();
        copy.attempt().unwrap().record(EndpointId(9));
        assert!(e.attempt().unwrap().was_tried(EndpointId(9)));
        assert!(NoReplay.replay(&e).is_none());
        let mut s = String::from("x");
        assert!(!s.set_attempt(AttemptMark::new()));
        assert!(s.deadline().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn waits_end_at_the_earlier_of_bound_and_deadline() {
        let now = Instant::now();
        let d = now + Duration::from_millis(100);
        assert_eq!(wait_until(now, Duration::from_secs(1), Some(d)), d);
        assert_eq!(
            wait_until(now, Duration::from_millis(10), Some(d)),
            now + Duration::from_millis(10)
        );
        assert_eq!(
            wait_until(now, Duration::from_millis(10), None),
            now + Duration::from_millis(10)
        );
    }
}
