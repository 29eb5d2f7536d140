//! Bounded loads: admission of a request to the first shard of its preference
//! list that is under the cap.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::error::ShardError;
use super::placement::{Placement, PlacementTable};
use super::service::{Bounded, Slot, SlotInfo, Snapshot};
use crate::signal::{Unavailable, UnavailableKind};

/// An admitted request's share of its shard's load, given back when the
/// request finishes or is dropped.
pub(crate) struct Admission {
    info: Arc<SlotInfo>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.info.stats.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(bounded) = &self.info.settings.bounded {
            bounded.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Takes one unit of load on `slot` if it is healthy and under `cap`. The
/// compare-and-swap makes the check and the increment one step, so racing
/// callers cannot push a shard over the cap.
fn try_admit<S>(slot: &Slot<S>, cap: u64) -> Option<Admission> {
    if slot.info.is_unavailable() {
        return None;
    }
    let load = &slot.info.stats.in_flight;
    let mut current = load.load(Ordering::Acquire);
    loop {
        if current >= cap {
            return None;
        }
        match load.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                return Some(Admission {
                    info: slot.info.clone(),
                })
            }
            Err(seen) => current = seen,
        }
    }
}

/// Admits a request for `hash` to the first shard of its preference list
/// under the cap `ceil(c × (in flight + 1) / N)`; returns the shard's index.
pub(crate) fn admit<S>(
    snap: &Snapshot<S>,
    table: &PlacementTable,
    hash: u64,
    bounded: &Bounded,
) -> Result<(usize, Admission), ShardError> {
    let n = snap.slots.len();
    // This request counts in the total it is capped by.
    let total = bounded.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
    let cap = (bounded.factor_milli * total).div_ceil(1000 * n as u64);
    let owner = table.route_hash(hash);
    if let Some(admission) = try_admit(&snap.slots[owner], cap) {
        return Ok((owner, admission));
    }
    // The owner is full (a hot key) or unavailable: walk the preference
    // list, first its head, then, rarely, all of it.
    let mut prefs = Vec::new();
    let mut tried = 1;
    for want in [8.min(n), n] {
        table.preference_hash(hash, want, &mut prefs);
        for &i in prefs.iter().skip(tried) {
            if let Some(admission) = try_admit(&snap.slots[i], cap) {
                return Ok((i, admission));
            }
        }
        tried = prefs.len();
    }
    // Only unavailable shards are under the cap (c > 1 leaves room otherwise).
    bounded.in_flight.fetch_sub(1, Ordering::AcqRel);
    Err(ShardError::Unavailable {
        shard: snap.slots[owner].info.id.clone(),
        signal: Unavailable::new(UnavailableKind::NoneAvailable),
    })
}
