//! What a load run measured: counts by operation, shard and cause, latency
//! percentiles from an HDR histogram, and the process's CPU use.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

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
    /// Counts one completed request.
    pub fn count(&mut self, op: Op, ok: bool) {
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

/// An empty latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits: every latency fits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
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
}
