//! A future written with `std` alone: nothing from this crate is imported.
//!
//! It runs on our executor all the same, because the only thing the two
//! share is `std::task::Waker`. The "event source" here is a plain thread
//! that sleeps, then calls the waker it was handed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

// ANCHOR: thread_timer
/// Ready `after` some time, measured by a thread of its own.
pub struct ThreadTimer {
    /// Set by the thread when the time is up; and the waker to call then.
    shared: Arc<Mutex<(bool, Option<Waker>)>>,
}

impl ThreadTimer {
    /// Starts the thread at once; the future only looks at the flag.
    pub fn after(duration: Duration) -> ThreadTimer {
        let shared = Arc::new(Mutex::new((false, None::<Waker>)));
        let theirs = Arc::clone(&shared);
        let timer = move || {
            thread::sleep(duration);
            let mut state = theirs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            state.0 = true;
            if let Some(waker) = state.1.take() {
                waker.wake(); // whoever polled us last: any executor at all
            }
        };
        // A name, so that the trace can say who woke the task. If no thread
        // can be started, the timer runs out here, now: late, never lost.
        if let Err(e) = thread::Builder::new().name("timer-thread".into()).spawn(timer) {
            eprintln!("ThreadTimer: no thread ({e}); the timer is over at once");
            shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0 = true;
        }
        ThreadTimer { shared }
    }
}

impl Future for ThreadTimer {
    type Output = &'static str;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
        let mut state = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.0 {
            return Poll::Ready("done, woken by a plain std thread");
        }
        state.1 = Some(cx.waker().clone()); // the latest waker, in case we moved
        Poll::Pending
    }
}
// ANCHOR_END: thread_timer
