//! What the breaker records: the sliding window's regression against a
//! cumulative count, and outcomes judged by the crate's classifier.

mod breaker_support;

use std::time::Duration;

use breaker_support::{send, send_all, Backend, FAIL, OK};
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::breaker::{BreakerState, CircuitBreaker};
use tower_fleet::classify::{Classification, EndOfStream, EosReporter, Outcome};

/// tower-resilience's count window is cumulative: after 10,000 successes it
/// needs 10,000 failures to open. A real window of 100 opens within 50.
#[tokio::test(start_paused = true)]
async fn opens_within_fifty_failures_after_ten_thousand_successes() {
    let mut b = CircuitBreaker::builder()
        .count_window(100)
        .failure_rate_threshold(50.0)
        .minimum_calls(100)
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, std::iter::repeat_n(OK, 10_000)).await;
    assert_eq!(b.handle().snapshot().window_calls, 100);
    let mut failures = 0;
    while b.handle().state() == BreakerState::Closed {
        send(&mut b, FAIL).await.unwrap_err();
        failures += 1;
        assert!(failures <= 50, "still closed after {failures} failures");
    }
    assert_eq!(failures, 50);
    assert_eq!(b.handle().snapshot().calls, 10_050);
}

#[tokio::test(start_paused = true)]
async fn the_time_window_also_forgets_old_successes() {
    let mut b = CircuitBreaker::builder()
        .time_window(Duration::from_secs(10), 10)
        .minimum_calls(10)
        .build(Backend::default())
        .unwrap();
    send_all(&mut b, std::iter::repeat_n(OK, 10_000)).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    send_all(&mut b, [FAIL; 9]).await;
    assert_eq!(
        b.handle().state(),
        BreakerState::Closed,
        "below minimum_calls"
    );
    send_all(&mut b, [FAIL]).await;
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_classifier_decides_what_fails() {
    // An HTTP-like protocol: 5xx fails, 404 does not, 499 (client gave up) says nothing.
    let status = service_fn(|code: u16| async move { Ok::<u16, std::io::Error>(code) });
    let mut b = CircuitBreaker::builder()
        .count_window(4)
        .minimum_calls(4)
        .classify(|r: &Result<u16, std::io::Error>| match r {
            Ok(499) => Outcome::Ignore,
            Ok(c) if *c >= 500 => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .build(status)
        .unwrap();
    for code in [404, 404, 503, 499, 499, 200] {
        b.ready().await.unwrap().call(code).await.unwrap();
    }
    let snap = b.handle().snapshot();
    assert_eq!(
        (snap.window_calls, snap.window_failures, snap.ignored),
        (4, 1, 2)
    );
    b.ready().await.unwrap().call(503).await.unwrap();
    // 2 of 4 failed (the first 404 left the window).
    assert_eq!(b.handle().state(), BreakerState::Open);
}

/// A streamed response: its outcome arrives when the stream ends.
struct Stream {
    eos: EndOfStream,
    reporter: Option<EosReporter>,
}

fn streaming() -> impl Service<(), Response = Stream, Error = std::io::Error> + Clone {
    service_fn(|()| async {
        let (eos, reporter) = EndOfStream::pair();
        Ok(Stream {
            eos,
            reporter: Some(reporter),
        })
    })
}

fn at_end(r: &Result<Stream, std::io::Error>) -> Classification {
    match r {
        Ok(s) => Classification::AtEnd(s.eos.clone()),
        Err(_) => Classification::Now(Outcome::Failure),
    }
}

/// A half-open breaker with one probe slot over a streaming backend.
fn half_open_over_streams() -> CircuitBreaker<
    impl Service<(), Response = Stream, Error = std::io::Error> + Clone,
    impl Fn(&Result<Stream, std::io::Error>) -> Classification + Clone,
> {
    let b = CircuitBreaker::builder()
        .half_open_calls(1)
        .classify(at_end)
        .build(streaming())
        .unwrap();
    b.handle().half_open();
    b
}

#[tokio::test(start_paused = true)]
async fn a_probe_judged_at_the_end_of_its_stream_holds_its_slot_until_then() {
    let mut b = half_open_over_streams();
    let mut stream = b.ready().await.unwrap().call(()).await.unwrap();
    // The head has arrived; the outcome has not.
    assert_eq!(b.handle().state(), BreakerState::HalfOpen);
    assert_eq!(b.handle().snapshot().probes_taken, 1);
    assert!(b
        .ready()
        .await
        .unwrap()
        .call(())
        .await
        .is_err_and(|e| e.is_open()));
    stream.reporter.take().unwrap().report(Outcome::Success);
    assert_eq!(b.handle().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_before_its_end_is_ignored() {
    let mut b = half_open_over_streams();
    let stream = b.ready().await.unwrap().call(()).await.unwrap();
    drop(stream);
    let snap = b.handle().snapshot();
    assert_eq!((snap.probes_taken, snap.ignored), (0, 1));
    assert_eq!(snap.state, BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn streams_judged_at_the_end_trip_the_closed_breaker() {
    let mut b = CircuitBreaker::builder()
        .consecutive_failures(2)
        .classify(at_end)
        .build(streaming())
        .unwrap();
    for _ in 0..2 {
        let mut s = b.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(b.handle().state(), BreakerState::Closed);
        s.reporter.take().unwrap().report(Outcome::Failure);
    }
    assert_eq!(b.handle().state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn long_lived_streams_are_never_slow() {
    let watch = service_fn(|wait: Duration| async move {
        tokio::time::sleep(wait).await;
        Ok::<_, std::io::Error>(wait)
    });
    let mut b = CircuitBreaker::builder()
        .count_window(2)
        .minimum_calls(2)
        .slow_call_duration(Duration::from_millis(10))
        .classify(|r: &Result<Duration, std::io::Error>| match r {
            Ok(d) if *d >= Duration::from_secs(60) => Classification::LongLived(Outcome::Success),
            Ok(_) => Classification::Now(Outcome::Success),
            Err(_) => Classification::Now(Outcome::Failure),
        })
        .build(watch)
        .unwrap();
    for _ in 0..2 {
        b.ready()
            .await
            .unwrap()
            .call(Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let snap = b.handle().snapshot();
    assert_eq!((snap.window_calls, snap.slow_calls), (2, 0));
    assert_eq!(snap.state, BreakerState::Closed);
    // A short call over the limit is slow.
    b.ready()
        .await
        .unwrap()
        .call(Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(b.handle().snapshot().slow_calls, 1);
}
