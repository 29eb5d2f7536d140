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

#[path = "../tests/kv_example/mod.rs"]
mod kv_example;
use kv_example::{cluster, scale};

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; anything else (a test harness probe) runs nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows = scale::run_example(&cluster::default_config())
        .await
        .expect("the scale workload is valid");
    println!("{}", scale::ScaleTable(&rows));
}
