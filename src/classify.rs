//! What counts as a failure: one decision shared by every layer.
//!
//! The breaker trips on failures, the balancer ejects replicas that fail, the
//! retry layer re-sends failures and the cache serves stale data instead of
//! them. They must agree on what a failure is, so each takes a [`Classify`]:
//! a function from a call's outcome (`&Result<Res, E>`) to a [`Classification`].
//! By default ([`ErrorIsFailure`]) `Ok` is a success and `Err` a failure; an
//! HTTP classifier would call a 503 a failure and a 404 a success.
//!
//! ```
//! use tower_fleet::classify::{Classify, Classification, Outcome};
//!
//! // A status-code protocol: 5xx fails, everything else succeeds.
//! let by_status = |r: &Result<u16, std::io::Error>| match r {
//!     Ok(code) if *code >= 500 => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(_) => Outcome::Failure,
//! };
//! assert_eq!(by_status.classify(&Ok(503)), Classification::Now(Outcome::Failure));
//! assert_eq!(by_status.classify(&Ok(404)), Classification::Now(Outcome::Success));
//! ```
//!
//! # Outcomes known only at the end of a stream
//!
//! Some protocols send the outcome after the response head: gRPC puts most
//! statuses in the trailers at the end of the body. A classifier then answers
//! [`Classification::AtEnd`] with an [`EndOfStream`] handle, and each layer
//! registers what it wants done with the outcome ([`EndOfStream::on_end`]).
//! The other half of the pair, an [`EosReporter`], travels inside the response
//! body (the `http` feature provides a body wrapper that holds it) and reports
//! the outcome when the stream ends. If the body is dropped before it ends the
//! outcome is [`Outcome::Ignore`], like any other cancelled call.
//!
//! # Where latency is measured to
//!
//! Layers that time calls (slow-call detection, peak-EWMA balancing) measure
//! from the moment the request is handed to the inner service to the moment
//! its response future resolves: for HTTP, the arrival of the response head.
//! An outcome reported at the end of a stream does not extend that latency.
//!
//! # Long-lived streams
//!
//! A server-streaming call may stay open for hours. A classifier marks it
//! [`Classification::LongLived`]: layers then judge it by its head alone, never
//! count it as a slow call, and release its in-flight count and any probe slot
//! as soon as the head arrives.

use std::fmt;
use std::sync::{Arc, Mutex};

/// How one call went, for the purposes of breakers, balancers, retries and caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call worked.
    Success,
    /// The call failed: it counts against the backend.
    Failure,
    /// The call says nothing about the backend's health (cancelled, or a
    /// client-side error): it is not counted.
    Ignore,
}

/// A classifier's verdict when a response (or an error) arrives.
#[derive(Debug, PartialEq, Eq)]
pub enum Classification {
    /// The outcome is known now.
    Now(Outcome),
    /// The outcome will be known when the response stream ends; register
    /// interest with [`EndOfStream::on_end`].
    AtEnd(EndOfStream),
    /// A long-lived stream, judged by this outcome of its head: not timed, and
    /// holds no in-flight or probe slot after the head arrives.
    LongLived(Outcome),
}

impl Classification {
    /// The outcome if it is known now.
    pub fn now(&self) -> Option<Outcome> {
        match self {
            Classification::Now(o) | Classification::LongLived(o) => Some(*o),
            Classification::AtEnd(_) => None,
        }
    }
}

impl From<Outcome> for Classification {
    fn from(o: Outcome) -> Self {
        Classification::Now(o)
    }
}

/// Decides how a call went. See the [module docs](self).
///
/// Implemented for closures `Fn(&Result<Res, E>) -> Outcome` (or
/// `-> Classification`).
pub trait Classify<Res, E> {
    /// Classifies one outcome.
    fn classify(&self, result: &Result<Res, E>) -> Classification;
}

impl<Res, E, F, C> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> C,
    C: Into<Classification>,
{
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Classification {
        self(result).into()
    }
}

/// The default classifier: `Ok` is a success, `Err` is a failure.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorIsFailure;

impl<Res, E> Classify<Res, E> for ErrorIsFailure {
    #[inline]
    fn classify(&self, result: &Result<Res, E>) -> Classification {
        match result {
            Ok(_) => Classification::Now(Outcome::Success),
            Err(_) => Classification::Now(Outcome::Failure),
        }
    }
}

type Listener = Box<dyn FnOnce(Outcome) + Send>;

enum EosState {
    Pending(Vec<Listener>),
    Done(Outcome),
}

struct EosShared {
    state: Mutex<EosState>,
}

