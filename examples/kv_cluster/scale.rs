//! `--scale`: the same closed-loop workload against 1, 2, 4 and 8 shards of
//! 3 replicas, to show that capacity grows with the fleet.
//!
//! So that the run measures the fleet and not the gateway or the machine:
//! keys are uniform (no hot shard), the cache is off (every request reaches
//! the fleet), and each node's capacity is set by its simulated service time
//! and concurrency limit ([`NODE_SERVICE_TIME`], [`NODE_CONCURRENCY`]), not by
//! CPU. The load keeps [`IN_FLIGHT_PER_SHARD`] requests outstanding per
//! shard, more than a shard can serve at once, so every shard is saturated
//! and throughput is the fleet's capacity. Fleet, gateway and load generator
//! share one process; its CPU use is reported next to each row.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tower_fleet::stack::{ShardEntry, StackConfig};

use super::cluster::{Cluster, ClusterError};
use super::fleet::shard_id;
use super::gateway::GatewayOptions;
use super::load::{self, LoadConfig, LoadError, Pace, ShardOf};
use super::node::NodeConfig;
use super::report::{millis, LoadReport};

/// The shard counts of the run.
pub const SHARD_COUNTS: [usize; 4] = [1, 2, 4, 8];
/// Replicas per shard.
pub const REPLICAS: usize = 3;
/// How long each node takes to serve a request.
pub const NODE_SERVICE_TIME: Duration = Duration::from_millis(20);
/// How many requests each node serves at once.
pub const NODE_CONCURRENCY: usize = 4;
/// Requests the load keeps outstanding per shard.
pub const IN_FLIGHT_PER_SHARD: usize = 24;
// More requests outstanding per shard than its nodes serve at once, so
// every shard stays saturated.
const _: () = assert!(IN_FLIGHT_PER_SHARD > NODE_CONCURRENCY * REPLICAS);

/// Seconds of load per shard count.
pub const DURATION: Duration = Duration::from_secs(6);

/// The workload for `shards` shards: uniform keys, closed loop.
pub fn workload(shards: usize) -> LoadConfig {
    LoadConfig {
        reads: 0.9,
        keys: 100_000,
        zipf: 0.0,
        pace: Pace::Concurrency(IN_FLIGHT_PER_SHARD * shards),
        duration: DURATION,
        progress: false,
        ..LoadConfig::default()
    }
}

/// A running fleet for one row of the run.
pub struct Target {
    /// The gateway to load.
    pub gateway: SocketAddr,
    /// Which shard owns a key.
    pub shard_of: ShardOf,
}

/// Runs [`workload`] against a fleet of each of [`SHARD_COUNTS`], started by
/// `start(shards)` (with [`REPLICAS`] replicas of [`NODE_CONCURRENCY`] and
/// [`NODE_SERVICE_TIME`], and no cache). The guard `start` returns with the
/// target is dropped once its row is measured, to stop that fleet.
pub async fn run<F, Fut, Guard>(mut start: F) -> Result<Vec<ScaleRow>, LoadError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = (Target, Guard)>,
{
    let mut rows = Vec::new();
    for shards in SHARD_COUNTS {
        let (target, guard) = start(shards).await;
        let report = load::run(
            target.gateway,
            &workload(shards),
            target.shard_of,
            Vec::new(),
        )
        .await?;
        eprintln!(
            "{shards} shard(s): {:.0} req/s, CPU {:.2} cores",
            report.throughput(),
            report.cpu.cores_used()
        );
        drop(guard);
        rows.push(ScaleRow { shards, report });
    }
    Ok(rows)
}

/// `base` with `shards` shards of [`REPLICAS`] (placeholder addresses, one
/// per node to start), all alike, and no cache.
pub fn fleet_config(base: &StackConfig, shards: usize) -> StackConfig {
    let mut config = base.clone();
    config.cache = None;
    // Every shard alike: weight 1, addressed (not discovered).
    let template: ShardEntry =
        toml::from_str("id = \"s0\"\nreplicas = []").expect("a shard entry parses");
    config.shards = (0..shards)
        .map(|s| {
            let mut entry = template.clone();
            entry.id = shard_id(s).into();
            entry.replicas = (1..=REPLICAS).map(|r| format!("127.0.0.1:{r}")).collect();
            entry
        })
        .collect();
    config
}

