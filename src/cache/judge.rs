//! The hit path's judgement of a looked-up entry: served as a hit, or
//! handed to the miss path with its age.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::core::Core;
use super::entry::{Age, Entry};
use super::error::{CacheError, SharedError};
use super::store::Store;
use crate::clock::Ticks;

/// What a lookup found, judged.
pub(crate) enum Judged<T> {
    /// A fresh entry's answer (or a negatively cached error): serve it.
    Hit {
        answer: Result<T, SharedError>,
        /// How long the entry had been stored when it was judged, for
        /// [`Policy::served`](super::Policy::served): exact when the clock
        /// judged it; when the horizon vouched for it, the time since the
        /// horizon's last tick, which is never more than the exact age and
        /// less by at most one resolution while the tick task is on time.
        /// Computed from values the judgement has at hand (no clock read),
        /// and dead code for a policy that does not read it.
        stored_for: Duration,
    },
    /// Anything else: the entry (if usable), its age, whether early refresh
    /// says to refresh it now, and the time it was judged at (read from the
    /// clock when there is an entry).
    Other {
        found: Option<Entry<T>>,
        age: Age,
        early: bool,
        now: Ticks,
    },
}

impl<T> Judged<T> {
    const NONE: Judged<T> = Judged::Other {
        found: None,
        age: Age::Dead,
        early: false,
        now: Ticks(0),
    };
}

impl<T: Clone, St: Store<T>> Core<T, St> {
    /// The answer of a servable entry, counted as a hit (or a negative hit).
    #[inline]
    pub(crate) fn serve(&self, answer: Result<T, SharedError>) -> Result<T, CacheError> {
        match answer {
            Ok(v) => {
                self.stats.hits.inc();
                Ok(v)
            }
            Err(e) => {
                self.stats.negative_hits.inc();
                Err(CacheError::Upstream(e))
            }
        }
    }

    /// Judges a looked-up entry, by reference: a fresh one gives its answer
    /// (a clone of the response), anything else a clone of the entry with
    /// its age. A variant of an older generation counts as none.
    ///
    /// The horizon, when there is one, proves most fresh entries fresh
    /// without a clock read; the others (near or past their expiry, or with
    /// early refresh on) are judged by the clock.
    #[inline]
    pub(crate) fn judge(&self, found: Option<&Entry<T>>, bucket: Option<usize>) -> Judged<T> {
        let Some(e) = found else {
            return Judged::NONE;
        };
        if let Some(b) = bucket {
            if !self.variant_current(b, e) {
                return Judged::NONE;
            }
        }
        let tti = self.settings.tti;
        if let Some(h) = &self.horizon {
            let bounds = h.bounds();
            if e.fresh_through(bounds, tti) {
                return Judged::Hit {
                    answer: e.answer(),
                    stored_for: e.age_at(bounds.lower),
                };
            }
        }
        let now = self.clock.ticks();
        let age = e.age(now, tti);
        let early = age == Age::Fresh && self.refresh_early(e, now);
        if age == Age::Fresh && !early {
            return Judged::Hit {
                answer: e.answer(),
                stored_for: e.age_at(now),
            };
        }
        Judged::Other {
            found: Some(e.clone()),
            age,
            early,
            now,
        }
    }

