//! What a load run sends: the workload's shape, pace and limits, validated.

use std::time::Duration;

use super::zipf::{Zipf, ZipfError};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Open loop: this many requests per second, on schedule.
    Rate(f64),
    /// Closed loop: this many requests outstanding at all times.
    Concurrency(usize),
}

/// What to send, how fast and for how long.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The fraction of requests that are GETs (the rest are PUTs), 0..=1.
    pub reads: f64,
    /// The key space: keys `k0` .. `k{keys-1}`.
    pub keys: u64,
    /// The Zipf exponent of key popularity; 0 draws keys uniformly.
    pub zipf: f64,
    /// Open or closed loop.
    pub pace: Pace,
    /// How long to send requests (outstanding ones are then awaited).
    pub duration: Duration,
    /// The size of each PUT's value in bytes.
    pub value_bytes: usize,
    /// A request that has not answered after this long fails.
    pub timeout: Duration,
    /// Open loop only: requests beyond this many outstanding are not sent.
    pub max_in_flight: usize,
    /// Print a progress line to stderr once a second.
    pub progress: bool,
    /// Seed of the key and operation choices, for repeatable runs.
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            reads: 0.9,
            keys: 10_000,
            zipf: 1.0,
            pace: Pace::Concurrency(32),
            duration: Duration::from_secs(15),
            value_bytes: 64,
            timeout: Duration::from_secs(5),
            max_in_flight: 10_000,
            progress: true,
            seed: 1,
        }
    }
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The key distribution could not be built.
    #[error(transparent)]
    Keys(#[from] ZipfError),
    /// A field is out of its range.
    #[error("{field} must be {expected}, got {value}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The accepted range.
        expected: &'static str,
        /// The value given.
        value: String,
    },
}

impl LoadConfig {
    /// Checks every field; [`super::load::run`] does too.
    pub fn validate(&self) -> Result<(), LoadError> {
        let invalid = |field, expected, value: String| {
            Err(LoadError::Invalid {
                field,
                expected,
                value,
            })
        };
        if !(0.0..=1.0).contains(&self.reads) {
            return invalid("reads", "between 0 and 1", self.reads.to_string());
        }
        match self.pace {
            Pace::Rate(r) if !(r.is_finite() && r > 0.0 && r <= 1e6) => {
                return invalid("rate", "in (0, 1000000] per second", r.to_string())
            }
            Pace::Concurrency(c) if c == 0 || c > 10_000 => {
                return invalid("concurrency", "1 to 10000", c.to_string())
            }
            _ => {}
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return invalid(
                "duration",
                "between 1ms and 24h",
                format!("{:?}", self.duration),
            );
        }
        if self.timeout.is_zero() {
            return invalid("timeout", "more than zero", format!("{:?}", self.timeout));
        }
        if self.value_bytes == 0 || self.value_bytes > 1 << 20 {
            return invalid("value_bytes", "1 to 1 MiB", self.value_bytes.to_string());
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight", "at least 1", "0".into());
        }
        Zipf::new(self.keys, self.zipf)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_refused() {
        assert!(LoadConfig::default().validate().is_ok());
        for bad in [
            LoadConfig {
                reads: 1.5,
                ..LoadConfig::default()
            },
            LoadConfig {
                pace: Pace::Rate(0.0),
                ..LoadConfig::default()
            },
            LoadConfig {
                pace: Pace::Concurrency(0),
                ..LoadConfig::default()
            },
            LoadConfig {
                duration: Duration::ZERO,
                ..LoadConfig::default()
            },
            LoadConfig {
                keys: 0,
                ..LoadConfig::default()
            },
            LoadConfig {
                zipf: -1.0,
                ..LoadConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
