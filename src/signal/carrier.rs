//! Carrier (the requests that carry the signals) and Envelope.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::AttemptMark;

/// A request that can carry the per-request signals: its deadline and its
/// attempt mark.
///
/// Every method has a default, so a request type that carries nothing
/// implements it with `impl Carrier for MyRequest {}`. Strings, byte strings,
/// integers and `()` implement it that way already. Wrap a request in
/// [`Envelope`] to give it a deadline and an attempt mark.
pub trait Carrier {
    /// The instant after which nobody waits for the response.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Sets the deadline; returns `false` when the request cannot carry one.
    fn set_deadline(&mut self, deadline: Instant) -> bool {
        let _ = deadline;
        false
    }

    /// The attempt mark, if the request carries one.
    fn attempt(&self) -> Option<&AttemptMark> {
        None
    }

    /// Sets the attempt mark; returns `false` when the request cannot carry one.
    fn set_attempt(&mut self, mark: AttemptMark) -> bool {
        let _ = mark;
        false
    }

    /// Whether [`set_attempt`](Self::set_attempt) would keep a mark.
    ///
    /// Layers ask before they make a mark for a request that has none, since
    /// making one allocates and a request that cannot carry it would drop it.
    /// The default, `true`, is always correct (at worst a mark is made and
    /// dropped); the types of this crate that carry nothing answer `false`.
    fn can_carry_attempt(&self) -> bool {
        true
    }
}

macro_rules! carries_nothing {
    ($($t:ty),* $(,)?) => {$(
        impl Carrier for $t {
            fn can_carry_attempt(&self) -> bool {
                false
            }
        }
    )*};
}

carries_nothing!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    String,
    bytes::Bytes,
);

carries_nothing!(&str, &[u8]);

impl<T> Carrier for Vec<T> {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

impl<T: ?Sized> Carrier for Box<T> {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

impl<T: ?Sized> Carrier for Arc<T> {
    fn can_carry_attempt(&self) -> bool {
        false
    }
}

/// Any payload with a deadline and an attempt mark.
#[derive(Clone, Debug, Default)]
pub struct Envelope<T> {
    /// The request itself.
    pub payload: T,
    deadline: Option<Instant>,
    attempt: Option<AttemptMark>,
}

impl<T> Envelope<T> {
    /// `payload` with no deadline and no attempt mark.
    pub fn new(payload: T) -> Envelope<T> {
        Envelope {
            payload,
            deadline: None,
            attempt: None,
        }
    }

    /// The same envelope with a deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Envelope<T> {
        self.deadline = Some(deadline);
        self
    }

    /// The same envelope with a deadline `timeout` from now.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Envelope<T> {
        self.with_deadline(Instant::now() + timeout)
    }

    /// The payload, without the envelope.
    pub fn into_inner(self) -> T {
        self.payload
    }
}

impl<T> Carrier for Envelope<T> {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn set_deadline(&mut self, deadline: Instant) -> bool {
        self.deadline = Some(deadline);
        true
    }
    fn attempt(&self) -> Option<&AttemptMark> {
        self.attempt.as_ref()
    }
    fn set_attempt(&mut self, mark: AttemptMark) -> bool {
        self.attempt = Some(mark);
        true
    }
}
