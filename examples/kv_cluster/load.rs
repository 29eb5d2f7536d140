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

use std::collections::BTreeMap;
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

use crate::zipf::{Zipf, ZipfError};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Open loop: this many requests per second, on schedule.
    Rate(f64),
    /// Closed loop: this many requests outstanding at all times.
    Concurrency(usize),
}

/// What to send, how fast and for how long.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The fraction of requests that are GETs (the rest are PUTs), 0..=1.
    pub reads: f64,
    /// The key space: keys `k0` .. `k{keys-1}`.
    pub keys: u64,
    /// The Zipf exponent of key popularity; 0 draws keys uniformly.
    pub zipf: f64,
    /// Open or closed loop.
    pub pace: Pace,
    /// How long to send requests (outstanding ones are then awaited).
    pub duration: Duration,
    /// The size of each PUT's value in bytes.
    pub value_bytes: usize,
    /// A request that has not answered after this long fails.
    pub timeout: Duration,
    /// Open loop only: requests beyond this many outstanding are not sent.
    pub max_in_flight: usize,
    /// Print a progress line to stderr once a second.
    pub progress: bool,
    /// Seed of the key and operation choices, for repeatable runs.
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            reads: 0.9,
            keys: 10_000,
            zipf: 1.0,
            pace: Pace::Concurrency(32),
            duration: Duration::from_secs(15),
            value_bytes: 64,
            timeout: Duration::from_secs(5),
            max_in_flight: 10_000,
            progress: true,
            seed: 1,
        }
    }
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The key distribution could not be built.
    #[error(transparent)]
    Keys(#[from] ZipfError),
    /// A field is out of its range.
    #[error("{field} must be {expected}, got {value}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The accepted range.
        expected: &'static str,
        /// The value given.
        value: String,
    },
}

impl LoadConfig {
    /// Checks every field; [`run`] does too.
    pub fn validate(&self) -> Result<(), LoadError> {
        let invalid = |field, expected, value: String| {
            Err(LoadError::Invalid {
                field,
                expected,
                value,
            })
        };
        if !(0.0..=1.0).contains(&self.reads) {
            return invalid("reads", "between 0 and 1", self.reads.to_string());
        }
        match self.pace {
            Pace::Rate(r) if !(r.is_finite() && r > 0.0 && r <= 1e6) => {
                return invalid("rate", "in (0, 1000000] per second", r.to_string())
            }
            Pace::Concurrency(c) if c == 0 || c > 10_000 => {
                return invalid("concurrency", "1 to 10000", c.to_string())
            }
            _ => {}
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return invalid(
                "duration",
                "between 1ms and 24h",
                format!("{:?}", self.duration),
            );
        }
        if self.timeout.is_zero() {
            return invalid("timeout", "more than zero", format!("{:?}", self.timeout));
        }
        if self.value_bytes == 0 || self.value_bytes > 1 << 20 {
            return invalid("value_bytes", "1 to 1 MiB", self.value_bytes.to_string());
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", "at least 1", "0".into());
        }
        Zipf::new(self.keys, self.zipf)?;
        Ok(())
    }
}

/// A GET or a PUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A read.
    Read,
    /// A write.
    Write,
}

/// Successes and failures of one kind of request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
}

impl OpCounts {
    /// Requests completed either way.
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

/// Reads and writes of one shard's keys (or of all keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardCounts {
    /// GETs.
    pub reads: OpCounts,
    /// PUTs.
    pub writes: OpCounts,
}

impl ShardCounts {
    fn count(&mut self, op: Op, ok: bool) {
        let c = match op {
            Op::Read => &mut self.reads,
            Op::Write => &mut self.writes,
        };
        if ok {
            c.ok += 1;
        } else {
            c.failed += 1;
        }
    }

    /// Failed reads and writes.
    pub fn failed(&self) -> u64 {
        self.reads.failed + self.writes.failed
    }
}

/// Latency percentiles of the completed requests.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The 99.9th percentile.
    pub p999: Duration,
    /// The slowest.
    pub max: Duration,
}

impl Latency {
    /// Reads the percentiles from a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Latency {
        let at = |q: f64| {
            Duration::from_micros(if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            })
        };
        Latency {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(h.max()),
        }
    }
}

/// The process's CPU use over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuUse {
    /// User plus system CPU time of the whole process (fleet, gateway and
    /// load generator: the example runs them all in one process).
    pub time: Duration,
    /// The wall time it was spent in.
    pub wall: Duration,
    /// Cores of the machine.
    pub cores: usize,
}

impl CpuUse {
    /// CPU time over wall time: 1.0 = one core busy throughout.
    pub fn cores_used(&self) -> f64 {
        if self.wall.is_zero() {
            return 0.0;
        }
        self.time.as_secs_f64() / self.wall.as_secs_f64()
    }

