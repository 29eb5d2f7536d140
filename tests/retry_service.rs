//! The retry service on tokio's paused clock: when attempts happen, what is
//! and is not retried, timeouts, deadlines, retry-after hints, the budget
//! and attempt marks.

mod retry_common;

use std::time::Duration;

use retry_common::{ms, Act, Scripted, ZERO};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_fleet::classify::Outcome;
use tower_fleet::retry::{Backoff, BudgetConfig, Jitter, Retry, RetryError};
use tower_fleet::signal::{Envelope, ErrorSignals, NoReplay, Unavailable};
use tower_fleet::BoxError;

fn fixed(base: u64) -> Backoff {
    Backoff::new(ms(base), ms(60_000), Jitter::None).unwrap()
}

/// A budget of `per_second` retries a second over one second, and nothing
/// for requests: `per_second` retries, then none until they expire.
fn reserve_only(per_second: u32) -> BudgetConfig {
    BudgetConfig {
        ratio: 0.0,
        min_per_second: per_second,
        ttl: ms(1000),
        ..BudgetConfig::default()
    }
}

/// Two attempts, 1ms apart, within `budget`.
fn twice(budget: BudgetConfig, inner: &Scripted) -> Retry<Scripted> {
    Retry::builder()
        .max_attempts(2)
        .backoff(fixed(1))
        .budget(budget)
        .build(inner.clone())
        .unwrap()
}

async fn send<S>(svc: &mut S, req: &str) -> Result<String, RetryError>
where
    S: Service<String, Response = String, Error = RetryError>,
{
    svc.ready().await?.call(req.to_string()).await
}

