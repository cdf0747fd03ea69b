//! # Chapter 3: syscalls and the OS event queue, from raw epoll to mio
//!
//! Chapter 1 waited for many sockets with many threads: each thread blocked
//! in `read` until its answer came. This chapter waits for all of them with
//! *one* thread and the kernel's event queue, `epoll`: register every socket
//! once, then sleep in a single syscall until any of them can make progress.
//!
//! ## Layout
//!
//! - [`syscall`]: the bottom layer. One `write` to stdout three ways: raw
//!   inline assembly, `libc`, and our own `extern "C"` declaration.
//! - [`poll`]: a small mio-shaped API over `epoll` (`Poll`, `Registry`,
//!   `Token`, `Interest`, `Events`, `Event`). Chapter 4 builds its futures on it.
//! - [`http_get`]: one HTTP GET on a non-blocking socket, as a state machine
//!   that makes progress whenever its socket is ready and never waits.
//! - [`client`]: many of those at once on one thread, driven by [`poll`].
//! - [`mio_client`]: the same client on the real mio crate.
//! - [`uring`]: the other model, completion instead of readiness: Linux's
//!   io_uring by raw system calls, its two rings mapped and driven by hand
//!   ([`uring::Ring`]), with the kernel's structs declared in [`uring::sys`].
//! - [`uring_client`]: the same GETs as completions on that ring.
//! - [`counting`]: counts the system calls each client makes, so the two
//!   models can be compared in calls per request.
//!
//! The bench (one epoll thread vs io_uring vs one thread per request vs
//! mio) lives in the binary (`src/bench.rs`), like every chapter's.
//!
//! System calls that return -1 on failure go through chapter 1's
//! [`syscall!`](ch01_os_threads::syscall) macro.
//!
//! Linux only: `epoll` is a Linux syscall (macOS and the BSDs have `kqueue`,
//! Windows has IOCP; hiding those differences is what mio is for).

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ch03-epoll supports Linux only: it teaches Linux's epoll syscalls (the workshop targets x86-64 Linux; \
     mio, shown at the end of the chapter, is the portable version)"
);

pub mod client;
pub mod counting;
pub mod http_get;
pub mod mio_client;
pub mod poll;
pub mod syscall;
pub mod uring;
pub mod uring_client;
