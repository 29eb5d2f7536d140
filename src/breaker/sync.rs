//! The synchronization primitives of the breaker's lock-free core.
//!
//! Normally std's. Under `--cfg tower_fleet_loom` they are loom's, so that the loom model
//! (`tests/breaker_loom.rs`, run by `.ci/loom`) explores every interleaving
//! of the state word, the windows and the transition lock, and nothing else
//! of the crate is instrumented.

#[cfg(not(tower_fleet_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
#[cfg(not(tower_fleet_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(tower_fleet_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, Ordering};
#[cfg(tower_fleet_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section of the core leaves
/// its data consistent before anything in it can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