#[tokio::test(start_paused = true)]
async fn attempts_follow_the_exponential_backoff() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .max_attempts(4)
        .backoff(fixed(100))
        .no_budget()
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(inner.times_ms(t0), [0, 100, 300, 700]);
    assert_eq!(
        Instant::now() - t0,
        ms(700),
        "the last failure returns at once"
    );
    assert_eq!(
        err.inner().unwrap().to_string(),
        "fail 4",
        "the last attempt's error, unchanged"
    );
    let snap = svc.handle().snapshot();
    assert_eq!((snap.requests, snap.retries), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn max_attempts_counts_the_first_attempt() {
    for max in [1, 2, 5] {
        let inner = Scripted::always(Act::Fail(ZERO));
        let mut svc = Retry::builder()
            .max_attempts(max)
            .backoff(fixed(1))
            .no_budget()
            .build(inner.clone())
            .unwrap();
        send(&mut svc, "x").await.unwrap_err();
        assert_eq!(inner.count(), max as usize);
    }
}

#[tokio::test(start_paused = true)]
async fn successes_are_not_retried() {
    let inner = Scripted::always(Act::Ok(ms(5)));
    let mut svc = Retry::builder().build(inner.clone()).unwrap();
    assert_eq!(send(&mut svc, "x").await.unwrap(), "ok 1");
    assert_eq!(inner.count(), 1);
    assert_eq!(svc.handle().snapshot().retries, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_then_a_success_returns_the_success() {
    let inner = Scripted::new(|n| {
        if n < 3 {
            Act::Fail(ms(1))
        } else {
            Act::Ok(ms(1))
        }
    });
    let mut svc = Retry::builder()
        .backoff(fixed(10))
        .build(inner.clone())
        .unwrap();
    assert_eq!(send(&mut svc, "x").await.unwrap(), "ok 3");
}

#[tokio::test(start_paused = true)]
async fn non_retryable_requests_are_sent_once() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .retryable(|req: &String| !req.starts_with("POST"))
        .build(inner.clone())
        .unwrap();
    send(&mut svc, "POST /orders").await.unwrap_err();
    assert_eq!(inner.count(), 1);
    send(&mut svc, "GET /orders").await.unwrap_err();
    assert_eq!(inner.count(), 4);
    assert_eq!(svc.handle().snapshot().not_cloneable, 0);
}

#[tokio::test(start_paused = true)]
async fn outcomes_classified_ignore_are_returned_at_once() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .classify(|r: &Result<String, BoxError>| match r {
            Err(e) if e.to_string().starts_with("fail") => Outcome::Ignore,
            Err(_) => Outcome::Failure,
            Ok(_) => Outcome::Success,
        })
        .build(inner.clone())
        .unwrap();
    send(&mut svc, "x").await.unwrap_err();
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once_and_counted() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .replay(NoReplay)
        .build(inner.clone())
        .unwrap();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(
        err.inner().unwrap().to_string(),
        "fail 1",
        "its outcome is returned, not lost"
    );
    assert_eq!(inner.count(), 1);
    assert_eq!(svc.handle().snapshot().not_cloneable, 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_cut_off_and_retried() {
    let inner = Scripted::new(|n| if n == 1 { Act::Hang } else { Act::Ok(ms(5)) });
    let mut svc = Retry::builder()
        .attempt_timeout(ms(50))
        .backoff(fixed(10))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(send(&mut svc, "x").await.unwrap(), "ok 2");
    assert_eq!(inner.times_ms(t0), [0, 60]);
    assert_eq!(Instant::now() - t0, ms(65));
    assert_eq!(inner.dropped(), 1, "the timed-out attempt was cancelled");
    assert_eq!(svc.handle().snapshot().attempt_timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_times_out_the_last_timeout_is_returned() {
    let inner = Scripted::always(Act::Hang);
    let mut svc = Retry::builder()
        .attempt_timeout(ms(50))
        .backoff(fixed(10))
        .build(inner.clone())
        .unwrap();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert!(
        matches!(err, RetryError::AttemptTimedOut { attempt: 3, timeout } if timeout == ms(50)),
        "{err:?}"
    );
    assert_eq!(inner.dropped(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_replaces_the_backoff() {
    let inner = Scripted::new(|n| {
        if n == 1 {
            Act::Unavailable(Some(ms(2000)))
        } else {
            Act::Ok(ZERO)
        }
    });
    let mut svc = Retry::builder()
        .backoff(fixed(10))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(send(&mut svc, "x").await.unwrap(), "ok 2");
    assert_eq!(inner.times_ms(t0), [0, 2000]);
}

#[tokio::test(start_paused = true)]
async fn a_zero_retry_after_retries_at_once() {
    let inner = Scripted::new(|n| {
        if n < 3 {
            Act::Unavailable(Some(ZERO))
        } else {
            Act::Ok(ZERO)
        }
    });
    let mut svc = Retry::builder()
        .backoff(fixed(500))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    send(&mut svc, "x").await.unwrap();
    assert_eq!(inner.times_ms(t0), [0, 0, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_returns_the_failure_at_once() {
    let inner = Scripted::always(Act::Unavailable(Some(ms(5000))));
    let mut svc = Retry::builder()
        .timeout(ms(1000))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(
        Instant::now(),
        t0,
        "no wait that the deadline would cut short"
    );
    assert_eq!(
        err.unavailable().and_then(Unavailable::retry_after),
        Some(ms(5000))
    );
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_cap_is_not_waited_for() {
    let inner = Scripted::always(Act::Unavailable(Some(ms(30_000))));
    let mut svc = Retry::builder()
        .max_retry_after(ms(10_000))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    send(&mut svc, "x").await.unwrap_err();
    assert_eq!((inner.count(), Instant::now()), (1, t0));
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_after_the_deadline() {
    // Waits of 200ms, then 400ms: the second would end after the 250ms deadline.
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .max_attempts(5)
        .timeout(ms(250))
        .backoff(fixed(200))
        .no_budget()
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(inner.times_ms(t0), [0, 200]);
    assert_eq!(Instant::now() - t0, ms(200));
    assert!(matches!(err, RetryError::Inner(_)));
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_the_timer_rounds_up_to_the_deadline_sends_nothing() {
    // The wait ends 0.5ms before the deadline; tokio's timer fires on the
    // millisecond, at the deadline itself.
    let inner = Scripted::always(Act::Fail(ZERO));
    let backoff = Backoff::new(Duration::from_micros(239_500), ms(1000), Jitter::None).unwrap();
    let mut svc = Retry::builder()
        .timeout(ms(240))
        .backoff(backoff)
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(inner.count(), 1, "no attempt at the deadline");
    assert_eq!(
        err.inner().unwrap().to_string(),
        "fail 1",
        "the last outcome, unchanged"
    );
    assert!(Instant::now() - t0 <= ms(240));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_running_at_the_deadline_fails_the_request() {
    let inner = Scripted::always(Act::Hang);
    let mut svc = Retry::builder()
        .timeout(ms(300))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(Instant::now() - t0, ms(300));
    assert!(err.deadline_exceeded(), "{err:?}");
    assert_eq!(inner.dropped(), 1);
    assert_eq!(svc.handle().snapshot().deadline_exceeded, 1);
}

#[tokio::test(start_paused = true)]
async fn the_request_carries_the_earlier_deadline_to_inner_layers() {
    let inner = Scripted::always(Act::Ok(ZERO));
    let mut svc = Retry::builder()
        .timeout(ms(300))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let req = Envelope::new("x").with_deadline(t0 + ms(100));
    ServiceExt::<Envelope<&str>>::ready(&mut svc)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap();
    let req = Envelope::new("y").with_deadline(t0 + ms(900));
    ServiceExt::<Envelope<&str>>::ready(&mut svc)
        .await
        .unwrap()
        .call(req)
        .await
        .unwrap();
    let deadlines: Vec<_> = inner
        .calls()
        .iter()
        .map(|c| c.deadline.unwrap() - t0)
        .collect();
    assert_eq!(deadlines, [ms(100), ms(300)]);
}

#[tokio::test(start_paused = true)]
async fn each_attempt_carries_the_next_mark_and_the_same_cell() {
    use tower_fleet::signal::{AttemptMark, Carrier, EndpointId};
    let mark = AttemptMark::new();
    let inner = Scripted::always(Act::Fail(ZERO));
    let recorder = tower::service_fn({
        let inner = inner.clone();
        move |req: Envelope<&'static str>| {
            let mark = req.attempt().expect("every attempt is marked").clone();
            // Like a balancer: avoid the endpoints already tried, record the one used.
            let endpoint = (1..).map(EndpointId).find(|e| !mark.was_tried(*e)).unwrap();
            mark.record(endpoint);
            let mut inner = inner.clone();
            inner.call(req)
        }
    });
    let mut svc = Retry::builder().backoff(fixed(1)).build(recorder).unwrap();
    let mut req = Envelope::new("x");
    req.set_attempt(mark.clone());
    svc.ready().await.unwrap().call(req).await.unwrap_err();
    let attempts: Vec<_> = inner.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [Some(1), Some(2), Some(3)]);
    assert_eq!(
        mark.tried(),
        [EndpointId(1), EndpointId(2), EndpointId(3)],
        "one cell, three endpoints"
    );

    // A request without a mark gets one on its first attempt.
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .backoff(fixed(1))
        .build(inner.clone())
        .unwrap();
    ServiceExt::<Envelope<&str>>::ready(&mut svc)
        .await
        .unwrap()
        .call(Envelope::new("y"))
        .await
        .unwrap_err();
    let attempts: Vec<_> = inner.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [Some(1), Some(2), Some(3)]);
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_returns_the_last_outcome_unchanged() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .backoff(fixed(1))
        .budget(reserve_only(1))
        .build(inner.clone())
        .unwrap();
    let err = send(&mut svc, "x").await.unwrap_err();
    assert_eq!(inner.count(), 2, "one retry from the reserve");
    assert_eq!(err.inner().unwrap().to_string(), "fail 2");
    let snap = svc.handle().snapshot();
    assert_eq!((snap.retries, snap.budget_exhausted), (1, 1));
    assert_eq!(snap.budget.unwrap().balance, 0.0);
}

#[tokio::test(start_paused = true)]
async fn the_budget_refills_as_its_window_moves_on() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = twice(reserve_only(2), &inner);
    for _ in 0..3 {
        send(&mut svc, "x").await.unwrap_err();
    }
    assert_eq!(inner.count(), 3 + 2, "two retries in the first second");
    tokio::time::advance(ms(1000)).await;
    for _ in 0..3 {
        send(&mut svc, "x").await.unwrap_err();
    }
    assert_eq!(
        inner.count(),
        5 + 3 + 2,
        "two more once the first ones expired"
    );
    assert_eq!(svc.handle().snapshot().budget_exhausted, 2);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_budget_and_one_set_of_counters() {
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut a = twice(reserve_only(1), &inner);
    let mut b = a.clone();
    send(&mut a, "x").await.unwrap_err();
    send(&mut b, "x").await.unwrap_err();
    assert_eq!(inner.count(), 3, "the clone found the budget spent");
    assert_eq!(a.handle().snapshot(), b.handle().snapshot());
    assert_eq!(a.handle().snapshot().requests, 2);
}

#[tokio::test(start_paused = true)]
async fn readiness_is_the_inner_services() {
    use tokio_test_shim::*;
    let layer = Retry::builder().layer().unwrap();
    let (mut svc, mut handle) = tower_test::mock::spawn_layer::<String, String, _>(layer);
    handle.allow(0);
    assert!(svc.poll_ready().is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready(), std::task::Poll::Ready(Ok(()))));
    handle.send_error("broken");
    let err = ready_err(svc.poll_ready());
    assert_eq!(err.inner().unwrap().to_string(), "broken");
}

mod tokio_test_shim {
    use std::task::Poll;
    use tower_fleet::retry::RetryError;

    pub fn ready_err(p: Poll<Result<(), RetryError>>) -> RetryError {
        match p {
            Poll::Ready(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_spans_layers_and_each_counts_its_own_requests() {
    let budget = tower_fleet::retry::RetryBudget::new(ms(1000), 1, 0.0).unwrap();
    let inner = Scripted::always(Act::Fail(ZERO));
    let layer = |b: &tower_fleet::retry::RetryBudget| {
        Retry::builder()
            .max_attempts(2)
            .backoff(fixed(1))
            .shared_budget(b.clone())
            .build(inner.clone())
            .unwrap()
    };
    let (mut a, mut b) = (layer(&budget), layer(&budget));
    send(&mut a, "x").await.unwrap_err();
    send(&mut a, "x").await.unwrap_err();
    send(&mut b, "x").await.unwrap_err();
    assert_eq!(
        inner.count(),
        3 + 1,
        "one retry in the shared reserve, taken by a"
    );
    assert_eq!(
        (
            a.handle().snapshot().requests,
            b.handle().snapshot().requests
        ),
        (2, 1)
    );
    assert_eq!(budget.deposits(), 3);
    assert_eq!(b.handle().snapshot().budget_exhausted, 1);
}

/// A policy that refuses "POST" requests, except after a failure that shows
/// the request was never sent (here: the unavailable signal).
struct PostOnlyIfUnsent;

impl tower_fleet::retry::RetryPolicy<String, String, BoxError> for PostOnlyIfUnsent {
    fn outcome(&self, result: &Result<String, BoxError>) -> Outcome {
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }
    fn is_retryable(&self, req: &String) -> bool {
        !req.starts_with("POST")
    }
    fn replay(&self, req: &String) -> Option<String> {
        Some(req.clone())
    }
    fn retry_after(&self, _result: &Result<String, BoxError>) -> Option<Duration> {
        None
    }
    fn is_retryable_unsent(&self, _req: &String) -> bool {
        true
    }
    fn never_sent(&self, result: &Result<String, BoxError>) -> bool {
        matches!(result, Err(e) if e.unavailable().is_some())
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_refused_by_method_is_retried_only_when_it_was_never_sent() {
    // Never sent (unavailable), then a success: the POST is retried.
    let inner = Scripted::new(|n| {
        if n == 1 {
            Act::Unavailable(None)
        } else {
            Act::Ok(ZERO)
        }
    });
    let mut svc = Retry::builder()
        .backoff(fixed(1))
        .policy(PostOnlyIfUnsent)
        .build(inner.clone())
        .unwrap();
    assert_eq!(send(&mut svc, "POST /orders").await.unwrap(), "ok 2");
    assert_eq!(inner.count(), 2);

    // A failure that may have reached the server: sent once.
    let inner = Scripted::always(Act::Fail(ZERO));
    let mut svc = Retry::builder()
        .backoff(fixed(1))
        .policy(PostOnlyIfUnsent)
        .build(inner.clone())
        .unwrap();
    send(&mut svc, "POST /orders").await.unwrap_err();
    assert_eq!(inner.count(), 1);
    assert_eq!(svc.handle().snapshot().not_cloneable, 0);
    // An attempt that timed out may have been sent too.
    let inner = Scripted::always(Act::Hang);
    let mut svc = Retry::builder()
        .backoff(fixed(1))
        .attempt_timeout(ms(100))
        .policy(PostOnlyIfUnsent)
        .build(inner.clone())
        .unwrap();
    let err = send(&mut svc, "POST /orders").await.unwrap_err();
    assert!(matches!(err, RetryError::AttemptTimedOut { .. }), "{err}");
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_retried_only_when_unsent_is_never_hedged() {
    let inner = Scripted::always(Act::Ok(ms(500)));
    let mut svc = Retry::builder()
        .hedge(tower_fleet::retry::HedgeConfig::after(ms(10)))
        .policy(PostOnlyIfUnsent)
        .build(inner.clone())
        .unwrap();
    send(&mut svc, "POST /orders").await.unwrap();
    assert_eq!(inner.count(), 1);
    send(&mut svc, "GET /orders").await.unwrap();
    assert_eq!(inner.count(), 3, "the GET was hedged");
}
