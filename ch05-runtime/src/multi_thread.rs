//! The multi-threaded executor: `n` worker threads share the runtime's one
//! queue, the injector.
//!
//! Every wake goes into the injector, and each worker takes the oldest task
//! from it, runs it, and takes the next; a worker that finds it empty waits
//! on a condition variable until a wake pushes a task. One shared queue in
//! arrival order is fair by construction (a task that yields goes to the
//! back, behind every task woken meanwhile, timers and I/O included), so
//! the single-threaded loop's intervals have nothing to do here; the
//! cooperative budget still applies to each poll. The price is one lock per
//! task taken: tokio gives each worker a queue of its own and lets idle
//! workers steal from busy ones, which the chapter's page describes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::coop;
use crate::scheduler::{Enter, Shared};
use crate::trace::WakeSource;
use crate::waker::Signal;

// ANCHOR: worker
/// A worker thread: poll phase (take a task from the injector, run it),
/// wait phase (no task: sleep on the condition variable until a wake pushes
/// one), until the runtime shuts down.
pub(crate) fn worker(shared: Arc<Shared>) {
    let _enter = Enter::new(&shared, true);
    while let Some(task) = shared.next_injected_or_sleep() {
        task.run();
    }
}
// ANCHOR_END: worker

/// `block_on` on a multi-threaded runtime: the workers run the tasks; this
/// thread polls `future` when woken and parks in between.
pub(crate) fn block_on<F: Future>(shared: &Arc<Shared>, future: F) -> F::Output {
    let _enter = Enter::new(shared, false);
    let signal = Signal::for_current_thread();
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        let _source = WakeSource::BlockOn.enter();
        if let Poll::Ready(output) = coop::with_budget(shared.settings.budget, || future.as_mut().poll(&mut cx)) {
            return output;
        }
        signal.wait();
    }
}
