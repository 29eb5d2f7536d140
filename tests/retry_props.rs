//! Properties of the retry layer, checked with proptest: backoff delays stay
//! in their scheme's range, the deadline is never overrun, and the budget
//! bounds the load a failing backend receives, with and without hedging.

mod retry_common;

use std::time::Duration;

use proptest::prelude::*;
use retry_common::{ms, Act, Scripted};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_fleet::retry::{Backoff, BudgetConfig, HedgeConfig, Jitter, Retry};
use tower_fleet::signal::{Envelope, ErrorSignals};

fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated)
    ]
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Each delay lies in its scheme's range, and none exceeds `max`.
    #[test]
    fn every_delay_lies_in_its_schemes_range(
        base_us in 1u64..5_000_000,
        extra_us in 0u64..60_000_000,
        jitter in jitter(),
        retry in 1u32..80,
        previous_us in 0u64..200_000_000,
        random in any::<u64>(),
    ) {
        let (base, max) = (Duration::from_micros(base_us), Duration::from_micros(base_us + extra_us));
        let b = Backoff::new(base, max, jitter).unwrap();
        let previous = Duration::from_micros(previous_us);
        let d = b.delay_with(retry, previous, random);
        // The exponential ceiling, computed independently.
        let ceiling = 2u128.checked_pow(retry - 1)
            .and_then(|f| base.as_nanos().checked_mul(f))
            .map_or(max, |n| Duration::from_nanos(n.min(max.as_nanos()) as u64));
        prop_assert!(d <= max);
        match jitter {
            Jitter::None => prop_assert_eq!(d, ceiling),
            Jitter::Full => prop_assert!(d <= ceiling),
            Jitter::Equal => prop_assert!(d >= ceiling / 2 && d <= ceiling),
            Jitter::Decorrelated => {
                prop_assert!(d >= base);
                prop_assert!(d <= (previous.max(base) * 3).min(max));
            }
            _ => unreachable!(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// No attempt starts at or after the deadline, and the answer never
    /// comes after it, whatever the backoff, latency and retry-after hints.
    #[test]
    fn the_deadline_is_never_overrun(
        deadline_ms in 1u64..3_000,
        base_ms in 1u64..400,
        extra_ms in 0u64..2_000,
        jitter in jitter(),
        latency_ms in 0u64..500,
        hint_ms in proptest::option::of(0u64..1_500),
        attempt_timeout_ms in proptest::option::of(1u64..300),
        max_attempts in 1u32..8,
    ) {
        let inner = Scripted::new(move |n| match hint_ms {
            Some(h) if n % 2 == 1 => Act::Unavailable(Some(ms(h))),
            _ => Act::Fail(ms(latency_ms)),
        });
        let mut builder = Retry::builder()
            .max_attempts(max_attempts)
            .timeout(ms(deadline_ms))
            .backoff(Backoff::new(ms(base_ms), ms(base_ms + extra_ms), jitter).unwrap())
            .no_budget();
        if let Some(t) = attempt_timeout_ms {
            builder = builder.attempt_timeout(ms(t));
        }
        let svc = builder.build(inner.clone()).unwrap();
        let (t0, answered, result) = paused_runtime().block_on(async move {
            let t0 = Instant::now();
            let result = svc.oneshot(Envelope::new("x")).await;
            (t0, Instant::now(), result)
        });
        let deadline = t0 + ms(deadline_ms);
        prop_assert!(answered <= deadline, "answered {:?} after the deadline", answered - deadline);
        for call in inner.calls() {
            prop_assert!(call.at < deadline, "an attempt started at the deadline");
            prop_assert_eq!(call.deadline, Some(deadline), "the inner service saw the deadline");
        }
        // A request cut off by its deadline fails exactly then, not later.
        if let Err(e) = &result {
            prop_assert!(!e.deadline_exceeded() || answered == deadline);
        }
    }
}

/// Sends `gaps.len()` requests, the i-th at the sum of the first i gaps, to a
/// service that always fails after `latency`; returns the inner calls and the
/// elapsed time.
fn run_load(svc: Retry<Scripted>, inner: &Scripted, gaps: &[u64]) -> (usize, Duration) {
    let rt = paused_runtime();
    let elapsed = rt.block_on(async move {
        let start = Instant::now();
        let mut at = start;
        let mut tasks = Vec::new();
        for gap in gaps {
            at += ms(*gap);
            let svc = svc.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let _ = svc.oneshot("x".to_string()).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        Instant::now() - start
    });
    (inner.count(), elapsed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The amplification bound: with a backend that always fails, the inner
    /// calls stay under `requests × (1 + ratio) + min_per_second × (elapsed
    /// seconds + ttl)`, plus one for the rounding of the elapsed time; with
    /// hedging on too, since hedges draw on the same budget.
    #[test]
    fn a_failing_backend_sees_at_most_the_budgeted_load(
        gaps in proptest::collection::vec(0u64..300, 1..200),
        ratio_milli in 0u32..=1000,
        min_per_second in 0u32..6,
        ttl_secs in 1u64..=15,
        max_attempts in 2u32..=6,
        base_ms in 1u64..200,
        latency_ms in 0u64..60,
        hedge_ms in proptest::option::of(1u64..40),
    ) {
        let ratio = f64::from(ratio_milli) / 1000.0;
        let inner = Scripted::always(Act::Fail(ms(latency_ms)));
        let mut builder = Retry::builder()
            .max_attempts(max_attempts)
            .backoff(Backoff::new(ms(base_ms), ms(base_ms * 8), Jitter::Full).unwrap())
            .budget(BudgetConfig { ratio, min_per_second, ttl: Duration::from_secs(ttl_secs), ..BudgetConfig::default() });
        if let Some(d) = hedge_ms {
            builder = builder.hedge(HedgeConfig::after(ms(d)));
        }
        let svc = builder.build(inner.clone()).unwrap();
        let handle = svc.handle();
        let requests = gaps.len() as f64;
        let (calls, elapsed) = run_load(svc, &inner, &gaps);
        let bound = requests * (1.0 + ratio) + f64::from(min_per_second) * (elapsed.as_secs_f64() + ttl_secs as f64) + 1.0;
        prop_assert!(calls as f64 <= bound, "{} inner calls for {} requests over {:?}: bound {}", calls, requests, elapsed, bound);
        let snap = handle.snapshot();
        prop_assert_eq!(calls as u64, snap.requests + snap.retries + snap.hedges_sent);
    }
}
