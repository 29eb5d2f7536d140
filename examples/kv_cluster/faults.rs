//! Turning the fault flags into actions on the run's timeline, and the
//! default demonstration's plan.
//!
//! `--slow` and `--flaky` take effect when the load starts; `--kill` at its
//! `--at` time, or half way through the run when no time was given.

use std::time::Duration;

use super::flags::{Fault, LoadFlags, SLOW_FACTOR};
use super::load::{LoadConfig, Pace, Scheduled};

/// A node that faults can be injected into (the fleet's node control).
pub trait FaultTarget: Send + 'static {
    /// Stops the node abruptly.
    fn kill(&self);
    /// Multiplies its service time.
    fn set_slow(&self, factor: u32);
    /// Makes it fail this fraction of requests.
    fn set_flaky(&self, rate: f64);
}

/// A fault names a node the fleet does not have.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("no node named {0} in this fleet (nodes are s<shard>r<replica>, e.g. s1r0)")]
pub struct UnknownNode(pub String);

/// The scheduled actions for `faults` over a run of `duration`; `lookup`
/// finds a node by name.
pub fn plan<T: FaultTarget>(
    faults: &[(String, Fault)],
    duration: Duration,
    lookup: impl Fn(&str) -> Option<T>,
) -> Result<Vec<Scheduled>, UnknownNode> {
    let mut events = Vec::new();
    for (name, fault) in faults {
        let node = lookup(name).ok_or_else(|| UnknownNode(name.clone()))?;
        let (at, what, action): (Duration, String, Box<dyn FnOnce() + Send>) = match *fault {
            Fault::Kill(at) => (
                at.unwrap_or(duration / 2),
                format!("killing {name}"),
                Box::new(move || node.kill()),
            ),
            Fault::Slow => (
                Duration::ZERO,
                format!("{name} serves {SLOW_FACTOR}x slower"),
                Box::new(move || node.set_slow(SLOW_FACTOR)),
            ),
            Fault::Flaky(rate) => (
                Duration::ZERO,
                format!("{name} fails {:.0}% of requests", rate * 100.0),
                Box::new(move || node.set_flaky(rate)),
            ),
        };
        events.push(Scheduled { at, what, action });
    }
    Ok(events)
}

/// The demonstration a run without flags gives: 16 seconds of Zipf-keyed,
/// 90%-read load at 32 requests outstanding, with `s1r0` killed at 8 s.
pub fn demonstration() -> LoadFlags {
    LoadFlags {
        load: LoadConfig {
            pace: Pace::Concurrency(32),
            duration: Duration::from_secs(16),
            ..LoadConfig::default()
        },
        faults: vec![(
            "s1r0".to_string(),
            Fault::Kill(Some(Duration::from_secs(8))),
        )],
        scale: false,
        given: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl FaultTarget for Recorder {
        fn kill(&self) {
            self.0.lock().unwrap().push("kill".into());
        }
        fn set_slow(&self, factor: u32) {
            self.0.lock().unwrap().push(format!("slow {factor}"));
        }
        fn set_flaky(&self, rate: f64) {
            self.0.lock().unwrap().push(format!("flaky {rate}"));
        }
    }

    #[test]
    fn faults_become_timed_actions_on_the_named_nodes() {
        let node = Recorder::default();
        let faults = [
            ("s1r0".to_string(), Fault::Kill(None)),
            (
                "s1r0".to_string(),
                Fault::Kill(Some(Duration::from_secs(3))),
            ),
            ("s2r1".to_string(), Fault::Slow),
            ("s0r2".to_string(), Fault::Flaky(0.25)),
        ];
        let events = plan(&faults, Duration::from_secs(10), |_| Some(node.clone())).unwrap();
        let times: Vec<u64> = events.iter().map(|e| e.at.as_secs()).collect();
        assert_eq!(times, [5, 3, 0, 0]);
        for e in events {
            (e.action)();
        }
        assert_eq!(
            *node.0.lock().unwrap(),
            ["kill", "kill", "slow 10", "flaky 0.25"]
        );
    }

    #[test]
    fn an_unknown_node_is_a_clear_error() {
        let faults = [("s9r0".to_string(), Fault::Slow)];
        let err = plan(&faults, Duration::from_secs(1), |_| None::<Recorder>).unwrap_err();
        assert_eq!(err, UnknownNode("s9r0".into()));
        assert!(err.to_string().contains("no node named s9r0"));
    }

    #[test]
    fn the_demonstration_kills_a_node_half_way_and_ends_within_a_minute() {
        let demo = demonstration();
        assert!(demo.load.validate().is_ok());
        assert!(demo.load.duration < Duration::from_secs(30));
        assert_eq!(demo.faults.len(), 1);
        assert_eq!(demo.faults[0].1, Fault::Kill(Some(demo.load.duration / 2)));
    }
}
