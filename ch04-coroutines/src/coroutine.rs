//! A non-leaf coroutine written by hand, and the `async fn` the compiler
//! turns into the same kind of state machine.
//!
//! The program: print, GET a first answer, print it, then two more GETs one
//! after the other while a counter (bytes received) lives across both awaits,
//! and return the counter. As an `async fn` it is a dozen lines (see
//! [`fetch_three_async`]). By hand it becomes an enum with one variant per
//! point where it waits, each holding only what the code after that point
//! still needs:
//!
//! ```text
//! Start ──poll──> AwaitingOne ──"one" arrives──> AwaitingTwo ──"one-two"──> AwaitingThree ──"three"──> Done
//!  fetch, log      fetch, log, get                fetch, log, bytes, get      log, bytes, get
//! ```
//!
//! `one` (the first body) is used right after the first await and never
//! again, so no state stores it; `fetch` is not needed after the last GET
//! starts, so `AwaitingThree` drops it. The enum is as big as its largest
//! variant plus a tag, and the tag costs nothing when the compiler can hide
//! it in a niche (a value some field can never hold, as here): see
//! [`size_table`].

use std::io;
use std::mem::size_of;

use crate::future::{AsStd, FromStd, Future, PollState};
use crate::http::{Fetch, Http};
use crate::log::Log;
use crate::runtime::{Executor, Stats};

/// The delays (ms) of the three GETs: the whole program takes about their sum.
pub const DELAYS: [u64; 3] = [150, 100, 50];

// ANCHOR: async_fn
/// The program as the code you would write: the compiler generates a state
/// machine much like [`FetchThree`] from it.
pub async fn fetch_three_async<F: Fetch>(fetch: F, log: Log) -> io::Result<usize> {
    log.say("start: three GETs, one after the other");
    let one = AsStd(fetch.get(DELAYS[0], "one")).await?;
    log.say(format!("first answer {one:?}; asking for {one:?} + \"-two\""));
    let mut bytes = one.len();
    let two = AsStd(fetch.get(DELAYS[1], &format!("{one}-two"))).await?;
    bytes += two.len();
    log.say(format!("second answer {two:?}; {bytes} bytes so far"));
    let three = AsStd(fetch.get(DELAYS[2], "three")).await?;
    bytes += three.len();
    log.say(format!("third answer {three:?}; done: {bytes} bytes in 3 answers"));
    Ok(bytes)
}
// ANCHOR_END: async_fn

// ANCHOR: async_fn_scoped
/// The same program, written so that each value dies as soon as it is no
/// longer needed (blocks end `one` and `two` before the next await). Same
/// lines, same result; only the size of the future changes (see [`size_table`]).
pub async fn fetch_three_async_scoped<F: Fetch>(fetch: F, log: Log) -> io::Result<usize> {
    log.say("start: three GETs, one after the other");
    let (mut bytes, get_two) = {
        let one = AsStd(fetch.get(DELAYS[0], "one")).await?;
        log.say(format!("first answer {one:?}; asking for {one:?} + \"-two\""));
        (one.len(), fetch.get(DELAYS[1], &format!("{one}-two")))
    };
    let get_three = {
        let two = AsStd(get_two).await?;
        bytes += two.len();
        log.say(format!("second answer {two:?}; {bytes} bytes so far"));
        fetch.get(DELAYS[2], "three")
    };
    drop(fetch);
    let three = AsStd(get_three).await?;
    bytes += three.len();
    log.say(format!("third answer {three:?}; done: {bytes} bytes in 3 answers"));
    Ok(bytes)
}
// ANCHOR_END: async_fn_scoped

// ANCHOR: states
/// The hand-written coroutine: one variant per await point.
pub enum FetchThree<F: Fetch> {
    /// Created, not polled yet.
    Start(Start<F>),
    /// Waiting for the first GET.
    AwaitingOne(AwaitingOne<F>),
    /// Waiting for the second GET; the byte counter is alive.
    AwaitingTwo(AwaitingTwo<F>),
    /// Waiting for the third GET; `fetch` is no longer needed.
    AwaitingThree(AwaitingThree<F>),
    /// Finished (or failed): polling again panics.
    Done,
}

