//! Exercise 4.2: an `async fn`, written by hand.
//!
//! Here is a two-GET program as the `async fn` you would write,
//! [`greet_async`]. Write the state machine the compiler makes of it, by
//! hand, like chapter 4's `FetchThree`: an enum with one variant per
//! `.await`, each holding only what the code after that point still needs,
//! and a `poll` that moves from state to state.
//!
//! The check compares sizes too: a hand-written coroutine can be *smaller*
//! than the compiler's, because an `async fn` keeps its arguments alive to
//! its end, while your last state need not carry `fetch`.
//!
//! Check it: `cargo run -p ch04-exercises -- 2`

// Starter code: `todo!()` leaves the imports unused. Delete this line when
// your code uses them.
#![allow(unused_imports)]

use std::io;

use ch04_coroutines::future::{AsStd, Future, PollState};
use ch04_coroutines::http::Fetch;

/// The delays (ms) of the two GETs.
pub const DELAYS: [u64; 2] = [30, 10];

/// The program as the `async fn` you would write. [`Greet`] is the same
/// program as a hand-written state machine.
pub async fn greet_async<F: Fetch>(fetch: F) -> io::Result<String> {
    let name = AsStd(fetch.get(DELAYS[0], "world")).await?;
    let greeting = AsStd(fetch.get(DELAYS[1], &format!("hello-{name}"))).await?;
    Ok(format!("{greeting}, {name}!"))
}

/// [`greet_async`] by hand: one variant per `.await`, each holding only what
/// the code after that `.await` still needs.
pub enum Greet<F: Fetch> {
    /// Created, not polled yet: the function's argument.
    Start {
        /// Makes the GETs.
        fetch: F,
    },
    // Your states: one per `.await`, each holding what the code after that
    // `.await` still needs.
    /// Finished: polling again panics.
    Done,
}

impl<F: Fetch> Greet<F> {
    /// Like calling `greet_async(fetch)`: stores the argument, runs nothing.
    pub fn new(fetch: F) -> Greet<F> {
        Greet::Start { fetch }
    }
}

impl<F: Fetch> Future for Greet<F> {
    type Output = io::Result<String>;

    fn poll(&mut self) -> PollState<io::Result<String>> {
        todo!("from the current state, run to the next NotReady of a leaf, or to the end")
    }
}
