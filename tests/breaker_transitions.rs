//! Every transition of the breaker, on tokio's paused clock.

mod breaker_support;

use std::time::Duration;

use breaker_support::{send, send_all, slow, slow_fail, Backend, Req, FAIL, OK};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_fleet::breaker::{
    BreakerBuilder, BreakerError, BreakerState, CircuitBreaker, InitialState, TransitionCause,
};
use tower_fleet::signal::{ErrorSignals, HealthSource, UnavailableKind};
use tower_fleet::BoxError;

fn builder() -> BreakerBuilder {
    CircuitBreaker::builder()
        .count_window(10)
        .minimum_calls(10)
        .open_duration(Duration::from_secs(60))
        .half_open_calls(3)
}

fn last_cause(b: &CircuitBreaker<Backend>) -> TransitionCause {
    b.handle().subscribe().borrow().cause
}

#[tokio::test(start_paused = true)]
async fn opens_on_failure_rate_once_minimum_calls_are_in_the_window() {
    let backend = Backend::default();
    let mut b = builder().build(backend.clone()).unwrap();
    send_all(&mut b, [FAIL; 9]).await;
    // 9 of 9 failed, but the window holds fewer than minimum_calls.
    assert_eq!(b.handle().state(), BreakerState::Closed);
    send(&mut b, OK).await.unwrap();
    assert_eq!(b.handle().state(), BreakerState::Open);
    assert_eq!(last_cause(&b), TransitionCause::FailureRate);
    // Open: refused without touching the backend.
    let err = send(&mut b, OK).await.unwrap_err();
    assert!(err.is_open());
    assert_eq!(backend.calls(), 10);
    assert_eq!(b.handle().snapshot().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_the_failure_rate_threshold() {
    let mut b = builder().build(Backend::default()).unwrap();
    // 4 of 10 failed: 40% < 50%.
    send_all(&mut b, [OK, FAIL, OK, FAIL, OK, FAIL, OK, FAIL, OK, OK]).await;
    assert_eq!(b.handle().state(), BreakerState::Closed);
    let snap = b.handle().snapshot();
    assert_eq!((snap.window_calls, snap.window_failures), (10, 4));
    assert_eq!(snap.failure_rate, Some(40.0));
    // The fifth failure replaces the oldest success: 5 of 10.
    send(&mut b, FAIL).await.unwrap_err();
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn opens_on_slow_call_rate_whatever_the_result() {
    let mut b = builder()
        .count_window(4)
        .minimum_calls(4)
        .slow_call_duration(Duration::from_millis(100))
        .slow_call_rate_threshold(50.0)
        .build(Backend::default())
        .unwrap();
    let long = Duration::from_millis(250);
    send_all(&mut b, [OK, slow(long), OK]).await;
    assert_eq!(b.handle().state(), BreakerState::Closed);
    // A call of exactly the limit is not slow.
    send(&mut b, slow(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(b.handle().state(), BreakerState::Closed);
    send(&mut b, slow(long)).await.unwrap();
    assert_eq!(b.handle().state(), BreakerState::Open);
    assert_eq!(last_cause(&b), TransitionCause::SlowCallRate);
    assert_eq!(b.handle().snapshot().slow_calls, 2);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_are_not_timed_unless_configured() {
    let mut b = builder()
        .count_window(4)
        .minimum_calls(4)
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, [slow(Duration::from_secs(5)); 4]).await;
    assert_eq!(b.handle().state(), BreakerState::Closed);
    assert_eq!(b.handle().snapshot().slow_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_trip_without_minimum_calls() {
    let mut b = builder()
        .minimum_calls(100)
        .consecutive_failures(3)
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, [FAIL, FAIL, OK, FAIL, FAIL]).await;
    assert_eq!(b.handle().state(), BreakerState::Closed);
    assert_eq!(b.handle().snapshot().consecutive_failures, 2);
    send(&mut b, FAIL).await.unwrap_err();
    assert_eq!(b.handle().state(), BreakerState::Open);
    assert_eq!(last_cause(&b), TransitionCause::ConsecutiveFailures);
}

#[tokio::test(start_paused = true)]
async fn failure_accrual_trips_after_five_failures_in_a_row() {
    let mut b = builder()
        .minimum_calls(100)
        .failure_accrual()
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, [FAIL; 4]).await;
    assert_eq!(b.handle().state(), BreakerState::Closed);
    send_all(&mut b, [FAIL]).await;
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_decided_in_poll_ready_holds_until_the_call() {
    let backend = Backend::default();
    let mut b = builder().build(backend.clone()).unwrap();
    b.handle().open();
    b.ready().await.unwrap(); // refused: the backend was not polled
    b.handle().close();
    // Closed now, but this call was not polled ready against the backend.
    assert!(b.call(OK).await.unwrap_err().is_open());
    assert_eq!(backend.calls(), 0);
    send(&mut b, OK).await.unwrap();
    assert_eq!(backend.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_admission_decided_in_poll_ready_holds_until_the_call() {
    let backend = Backend::default();
    let mut b = builder().build(backend.clone()).unwrap();
    b.ready().await.unwrap(); // admitted: the backend was polled ready
    b.handle().force_open();
    b.call(OK).await.unwrap();
    assert_eq!(backend.calls(), 1);
    assert!(send(&mut b, OK).await.unwrap_err().is_open());
}

#[tokio::test(start_paused = true)]
async fn half_opens_after_the_open_duration_and_says_when_in_the_error() {
    let mut b = builder().build(Backend::default()).unwrap();
    b.handle().open();
    tokio::time::advance(Duration::from_secs(20)).await;
    assert_eq!(b.handle().snapshot().time_in_state, Duration::from_secs(20));
    let err = send(&mut b, OK).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(40)));
    let boxed: BoxError = Box::new(err);
    let signal = boxed.unavailable().unwrap();
    assert_eq!(signal.kind(), UnavailableKind::CircuitOpen);
    assert_eq!(signal.retry_after(), Some(Duration::from_secs(40)));
    // The health signal says the same, for routers that never poll it.
    let clock = tower_fleet::Clock::default();
    assert!(!b.health_signal().is_available(&clock));
    tokio::time::advance(Duration::from_millis(39_999)).await;
    assert_eq!(b.handle().state(), BreakerState::Open);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(b.health_signal().is_available(&clock));
    assert_eq!(b.handle().state(), BreakerState::HalfOpen);
    assert_eq!(last_cause(&b), TransitionCause::OpenDurationElapsed);
}

/// Trips the breaker, waits out each open duration and fails the probe,
/// returning the open durations seen.
async fn open_durations(mut b: CircuitBreaker<Backend>, trips: usize) -> Vec<Duration> {
    let mut seen = Vec::new();
    let changes = b.handle().subscribe();
    b.handle().open();
    for _ in 0..trips {
        let c = *changes.borrow();
        assert_eq!(c.to, BreakerState::Open);
        let d = c.open_until.unwrap() - c.at;
        seen.push(d);
        tokio::time::advance(d).await;
        send(&mut b, FAIL).await.unwrap_err(); // the probe fails: open again
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn open_duration_grows_on_consecutive_trips_up_to_its_cap() {
    let b = builder()
        .half_open_calls(1)
        .open_duration(Duration::from_secs(1))
        .open_duration_multiplier(2.0)
        .max_open_duration(Duration::from_secs(8))
        .build(Backend::default())
        .unwrap();
    let handle = b.handle();
    let secs: Vec<u64> = open_durations(b, 6)
        .await
        .iter()
        .map(Duration::as_secs)
        .collect();
    assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
    // Closing starts the growth again.
    handle.close();
    handle.open();
    let c = *handle.subscribe().borrow();
    assert_eq!(c.open_until.unwrap() - c.at, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn jitter_shortens_each_open_duration_within_its_fraction() {
    let make = |seed| {
        builder()
            .half_open_calls(1)
            .open_duration(Duration::from_secs(10))
            .open_duration_multiplier(2.0)
            .max_open_duration(Duration::from_secs(80))
            .open_jitter(0.5)
            .jitter_seed(seed)
            .build(Backend::default())
            .unwrap()
    };
    let a = open_durations(make(1), 6).await;
    for (k, d) in a.iter().enumerate() {
        let full = Duration::from_secs((10u64 << k).min(80));
        assert!(
            *d <= full && *d >= full / 2,
            "trip {k}: {d:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }
    // Jittered: not every duration is the full one, and another seed differs.
    assert!(a
        .iter()
        .enumerate()
        .any(|(k, d)| *d != Duration::from_secs((10u64 << k).min(80))));
    assert_ne!(a, open_durations(make(2), 6).await);
    assert_eq!(a, open_durations(make(1), 6).await);
}

#[tokio::test(start_paused = true)]
async fn half_open_closes_when_every_probe_succeeds() {
    let mut b = builder().build(Backend::default()).unwrap();
    b.handle().half_open();
    send_all(&mut b, [OK, OK]).await;
    assert_eq!(b.handle().state(), BreakerState::HalfOpen);
    send(&mut b, OK).await.unwrap();
    assert_eq!(b.handle().state(), BreakerState::Closed);
    assert_eq!(last_cause(&b), TransitionCause::ProbesSucceeded);
    // The window starts empty.
    assert_eq!(b.handle().snapshot().window_calls, 0);
}

#[tokio::test(start_paused = true)]
async fn half_open_reopens_when_probes_fail_at_the_threshold() {
    let mut b = builder().build(Backend::default()).unwrap();
    b.handle().half_open();
    // 2 of 3 probes fail: 66% >= 50%.
    send_all(&mut b, [FAIL, OK, FAIL]).await;
    assert_eq!(b.handle().state(), BreakerState::Open);
    assert_eq!(last_cause(&b), TransitionCause::ProbesFailed);
}

#[tokio::test(start_paused = true)]
async fn half_open_refuses_callers_beyond_its_probes_without_queueing() {
    let backend = Backend::default();
    let b = builder().half_open_calls(2).build(backend.clone()).unwrap();
    b.handle().half_open();
    let long = slow(Duration::from_secs(1));
    let mut probes = Vec::new();
    for _ in 0..2 {
        let mut c = b.clone();
        probes.push(tokio::spawn(async move { send(&mut c, long).await }));
    }
    tokio::task::yield_now().await;
    assert_eq!(b.handle().snapshot().probes_taken, 2);
    let err = send(&mut b.clone(), OK).await.unwrap_err();
    assert!(matches!(
        err,
        BreakerError::Open {
            state: BreakerState::HalfOpen,
            ..
        }
    ));
    assert_eq!(backend.calls(), 2);
    for p in probes {
        p.await.unwrap().unwrap();
    }
    assert_eq!(
        b.handle().state(),
        BreakerState::Closed,
        "both probes succeeded"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_reopens_when_its_probes_never_finish() {
    let b = builder()
        .half_open_calls(1)
        .max_half_open_duration(Duration::from_secs(5))
        .build(Backend::default())
        .unwrap();
    b.handle().half_open();
    let mut c = b.clone();
    let hung = tokio::spawn(async move { send(&mut c, slow(Duration::from_secs(3600))).await });
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_secs(5)).await;
    let err = send(&mut b.clone(), OK).await.unwrap_err();
    assert!(err.is_open());
    assert_eq!(b.handle().state(), BreakerState::Open);
    assert_eq!(
        b.handle().subscribe().borrow().cause,
        TransitionCause::HalfOpenTimedOut
    );
    hung.abort();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_is_ignored_and_frees_its_probe_slot() {
    let mut b = builder()
        .half_open_calls(1)
        .build(Backend::default())
        .unwrap();
    b.handle().half_open();
    let fut = b.ready().await.unwrap().call(slow(Duration::from_secs(10)));
    assert_eq!(b.handle().snapshot().probes_taken, 1);
    assert!(send(&mut b.clone(), OK).await.unwrap_err().is_open());
    drop(fut);
    assert_eq!(b.handle().snapshot().probes_taken, 0);
    assert_eq!(b.handle().snapshot().ignored, 1);
    send(&mut b, OK).await.unwrap();
    assert_eq!(b.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_unused_reservation_is_released_when_dropped() {
    let b = builder()
        .half_open_calls(1)
        .build(Backend::default())
        .unwrap();
    b.handle().half_open();
    let mut holder = b.clone();
    holder.ready().await.unwrap(); // reserves the only probe slot
    assert_eq!(b.handle().snapshot().probes_taken, 1);
    assert!(send(&mut b.clone(), OK).await.unwrap_err().is_open());
    drop(holder);
    assert_eq!(b.handle().snapshot().probes_taken, 0);
    send(&mut b.clone(), OK).await.unwrap();
    assert_eq!(b.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_earlier_epoch_outcome_is_counted_but_never_transitions() {
    let mut b = builder()
        .minimum_calls(2)
        .build(Backend::default())
        .unwrap();
    let mut early = b.clone();
    let late_failure =
        tokio::spawn(async move { send(&mut early, slow_fail(Duration::from_secs(1))).await });
    tokio::task::yield_now().await;
    b.handle().reset(); // a new epoch, still closed
    send(&mut b, FAIL).await.unwrap_err();
    late_failure.await.unwrap().unwrap_err();
    // 2 of 2 failed, but the second was admitted before the reset.
    let snap = b.handle().snapshot();
    assert_eq!((snap.window_calls, snap.window_failures), (2, 2));
    assert_eq!(snap.state, BreakerState::Closed);
    // It counts: the next call of this epoch sees 2 of 3 failed and trips.
    send(&mut b, OK).await.unwrap();
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_earlier_epoch_probe_neither_fills_nor_frees_a_slot() {
    let b = builder()
        .half_open_calls(1)
        .build(Backend::default())
        .unwrap();
    b.handle().half_open();
    let mut old = b.clone();
    let old_probe = tokio::spawn(async move { send(&mut old, slow(Duration::from_secs(1))).await });
    tokio::task::yield_now().await;
    b.handle().half_open(); // a new half-open epoch: the old probe's slot is gone
    let mut new = b.clone();
    let new_probe = tokio::spawn(async move { send(&mut new, slow(Duration::from_secs(2))).await });
    tokio::task::yield_now().await;
    old_probe.await.unwrap().unwrap();
    // The old probe's success neither closed the breaker nor freed the new slot.
    assert_eq!(b.handle().state(), BreakerState::HalfOpen);
    assert_eq!(b.handle().snapshot().probes_taken, 1);
    assert!(send(&mut b.clone(), OK).await.unwrap_err().is_open());
    new_probe.await.unwrap().unwrap();
    assert_eq!(b.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn forced_open_refuses_everything_until_told() {
    let backend = Backend::default();
    let mut b = builder()
        .initial_state(InitialState::ForcedOpen)
        .build(backend.clone())
        .unwrap();
    let err = send(&mut b, OK).await.unwrap_err();
    assert!(matches!(
        err,
        BreakerError::Open {
            state: BreakerState::ForcedOpen,
            ..
        }
    ));
    assert_eq!(err.retry_after(), None);
    let clock = tower_fleet::Clock::default();
    assert!(!b.health_signal().is_available(&clock));
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert!(send(&mut b, OK).await.unwrap_err().is_open());
    assert_eq!(backend.calls(), 0);
    b.handle().close();
    send(&mut b, OK).await.unwrap();
    assert!(b.health_signal().is_available(&clock));
}

#[tokio::test(start_paused = true)]
async fn disabled_passes_everything_and_records_nothing() {
    let mut b = builder().build(Backend::default()).unwrap();
    b.handle().disable();
    send_all(&mut b, [FAIL; 50]).await;
    let snap = b.handle().snapshot();
    assert_eq!(snap.state, BreakerState::Disabled);
    assert_eq!((snap.calls, snap.failures, snap.window_calls), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn metrics_only_records_but_never_trips() {
    let mut b = builder()
        .consecutive_failures(2)
        .initial_state(InitialState::MetricsOnly)
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, [FAIL; 30]).await;
    let snap = b.handle().snapshot();
    assert_eq!(snap.state, BreakerState::MetricsOnly);
    assert_eq!(
        (snap.calls, snap.failures, snap.window_failures),
        (30, 30, 10)
    );
    assert_eq!(snap.failure_rate, Some(100.0));
    // Switched to closed, it starts with an empty window.
    b.handle().close();
    assert_eq!(b.handle().snapshot().window_calls, 0);
    send_all(&mut b, [FAIL; 2]).await;
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_buckets_expire() {
    let mut b = builder()
        .time_window(Duration::from_secs(10), 5)
        .minimum_calls(4)
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, [FAIL; 3]).await;
    assert_eq!(b.handle().snapshot().window_failures, 3);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert_eq!(
        b.handle().snapshot().window_failures,
        3,
        "still inside the window"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    // The bucket of the three failures has rolled out.
    assert_eq!(b.handle().snapshot().window_calls, 0);
    send_all(&mut b, [FAIL, OK, OK, OK]).await;
    // 1 of 4 (3 of 7 had the old failures stayed).
    assert_eq!(b.handle().state(), BreakerState::Closed);
    send_all(&mut b, [FAIL]).await;
    assert_eq!(b.handle().state(), BreakerState::Closed);
    send_all(&mut b, [FAIL]).await;
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_each_transition() {
    let b = builder().build(Backend::default()).unwrap();
    let mut changes = b.handle().subscribe();
    assert_eq!(changes.borrow_and_update().cause, TransitionCause::Created);
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while changes.changed().await.is_ok() {
            let c = *changes.borrow_and_update();
            seen.push((c.from, c.to));
            if seen.len() == 3 {
                break;
            }
        }
        seen
    });
    let h = b.handle();
    for step in [
        BreakerHandle::force_open as fn(&_),
        BreakerHandle::half_open,
        BreakerHandle::close,
    ] {
        step(&h);
        tokio::task::yield_now().await;
    }
    use tower_fleet::breaker::BreakerHandle;
    use BreakerState::*;
    assert_eq!(
        watcher.await.unwrap(),
        [
            (Closed, ForcedOpen),
            (ForcedOpen, HalfOpen),
            (HalfOpen, Closed)
        ]
    );
    assert_eq!(h.snapshot().transitions, 3);
}

#[tokio::test(start_paused = true)]
async fn not_ready_mode_waits_out_the_open_duration_then_probes() {
    let mut b = builder()
        .open_mode(tower_fleet::breaker::OpenMode::NotReady)
        .build(Backend::default())
        .unwrap();
    b.handle().open();
    let start = Instant::now();
    // Pending until the open duration ends; the breaker's timer wakes it.
    b.ready().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_eq!(
        b.handle().snapshot().probes_taken,
        1,
        "ready reserved a probe slot"
    );
    b.call(OK).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn not_ready_mode_wakes_waiters_on_a_transition() {
    let b = builder()
        .open_mode(tower_fleet::breaker::OpenMode::NotReady)
        .initial_state(InitialState::ForcedOpen)
        .build(Backend::default())
        .unwrap();
    let mut waiter = b.clone();
    let ready = tokio::spawn(async move { send(&mut waiter, OK).await });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!ready.is_finished(), "forced open: not ready");
    b.handle().close();
    ready.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_readiness_is_recorded_as_a_failure() {
    let mut broken = builder().consecutive_failures(1).build(NeverReady).unwrap();
    let Err(err) = broken.ready().await.map(|_| ()) else {
        panic!("readiness should fail")
    };
    assert!(matches!(err, BreakerError::Inner(_)));
    assert_eq!(broken.handle().snapshot().failures, 1);
    assert_eq!(broken.handle().state(), BreakerState::Open);
}

#[derive(Clone, Debug)]
struct NeverReady;

impl Service<Req> for NeverReady {
    type Response = ();
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<(), std::io::Error>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Err(std::io::Error::other("broken")))
    }
    fn call(&mut self, _: Req) -> Self::Future {
        std::future::ready(Ok(()))
    }
}
