//! `BalanceConfig`: the balancer as data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::quorum::QuorumConfig;
use crate::config::{non_zero_duration, ConfigError, Validate};

/// How the balancer chooses a replica for each request.
///
/// In TOML, a table tagged by `kind`:
///
/// ```toml
/// [strategy]
/// kind = "peak_ewma"        # or "least_request", "round_robin", "random"
/// decay = "10s"
/// failure_penalty = "1s"
/// default_rtt = "30ms"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Strategy {
    /// Power of two choices over peak-EWMA latency (the default; Finagle's and
    /// Linkerd's metric): of two random replicas, the one with the lower
    /// `latency estimate x (in-flight + 1) / weight`. The estimate jumps to
    /// any slower sample at once and decays towards faster ones.
    PeakEwma {
        /// How fast old latency samples are forgotten (the EWMA's time
        /// constant). Default 10s. Shorter reacts faster to a replica that
        /// recovered; longer smooths out noise. At least 1ms.
        #[serde(default = "default_decay", with = "crate::config::duration")]
        decay: Duration,
        /// The latency a failed call is charged as (when it took less), so
        /// that a replica that fails fast does not look fast. Default 1s; set
        /// it near your request timeout. At least 1ms.
        #[serde(default = "default_penalty", with = "crate::config::duration")]
        failure_penalty: Duration,
        /// The estimate of a replica with no samples yet. Default 30ms; set it
        /// near your typical latency so new replicas neither flood nor starve.
        /// At least 1µs.
        #[serde(default = "default_rtt", with = "crate::config::duration")]
        default_rtt: Duration,
    },
    /// Power of two choices over in-flight requests (Envoy's least request):
    /// of two random replicas, the one with fewer `(in-flight + 1) / weight`.
    /// Cheapest of the adaptive strategies: it reads no clock.
    LeastRequest {},
    /// Smooth weighted round robin: each replica in turn, in proportion to its
    /// weight, spread evenly. Does not adapt to latency.
    RoundRobin {},
    /// A random replica, in proportion to its weight.
    Random {},
}

fn default_decay() -> Duration {
    Duration::from_secs(10)
}

fn default_penalty() -> Duration {
    Duration::from_secs(1)
}

fn default_rtt() -> Duration {
    Duration::from_millis(30)
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::peak_ewma()
    }
}

impl Strategy {
    /// Peak-EWMA with its defaults (decay 10s, failure penalty 1s, default RTT 30ms).
    pub fn peak_ewma() -> Strategy {
        Strategy::PeakEwma {
            decay: default_decay(),
            failure_penalty: default_penalty(),
            default_rtt: default_rtt(),
        }
    }
}

impl Validate for Strategy {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Strategy::PeakEwma {
            decay,
            failure_penalty,
            default_rtt,
        } = *self
        {
            at_least("decay", decay, Duration::from_millis(1))?;
            at_least("failure_penalty", failure_penalty, Duration::from_millis(1))?;
            at_least("default_rtt", default_rtt, Duration::from_micros(1))?;
        }
        Ok(())
    }
}

fn at_least(field: &str, value: Duration, min: Duration) -> Result<(), ConfigError> {
    if value < min {
        let reason = format!("must be at least {}", crate::config::fmt_duration(min));
        return Err(ConfigError::new(
            field,
            crate::config::fmt_duration(value),
            reason,
        ));
    }
    Ok(())
}

fn percent(field: &str, value: u32) -> Result<(), ConfigError> {
    if value > 100 {
        return Err(ConfigError::new(
            field,
            value,
            "must be a percentage from 0 to 100",
        ));
    }
    Ok(())
}

/// Outlier ejection (Envoy's outlier detection): replicas that keep failing
/// are taken out of the set for a while, longer each time.
///
/// ```toml
/// [outlier]
/// consecutive_failures = 5
/// failure_rate_threshold = 0.5
/// base_ejection_time = "30s"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Whether replicas are ejected at all. Default true.
    pub enabled: bool,
    /// Eject after this many failures in a row. Default 5; 0 turns this
    /// trigger off. Lower ejects sooner, and on noise.
    pub consecutive_failures: u32,
    /// Eject when more than this fraction of a replica's calls in one
    /// `interval` failed (judged at its first failure after the interval
    /// ends, so successes never read the clock). Default 0.5; from 0 to 1,
    /// and 1 turns this trigger off (no rate exceeds 100%).
    pub failure_rate_threshold: f64,
    /// The fewest calls in an interval for its failure rate to count.
    /// Default 20; raise it for replicas with bursty traffic.
    pub failure_rate_min_requests: u32,
    /// The length of a failure-rate window, and of the healthy period after
    /// which a replica's ejection multiplier steps down by one. Default 10s.
    #[serde(with = "crate::config::duration")]
    pub interval: Duration,
    /// The first ejection lasts this long; the n-th in a row lasts n times
    /// as long. Default 30s.
    #[serde(with = "crate::config::duration")]
    pub base_ejection_time: Duration,
    /// The longest an ejection lasts. Default 300s; at least `base_ejection_time`.
    #[serde(with = "crate::config::duration")]
    pub max_ejection_time: Duration,
    /// At most this percentage of the set is ejected at once; at least one
    /// replica is always ejectable. Default 10; from 0 to 100. Raise it for
    /// small sets where one replica is more than 10%.
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            enabled: true,
            consecutive_failures: 5,
            failure_rate_threshold: 0.5,
            failure_rate_min_requests: 20,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}