/// The nodes of a row: [`NODE_CONCURRENCY`] at once, [`NODE_SERVICE_TIME`] each.
pub fn node_config() -> NodeConfig {
    NodeConfig {
        concurrency: NODE_CONCURRENCY,
        service_time: NODE_SERVICE_TIME,
    }
}

/// Starts the fleet and gateway of one row: [`fleet_config`]`(base,
/// shards)` with [`node_config`] nodes. Dropping the guard kills them.
pub async fn start_row(
    base: &StackConfig,
    shards: usize,
) -> Result<(Target, RowGuard), ClusterError> {
    let cluster = Cluster::start(
        fleet_config(base, shards),
        node_config(),
        GatewayOptions::default(),
        |_| axum::Router::new(),
    )
    .await?;
    let target = Target {
        gateway: cluster.addr(),
        shard_of: cluster.shard_of(),
    };
    Ok((target, RowGuard(cluster)))
}

/// Kills a row's fleet and gateway when dropped (inside a tokio runtime).
pub struct RowGuard(pub Cluster);

impl Drop for RowGuard {
    fn drop(&mut self) {
        let cluster = self.0.clone();
        tokio::spawn(async move { cluster.kill().await });
    }
}

/// [`run`] against the kv example's own fleet and gateway, each row's
/// started by [`start_row`] from `base`.
pub async fn run_example(base: &StackConfig) -> Result<Vec<ScaleRow>, LoadError> {
    run(|shards| {
        let base = base.clone();
        async move {
            start_row(&base, shards)
                .await
                .expect("a scale row's fleet starts on loopback")
        }
    })
    .await
}

/// One row of the scale table.
#[derive(Clone, Debug)]
pub struct ScaleRow {
    /// Shards in the fleet.
    pub shards: usize,
    /// What the load measured.
    pub report: LoadReport,
}

/// The scale table: throughput, speed-up over the first row, p99, errors and
/// CPU per shard count.
pub struct ScaleTable<'a>(pub &'a [ScaleRow]);

impl ScaleTable<'_> {
    /// Throughput of the row with `shards` shards over the first row's.
    pub fn speedup(&self, shards: usize) -> Option<f64> {
        let base = self.0.first()?.report.throughput();
        let row = self.0.iter().find(|r| r.shards == shards)?;
        (base > 0.0).then(|| row.report.throughput() / base)
    }
}

impl fmt::Display for ScaleTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| shards | throughput (req/s) | vs 1 shard | p99 | errors | CPU (cores) | CPU (share of machine) |"
        )?;
        writeln!(f, "|---:|---:|---:|---:|---:|---:|---:|")?;
        for row in self.0 {
            let r = &row.report;
            writeln!(
                f,
                "| {} | {:.0} | {:.2}x | {} | {} | {:.2} | {:.0}% |",
                row.shards,
                r.throughput(),
                self.speedup(row.shards).unwrap_or(0.0),
                millis(r.latency().p99),
                r.failed(),
                r.cpu.cores_used(),
                r.cpu.machine_share() * 100.0,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(shards: usize, requests: u64) -> ScaleRow {
        let mut report = LoadReport {
            elapsed: Duration::from_secs(2),
            ..LoadReport::empty()
        };
        report.all.reads.ok = requests;
        ScaleRow { shards, report }
    }

    #[test]
    fn speedup_is_relative_to_the_first_row() {
        let rows = [row(1, 100), row(2, 190), row(4, 360)];
        let table = ScaleTable(&rows);
        assert_eq!(table.speedup(1), Some(1.0));
        assert_eq!(table.speedup(4), Some(3.6));
        assert_eq!(table.speedup(8), None);
        assert!(table.to_string().contains("| 4 | 180 | 3.60x |"));
        assert_eq!(ScaleTable(&[row(1, 0)]).speedup(1), None);
    }

    #[test]
    fn the_workload_keeps_every_shard_saturated() {
        for shards in SHARD_COUNTS {
            let w = workload(shards);
            assert!(w.validate().is_ok());
            assert_eq!(w.zipf, 0.0);
            assert_eq!(w.pace, Pace::Concurrency(IN_FLIGHT_PER_SHARD * shards));
        }
    }
}
