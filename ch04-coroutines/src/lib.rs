//! # Chapter 4: stackless coroutines as hand-written state machines
//!
//! Chapter 2's green threads were *stackful*: every task had its own stack,
//! so it could stop anywhere, in any nested call, and a context switch saved
//! and restored the registers. Chapter 3 waited for many sockets on one
//! thread with `epoll`, but the code was one big loop that had to know every
//! connection's state.
//!
//! This chapter writes tasks as *stackless* coroutines: a task is a value (an
//! `enum`) that remembers where it stopped, and a `poll` method that runs it
//! from there to the next point where it would have to wait. All tasks share
//! the one thread stack; stopping means returning from `poll`, and resuming
//! means being called again. That is exactly what the compiler writes for an
//! `async fn`: here we write it by hand, see its phases, and measure its size.
//!
//! ```
//! use ch01_os_threads::delay_server::{Config, DelayServer};
//! use ch04_coroutines::combinators::join_all;
//! use ch04_coroutines::http::{Fetch, Http};
//! use ch04_coroutines::log::Log;
//! use ch04_coroutines::runtime::Executor;
//!
//! # fn main() -> std::io::Result<()> {
//! let server = DelayServer::start(Config::default())?;
//! let http = Http { addr: server.addr() };
//! let mut executor = Executor::new(&Log::recording())?;
//! // Two GETs at once: the slow one is asked first, answers last, and still
//! // comes first in the output (join_all keeps input order).
//! let bodies = executor.block_on(join_all(vec![http.get(60, "slow"), http.get(0, "fast")]))?;
//! let bodies: Vec<String> = bodies.into_iter().collect::<std::io::Result<_>>()?;
//! assert_eq!(bodies, ["slow", "fast"]);
//! // Polled once at the start, then only after events: no busy loop.
//! let stats = executor.stats();
//! assert!(stats.polls <= 1 + stats.events);
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! - [`future`]: our own [`Future`](future::Future) trait and
//!   [`PollState`](future::PollState), deliberately without a `Waker`; adapters
//!   to and from `std::future::Future`.
//! - [`runtime`]: the [`Executor`](runtime::Executor). It polls tasks, and when
//!   every task is waiting it blocks in ch03's `Poll::poll`: with no separate
//!   reactor, the executor plays the reactor's role too.
//! - [`http`]: the leaf future [`HttpGetFuture`](http::HttpGetFuture), a GET
//!   to the delay server on a non-blocking socket registered with ch03's `Poll`.
//! - [`coroutine`]: a non-leaf coroutine written by hand, one enum variant per
//!   `.await`, next to the `async fn` the compiler turns into the same thing,
//!   and their sizes.
//! - [`combinators`]: [`join_all`](combinators::join_all) (concurrency) and
//!   [`then`](combinators::then) (one after the other).
//! - [`callbacks`]: the same program written with callbacks, to compare.
//! - [`log`]: the `[executor]`/`[coroutine 1]`/`[http]` lines, recorded so
//!   tests can compare what three versions of a program printed.
//! - [`testing`]: instrumented leaf futures that count their polls (no network).
//!
//! Linux only: the leaf futures sit on chapter 3's `epoll` wrapper.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ch04-coroutines supports Linux only: its leaf futures wait on ch03's epoll wrapper (the workshop targets x86-64 Linux)"
);

pub mod callbacks;
pub mod combinators;
pub mod coroutine;
pub mod future;
pub mod http;
pub mod log;
pub mod runtime;
pub mod testing;
