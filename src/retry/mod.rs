//! Retries: turn transient failures into successes without taking a
//! struggling backend down.
//!
//! A retry multiplies load exactly when a backend can least take it: if
//! every client retries every failure three times, a backend that starts
//! failing receives three times its traffic and cannot recover. [`Retry`]
//! makes the safe thing the default. Attempts are spaced by jittered
//! exponential [`Backoff`]; a [`RetryBudget`] shared by the whole layer lets
//! retries reach only a fraction of recent requests (20% plus 10 a second by
//! default), so a failing backend sees at most about 1.2 times the traffic;
//! only failures (as the crate's [`Classify`](crate::classify::Classify)
//! decides) of requests that may be sent twice are retried; and every wait
//! ends by the request's deadline.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::retry::Retry;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_fleet::BoxError> {
//! // A backend that fails twice, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let flaky = service_fn(move |req: String| {
//!     let n = seen.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n < 2 { Err(tower_fleet::BoxError::from("try again")) } else { Ok(format!("hello {req}")) }
//!     }
//! });
//!
//! let mut svc = Retry::builder().max_attempts(3).timeout(Duration::from_secs(2)).build(flaky)?;
//! let answer = svc.ready().await?.call("world".to_string()).await?;
//! assert_eq!(answer, "hello world");
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! assert_eq!(svc.handle().snapshot().retries, 2);
//! # Ok(()) }
//! ```
//!
//! # What is retried
//!
//! An attempt whose outcome the policy's classifier calls
//! [`Outcome::Failure`](crate::classify::Outcome::Failure), or that timed out
//! (`attempt_timeout`), is retried when all of these hold; otherwise its
//! outcome is returned unchanged:
//!
//! - the request is retryable (a predicate on the request, [`Retryable`]; by
//!   default every request; the `http` feature restricts it by method), or
//!   the policy lets it be sent again only when the failure shows it never
//!   reached the server ([`RetryPolicy::is_retryable_unsent`] and
//!   [`RetryPolicy::never_sent`]: a POST whose connection was refused; such
//!   a request is never hedged);
//! - a copy of it could be made ([`Replay`](crate::signal::Replay), `Clone`
//!   by default). A request that cannot be copied is sent once and its
//!   outcome returned, never lost, and the `not_cloneable` counter rises;
//! - fewer than `max_attempts` attempts were made. **`max_attempts` counts
//!   the first attempt**, as resilience4j does; Envoy and Polly count retries
//!   only;
//! - the budget grants a retry (else `budget_exhausted` rises);
//! - the next attempt would start before the request's deadline, and any
//!   retry-after hint is at most `max_retry_after`.
//!
//! A success, an outcome classified [`Ignore`](crate::classify::Outcome::Ignore)
//! (a client error, say) and an outcome known only at the end of a stream
//! are returned at once.
//!
//! # Waits: backoff, retry-after, deadline
//!
//! Between attempts the layer waits for the [`Backoff`] (full jitter by
//! default). A retry-after hint wins over the backoff: the policy reads it
//! from the outcome through the shared [`RetryAfter`](crate::signal::RetryAfter)
//! hook, by default from the [`Unavailable`](crate::signal::Unavailable)
//! signal an error carries (the crate's breaker, shard and balancer errors
//! carry one; the `http` feature adds HTTP `Retry-After`). So a retry against
//! an open breaker waits exactly until the breaker lets calls through again
//! rather than failing fast again and again; a hint of zero retries at once.
//!
//! The request's deadline is the earlier of the one it carries
//! ([`Carrier::deadline`](crate::signal::Carrier::deadline)) and `timeout`
//! from its arrival; with `timeout` set, the request is given the new
//! deadline so that inner layers respect it too. No attempt starts at or
//! after the deadline (a wait that would end there returns the last outcome
//! at once), and an attempt still running at the deadline is dropped and the
//! request fails with [`RetryError::DeadlineExceeded`].
//!
//! # Attempt marks
//!
//! Each attempt carries the shared [`AttemptMark`](crate::signal::AttemptMark)
//! when the request can carry one (an [`Envelope`](crate::signal::Envelope),
//! an `http::Request`): a request without a mark gets one on its first
//! attempt, and each further attempt gets the next number and the same cell
//! of endpoints tried, so a balancer below can avoid the replica that just
//! failed (Envoy's previous-hosts predicate).
//!
//! # The budget
//!
//! Every request deposits `ratio` of a retry; every retry and every hedge
//! withdraws one; both count for `ttl`; a reserve of `min_per_second × ttl`
//! lets quiet clients retry. With an inner service that always fails, the
//! inner calls over any period stay under
//! `requests × (1 + ratio) + min_per_second × (elapsed + ttl)` (the tests
//! check it with and without hedging). The budget is lock-free and never
//! overdrawn, even by racing callers; see [`RetryBudget`]. Share one budget
//! across layers with [`RetryBuilder::shared_budget`]; it also implements
//! tower's `Budget` trait, for `tower::retry`.
//!
//! # Hedging
//!
//! With a [`HedgeConfig`], a retryable request whose first attempt has not
//! answered after a delay (fixed, or a percentile of recent attempts'
//! latencies) gets a backup copy, charged to the same budget and counted as
//! an attempt. The first attempt to succeed wins; the other is dropped, which
//! cancels it: inner layers see a dropped future, which the crate's layers
//! count as [`Ignore`](crate::classify::Outcome::Ignore), never as a failure.
//! If one copy fails, the layer waits for the other before deciding to retry.
//! The backup's service readiness is driven inside the response future, so
//! the inner service must be `Clone` (as it must for retries). Dropping a
//! copy that waits behind a `tower::buffer::Buffer` does not cancel the work
//! already queued: the buffer's worker still sends it.
//!
//! # Why our own service, not `tower::retry::Policy`
//!
//! `tower::retry` drives one attempt at a time through a per-request clone of
//! a `Policy`. Hedging (two attempts in flight and a race), per-attempt
//! timeouts, the deadline, counting requests that cannot be copied, and
//! retry-after hints that replace the backoff would each be layered around
//! it, with more futures and clones per request. One named future with one
//! timer does it all, allocates nothing on a first-try success without
//! timeouts or hedging (see below), and clones only
//! the inner service and an `Arc` per request (tower's `Retry` clones the
//! service and the policy). The budget still plugs into `tower::retry`.
//!
//! # Guarantees and costs
//!
//! - **Errors**: [`RetryError`]. The inner error of the last attempt is
//!   boxed, unchanged, in [`RetryError::Inner`]; its shared signals stay
//!   findable through [`ErrorSignals`](crate::signal::ErrorSignals).
//! - **Cancel safety**: dropping the response future drops every attempt in
//!   flight and every wait; budget tokens already withdrawn are not returned.
//! - **Blocking**: none. `poll_ready` is the inner service's; further
//!   attempts wait for their service clone inside the response future,
//!   bounded by `attempt_timeout` and the deadline (unbounded when neither
//!   is set, as the caller's own `poll_ready` would be).
//! - **Per request**, on first-try success: a counter increment, a budget
//!   deposit (a clock read and one atomic add), a copy of the request, a
//!   clone of the inner service and of an `Arc`; no allocation, no lock. The
//!   clock is read only when `timeout`, `attempt_timeout` or hedging is
//!   configured, and a timer is made only when an attempt must wait. The
//!   machinery for a second attempt (its slot, the timer, the backoff state)
//!   lives in one box, made when the first attempt fails or, with
//!   `timeout`, `attempt_timeout` or hedging configured, when the request
//!   starts: so the response future stays about the size of the inner one,
//!   which every layer above moves and stores. On a
//!   hot path, give the layer [`Clock::coarse`](crate::clock::Clock::coarse)
//!   ([`RetryBuilder::clock`]): the budget's clock read becomes one atomic
//!   load instead of `Instant::now()`. BENCHMARKS.md has the figures.
//! - **Observability**: [`RetryHandle::snapshot`] (requests, retries, budget
//!   exhausted, not cloneable, hedges sent and won, timeouts); `tracing`
//!   events when the budget runs out and recovers (`warn`/`info`) and for
//!   each retry and hedge (`debug`).
//!
//! # Defaults
//!
//! | knob | default |
//! |---|---|
//! | `max_attempts` | 3 (the first attempt and two retries) |
//! | `attempt_timeout`, `timeout` | none |
//! | `max_retry_after` | 10s |
//! | `backoff` | 50ms to 1s, full jitter |
//! | `budget` | on: 20% of requests + 10/s over 10s |
//! | `hedge` | off |

mod backoff;
mod budget;
mod config;
mod control;
mod error;
mod future;
mod handle;
mod hedge;
mod layer;
mod policy;
mod service;

pub use backoff::{Backoff, Jitter, MAX_BACKOFF};
pub use budget::{BudgetSnapshot, RetryBudget, BUCKETS};
pub use config::{BudgetConfig, RetryConfig, MAX_ATTEMPTS, MAX_MIN_PER_SECOND, MAX_RATIO};
pub use error::RetryError;
pub use future::ResponseFuture;
pub use handle::{RetryHandle, RetrySnapshot};
pub use hedge::HedgeConfig;
pub use layer::{RetryBuilder, RetryLayer};
pub use policy::{AllRequests, Policy, RetryPolicy, Retryable};
pub use service::Retry;
