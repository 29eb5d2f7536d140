//! Unit tests of the shared signals.

use std::time::Duration;

use tokio::time::Instant;

use super::attempt::MAX_TRIED;
use super::*;
use crate::clock::Clock;
use crate::BoxError;

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
