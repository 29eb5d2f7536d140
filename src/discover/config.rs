//! `DnsConfig`: how often a name is resolved, and how long a resolution may take.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{fmt_duration, non_zero_duration, ConfigError, Validate};

/// How a [`DnsDiscover`](super::DnsDiscover) resolves its name.
///
/// ```toml
/// [dns]
/// interval = "5s"   # resolve every 5 seconds
/// timeout = "2s"    # a resolution that takes longer counts as failed
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// How long to wait after one resolution ends before starting the next.
    /// Default 5s; above zero. Lower it to see new replicas sooner, at the
    /// cost of more DNS queries (one per name per interval per process).
    /// Kubernetes' cluster DNS caches answers for 5s by default, so going
    /// much lower buys little there.
    #[serde(with = "crate::config::duration")]
    pub interval: Duration,
    /// How long one resolution may take before it counts as failed (the
    /// membership is kept). Default 2s; above zero and at most `interval`,
    /// so that a hung resolver cannot hold back more than one round.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

impl Validate for DnsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("interval", self.interval)?;
        non_zero_duration("timeout", self.timeout)?;
        if self.timeout > self.interval {
            return Err(ConfigError::new(
                "timeout",
                fmt_duration(self.timeout),
                format!("must be at most interval ({})", fmt_duration(self.interval)),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_human_strings_and_defaults_fill_the_rest() {
        let c: DnsConfig = toml::from_str("interval = \"30s\"").unwrap();
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.timeout, DnsConfig::default().timeout);
        assert!(c.validate().is_ok());
        assert!(toml::from_str::<DnsConfig>("every = \"1s\"").is_err());
    }

    #[test]
    fn zero_and_inconsistent_durations_are_refused_by_name() {
        let zero = DnsConfig {
            interval: Duration::ZERO,
            ..DnsConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().field(), "interval");
        let slow = DnsConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        };
        assert_eq!(slow.validate().unwrap_err().field(), "timeout");
    }
}
