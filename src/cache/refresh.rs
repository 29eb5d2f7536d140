//! Background refreshes: stale-while-revalidate and probabilistic early
//! refresh (XFetch).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::core::Core;
use super::entry::Entry;
use super::flight::Driver;
use super::load::BoxLoad;
use super::store::{CacheKey, Store};
use crate::clock::Ticks;

impl<T: Clone, St: Store<T>> Core<T, St> {
    /// Whether probabilistic early refresh (XFetch) says to refresh a fresh
    /// entry now: with `delta` the time its load took, refresh when
    /// `now + delta * beta * -ln(u)` reaches its expiry, `u` uniform in (0, 1].
    #[inline]
    pub(crate) fn refresh_early(&self, entry: &Entry<T>, now: Ticks) -> bool {
        let Some(beta) = self.settings.early_refresh else {
            return false;
        };
        let delta = entry.load_time().as_secs_f64();
        let left = entry.fresh_until_ticks().since(now).as_secs_f64();
        delta * beta * -unit_random().ln() >= left
    }
}

impl<T: Clone + Send + Sync + 'static, St: Store<T>> Core<T, St> {
    /// Starts a background refresh of `key`, unless a load of it is in
    /// flight (one refresh at a time; after a failed one, the next stale hit
    /// starts another).
    pub(crate) fn spawn_refresh(
        self: &Arc<Self>,
        key: &CacheKey,
        variant: Option<(usize, u64)>,
        load: impl FnOnce() -> BoxLoad<T>,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(flight) = self.lead_refresh(key, variant) else {
            return;
        };
        self.stats.refreshes.inc();
        self.stats.loads.inc();
        tracing::debug!("cache entry refresh started in the background");
        let driver = Driver::new(self.clone(), flight, load());
        rt.spawn(Refresh { driver });
    }
}

/// A uniform random number in (0, 1], from a per-thread xorshift generator.
fn unit_random() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let id = std::thread::current().id();
            xxhash_rust::xxh3::xxh3_64(format!("{t}{id:?}").as_bytes()) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        // 53 random bits, shifted into (0, 1].
        ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    })
}

/// A background refresh: drives its flight to the end.
struct Refresh<T: Clone, St: Store<T>> {
    driver: Driver<T, St>,
}

impl<T: Clone, St: Store<T>> Future for Refresh<T, St> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = match self.driver.poll(cx) {
            Poll::Ready(shared) => shared,
            Poll::Pending => return Poll::Pending,
        };
        if shared.failure {
            tracing::debug!("cache background refresh failed; the stale entry stays");
        }
        Poll::Ready(())
    }
}
