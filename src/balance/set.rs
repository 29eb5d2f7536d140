//! The replica set as requests see it: an immutable snapshot, rebuilt on
//! every membership change and swapped in whole, and the pick over it.
//!
//! A pick draws candidates the way the strategy says, keeps those whose
//! health signals say available (and, for a retried request, those it has
//! not tried), and falls back to a scan of the whole set only when the draws
//! found nothing. With every replica healthy the pick reads no lock, and the
//! clock only for peak-EWMA or a ramping replica.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use super::core::{Kind, Members, Shared};
use super::random::{self, Alias};
use super::replica::ReplicaState;
use super::{least_request, round_robin};
use crate::clock::{Clock, Ticks};
use crate::signal::{EndpointId, Health, HealthSignal};

/// Random draws before the pick falls back to a scan.
const DRAWS: usize = 3;

pub(crate) struct Slot<S> {
    pub(crate) service: S,
    pub(crate) source: Option<HealthSignal>,
    pub(crate) state: Arc<ReplicaState>,
}

pub(crate) struct ReplicaSet<S> {
    pub(crate) slots: Box<[Slot<S>]>,
    /// Round robin with unequal weights: the cycle of indices.
    schedule: Option<Box<[u32]>>,
    /// Random with unequal weights: the alias table.
    alias: Option<Alias>,
}

impl<S> ReplicaSet<S> {
    pub(crate) fn empty() -> ReplicaSet<S> {
        ReplicaSet {
            slots: Box::new([]),
            schedule: None,
            alias: None,
        }
    }
}

impl<S: Clone> ReplicaSet<S> {
    pub(crate) fn build(members: &Members<S>, kind: Kind) -> ReplicaSet<S> {
        let slots: Box<[Slot<S>]> = members
            .values()
            .map(|e| Slot {
                service: e.service.clone(),
                source: e.source.clone(),
                state: e.state.clone(),
            })
            .collect();
        let weights: Vec<u32> = members.values().map(|e| e.spec.weight).collect();
        ReplicaSet {
            schedule: (kind == Kind::RoundRobin)
                .then(|| round_robin::schedule(&weights))
                .flatten(),
            alias: (kind == Kind::Random)
                .then(|| Alias::new(&weights))
                .flatten(),
            slots,
        }
    }
}

/// The clock, read at most once per pick.
pub(crate) struct Now<'c> {
    clock: &'c Clock,
    pub(crate) at: Option<Ticks>,
}

impl<'c> Now<'c> {
    pub(crate) fn new(clock: &'c Clock) -> Now<'c> {
        Now { clock, at: None }
    }

    #[inline]
    pub(crate) fn get(&mut self) -> Ticks {
        *self.at.get_or_insert_with(|| self.clock.ticks())
    }
}

/// Replicas a pick must not choose (`hard`: this request holds or broke
/// them) and would rather not (`soft`: earlier attempts used them).
#[derive(Default)]
pub(crate) struct Avoid<'a> {
    pub(crate) hard: &'a [EndpointId],
    pub(crate) soft: &'a [EndpointId],
}

pub(crate) enum Choice {
    Slot(usize),
    /// Nothing available; the earliest instant something may be, if known.
    None(Option<Instant>),
    Empty,
}

struct Picker<'a, S> {
    set: &'a ReplicaSet<S>,
    shared: &'a Shared,
    avoid: &'a Avoid<'a>,
    panic: bool,
}

impl<S> ReplicaSet<S> {
    pub(crate) fn choose(
        &self,
        shared: &Shared,
        cursor: &AtomicUsize,
        avoid: &Avoid<'_>,
        now: &mut Now<'_>,
    ) -> Choice {
        if self.slots.is_empty() {
            return Choice::Empty;
        }
        let p = Picker {
            set: self,
            shared,
            avoid,
            panic: shared.panic(),
        };
        let found = match shared.settings.kind {
            Kind::PeakEwma | Kind::LeastRequest => p.p2c(now),
            Kind::RoundRobin => p.round_robin(cursor, now),
            Kind::Random => p.random(now),
        };
        match found {
            Some(i) => {
                shared.mark_up();
                Choice::Slot(i)
            }
            None => p.scan(now),
        }
    }

