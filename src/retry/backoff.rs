//! `Backoff` and `Jitter`: how long to wait before each retry (the schemes
//! are described on [`Jitter`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{non_zero_duration, ConfigError, Validate};

/// How the wait before a retry is randomized.
///
/// Exponential backoff spaces retries out so a struggling backend gets time
/// to recover; jitter spreads the retries of many clients so they do not
/// arrive in synchronized waves. The four schemes are those the AWS
/// Architecture Blog compares in "Exponential Backoff and Jitter"; with
/// `ceiling(n) = min(max, base × 2^(n-1))` for the `n`-th retry:
///
/// | `Jitter` | wait before retry `n` |
/// |---|---|
/// | `None` | `ceiling(n)` |
/// | `Full` (default) | uniform in `[0, ceiling(n)]` |
/// | `Equal` | `ceiling(n) / 2` + uniform in `[0, ceiling(n) / 2]` |
/// | `Decorrelated` | uniform in `[base, 3 × previous wait]`, at most `max` (the first previous wait is `base`) |
///
/// Full jitter does the least total work in the blog's measurements and is
/// the default; decorrelated jitter completes slightly sooner. `Equal` keeps
/// a floor of half the ceiling, for backends that need a minimum pause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: exactly the exponential ceiling.
    None,
    /// Uniform between zero and the ceiling (the default).
    #[default]
    Full,
    /// Half the ceiling, plus uniform up to the other half.
    Equal,
    /// Uniform between `base` and three times the previous wait, capped by `max`.
    Decorrelated,
}

/// Exponential backoff from `base` to `max` with a [`Jitter`] scheme (the
/// table on [`Jitter`] gives each scheme's waits).
///
/// In TOML, the `[backoff]` table of a retry configuration:
///
/// ```toml
/// [backoff]
/// base = "50ms"
/// max = "1s"
/// jitter = "full"   # none | full | equal | decorrelated
/// ```
///
/// ```
/// use std::time::Duration;
/// use tower_fleet::retry::{Backoff, Jitter};
///
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), Jitter::None).unwrap();
/// let waits: Vec<_> = (1..=5).map(|n| b.delay(n, Duration::ZERO)).collect();
/// assert_eq!(waits, [100, 200, 400, 800, 1000].map(Duration::from_millis));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// The wait before the first retry (its ceiling, with jitter), and the
    /// floor of decorrelated jitter. Default 50ms; more than zero, at most
    /// `max`. Raise it for backends that take long to recover from a blip;
    /// lower it when a retry usually lands on another, healthy replica.
    #[serde(with = "crate::config::duration")]
    pub base: Duration,
    /// The longest wait between two attempts. Default 1s; at least `base`,
    /// at most one hour. Keep it well under the requests' deadlines, or the
    /// last retries never happen.
    #[serde(with = "crate::config::duration")]
    pub max: Duration,
    /// The jitter scheme. Default `full`.
    pub jitter: Jitter,
}

/// The longest `max` a backoff accepts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(1),
            jitter: Jitter::Full,
        }
    }
}

impl Validate for Backoff {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("base", self.base)?;
        if self.max < self.base {
            return Err(ConfigError::new(
                "max",
                crate::config::fmt_duration(self.max),
                "must be at least base",
            ));
        }
        if self.max > MAX_BACKOFF {
            return Err(ConfigError::new(
                "max",
                crate::config::fmt_duration(self.max),
                "must be at most 1h",
            ));
        }
        Ok(())
    }
}

impl Backoff {
    /// A validated backoff.
    pub fn new(base: Duration, max: Duration, jitter: Jitter) -> Result<Backoff, ConfigError> {
        let b = Backoff { base, max, jitter };
        b.validate()?;
        Ok(b)
    }

    /// The exponential ceiling for retry `n` (from 1): `min(max, base × 2^(n-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(63);
        let nanos = u64::try_from(self.base.as_nanos()).unwrap_or(u64::MAX);
        let grown = nanos.saturating_mul(1u64 << shift);
        Duration::from_nanos(grown).min(self.max)
    }

    /// The wait before retry `n` (from 1), drawing from the thread's random
    /// generator. `previous` is the wait before the previous retry (only
    /// decorrelated jitter reads it; pass zero before the first).
    pub fn delay(&self, retry: u32, previous: Duration) -> Duration {
        self.delay_with(retry, previous, rand::random())
    }

    /// [`delay`](Self::delay) with the randomness given: `random` is a
    /// uniformly distributed `u64`. Deterministic, for tests and simulations.
    pub fn delay_with(&self, retry: u32, previous: Duration, random: u64) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => uniform(Duration::ZERO, ceiling, random),
            Jitter::Equal => {
                let half = ceiling / 2;
                half + uniform(Duration::ZERO, ceiling - half, random)
            }
            Jitter::Decorrelated => {
                let previous = previous.max(self.base);
                let top = previous.saturating_mul(3).min(self.max);
                uniform(self.base, top.max(self.base), random)
            }
        }
    }
}

/// A uniform draw in `[lo, hi]` from a uniform `u64`, without modulo bias.
fn uniform(lo: Duration, hi: Duration, random: u64) -> Duration {
    let span = u64::try_from((hi - lo).as_nanos()).unwrap_or(u64::MAX);
    let offset = ((u128::from(random) * (u128::from(span) + 1)) >> 64) as u64;
    lo + Duration::from_nanos(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_reach_both_ends_of_their_range() {
        let ms = Duration::from_millis;
        assert_eq!(uniform(ms(0), ms(10), 0), ms(0));
        assert_eq!(uniform(ms(0), ms(10), u64::MAX), ms(10));
        assert_eq!(uniform(ms(5), ms(5), u64::MAX), ms(5));
    }

    #[test]
    fn ceilings_do_not_overflow() {
        let b = Backoff::new(Duration::from_secs(1), MAX_BACKOFF, Jitter::None).unwrap();
        assert_eq!(b.ceiling(u32::MAX), MAX_BACKOFF);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
    }

    #[test]
    fn bad_backoffs_are_named() {
        let ms = Duration::from_millis;
        assert_eq!(
            Backoff::new(ms(0), ms(10), Jitter::Full)
                .unwrap_err()
                .field(),
            "base"
        );
        assert_eq!(
            Backoff::new(ms(20), ms(10), Jitter::Full)
                .unwrap_err()
                .field(),
            "max"
        );
        assert_eq!(
            Backoff::new(ms(20), MAX_BACKOFF + ms(1), Jitter::Full)
                .unwrap_err()
                .field(),
            "max"
        );
    }
}
