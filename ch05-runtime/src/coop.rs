//! Cooperation: [`yield_now`], and the budget that makes a busy task yield.
//!
//! A cooperative executor gets its thread back only when a poll returns. A
//! task that waits now and then returns `Pending` often enough. But a task
//! whose leaf futures are *always* ready never does: a channel fed faster
//! than it is drained, a socket a client keeps flooding. Each `recv().await`
//! or `read().await` is then ready at once, the `async fn` goes straight on to
//! the next one, and the poll never ends. Every other task on the thread
//! waits: timers fire late, other clients are not answered.
//!
//! The cure, tokio's `coop`, which we follow: each poll of a task gets a
//! **budget** of [`DEFAULT_BUDGET`] units. Every leaf future of this crate
//! that is about to return `Ready` spends one unit first (a channel `recv`,
//! a socket `read`/`write`/`accept`/`connect`, a `JoinHandle`, a `sleep`
//! that is due). When the budget is spent, the leaf future wakes its own
//! task and returns `Pending` instead, as if it had to wait. The task goes
//! to the back of the run queue; the others run; its next poll starts with a
//! fresh budget. Nothing is lost: the value stays in the channel, the bytes
//! stay in the socket, until the next poll takes them.
//!
//! ```text
//!   poll of task 7, budget 128
//!     recv() Ready (127 left) → recv() Ready (126 left) → ... → recv() Ready (0 left)
//!     recv(): no unit left: wake task 7, return Pending
//!   task 7 → back of the run queue; tasks 8, 9, 10 run; task 7 again, budget 128
//! ```
//!
//! A unit is only *spent* when the leaf future really returns `Ready`: one
//! that has to wait anyway (`WouldBlock`, an empty channel) gives its unit
//! back ([`Unit`]'s `Drop`). So a task that waits normally never notices the
//! budget.
//!
//! What a budget cannot do: a poll that computes for 100 ms without touching
//! a leaf future spends nothing, and nothing stops it. Only the code itself
//! can yield ([`yield_now`], or spending budget with [`consume_budget`]), or
//! a preemptive scheduler can take the thread back (chapter 2's fibers show
//! one; a stackless future has no stack of its own to be suspended on, so
//! it cannot be preempted at all). The runtime can only *report* such a poll
//! (the slow-poll detector, see `Builder::slow_poll_threshold`).
//!
//! Outside a task of this runtime (another executor, `waker::block_on`) no
//! budget is set, and every leaf future proceeds as if the budget were
//! infinite: the budget is a promise between our executor and our leaf
//! futures, and nobody else needs to know about it.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Units per poll, unless the runtime's builder says otherwise.
///
/// The same number as tokio's. Large enough that a task which does real
/// work per value (parses it, writes it somewhere) spends a good part of a
/// millisecond or more before it yields, so yielding costs little; small
/// enough that a task which only moves values along, at tens of
/// nanoseconds each, yields every few microseconds.
pub const DEFAULT_BUDGET: u32 = 128;

thread_local! {
    /// Units left in the current poll; `None`: no budget (not inside a
    /// task of ours, or the runtime's budget is off).
    static BUDGET: Cell<Option<u32>> = const { Cell::new(None) };
    /// Set when a leaf future found the budget spent: the poll that just
    /// ended was a long one, and the executor lets the others in at once.
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

// ANCHOR: with_budget
/// Runs `poll` (one poll of a task) with `budget` units, and puts back the
/// budget that was there before, even if `poll` panics.
pub(crate) fn with_budget<R>(budget: Option<u32>, poll: impl FnOnce() -> R) -> R {
    /// Restores the budget when dropped.
    struct Restore(Option<u32>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = BUDGET.try_with(|budget| budget.set(self.0));
        }
    }
    let _restore = Restore(BUDGET.with(|current| current.replace(budget)));
    poll()
}
// ANCHOR_END: with_budget

