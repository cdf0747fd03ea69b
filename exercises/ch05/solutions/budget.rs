//! Exercise 5.4, solved: a leaf future that takes part in the cooperative budget.

use std::future::poll_fn;
use std::task::{Context, Poll, ready};

use ch05_runtime::coop;

/// 0, 1, 2, ...: always one more, at once.
#[derive(Debug, Default)]
pub struct Numbers {
    /// The next number to hand out.
    next: u64,
}

// ANCHOR: poll_next
impl Numbers {
    /// The next number. Ready at once, but only while the task has budget
    /// left; then `Pending`, with the task already woken.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        // No unit left: `poll_proceed` woke the task and says Pending, and
        // `ready!` returns that. Outside a runtime's task it always proceeds.
        let unit = ready!(coop::poll_proceed(cx));
        let number = self.next;
        self.next += 1;
        unit.spend(); // we return Ready: the unit is used up
        Poll::Ready(number)
    }
    // ANCHOR_END: poll_next

    /// Waits for the next number (see [`poll_next`](Self::poll_next)).
    pub async fn next(&mut self) -> u64 {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}