impl EosShared {
    fn finish(&self, outcome: Outcome) {
        let listeners = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match std::mem::replace(&mut *state, EosState::Done(outcome)) {
                EosState::Pending(listeners) => listeners,
                done @ EosState::Done(_) => {
                    *state = done;
                    return;
                }
            }
        };
        for listener in listeners {
            listener(outcome);
        }
    }
}

/// The layers' side of an outcome that arrives at the end of a stream.
///
/// Cloneable: every layer that sees the classification registers its own
/// listener. Listeners registered after the stream ended run at once.
#[derive(Clone)]
pub struct EndOfStream {
    shared: Arc<EosShared>,
}

impl EndOfStream {
    /// A new pair: the handle the classifier returns, and the reporter that
    /// travels in the response body.
    pub fn pair() -> (EndOfStream, EosReporter) {
        let shared = Arc::new(EosShared {
            state: Mutex::new(EosState::Pending(Vec::new())),
        });
        (
            EndOfStream {
                shared: shared.clone(),
            },
            EosReporter {
                shared: Some(shared),
            },
        )
    }

    /// Runs `f` with the outcome when the stream ends (at once if it has).
    pub fn on_end(&self, f: impl FnOnce(Outcome) + Send + 'static) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            EosState::Pending(listeners) => listeners.push(Box::new(f)),
            EosState::Done(outcome) => {
                let outcome = *outcome;
                drop(state);
                f(outcome);
            }
        }
    }

    /// The outcome, if the stream has ended.
    pub fn outcome(&self) -> Option<Outcome> {
        match &*self.shared.state.lock().unwrap_or_else(|p| p.into_inner()) {
            EosState::Done(o) => Some(*o),
            EosState::Pending(_) => None,
        }
    }
}

impl fmt::Debug for EndOfStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndOfStream")
            .field("outcome", &self.outcome())
            .finish()
    }
}

impl PartialEq for EndOfStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for EndOfStream {}

/// The body's side of an outcome that arrives at the end of a stream.
///
/// Report the outcome once with [`EosReporter::report`]; dropping the reporter
/// without reporting (the body was dropped before its end) reports
/// [`Outcome::Ignore`].
pub struct EosReporter {
    shared: Option<Arc<EosShared>>,
}

impl EosReporter {
    /// Reports the stream's outcome to every listener.
    pub fn report(mut self, outcome: Outcome) {
        if let Some(shared) = self.shared.take() {
            shared.finish(outcome);
        }
    }
}

impl Drop for EosReporter {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.finish(Outcome::Ignore);
        }
    }
}

impl fmt::Debug for EosReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EosReporter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn default_classifier_fails_errors_only() {
        let ok: Result<(), ()> = Ok(());
        let err: Result<(), ()> = Err(());
        assert_eq!(ErrorIsFailure.classify(&ok).now(), Some(Outcome::Success));
        assert_eq!(ErrorIsFailure.classify(&err).now(), Some(Outcome::Failure));
    }

    #[test]
    fn end_of_stream_reports_to_every_listener_once() {
        let (eos, reporter) = EndOfStream::pair();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..3 {
            let seen = seen.clone();
            eos.clone().on_end(move |o| seen.lock().unwrap().push(o));
        }
        assert_eq!(eos.outcome(), None);
        reporter.report(Outcome::Failure);
        assert_eq!(*seen.lock().unwrap(), vec![Outcome::Failure; 3]);
        // late listeners run at once
        let late = Arc::new(AtomicUsize::new(0));
        let l = late.clone();
        eos.on_end(move |o| {
            assert_eq!(o, Outcome::Failure);
            l.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(late.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_body_dropped_before_its_end_is_ignored() {
        let (eos, reporter) = EndOfStream::pair();
        drop(reporter);
        assert_eq!(eos.outcome(), Some(Outcome::Ignore));
    }

    #[test]
    fn closures_may_defer_to_the_end_of_the_stream() {
        let (eos, _reporter) = EndOfStream::pair();
        let c = move |r: &Result<&str, ()>| match r {
            Ok("stream") => Classification::AtEnd(eos.clone()),
            Ok("watch") => Classification::LongLived(Outcome::Success),
            _ => Classification::Now(Outcome::Failure),
        };
        assert!(matches!(
            c.classify(&Ok("stream")),
            Classification::AtEnd(_)
        ));
        assert_eq!(c.classify(&Ok("watch")).now(), Some(Outcome::Success));
        assert_eq!(c.classify(&Err(())).now(), Some(Outcome::Failure));
    }
}
