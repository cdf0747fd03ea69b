//! # Chapter 5: a runtime on `std`'s `Future` and `Waker`
//!
//! Chapter 4's coroutines ran on an executor that was also its own reactor,
//! and found the task an event was for through a side table. This chapter
//! builds the real thing, on the pieces Rust itself provides:
//! `std::future::Future` (the coroutine), `async`/`await` (the compiler
//! writes the state machine), and `std::task::Waker` (how a waiting future
//! gets polled again). Everything else is ours:
//!
//! - a **reactor** on its own thread, waiting in `epoll` through mio and
//!   keeping timers, that wakes wakers and knows nothing of tasks;
//! - an **executor**, single- or multi-threaded, that polls tasks and parks
//!   when none can run, and knows nothing of sockets;
//! - **leaf futures** (TCP, timers, a channel, `spawn_blocking`) that connect
//!   the two by handing the reactor the waker they were polled with.
//!
//! ```
//! use std::time::Duration;
//! use ch05_runtime::{Runtime, spawn, time::sleep};
//!
//! # fn main() -> std::io::Result<()> {
//! let runtime = Runtime::new()?; // single-threaded
//! let total = runtime.block_on(async {
//!     // Two tasks that sleep at the same time: the waits overlap.
//!     let a = spawn(async { sleep(Duration::from_millis(20)).await; 1 });
//!     let b = spawn(async { sleep(Duration::from_millis(10)).await; 2 });
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(total, 3);
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//!
//! - [`waker`]: a `Waker` written out by hand (its vtable), the same through
//!   `std::task::Wake`, and the smallest executor (`block_on`).
//! - [`runtime`]: the [`Runtime`], its [`Builder`] (which executor, which
//!   [`IoDriver`], how tasks are polled) and what dropping it does.
//! - [`current_thread`]: the single-threaded executor's poll → wait → wake
//!   loop, and who gets the CPU next; [`multi_thread`]: the worker threads.
//!   Both share [`scheduler`] (the run queues, and what a wake does) and
//!   [`park`] (how a thread waits, and how a wake reaches it).
//! - [`task`]: one allocation per task: the state bits, the future, the
//!   result, one poll. [`join`]: the [`JoinHandle`] and [`JoinError`].
//! - [`coop`]: [`coop::yield_now`], and the budget that makes a task whose
//!   leaf futures are always ready return `Pending` now and then.
//! - [`reactor`]: the reactor thread, its `Token → waker` table and its
//!   timers (a heap of deadlines, in `timers.rs`).
//! - Leaf futures: [`net`] (`TcpListener`, `TcpStream`), [`time`] (`sleep`,
//!   `timeout`), [`channel`] (an async channel), [`blocking`]
//!   (`spawn_blocking`).
//! - Built on them: [`http`] (an async GET) and [`server`] (the delay server
//!   as an async server on one thread).
//! - [`uring`]: completion instead of readiness: a driver thread on
//!   chapter 3's io_uring `Ring`, and leaf futures that own their buffers,
//!   under the same executors.
//! - [`trace`] and [`svg`]: the per-task timeline, as lines and as a picture.
//!
//! Linux only, like the chapters before (mio itself is portable; the
//! workshop targets x86-64 Linux).

#[cfg(not(target_os = "linux"))]
compile_error!("ch05-runtime supports Linux only (the workshop targets x86-64 Linux, like every chapter)");

pub mod blocking;
pub mod channel;
pub mod coop;
pub mod current_thread;
pub mod http;
mod id;
pub mod join;
pub mod multi_thread;
pub mod net;
pub mod park;
pub mod reactor;
pub mod runtime;
pub mod scheduler;
pub mod server;
mod slab;
pub mod svg;
pub mod task;
pub mod time;
mod timers;
pub mod trace;
pub mod uring;
pub mod waker;

pub use coop::yield_now;
pub use join::{JoinError, JoinHandle};
pub use runtime::{Builder, Flavor, IoDriver, Runtime, spawn, spawn_blocking};