/// State before the first poll: the function's arguments.
pub struct Start<F: Fetch> {
    /// Makes the GET futures.
    pub fetch: F,
    /// Where the program prints.
    pub log: Log,
}

/// State at `fetch.get(150, "one").await`.
pub struct AwaitingOne<F: Fetch> {
    /// Still needed for the next two GETs.
    pub fetch: F,
    /// Still needed to print.
    pub log: Log,
    /// The GET being awaited.
    pub get: F::Get,
}

/// State at `fetch.get(100, "<one>-two").await`.
pub struct AwaitingTwo<F: Fetch> {
    /// Still needed for the third GET.
    pub fetch: F,
    /// Still needed to print.
    pub log: Log,
    /// The counter that lives across this await and the next.
    pub bytes: usize,
    /// The GET being awaited.
    pub get: F::Get,
}

/// State at `fetch.get(50, "three").await`.
pub struct AwaitingThree<F: Fetch> {
    /// Still needed to print.
    pub log: Log,
    /// The counter.
    pub bytes: usize,
    /// The GET being awaited.
    pub get: F::Get,
}
// ANCHOR_END: states

impl<F: Fetch> FetchThree<F> {
    /// The coroutine for `fetch_three(fetch, log)`: like calling an
    /// `async fn`, this only stores the arguments; nothing runs until polled.
    pub fn new(fetch: F, log: Log) -> FetchThree<F> {
        FetchThree::Start(Start { fetch, log })
    }

    /// The current state's name, for tests and the docs.
    pub fn state_name(&self) -> &'static str {
        match self {
            FetchThree::Start(_) => "Start",
            FetchThree::AwaitingOne(_) => "AwaitingOne",
            FetchThree::AwaitingTwo(_) => "AwaitingTwo",
            FetchThree::AwaitingThree(_) => "AwaitingThree",
            FetchThree::Done => "Done",
        }
    }
}

// ANCHOR: transitions
impl<F: Fetch> Future for FetchThree<F> {
    type Output = io::Result<usize>;

    fn poll(&mut self) -> PollState<io::Result<usize>> {
        // Run from the current state as far as possible: through every state
        // whose leaf is ready, until a leaf says NotReady (return NotReady,
        // keeping the state) or the end (return Ready). The state is taken
        // out, leaving `Done`, and the next one is put back.
        loop {
            match std::mem::replace(self, FetchThree::Done) {
                FetchThree::Start(Start { fetch, log }) => {
                    // The code you would have written:
                    //     log.say("start: …");
                    //     let one = fetch.get(150, "one").await?;
                    log.say("start: three GETs, one after the other");
                    let get = fetch.get(DELAYS[0], "one");
                    *self = FetchThree::AwaitingOne(AwaitingOne { fetch, log, get });
                }
                FetchThree::AwaitingOne(mut state) => match state.get.poll() {
                    PollState::NotReady => {
                        *self = FetchThree::AwaitingOne(state);
                        return PollState::NotReady;
                    }
                    // The `?` after `.await`: return the error, stay `Done`.
                    PollState::Ready(Err(e)) => return PollState::Ready(Err(e)),
                    PollState::Ready(Ok(one)) => {
                        // The code you would have written:
                        //     log.say(format!("first answer …"));
                        //     let mut bytes = one.len();
                        //     let two = fetch.get(100, &format!("{one}-two")).await?;
                        let AwaitingOne { fetch, log, .. } = state;
                        log.say(format!("first answer {one:?}; asking for {one:?} + \"-two\""));
                        let bytes = one.len();
                        let get = fetch.get(DELAYS[1], &format!("{one}-two"));
                        // `one` ends here: no later state holds it.
                        *self = FetchThree::AwaitingTwo(AwaitingTwo { fetch, log, bytes, get });
                    }
                },
                FetchThree::AwaitingTwo(mut state) => match state.get.poll() {
                    PollState::NotReady => {
                        *self = FetchThree::AwaitingTwo(state);
                        return PollState::NotReady;
                    }
                    PollState::Ready(Err(e)) => return PollState::Ready(Err(e)),
                    PollState::Ready(Ok(two)) => {
                        // The code you would have written:
                        //     bytes += two.len();
                        //     log.say(format!("second answer …"));
                        //     let three = fetch.get(50, "three").await?;
                        let AwaitingTwo { fetch, log, bytes, .. } = state;
                        let bytes = bytes + two.len();
                        log.say(format!("second answer {two:?}; {bytes} bytes so far"));
                        let get = fetch.get(DELAYS[2], "three");
                        // `fetch` ends here: the last state does not carry it.
                        *self = FetchThree::AwaitingThree(AwaitingThree { log, bytes, get });
                    }
                },
                FetchThree::AwaitingThree(mut state) => match state.get.poll() {
                    PollState::NotReady => {
                        *self = FetchThree::AwaitingThree(state);
                        return PollState::NotReady;
                    }
                    PollState::Ready(Err(e)) => return PollState::Ready(Err(e)),
                    PollState::Ready(Ok(three)) => {
                        // The code you would have written:
                        //     bytes += three.len();
                        //     log.say(format!("third answer …"));
                        //     Ok(bytes)
                        let bytes = state.bytes + three.len();
                        state.log.say(format!("third answer {three:?}; done: {bytes} bytes in 3 answers"));
                        return PollState::Ready(Ok(bytes)); // stays `Done`
                    }
                },
                FetchThree::Done => panic!("FetchThree polled after it returned Ready"),
            }
        }
    }
}
// ANCHOR_END: transitions

