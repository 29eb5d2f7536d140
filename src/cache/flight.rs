//! Miss coalescing: one load in flight per key, its waiters, and the hand-over
//! of a load whose driver went away.
//!
//! A *flight* is one upstream load that every concurrent miss of a key shares.
//! The caller that started it (the leader) drives it inside its own response
//! future; the others (waiters) register a waker and sleep until the result is
//! published: they are polled once to register and once when woken, whatever
//! the upstream's latency. If the driver is dropped before the load finishes,
//! the boxed load is left in the flight (an *orphan*) and one waiter is woken
//! to take it over and drive it on; when no waiter is left, the load is
//! dropped. The result is cloned to every waiter; errors are shared behind an
//! `Arc`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::core::Core;
use super::error::CacheError;
use super::load::{BoxLoad, LoadOutput, Shared};
use super::store::{CacheKey, Store};

/// What a load must match, when it finishes, to fill the store: the key's
/// generation and the cache's epoch when it started.
#[derive(Clone, Debug)]
pub(crate) struct Fence {
    pub(crate) key: CacheKey,
    pub(crate) shard: usize,
    pub(crate) gen: u64,
    pub(crate) epoch: u64,
    /// With a secondary key: the variant bucket of the primary key, and its
    /// generation when the load started.
    pub(crate) variant: Option<(usize, u64)>,
}

/// One load in flight, shared by every concurrent miss of its key.
pub(crate) struct Flight<T> {
    pub(crate) fence: Fence,
    state: Mutex<FlightState<T>>,
}

enum Slot {
    Free,
    Waiting(Option<Waker>),
}

struct FlightState<T> {
    done: Option<Shared<T>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
    orphan: Option<BoxLoad<T>>,
}

impl<T> FlightState<T> {
    fn release(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if matches!(s, Slot::Waiting(_)) {
                *s = Slot::Free;
                self.free.push(slot);
                self.live -= 1;
            }
        }
    }

    /// Wakes one waiter that has been polled (the others will see the orphan
    /// on their first poll).
    fn wake_one(&mut self) {
        for slot in &self.slots {
            if let Slot::Waiting(Some(w)) = slot {
                w.wake_by_ref();
                return;
            }
        }
    }
}

impl<T> Flight<T> {
    pub(crate) fn new(fence: Fence) -> Flight<T> {
        Flight {
            fence,
            state: Mutex::new(FlightState {
                done: None,
                slots: Vec::new(),
                free: Vec::new(),
                live: 0,
                orphan: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FlightState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a waiter; returns its slot.
    pub(crate) fn register(&self) -> usize {
        let mut st = self.lock();
        st.live += 1;
        match st.free.pop() {
            Some(i) => {
                st.slots[i] = Slot::Waiting(None);
                i
            }
            None => {
                st.slots.push(Slot::Waiting(None));
                st.slots.len() - 1
            }
        }
    }

    /// Publishes the result and wakes every waiter.
    pub(crate) fn publish(&self, shared: &Shared<T>)
    where
        T: Clone,
    {
        let wakers: Vec<Waker> = {
            let mut st = self.lock();
            st.done = Some(shared.clone());
            st.slots
                .iter_mut()
                .filter_map(|s| match s {
                    Slot::Waiting(w) => w.take(),
                    Slot::Free => None,
                })
                .collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Leaves `load` for a waiter to take over. Returns it back when no
    /// waiter is left (nor a result published).
    pub(crate) fn offer(&self, load: BoxLoad<T>) -> Option<BoxLoad<T>> {
        let mut st = self.lock();
        if st.done.is_some() || st.live == 0 {
            return Some(load);
        }
        st.orphan = Some(load);
        st.wake_one();
        None
    }
}

/// What a waiter is woken for.
pub(crate) enum Woken<T> {
    /// The load finished: its result.
    Done(Shared<T>),
    /// The load's driver went away: drive it on.
    TakeOver(BoxLoad<T>),
}

/// A caller waiting for another's load.
pub(crate) struct Waiter<T: Clone, St: Store<T>> {
    pub(crate) core: Arc<Core<T, St>>,
    pub(crate) flight: Arc<Flight<T>>,
    slot: Option<usize>,
}

impl<T: Clone, St: Store<T>> Waiter<T, St> {
    pub(crate) fn new(core: Arc<Core<T, St>>, flight: Arc<Flight<T>>, slot: usize) -> Self {
        Waiter {
            core,
            flight,
            slot: Some(slot),
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Woken<T>> {
        let Some(slot) = self.slot else {
            return Poll::Pending;
        };
        let mut st = self.flight.lock();
        if let Some(done) = &st.done {
            let done = done.clone();
            st.release(slot);
            self.slot = None;
            return Poll::Ready(Woken::Done(done));
        }
        if let Some(load) = st.orphan.take() {
            st.release(slot);
            self.slot = None;
            return Poll::Ready(Woken::TakeOver(load));
        }
        if let Some(Slot::Waiting(w)) = st.slots.get_mut(slot) {
            match w {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl<T: Clone, St: Store<T>> Drop for Waiter<T, St> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let orphan = {
            let mut st = self.flight.lock();
            st.release(slot);
            match st.orphan.take() {
                // Pass the load on to another waiter.
                Some(load) if st.live > 0 => {
                    st.orphan = Some(load);
                    st.wake_one();
                    None
                }
                other => other,
            }
        };
        if let Some(load) = orphan {
            self.core.settle(&self.flight, load);
        }
    }
}

/// The caller (or background task) that drives a flight's load.
pub(crate) struct Driver<T: Clone, St: Store<T>> {
    core: Arc<Core<T, St>>,
    pub(crate) flight: Arc<Flight<T>>,
    load: Option<BoxLoad<T>>,
    polling: bool,
}

impl<T: Clone, St: Store<T>> Driver<T, St> {
    pub(crate) fn new(core: Arc<Core<T, St>>, flight: Arc<Flight<T>>, load: BoxLoad<T>) -> Self {
        Driver {
            core,
            flight,
            load: Some(load),
            polling: false,
        }
    }

    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Shared<T>> {
        let Some(load) = self.load.as_mut() else {
            return Poll::Pending;
        };
        self.polling = true;
        let out = load.as_mut().poll(cx);
        self.polling = false;
        match out {
            Poll::Ready(out) => {
                self.load = None;
                Poll::Ready(self.core.complete(&self.flight, out))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Clone, St: Store<T>> Drop for Driver<T, St> {
    fn drop(&mut self) {
        let Some(load) = self.load.take() else {
            return;
        };
        if self.polling {
            // The load panicked mid-poll: it cannot be driven on. Its waiters
            // get an error rather than a hang.
            drop(load);
            let out = LoadOutput {
                shared: Shared {
                    result: Err(CacheError::LoadPanicked),
                    failure: true,
                },
                keep: None,
            };
            self.core.complete(&self.flight, out);
            return;
        }
        self.core.settle(&self.flight, load);
    }
}
