//! The summary table printed after a load run: what the clients saw (from
//! the [`LoadReport`]) next to what each layer of the gateway's stack did
//! (the difference of its counters before and after the run).

use std::collections::BTreeMap;
use std::fmt;

use tower_fleet::breaker::BreakerState;
use tower_fleet::stack::StackSnapshot;

use super::report::{millis, LoadReport};

/// One replica's counters, from its balancer and its breaker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaCounters {
    /// Requests its balancer sent it.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// Times outlier detection ejected it.
    pub ejections: u64,
    /// Times its breaker opened.
    pub breaker_opens: u64,
    /// Its breaker's state (at the later snapshot, for a difference).
    pub breaker: Option<BreakerState>,
}

/// The counters of every layer that the summary shows. Build two with
/// [`LayerCounters::from_snapshot`] and take [`LayerCounters::since`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerCounters {
    /// Cache: requests answered from the cache (fresh, stale or negative).
    pub cache_hits: u64,
    /// Cache: requests that found nothing to serve.
    pub cache_misses: u64,
    /// Retry: retries sent.
    pub retries: u64,
    /// Retry: retries the budget refused.
    pub budget_exhausted: u64,
    /// Quorum: fan-outs that did not reach their quorum.
    pub quorum_failures: u64,
    /// Quorum: fan-outs made.
    pub quorum_calls: u64,
    /// Per replica, by `(shard, replica address)`.
    pub replicas: BTreeMap<(String, String), ReplicaCounters>,
}

impl LayerCounters {
    /// Reads the counters out of a stack snapshot.
    pub fn from_snapshot(s: &StackSnapshot) -> LayerCounters {
        let mut c = LayerCounters::default();
        if let Some(cache) = &s.cache {
            c.cache_hits = cache.hits + cache.stale_hits + cache.negative_hits;
            c.cache_misses = cache.misses;
        }
        if let Some(retry) = &s.retry {
            c.retries = retry.retries;
            c.budget_exhausted = retry.budget_exhausted;
        }
        for (shard, b) in &s.balances {
            c.quorum_calls += b.quorum.calls;
            c.quorum_failures += b.quorum.failed;
            for r in &b.replicas {
                let e = c.replica(shard.as_str(), r.id.as_str());
                e.requests = r.requests;
                e.failures = r.failures;
                e.ejections = r.ejections;
            }
        }
        for (shard, replica, b) in &s.breakers {
            let e = c.replica(shard.as_str(), replica);
            e.breaker_opens = b.trips;
            e.breaker = Some(b.state);
        }
        c
    }

    fn replica(&mut self, shard: &str, replica: &str) -> &mut ReplicaCounters {
        self.replicas
            .entry((shard.to_string(), replica.to_string()))
            .or_default()
    }

    /// What happened between `before` and `self`: counters subtracted,
    /// states taken from `self`. A replica unknown to `before` counts from 0.
    pub fn since(&self, before: &LayerCounters) -> LayerCounters {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let replicas = self
            .replicas
            .iter()
            .map(|(id, now)| {
                let was = before.replicas.get(id).cloned().unwrap_or_default();
                let delta = ReplicaCounters {
                    requests: d(now.requests, was.requests),
                    failures: d(now.failures, was.failures),
                    ejections: d(now.ejections, was.ejections),
                    breaker_opens: d(now.breaker_opens, was.breaker_opens),
                    breaker: now.breaker,
                };
                (id.clone(), delta)
            })
            .collect();
        LayerCounters {
            cache_hits: d(self.cache_hits, before.cache_hits),
            cache_misses: d(self.cache_misses, before.cache_misses),
            retries: d(self.retries, before.retries),
            budget_exhausted: d(self.budget_exhausted, before.budget_exhausted),
            quorum_failures: d(self.quorum_failures, before.quorum_failures),
            quorum_calls: d(self.quorum_calls, before.quorum_calls),
            replicas,
        }
    }

