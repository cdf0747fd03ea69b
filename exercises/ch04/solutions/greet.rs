//! Exercise 4.2, solved: an `async fn`, written by hand.

use std::io;

use ch04_coroutines::future::{AsStd, Future, PollState};
use ch04_coroutines::http::Fetch;

/// The delays (ms) of the two GETs.
pub const DELAYS: [u64; 2] = [30, 10];

// ANCHOR: async_fn
/// The program as the `async fn` you would write. [`Greet`] is the same
/// program as a hand-written state machine.
pub async fn greet_async<F: Fetch>(fetch: F) -> io::Result<String> {
    let name = AsStd(fetch.get(DELAYS[0], "world")).await?;
    let greeting = AsStd(fetch.get(DELAYS[1], &format!("hello-{name}"))).await?;
    Ok(format!("{greeting}, {name}!"))
}
// ANCHOR_END: async_fn

// ANCHOR: states
/// [`greet_async`] by hand: one variant per `.await`, each holding only what
/// the code after that `.await` still needs.
pub enum Greet<F: Fetch> {
    /// Created, not polled yet: the function's argument.
    Start {
        /// Makes the GETs.
        fetch: F,
    },
    /// At the first `.await`: `fetch` is still needed for the second GET.
    AwaitingName {
        /// Makes the second GET.
        fetch: F,
        /// `GET /30/world`.
        get: F::Get,
    },
    /// At the second `.await`: `fetch` is done with (the async fn keeps it
    /// to its end anyway); `name` is needed for the answer.
    AwaitingGreeting {
        /// The first answer.
        name: String,
        /// `GET /10/hello-<name>`.
        get: F::Get,
    },
    /// Finished: polling again panics.
    Done,
}
// ANCHOR_END: states

impl<F: Fetch> Greet<F> {
    /// Like calling `greet_async(fetch)`: stores the argument, runs nothing.
    pub fn new(fetch: F) -> Greet<F> {
        Greet::Start { fetch }
    }
}

// ANCHOR: poll
impl<F: Fetch> Future for Greet<F> {
    type Output = io::Result<String>;

    fn poll(&mut self) -> PollState<io::Result<String>> {
        // Go through every state whose leaf is ready; stop at a NotReady
        // (keeping the state) or at the end. A NotReady that no leaf gave
        // would never be followed by another poll: nothing would wake us.
        loop {
            match std::mem::replace(self, Greet::Done) {
                Greet::Start { fetch } => {
                    let get = fetch.get(DELAYS[0], "world");
                    *self = Greet::AwaitingName { fetch, get };
                }
                Greet::AwaitingName { fetch, mut get } => match get.poll() {
                    PollState::NotReady => {
                        *self = Greet::AwaitingName { fetch, get };
                        return PollState::NotReady;
                    }
                    PollState::Ready(Err(e)) => return PollState::Ready(Err(e)), // the `?`
                    PollState::Ready(Ok(name)) => {
                        let get = fetch.get(DELAYS[1], &format!("hello-{name}"));
                        // `fetch` is dropped here: no later state needs it.
                        *self = Greet::AwaitingGreeting { name, get };
                    }
                },
                Greet::AwaitingGreeting { name, mut get } => match get.poll() {
                    PollState::NotReady => {
                        *self = Greet::AwaitingGreeting { name, get };
                        return PollState::NotReady;
                    }
                    PollState::Ready(Err(e)) => return PollState::Ready(Err(e)),
                    PollState::Ready(Ok(greeting)) => return PollState::Ready(Ok(format!("{greeting}, {name}!"))),
                },
                Greet::Done => panic!("Greet polled after it returned Ready"),
            }
        }
    }
}
// ANCHOR_END: poll
