//! `http::Request` carries the per-request signals in its extensions.

use tokio::time::Instant;

use crate::signal::{AttemptMark, Carrier};

/// A request's deadline, as it is stored in `http::Request` extensions.
///
/// Layers read and write it through [`Carrier`]; set it yourself with
/// [`Carrier::set_deadline`] or by inserting it:
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use tower_fleet::http::Deadline;
/// use tower_fleet::signal::Carrier;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(Deadline(Instant::now() + Duration::from_secs(2)));
/// assert!(req.deadline().is_some());
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// The deadline and the [`AttemptMark`] live in the request's extensions,
/// so they travel with it through every layer and are copied with it by
/// [`HttpReplay`](super::HttpReplay). Setting either allocates the
/// extension map on first use.
impl<B> Carrier for http::Request<B> {
    fn deadline(&self) -> Option<Instant> {
        self.extensions().get::<Deadline>().map(|d| d.0)
    }

    fn set_deadline(&mut self, deadline: Instant) -> bool {
        self.extensions_mut().insert(Deadline(deadline));
        true
    }

    fn attempt(&self) -> Option<&AttemptMark> {
        self.extensions().get::<AttemptMark>()
    }

    fn set_attempt(&mut self, mark: AttemptMark) -> bool {
        self.extensions_mut().insert(mark);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn requests_keep_deadline_and_mark_in_extensions() {
        let mut req = http::Request::new(());
        assert!(req.deadline().is_none() && req.attempt().is_none());
        assert!(req.can_carry_attempt());
        let at = Instant::now() + Duration::from_secs(1);
        assert!(req.set_deadline(at));
        assert!(req.set_attempt(AttemptMark::new().next()));
        assert_eq!(req.deadline(), Some(at));
        assert_eq!(req.attempt().map(AttemptMark::attempt), Some(2));
        assert_eq!(req.extensions().get::<Deadline>(), Some(&Deadline(at)));
    }
}