impl Validate for OutlierConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let rate = self.failure_rate_threshold;
        if !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::new(
                "failure_rate_threshold",
                rate,
                "must be from 0 to 1",
            ));
        }
        non_zero_duration("interval", self.interval)?;
        non_zero_duration("base_ejection_time", self.base_ejection_time)?;
        if self.max_ejection_time < self.base_ejection_time {
            return Err(ConfigError::new(
                "max_ejection_time",
                crate::config::fmt_duration(self.max_ejection_time),
                "must be at least base_ejection_time",
            ));
        }
        percent("max_ejection_percent", self.max_ejection_percent)
    }
}

/// Active health checks: how often each replica is probed and how many
/// probes in a row change its state. They run only when the builder is given
/// a probe ([`BalanceBuilder::health_check`](super::BalanceBuilder::health_check)).
///
/// ```toml
/// [health_check]
/// interval = "5s"
/// timeout = "1s"
/// unhealthy_threshold = 3
/// healthy_threshold = 2
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Time between two probes of a replica. Default 10s.
    #[serde(with = "crate::config::duration")]
    pub interval: Duration,
    /// A probe that takes longer has failed. Default 1s.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
    /// Failed probes in a row that take a replica out. Default 3; at least 1.
    pub unhealthy_threshold: u32,
    /// Passed probes in a row that bring it back. Default 2; at least 1.
    pub healthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

impl Validate for HealthCheckConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        non_zero_duration("interval", self.interval)?;
        non_zero_duration("timeout", self.timeout)?;
        for (field, v) in [
            ("unhealthy_threshold", self.unhealthy_threshold),
            ("healthy_threshold", self.healthy_threshold),
        ] {
            if v == 0 {
                return Err(ConfigError::new(field, v, "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Slow start: a replica that joins (or comes back from ejection or a failed
/// health check) ramps its share of traffic up over a window instead of
/// taking a full share at once, so a cold cache or JIT is not flooded.
///
/// The share factor at time `t` into the window is
/// `max(min_weight_percent / 100, (t / window) ^ (1 / aggression))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowStartConfig {
    /// The ramp's length. Default: none (slow start is off).
    #[serde(
        with = "crate::config::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Duration>,
    /// The ramp's curve: 1 is linear, above 1 ramps faster early. Default 1;
    /// from 0.1 to 10.
    pub aggression: f64,
    /// The share a ramping replica starts at, in percent of a full share.
    /// Default 10; from 1 to 100.
    pub min_weight_percent: u32,
}

impl Default for SlowStartConfig {
    fn default() -> Self {
        SlowStartConfig {
            window: None,
            aggression: 1.0,
            min_weight_percent: 10,
        }
    }
}

impl Validate for SlowStartConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(w) = self.window {
            non_zero_duration("window", w)?;
        }
        if !(0.1..=10.0).contains(&self.aggression) {
            return Err(ConfigError::new(
                "aggression",
                self.aggression,
                "must be from 0.1 to 10",
            ));
        }
        if !(1..=100).contains(&self.min_weight_percent) {
            return Err(ConfigError::new(
                "min_weight_percent",
                self.min_weight_percent,
                "must be from 1 to 100",
            ));
        }
        Ok(())
    }
}

/// Configuration of the [`Balance`](super::Balance) layer.
///
/// ```toml
/// ready_timeout = "1s"
/// panic_threshold = 50
///
/// [strategy]
/// kind = "peak_ewma"
///
/// [outlier]
/// consecutive_failures = 5
///
/// [slow_start]
/// window = "30s"
///
/// [quorum]                  # optional: the quorum mode's settings
/// write = 3
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    /// How a replica is chosen. Default: P2C over peak-EWMA latency.
    pub strategy: Strategy,
    /// How long a request waits for a replica to be available and ready
    /// before failing with the unavailable signal. The request's own
    /// deadline, when earlier, ends the wait first. Default 1s; lower it when
    /// callers would rather retry elsewhere or serve stale data than queue.
    #[serde(with = "crate::config::duration")]
    pub ready_timeout: Duration,
    /// When fewer than this percentage of replicas are healthy by the
    /// balancer's own judgement (not ejected, passing health checks), it
    /// balances over all of them instead (Envoy's panic mode), so that a
    /// fleet-wide blip does not pile all traffic on the last few. Default 50;
    /// 0 turns panic mode off.
    pub panic_threshold: u32,
    /// Outlier ejection.
    pub outlier: OutlierConfig,
    /// Active health checks (used when a probe is given).
    pub health_check: HealthCheckConfig,
    /// Slow start (off by default).
    pub slow_start: SlowStartConfig,
    /// The quorum mode's settings (see [`QuorumConfig`]), used by the
    /// balancer's [`quorum`](super::Balance::quorum) views. Default: none,
    /// which stands for [`QuorumConfig::default`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumConfig>,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            strategy: Strategy::default(),
            ready_timeout: Duration::from_secs(1),
            panic_threshold: 50,
            outlier: OutlierConfig::default(),
            health_check: HealthCheckConfig::default(),
            slow_start: SlowStartConfig::default(),
            quorum: None,
        }
    }
}

