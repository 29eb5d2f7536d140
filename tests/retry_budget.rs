//! The retry budget: Finagle's form of its test, expiry, input errors, and
//! no overdraw under concurrency (the budget alone, and a retry layer on a
//! multi-thread runtime, tracking the peak).

mod retry_common;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use retry_common::unavailable;
use tower::{Service, ServiceExt};
use tower_fleet::clock::{Clock, ManualClock};
use tower_fleet::retry::{BudgetConfig, Retry, RetryBudget};
use tower_fleet::signal::{Carrier, Envelope};
use tower_fleet::BoxError;

fn budget(ttl_secs: u64, min_per_second: u32, ratio: f64) -> (RetryBudget, ManualClock) {
    let manual = Clock::manual();
    let config = BudgetConfig {
        ttl: Duration::from_secs(ttl_secs),
        min_per_second,
        ratio,
        ..BudgetConfig::default()
    };
    (
        RetryBudget::from_config(&config, manual.clock()).unwrap(),
        manual,
    )
}

/// Finagle's `RetryBudgetTest`: with time standing still, `n` deposits each
/// followed by one withdrawal attempt allow `n × ratio + ttl × min_per_second`
/// withdrawals, give or take one.
#[test]
fn n_deposits_allow_n_times_ratio_plus_the_reserve() {
    let n = 1000;
    for ratio in [0.0, 0.01, 0.1, 0.2, 0.333, 0.5, 0.99, 1.0, 2.5] {
        for (ttl, min_per_second) in [(1, 0), (10, 10), (60, 5)] {
            let (budget, _clock) = budget(ttl, min_per_second, ratio);
            let granted = (0..n)
                .filter(|_| {
                    budget.deposit();
                    budget.withdraw()
                })
                .count() as f64;
            // One withdrawal attempt per deposit: never more than `n`.
            let expected =
                (n as f64 * ratio + (ttl * u64::from(min_per_second)) as f64).min(n as f64);
            assert!(
                (granted - expected).abs() <= 1.0,
                "ratio {ratio}, ttl {ttl}s, min {min_per_second}/s: {granted} granted, {expected} expected"
            );
        }
    }
}

#[test]
fn withdrawals_expire_with_the_window_and_the_reserve_comes_back() {
    for ttl in [1, 7, 10, 60] {
        let (budget, clock) = budget(ttl, 2, 0.0);
        let reserve = (2 * ttl) as usize;
        assert_eq!(
            (0..1000).filter(|_| budget.withdraw()).count(),
            reserve,
            "ttl {ttl}s"
        );
        clock.advance(Duration::from_secs(ttl) / 2);
        assert!(
            !budget.withdraw(),
            "ttl {ttl}s: still spent half a window later"
        );
        clock.advance(Duration::from_secs(ttl) / 2);
        assert_eq!(
            (0..1000).filter(|_| budget.withdraw()).count(),
            reserve,
            "ttl {ttl}s: refilled"
        );
    }
}

#[test]
fn deposits_count_for_the_window_only() {
    let (budget, clock) = budget(1, 0, 1.0);
    budget.deposit();
    budget.deposit();
    clock.advance(Duration::from_millis(850));
    assert!(
        budget.withdraw(),
        "a deposit counts for at least 9/10 of the window"
    );
    clock.advance(Duration::from_millis(150));
    assert!(!budget.withdraw(), "and not past the window");
    // The withdrawal outlives the deposits that paid for it.
    assert_eq!(budget.balance(), -1.0);
}

#[test]
fn a_long_idle_budget_starts_from_its_reserve() {
    let (budget, clock) = budget(10, 1, 0.5);
    for _ in 0..100 {
        budget.deposit();
    }
    while budget.withdraw() {}
    clock.advance(Duration::from_secs(86_400 * 30));
    assert_eq!(budget.balance(), 10.0);
}

#[test]
fn bad_budgets_are_errors_that_name_the_field() {
    let err = |ttl: Duration, min: u32, ratio: f64| RetryBudget::new(ttl, min, ratio).unwrap_err();
    let s = Duration::from_secs;
    assert_eq!(err(s(0), 10, 0.2).field(), "ttl");
    assert_eq!(err(s(61), 10, 0.2).field(), "ttl");
    assert_eq!(err(s(10), 10, -0.1).field(), "ratio");
    assert_eq!(err(s(10), 10, f64::NAN).field(), "ratio");
    assert_eq!(err(s(10), 10, 1000.5).field(), "ratio");
    assert_eq!(err(s(10), 2_000_000, 0.2).field(), "min_per_second");
}

