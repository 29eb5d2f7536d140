//! The load generator: a mixed GET/PUT workload against a gateway over HTTP.
//!
//! Keys are `k{rank}` with ranks drawn from a [`Zipf`] distribution over the
//! key space (exponent 0 = uniform). Each request is a GET with probability
//! `reads`, else a PUT of a small value. Two ways to pace it:
//!
//! - **Open loop** (`Pace::Rate`): requests start on a fixed schedule
//!   whatever the fleet does, like independent users. Latency is measured
//!   from the moment a request *should* have started, so a stall shows up in
//!   the percentiles instead of hiding (no coordinated omission). Requests
//!   that would exceed `max_in_flight` are not sent and are counted.
//! - **Closed loop** (`Pace::Concurrency`): N workers each send the next
//!   request when the previous one answered; throughput is what the fleet
//!   sustains at that concurrency.
//!
//! Outcomes: a GET answered 200 or 404 (the key was never written) and a PUT
//! answered 2xx succeed; any other status, a connection error or a request
//! that takes longer than `timeout` fails, and is counted by operation, by
//! the shard that owns the key and by cause. Once a second a progress line
//! goes to stderr; [`run`] returns a [`LoadReport`].

use std::fmt;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::report::{millis, new_histogram, CpuMeter, Latency, LoadReport, Op};
pub use super::workload::{LoadConfig, LoadError, Pace};
use super::zipf::Zipf;

/// Maps a key to the id of the shard that owns it, for per-shard counts.
pub type ShardOf = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Something to do at a point of the run (kill a node, slow one down).
pub struct Scheduled {
    /// When, from the start of the run.
    pub at: Duration,
    /// What it is, for the progress output.
    pub what: String,
    /// The action.
    pub action: Box<dyn FnOnce() + Send>,
}

impl fmt::Debug for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduled")
            .field("at", &self.at)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// The name of rank `rank`'s key.
pub fn key_name(rank: u64) -> String {
    format!("k{rank}")
}

/// One completed request, sent from the request to the collector.
struct Sample {
    op: Op,
    shard: String,
    latency: Duration,
    /// `None` for a success, else the cause of the failure.
    failure: Option<String>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Everything a request needs, shared by all of them.
struct Shared {
    client: HttpClient,
    base: String,
    keys: Zipf,
    shard_of: ShardOf,
    value: Bytes,
    reads: f64,
    timeout: Duration,
    samples: mpsc::UnboundedSender<Sample>,
}

impl Shared {
    /// Sends one request chosen with `rng`, measuring latency from `since`.
    async fn one(&self, rng: &mut SmallRng, since: Instant) {
        let key = key_name(self.keys.sample(rng));
        let op = if rng.random::<f64>() < self.reads {
            Op::Read
        } else {
            Op::Write
        };
        let failure = match tokio::time::timeout(self.timeout, self.send(op, &key)).await {
            Ok(outcome) => outcome.err(),
            Err(_) => Some("timeout".to_string()),
        };
        let _ = self.samples.send(Sample {
            op,
            shard: (self.shard_of)(&key),
            latency: since.elapsed(),
            failure,
        });
    }

    async fn send(&self, op: Op, key: &str) -> Result<(), String> {
        let uri = format!("{}/kv/{key}", self.base);
        let request = match op {
            Op::Read => http::Request::get(uri).body(Full::default()),
            Op::Write => http::Request::put(uri).body(Full::new(self.value.clone())),
        }
        .map_err(|e| format!("request: {e}"))?;
        let response = self.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                "connect".to_string()
            } else {
                "connection".to_string()
            }
        })?;
        let status = response.status();
        // Read the body so the connection goes back to the pool.
        response
            .into_body()
            .collect()
            .await
            .map_err(|_| "body".to_string())?;
        let ok = match op {
            Op::Read => status.is_success() || status == http::StatusCode::NOT_FOUND,
            Op::Write => status.is_success(),
        };
        if ok {
            Ok(())
        } else {
            Err(status.as_u16().to_string())
        }
    }
}

