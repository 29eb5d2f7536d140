//! The kv example's modules (`examples/kv_cluster/`) and the examples'
//! shared plumbing, for the tests and the bench that drive the example:
//! `mod kv_example;` (or `#[path = "../tests/kv_example/mod.rs"]` from
//! `benches/`), then `use kv_example::{cluster, gateway, ...}`.
//!
//! Each user needs a different part, hence `dead_code` allowed.
#![allow(dead_code)]

#[path = "../../examples/kv_cluster/cluster.rs"]
pub mod cluster;
#[path = "../../examples/common/mod.rs"]
pub mod common;
#[path = "../../examples/kv_cluster/faults.rs"]
pub mod faults;
#[path = "../../examples/kv_cluster/flags.rs"]
pub mod flags;
#[path = "../../examples/kv_cluster/fleet.rs"]
pub mod fleet;
#[path = "../../examples/kv_cluster/gateway.rs"]
pub mod gateway;
#[path = "../../examples/kv_cluster/hlc.rs"]
pub mod hlc;
#[path = "../../examples/kv_cluster/load.rs"]
pub mod load;
#[path = "../../examples/kv_cluster/node.rs"]
pub mod node;
#[path = "../../examples/kv_cluster/prometheus.rs"]
pub mod prometheus;
#[path = "../../examples/kv_cluster/report.rs"]
pub mod report;
#[path = "../../examples/kv_cluster/scale.rs"]
pub mod scale;
#[path = "../../examples/kv_cluster/stack.rs"]
pub mod stack;
#[path = "../../examples/kv_cluster/summary.rs"]
pub mod summary;
#[path = "../../examples/kv_cluster/workload.rs"]
pub mod workload;
#[path = "../../examples/kv_cluster/zipf.rs"]
pub mod zipf;
