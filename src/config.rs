//! Shared configuration plumbing: [`ConfigError`], human-readable durations and
//! the [`Validate`] trait every layer's `Config` implements.
//!
//! Every layer has a `Config` struct that is `Serialize + Deserialize + Default`,
//! rejects unknown fields, and spells durations as human strings (`"250ms"`,
//! `"30s"`, `"1m 30s"`). `validate()` checks every field and names the first one
//! that is out of range together with its value, so a bad TOML file produces a
//! message a person can act on:
//!
//! ```
//! use tower_fleet::config::ConfigError;
//!
//! let err = ConfigError::new("table_size", 65536, "must be a prime number").within("shard");
//! assert_eq!(err.field(), "shard.table_size");
//! assert_eq!(err.to_string(), "invalid shard.table_size = 65536: must be a prime number");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A configuration value that is out of range, missing or inconsistent.
///
/// It names the field by its path in the configuration document (for example
/// `shard.table_size` or `shards[2].replicas[0]`), the offending value as it was
/// given, and the reason it was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} = {value}: {reason}")]
pub struct ConfigError {
    field: String,
    value: String,
    reason: Cow<'static, str>,
}

impl ConfigError {
    /// A new error for `field` holding `value`, refused for `reason`.
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        ConfigError {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Prefixes the field path with the table that holds it, so that nested
    /// configurations report the full path (`"table_size"` within `"shard"`
    /// becomes `"shard.table_size"`; an index segment such as `"shards[2]"`
    /// works the same way).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        if self.field.is_empty() {
            self.field = parent.to_owned();
        } else if self.field.starts_with('[') {
            self.field = format!("{parent}{}", self.field);
        } else {
            self.field = format!("{parent}.{}", self.field);
        }
        self
    }

    /// The path of the refused field, e.g. `shard.table_size`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The refused value, as it was given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Checks a configuration before anything is built from it.
pub trait Validate {
    /// Returns the first field that is out of range, or `Ok(())`.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Refuses a zero duration for `field`.
pub(crate) fn non_zero_duration(field: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(
            field,
            fmt_duration(value),
            "must be greater than zero",
        ));
    }
    Ok(())
}

/// Formats a duration the way configuration files spell it (`"250ms"`).
pub fn fmt_duration(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

/// Parses a duration the way configuration files spell it (`"250ms"`, `"30s"`,
/// `"1m 30s"`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(tower_fleet::config::parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(tower_fleet::config::parse_duration("fast").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    humantime_serde::re::humantime::parse_duration(text)
        .map_err(|e| ConfigError::new("duration", text, e.to_string()))
}

/// `#[serde(with = "crate::config::duration")]` for `Duration` fields.
pub(crate) mod duration {
    pub(crate) use humantime_serde::{deserialize, serialize};
}

/// `#[serde(default, with = "crate::config::opt_duration")]` for
/// `Option<Duration>` fields: absent or a human string (`"250ms"`).
pub(crate) mod opt_duration {
    pub(crate) use humantime_serde::option::{deserialize, serialize};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_read_like_the_document() {
        let e = ConfigError::new("[0]", "\"\"", "empty")
            .within("replicas")
            .within("shards[2]");
        assert_eq!(e.field(), "shards[2].replicas[0]");
        let e = ConfigError::new("table_size", 4, "not prime").within("shard");
        assert_eq!(e.field(), "shard.table_size");
        assert_eq!(e.value(), "4");
        assert_eq!(e.reason(), "not prime");
    }

    #[test]
    fn durations_round_trip_as_human_strings() {
        let d = parse_duration("1m 30s").unwrap();
        assert_eq!(d, Duration::from_secs(90));
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        let err = parse_duration("soon").unwrap_err();
        assert_eq!(err.value(), "soon");
    }

    #[test]
    fn zero_durations_are_refused_by_name() {
        let err = non_zero_duration("ready_timeout", Duration::ZERO).unwrap_err();
        assert_eq!(err.field(), "ready_timeout");
        assert!(non_zero_duration("ready_timeout", Duration::from_millis(1)).is_ok());
    }
}
