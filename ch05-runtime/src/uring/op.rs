//! [`Op`]: one operation in flight, as a future that owns what the kernel uses.
//!
//! Under epoll a read future owns nothing: the kernel copies the bytes into
//! the caller's buffer *during* the `read` call, inside one poll, and
//! dropping the future between polls loses nothing. Under io_uring the
//! kernel writes into the buffer *between* polls, whenever the data comes.
//! Three ways to own that buffer, and why only the last one is sound:
//!
//! - **Borrowed** (`read(&mut buf)`, as `net.rs` does): the borrow ends when
//!   the future is dropped, and the caller may free the buffer while the
//!   kernel still writes into it. Worse, `std::mem::forget(future)` is safe
//!   code: no destructor runs at all, the borrow still ends, and there is
//!   nothing left to even ask for a cancel.
//! - **Pinned inside the future** (`Pin` promises the memory is not reused
//!   until `drop` has run, chapter 6): still freed by that `drop`, and the
//!   kernel may not be done. A `drop` that *waited* for the completion
//!   would block the executor's thread, and every other task with it.
//! - **Owned by the operation**: the buffer is moved into the future and
//!   comes back with the result. If the future is dropped first, it hands
//!   the buffer to the driver, which frees it when the completion says the
//!   kernel has let go. If the future is forgotten, the buffer is leaked,
//!   never freed: harmless. That is what tokio-uring, monoio and glommio
//!   do, and what this `Op` does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ch03_epoll::uring::Sqe;

use super::Driver;
use crate::coop;

// ANCHOR: op
/// An operation submitted to the completion driver, and the memory `M` it
/// points the kernel at. Resolves to the kernel's result (a count, or
/// `-errno`) and `M`, handed back.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled: .await it"]
pub(crate) struct Op<M: Send + 'static> {
    /// Its id: its entry in the driver's table, and its SQE's `user_data`.
    id: u64,
    /// The driver it was submitted to.
    driver: &'static Driver,
    /// What the kernel reads or writes; `None` once handed back.
    memory: Option<M>,
}

impl<M: Send + 'static> Op<M> {
    /// Hands `sqe` to the driver, and keeps `memory` until the operation
    /// completes. Fails, giving `memory` back, if the driver cannot start
    /// (io_uring unavailable).
    ///
    /// # Safety
    ///
    /// Every address in `sqe` must point into `memory`'s heap part (a
    /// `Vec`'s buffer, a `Box`'s contents): memory that does not move when
    /// `memory` is moved, and that nothing else reads or writes until the
    /// operation completes. Any file descriptor in `sqe` must be one that
    /// `memory` keeps open, so that its number cannot be reused for another
    /// file before the kernel has taken the SQE. The `Op` does the rest: it
    /// gives `memory` back only with the completion, and if dropped before
    /// that, gives it to the driver to keep until then.
    pub(crate) unsafe fn submit(sqe: Sqe, memory: M) -> Result<Op<M>, (io::Error, M)> {
        match Driver::get() {
            Ok(driver) => Ok(Op { id: driver.submit(sqe), driver, memory: Some(memory) }),
            Err(e) => Err((e, memory)),
        }
    }
}

impl<M: Send + Unpin + 'static> Future for Op<M> {
    type Output = (i32, M);

    /// `Ready` once the driver has the completion; spends one unit of the
    /// task's budget then, like every leaf future of this crate.
    ///
    /// # Panics
    ///
    /// If polled again after `Ready` (the crate's leaf futures are `async
    /// fn`s around an `Op`, which never do).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, M)> {
        let this = self.get_mut(); // no self-references: `Op` is `Unpin`
        let unit = ready!(coop::poll_proceed(cx));
        let res = ready!(this.driver.poll(this.id, cx.waker())); // Pending: the unit goes back
        unit.spend();
        let memory = this.memory.take().expect("an Op is not polled after it returned Ready");
        Poll::Ready((res, memory))
    }
}

impl<M: Send + 'static> Drop for Op<M> {
    /// Dropped before `Ready`: the kernel may still be using the memory, so
    /// it goes to the driver, which frees it once the completion arrives
    /// (and sends an ASYNC_CANCEL to hurry that along). Dropping is not
    /// cancelling: it is asking.
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.driver.abandon(self.id, Box::new(memory));
        }
    }
}
// ANCHOR_END: op

/// A CQE's `res` as a count, or the error it carries as `-errno`.
pub(crate) fn count(res: i32) -> io::Result<usize> {
    usize::try_from(res).map_err(|_| io::Error::from_raw_os_error(-res))
}
