//! Model-based test: random sequences of calls (outcome, latency, time
//! advance, cancellation) applied to the breaker and to a small reference
//! model written here; after every step both agree on the state, the epoch
//! and the window's counts.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceExt};
use tower_fleet::breaker::{BreakerConfig, BreakerState, CircuitBreaker, WindowConfig};
use tower_fleet::classify::Outcome;
use tower_fleet::clock::Ticks;

const OPEN_MS: u64 = 1_000;
const MAX_OPEN_MS: u64 = 4_000;
const MAX_HALF_OPEN_MS: u64 = 3_000;

#[derive(Clone, Debug)]
struct Cfg {
    window: WindowConfig,
    minimum_calls: u32,
    failure_rate: f64,
    slow_ms: Option<u64>,
    slow_rate: f64,
    consecutive: Option<u32>,
    half_open_calls: u32,
}

#[derive(Clone, Copy, Debug)]
struct Step {
    outcome: Outcome,
    latency_ms: u64,
    advance_ms: u64,
    cancel: bool,
}

fn window() -> impl Strategy<Value = WindowConfig> {
    prop_oneof![
        (1u32..=6).prop_map(|size| WindowConfig::Count { size }),
        (1u64..=4, 1u32..=4).prop_map(|(s, buckets)| WindowConfig::Time {
            duration: Duration::from_secs(s),
            buckets
        }),
    ]
}

prop_compose! {
    fn cfg()(
        window in window(),
        minimum_calls in 1u32..=6,
        failure_rate in prop::sample::select(vec![20.0, 50.0, 75.0, 100.0]),
        slow_ms in prop::option::of(Just(50u64)),
        slow_rate in prop::sample::select(vec![50.0, 100.0]),
        consecutive in prop::option::of(1u32..=3),
        half_open_calls in 1u32..=3,
    ) -> Cfg {
        Cfg { window, minimum_calls, failure_rate, slow_ms, slow_rate, consecutive, half_open_calls }
    }
}

fn step() -> impl Strategy<Value = Step> {
    let outcome = prop_oneof![
        4 => Just(Outcome::Success),
        4 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignore),
    ];
    (outcome, 0u64..=10, 0u64..=15, prop::bool::weighted(0.1)).prop_map(
        |(outcome, l, a, cancel)| Step {
            outcome,
            latency_ms: l * 10,
            advance_ms: a * 100,
            cancel,
        },
    )
}

/// The reference model: the semantics of the module docs, written plainly.
struct Model {
    cfg: Cfg,
    t0_ticks: u64,
    state: BreakerState,
    epoch: u32,
    /// (time-window bucket, failed, slow), oldest first.
    window: VecDeque<(u64, bool, bool)>,
    consecutive: u32,
    open_until: u64,
    half_open_until: u64,
    trips_since_close: u32,
    taken: u32,
    done: u32,
    failed: u32,
    slow: u32,
}

impl Model {
    fn new(cfg: Cfg, t0_ticks: u64) -> Model {
        Model {
            cfg,
            t0_ticks,
            state: BreakerState::Closed,
            epoch: 0,
            window: VecDeque::new(),
            consecutive: 0,
            open_until: 0,
            half_open_until: 0,
            trips_since_close: 0,
            taken: 0,
            done: 0,
            failed: 0,
            slow: 0,
        }
    }

    fn bucket(&self, now_ms: u64) -> u64 {
        match self.cfg.window {
            WindowConfig::Count { .. } => 0,
            WindowConfig::Time { duration, buckets } => {
                let width = duration.as_nanos() as u64 / u64::from(buckets);
                (self.t0_ticks + now_ms * 1_000_000) / width
            }
        }
    }

    /// The window's (calls, failures, slow) at `now_ms`.
    fn counts(&mut self, now_ms: u64) -> (u64, u64, u64) {
        if let WindowConfig::Time { buckets, .. } = self.cfg.window {
            let newest = self.bucket(now_ms);
            self.window
                .retain(|(b, _, _)| b + u64::from(buckets) > newest);
        }
        let calls = self.window.len() as u64;
        let failures = self.window.iter().filter(|w| w.1).count() as u64;
        let slow = self.window.iter().filter(|w| w.2).count() as u64;
        (calls, failures, slow)
    }

    fn to(&mut self, state: BreakerState, now_ms: u64) {
        match state {
            BreakerState::Open => {
                let grown = OPEN_MS << self.trips_since_close.min(10);
                self.open_until = now_ms + grown.min(MAX_OPEN_MS);
                self.trips_since_close += 1;
            }
            BreakerState::HalfOpen => self.half_open_until = now_ms + MAX_HALF_OPEN_MS,
            BreakerState::Closed => {
                self.window.clear();
                self.consecutive = 0;
                self.trips_since_close = 0;
            }
            _ => unreachable!(),
        }
        self.state = state;
        self.epoch += 1;
        (self.taken, self.done, self.failed, self.slow) = (0, 0, 0, 0);
    }

    /// Looks at the time, as the handle does.
    fn current(&mut self, now_ms: u64) {
        if self.state == BreakerState::Open && now_ms >= self.open_until {
            self.to(BreakerState::HalfOpen, now_ms);
        }
    }

    /// `Some(is_probe)` when a call is admitted.
    fn decide(&mut self, now_ms: u64) -> Option<bool> {
        loop {
            match self.state {
                BreakerState::Closed => return Some(false),
                BreakerState::Open if now_ms >= self.open_until => {
                    self.to(BreakerState::HalfOpen, now_ms)
                }
                BreakerState::Open => return None,
                BreakerState::HalfOpen if self.taken < self.cfg.half_open_calls => {
                    self.taken += 1;
                    return Some(true);
                }
                BreakerState::HalfOpen if now_ms >= self.half_open_until => {
                    self.to(BreakerState::Open, now_ms)
                }
                BreakerState::HalfOpen => return None,
                _ => unreachable!(),
            }
        }
    }