    /// For a fan-out: up to `max` available replicas not in `avoid`, best
    /// first by the strategy's cost (lowest load first; in turn for round
    /// robin, from a random start for random), as (cost, slot index) in
    /// `out`, which must come empty. With none available, when one may be,
    /// if known. Scans the whole set.
    pub(crate) fn best(
        &self,
        shared: &Shared,
        cursor: &AtomicUsize,
        avoid: &[EndpointId],
        max: usize,
        now: &mut Now<'_>,
        out: &mut Vec<(f64, usize)>,
    ) -> Option<Instant> {
        let n = self.slots.len();
        if n == 0 || max == 0 {
            return None;
        }
        let avoid = Avoid {
            hard: avoid,
            soft: &[],
        };
        let p = Picker {
            set: self,
            shared,
            avoid: &avoid,
            panic: shared.panic(),
        };
        let start = match shared.settings.kind {
            Kind::RoundRobin => cursor.fetch_add(1, Ordering::Relaxed) % n,
            _ => random::below(n),
        };
        let clock = &shared.clock;
        let mut any_available = false;
        let mut earliest: Option<Instant> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let slot = &self.slots[i];
            let st = &slot.state;
            if st.usable(slot.source.as_ref(), clock, p.panic) {
                any_available = true;
                if !avoid.hard.contains(&st.endpoint) {
                    out.push((p.cost(i, now), i));
                }
            } else if let Health::Unavailable { until: Some(t) } =
                st.health(slot.source.as_ref(), clock, p.panic)
            {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        // Stable: equal costs keep the order of the walk from `start`.
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.truncate(max);
        if any_available {
            shared.mark_up();
        } else {
            shared.mark_down(earliest);
        }
        earliest
    }
}

impl<S> Picker<'_, S> {
    /// Whether slot `i` may take the request; `thin` applies slow start.
    #[inline]
    fn ok(&self, i: usize, now: &mut Now<'_>, thin: bool) -> bool {
        let slot = &self.set.slots[i];
        let st = &slot.state;
        if !st.usable(slot.source.as_ref(), &self.shared.clock, self.panic)
            || self.avoid.hard.contains(&st.endpoint)
            || self.avoid.soft.contains(&st.endpoint)
        {
            return false;
        }
        if thin {
            if let Some(slow) = &self.shared.settings.slow_start {
                if st.ramp_from.load(Ordering::Relaxed) != 0 {
                    let f = slow.factor_of(st, now.get());
                    return f >= 1.0 || random::chance(f);
                }
            }
        }
        true
    }

    #[inline]
    fn cost(&self, i: usize, now: &mut Now<'_>) -> f64 {
        let st = &self.set.slots[i].state;
        match self.shared.settings.kind {
            Kind::PeakEwma => {
                let est = st.ewma.estimate(now.get(), self.shared.settings.tau_ns);
                est * (st.in_flight() + 1) as f64 / f64::from(st.weight())
            }
            Kind::LeastRequest => least_request::cost(st),
            Kind::RoundRobin | Kind::Random => 0.0,
        }
    }

    fn p2c(&self, now: &mut Now<'_>) -> Option<usize> {
        let n = self.set.slots.len();
        if n == 1 {
            return self.ok(0, now, false).then_some(0);
        }
        for _ in 0..DRAWS {
            let (a, b) = random::pair(n);
            match (self.ok(a, now, true), self.ok(b, now, true)) {
                (true, true) => {
                    return Some(if self.cost(b, now) < self.cost(a, now) {
                        b
                    } else {
                        a
                    })
                }
                (true, false) => return Some(a),
                (false, true) => return Some(b),
                (false, false) => {}
            }
        }
        None
    }

    fn round_robin(&self, cursor: &AtomicUsize, now: &mut Now<'_>) -> Option<usize> {
        let n = self.set.slots.len();
        for _ in 0..n.min(2 * DRAWS) {
            let pos = cursor.fetch_add(1, Ordering::Relaxed);
            let i = round_robin::at(self.set.schedule.as_deref(), n, pos);
            if self.ok(i, now, true) {
                return Some(i);
            }
        }
        None
    }

    fn random(&self, now: &mut Now<'_>) -> Option<usize> {
        let n = self.set.slots.len();
        (0..DRAWS)
            .map(|_| random::draw(self.set.alias.as_ref(), n))
            .find(|&i| self.ok(i, now, true))
    }

    /// Looks at every replica: the best available one (lowest cost for the
    /// P2C strategies, the first from a random start otherwise), preferring
    /// replicas not tried by earlier attempts; or, with none, when one may be.
    #[cold]
    fn scan(&self, now: &mut Now<'_>) -> Choice {
        let n = self.set.slots.len();
        let start = random::below(n);
        let clock = &self.shared.clock;
        let mut best: Option<(usize, f64)> = None;
        let mut tried_best: Option<(usize, f64)> = None;
        let mut any_available = false;
        let mut earliest: Option<Instant> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let slot = &self.set.slots[i];
            let st = &slot.state;
            match st.health(slot.source.as_ref(), clock, self.panic) {
                Health::Available => {
                    any_available = true;
                    if self.avoid.hard.contains(&st.endpoint) {
                        continue;
                    }
                    let c = self.cost(i, now);
                    let target = if self.avoid.soft.contains(&st.endpoint) {
                        &mut tried_best
                    } else {
                        &mut best
                    };
                    if target.is_none_or(|(_, bc)| c < bc) {
                        *target = Some((i, c));
                    }
                }
                Health::Unavailable { until: Some(t) } => {
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
                Health::Unavailable { until: None } => {}
            }
        }
        if let Some((i, _)) = best.or(tried_best) {
            self.shared.mark_up();
            return Choice::Slot(i);
        }
        if !any_available {
            self.shared.mark_down(earliest);
        }
        Choice::None(earliest)
    }
}
