//! # Chapter 2: green threads
//!
//! Stackful, cooperative fibers ("green threads") with our own context switch,
//! on stable Rust. Each fiber has its own stack, like an OS thread, but
//! switching between fibers is a plain function call into a few lines of
//! assembly that swap the stack pointer and the registers a function must
//! preserve: no kernel, no system call, a few nanoseconds.
//!
//! Cooperative means a fiber runs until *it* decides to give up the CPU with
//! [`yield_now`]. That is what makes switching cheap, and also the catch: a
//! fiber that never yields starves all the others, and a fiber that blocks in
//! a system call (a slow `read`) blocks every fiber on the thread. A runtime
//! can take the CPU back from the first kind ([`Config::preempt`], off by
//! default): a timer ends each quantum, and the fiber yields at its next
//! [`checkpoint`], or is switched by signal where it runs code marked safe
//! to interrupt (see [`preempt`]).
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use ch02_green_threads::{Config, run, spawn, yield_now};
//!
//! let log = run(Config::default(), || {
//!     let log = Rc::new(RefCell::new(Vec::new()));
//!     for name in ["a", "b"] {
//!         let log = Rc::clone(&log);
//!         spawn(move || {
//!             for i in 0..2 {
//!                 log.borrow_mut().push(format!("{name}{i}"));
//!                 yield_now(); // let the other one run
//!             }
//!         })?;
//!     }
//!     Ok::<_, std::io::Error>(log) // `run` waits for both fibers before returning
//! })??;
//! assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1"]);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Layout
//!
//! - [`arch`]: the context switch, a `#[unsafe(naked)]` function per CPU
//!   (x86-64 only), with the stack layout of a new fiber; and, going
//!   faster, the switch as inline assembly at the yield site
//!   ([`arch::inline`]).
//! - [`stack`]: `mmap`ed stacks with a guard page, a free list, and the
//!   high-water mark of how much of a stack a fiber used.
//! - [`overflow`]: the `SIGSEGV` handler that turns a hit on a guard page into
//!   "green thread 3 overflowed its 64 KiB stack".
//! - [`preempt`]: taking the CPU back from a fiber that never yields (off
//!   by default): a timer per runtime, [`checkpoint`], and asynchronous
//!   preemption of code in the `preempt_text` section, through a trampoline
//!   ([`arch::preempt`]).
//! - [`preemptible`]: pure computation in that section (the demo's spinner,
//!   the tests' and the bench's compute kernel).
//! - [`ring`]: the ring of fibers in the order they take turns, and the
//!   hot path: [`yield_now`], through the runtime's kind of [`Switch`].
//! - [`runtime`]: the scheduler: [`run`], [`spawn`], stacks in and out, and
//!   the fiber's entry function, with the calling thread as the main fiber.
//! - [`task`]: a fiber's closure and result, and [`JoinHandle`].
//! - [`asan`]: telling AddressSanitizer about our stacks (feature `asan`).
//! - [`measure`]: what a yield, a spawn and a parked fiber cost (for the
//!   chapter's bench and the workspace's `bench/`).
//!
//! Runtimes are per thread and nothing here is `Send`: a fiber never moves to
//! another OS thread (its stack holds references into this thread's
//! thread-locals, among other things).

#[cfg(not(target_os = "linux"))]
compile_error!("ch02-green-threads supports Linux only (x86-64): it uses mmap, mincore, sigaltstack and SIGSEGV");

pub mod arch;
pub mod asan;
pub mod measure;
pub mod overflow;
pub mod preempt;
pub mod preemptible;
pub mod ring;
pub mod runtime;
pub mod stack;
pub mod task;

pub use preempt::{Preempt, checkpoint};
pub use ring::{Switch, yield_now, yield_now_naive};
pub use runtime::{Config, Stats, current_id, run, spawn, stats};
pub use task::{FiberStats, JoinError, JoinHandle};