#[test]
fn tower_retry_can_use_the_budget() {
    use tower::retry::budget::Budget;
    let (budget, _clock) = budget(1, 1, 0.0);
    let as_tower: &dyn Budget = &budget;
    as_tower.deposit();
    assert!(as_tower.withdraw());
    assert!(!as_tower.withdraw());
}

/// Racing threads never take more than the balance: against a reserve of
/// 1,000 with no deposits, exactly 1,000 withdrawals succeed.
#[test]
fn racing_withdrawals_never_overdraw_the_reserve() {
    let (budget, _clock) = budget(10, 100, 0.0);
    let granted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    if budget.withdraw() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::Relaxed), 1_000);
    assert_eq!(budget.snapshot().refused, 16_000 - 1_000);
}

#[test]
fn racing_deposits_and_withdrawals_stay_within_the_budget() {
    let (budget, _clock) = budget(10, 1, 0.25);
    let threads = 8u64;
    let per_thread = 4_000u64;
    let granted = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    budget.deposit();
                    if budget.withdraw() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let allowed = 10 + threads * per_thread / 4;
    let granted = granted.load(Ordering::Relaxed);
    assert!(granted <= allowed, "{granted} granted, {allowed} allowed");
    assert!(
        granted + threads >= allowed,
        "{granted} granted of {allowed}: the budget was not used"
    );
}

/// Many tasks on a multi-thread runtime send requests through one retry
/// layer to a service that always fails (and asks for an immediate retry,
/// so no timer slows the race). At every retry the service sees, the
/// retries so far must stay within the budget of the requests issued so far:
/// the peak of the excess, not just the total, must never be above zero.
#[test]
fn retries_never_run_ahead_of_the_budget() {
    const RESERVE: i64 = 50; // 5/s over 10s
    const TENTHS: i64 = 1; // ratio 0.1
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let issued = Arc::new(AtomicI64::new(0));
    let retries = Arc::new(AtomicI64::new(0));
    let peak_excess = Arc::new(AtomicI64::new(i64::MIN));
    let inner = tower::service_fn({
        let (issued, retries, peak) = (issued.clone(), retries.clone(), peak_excess.clone());
        move |req: Envelope<u32>| {
            if req.attempt().is_some_and(|m| m.attempt() > 1) {
                let r = retries.fetch_add(1, Ordering::SeqCst) + 1;
                let allowed_tenths = RESERVE * 10 + TENTHS * issued.load(Ordering::SeqCst);
                peak.fetch_max(r * 10 - allowed_tenths, Ordering::SeqCst);
            }
            std::future::ready(Err::<(), BoxError>(unavailable(Some(Duration::ZERO))))
        }
    });
    let manual = Clock::manual(); // time stands still: nothing expires during the race
    let svc = Retry::builder()
        .max_attempts(5)
        .clock(manual.clock())
        .budget(BudgetConfig {
            ratio: 0.1,
            min_per_second: 5,
            ttl: Duration::from_secs(10),
            ..BudgetConfig::default()
        })
        .build(inner)
        .unwrap();
    let handle = svc.handle();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let mut svc = svc.clone();
                let issued = issued.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let svc = svc.ready().await.unwrap();
                        issued.fetch_add(1, Ordering::SeqCst);
                        let _ = svc.call(Envelope::new(i)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let requests = issued.load(Ordering::SeqCst);
    let total = retries.load(Ordering::SeqCst);
    assert_eq!(requests, 64 * 50);
    assert!(
        peak_excess.load(Ordering::SeqCst) <= 0,
        "retries ran ahead of the budget by {} tenths",
        peak_excess.load(Ordering::SeqCst)
    );
    assert!(total <= RESERVE + requests / 10, "{total} retries");
    assert!(
        total >= RESERVE + requests / 10 - 4,
        "{total} retries: the budget was not used"
    );
    let snap = handle.snapshot();
    assert_eq!(snap.retries as i64, total);
    assert_eq!(
        snap.budget.unwrap().withdrawn as i64,
        total,
        "every retry was withdrawn"
    );
    assert!(snap.budget_exhausted > 0);
}
