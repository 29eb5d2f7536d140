//! Circuit breaking: stop hammering a backend that fails or is slow, fail
//! fast while it recovers, and probe it carefully before trusting it again.
//!
//! A [`CircuitBreaker`] watches the outcomes of the calls it passes to its
//! inner service. While **closed** it records each outcome in a sliding
//! window; when the window's failure rate (or slow-call rate) reaches its
//! threshold, or enough calls fail in a row, it **opens**: calls are refused
//! at once, without touching the backend, for the open duration. Then it
//! turns **half-open** and admits a few probe calls; if they succeed it
//! closes, otherwise it opens again (for longer, if so configured).
//! Semantics and defaults are resilience4j's; what counts as a failure is
//! the crate's one [`Classify`](crate::classify::Classify).
//!
//! ```
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::breaker::{BreakerState, CircuitBreaker};
//! use tower_fleet::signal::{ErrorSignals, UnavailableKind};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_fleet::BoxError> {
//! // A backend that fails every call.
//! let backend = service_fn(|_req: &str| async { Err::<(), _>(std::io::Error::other("down")) });
//! let mut breaker = CircuitBreaker::builder()
//!     .count_window(10)
//!     .minimum_calls(5)
//!     .open_duration(Duration::from_secs(30))
//!     .build(backend)?;
//!
//! for _ in 0..5 {
//!     let _ = breaker.ready().await?.call("GET /").await; // failures, recorded
//! }
//! assert_eq!(breaker.handle().state(), BreakerState::Open);
//!
//! // Open: refused without calling the backend, with a hint of when to retry.
//! let err = breaker.ready().await?.call("GET /").await.unwrap_err();
//! let signal = err.unavailable().unwrap();
//! assert_eq!(signal.kind(), UnavailableKind::CircuitOpen);
//! assert_eq!(signal.retry_after(), Some(Duration::from_secs(30)));
//!
//! tokio::time::advance(Duration::from_secs(30)).await;
//! assert_eq!(breaker.handle().state(), BreakerState::HalfOpen);
//! # Ok(()) }
//! ```
//!
//! # States
//!
//! | state | calls | leaves when |
//! |---|---|---|
//! | closed | pass; outcomes recorded | a trip condition holds → open |
//! | open | refused | `open_duration` passed → half-open |
//! | half-open | `half_open_calls` probes pass, the rest are refused (not queued) | every probe finished → closed, or open if their failure or slow rate reaches its threshold; `max_half_open_duration` passed → open |
//! | forced open | refused | the handle says so |
//! | disabled | pass; nothing recorded | the handle says so |
//! | metrics only | pass; recorded, events emitted, never trips | the handle says so |
//!
//! Trip conditions, evaluated whenever a call changes the window, once it
//! holds `minimum_calls`: failure rate >= `failure_rate_threshold`, or
//! slow-call rate >= `slow_call_rate_threshold` (with `slow_call_duration`
//! set). And, when `consecutive_failures` is set, that many failures in a
//! row, whatever the window holds. (A success that replaces a success in a
//! count window changes nothing, so it costs no evaluation.) Every
//! transition starts a new **epoch**: a call admitted in an earlier epoch is
//! counted in the window and the counters, but its outcome alone never
//! causes a transition and never fills or frees a probe slot it did not
//! take.
//!
//! # Two modes of an open breaker
//!
//! - **Fail-fast** ([`OpenMode::FailFast`], the default, for the edge of a
//!   stack): `poll_ready` never waits on an open breaker. It decides admit,
//!   probe or refuse, and the decision holds until the next `call`; a refused
//!   call returns [`BreakerError::Open`] at once.
//! - **Not-ready** ([`OpenMode::NotReady`], for one replica inside a
//!   balancer): `poll_ready` is `Pending` while open, and while half-open has
//!   no free probe slot. The task is woken by the next transition, or by a
//!   timer (one per waiting clone) when the open state is due to end. In
//!   half-open a `Ready` reserves a probe slot; the reservation is released
//!   when the breaker clone is dropped unused, and is void once the epoch
//!   moves on (a clone that held it polls afresh), so a balancer that holds a
//!   ready replica without calling it cannot starve probing for longer than
//!   `max_half_open_duration`. `poll_ready` never returns `Err` for an open
//!   breaker (tower's balancers would drop the replica for good), and nothing
//!   waits forever unless the breaker is forced open.
//!
//! The breaker is a [`HealthSource`](crate::signal::HealthSource): it
//! publishes "unavailable until the open duration ends" (and "unavailable"
//! when forced open) so routers skip it without polling it.
//!
//! # Outcomes
//!
//! Each outcome is judged by the classifier ([`ErrorIsFailure`](crate::classify::ErrorIsFailure)
//! by default; [`BreakerBuilder::classify`] takes any other). An error from
//! the inner service's `poll_ready` is judged like a call's. A
//! [`Classification::AtEnd`](crate::classify::Classification::AtEnd) outcome
//! is recorded when the stream ends, and a probe holds its slot until then; a
//! [`LongLived`](crate::classify::Classification::LongLived) one is recorded
//! at once and never counts as slow. A response future dropped before it
//! finishes records the call as ignored and frees the probe slot it held.
//!
//! # Windows, costs and guarantees
//!
//! - **Count window** (the last N calls): one byte per call in a ring. A
//!   call that replaces an outcome with an equal one (a success in a window
//!   of successes) costs one `fetch_add` and one load; otherwise a swap and a
//!   `fetch_add` on the window's totals. No clock read.
//! - **Time window** (the last T, in B buckets that roll): one clock read and
//!   one `fetch_add` on the newest bucket per call; the sums of the older
//!   buckets are recomputed as the window rolls (O(B), once per bucket
//!   width; a call after an idle gap clears the buckets it passed).
//! - The closed-state path takes no lock and allocates nothing; its only
//!   shared writes are that `fetch_add` and the `Arc` count of the breaker's
//!   state, which the response future holds. Transitions take a mutex.
//! - Exactness: a count window's totals equal its contents whenever no call
//!   is being recorded. Approximations, all rare and bounded by the number
//!   of calls recorded at the same instant: two calls that land on the same
//!   count-window slot at once (N calls apart) keep one of the two outcomes;
//!   a time-window outcome recorded while its bucket is being rolled may be
//!   dropped, and one written to a bucket just sealed is counted from the
//!   next roll on. Nothing is striped across cores.
//! - Slow-call detection reads the clock twice per call, so it runs only
//!   when `slow_call_duration` is set. With a time window or slow-call
//!   detection on a hot path, use a coarse clock
//!   ([`BreakerConfig::clock_resolution`]).
//! - Cancel safety: dropping a response future is safe at any point; the
//!   call counts as ignored. `poll_ready` and `call` never block.
//!
//! # Errors
//!
//! [`BreakerError::Open`] (refused; its `source()` is the shared
//! [`Unavailable`](crate::signal::Unavailable) signal of kind `CircuitOpen`
//! with the retry-after) or [`BreakerError::Inner`] (the inner error,
//! boxed). Both implement [`ErrorSignals`](crate::signal::ErrorSignals).
//!
//! # Observing
//!
//! [`BreakerHandle`] reads the state and a [`BreakerSnapshot`] of the
//! counters, forces states, resets, and subscribes to [`StateChange`]s (a
//! `tokio::sync::watch`). Every transition also emits a `tracing` event
//! (`warn` when opening, `info` otherwise).

mod config;
mod core;
mod error;
mod future;
mod handle;
mod layer;
mod permit;
mod service;
mod settings;
mod state;
mod sync;
mod transition;
mod window;

pub use config::{
    BreakerConfig, InitialState, OpenMode, WindowConfig, DEFAULT_CONSECUTIVE_FAILURES,
    MAX_WINDOW_CALLS, MAX_WINDOW_DURATION,
};
pub use error::BreakerError;
pub use future::ResponseFuture;
pub use handle::{BreakerHandle, BreakerSnapshot, StateChange, TransitionCause};
pub use layer::{BreakerBuildError, BreakerBuilder, CircuitBreakerLayer};
pub use service::CircuitBreaker;
pub use state::{BreakerState, MAX_HALF_OPEN_CALLS};
pub use window::MAX_BUCKETS;
