//! The operations this chapter submits, as SQE constructors, and what comes
//! back: [`Completion`].
//!
//! Building an [`Sqe`] is safe: it is 64 bytes of numbers. The addresses in
//! it become the kernel's business only when [`Ring::push`](super::Ring::push)
//! queues it, and that is where the `unsafe` (and the rule about how long
//! the memory must live) is.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use super::sys::{self, KernelTimespec, Sqe};

impl Sqe {
    /// Does nothing, and completes with 0: the cheapest way to see the
    /// rings work (and to measure them).
    pub fn nop(user_data: u64) -> Sqe {
        Sqe { opcode: sys::IORING_OP_NOP, user_data, ..Sqe::default() }
    }

    // ANCHOR: sqe_read
    /// `read(fd, buf, len)`: completes with the number of bytes read (0 at
    /// end of file) or `-errno`. The kernel writes into `buf` whenever the
    /// data arrives, long after `io_uring_enter` returned.
    ///
    /// The offset is -1, "the file's current position", which is what
    /// `read(2)` does; pipes and sockets have no position and ignore it.
    pub fn read(fd: BorrowedFd<'_>, buf: *mut u8, len: usize, user_data: u64) -> Sqe {
        Sqe {
            opcode: sys::IORING_OP_READ,
            fd: fd.as_raw_fd(),
            off: u64::MAX, // -1 as the kernel's signed offset
            addr: buf as u64,
            len: clamp_len(len),
            user_data,
            ..Sqe::default()
        }
    }
    // ANCHOR_END: sqe_read

    /// `write(fd, buf, len)`: completes with the number of bytes written
    /// (possibly fewer than `len`) or `-errno`.
    pub fn write(fd: BorrowedFd<'_>, buf: *const u8, len: usize, user_data: u64) -> Sqe {
        Sqe {
            opcode: sys::IORING_OP_WRITE,
            fd: fd.as_raw_fd(),
            off: u64::MAX,
            addr: buf as u64,
            len: clamp_len(len),
            user_data,
            ..Sqe::default()
        }
    }

    /// `connect(fd, address, length)`: completes with 0 once the TCP
    /// handshake is done, or `-errno` (`-ECONNREFUSED`, ...). The socket
    /// may stay in blocking mode: io_uring never blocks a thread on it.
    pub fn connect(fd: BorrowedFd<'_>, address: *const libc::sockaddr, length: libc::socklen_t, user_data: u64) -> Sqe {
        Sqe {
            opcode: sys::IORING_OP_CONNECT,
            fd: fd.as_raw_fd(),
            off: length.into(), // CONNECT takes the address length in `off`
            addr: address as u64,
            user_data,
            ..Sqe::default()
        }
    }

    /// `send(fd, buf, len, MSG_NOSIGNAL)`: completes with the number of
    /// bytes the socket took (possibly fewer than `len`: send the rest with
    /// another SEND) or `-errno`. `MSG_NOSIGNAL`: a peer that has gone
    /// away is `-EPIPE`, not a SIGPIPE that kills the process.
    pub fn send(fd: BorrowedFd<'_>, buf: *const u8, len: usize, user_data: u64) -> Sqe {
        Sqe {
            opcode: sys::IORING_OP_SEND,
            fd: fd.as_raw_fd(),
            addr: buf as u64,
            len: clamp_len(len),
            op_flags: libc::MSG_NOSIGNAL as u32,
            user_data,
            ..Sqe::default()
        }
    }

    /// `recv(fd, buf, len, 0)`: completes with the number of bytes
    /// received (0: the peer closed) or `-errno`.
    pub fn recv(fd: BorrowedFd<'_>, buf: *mut u8, len: usize, user_data: u64) -> Sqe {
        Sqe {
            opcode: sys::IORING_OP_RECV,
            fd: fd.as_raw_fd(),
            addr: buf as u64,
            len: clamp_len(len),
            user_data,
            ..Sqe::default()
        }
    }

    /// A timer: completes with `-ETIME` once the time in `after` (relative
    /// to the submission) has passed, or `-ECANCELED` if cancelled first.
    pub fn timeout(after: *const KernelTimespec, user_data: u64) -> Sqe {
        Sqe {
            opcode: sys::IORING_OP_TIMEOUT,
            addr: after as u64,
            len: 1, // one timespec
            off: 0, // complete on time alone, not after a count of other completions
            user_data,
            ..Sqe::default()
        }
    }

    /// Cancels the operation in flight whose `user_data` is `target`. Two
    /// completions follow: this one (0, or `-ENOENT` if `target` already
    /// completed, or `-EALREADY` if it is running and cannot be stopped),
    /// and the target's own (`-ECANCELED` if it was cancelled).
    pub fn cancel(target: u64, user_data: u64) -> Sqe {
        Sqe { opcode: sys::IORING_OP_ASYNC_CANCEL, addr: target, user_data, ..Sqe::default() }
    }

