//! Instrumented leaf futures for tests: they need no network, count every
//! poll, and complain when polled after `Ready`.
//!
//! A [`Countdown`] returns `NotReady` a set number of times, then `Ready`.
//! A [`Script`] makes countdowns for the example coroutines in place of real
//! GETs, so a test can step a coroutine by hand and watch every transition.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use crate::future::{Future, PollState};
use crate::http::Fetch;

/// Counters shared by a group of instrumented futures (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The shared counters.
    inner: Rc<ProbeCounts>,
}

/// What a [`Probe`] counts.
#[derive(Debug, Default)]
struct ProbeCounts {
    /// Every poll of every future using this probe.
    polls: Cell<usize>,
    /// Polls that came after the future had returned `Ready` (a bug).
    polls_after_ready: Cell<usize>,
    /// Futures using this probe that were dropped (finished or cancelled).
    drops: Cell<usize>,
    /// Names of the futures that finished, in the order they finished.
    completed: RefCell<Vec<String>>,
}

impl Probe {
    /// A probe with all counts at zero.
    pub fn new() -> Probe {
        Probe::default()
    }

    /// Total polls so far.
    pub fn polls(&self) -> usize {
        self.inner.polls.get()
    }

    /// Polls after `Ready` so far (should stay 0).
    pub fn polls_after_ready(&self) -> usize {
        self.inner.polls_after_ready.get()
    }

    /// The futures that finished, in completion order.
    pub fn completed(&self) -> Vec<String> {
        self.inner.completed.borrow().clone()
    }

    /// Futures using this probe that were dropped so far, finished or not:
    /// a future dropped before `Ready` was cancelled.
    pub fn drops(&self) -> usize {
        self.inner.drops.get()
    }

    fn count_drop(&self) {
        self.inner.drops.set(self.inner.drops.get() + 1);
    }
}

/// A leaf that is `NotReady` for `not_ready` polls, then `Ready(output)`.
#[derive(Debug)]
pub struct Countdown<T> {
    /// Its name in [`Probe::completed`].
    name: String,
    /// `NotReady` answers left before `Ready`.
    not_ready: usize,
    /// The output, until it is handed out.
    output: Option<T>,
    /// Where the counts go.
    probe: Probe,
}

impl<T> Countdown<T> {
    /// A countdown named `name` that finishes on poll number `not_ready + 1`.
    pub fn new(name: &str, not_ready: usize, output: T, probe: &Probe) -> Countdown<T> {
        Countdown { name: name.to_string(), not_ready, output: Some(output), probe: probe.clone() }
    }
}

impl<T> Future for Countdown<T> {
    type Output = T;

    fn poll(&mut self) -> PollState<T> {
        let counts = &self.probe.inner;
        counts.polls.set(counts.polls.get() + 1);
        if self.output.is_none() {
            counts.polls_after_ready.set(counts.polls_after_ready.get() + 1);
            panic!("Countdown {:?} polled after it returned Ready", self.name);
        }
        if self.not_ready > 0 {
            self.not_ready -= 1;
            return PollState::NotReady;
        }
        counts.completed.borrow_mut().push(self.name.clone());
        PollState::Ready(self.output.take().expect("checked above"))
    }
}

impl<T> Drop for Countdown<T> {
    fn drop(&mut self) {
        self.probe.count_drop();
    }
}

/// Any future, counted: its polls and its drop go to a [`Probe`], and its
/// name to [`Probe::completed`] when it finishes. For futures this module
/// did not write (an [`HttpGetFuture`](crate::http::HttpGetFuture), say).
#[derive(Debug)]
pub struct Tracked<F> {
    /// Its name in [`Probe::completed`].
    name: String,
    /// The future being counted.
    future: F,
    /// Where the counts go.
    probe: Probe,
}

impl<F> Tracked<F> {
    /// Counts the polls and the drop of `future` in `probe`.
    pub fn new(name: &str, future: F, probe: &Probe) -> Tracked<F> {
        Tracked { name: name.to_string(), future, probe: probe.clone() }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(&mut self) -> PollState<F::Output> {
        let counts = &self.probe.inner;
        counts.polls.set(counts.polls.get() + 1);
        let state = self.future.poll();
        if matches!(state, PollState::Ready(_)) {
            counts.completed.borrow_mut().push(self.name.clone());
        }
        state
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        self.probe.count_drop();
    }
}

/// A [`Fetch`] whose GETs are countdowns: `get(delay, message)` is
/// `NotReady` `not_ready` times, then answers `message`, like the delay
/// server would. `fail_on` makes the GET for that message fail instead.
#[derive(Debug, Clone)]
pub struct Script {
    /// `NotReady` answers before each GET is ready.
    pub not_ready: usize,
    /// A message whose GET fails with `ConnectionReset`.
    pub fail_on: Option<String>,
    /// The shared counters.
    pub probe: Probe,
}

impl Fetch for Script {
    type Get = Countdown<io::Result<String>>;

    fn get(&self, _delay_ms: u64, message: &str) -> Self::Get {
        let output = if self.fail_on.as_deref() == Some(message) {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, format!("scripted failure for {message:?}")))
        } else {
            Ok(message.to_string())
        };
        Countdown::new(message, self.not_ready, output, &self.probe)
    }
}

/// Polls `future` by hand until `Ready`, at most `max_polls` times, and
/// returns the output and how many polls it took (`None` if it never finished).
pub fn poll_by_hand<F: Future>(future: &mut F, max_polls: usize) -> Option<(F::Output, usize)> {
    for poll in 1..=max_polls {
        if let PollState::Ready(output) = future.poll() {
            return Some((output, poll));
        }
    }
    None
}
