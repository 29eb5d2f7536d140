//! The load and fault-injection flags of the kv example.
//!
//! ```text
//! --rate N | --concurrency N   open loop at N req/s, or N requests outstanding
//! --duration S                seconds of load
//! --keys N                    key space size
//! --reads F                   fraction of GETs, 0..1
//! --zipf S                    key popularity exponent (0 = uniform)
//! --kill NODE [--at S]        kill NODE (e.g. s1r0) S seconds in (default: half way)
//! --slow NODE                 NODE serves 10x slower from the start
//! --flaky NODE=RATE           NODE answers 500 to that fraction of requests
//! --scale                     the 1/2/4/8-shard scaling run
//! ```
//!
//! Flags this module does not know are handed back untouched, for the rest
//! of the example's command line.

use std::time::Duration;

use super::load::{LoadConfig, LoadError, Pace};

/// How much slower `--slow` makes a node.
pub const SLOW_FACTOR: u32 = 10;

/// A fault to inject into one node.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Kill the node at this point of the run (`None`: half way).
    Kill(Option<Duration>),
    /// Serve [`SLOW_FACTOR`] times slower from the start.
    Slow,
    /// Answer 500 to this fraction of requests from the start.
    Flaky(f64),
}

/// The load and fault flags of one command line.
#[derive(Clone, Debug, Default)]
pub struct LoadFlags {
    /// The workload, with every flag given applied over the defaults.
    pub load: LoadConfig,
    /// Faults by node name, in command-line order.
    pub faults: Vec<(String, Fault)>,
    /// `--scale` was given.
    pub scale: bool,
    /// Any flag of this module was given.
    pub given: bool,
}

/// A bad load or fault flag.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The flag needs a value and got none.
    #[error("{0} needs a value")]
    Missing(String),
    /// The value does not parse or is out of range.
    #[error("{flag}: {why} (got {value:?})")]
    Bad {
        /// The flag.
        flag: String,
        /// The value given.
        value: String,
        /// What was expected.
        why: &'static str,
    },
    /// `--at` did not follow a `--kill`.
    #[error("--at must follow --kill NODE")]
    AtWithoutKill,
    /// The flags together make an invalid workload.
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn bad(flag: &str, value: &str, why: &'static str) -> FlagError {
    FlagError::Bad {
        flag: flag.to_string(),
        value: value.to_string(),
        why,
    }
}

fn number<T: std::str::FromStr>(
    flag: &str,
    value: &str,
    why: &'static str,
) -> Result<T, FlagError> {
    value.parse().map_err(|_| bad(flag, value, why))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, FlagError> {
    let s: f64 = number(flag, value, "a number of seconds")?;
    if !(s.is_finite() && (0.0..=86_400.0).contains(&s)) {
        return Err(bad(flag, value, "seconds between 0 and 86400"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn node(flag: &str, value: &str) -> Result<String, FlagError> {
    let ok = value
        .strip_prefix('s')
        .and_then(|rest| rest.split_once('r'))
        .is_some_and(|(s, r)| {
            !s.is_empty()
                && !r.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && r.bytes().all(|b| b.is_ascii_digit())
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(bad(
            flag,
            value,
            "a node name like s1r0 (shard 1, replica 0)",
        ))
    }
}

/// Parses the flags this module knows out of `args`; returns them and the
/// arguments it did not recognise, in order. Values are range-checked here;
/// whether a node exists is checked against the running fleet.
pub fn parse(args: &[String]) -> Result<(LoadFlags, Vec<String>), FlagError> {
    let mut flags = LoadFlags::default();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let known = [
            "--rate",
            "--concurrency",
            "--duration",
            "--keys",
            "--reads",
            "--zipf",
            "--kill",
            "--at",
            "--slow",
            "--flaky",
        ];
        if flag == "--scale" {
            flags.scale = true;
            flags.given = true;
            continue;
        }
        if !known.contains(&flag.as_str()) {
            rest.push(flag.clone());
            continue;
        }
        flags.given = true;
        let value = it.next().ok_or_else(|| FlagError::Missing(flag.clone()))?;
        let f = flag.as_str();
        let load = &mut flags.load;
        match f {
            "--rate" => {
                let r: f64 = number(f, value, "requests per second")?;
                load.pace = Pace::Rate(r);
            }
            "--concurrency" => load.pace = Pace::Concurrency(number(f, value, "a whole number")?),
            "--duration" => load.duration = seconds(f, value)?,
            "--keys" => load.keys = number(f, value, "a whole number")?,
            "--reads" => load.reads = number(f, value, "a fraction between 0 and 1")?,
            "--zipf" => load.zipf = number(f, value, "an exponent >= 0")?,
            "--kill" => flags.faults.push((node(f, value)?, Fault::Kill(None))),
            "--at" => {
                let at = seconds(f, value)?;
                match flags.faults.last_mut() {
                    Some((_, Fault::Kill(when @ None))) => *when = Some(at),
                    _ => return Err(FlagError::AtWithoutKill),
                }
            }
            "--slow" => flags.faults.push((node(f, value)?, Fault::Slow)),
            "--flaky" => {
                let (name, rate) = value
                    .split_once('=')
                    .ok_or_else(|| bad(f, value, "NODE=RATE, e.g. s2r1=0.2"))?;
                let rate: f64 = number(f, rate, "a rate between 0 and 1")?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(bad(f, value, "a rate between 0 and 1"));
                }
                flags.faults.push((node(f, name)?, Fault::Flaky(rate)));
            }
            _ => unreachable!("every known flag is matched"),
        }
    }
    flags.load.validate()?;
    Ok((flags, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_are_parsed_and_the_rest_handed_back() {
        let (f, rest) = parse(&args(
            "--config x.toml --rate 500 --duration 3 --keys 100 --reads 0.5 --zipf 0 \
             --kill s1r0 --at 1.5 --slow s2r1 --flaky s0r2=0.25 --kill s3r0",
        ))
        .unwrap();
        assert_eq!(rest, args("--config x.toml"));
        assert!(f.given && !f.scale);
        assert_eq!(f.load.pace, Pace::Rate(500.0));
        assert_eq!(f.load.duration, Duration::from_secs(3));
        assert_eq!((f.load.keys, f.load.reads, f.load.zipf), (100, 0.5, 0.0));
        assert_eq!(
            f.faults,
            vec![
                (
                    "s1r0".into(),
                    Fault::Kill(Some(Duration::from_millis(1500)))
                ),
                ("s2r1".into(), Fault::Slow),
                ("s0r2".into(), Fault::Flaky(0.25)),
                ("s3r0".into(), Fault::Kill(None)),
            ]
        );
        let (f, rest) = parse(&args("--serve")).unwrap();
        assert!(!f.given && rest == args("--serve"));
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        for (line, expect) in [
            ("--rate", "--rate needs a value"),
            ("--rate fast", "--rate: requests per second"),
            ("--kill node1", "--kill: a node name like s1r0"),
            ("--kill s1", "--kill: a node name"),
            ("--at 3", "--at must follow --kill NODE"),
            ("--slow s1r0 --at 3", "--at must follow --kill NODE"),
            ("--flaky s1r0", "--flaky: NODE=RATE"),
            ("--flaky s1r0=2", "--flaky: a rate between 0 and 1"),
            ("--duration -1", "--duration: seconds between 0 and 86400"),
            ("--reads 2", "reads must be between 0 and 1"),
            ("--concurrency 0", "concurrency must be 1 to 10000"),
        ] {
            let err = parse(&args(line)).unwrap_err().to_string();
            assert!(err.contains(expect), "{line:?} gave {err:?}");
        }
    }
}