    /// Cancels every operation in flight on this ring (Linux 5.19; older
    /// kernels complete it with `-EINVAL`).
    pub fn cancel_any(user_data: u64) -> Sqe {
        Sqe { opcode: sys::IORING_OP_ASYNC_CANCEL, op_flags: sys::IORING_ASYNC_CANCEL_ANY, user_data, ..Sqe::default() }
    }

    /// The operation's name, as the kernel's header spells it without the
    /// `IORING_OP_` prefix: `READ`, `CONNECT`, ...
    pub fn name(&self) -> &'static str {
        match self.opcode {
            sys::IORING_OP_NOP => "NOP",
            sys::IORING_OP_TIMEOUT => "TIMEOUT",
            sys::IORING_OP_ASYNC_CANCEL => "ASYNC_CANCEL",
            sys::IORING_OP_CONNECT => "CONNECT",
            sys::IORING_OP_READ => "READ",
            sys::IORING_OP_WRITE => "WRITE",
            sys::IORING_OP_SEND => "SEND",
            sys::IORING_OP_RECV => "RECV",
            _ => "(another operation)",
        }
    }
}

/// A length as the SQE's 32-bit `len`. Longer buffers are capped: a read or
/// write of fewer bytes is still correct (it reports how many it did), and
/// the kernel caps a single transfer at about 2 GiB anyway.
fn clamp_len(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}

impl KernelTimespec {
    /// `duration` as seconds and nanoseconds (capped at `i64::MAX` seconds).
    pub fn from_duration(duration: Duration) -> KernelTimespec {
        KernelTimespec {
            tv_sec: duration.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: duration.subsec_nanos().into(),
        }
    }
}

// ANCHOR: completion
/// One finished operation, taken from the completion queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The `user_data` of the SQE it completes.
    pub user_data: u64,
    /// What the equivalent system call would have returned (bytes read,
    /// 0, ...), or `-errno`.
    pub res: i32,
    /// The kernel's `IORING_CQE_F_*` flags: extra news this chapter does
    /// not need (a RECV may set `IORING_CQE_F_SOCK_NONEMPTY`, 4: "more
    /// data is waiting in the socket").
    pub flags: u32,
}

impl Completion {
    /// `res` as a `Result`: a count, or the error the kernel put in it as
    /// `-errno` (no `errno` variable is involved: each result carries its own).
    pub fn result(&self) -> io::Result<u32> {
        if self.res < 0 { Err(io::Error::from_raw_os_error(-self.res)) } else { Ok(self.res as u32) }
    }
}
// ANCHOR_END: completion

impl From<sys::Cqe> for Completion {
    fn from(cqe: sys::Cqe) -> Completion {
        Completion { user_data: cqe.user_data, res: cqe.res, flags: cqe.flags }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn each_operation_fills_the_fields_the_kernel_reads_for_it() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = file.as_fd();
        let mut buf = [0u8; 8];
        let read = Sqe::read(fd, buf.as_mut_ptr(), buf.len(), 7);
        assert_eq!(
            (read.opcode, read.fd, read.addr, read.len, read.off),
            (22, fd.as_raw_fd(), buf.as_ptr() as u64, 8, u64::MAX)
        );
        assert_eq!((read.user_data, read.name()), (7, "READ"));
        let send = Sqe::send(fd, buf.as_ptr(), 3, 1);
        assert_eq!((send.opcode, send.op_flags), (26, libc::MSG_NOSIGNAL as u32));
        let address = std::ptr::null::<libc::sockaddr>();
        let connect = Sqe::connect(fd, address, 16, 2);
        assert_eq!((connect.opcode, connect.off, connect.name()), (16, 16, "CONNECT"));
        let cancel = Sqe::cancel(7, 3);
        assert_eq!((cancel.opcode, cancel.addr, cancel.op_flags), (14, 7, 0));
        assert_eq!(Sqe::cancel_any(4).op_flags, sys::IORING_ASYNC_CANCEL_ANY);
        let ts = KernelTimespec::from_duration(Duration::from_millis(1500));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1, 500_000_000));
        assert_eq!(Sqe::timeout(&ts, 5).len, 1);
    }

    #[test]
    fn a_negative_result_is_the_errno() {
        let failed = Completion { user_data: 1, res: -libc::ECANCELED, flags: 0 };
        assert_eq!(failed.result().unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        assert_eq!(Completion { user_data: 1, res: 5, flags: 0 }.result().unwrap(), 5);
    }
}
