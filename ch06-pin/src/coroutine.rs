//! Chapter 4's coroutine grows a borrow across two awaits, and with it a
//! pointer into itself.
//!
//! Chapter 4's `FetchThree` awaited three GETs and kept a byte counter.
//! Here the program keeps a local `String` buffer and appends every answer
//! to it through a `&mut` borrow, `out`, that lives across the second and
//! the third `.await` ([`fetch_three_into_async`]). Whoever stores the
//! program's state between polls must now store `buffer` *and* `out`, a
//! pointer to `buffer`: the state machine points into itself.
//!
//! By hand ([`FetchThreeInto`]) that state machine is a struct:
//!
//! ```text
//!  FetchThreeInto  (pinned before its first poll; never moves after)
//!  ┌──────────────────────────────────────────────────────────────────────────┐
//!  │ state   Start ──> AwaitingOne ──> AwaitingTwo ──> AwaitingThree ──> Done │
//!  │         fetch,    fetch, log      fetch, log,     log, out               │
//!  │         log                       out ──┐         out ──┐                │
//!  │ get     the GET being awaited           │               │                │
//!  │ buffer  "one one-two three"  ◄──────────┴───────────────┘                │
//!  └──────────────────────────────────────────────────────────────────────────┘
//!    state   not pinned: moved out and back at every step
//!    get     pinned: polled in place
//!    buffer  pinned: `out` points at it
//! ```
//!
//! Three decisions, each forced by the self-reference:
//!
//! - **`buffer` lives outside the state enum**, in one place for the
//!   coroutine's whole life. Moving from `AwaitingTwo` to `AwaitingThree`
//!   must not move it, or `out` would point at the old place. (The compiler
//!   does the same: a local alive across several awaits gets one slot shared
//!   by those states.)
//! - **`get` lives outside the state too, and is pinned.** The GET is itself
//!   an `async fn`'s future (chapter 5's `http::get`), `!Unpin`: once polled
//!   it must not move either. Chapter 4 moved the whole state out with
//!   `mem::replace` at every step; here only the plain part (`state`) moves,
//!   and `get` is polled where it is and dropped in place.
//! - **`FetchThreeInto` is `!Unpin`** ([`PhantomPinned`]) and `poll` takes
//!   `self: Pin<&mut Self>`: whoever runs it must pin it first. Before its
//!   first poll it holds no pointer, so moving it is fine (returning it from
//!   `new`, handing it to `spawn`); `out` only comes to exist inside `poll`.

use std::future::Future;
use std::io;
use std::marker::PhantomPinned;
use std::mem;
use std::net::SocketAddr;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, ready};

use ch04_coroutines::coroutine::{DELAYS, SizeRow};

use crate::log::Log;
use crate::moving::Addresses;

// ANCHOR: fetch
/// Something that makes GET futures: the delay server ([`http`]), or in tests
/// a script that needs no network.
pub trait Fetch {
    /// The GET future. Any future: it may be `!Unpin`, like an `async fn`'s.
    type Get: Future<Output = io::Result<String>>;

    /// A future for `GET /<delay_ms>/<message>`, answering the body.
    fn get(&self, delay_ms: u64, message: &str) -> Self::Get;
}

/// A closure `|delay_ms, message| future` is a `Fetch`.
impl<C, G> Fetch for C
where
    C: Fn(u64, &str) -> G,
    G: Future<Output = io::Result<String>>,
{
    type Get = G;

    fn get(&self, delay_ms: u64, message: &str) -> G {
        self(delay_ms, message)
    }
}

/// Real GETs to the delay server at `addr`, with chapter 5's `http::get`:
/// each GET is an `async fn`'s future, `!Unpin`.
pub fn http(addr: SocketAddr) -> impl Fetch<Get = impl Future<Output = io::Result<String>> + Send> + Copy + Send {
    move |delay_ms: u64, message: &str| get_body(addr, delay_ms, message)
}

/// One GET, answering the body of a `200 OK` (else an error).
/// `use<>`: the future borrows nothing from the arguments (the path is built
/// first), so it can outlive `message`.
fn get_body(addr: SocketAddr, delay_ms: u64, message: &str) -> impl Future<Output = io::Result<String>> + use<> {
    let path = ch01_os_threads::http::path(delay_ms, message);
    async move { ch05_runtime::http::get(addr, &path).await?.into_ok_body() }
}
// ANCHOR_END: fetch

