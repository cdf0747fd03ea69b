//! A waker that counts how often it was woken, for checks that poll futures
//! by hand: a lost wake-up is then named, not waited for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};
use std::time::Duration;

/// The longest a check lets its futures run on the runtime: a lost wake-up
/// becomes a message after this, instead of a hang. It judges no speed.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Counts the wakes of the wakers made from it.
#[derive(Debug, Default)]
pub struct Wakes(AtomicUsize);

impl Wakes {
    /// A new count at zero, and a waker that adds to it.
    pub fn new() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (Arc::clone(&wakes), Waker::from(wakes))
    }

    /// Wakes so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
