//! [`Unavailable`]: why io_uring cannot be used on this machine, read from
//! the error `io_uring_setup` gave. Where the kernel lacks it or refuses it,
//! every demo, bench and test of the course says so in one line and goes on.

use std::fmt;
use std::io::{self, Write};

// ANCHOR: unavailable
/// Why io_uring cannot be used on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// `ENOSYS`: this kernel has no io_uring (built without it, older than
    /// 5.1, or a sandbox such as gVisor that does not implement it).
    NotInKernel,
    /// `EPERM`, and `kernel.io_uring_disabled` is 2: switched off for everyone.
    Disabled,
    /// `EPERM`, and `kernel.io_uring_disabled` is 1: only for root and the
    /// members of the group in `kernel.io_uring_group`.
    NotInGroup,
    /// `EPERM` or `EACCES` although the kernel allows io_uring: a seccomp
    /// filter (containers often block it) or a security module refused.
    Refused {
        /// The errno.
        errno: i32,
    },
    /// The kernel's io_uring lacks a feature this chapter relies on.
    TooOld {
        /// The missing `IORING_FEAT_*` flag.
        missing: &'static str,
    },
}

impl Unavailable {
    /// What an error from [`Ring::new`](super::Ring::new) means: `Some(reason)` if io_uring is
    /// not available here at all, `None` for any other failure (a bad size,
    /// too many open files, ...). Reads `/proc/sys/kernel/io_uring_disabled`
    /// (Linux 6.6+) to tell the kinds of `EPERM` apart.
    pub fn from_error(error: &io::Error) -> Option<Unavailable> {
        let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
        Unavailable::classify(error, sysctl.and_then(|s| s.trim().parse().ok()))
    }

    /// [`from_error`](Unavailable::from_error), with the sysctl's value
    /// given (`None`: this kernel has no such sysctl).
    pub fn classify(error: &io::Error, io_uring_disabled: Option<u32>) -> Option<Unavailable> {
        if let Some(too_old) = error.get_ref().and_then(|inner| inner.downcast_ref::<Unavailable>()) {
            return Some(*too_old);
        }
        match (error.raw_os_error()?, io_uring_disabled) {
            (libc::ENOSYS, _) => Some(Unavailable::NotInKernel),
            (libc::EPERM, Some(2)) => Some(Unavailable::Disabled),
            (libc::EPERM, Some(1)) => Some(Unavailable::NotInGroup),
            (errno @ (libc::EPERM | libc::EACCES), _) => Some(Unavailable::Refused { errno }),
            _ => None,
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotInKernel => f.write_str("io_uring_setup: ENOSYS, this kernel has no io_uring"),
            Unavailable::Disabled => {
                f.write_str("io_uring_setup: EPERM, io_uring is switched off here (kernel.io_uring_disabled = 2)")
            }
            Unavailable::NotInGroup => f.write_str(
                "io_uring_setup: EPERM, io_uring is limited to root and kernel.io_uring_group here \
                 (kernel.io_uring_disabled = 1)",
            ),
            Unavailable::Refused { errno } => write!(
                f,
                "io_uring_setup: {}, refused by a seccomp filter or a security module, as containers often do",
                if *errno == libc::EACCES { "EACCES" } else { "EPERM" }
            ),
            Unavailable::TooOld { missing } => {
                write!(f, "this kernel's io_uring lacks {missing} (Linux 5.6 or later has what this chapter needs)")
            }
        }
    }
}

impl std::error::Error for Unavailable {}

impl Unavailable {
    /// For a test or a demo that needs io_uring: `Ok(())` after saying on
    /// stderr why `what` is skipped, if `error` means io_uring is not
    /// available here; the error back otherwise (a real failure).
    pub fn skip_or_fail(what: &str, error: io::Error) -> io::Result<()> {
        match Unavailable::from_error(&error) {
            Some(why) => {
                // Straight to stderr, not through `eprintln!`, which the test
                // harness captures (and shows only for failing tests).
                let _ = writeln!(io::stderr(), "skipped {what}: io_uring is not available here: {why}");
                Ok(())
            }
            None => Err(error),
        }
    }
}
// ANCHOR_END: unavailable
