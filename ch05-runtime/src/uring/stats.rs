//! What the completion driver counts: the figures behind "system calls per
//! request" in the bench and the demo.

use std::sync::atomic::AtomicU64;

/// The driver's counters (see [`Stats`]).
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// `io_uring_enter` calls made by the driver thread.
    pub(super) enters: AtomicU64,
    /// Writes to the eventfd.
    pub(super) wakeups: AtomicU64,
    /// Operations submitted by futures.
    pub(super) operations: AtomicU64,
    /// ASYNC_CANCELs pushed.
    pub(super) cancels: AtomicU64,
    /// Futures dropped while the kernel had their operation.
    pub(super) abandoned: AtomicU64,
}

/// What the completion driver has done since it started: the figures behind
/// "system calls per request". All zero if it never started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `io_uring_enter` calls, all made by the driver thread: each submits
    /// everything queued since the last one and sleeps until a completion.
    pub enters: u64,
    /// Writes to the driver's eventfd (one system call each, made by the
    /// task that submitted while the driver slept).
    pub wakeups: u64,
    /// Operations the leaf futures submitted (CONNECT, SEND, RECV, TIMEOUT).
    pub operations: u64,
    /// Futures dropped while the kernel had their operation: each one's
    /// memory went to the driver, and an ASYNC_CANCEL was asked for.
    pub abandoned: u64,
    /// ASYNC_CANCELs sent. Fewer than `abandoned` when an operation
    /// completed before the driver got round to cancelling it.
    pub cancels: u64,
    /// Operations in the table now: queued, in flight, done and not yet
    /// taken, or abandoned.
    pub pending: u64,
    /// Operations submitted that the driver has not pushed onto the ring yet.
    pub queued: u64,
    /// Operations whose future was dropped while the kernel had them, and
    /// whose completion has not arrived yet: the driver holds their memory.
    pub parked: u64,
}

impl std::ops::Sub for Stats {
    type Output = Stats;
    /// The counts between two snapshots (the gauges, `pending`, `queued`
    /// and `parked`, are the later snapshot's).
    fn sub(self, earlier: Stats) -> Stats {
        Stats {
            enters: self.enters.saturating_sub(earlier.enters),
            wakeups: self.wakeups.saturating_sub(earlier.wakeups),
            operations: self.operations.saturating_sub(earlier.operations),
            abandoned: self.abandoned.saturating_sub(earlier.abandoned),
            cancels: self.cancels.saturating_sub(earlier.cancels),
            ..self
        }
    }
}
