//! Plumbing shared by the HTTP examples (`kv_cluster`, `chat`) and their tests.
//!
//! - [`server`]: serve an axum `Router` on a loopback port, stop it gracefully
//!   or kill it abruptly (as a crash would);
//! - [`shutdown`]: wait for Ctrl-C or a programmatic stop;
//! - [`wait`]: poll a condition until a generous deadline;
//! - [`http`]: the hyper client the gateways use to reach their fleet.
//!
//! Include it with `#[path = "../common/mod.rs"] mod common;`. The balancer
//! simulation (`sim.rs`) sits beside it and is included on its own by
//! `balance_sim`.

#![allow(dead_code)]

pub mod http;
pub mod server;
pub mod shutdown;
pub mod wait;
