//! `kv/scale/*`: the kv load generator's closed-loop workload against 1, 2,
//! 4 and 8 shards of 3 replicas behind a gateway built by the `stack`
//! builder, printing throughput and the process's CPU per shard count
//! (BENCHMARKS.md, "kv scale"). Nodes are capacity-bounded by service time
//! and concurrency (see examples/kv_cluster/scale.rs); the cache is off and
//! keys are uniform.
//!
//! `cargo bench --features http,metrics --bench kv_scale`
#![allow(dead_code)]
// Under `cfg(test)` (clippy --all-targets) the example modules' unit tests
// lose their #[test] functions in this harness-less bench, not their imports.
#![cfg_attr(test, allow(unused_imports))]

#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/kv_cluster/faults.rs"]
mod faults;
#[path = "../examples/kv_cluster/flags.rs"]
mod flags;
#[path = "../examples/kv_cluster/load.rs"]
mod load;
#[path = "../examples/kv_cluster/prometheus.rs"]
mod prometheus;
#[path = "../examples/kv_cluster/report.rs"]
mod report;
#[path = "../examples/kv_cluster/scale.rs"]
mod scale;
#[path = "../examples/kv_cluster/workload.rs"]
mod workload;
#[path = "../examples/kv_cluster/zipf.rs"]
mod zipf;

#[path = "../tests/kv_load_fleet/mod.rs"]
mod kv_load_fleet;

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; anything else (a test harness probe) runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows = scale::run(|shards| async move {
        let fleet = kv_load_fleet::start(kv_load_fleet::Shape {
            shards,
            replicas: scale::REPLICAS,
            service_time: scale::NODE_SERVICE_TIME,
            concurrency: scale::NODE_CONCURRENCY,
            cache: false,
        })
        .await;
        let target = scale::Target {
            gateway: fleet.gateway,
            shard_of: fleet.shard_of.clone(),
        };
        (target, fleet)
    })
    .await
    .expect("the scale workload is valid");
    println!("{}", scale::ScaleTable(&rows));
}
