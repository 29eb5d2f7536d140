//! Hedging on tokio's paused clock: the backup goes out after the delay, the
//! first success wins, the loser is dropped, and the budget pays for it.

mod retry_common;

use retry_common::{ms, Act, Scripted, ZERO};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tower_fleet::retry::{Backoff, BudgetConfig, HedgeConfig, Jitter, Retry, RetryError};

async fn send<S>(svc: &mut S) -> Result<String, RetryError>
where
    S: Service<String, Response = String, Error = RetryError>,
{
    svc.ready().await?.call("x".to_string()).await
}

/// The default layer, hedging after 50ms.
fn hedged(inner: &Scripted) -> Retry<Scripted> {
    Retry::builder()
        .hedge(HedgeConfig::after(ms(50)))
        .build(inner.clone())
        .unwrap()
}

fn fixed(base: u64) -> Backoff {
    Backoff::new(ms(base), ms(60_000), Jitter::None).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_backup_goes_out_after_the_delay_and_the_loser_is_dropped() {
    let inner = Scripted::new(|n| if n == 1 { Act::Hang } else { Act::Ok(ms(10)) });
    let mut svc = hedged(&inner);
    let t0 = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap(), "ok 2");
    assert_eq!(inner.times_ms(t0), [0, 50]);
    assert_eq!(Instant::now() - t0, ms(60));
    assert_eq!(inner.dropped(), 1, "the first copy's future was dropped");
    let snap = svc.handle().snapshot();
    assert_eq!((snap.hedges_sent, snap.hedges_won, snap.retries), (1, 1, 0));
    assert_eq!(
        snap.budget.unwrap().withdrawn,
        1,
        "the hedge was charged to the budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fast_first_attempt_sends_no_backup() {
    let inner = Scripted::always(Act::Ok(ms(10)));
    let mut svc = hedged(&inner);
    send(&mut svc).await.unwrap();
    assert_eq!(inner.count(), 1);
    assert_eq!(svc.handle().snapshot().hedges_sent, 0);
}

#[tokio::test(start_paused = true)]
async fn when_the_first_copy_wins_the_backup_is_dropped() {
    let inner = Scripted::new(|n| if n == 1 { Act::Ok(ms(80)) } else { Act::Hang });
    let mut svc = hedged(&inner);
    let t0 = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap(), "ok 1");
    assert_eq!(Instant::now() - t0, ms(80));
    assert_eq!(inner.dropped(), 1);
    let snap = svc.handle().snapshot();
    assert_eq!((snap.hedges_sent, snap.hedges_won), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_fails_waits_for_the_other() {
    // The first fails at 70ms, the backup (sent at 50ms) answers at 90ms.
    let inner = Scripted::new(|n| {
        if n == 1 {
            Act::Fail(ms(70))
        } else {
            Act::Ok(ms(40))
        }
    });
    let mut svc = hedged(&inner);
    let t0 = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap(), "ok 2");
    assert_eq!(Instant::now() - t0, ms(90));
    assert_eq!(inner.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn when_both_copies_fail_the_request_is_retried_as_the_next_attempt() {
    let inner = Scripted::new(|n| match n {
        1 => Act::Fail(ms(70)),
        2 => Act::Fail(ms(30)),
        _ => Act::Ok(ZERO),
    });
    let mut svc = Retry::builder()
        .max_attempts(3)
        .backoff(fixed(10))
        .hedge(HedgeConfig::after(ms(50)))
        .build(inner.clone())
        .unwrap();
    let t0 = Instant::now();
    let env = tower_fleet::signal::Envelope::new("x");
    let answer = ServiceExt::<tower_fleet::signal::Envelope<&str>>::ready(&mut svc)
        .await
        .unwrap()
        .call(env)
        .await;
    assert_eq!(answer.unwrap(), "ok 3");
    assert_eq!(
        inner.times_ms(t0),
        [0, 50, 90],
        "the retry waits for both, then backs off"
    );
    let marks: Vec<_> = inner.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(marks, [Some(1), Some(2), Some(3)], "the hedge is attempt 2");
    let snap = svc.handle().snapshot();
    assert_eq!((snap.hedges_sent, snap.retries), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_sends_no_backup() {
    let empty = BudgetConfig {
        ratio: 0.0,
        min_per_second: 0,
        ..BudgetConfig::default()
    };
    let inner = Scripted::always(Act::Ok(ms(100)));
    let mut svc = Retry::builder()
        .budget(empty)
        .hedge(HedgeConfig::after(ms(50)))
        .build(inner.clone())
        .unwrap();
    send(&mut svc).await.unwrap();
    assert_eq!(inner.count(), 1);
    let snap = svc.handle().snapshot();
    assert_eq!((snap.hedges_sent, snap.budget_exhausted), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn requests_that_may_not_be_sent_twice_are_not_hedged() {
    let inner = Scripted::always(Act::Ok(ms(100)));
    let mut svc = Retry::builder()
        .retryable(|_: &String| false)
        .hedge(HedgeConfig::after(ms(50)))
        .build(inner.clone())
        .unwrap();
    send(&mut svc).await.unwrap();
    let mut once = Retry::builder()
        .max_attempts(1)
        .hedge(HedgeConfig::after(ms(50)))
        .build(inner.clone())
        .unwrap();
    send(&mut once).await.unwrap();
    assert_eq!(inner.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_follows_recent_latencies() {
    // 30 requests of 100ms, then one whose first copy hangs.
    let inner = Scripted::new(|n| match n {
        1..=30 => Act::Ok(ms(100)),
        31 => Act::Hang,
        _ => Act::Ok(ms(1)),
    });
    let hedge = HedgeConfig {
        window: ms(1000),
        min_samples: 5,
        ..HedgeConfig::at_percentile(0.9, ms(20))
    };
    let mut svc = Retry::builder().hedge(hedge).build(inner.clone()).unwrap();
    assert_eq!(
        svc.handle().hedge_delay(),
        None,
        "no hedging before a window has data"
    );
    for _ in 0..30 {
        send(&mut svc).await.unwrap();
    }
    assert_eq!(svc.handle().snapshot().hedges_sent, 0);
    let delay = svc.handle().hedge_delay().unwrap();
    assert!(
        delay >= ms(100) && delay <= ms(107),
        "p90 of 100ms latencies: {delay:?}"
    );
    let t0 = Instant::now();
    assert_eq!(send(&mut svc).await.unwrap(), "ok 32");
    let backup = inner.calls()[31].at - t0;
    // tokio's timer has millisecond resolution: the backup goes out in the
    // millisecond the delay ends.
    assert!(
        backup >= delay && backup < delay + ms(1),
        "backup at {backup:?}, delay {delay:?}"
    );
}