    /// The share of the whole machine, 0..=1.
    pub fn machine_share(&self) -> f64 {
        self.cores_used() / self.cores.max(1) as f64
    }
}

impl fmt::Display for CpuUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.2} s over {:.1} s = {:.0}% of one core, {:.0}% of the machine ({} cores)",
            self.time.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.cores_used() * 100.0,
            self.machine_share() * 100.0,
            self.cores
        )
    }
}

/// The process's user + system CPU time so far.
pub fn process_cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// Measures the process's CPU use from its creation to [`CpuMeter::stop`].
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    cpu: Duration,
    wall: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring.
    pub fn start() -> CpuMeter {
        CpuMeter {
            cpu: process_cpu_time(),
            wall: std::time::Instant::now(),
        }
    }

    /// The CPU used since `start`.
    pub fn stop(&self) -> CpuUse {
        CpuUse {
            time: process_cpu_time().saturating_sub(self.cpu),
            wall: self.wall.elapsed(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of every completed request, in microseconds.
    pub histogram: Histogram<u64>,
    /// All reads and writes.
    pub all: ShardCounts,
    /// Reads and writes of each shard's keys, by shard id.
    pub shards: BTreeMap<String, ShardCounts>,
    /// Failures by cause (`"503"`, `"connect"`, `"timeout"`, ...).
    pub causes: BTreeMap<String, u64>,
    /// Open loop: requests skipped because `max_in_flight` were outstanding.
    pub not_sent: u64,
    /// The process's CPU use over the run.
    pub cpu: CpuUse,
}

impl LoadReport {
    /// A report of nothing yet.
    pub fn empty() -> LoadReport {
        LoadReport {
            elapsed: Duration::ZERO,
            histogram: new_histogram(),
            all: ShardCounts::default(),
            shards: BTreeMap::new(),
            causes: BTreeMap::new(),
            not_sent: 0,
            cpu: CpuUse::default(),
        }
    }

    /// Requests completed (succeeded or failed).
    pub fn requests(&self) -> u64 {
        self.all.reads.total() + self.all.writes.total()
    }

    /// Failed requests.
    pub fn failed(&self) -> u64 {
        self.all.failed()
    }

    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.requests() as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency percentiles.
    pub fn latency(&self) -> Latency {
        Latency::of(&self.histogram)
    }

    /// The counts of shard `id`'s keys (zero if none of its keys was sent).
    pub fn shard(&self, id: &str) -> ShardCounts {
        self.shards.get(id).copied().unwrap_or_default()
    }
}

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

/// An empty latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits: every latency fits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
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

/// A duration in milliseconds with a sensible number of digits.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::of(&h);
        // hdrhistogram keeps 3 significant digits: within 0.1%.
        let near =
            |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() <= ms * 0.001 + 0.001;
        assert!(near(l.p50, 500.0), "{l:?}");
        assert!(near(l.p99, 990.0), "{l:?}");
        assert!(near(l.p999, 999.0), "{l:?}");
        assert!(near(l.max, 1000.0), "{l:?}");
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
    }

    #[test]
    fn counts_split_by_operation_and_total() {
        let mut c = ShardCounts::default();
        c.count(Op::Read, true);
        c.count(Op::Read, false);
        c.count(Op::Write, true);
        c.count(Op::Write, true);
        assert_eq!(c.reads, OpCounts { ok: 1, failed: 1 });
        assert_eq!(c.writes, OpCounts { ok: 2, failed: 0 });
        assert_eq!(c.failed(), 1);
    }

    #[test]
    fn cpu_use_is_relative_to_wall_time_and_cores() {
        let cpu = CpuUse {
            time: Duration::from_secs(3),
            wall: Duration::from_secs(2),
            cores: 2,
        };
        assert!((cpu.cores_used() - 1.5).abs() < 1e-9);
        assert!((cpu.machine_share() - 0.75).abs() < 1e-9);
        assert_eq!(CpuUse::default().cores_used(), 0.0);
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(LoadConfig::default().validate().is_ok());
        for bad in [
            LoadConfig {
                reads: 1.5,
                ..LoadConfig::default()
            },
            LoadConfig {
                pace: Pace::Rate(0.0),
                ..LoadConfig::default()
            },
            LoadConfig {
                pace: Pace::Concurrency(0),
                ..LoadConfig::default()
            },
            LoadConfig {
                duration: Duration::ZERO,
                ..LoadConfig::default()
            },
            LoadConfig {
                keys: 0,
                ..LoadConfig::default()
            },
            LoadConfig {
                zipf: -1.0,
                ..LoadConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
