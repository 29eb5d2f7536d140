//! Loom model of the breaker's lock-free core: concurrent recording, trips,
//! probe reservations and epoch changes. Run by `.ci/loom`:
//! `RUSTFLAGS="--cfg tower_fleet_loom" cargo test --release --test breaker_loom`.
#![cfg(tower_fleet_loom)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tower::{service_fn, Service};
use tower_fleet::breaker::{BreakerError, BreakerState, CircuitBreaker};

type Ready = std::future::Ready<Result<(), Infallible>>;

fn breaker(
    window: u32,
    half_open_calls: u32,
) -> CircuitBreaker<
    impl Service<bool, Response = (), Error = Infallible, Future = Ready> + Clone + Send + 'static,
> {
    // Every call succeeds at once.
    let inner = service_fn(|_: bool| std::future::ready(Ok::<(), Infallible>(())));
    CircuitBreaker::builder()
        .count_window(window)
        .minimum_calls(window)
        .half_open_calls(half_open_calls)
        .build(inner)
        .unwrap()
}

/// Polls ready (always at once in fail-fast mode) and calls.
fn start<S: Service<bool, Error = BreakerError>>(svc: &mut S, req: bool) -> S::Future {
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => svc.call(req),
        other => panic!(
            "fail-fast poll_ready must be ready, got {:?}",
            other.map(|r| r.is_ok())
        ),
    }
}

fn finish<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an instant call must finish at once"),
    }
}

/// Two concurrent failures fill a window of two at 100%: the breaker trips
/// exactly once and the window's totals are exact.
#[test]
fn concurrent_failures_trip_once_with_exact_totals() {
    loom::model(|| {
        let fails =
            service_fn(|_: bool| std::future::ready(Err::<(), _>(std::io::Error::other("down"))));
        let b = CircuitBreaker::builder()
            .count_window(2)
            .minimum_calls(2)
            .build(fails)
            .unwrap();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let mut b = b.clone();
                loom::thread::spawn(move || {
                    let _ = finish(start(&mut b, true));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = b.handle().snapshot();
        assert_eq!(snap.state, BreakerState::Open);
        assert_eq!((snap.trips, snap.transitions), (1, 1));
        assert_eq!((snap.calls, snap.failures), (2, 2));
    });
}

/// Two callers race for the one probe slot of half-open: one gets it.
#[test]
fn half_open_admits_exactly_one_probe_to_two_racing_callers() {
    loom::model(|| {
        let b = breaker(4, 1);
        b.handle().half_open();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let mut b = b.clone();
                loom::thread::spawn(move || start(&mut b, false))
            })
            .collect();
        let futs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let results: Vec<_> = futs.into_iter().map(finish).collect();
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 1);
        assert_eq!(b.handle().state(), BreakerState::Closed);
    });
}

/// A reservation released while the epoch changes never frees a slot of the
/// new epoch.
#[test]
fn a_release_racing_an_epoch_change_frees_no_slot_of_the_new_epoch() {
    loom::model(|| {
        let b = breaker(4, 2);
        b.handle().half_open();
        let mut holder = b.clone();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(holder.poll_ready(&mut cx).is_ready()); // reserves a slot
        let handle = b.handle();
        let t = loom::thread::spawn(move || handle.half_open());
        drop(holder);
        t.join().unwrap();
        // Whatever the order, the newest half-open epoch has both slots free.
        assert_eq!(b.handle().snapshot().probes_taken, 0);
        let mut x = b.clone();
        let mut y = b.clone();
        let mut z = b.clone();
        let (fx, fy, fz) = (
            start(&mut x, false),
            start(&mut y, false),
            start(&mut z, false),
        );
        assert!(
            finish(fz).is_err_and(|e| e.is_open()),
            "a third probe is refused"
        );
        assert!(finish(fx).is_ok() && finish(fy).is_ok());
        assert_eq!(b.handle().state(), BreakerState::Closed);
    });
}

/// A probe finishing while the handle forces the breaker open: the probe's
/// outcome never moves the breaker out of forced open.
#[test]
fn a_probe_finishing_during_a_forced_open_cannot_close_the_breaker() {
    loom::model(|| {
        let mut b = breaker(4, 1);
        b.handle().half_open();
        let probe = start(&mut b, false);
        let handle = b.handle();
        let t = loom::thread::spawn(move || handle.force_open());
        assert!(finish(probe).is_ok());
        t.join().unwrap();
        let snap = b.handle().snapshot();
        assert_eq!(snap.state, BreakerState::ForcedOpen);
        // half-open, then forced open, and a close only if the probe won the race.
        assert!(
            snap.transitions == 2 || snap.transitions == 3,
            "{}",
            snap.transitions
        );
    });
}
