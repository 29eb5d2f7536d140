//! Load balancing: spread a shard's traffic over its replicas, and route
//! around the slow and the broken.
//!
//! Adding replicas adds capacity only if traffic reaches them in proportion
//! to what they can take, and a replica that is slow, failing or down should
//! get as little as possible. The [`Balance`] service picks a replica for
//! each request with a [`Strategy`] (by default, the power of two choices
//! over peak-EWMA latency), skips replicas whose health signals say they are
//! unavailable, ejects replicas that keep failing, and waits a bounded time
//! when nothing is available.
//!
//! ```
//! use std::convert::Infallible;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::balance::{Balance, Replica};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
//! let replica = |name: &'static str| service_fn(move |req: String| async move {
//!     Ok::<_, Infallible>(format!("{name} answered {req}"))
//! });
//! let balance = Balance::builder()
//!     .replicas(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"].map(|a| Replica::new(a, replica(a))))
//!     .build()?;
//!
//! // Clones share one replica set: hand one to each task, no Buffer needed.
//! let mut client = balance.clone();
//! let answer = client.ready().await?.call("GET /".to_string()).await?;
//! assert!(answer.ends_with("answered GET /"));
//! assert_eq!(balance.handle().snapshot().replicas.iter().map(|r| r.requests).sum::<u64>(), 1);
//! # Ok(()) }
//! ```
//!
//! # Strategies
//!
//! | [`Strategy`] | picks | reads | good for |
//! |---|---|---|---|
//! | `PeakEwma` (default) | of two random replicas, the lower `latency x (in-flight + 1) / weight` | the clock, twice per call | replicas whose latency differs or drifts |
//! | `LeastRequest` | of two random replicas, the lower `(in-flight + 1) / weight` | atomics only | similar replicas, the cheapest adaptive choice |
//! | `RoundRobin` | each replica in turn, by weight, evenly spread | one shared counter | identical replicas, predictable spread |
//! | `Random` | a random replica, by weight | nothing shared | many balancers over few replicas |
//!
//! Failures do not look fast: peak-EWMA charges a failed call as at least
//! `failure_penalty` (tower's `PeakEwma` records it as the quick response it
//! was, so a replica that fails fast attracts traffic). A call cancelled
//! after it was sent is charged the time it had taken. What counts as a
//! failure is the [`Classify`](crate::classify::Classify) given to the
//! builder; an outcome known only at the end of a stream
//! (`Classification::AtEnd`) keeps the request in flight until then, and a
//! long-lived stream (`LongLived`) is judged by its head, never timed, and
//! releases its in-flight count at once.
//!
//! # Readiness and health
//!
//! `Balance` is `Clone`, and every clone shares one replica set: hyper
//! clients, tonic channels and the crate's breakers are cheap to clone, so no
//! `Buffer` is needed in front of it (tower's p2c balancer is not `Clone`).
//! For replica services that are not `Clone`, put each in a
//! `tower::buffer::Buffer` before it joins the set.
//!
//! `poll_ready` is always ready. A call picks a replica, clones its service,
//! and drives that clone's readiness inside the response future; while the
//! chosen replica is not ready, the future holds a second one and sends the
//! request to whichever is ready first, so one stuck replica never stalls
//! the requests that could go elsewhere. Replicas known to be unavailable are
//! skipped without being polled: the pick reads each replica's shared
//! [`HealthSignal`](crate::signal::HealthSignal) (given with
//! [`Replica::health`], or read from services that publish one, see
//! [`BalanceBuilder::health_from_source`]) and the balancer's own ejection
//! and health-check verdicts.
//!
//! With no replica available, a request waits (woken by membership and
//! health changes, or when a replica's "unavailable until" passes) up to
//! `ready_timeout` or its [deadline](crate::signal::Carrier::deadline), then
//! fails with [`BalanceError::Unavailable`], whose source is the shared
//! [`Unavailable`](crate::signal::Unavailable) signal (kind `NoneAvailable`,
//! with a retry-after when a replica said when it is back). With no replica
//! at all it fails at once ([`BalanceError::NoReplicas`]). The balancer
//! publishes its own health, unavailable while no replica is, and implements
//! [`HealthSource`](crate::signal::HealthSource), so a shard router above can
//! skip it.
//!
//! A request that carries an [`AttemptMark`](crate::signal::AttemptMark)
//! has the replica it was sent to recorded there; a later attempt of the
//! same request picks a replica not tried yet when one is available.
//!
//! # Outlier ejection, health checks, slow start, panic mode
//!
//! - **Ejection** (on by default): after `consecutive_failures` (5) failures
//!   in a row, or a failure rate above `failure_rate_threshold` (0.5) over
//!   an `interval` (10s), a replica is ejected for `base_ejection_time` (30s)
//!   times the number of ejections in a row (capped at 300s); the multiplier
//!   steps down after each healthy interval. At most `max_ejection_percent`
//!   (10%) of the set is ejected at once, and at least one replica always may be.
//! - **Health checks** (when a probe is given, [`BalanceBuilder::health_check`]):
//!   every `interval` (10s), `unhealthy_threshold` (3) failed probes take a
//!   replica out, `healthy_threshold` (2) passed probes bring it back.
//! - **Slow start** (off by default): a replica that joins a non-empty set,
//!   or comes back from ejection or failed checks, ramps its share up over
//!   `window`.
//! - **Panic mode**: when fewer than `panic_threshold` (50%) of the replicas
//!   are healthy by the balancer's own judgement, it balances over all of
//!   them, ignoring ejections and health checks (never a replica's own
//!   signal, which says it cannot take requests).
//!
//! # Membership
//!
//! Set by the builder, changed through a [`BalanceHandle`], or fed by a
//! `tower::discover::Discover` stream ([`BalanceBuilder::discover`]), with
//! weights. Each change builds a new immutable set (O(replicas)) and swaps
//! it in; picks never wait for it. Requests sent to a removed replica
//! complete there; requests still waiting for its readiness pick another.
//!
//! # Per-replica circuit breakers
//!
//! [`BalanceBuilder::replica_breakers`] gives every replica (given or
//! discovered) its own [`CircuitBreaker`](crate::breaker::CircuitBreaker) in
//! not-ready mode, judging outcomes with the balancer's classifier, and reads
//! each breaker's health signal: a replica whose breaker opened drops out of
//! the picks without being polled, and comes back on its own once its
//! half-open probes succeed. A breaker's probe slot reserved by a readiness
//! poll that the balancer then did not use is given back (the response
//! future drops it), so holding a ready replica never starves probing.
//! [`BalanceBuilder::replica_layer`] takes any other per-replica layer
//! (a timeout, a concurrency limit); pair it with
//! [`BalanceBuilder::health_from_source`] for layers that publish health.
//!
//! # Quorum fan-out
//!
//! Replicated stores (Dynamo, Cassandra, Riak) do not send a request to one
//! replica: a write goes to every replica of its key and succeeds once W of
//! them acknowledged it; a read asks several and keeps the newest answer.
//! [`Balance::quorum`] (or [`BalanceBuilder::build_quorum`], or a
//! [`QuorumLayer`]) makes a
//! [`Quorum`] view of a balancer that does this over the balancer's own
//! replica set, health signals and load metric:
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::{Arc, Mutex};
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_fleet::balance::{newest, Balance, QuorumKind, Replica};
//!
//! #[derive(Clone)]
//! enum Op { Put(u64, &'static str), Get }
//! impl tower_fleet::signal::Carrier for Op {}
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tower_fleet::BoxError> {
//! // A replica holds one versioned cell and keeps the highest version written.
//! let replica = |name: &'static str| {
//!     let cell = Arc::new(Mutex::new((0u64, "")));
//!     Replica::new(name, service_fn(move |op: Op| {
//!         let cell = cell.clone();
//!         async move {
//!             let mut held = cell.lock().unwrap();
//!             if let Op::Put(version, value) = op {
//!                 if version > held.0 { *held = (version, value) }
//!             }
//!             Ok::<_, Infallible>(*held)
//!         }
//!     }))
//! };
//!
//! // The defaults: every replica gets a copy; writes need 2 of 3, reads 2 of 3.
//! let store = Balance::builder()
//!     .replicas(["a", "b", "c"].map(replica))
//!     .build_quorum(
//!         |op: &Op| match op { Op::Put(..) => QuorumKind::Write, Op::Get => QuorumKind::Read },
//!         newest(|held: &(u64, &str)| held.0),
//!     )?;
//! let mut client = store.clone();
//! client.ready().await?.call(Op::Put(1, "hello")).await?;
//! let read = client.ready().await?.call(Op::Get).await?;
//! assert_eq!(read.merged, (1, "hello"));
//! assert!(read.replies.len() >= 2);
//! # Ok(()) }
//! ```
//!
//! How a call goes:
//!
//! - **Copies.** Each replica gets its own copy of the request, made by a
//!   [`Replay`](crate::signal::Replay) (`Clone` by default, see
//!   [`Quorum::replay`]). A request that cannot be copied fails with
//!   [`QuorumError::NotReplayable`] before anything is sent: it is never
//!   silently sent to one replica.
//! - **Which replicas.** With `n = "all"` (the default), every available
//!   replica; with `n = k`, the k best available by the strategy's cost
//!   (peak-EWMA load or in-flight requests; in turn for round robin), the
//!   others being spares. Replicas that are unavailable (breaker open,
//!   ejected, failing health checks, their own signal) are skipped as for a
//!   single call. With fewer than the quorum available, the call fails at
//!   once, with a retry-after when the replicas said when they are back.
//! - **Which quorum.** A [`ChooseQuorum`] gives each request its
//!   [`QuorumKind`]: `Read` needs `read` (R) successes, `Write` needs `write`
//!   (W), `All` every replica asked, `Count(q)` q.
//! - **When it answers.** As soon as q copies succeeded (a copy succeeds when
//!   its replica answered `Ok` and the classifier does not call the answer a
//!   failure). It fails as soon as q can no longer be reached, or when
//!   `timeout` (or the request's [deadline](crate::signal::Carrier::deadline))
//!   passes. A copy that fails (or whose replica is not ready within
//!   `ready_timeout`) is replaced by a copy to a spare replica, the best one
//!   not asked yet, while one is available.
//! - **Stragglers.** Once the outcome is decided the caller stops waiting;
//!   copies already sent finish in the background, so that their outcomes
//!   reach the replicas' health and a write still lands everywhere it can.
//!   At most `max_stragglers` per balancer run at once, each for at most
//!   `straggler_timeout`; beyond either they are cancelled (and counted).
//!   Copies not sent yet are dropped.
//! - **Merging.** The successful replies, in arrival order, go to a
//!   [`Merge`]: [`newest`] (the greatest version wins), [`FirstReply`], or
//!   any function of [`Replies`].
//!
//! **What R + W > N gives.** When a write needs W acknowledgements and a
//! read R answers out of the same N replicas, and R + W > N, every read that
//! reached its quorum heard from at least one replica that acknowledged the
//! last write that reached its quorum: read-your-writes (and, for one client,
//! monotonic reads), as long as the merge keeps the newest version. N is the
//! number of replicas the copies may land on: the set's size. With `n = k`
//! smaller than the set, a write's copies and a later read's may go to
//! different replicas (the k best by load change from call to call, and
//! failovers move copies to spares: a sloppy quorum), so the overlap needs
//! R + W > the set's size, not k. It gives no more:
//! which of two concurrent writes is the newest is the merge's business
//! (last-writer-wins on a version or timestamp that the application puts in
//! its data; the balancer neither stamps nor orders writes), and a write
//! that failed its quorum may still have landed on some replicas (they are
//! in [`QuorumFailure::succeeded`]), where a later read may find it.
//!
//! **Repair.** The balancer does not repair replicas; it tells the caller
//! which ones to repair. A [`QuorumResponse`] lists every replica asked:
//! `replies` (who succeeded, with what), `failed` (whose copy failed, with
//! the error) and `unanswered` (whose copy had not answered when the outcome
//! was decided, or was never sent). The replicas that may miss the newest
//! value, the "failed replicas" of a read repair, are those whose reply is
//! older, those that failed and those that did not answer:
//! [`QuorumResponse::lagging`] lists them, and a read repair writes the
//! merged value back to them. A failed call's [`QuorumFailure`] lists the same.
//!
//! **Health.** Every copy counts exactly as a single call: its replica's
//! in-flight count and latency estimate, the outcome (by the balancer's
//! classifier) in ejection and the counters, and the replica's breaker,
//! which is the service the copy goes through. Stragglers count when they
//! finish. Quorum calls and single calls over one balancer (a
//! [`Quorum::balance`] view) share all of it.
//!
//! **Costs and guarantees.** A call scans the set once (O(replicas)) and
//! reads the clock once to pick (and, under peak-EWMA, once per outcome,
//! as a single call does); it allocates one task node per copy
//! (`futures_util`'s `FuturesUnordered`), a copy of the request per replica
//! and the lists of its report, and spawns a task only when stragglers
//! remain. Single calls are unchanged. Dropping the response future cancels
//! every copy (charged the time it took, as a cancelled single call). The
//! replicas' services, futures and responses, the classifier and the request
//! must be `Send + 'static`, since stragglers run on tokio tasks; outside a
//! runtime, stragglers are cancelled.
//!
//! [`QuorumConfig`] (the `[quorum]` table of a [`BalanceConfig`]): `n`
//! (`"all"`), `read` (2), `write` (2), `timeout` (1s), `straggler_timeout`
//! (5s), `max_stragglers` (1024).
//!
//! # Guarantees and costs
//!
//! - The pick takes no lock and does not allocate: a snapshot load, two
//!   random draws and a few atomic loads (the clock too for peak-EWMA).
//!   Outcome recording is atomic; ejections and membership changes take a
//!   lock (rare path). Picks stay O(1) in the set size unless most replicas
//!   are unavailable, when a scan of the set finds the rest.
//! - The response future is cancel-safe: dropping it releases its in-flight
//!   counts, and a request is sent at most once (retries are the retry
//!   layer's). Waiting needs a tokio runtime with the time driver.
//! - Discovery and health checks run on background tasks started by
//!   [`BalanceBuilder::build`] (a [`NoRuntime`](crate::NoRuntime) error
//!   outside a runtime); they stop when the last clone of the balancer and
//!   its handles is dropped.
//!
//! # Errors
//!
//! [`BalanceError`] wraps the inner service's error with the replica's id
//! ([`BalanceError::Inner`]); the shared signals stay findable through
//! [`ErrorSignals`](crate::signal::ErrorSignals). A quorum call's
//! [`QuorumError`] collects the replicas' errors in its report; a failed
//! quorum carries the shared [`Unavailable`](crate::signal::Unavailable)
//! signal of kind `QuorumFailed` as its source.

mod builder;
mod config;
mod core;
mod discover;
mod error;
mod ewma;
mod flight;
mod future;
mod handle;
mod health_check;
mod layer;
mod least_request;
mod outlier;
mod quorum;
mod random;
mod replica;
mod round_robin;
mod service;
mod set;
mod slow_start;

pub use builder::BalanceBuilder;
pub use config::{BalanceConfig, HealthCheckConfig, OutlierConfig, SlowStartConfig, Strategy};
pub use error::{BalanceBuildError, BalanceError, MembershipError};
pub use future::ResponseFuture;
pub use handle::{BalanceHandle, BalanceSnapshot, ReplicaStats};
pub use layer::BalanceLayer;
pub use quorum::{
    newest, ChooseQuorum, CopyError, FanOut, FirstReply, Merge, Newest, Quorum, QuorumConfig,
    QuorumError, QuorumFailure, QuorumFuture, QuorumKind, QuorumLayer, QuorumResponse, QuorumStats,
    ReplicaFailure, Replies, Reply,
};
pub use replica::{Replica, ReplicaId, ReplicaSpec};
pub use service::Balance;
