//! The check of exercise 4.3: sleeps on chapter 4's executor, which polls
//! a task again only when `epoll` reports one of its file descriptors. The
//! deadlines are checked against the clock (never before), the order of
//! three sleeps 20 ms apart, the event queue after each (empty), and a
//! `Sleep` dropped while it waits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ch04_coroutines::combinators::then;
use ch04_coroutines::future::{Future, PollState, ready};
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::{self, Executor};
use ch04_exercises::sleep::sleep;
use exercise_harness::{Verdict, ensure};

/// The longest the executor waits for any event: a timer that never fires
/// becomes an error after this, instead of a hang. It judges no speed.
const PATIENCE: Duration = Duration::from_secs(10);

pub fn check() -> Verdict {
    let mut executor = Executor::new(&Log::silent()).map_err(|e| e.to_string())?.with_wait_timeout(PATIENCE);

    let asked = Duration::from_millis(20);
    let start = Instant::now();
    executor.block_on(sleep(asked)).map_err(explain)?.map_err(|e| format!("sleep failed: {e}"))?;
    let slept = start.elapsed();
    ensure!(slept >= asked, "sleep({asked:?}) was over after {slept:?}, before its time");
    ensure!(registered()? == 0, "after the sleep was over, its timer was still registered: deregister it");
    let stats = executor.stats();
    ensure!(
        stats.polls <= 1 + stats.events,
        "the executor polled {} times for {} event(s): a sleep should be polled once to start, then once per \
         event",
        stats.polls,
        stats.events
    );

    executor
        .block_on(sleep(Duration::ZERO))
        .map_err(|e| {
            format!(
                "sleep(0) never finished ({e}). Careful: a timerfd set to all zeros is *disarmed*, it never fires; \
             ask for at least 1 ns"
            )
        })?
        .map_err(|e| format!("sleep(0) failed: {e}"))?;

    // Three tasks, started longest first: they must finish shortest first.
    let finished = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<Box<dyn Future<Output = ()>>> = [60, 20, 40]
        .into_iter()
        .map(|ms| {
            let finished = Rc::clone(&finished);
            let task = then(sleep(Duration::from_millis(ms)), move |result| {
                finished.borrow_mut().push((ms, result.is_ok()));
                ready(())
            });
            Box::new(task) as Box<dyn Future<Output = ()>>
        })
        .collect();
    executor.run(tasks).map_err(explain)?;
    let order: Vec<u64> = finished.borrow().iter().map(|&(ms, _)| ms).collect();
    ensure!(order == [20, 40, 60], "sleeps of 60, 20 and 40 ms, started together, finished in the order {order:?}");
    ensure!(finished.borrow().iter().all(|&(_, ok)| ok), "a sleep failed: {:?}", finished.borrow());

    // A Sleep dropped while it waits must leave the event queue.
    let counts = Rc::new(Cell::new((0, 0)));
    executor.block_on(DropWhileWaiting { counts: Rc::clone(&counts) }).map_err(explain)?;
    let (while_waiting, after_drop) = counts.get();
    ensure!(
        while_waiting == 1,
        "after its first poll, a sleep of an hour had {while_waiting} registration(s): the first poll should set \
         the timer and register it (one)"
    );
    ensure!(
        after_drop == 0,
        "a Sleep dropped while it waited (cancelled) left its timer registered: deregister it in Drop, or the \
         event queue keeps a token whose future is gone"
    );
    Ok(())
}

/// Polls an hour-long sleep once, notes the registrations, drops it, notes
/// them again, and finishes.
struct DropWhileWaiting {
    /// (registrations while the sleep waited, registrations after its drop).
    counts: Rc<Cell<(usize, usize)>>,
}

impl Future for DropWhileWaiting {
    type Output = ();

    fn poll(&mut self) -> PollState<()> {
        let mut nap = sleep(Duration::from_secs(3600));
        let _ = nap.poll();
        let during = runtime::registered().unwrap_or(usize::MAX);
        drop(nap);
        self.counts.set((during, runtime::registered().unwrap_or(usize::MAX)));
        PollState::Ready(())
    }
}

/// How many file descriptors the executor's event queue watches.
fn registered() -> Result<usize, String> {
    runtime::registered().map_err(|e| e.to_string())
}

/// The executor's error, with what it means for a sleep.
fn explain(e: std::io::Error) -> String {
    format!(
        "the executor failed: {e}. (A leaf may return NotReady only after registering what it waits for, \
         here the timerfd, for READABLE; the executor sleeps in epoll_wait until then.)"
    )
}