// ANCHOR: async_fn
/// The program as you would write it. `out` borrows `buffer` across the
/// second and the third `.await`, so the future the compiler makes from this
/// holds a pointer into itself.
pub async fn fetch_three_into_async<F: Fetch>(fetch: F, log: Log) -> io::Result<String> {
    log.say("start: three GETs, one after the other");
    let one = fetch.get(DELAYS[0], "one").await?;
    log.say(format!("first answer {one:?}; asking for {one:?} + \"-two\""));
    let mut buffer = String::new();
    let out = &mut buffer; // borrowed from here ...
    out.push_str(&one);
    // ... across this await ...
    let two = fetch.get(DELAYS[1], &format!("{one}-two")).await?;
    out.push(' ');
    out.push_str(&two);
    log.say(format!("second answer {two:?}; buffer {out:?}"));
    // ... and this one ...
    let three = fetch.get(DELAYS[2], "three").await?;
    out.push(' ');
    out.push_str(&three);
    log.say(format!("third answer {three:?}; buffer {out:?}, {} bytes", out.len()));
    Ok(buffer) // ... to here
}
// ANCHOR_END: async_fn

// ANCHOR: struct
/// [`fetch_three_into_async`], written by hand.
///
/// # Panics
///
/// If polled again after it returned `Ready` (as an `async fn` does).
pub struct FetchThreeInto<F: Fetch> {
    /// Where the program is, and the plain values it needs there. Not
    /// pinned: nothing points into it, and every step moves it out and back.
    state: State<F>,
    /// The GET being awaited, if any. Pinned: it may be an `async fn`'s
    /// future, which must stay where it was first polled.
    get: Option<F::Get>,
    /// The program's local `buffer`. `out` points here while it exists, so
    /// it must stay where it is: the whole coroutine is pinned.
    buffer: String,
    /// Makes the coroutine `!Unpin`: `Pin` must really hold it in place.
    _pinned: PhantomPinned,
}

/// The states: one per `.await`, holding what the code after it needs.
enum State<F> {
    /// Created, not polled: the arguments.
    Start {
        /// Makes the GETs.
        fetch: F,
        /// Where the program prints.
        log: Log,
    },
    /// At the first `.await`.
    AwaitingOne {
        /// Needed for the next two GETs.
        fetch: F,
        /// Needed to print.
        log: Log,
    },
    /// At the second `.await`: the borrow `out` is alive.
    AwaitingTwo {
        /// Needed for the third GET.
        fetch: F,
        /// Needed to print.
        log: Log,
        /// `&mut buffer`: points at the coroutine's own `buffer` field.
        out: NonNull<String>,
    },
    /// At the third `.await`: `fetch` is done, `out` still alive.
    AwaitingThree {
        /// Needed to print.
        log: Log,
        /// `&mut buffer`, still.
        out: NonNull<String>,
    },
    /// Returned (or failed).
    Done,
}

// SAFETY: the raw pointer `out` stops the compiler from deriving `Send`. It
// only ever points at the `buffer` of the coroutine that holds it, so whoever
// owns the coroutine owns what `out` points at: sending the coroutine to
// another thread sends the buffer with it, and no other thread keeps access.
// That is what the `&mut String` it stands for would do (`&mut String` is
// `Send`). The other fields decide by themselves, hence the bounds.
unsafe impl<F> Send for FetchThreeInto<F>
where
    F: Fetch + Send,
    F::Get: Send,
{
}
// ANCHOR_END: struct

// ANCHOR: project
/// The coroutine's fields as its pin allows them to be used.
struct Fields<'a, F: Fetch> {
    /// Not pinned: moved out and back freely.
    state: &'a mut State<F>,
    /// Pinned: polled in place, and replaced only through `Pin::set`,
    /// which drops the old GET where it is.
    get: Pin<&'a mut Option<F::Get>>,
    /// Where `buffer` is. A raw pointer, not a `&mut String`: while `out`
    /// exists, `out` is the way to the buffer, and a `&mut` made here would
    /// claim to be the only one.
    buffer: NonNull<String>,
}

