//! `RetryBudget`: how many retries recent traffic pays for (Finagle's retry
//! budget, Envoy's `retry_budget`). The design is described on the type.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::config::BudgetConfig;
use crate::clock::Clock;
use crate::config::{ConfigError, Validate};
use crate::metrics::Counter;

/// How many buckets the `ttl` window is split into: deposits and withdrawals
/// expire between `ttl × 15/16` and `ttl` after they were made.
pub const BUCKETS: u64 = 16;

/// One retry, in the budget's fixed-point units: ratios count in steps of 0.001.
const UNIT: i64 = 1000;

/// A word holding a bucket number (low 32 bits of it) and a 32-bit count.
#[inline]
fn pack(bucket: u32, count: u32) -> u64 {
    (u64::from(bucket) << 32) | u64::from(count)
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// A retry budget (Finagle's, Envoy's `retry_budget`), shared by every clone
/// and by every layer it is given to.
///
/// Every request deposits `ratio` of a retry; every retry (and every hedge)
/// withdraws one. Deposits and withdrawals count for `ttl`, and a standing
/// reserve of `min_per_second × ttl` retries lets a quiet client retry at all.
/// So in any window of `ttl`, retries stay under `ratio` of that window's
/// requests plus `min_per_second × ttl`, however many callers race.
///
/// ```
/// use std::time::Duration;
/// use tower_fleet::retry::RetryBudget;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // 20% of requests, plus 1 retry a second over a 10 s window: a reserve of 10.
/// let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.2).unwrap();
/// let granted = (0..100).filter(|_| { budget.deposit(); budget.withdraw() }).count();
/// assert_eq!(granted, 10 + 20);
/// # }
/// ```
///
/// # How it stays exact without a lock
///
/// Two running totals are kept: the deposits ever made (an `AtomicU64`, one
/// `fetch_add` per request, each worth `ratio` of a retry) and the
/// withdrawals ever made, which share one
/// `AtomicU64` with the number of the current bucket (the window is [`BUCKETS`]
/// buckets of `ttl / BUCKETS`). When a bucket begins, the first caller to see
/// it bumps that number and writes down both totals as the bucket's starting
/// marks; the window's balance is then the reserve, plus the deposits, minus
/// the withdrawals, made since the start of its oldest bucket.
///
/// A withdrawal reads the word, computes the balance, and compare-and-swaps
/// the word from what it read to one more withdrawal. The swap fails if
/// another withdrawal or a new bucket came in between, so a withdrawal is
/// granted only when the balance at that instant holds a retry: no
/// interleaving of callers can overdraw it (tower's `TpsBudget` sums its
/// slots, then subtracts, so racing callers all see the same sum and all
/// subtract). A deposit racing with a withdrawal is at worst not seen yet,
/// and a deposit racing with the start of a bucket at worst counts in the
/// older bucket: every race errs on the side of fewer retries.
///
/// # Costs
///
/// [`deposit`](Self::deposit) is a clock read, two atomic loads and
/// one atomic add, no lock; [`withdraw`](Self::withdraw) a clock read, a few
/// loads and a compare-and-swap loop. With the default clock the clock read is
/// `tokio::time::Instant::now()`; give the budget [`Clock::coarse`] to make
/// it one atomic load. Once per `ttl / 16` the first caller also writes the
/// new bucket's marks.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    /// Deposits ever made (one per request).
    deposits: AtomicU64,
    /// The current bucket number (low 32 bits) and the withdrawals ever
    /// made (wrapping 32-bit count).
    word: AtomicU64,
    /// Per bucket: the deposit count when it began.
    marks_deposits: [AtomicU64; BUCKETS as usize],
    /// Per bucket: its number and the withdrawal total when it began.
    marks_withdrawals: [AtomicU64; BUCKETS as usize],
    /// The clock ticks at which the current bucket ends: before it, no
    /// caller needs to divide.
    ends: AtomicU64,
    /// Nanoseconds per bucket.
    width: u64,
    /// Units one deposit is worth.
    deposit: i64,
    reserve: i64,
    clock: Clock,
    config: BudgetConfig,
    withdrawn: Counter,
    refused: Counter,
    /// Whether a withdrawal was refused and no whole window has passed
    /// since without a refusal: for the state-change events, so that a
    /// budget hovering at empty logs once, not at every grant and refusal.
    exhausted: AtomicBool,
    /// The bucket of the latest refusal.
    refused_in: AtomicU64,
}

impl RetryBudget {
    /// A budget that lets retries reach `ratio` of the requests of the last
    /// `ttl`, plus `min_per_second` retries a second, on tokio's clock.
    ///
    /// Fails, naming the field, when `ttl` is outside 1 s to 60 s, `ratio`
    /// outside 0 to 1000, or `min_per_second` above 1,000,000.
    pub fn new(ttl: Duration, min_per_second: u32, ratio: f64) -> Result<RetryBudget, ConfigError> {
        let config = BudgetConfig {
            ttl,
            min_per_second,
            ratio,
            ..BudgetConfig::default()
        };
        RetryBudget::from_config(&config, Clock::default())
    }

