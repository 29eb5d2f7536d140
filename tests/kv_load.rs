//! The kv example under load: the load generator's maths and the summary.
#![cfg(all(feature = "http", feature = "metrics"))]
#![allow(dead_code)]

#[path = "../examples/kv_cluster/load.rs"]
mod load;
#[path = "../examples/kv_cluster/summary.rs"]
mod summary;
#[path = "../examples/kv_cluster/zipf.rs"]
mod zipf;