    /// Hits over hits plus misses; `None` without lookups.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let lookups = self.cache_hits + self.cache_misses;
        (lookups > 0).then(|| self.cache_hits as f64 / lookups as f64)
    }

    /// Breaker openings over all replicas.
    pub fn breaker_opens(&self) -> u64 {
        self.replicas.values().map(|r| r.breaker_opens).sum()
    }

    /// Ejections over all replicas.
    pub fn ejections(&self) -> u64 {
        self.replicas.values().map(|r| r.ejections).sum()
    }
}

/// The summary table: a [`LoadReport`] plus the layers' counters over the
/// run. `names` maps a replica address to the node's name for display
/// (an address missing from it is shown as is).
pub struct Summary<'a> {
    /// What the clients saw.
    pub report: &'a LoadReport,
    /// What the layers did (a difference, see [`LayerCounters::since`]).
    pub layers: &'a LayerCounters,
    /// Replica address -> node name.
    pub names: &'a BTreeMap<String, String>,
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, l) = (self.report, self.layers);
        let lat = r.latency();
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "  {name:<18} {value}")
        };
        row(
            f,
            "throughput",
            format!(
                "{:.0} req/s ({} requests in {:.1}s)",
                r.throughput(),
                r.requests(),
                r.elapsed.as_secs_f64()
            ),
        )?;
        row(
            f,
            "latency",
            format!(
                "p50 {}  p99 {}  p99.9 {}  max {}",
                millis(lat.p50),
                millis(lat.p99),
                millis(lat.p999),
                millis(lat.max)
            ),
        )?;
        let causes: Vec<String> = r.causes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        row(
            f,
            "errors",
            format!(
                "{} of {} reads, {} of {} writes{}{}",
                r.all.reads.failed,
                r.all.reads.total(),
                r.all.writes.failed,
                r.all.writes.total(),
                if causes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", causes.join(", "))
                },
                if r.not_sent > 0 {
                    format!("; {} not sent (too many in flight)", r.not_sent)
                } else {
                    String::new()
                }
            ),
        )?;
        row(
            f,
            "cache hit ratio",
            match l.cache_hit_ratio() {
                Some(h) => format!(
                    "{} ({} hits, {} misses)",
                    percent(h),
                    l.cache_hits,
                    l.cache_misses
                ),
                None => "no cache lookups".to_string(),
            },
        )?;
        row(f, "retries", format!("{} sent", l.retries))?;
        row(
            f,
            "budget exhausted",
            format!("{} retries refused by the retry budget", l.budget_exhausted),
        )?;
        row(
            f,
            "breaker opens",
            self.list(l.breaker_opens(), |c| c.breaker_opens),
        )?;
        row(f, "ejections", self.list(l.ejections(), |c| c.ejections))?;
        row(
            f,
            "quorum failures",
            format!("{} of {} fan-outs", l.quorum_failures, l.quorum_calls),
        )?;
        row(f, "cpu", r.cpu.to_string())?;
        writeln!(
            f,
            "  per shard (reads ok/failed, writes ok/failed; requests per replica):"
        )?;
        let mut shards: BTreeMap<&str, Vec<(&str, &ReplicaCounters)>> = BTreeMap::new();
        for ((shard, replica), c) in &l.replicas {
            shards.entry(shard).or_default().push((replica, c));
        }
        for shard in r.shards.keys() {
            shards.entry(shard).or_default();
        }
        for (shard, replicas) in shards {
            let s = r.shard(shard);
            let mut line = format!(
                "    {shard:<4} reads {}/{}  writes {}/{} |",
                s.reads.ok, s.reads.failed, s.writes.ok, s.writes.failed
            );
            let mut replicas: Vec<(String, &ReplicaCounters)> = replicas
                .into_iter()
                .map(|(a, c)| (self.name(a), c))
                .collect();
            replicas.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, c) in replicas {
                line.push_str(&format!(" {name} {}", c.requests));
                if let Some(state) = c.breaker.filter(|s| *s != BreakerState::Closed) {
                    line.push_str(&format!(" ({state:?})").to_lowercase());
                }
            }
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl Summary<'_> {
    fn name(&self, address: &str) -> String {
        self.names
            .get(address)
            .cloned()
            .unwrap_or_else(|| address.to_string())
    }

    /// `total (name n, name n)` over the replicas where `pick` is non-zero.
    fn list(&self, total: u64, pick: impl Fn(&ReplicaCounters) -> u64) -> String {
        let mut which: Vec<String> = self
            .layers
            .replicas
            .iter()
            .filter(|(_, c)| pick(c) > 0)
            .map(|((_, a), c)| format!("{} {}", self.name(a), pick(c)))
            .collect();
        which.sort();
        if which.is_empty() {
            total.to_string()
        } else {
            format!("{total} ({})", which.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(requests: u64, opens: u64, state: BreakerState) -> ReplicaCounters {
        ReplicaCounters {
            requests,
            failures: 0,
            ejections: opens,
            breaker_opens: opens,
            breaker: Some(state),
        }
    }

    fn id(s: &str, r: &str) -> (String, String) {
        (s.to_string(), r.to_string())
    }

    #[test]
    fn the_difference_subtracts_counters_and_keeps_the_later_state() {
        let before = LayerCounters {
            cache_hits: 10,
            cache_misses: 5,
            retries: 2,
            replicas: [(id("s0", "a"), replica(100, 0, BreakerState::Closed))].into(),
            ..LayerCounters::default()
        };
        let after = LayerCounters {
            cache_hits: 40,
            cache_misses: 15,
            retries: 9,
            replicas: [
                (id("s0", "a"), replica(160, 1, BreakerState::Open)),
                (id("s0", "b"), replica(30, 0, BreakerState::Closed)),
            ]
            .into(),
            ..LayerCounters::default()
        };
        let d = after.since(&before);
        assert_eq!((d.cache_hits, d.cache_misses, d.retries), (30, 10, 7));
        assert_eq!(
            d.replicas[&id("s0", "a")],
            replica(60, 1, BreakerState::Open)
        );
        // A replica added during the run counts from zero.
        assert_eq!(d.replicas[&id("s0", "b")].requests, 30);
        assert_eq!((d.breaker_opens(), d.ejections()), (1, 1));
        // Counters never go below zero, even if a replica was replaced.
        assert_eq!(before.since(&after).cache_hits, 0);
    }

    #[test]
    fn hit_ratio_is_hits_over_lookups() {
        let c = LayerCounters {
            cache_hits: 3,
            cache_misses: 1,
            ..LayerCounters::default()
        };
        assert_eq!(c.cache_hit_ratio(), Some(0.75));
        assert_eq!(LayerCounters::default().cache_hit_ratio(), None);
    }
    #[test]
    fn the_table_names_nodes_and_shows_each_layer() {
        let mut report = LoadReport {
            elapsed: std::time::Duration::from_secs(2),
            causes: [("503".to_string(), 1)].into(),
            ..LoadReport::empty()
        };
        for us in [1_000, 2_000, 3_000, 40_000] {
            report.histogram.record(us).unwrap();
        }
        report.all.reads.ok = 3;
        report.all.writes.failed = 1;
        report.shards.insert("s1".into(), report.all);
        let layers = LayerCounters {
            cache_hits: 3,
            cache_misses: 1,
            retries: 2,
            budget_exhausted: 1,
            quorum_failures: 1,
            quorum_calls: 4,
            replicas: [
                (id("s1", "127.0.0.1:1"), replica(5, 1, BreakerState::Open)),
                (id("s1", "127.0.0.1:2"), replica(9, 0, BreakerState::Closed)),
            ]
            .into(),
        };
        let names = [("127.0.0.1:1".to_string(), "s1r0".to_string())].into();
        let table = Summary {
            report: &report,
            layers: &layers,
            names: &names,
        }
        .to_string();
        for expected in [
            "throughput         2 req/s (4 requests in 2.0s)",
            "errors             0 of 3 reads, 1 of 1 writes (503: 1)",
            "cache hit ratio    75.0% (3 hits, 1 misses)",
            "retries            2 sent",
            "budget exhausted   1 retries refused",
            "breaker opens      1 (s1r0 1)",
            "ejections          1 (s1r0 1)",
            "quorum failures    1 of 4 fan-outs",
            "s1   reads 3/0  writes 0/1 | 127.0.0.1:2 9 s1r0 5 (open)",
        ] {
            assert!(table.contains(expected), "no {expected:?} in\n{table}");
        }
    }
}