// ANCHOR: poll_proceed
/// For a leaf future about to do its work: a [`Unit`] of the task's budget,
/// or `Pending` (with the task already woken, so it runs again soon) when
/// the budget is spent.
///
/// Keep the unit while you try; call [`Unit::spend`] when you return
/// `Ready`. If you return `Pending` instead, drop it: the unit goes back.
///
/// ```
/// use std::task::{Context, Poll, ready};
/// use ch05_runtime::coop;
///
/// /// A leaf future's `poll`: `try_take` stands for a non-blocking attempt.
/// fn poll_take(cx: &mut Context<'_>, try_take: impl FnOnce() -> Option<u32>) -> Poll<u32> {
///     let unit = ready!(coop::poll_proceed(cx)); // budget spent: Pending, task woken
///     match try_take() {
///         Some(value) => {
///             unit.spend(); // we are Ready: the unit is used up
///             Poll::Ready(value)
///         }
///         None => Poll::Pending, // (after leaving cx.waker() where the value will come from)
///                                // `unit` is dropped here and goes back
///     }
/// }
/// # let waker = std::task::Waker::noop();
/// # assert_eq!(poll_take(&mut Context::from_waker(waker), || Some(3)), Poll::Ready(3));
/// ```
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<Unit> {
    let taken = BUDGET.with(|budget| match budget.get() {
        None => Some(false), // no budget here: proceed, nothing to count
        Some(0) => None,
        Some(left) => {
            budget.set(Some(left - 1));
            Some(true)
        }
    });
    match taken {
        Some(counted) => Poll::Ready(Unit { counted, not_send: PhantomData }),
        None => {
            // Out of budget: behave as if we had to wait, but wake ourselves
            // at once, so the task goes to the back of the run queue instead
            // of waiting for an event. And tell the executor (see
            // `take_exhausted`).
            EXHAUSTED.with(|exhausted| exhausted.set(true));
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

// ANCHOR_END: poll_proceed

/// One unit of the current poll's budget, taken by [`poll_proceed`].
///
/// Dropped without [`spend`](Unit::spend), it goes back to the budget. It
/// belongs to one poll on one thread: it is neither `Send` nor meant to be
/// kept across an `.await`.
#[must_use = "call spend() when returning Ready; dropping the unit gives it back"]
#[derive(Debug)]
pub struct Unit {
    /// Whether a unit was really taken (`false` where there is no budget).
    counted: bool,
    /// A raw pointer makes the type `!Send`: the unit belongs to this
    /// thread's budget.
    not_send: PhantomData<*const ()>,
}

impl Unit {
    /// The leaf future returns `Ready`: the unit stays spent.
    pub fn spend(mut self) {
        self.counted = false; // so that `drop` gives nothing back
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if self.counted {
            let _ = BUDGET.try_with(|budget| budget.set(budget.get().map(|left| left + 1)));
        }
    }
}

/// Spends one unit of the task's budget, yielding first if there is none
/// left: for a future of your own that loops over work that is always
/// ready (say, items of a `Vec` it computes on), to take part in the
/// budget as this crate's leaf futures do.
pub async fn consume_budget() {
    poll_fn(|cx| {
        ready!(poll_proceed(cx)).spend();
        Poll::Ready(())
    })
    .await
}

/// Whether a leaf future found the budget spent since the last call (and
/// forget it). The executor asks after each poll: a poll that spent its
/// whole budget did 128 things, perhaps for a long time, so the tasks that
/// other threads woke meanwhile, and the driver, get their turn right away
/// rather than after the usual number of polls.
pub(crate) fn take_exhausted() -> bool {
    EXHAUSTED.with(|exhausted| exhausted.replace(false))
}

/// How many units the current poll has left: `None` outside a task of this
/// runtime or with the budget off.
pub fn budget_remaining() -> Option<u32> {
    BUDGET.with(Cell::get)
}

/// Runs `f` without a budget (every leaf future proceeds), and puts the
/// budget back after. For a timer that must be able to fire even after the
/// future it limits has spent the whole budget (see `time::Timeout`).
pub(crate) fn unconstrained<R>(f: impl FnOnce() -> R) -> R {
    with_budget(None, f)
}

// ANCHOR: yield_now
/// Lets the other tasks run: returns `Pending` once, after waking its own
/// task, so the task goes to the back of the run queue and is polled again
/// after the tasks ahead of it.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use ch05_runtime::{Runtime, coop::yield_now, spawn};
/// let runtime = Runtime::new()?;
/// let order = runtime.block_on(async {
///     let (tx, rx) = std::sync::mpsc::channel();
///     let (a, b) = (tx.clone(), tx);
///     let first = spawn(async move { for _ in 0..2 { a.send("a").unwrap(); yield_now().await; } });
///     let second = spawn(async move { for _ in 0..2 { b.send("b").unwrap(); yield_now().await; } });
///     let _ = (first.await, second.await);
///     rx.try_iter().collect::<String>()
/// });
/// assert_eq!(order, "abab"); // they take turns
/// # Ok(())
/// # }
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future [`yield_now`] returns.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: .await it"]
pub struct YieldNow {
    /// Whether it has returned `Pending` once already.
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref(); // "poll me again", straight away
        Poll::Pending
    }
}
// ANCHOR_END: yield_now

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[test]
    fn a_unit_comes_back_unless_spent_and_none_is_taken_without_a_budget() {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(poll_proceed(&mut cx).is_ready(), "no budget: always proceed");
        assert_eq!(budget_remaining(), None);
        with_budget(Some(2), || {
            let Poll::Ready(unit) = poll_proceed(&mut cx) else { panic!("2 units left") };
            assert_eq!(budget_remaining(), Some(1));
            drop(unit); // as a leaf future that had to wait
            assert_eq!(budget_remaining(), Some(2), "the unit came back");
            for left in [1, 0] {
                let Poll::Ready(unit) = poll_proceed(&mut cx) else { panic!("units left") };
                unit.spend();
                assert_eq!(budget_remaining(), Some(left));
            }
            assert!(poll_proceed(&mut cx).is_pending(), "spent: Pending");
            assert!(unconstrained(|| poll_proceed(&mut cx).is_ready()), "unconstrained proceeds");
            assert_eq!(budget_remaining(), Some(0));
        });
        assert_eq!(budget_remaining(), None, "the budget belongs to one poll");
    }
}