    /// Whether a variant entry is still current.
    #[inline]
    pub(crate) fn variant_current(&self, bucket: usize, entry: &Entry<T>) -> bool {
        entry
            .variant_gen()
            .is_none_or(|g| self.variants[bucket].load(Ordering::Acquire) == g)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::cache::core::Settings;
    use crate::cache::entry::Freshness;
    use crate::cache::horizon::Horizon;
    use crate::cache::memory::MemoryStore;
    use crate::clock::{Clock, ManualClock, Ticks};

    const TTL: Duration = Duration::from_secs(10);
    const RES: Duration = Duration::from_millis(10);

    /// A core judged by a manual clock, with a horizon ticked at the clock's
    /// start, and an entry stored then; and that start.
    fn setup(
        tti: Option<Duration>,
    ) -> (Core<u32, MemoryStore<u32>>, ManualClock, Entry<u32>, Ticks) {
        let manual = Clock::manual();
        let t0 = Ticks::from_instant(manual.now());
        let settings = Settings {
            freshness: Freshness::ttl(TTL),
            tti,
            early_refresh: None,
            coalesce_timeout: None,
        };
        let core = Core::new(
            MemoryStore::new(10).unwrap(),
            manual.clock(),
            Some(Horizon::fixed(t0, RES)),
            settings,
        );
        let entry = Entry::build(Ok(7), t0, Freshness::ttl(TTL), Duration::ZERO, None);
        (core, manual, entry, t0)
    }

    fn tick(core: &Core<u32, MemoryStore<u32>>, at: Ticks) {
        if let Some(h) = &core.horizon {
            h.set(at);
        }
    }

    fn is_hit(j: &Judged<u32>) -> bool {
        matches!(j, Judged::Hit { answer: Ok(7), .. })
    }

    fn ticks_at(manual: &ManualClock) -> Ticks {
        Ticks::from_instant(manual.now())
    }

    #[test]
    fn the_horizon_vouches_for_entries_far_from_expiry_without_the_clock() {
        let (core, manual, entry, t0) = setup(None);
        // The clock says expired, but the horizon (ticked at t0, so the time
        // is before t0 + 30ms) proves the entry fresh: the clock is not read.
        manual.advance(TTL * 2);
        assert!(is_hit(&core.judge(Some(&entry), None)));
        // A tick near expiry: the bound no longer proves it; the clock does.
        tick(&core, t0.plus(TTL - RES));
        assert!(matches!(
            core.judge(Some(&entry), None),
            Judged::Other { age: Age::Dead, .. }
        ));
    }

    #[test]
    fn within_the_margin_the_clock_judges_exactly() {
        let (core, manual, entry, t0) = setup(None);
        // Ticked 20ms before expiry: within three resolutions of it.
        tick(&core, t0.plus(TTL - Duration::from_millis(20)));
        manual.advance(TTL - Duration::from_nanos(1));
        assert!(is_hit(&core.judge(Some(&entry), None)));
        manual.advance(Duration::from_nanos(1));
        assert!(!is_hit(&core.judge(Some(&entry), None)));
    }

    #[test]
    fn a_stopped_horizon_leaves_every_hit_to_the_clock() {
        let (core, manual, entry, _) = setup(None);
        tick(&core, Ticks(u64::MAX));
        assert!(is_hit(&core.judge(Some(&entry), None)));
        manual.advance(TTL);
        assert!(!is_hit(&core.judge(Some(&entry), None)));
    }

    #[test]
    fn time_to_idle_through_the_horizon_can_only_end_an_entry_early() {
        let (core, manual, entry, t0) = setup(Some(Duration::from_secs(1)));
        // Read 500ms after it was stored (the horizon ticked then).
        manual.advance(Duration::from_millis(500));
        tick(&core, t0.plus(Duration::from_millis(500)));
        assert!(is_hit(&core.judge(Some(&entry), None)));
        // 990ms after that read: idle for less than a second, but the bound
        // (last tick + 30ms) cannot prove it, so the clock does.
        manual.advance(Duration::from_millis(990));
        tick(&core, ticks_at(&manual));
        assert!(is_hit(&core.judge(Some(&entry), None)));
        // The read just now was recorded: 990ms later it is still alive.
        manual.advance(Duration::from_millis(990));
        tick(&core, ticks_at(&manual));
        assert!(is_hit(&core.judge(Some(&entry), None)));
        // Idle past time-to-idle, with the horizon on time: dead.
        manual.advance(Duration::from_millis(1001));
        tick(&core, ticks_at(&manual));
        assert!(!is_hit(&core.judge(Some(&entry), None)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The staleness bound: a hit is never served past its expiry while
        /// the tick task is at most two resolutions late (the last tick is
        /// at most three resolutions old), and otherwise by less than the
        /// last tick's age minus three resolutions.
        #[test]
        fn no_hit_outlives_its_expiry_by_more_than_the_tick_is_late(
            tick_ms in 0u64..20_000,
            lag_ms in 0u64..500,
        ) {
            let (core, manual, entry, t0) = setup(None);
            tick(&core, t0.plus(Duration::from_millis(tick_ms)));
            manual.advance(Duration::from_millis(tick_ms + lag_ms));
            let now = ticks_at(&manual);
            let fresh_until = t0.plus(TTL);
            let lag = Duration::from_millis(lag_ms);
            if is_hit(&core.judge(Some(&entry), None)) && now >= fresh_until {
                let past = now.since(fresh_until);
                prop_assert!(lag > RES * 3, "served {past:?} late with a tick {lag:?} old");
                prop_assert!(past < lag - RES * 3, "served {past:?} late with a tick {lag:?} old");
            }
        }
    }
}
