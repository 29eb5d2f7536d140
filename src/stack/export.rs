//! Publishing a stack's counters through the `metrics` facade (feature
//! `metrics`), so any exporter (Prometheus, StatsD, ...) serves them.

use metrics::{counter, gauge};

use super::handle::{StackHandle, StackSnapshot};
use crate::breaker::BreakerState;

/// The number a breaker's state is published as, in `tower_fleet_breaker_state`.
pub fn breaker_state_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::Open => 1.0,
        BreakerState::HalfOpen => 2.0,
        BreakerState::ForcedOpen => 3.0,
        BreakerState::Disabled => 4.0,
        BreakerState::MetricsOnly => 5.0,
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl StackSnapshot {
    /// Publishes every counter of this snapshot through the `metrics`
    /// facade: counters as `*_total` (set to their absolute value), levels as
    /// gauges, with `shard` and `replica` labels. Call it before each scrape
    /// (or on an interval); it allocates label strings, so keep it off the
    /// request path.
    ///
    /// | metric | labels | what |
    /// |---|---|---|
    /// | `tower_fleet_cache_{hits,stale_hits,negative_hits,stale_if_error,misses,coalesced,loads,load_errors,refreshes,invalidations,evictions,passed_through,deadline_exceeded}_total` | | the cache's counters |
    /// | `tower_fleet_cache_entries` | | entries stored (gauge) |
    /// | `tower_fleet_retry_{requests,retries,budget_exhausted,not_cloneable,hedges_sent,hedges_won,attempt_timeouts,deadline_exceeded}_total` | | the retry layer's counters |
    /// | `tower_fleet_shard_{requests,unavailable,not_ready_timeouts,deadline_exceeded,failovers_away}_total` | shard | per shard |
    /// | `tower_fleet_shard_{no_key,no_shards,failovers}_total` | | the shard layer's |
    /// | `tower_fleet_balance_{requests,successes,failures,ejections}_total` | shard, replica | per replica |
    /// | `tower_fleet_balance_{in_flight,ejected,available}` | shard, replica | per replica (gauges; 0 or 1 for the flags) |
    /// | `tower_fleet_balance_latency_ewma_seconds` | shard, replica | the peak-EWMA estimate (gauge) |
    /// | `tower_fleet_balance_{no_replicas,unavailable,deadline_exceeded,panics}_total` | shard | per balancer |
    /// | `tower_fleet_quorum_{calls,met,failed,deadline_exceeded,failovers,stragglers}_total` | shard | quorum calls per balancer |
    /// | `tower_fleet_breaker_{calls,failures,slow_calls,rejected,trips,transitions}_total` | shard, replica | per replica's breaker |
    /// | `tower_fleet_breaker_state` | shard, replica | 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled, 5 metrics-only |
    /// | `tower_fleet_dns_{resolutions,failures,inserted,removed}_total` | shard | each DNS-discovered shard's discovery (feature `dns`) |
    /// | `tower_fleet_dns_{addresses,consecutive_failures}` | shard | the addresses it holds, failed resolutions in a row (gauges) |
    pub fn publish(&self) {
        if let Some(c) = &self.cache {
            for (name, v) in [
                ("tower_fleet_cache_hits_total", c.hits),
                ("tower_fleet_cache_stale_hits_total", c.stale_hits),
                ("tower_fleet_cache_negative_hits_total", c.negative_hits),
                ("tower_fleet_cache_stale_if_error_total", c.stale_if_error),
                ("tower_fleet_cache_misses_total", c.misses),
                ("tower_fleet_cache_coalesced_total", c.coalesced),
                ("tower_fleet_cache_loads_total", c.loads),
                ("tower_fleet_cache_load_errors_total", c.load_errors),
                ("tower_fleet_cache_refreshes_total", c.refreshes),
                ("tower_fleet_cache_invalidations_total", c.invalidations),
                ("tower_fleet_cache_evictions_total", c.evictions),
                ("tower_fleet_cache_passed_through_total", c.passed_through),
                (
                    "tower_fleet_cache_deadline_exceeded_total",
                    c.deadline_exceeded,
                ),
            ] {
                counter!(name).absolute(v);
            }
            gauge!("tower_fleet_cache_entries").set(c.entries as f64);
        }
        if let Some(r) = &self.retry {
            for (name, v) in [
                ("tower_fleet_retry_requests_total", r.requests),
                ("tower_fleet_retry_retries_total", r.retries),
                (
                    "tower_fleet_retry_budget_exhausted_total",
                    r.budget_exhausted,
                ),
                ("tower_fleet_retry_not_cloneable_total", r.not_cloneable),
                ("tower_fleet_retry_hedges_sent_total", r.hedges_sent),
                ("tower_fleet_retry_hedges_won_total", r.hedges_won),
                (
                    "tower_fleet_retry_attempt_timeouts_total",
                    r.attempt_timeouts,
                ),
                (
                    "tower_fleet_retry_deadline_exceeded_total",
                    r.deadline_exceeded,
                ),
            ] {
                counter!(name).absolute(v);
            }
        }
        let s = &self.shard;
        counter!("tower_fleet_shard_no_key_total").absolute(s.no_key);
        counter!("tower_fleet_shard_no_shards_total").absolute(s.no_shards);
        counter!("tower_fleet_shard_failovers_total").absolute(s.failovers);
        for shard in &s.shards {
            let label = shard.id.to_string();
            for (name, v) in [
                ("tower_fleet_shard_requests_total", shard.requests),
                ("tower_fleet_shard_unavailable_total", shard.unavailable),
                (
                    "tower_fleet_shard_not_ready_timeouts_total",
                    shard.not_ready_timeouts,
                ),
                (
                    "tower_fleet_shard_deadline_exceeded_total",
                    shard.deadline_exceeded,
                ),
                (
                    "tower_fleet_shard_failovers_away_total",
                    shard.failovers_away,
                ),
            ] {
                counter!(name, "shard" => label.clone()).absolute(v);
            }
        }
        for (shard, b) in &self.balances {
            let label = shard.to_string();
            for (name, v) in [
                ("tower_fleet_balance_no_replicas_total", b.no_replicas),
                ("tower_fleet_balance_unavailable_total", b.unavailable),
                (
                    "tower_fleet_balance_deadline_exceeded_total",
                    b.deadline_exceeded,
                ),
                ("tower_fleet_balance_panics_total", b.panics),
                ("tower_fleet_quorum_calls_total", b.quorum.calls),
                ("tower_fleet_quorum_met_total", b.quorum.met),
                ("tower_fleet_quorum_failed_total", b.quorum.failed),
                (
                    "tower_fleet_quorum_deadline_exceeded_total",
                    b.quorum.deadline_exceeded,
                ),
                ("tower_fleet_quorum_failovers_total", b.quorum.failovers),
                ("tower_fleet_quorum_stragglers_total", b.quorum.stragglers),
            ] {
                counter!(name, "shard" => label.clone()).absolute(v);
            }
            for r in &b.replicas {
                let labels = [("shard", label.clone()), ("replica", r.id.to_string())];
                for (name, v) in [
                    ("tower_fleet_balance_requests_total", r.requests),
                    ("tower_fleet_balance_successes_total", r.successes),
                    ("tower_fleet_balance_failures_total", r.failures),
                    ("tower_fleet_balance_ejections_total", r.ejections),
                ] {
                    counter!(name, &labels).absolute(v);
                }
                gauge!("tower_fleet_balance_in_flight", &labels).set(r.in_flight as f64);
                gauge!("tower_fleet_balance_ejected", &labels).set(flag(r.ejected_until.is_some()));
                gauge!("tower_fleet_balance_available", &labels).set(flag(r.available));
                if let Some(ewma) = r.ewma {
                    gauge!("tower_fleet_balance_latency_ewma_seconds", &labels)
                        .set(ewma.as_secs_f64());
                }
            }
        }
        for (shard, replica, b) in &self.breakers {
            let labels = [("shard", shard.to_string()), ("replica", replica.clone())];
            for (name, v) in [
                ("tower_fleet_breaker_calls_total", b.calls),
                ("tower_fleet_breaker_failures_total", b.failures),
                ("tower_fleet_breaker_slow_calls_total", b.slow_calls),
                ("tower_fleet_breaker_rejected_total", b.rejected),
                ("tower_fleet_breaker_trips_total", b.trips),
                ("tower_fleet_breaker_transitions_total", b.transitions),
            ] {
                counter!(name, &labels).absolute(v);
            }
            gauge!("tower_fleet_breaker_state", &labels).set(breaker_state_value(b.state));
        }
        #[cfg(feature = "dns")]
        for (shard, d) in &self.dns {
            let labels = [("shard", shard.to_string())];
            for (name, v) in [
                ("tower_fleet_dns_resolutions_total", d.resolutions),
                ("tower_fleet_dns_failures_total", d.failures),
                ("tower_fleet_dns_inserted_total", d.inserted),
                ("tower_fleet_dns_removed_total", d.removed),
            ] {
                counter!(name, &labels).absolute(v);
            }
            gauge!("tower_fleet_dns_addresses", &labels).set(d.addresses.len() as f64);
            gauge!("tower_fleet_dns_consecutive_failures", &labels)
                .set(d.consecutive_failures as f64);
        }
    }
}

impl<Mem, T: Clone + Send + Sync + 'static, G> StackHandle<Mem, T, G> {
    /// Publishes every layer's counters through the `metrics` facade (see
    /// [`StackSnapshot::publish`] for the names).
    pub fn publish_metrics(&self) {
        self.snapshot().publish();
    }
}