    /// A budget from its configuration (whose `enabled` flag it ignores),
    /// reading time from `clock`. Use [`Clock::coarse`] on hot paths.
    pub fn from_config(config: &BudgetConfig, clock: Clock) -> Result<RetryBudget, ConfigError> {
        config.validate()?;
        let width = u64::try_from(config.ttl.as_nanos() / u128::from(BUCKETS))
            .unwrap_or(u64::MAX)
            .max(1);
        // In range by validation: ratio <= 1000, reserve <= 1e6 * 60 * 1000.
        let deposit = (config.ratio * UNIT as f64).round() as i64;
        let reserve =
            (f64::from(config.min_per_second) * config.ttl.as_secs_f64() * UNIT as f64) as i64;
        let bucket = clock.ticks().0 / width;
        // The window starts full of empty buckets, each marked with its number.
        let first = bucket.wrapping_sub(BUCKETS - 1);
        let marks_withdrawals = std::array::from_fn(|i| {
            let b = (first..=bucket)
                .find(|b| b % BUCKETS == i as u64)
                .unwrap_or(bucket);
            AtomicU64::new(pack(b as u32, 0))
        });
        Ok(RetryBudget {
            inner: Arc::new(Inner {
                deposits: AtomicU64::new(0),
                word: AtomicU64::new(pack(bucket as u32, 0)),
                marks_deposits: Default::default(),
                marks_withdrawals,
                ends: AtomicU64::new(bucket.saturating_add(1).saturating_mul(width)),
                width,
                deposit,
                reserve,
                clock,
                config: config.clone(),
                withdrawn: Counter::default(),
                refused: Counter::default(),
                exhausted: AtomicBool::new(false),
                refused_in: AtomicU64::new(0),
            }),
        })
    }

    /// Records a request: it pays for `ratio` of a retry for the next `ttl`.
    #[inline]
    pub fn deposit(&self) {
        let inner = &*self.inner;
        inner.advance();
        inner.deposits.fetch_add(1, Ordering::AcqRel);
    }

    /// Deposits ever made: the requests the budget has seen.
    pub fn deposits(&self) -> u64 {
        self.inner.deposits.load(Ordering::Relaxed)
    }

    /// Takes one retry from the budget if it holds one. Never takes more
    /// than the balance, however many callers race.
    pub fn withdraw(&self) -> bool {
        let inner = &*self.inner;
        inner.advance();
        let mut word = inner.word.load(Ordering::Acquire);
        loop {
            let (bucket, count) = unpack(word);
            let enough = inner.balance(bucket, count).is_some_and(|b| b >= UNIT);
            if !enough {
                inner.refused.inc();
                inner.refused_in.store(u64::from(bucket), Ordering::Relaxed);
                if !inner.exhausted.load(Ordering::Relaxed)
                    && !inner.exhausted.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        ratio = inner.config.ratio,
                        min_per_second = inner.config.min_per_second,
                        "retry budget exhausted: failed requests return without retrying"
                    );
                }
                return false;
            }
            let next = pack(bucket, count.wrapping_add(1));
            match inner
                .word
                .compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        inner.withdrawn.inc();
        if inner.exhausted.load(Ordering::Relaxed) {
            let (bucket, _) = unpack(word);
            let since = bucket.wrapping_sub(inner.refused_in.load(Ordering::Relaxed) as u32);
            if u64::from(since) >= BUCKETS && inner.exhausted.swap(false, Ordering::Relaxed) {
                tracing::info!("retry budget available again: no retry refused for a whole window");
            }
        }
        true
    }

    /// The retries the budget would grant now: fractional, and negative
    /// while recent withdrawals outweigh the deposits still in the window
    /// (a withdrawal counts for `ttl` from when it was made, and may outlive
    /// the deposits that paid for it).
    pub fn balance(&self) -> f64 {
        let inner = &*self.inner;
        inner.advance();
        let (bucket, count) = unpack(inner.word.load(Ordering::Acquire));
        inner.balance(bucket, count).unwrap_or(0) as f64 / UNIT as f64
    }

    /// The budget's configuration.
    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    /// A snapshot of the balance and counters.
    pub fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot {
            balance: self.balance(),
            reserve: self.inner.reserve as f64 / UNIT as f64,
            deposits: self.deposits(),
            withdrawn: self.inner.withdrawn.get(),
            refused: self.inner.refused.get(),
        }
    }
}