impl<F: Fetch> FetchThreeInto<F> {
    /// Pin projection (see [`crate::projection`] for the rules in general).
    fn project(self: Pin<&mut Self>) -> Fields<'_, F> {
        // SAFETY: we get a plain `&mut Self`, and promise not to move what is
        // pinned: `get` is handed out only as `Pin<&mut _>`, and `buffer`
        // only as an address, so neither is moved out by what follows; the
        // struct has no `Drop` impl and is not `#[repr(packed)]`, and it is
        // `!Unpin` (`PhantomPinned`, and no `impl Unpin` anywhere, which
        // safe code could write), so `Pin::get_mut` cannot reach it.
        // `state` is not pinned: moving it moves no value anything points at.
        // `&raw mut` takes the buffer's address without making a `&mut`; a
        // field's address is never null.
        unsafe {
            let this = self.get_unchecked_mut();
            Fields {
                state: &mut this.state,
                get: Pin::new_unchecked(&mut this.get),
                buffer: NonNull::new_unchecked(&raw mut this.buffer),
            }
        }
    }
}
// ANCHOR_END: project

impl<F: Fetch> FetchThreeInto<F> {
    /// The coroutine for `fetch_three_into(fetch, log)`: like calling the
    /// `async fn`, this only stores the arguments. It holds no pointer yet,
    /// so it may be moved freely until it is pinned and polled.
    pub fn new(fetch: F, log: Log) -> FetchThreeInto<F> {
        FetchThreeInto { state: State::Start { fetch, log }, get: None, buffer: String::new(), _pinned: PhantomPinned }
    }

    /// The current state's name, for tests and the demo.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Start { .. } => "Start",
            State::AwaitingOne { .. } => "AwaitingOne",
            State::AwaitingTwo { .. } => "AwaitingTwo",
            State::AwaitingThree { .. } => "AwaitingThree",
            State::Done => "Done",
        }
    }

    /// Where `buffer` is and where `out` points, while `out` exists (in
    /// `AwaitingTwo` and `AwaitingThree`): read as numbers, never followed.
    pub fn self_pointer(&self) -> Option<Addresses> {
        let field = (&raw const self.buffer).addr();
        match &self.state {
            State::AwaitingTwo { out, .. } | State::AwaitingThree { out, .. } => {
                Some(Addresses { field, pointer: out.as_ptr().addr() })
            }
            _ => None,
        }
    }

    /// The sizes of the parts, in bytes: (state enum, GET slot, buffer).
    pub fn part_sizes(&self) -> (usize, usize, usize) {
        (size_of_val(&self.state), size_of_val(&self.get), size_of_val(&self.buffer))
    }
}

