//! The hit counter: hits are the one thing every request of a hot cache
//! writes, so they are counted without a locked instruction and without a
//! cache line shared between threads.
//!
//! Each thread claims one of [`LINES`] counter lines for as long as it lives
//! (the claim returns to a free list when the thread exits), and only the
//! owner of a line writes it, so a hit is a plain load, add and store on a
//! line of the thread's own: exact, with no lost counts. Threads beyond the
//! first `LINES` alive at once share one more line, counted with a relaxed
//! `fetch_add`. A snapshot adds the lines up (relaxed loads: recent counts,
//! not one consistent cut, like every counter of the snapshot).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Lines owned by one thread each.
const LINES: usize = 32;

/// One counter on a cache line of its own (128 bytes: adjacent-line
/// prefetchers fetch lines in pairs).
#[derive(Default)]
#[repr(align(128))]
struct Line(AtomicU64);

/// Counts hits. See the [module docs](self).
#[derive(Default)]
pub(crate) struct Hits {
    owned: [Line; LINES],
    shared: Line,
}

/// A thread's claim on a line index, given back when the thread exits.
struct Claim(Option<usize>);

/// Line indexes given back by threads that exited.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// Line indexes never claimed yet start here.
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Claim {
    fn take() -> Claim {
        let freed = FREE.lock().unwrap_or_else(|p| p.into_inner()).pop();
        Claim(freed.or_else(|| {
            NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < LINES).then_some(n + 1)
            })
            .ok()
        }))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            FREE.lock().unwrap_or_else(|p| p.into_inner()).push(i);
        }
    }
}

thread_local! {
    static CLAIM: Claim = Claim::take();
}

impl Hits {
    /// Counts one hit.
    #[inline]
    pub(crate) fn inc(&self) {
        // `None` after the thread's claim is gone (a hit from another
        // thread-local's destructor), or when every line is taken.
        match CLAIM.try_with(|c| c.0).ok().flatten() {
            Some(i) => {
                let line = &self.owned[i % LINES].0;
                // Only this thread writes this line while it owns it, and a
                // claim passes between threads through the `FREE` lock.
                line.store(line.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            }
            None => {
                self.shared.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The hits counted so far.
    pub(crate) fn get(&self) -> u64 {
        self.owned
            .iter()
            .chain(std::iter::once(&self.shared))
            .fold(0u64, |sum, l| sum.wrapping_add(l.0.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn hits_from_more_threads_than_lines_add_up() {
        let hits = Arc::new(Hits::default());
        // Two waves, so the second reuses the lines the first gave back,
        // and more threads in each than there are lines.
        for _ in 0..2 {
            let threads: Vec<_> = (0..LINES + 8)
                .map(|_| {
                    let hits = hits.clone();
                    std::thread::spawn(move || (0..1000).for_each(|_| hits.inc()))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        assert_eq!(hits.get(), 2 * (LINES as u64 + 8) * 1000);
    }
}
