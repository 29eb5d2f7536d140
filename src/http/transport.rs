//! Connection-level errors, recognised by hyper's and hyper-util's error
//! types anywhere along an error's `source()` chain.

use std::error::Error as StdError;
use std::io;

use crate::signal::{Unavailable, UnavailableKind};

/// Whether `err`, or any error along its `source()` chain, shows that the
/// request never left this client, so that sending it again cannot apply
/// it twice, whatever its method:
///
/// - hyper-util's client failed to connect (`legacy::Error::is_connect`:
///   refused, unreachable, DNS, connect timeout);
/// - hyper cancelled the request before writing any of it
///   (`hyper::Error::is_canceled`: the connection closed or reset while the
///   request was still queued, and hyper handed it back);
/// - an I/O error of kind `ConnectionRefused`;
/// - the crate's own [`Unavailable`] signal of a kind that is raised before
///   any endpoint is called: an open breaker, an endpoint not ready in time,
///   none available, load shed.
///
/// A connection reset *after* hyper began writing is not among them: part of
/// the request may have been applied.
pub fn never_sent(err: &(dyn StdError + 'static)) -> bool {
    chain(err).any(|e| {
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return e.is_connect();
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            return e.is_canceled();
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            return e.kind() == io::ErrorKind::ConnectionRefused;
        }
        e.downcast_ref::<Unavailable>().is_some_and(unsent_kind)
    })
}

/// Whether `err`, or any error along its `source()` chain, is a
/// connection-level failure: a connect error, a connection closed, reset or
/// aborted, a message cut short, a request cancelled before it was sent.
pub fn is_connection_error(err: &(dyn StdError + 'static)) -> bool {
    chain(err).any(|e| {
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if e.is_connect() {
                return true;
            }
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            return e.is_canceled() || e.is_closed() || e.is_incomplete_message();
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            return matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::NotConnected
                    | io::ErrorKind::BrokenPipe
            );
        }
        false
    })
}

/// Kinds of the unavailable signal raised before any endpoint was called.
pub(crate) fn unsent_kind(u: &Unavailable) -> bool {
    matches!(
        u.kind(),
        UnavailableKind::CircuitOpen
            | UnavailableKind::NotReady
            | UnavailableKind::NoneAvailable
            | UnavailableKind::Overloaded
    )
}

fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}