impl Validate for BalanceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.strategy.validate().map_err(|e| e.within("strategy"))?;
        non_zero_duration("ready_timeout", self.ready_timeout)?;
        percent("panic_threshold", self.panic_threshold)?;
        self.outlier.validate().map_err(|e| e.within("outlier"))?;
        self.health_check
            .validate()
            .map_err(|e| e.within("health_check"))?;
        self.slow_start
            .validate()
            .map_err(|e| e.within("slow_start"))?;
        match &self.quorum {
            Some(q) => q.validate().map_err(|e| e.within("quorum")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_document_and_round_trips() {
        let text = r#"
            ready_timeout = "250ms"
            panic_threshold = 30
            [strategy]
            kind = "peak_ewma"
            decay = "5s"
            [outlier]
            consecutive_failures = 3
            base_ejection_time = "10s"
            [slow_start]
            window = "1m"
        "#;
        let cfg: BalanceConfig = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.strategy,
            Strategy::PeakEwma {
                decay: Duration::from_secs(5),
                failure_penalty: Duration::from_secs(1),
                default_rtt: Duration::from_millis(30)
            }
        );
        assert_eq!(cfg.outlier.consecutive_failures, 3);
        assert_eq!(cfg.slow_start.window, Some(Duration::from_secs(60)));
        let back: BalanceConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let empty: BalanceConfig = toml::from_str("").unwrap();
        assert_eq!(empty, BalanceConfig::default());
        let lr: BalanceConfig = toml::from_str("[strategy]\nkind = \"least_request\"").unwrap();
        assert_eq!(lr.strategy, Strategy::LeastRequest {});
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<BalanceConfig>("readytimeout = \"1s\"").is_err());
        assert!(toml::from_str::<BalanceConfig>(
            "[strategy]\nkind = \"peak_ewma\"\ndecays = \"1s\""
        )
        .is_err());
        assert!(toml::from_str::<BalanceConfig>("[strategy]\nkind = \"fastest\"").is_err());
        assert!(toml::from_str::<BalanceConfig>("[outlier]\nconsecutive = 1").is_err());
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = |text: &str| {
            toml::from_str::<BalanceConfig>(text)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        assert_eq!(bad("ready_timeout = \"0s\"").field(), "ready_timeout");
        assert_eq!(bad("panic_threshold = 101").field(), "panic_threshold");
        let e = bad("[strategy]\nkind = \"peak_ewma\"\ndecay = \"0s\"");
        assert_eq!((e.field(), e.value()), ("strategy.decay", "0s"));
        assert_eq!(
            bad("[strategy]\nkind = \"peak_ewma\"\nfailure_penalty = \"0s\"").field(),
            "strategy.failure_penalty"
        );
        assert_eq!(
            bad("[outlier]\nfailure_rate_threshold = 1.5").field(),
            "outlier.failure_rate_threshold"
        );
        assert_eq!(
            bad("[outlier]\nmax_ejection_time = \"1s\"").field(),
            "outlier.max_ejection_time"
        );
        assert_eq!(
            bad("[outlier]\nmax_ejection_percent = 150").field(),
            "outlier.max_ejection_percent"
        );
        assert_eq!(
            bad("[outlier]\ninterval = \"0s\"").field(),
            "outlier.interval"
        );
        assert_eq!(
            bad("[health_check]\nhealthy_threshold = 0").field(),
            "health_check.healthy_threshold"
        );
        assert_eq!(
            bad("[health_check]\ntimeout = \"0s\"").field(),
            "health_check.timeout"
        );
        assert_eq!(
            bad("[slow_start]\naggression = 0.0").field(),
            "slow_start.aggression"
        );
        assert_eq!(
            bad("[slow_start]\nmin_weight_percent = 0").field(),
            "slow_start.min_weight_percent"
        );
        assert_eq!(
            bad("[slow_start]\nwindow = \"0s\"").field(),
            "slow_start.window"
        );
    }
}
