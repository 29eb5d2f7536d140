//! Active health checks: a background worker probes every replica at an
//! interval; `unhealthy_threshold` failed probes in a row take a replica out
//! (its health-check signal says unavailable until told otherwise) and
//! `healthy_threshold` passed probes bring it back (through slow start, when
//! that is on). Probes run concurrently, each bounded by the timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

use super::config::HealthCheckConfig;
use super::core::{Core, Shared};
use super::replica::ReplicaState;
use super::slow_start;

/// A probe of one replica's service: resolves to whether it is healthy.
pub(crate) type Probe<S> =
    Arc<dyn Fn(S) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// One replica's run of probe results.
#[derive(Default)]
pub(crate) struct CheckState {
    passes: AtomicU32,
    fails: AtomicU32,
    down: AtomicBool,
}

/// Spawns the worker on `rt`; it stops when the last clone of the balancer
/// and its handles is dropped.
pub(crate) fn spawn<S>(
    rt: &tokio::runtime::Handle,
    core: &Arc<Core<S>>,
    probe: Probe<S>,
    cfg: HealthCheckConfig,
) where
    S: Clone + Send + Sync + 'static,
{
    let mut stop_rx = core.workers.stop_signal();
    let weak = Arc::downgrade(core);
    rt.spawn(async move {
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop_rx => return,
                _ = tick.tick() => {}
            }
            let Some(core) = weak.upgrade() else { return };
            let set = core.set.load_full();
            let shared = core.shared.clone();
            drop(core);
            let mut probes: FuturesUnordered<_> = set
                .slots
                .iter()
                .map(|slot| {
                    let state = slot.state.clone();
                    let probe = probe(slot.service.clone());
                    async move {
                        (
                            state,
                            matches!(tokio::time::timeout(cfg.timeout, probe).await, Ok(true)),
                        )
                    }
                })
                .collect();
            drop(set);
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    next = probes.next() => match next {
                        Some((state, healthy)) => verdict(&shared, &state, healthy, &cfg),
                        None => break,
                    },
                }
            }
        }
    });
}

fn verdict(shared: &Shared, state: &ReplicaState, healthy: bool, cfg: &HealthCheckConfig) {
    if state.removed.load(Ordering::Relaxed) {
        return;
    }
    let c = &state.check;
    if healthy {
        c.fails.store(0, Ordering::Relaxed);
        let passes = c.passes.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if passes >= cfg.healthy_threshold && c.down.swap(false, Ordering::Relaxed) {
            state.checked.set_available();
            slow_start::start(
                shared.settings.slow_start.as_ref(),
                state,
                shared.clock.ticks(),
            );
            tracing::info!(replica = %state.id, passes, "replica passed its health checks: back in the set");
            let _judge = shared.judge();
            shared.census();
            drop(_judge);
            shared.notify();
        }
    } else {
        c.passes.store(0, Ordering::Relaxed);
        let fails = c.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if fails >= cfg.unhealthy_threshold && !c.down.swap(true, Ordering::Relaxed) {
            state.checked.set_unavailable();
            tracing::warn!(replica = %state.id, fails, "replica failed its health checks: taken out of the set");
            let _judge = shared.judge();
            shared.census();
        }
    }
}
