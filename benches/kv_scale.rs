//! `kv/scale/*`: the kv load generator's closed-loop workload against 1, 2,
//! 4 and 8 shards of 3 replicas behind the kv example's gateway (quorum
//! W = 2, R = 2, as `cargo run --example kv_cluster -- --scale` runs it),
//! printing throughput and the process's CPU per shard count (BENCHMARKS.md,
//! "kv scale"). Nodes are capacity-bounded by service time
//! and concurrency (see examples/kv_cluster/scale.rs); the cache is off and
//! keys are uniform.
//!
//! `cargo bench --features http,metrics --bench kv_scale`
#![allow(dead_code)]
// Under `cfg(test)` (clippy --all-targets) the example modules' unit tests
// lose their #[test] functions in this harness-less bench, not their imports.
#![cfg_attr(test, allow(unused_imports))]

#[path = "../examples/kv_cluster/cluster.rs"]
mod cluster;
#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/kv_cluster/faults.rs"]
mod faults;
#[path = "../examples/kv_cluster/flags.rs"]
mod flags;
#[path = "../examples/kv_cluster/fleet.rs"]
mod fleet;
#[path = "../examples/kv_cluster/gateway.rs"]
mod gateway;
#[path = "../examples/kv_cluster/hlc.rs"]
mod hlc;
#[path = "../examples/kv_cluster/load.rs"]
mod load;
#[path = "../examples/kv_cluster/node.rs"]
mod node;
#[path = "../examples/kv_cluster/report.rs"]
mod report;
#[path = "../examples/kv_cluster/scale.rs"]
mod scale;
#[path = "../examples/kv_cluster/workload.rs"]
mod workload;
#[path = "../examples/kv_cluster/zipf.rs"]
mod zipf;

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; anything else (a test harness probe) runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let base = cluster::default_config();
    let rows = scale::run(|shards| {
        let base = base.clone();
        async move {
            scale::start_row(&base, shards)
                .await
                .expect("a scale row's fleet starts on loopback")
        }
    })
    .await
    .expect("the scale workload is valid");
    println!("{}", scale::ScaleTable(&rows));
}