/// Runs the hand-written state machine against the delay server at `http`.
/// The executor and the leaves trace to `trace`; the program prints to
/// `program`. Returns the byte count and the executor's counts.
pub fn run_state_machine(http: Http, trace: &Log, program: Log) -> io::Result<(usize, Stats)> {
    let mut executor = Executor::new(trace)?;
    let bytes = executor.block_on(FetchThree::new(http, program))??;
    Ok((bytes, executor.stats()))
}

/// Runs the compiler's `async fn` the same way: polled by the same executor
/// (through [`FromStd`], with `Waker::noop()`), waiting in the same `Poll`.
pub fn run_async_fn(http: Http, trace: &Log, program: Log) -> io::Result<(usize, Stats)> {
    let mut executor = Executor::new(trace)?;
    let bytes = executor.block_on(FromStd::new(fetch_three_async(http, program)))??;
    Ok((bytes, executor.stats()))
}

/// One row of the size table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRow {
    /// What was measured.
    pub what: &'static str,
    /// `size_of` it, in bytes.
    pub bytes: usize,
}

// ANCHOR: size_table
/// `size_of` every state, the hand-written coroutine, and the `async fn`
/// future, all for real GETs ([`Http`]).
pub fn size_table() -> Vec<SizeRow> {
    // Creating the async fn's future runs none of its code; we only measure it.
    let http = Http { addr: ([127, 0, 0, 1], 0).into() };
    let unpolled = fetch_three_async(http, Log::silent());
    let unpolled_scoped = fetch_three_async_scoped(http, Log::silent());
    vec![
        SizeRow { what: "state Start", bytes: size_of::<Start<Http>>() },
        SizeRow { what: "state AwaitingOne", bytes: size_of::<AwaitingOne<Http>>() },
        SizeRow { what: "state AwaitingTwo", bytes: size_of::<AwaitingTwo<Http>>() },
        SizeRow { what: "state AwaitingThree", bytes: size_of::<AwaitingThree<Http>>() },
        SizeRow { what: "hand-written FetchThree (enum)", bytes: size_of::<FetchThree<Http>>() },
        SizeRow { what: "async fn fetch_three_async", bytes: size_of_val(&unpolled) },
        SizeRow { what: "async fn fetch_three_async_scoped", bytes: size_of_val(&unpolled_scoped) },
    ]
}
// ANCHOR_END: size_table
