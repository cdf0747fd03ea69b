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
//! - [`bench`](mod@bench): one epoll thread vs one thread per request vs mio, measured.
//!
//! Linux only: `epoll` is a Linux syscall (macOS and the BSDs have `kqueue`,
//! Windows has IOCP; hiding those differences is what mio is for).

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ch03-epoll supports Linux only: it teaches Linux's epoll syscalls (the workshop targets x86-64 Linux; \
     mio, shown at the end of the chapter, is the portable version)"
);

// ANCHOR: syscall_macro
/// Turns the C convention "returns -1 and leaves the reason in `errno`" into
/// an [`std::io::Result`].
///
/// The caller writes the `unsafe` block (and the `// SAFETY:` comment saying
/// why the call is sound) itself, so no unsafety hides inside the macro:
///
/// ```text
/// // SAFETY: no pointers are passed; the kernel only reads the flag.
/// let fd = syscall!(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
/// ```
macro_rules! syscall {
    ($call:expr) => {{
        let result = $call;
        if result == -1 { Err(std::io::Error::last_os_error()) } else { Ok(result) }
    }};
}
// ANCHOR_END: syscall_macro

pub mod bench;
pub mod client;
pub mod http_get;
pub mod mio_client;
#[cfg(target_os = "linux")]
pub mod poll;
pub mod syscall;

/// Raises this process's soft limit on open files (`RLIMIT_NOFILE`) to its
/// hard limit, and returns the new soft limit.
///
/// Every socket is a file descriptor, and the soft limit is often 1 024: too
/// few for a thousand connections. The soft limit is what a process may raise
/// itself, up to the hard limit the administrator set; going beyond the hard
/// limit needs privileges (or `ulimit -Hn` in the shell that starts us).
pub fn raise_open_files_limit() -> std::io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit for the kernel to fill in.
    syscall!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit; the kernel only reads it.
        syscall!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    }
    Ok(limit.rlim_cur)
}