// ANCHOR: poll
impl<F: Fetch> Future for FetchThreeInto<F> {
    type Output = io::Result<String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<String>> {
        let Fields { state, mut get, buffer } = self.project();
        // As in chapter 4: take the state out (leaving `Done`), run to the
        // next await, put the next state back. `get` and `buffer` stay put.
        loop {
            match mem::replace(state, State::Done) {
                State::Start { fetch, log } => {
                    //     log.say("start: …");
                    //     let one = fetch.get(150, "one").await?;
                    log.say("start: three GETs, one after the other");
                    get.set(Some(fetch.get(DELAYS[0], "one")));
                    *state = State::AwaitingOne { fetch, log };
                }
                State::AwaitingOne { fetch, log } => match poll_get(get.as_mut(), cx) {
                    Poll::Pending => {
                        *state = State::AwaitingOne { fetch, log };
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)), // the `?`: stay `Done`
                    Poll::Ready(Ok(one)) => {
                        //     log.say(format!("first answer …"));
                        //     let mut buffer = String::new(); (our field, empty since `new`)
                        //     let out = &mut buffer;
                        //     out.push_str(&one);
                        //     let two = fetch.get(100, &format!("{one}-two")).await?;
                        log.say(format!("first answer {one:?}; asking for {one:?} + \"-two\""));
                        let mut out = buffer; // the borrow starts: a pointer into ourselves
                        // SAFETY: `out` points at our own `buffer`, which is
                        // alive and pinned (it stays there while we exist), and
                        // nothing else touches the buffer while `out` exists.
                        unsafe { out.as_mut() }.push_str(&one);
                        get.set(Some(fetch.get(DELAYS[1], &format!("{one}-two"))));
                        *state = State::AwaitingTwo { fetch, log, out };
                    }
                },
                State::AwaitingTwo { fetch, log, mut out } => match poll_get(get.as_mut(), cx) {
                    Poll::Pending => {
                        *state = State::AwaitingTwo { fetch, log, out };
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(two)) => {
                        //     out.push(' ');
                        //     out.push_str(&two);
                        //     log.say(format!("second answer …"));
                        //     let three = fetch.get(50, "three").await?;
                        // SAFETY: as above; `out` was made in an earlier poll,
                        // and the buffer has not moved since: we are pinned.
                        let out_now = unsafe { out.as_mut() };
                        out_now.push(' ');
                        out_now.push_str(&two);
                        log.say(format!("second answer {two:?}; buffer {out_now:?}"));
                        get.set(Some(fetch.get(DELAYS[2], "three")));
                        *state = State::AwaitingThree { log, out }; // `fetch` ends here
                    }
                },
                State::AwaitingThree { log, mut out } => match poll_get(get.as_mut(), cx) {
                    Poll::Pending => {
                        *state = State::AwaitingThree { log, out };
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(three)) => {
                        //     out.push(' ');
                        //     out.push_str(&three);
                        //     log.say(format!("third answer …"));
                        //     Ok(buffer)
                        // SAFETY: as above.
                        let out_now = unsafe { out.as_mut() };
                        out_now.push(' ');
                        out_now.push_str(&three);
                        log.say(format!("third answer {three:?}; buffer {out_now:?}, {} bytes", out_now.len()));
                        // `Ok(buffer)`: the borrow ends, the buffer is the
                        // output. Moving the text out is fine now: the state
                        // holding `out` is gone, nothing points at the buffer.
                        let text = mem::take(out_now);
                        return Poll::Ready(Ok(text)); // stays `Done`
                    }
                },
                State::Done => panic!("FetchThreeInto polled after it returned Ready"),
            }
        }
    }
}

/// `.await` on the GET in flight: polls it where it is, and once it is
/// ready, drops it there (`Pin::set`: a pinned value may be dropped in
/// place, never moved).
fn poll_get<G: Future>(mut get: Pin<&mut Option<G>>, cx: &mut Context<'_>) -> Poll<G::Output> {
    let Some(future) = get.as_mut().as_pin_mut() else { unreachable!("every awaiting state has its GET in flight") };
    let output = ready!(future.poll(cx));
    get.set(None);
    Poll::Ready(output)
}
// ANCHOR_END: poll

// ANCHOR: size_table
/// `size_of` the hand-written coroutine, its parts, and the compiler's
/// version: with real GETs ([`http`]), and with the small scripted GETs of
/// the tests, where the coroutines' own bytes show. Nothing is polled.
pub fn size_table() -> Vec<SizeRow> {
    let addr = ([127, 0, 0, 1], 0).into();
    let fetch = http(addr);
    let by_hand = FetchThreeInto::new(fetch, Log::silent());
    let (state, get, buffer) = by_hand.part_sizes();
    let by_compiler = fetch_three_into_async(fetch, Log::silent());
    let scripted = crate::testing::scripted(0);
    vec![
        SizeRow {
            what: "ch05 http::get's future (an async fn)",
            bytes: size_of_val(&ch05_runtime::http::get(addr, "/")),
        },
        SizeRow { what: "one GET as fetched here (get_body)", bytes: size_of_val(&fetch.get(0, "")) },
        SizeRow { what: "FetchThreeInto (by hand)", bytes: size_of_val(&by_hand) },
        SizeRow { what: "  its state enum (fetch, log, out)", bytes: state },
        SizeRow { what: "  its GET in flight (Option<GET future>)", bytes: get },
        SizeRow { what: "  its buffer (String)", bytes: buffer },
        SizeRow { what: "async fn fetch_three_into_async", bytes: size_of_val(&by_compiler) },
        SizeRow { what: "one scripted GET (tests, no network)", bytes: size_of_val(&scripted.get(0, "")) },
        SizeRow {
            what: "FetchThreeInto with scripted GETs",
            bytes: size_of_val(&FetchThreeInto::new(scripted, Log::silent())),
        },
        SizeRow {
            what: "async fn with scripted GETs",
            bytes: size_of_val(&fetch_three_into_async(scripted, Log::silent())),
        },
    ]
}
// ANCHOR_END: size_table
