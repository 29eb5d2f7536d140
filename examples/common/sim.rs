//! A virtual-time model of a fleet for balancer simulations: backends with a
//! concurrency limit and a scripted behaviour over time, and an open-loop
//! client that sends a fixed rate of requests and records each outcome.
//!
//! Run it on tokio's paused clock: time then jumps from event to event, and a
//! minute of traffic takes well under a second of real time.

#![allow(dead_code)]

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a backend does with a request, at some point of the run.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Answers after a latency drawn uniformly from 0.5x to 1.5x `mean`.
    Serve { mean: Duration },
    /// Answers exactly after `latency`.
    Slow { latency: Duration },
    /// Fails after `after`.
    Fail { after: Duration },
}

type Script = Box<dyn Fn(Duration) -> Behaviour + Send + Sync>;

/// One backend: a concurrency limit (a queue in front of it) and a script.
pub struct Backend {
    received: AtomicU64,
    /// Requests received in each second of the run.
    per_second: std::sync::Mutex<Vec<u64>>,
    slots: Arc<Semaphore>,
    script: Script,
    start: Instant,
    rng: AtomicU64,
}

impl Backend {
    /// A backend that runs `script(time since start)` with `concurrency` slots.
    pub fn new(
        concurrency: usize,
        script: impl Fn(Duration) -> Behaviour + Send + Sync + 'static,
    ) -> Arc<Backend> {
        static SEED: AtomicU64 = AtomicU64::new(1);
        Arc::new(Backend {
            received: AtomicU64::new(0),
            per_second: std::sync::Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(concurrency)),
            script: Box::new(script),
            start: Instant::now(),
            rng: AtomicU64::new(SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)),
        })
    }

    /// Requests it has received.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Requests it received from `from` to `until` (whole seconds of the run).
    pub fn received_between(&self, from: Duration, until: Duration) -> u64 {
        let per_second = self.per_second.lock().unwrap();
        let (a, b) = (from.as_secs() as usize, until.as_secs() as usize);
        per_second.iter().skip(a).take(b.saturating_sub(a)).sum()
    }

    fn jitter(&self, mean: Duration) -> Duration {
        let x = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let x = (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        mean.mul_f64(0.5 + unit)
    }
}

/// The service in front of a [`Backend`]: always ready (its queue is inside).
#[derive(Clone)]
pub struct Server(pub Arc<Backend>);

impl Service<u64> for Server {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: u64) -> Self::Future {
        let b = self.0.clone();
        b.received.fetch_add(1, Ordering::Relaxed);
        {
            let second = b.start.elapsed().as_secs() as usize;
            let mut per_second = b.per_second.lock().unwrap();
            if per_second.len() <= second {
                per_second.resize(second + 1, 0);
            }
            per_second[second] += 1;
        }
        Box::pin(async move {
            let _slot = b.slots.clone().acquire_owned().await?;
            match (b.script)(b.start.elapsed()) {
                Behaviour::Serve { mean } => {
                    tokio::time::sleep(b.jitter(mean)).await;
                    Ok(())
                }
                Behaviour::Slow { latency } => {
                    tokio::time::sleep(latency).await;
                    Ok(())
                }
                Behaviour::Fail { after } => {
                    tokio::time::sleep(after).await;
                    Err("backend failed".into())
                }
            }
        })
    }
}

/// What a run saw.
pub struct Report {
    pub sent: u64,
    pub ok: u64,
    /// Every request's latency (to its answer or its error), sorted.
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn success_rate(&self) -> f64 {
        self.ok as f64 / self.sent.max(1) as f64
    }

    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }
}

/// Sends `rate` requests per second through `svc` for `duration` (open
/// loop: a slow answer does not slow the sender) and waits for all answers.
pub async fn run<S>(mut svc: S, rate: u64, duration: Duration) -> Report
where
    S: Service<u64>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    let start = Instant::now();
    let mut answers = Vec::new();
    let mut sent = 0u64;
    for ms in 0..duration.as_millis() as u64 {
        tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
        let due = (ms + 1) * rate / 1000;
        while sent < due {
            if poll_fn(|cx| svc.poll_ready(cx)).await.is_err() {
                break;
            }
            let fut = svc.call(sent);
            sent += 1;
            let t0 = Instant::now();
            answers.push(tokio::spawn(async move {
                let ok = fut.await.is_ok();
                (t0.elapsed(), ok)
            }));
        }
    }
    let mut report = Report {
        sent,
        ok: 0,
        latencies: Vec::with_capacity(answers.len()),
    };
    for a in answers {
        if let Ok((latency, ok)) = a.await {
            report.ok += u64::from(ok);
            report.latencies.push(latency);
        }
    }
    report.latencies.sort();
    report
}

/// The share of all requests that `backend` received.
pub fn share(backend: &Backend, report: &Report) -> f64 {
    backend.received() as f64 / report.sent.max(1) as f64
}