impl Inner {
    /// Starts the bucket the clock is in, if no caller has yet.
    #[inline]
    fn advance(&self) {
        let now = self.clock.ticks().0;
        if now >= self.ends.load(Ordering::Acquire) {
            self.start_bucket(now / self.width);
        }
    }

    /// Moves the word to bucket `bucket` and writes its marks (and those of
    /// any bucket skipped while the budget was idle that is still in the window).
    #[cold]
    fn start_bucket(&self, bucket: u64) {
        let target = bucket as u32;
        let mut word = self.word.load(Ordering::Acquire);
        let (from, withdrawals) = loop {
            let (current, count) = unpack(word);
            if target.wrapping_sub(current) as i32 <= 0 {
                return; // another caller got there first
            }
            match self.word.compare_exchange_weak(
                word,
                pack(target, count),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break (current, count),
                Err(now) => word = now,
            }
        };
        // Deposits made before this load count in the older buckets: if
        // anything, they expire early.
        let deposits = self.deposits.load(Ordering::Acquire);
        let skipped = u64::from(target.wrapping_sub(from)).min(BUCKETS);
        for b in (0..skipped).map(|back| bucket.wrapping_sub(back)) {
            let i = (b % BUCKETS) as usize;
            self.marks_deposits[i].store(deposits, Ordering::Release);
            self.marks_withdrawals[i].store(pack(b as u32, withdrawals), Ordering::Release);
        }
        self.ends.fetch_max(
            bucket.saturating_add(1).saturating_mul(self.width),
            Ordering::AcqRel,
        );
        tracing::trace!(bucket, "retry budget bucket started");
    }

    /// The balance, in units, of the window whose newest bucket is `bucket`
    /// after `count` withdrawals in all; `None` while that window's oldest
    /// bucket is still being marked (a caller racing a bucket start after an
    /// idle spell), which callers treat as empty.
    #[inline]
    fn balance(&self, bucket: u32, count: u32) -> Option<i64> {
        let oldest = bucket.wrapping_sub(BUCKETS as u32 - 1);
        let i = (oldest % BUCKETS as u32) as usize;
        let (marked, withdrawals_at_start) =
            unpack(self.marks_withdrawals[i].load(Ordering::Acquire));
        if marked != oldest {
            return None;
        }
        let deposits_at_start = self.marks_deposits[i].load(Ordering::Acquire);
        let deposits = self
            .deposits
            .load(Ordering::Acquire)
            .wrapping_sub(deposits_at_start);
        let credit = i64::try_from(deposits)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.deposit);
        let withdrawals = i64::from(count.wrapping_sub(withdrawals_at_start));
        Some(self.reserve.saturating_add(credit) - withdrawals * UNIT)
    }
}

impl tower::retry::budget::Budget for RetryBudget {
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        RetryBudget::withdraw(self)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &self.inner.config.ratio)
            .field("min_per_second", &self.inner.config.min_per_second)
            .field("ttl", &self.inner.config.ttl)
            .field("balance", &self.balance())
            .finish()
    }
}

/// A [`RetryBudget`]'s balance and counters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BudgetSnapshot {
    /// Retries the budget would grant now (see [`RetryBudget::balance`]).
    pub balance: f64,
    /// The standing reserve, `min_per_second × ttl`.
    pub reserve: f64,
    /// Deposits ever made (requests seen).
    pub deposits: u64,
    /// Withdrawals granted.
    pub withdrawn: u64,
    /// Withdrawals refused.
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_pack_a_bucket_and_a_count() {
        for (b, c) in [(0, 0), (7, u32::MAX), (u32::MAX, 3)] {
            assert_eq!(unpack(pack(b, c)), (b, c));
        }
    }

    #[test]
    fn a_fresh_budget_has_its_window_marked() {
        let manual = Clock::manual();
        let budget = RetryBudget::from_config(&BudgetConfig::default(), manual.clock()).unwrap();
        let inner = &*budget.inner;
        let (bucket, _) = unpack(inner.word.load(Ordering::Relaxed));
        for back in 0..BUCKETS as u32 {
            let b = bucket.wrapping_sub(back);
            let (marked, _) = unpack(
                inner.marks_withdrawals[(b % BUCKETS as u32) as usize].load(Ordering::Relaxed),
            );
            assert_eq!(marked, b);
        }
        assert_eq!(budget.balance(), 100.0);
    }

    #[test]
    fn a_window_still_being_marked_grants_nothing() {
        let manual = Clock::manual();
        let budget = RetryBudget::from_config(&BudgetConfig::default(), manual.clock()).unwrap();
        let inner = &*budget.inner;
        let (bucket, count) = unpack(inner.word.load(Ordering::Relaxed));
        // As if the word had moved on by a whole window and the marks were not written yet.
        assert_eq!(
            inner.balance(bucket.wrapping_add(BUCKETS as u32), count),
            None
        );
    }
}