/// Runs the workload against the gateway at `gateway`, firing `events` at
/// their times (those later than `duration` never fire), and returns what it
/// measured. Requests still outstanding at
/// the end of `duration` are awaited (each is bounded by `timeout`).
pub async fn run(
    gateway: SocketAddr,
    config: &LoadConfig,
    shard_of: ShardOf,
    events: Vec<Scheduled>,
) -> Result<LoadReport, LoadError> {
    config.validate()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        client: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build_http(),
        base: format!("http://{gateway}"),
        keys: Zipf::new(config.keys, config.zipf)?,
        shard_of,
        value: Bytes::from(vec![b'v'; config.value_bytes]),
        reads: config.reads,
        timeout: config.timeout,
        samples: tx,
    });
    let cpu = CpuMeter::start();
    let start = Instant::now();
    let end = start + config.duration;
    let collector = tokio::spawn(collect(rx, start, config.progress));
    let events = tokio::spawn(fire(events, start, end, config.progress));
    let not_sent = match config.pace {
        Pace::Concurrency(n) => {
            closed_loop(&shared, n, end, config.seed).await;
            0
        }
        Pace::Rate(rate) => open_loop(&shared, rate, config, start, end).await,
    };
    drop(shared);
    // Every event is due by now: let the last ones fire before reporting.
    let _ = events.await;
    let mut report = collector.await.expect("the collector does not panic");
    report.not_sent = not_sent;
    report.cpu = cpu.stop();
    Ok(report)
}

async fn closed_loop(shared: &Arc<Shared>, workers: usize, end: Instant, seed: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let shared = shared.clone();
        let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(w as u64));
        tasks.spawn(async move {
            while Instant::now() < end {
                shared.one(&mut rng, Instant::now()).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Starts request `i` at `start + i / rate`, checking the schedule every
/// millisecond (timers are no finer). Returns the requests not sent.
async fn open_loop(
    shared: &Arc<Shared>,
    rate: f64,
    config: &LoadConfig,
    start: Instant,
    end: Instant,
) -> u64 {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut sent, mut not_sent) = (0u64, 0u64);
    loop {
        let now = tick.tick().await.min(end);
        let due = ((now - start).as_secs_f64() * rate) as u64;
        while sent < due {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / rate);
            sent += 1;
            if in_flight.load(Ordering::Relaxed) >= config.max_in_flight {
                not_sent += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (shared, in_flight) = (shared.clone(), in_flight.clone());
            let mut rng = SmallRng::seed_from_u64(rng.random());
            tasks.spawn(async move {
                shared.one(&mut rng, scheduled).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
        if now >= end {
            break;
        }
    }
    while tasks.join_next().await.is_some() {}
    not_sent
}

/// Fires each event at its time; events after the end of the run are dropped.
async fn fire(mut events: Vec<Scheduled>, start: Instant, end: Instant, progress: bool) {
    events.retain(|e| start + e.at <= end);
    events.sort_by_key(|e| e.at);
    for e in events {
        tokio::time::sleep_until(start + e.at).await;
        if progress {
            eprintln!("[{:>5.1}s] {}", e.at.as_secs_f64(), e.what);
        }
        (e.action)();
    }
}

/// Receives every sample until the last sender is gone, printing a progress
/// line once a second.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Sample>,
    start: Instant,
    progress: bool,
) -> LoadReport {
    let mut report = LoadReport::empty();
    let mut second = new_histogram();
    let (mut second_requests, mut second_errors) = (0u64, 0u64);
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let terminal = std::io::stderr().is_terminal();
    loop {
        tokio::select! {
            sample = rx.recv() => {
                let Some(s) = sample else { break };
                let micros = (s.latency.as_micros() as u64).clamp(1, 600_000_000);
                report.histogram.saturating_record(micros);
                second.saturating_record(micros);
                second_requests += 1;
                let ok = s.failure.is_none();
                report.all.count(s.op, ok);
                report.shards.entry(s.shard).or_default().count(s.op, ok);
                if let Some(cause) = s.failure {
                    second_errors += 1;
                    *report.causes.entry(cause).or_default() += 1;
                }
            }
            _ = tick.tick(), if progress => {
                let line = progress_line(start.elapsed(), &report, second_requests, second_errors, &second);
                if terminal {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
                second.reset();
                (second_requests, second_errors) = (0, 0);
            }
        }
    }
    if progress && terminal {
        eprintln!();
    }
    report.elapsed = start.elapsed();
    report
}

/// `[  3s] 12034 requests  4011/s  errors 0 (0 total)  p99 2.1ms`
fn progress_line(
    at: Duration,
    total: &LoadReport,
    requests: u64,
    errors: u64,
    second: &Histogram<u64>,
) -> String {
    format!(
        "[{:>4.0}s] {:>8} requests  {:>6}/s  errors {} ({} total)  p99 {}",
        at.as_secs_f64(),
        total.requests(),
        requests,
        errors,
        total.failed(),
        millis(Latency::of(second).p99)
    )
}