    fn rate_reached(count: u64, calls: u64, percent: f64) -> bool {
        count as f64 * 100.0 >= percent * calls as f64
    }

    fn finish(&mut self, probe: bool, outcome: Outcome, slow: bool, now_ms: u64) {
        let failed = outcome == Outcome::Failure;
        if probe {
            match outcome {
                Outcome::Ignore => self.taken -= 1,
                _ => {
                    self.done += 1;
                    self.failed += u32::from(failed);
                    self.slow += u32::from(slow);
                }
            }
            if outcome != Outcome::Ignore && self.done == self.cfg.half_open_calls {
                let done = u64::from(self.done);
                let bad = Self::rate_reached(u64::from(self.failed), done, self.cfg.failure_rate)
                    || (self.cfg.slow_ms.is_some()
                        && Self::rate_reached(u64::from(self.slow), done, self.cfg.slow_rate));
                self.to(
                    if bad {
                        BreakerState::Open
                    } else {
                        BreakerState::Closed
                    },
                    now_ms,
                );
            }
            return;
        }
        if outcome == Outcome::Ignore {
            return;
        }
        let bucket = self.bucket(now_ms);
        self.counts(now_ms);
        self.window.push_back((bucket, failed, slow));
        if let WindowConfig::Count { size } = self.cfg.window {
            if self.window.len() > size as usize {
                self.window.pop_front();
            }
        }
        let mut trip = false;
        if let Some(n) = self.cfg.consecutive {
            self.consecutive = if failed { self.consecutive + 1 } else { 0 };
            trip |= self.consecutive >= n;
        }
        let (calls, failures, slows) = self.counts(now_ms);
        let min = match self.cfg.window {
            WindowConfig::Count { size } => self.cfg.minimum_calls.min(size),
            WindowConfig::Time { .. } => self.cfg.minimum_calls,
        };
        if calls >= u64::from(min) {
            trip |= Self::rate_reached(failures, calls, self.cfg.failure_rate);
            trip |=
                self.cfg.slow_ms.is_some() && Self::rate_reached(slows, calls, self.cfg.slow_rate);
        }
        if trip {
            self.to(BreakerState::Open, now_ms);
        }
    }
}

fn code(o: Outcome) -> u8 {
    match o {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Ignore => 2,
    }
}

async fn run(cfg: Cfg, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let config = BreakerConfig {
        window: cfg.window,
        minimum_calls: cfg.minimum_calls,
        failure_rate_threshold: cfg.failure_rate,
        slow_call_duration: cfg.slow_ms.map(Duration::from_millis),
        slow_call_rate_threshold: cfg.slow_rate,
        consecutive_failures: cfg.consecutive,
        open_duration: Duration::from_millis(OPEN_MS),
        open_duration_multiplier: 2.0,
        max_open_duration: Duration::from_millis(MAX_OPEN_MS),
        half_open_calls: cfg.half_open_calls,
        max_half_open_duration: Duration::from_millis(MAX_HALF_OPEN_MS),
        ..BreakerConfig::default()
    };
    let backend = service_fn(|(code, latency): (u8, Duration)| async move {
        tokio::time::sleep(latency).await;
        if code == 1 {
            Err(std::io::Error::other("failed"))
        } else {
            Ok(code)
        }
    });
    let mut breaker = CircuitBreaker::builder()
        .config(config)
        .classify(|r: &Result<u8, std::io::Error>| match r {
            Ok(2) => Outcome::Ignore,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
        .build(backend)
        .unwrap();
    let handle = breaker.handle();
    let t0 = Instant::now();
    let mut model = Model::new(cfg.clone(), Ticks::from_instant(t0).0);
    let now_ms = |t0: Instant| (Instant::now() - t0).as_millis() as u64;
    for (i, s) in steps.iter().enumerate() {
        tokio::time::advance(Duration::from_millis(s.advance_ms)).await;
        let at = now_ms(t0);
        let admitted = model.decide(at);
        let svc = breaker.ready().await.unwrap();
        let fut = svc.call((code(s.outcome), Duration::from_millis(s.latency_ms)));
        match admitted {
            None => {
                let err = fut.await.unwrap_err();
                prop_assert!(err.is_open(), "step {i}: {err}");
            }
            Some(probe) if s.cancel => {
                drop(fut);
                model.finish(probe, Outcome::Ignore, false, at);
            }
            Some(probe) => {
                let result = fut.await;
                prop_assert!(
                    result.as_ref().map_or_else(|e| !e.is_open(), |_| true),
                    "step {i}: refused"
                );
                let slow = cfg.slow_ms.is_some_and(|limit| s.latency_ms > limit);
                model.finish(probe, s.outcome, slow, now_ms(t0));
            }
        }
        let at = now_ms(t0);
        model.current(at);
        let snap = handle.snapshot();
        let counts = model.counts(at);
        prop_assert_eq!(snap.state, model.state, "step {}: {:?}", i, s);
        prop_assert_eq!(snap.epoch, model.epoch, "step {}", i);
        if model.state != BreakerState::Closed {
            continue; // the window is emptied on closing; its contents while open do not matter
        }
        prop_assert_eq!(
            (
                snap.window_calls,
                snap.window_failures,
                snap.window_slow_calls
            ),
            counts,
            "step {}: {:?}",
            i,
            s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_breaker_follows_the_reference_model(cfg in cfg(), steps in prop::collection::vec(step(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(run(cfg, steps))?;
    }
}
