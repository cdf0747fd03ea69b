//! The kernel's io_uring interface, declared by hand.
//!
//! `libc` has the two syscall numbers (`SYS_io_uring_setup`,
//! `SYS_io_uring_enter`) but none of the structs or constants, so here they
//! are, copied field by field from the kernel's public header,
//! `include/uapi/linux/io_uring.h` (the "uapi" headers are the kernel's
//! promise to user space: fields are only ever added at the end or in
//! reserved space, never moved). Each item names the C declaration it
//! mirrors. `#[repr(C)]` lays the fields out as a C compiler would, and the
//! `const` assertions at the bottom check sizes and offsets at compile time:
//! a wrong field breaks the build, not the kernel's reading of our memory.
//!
//! Only what this chapter uses is declared; the header has much more
//! (registered buffers and files, multishot operations, SQPOLL, ...).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use ch01_os_threads::syscall;

use crate::counting::{self, Syscall};

/// `struct io_uring_params`: what we ask of `io_uring_setup` (sizes,
/// flags), and what it answers (the sizes it chose, its features, and where
/// in the shared memory each ring field lives).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IoUringParams {
    /// SQ entries (the kernel rounds up to a power of two).
    pub sq_entries: u32,
    /// CQ entries: set by the kernel (2 × SQ), or by us with [`IORING_SETUP_CQSIZE`].
    pub cq_entries: u32,
    /// `IORING_SETUP_*` flags.
    pub flags: u32,
    /// For `IORING_SETUP_SQ_AFF` (unused here).
    pub sq_thread_cpu: u32,
    /// For `IORING_SETUP_SQPOLL` (unused here).
    pub sq_thread_idle: u32,
    /// `IORING_FEAT_*` bits, filled in by the kernel.
    pub features: u32,
    /// For `IORING_SETUP_ATTACH_WQ` (unused here).
    pub wq_fd: u32,
    /// Must be zero.
    pub resv: [u32; 3],
    /// Where the SQ's fields are, as offsets into the ring mapping.
    pub sq_off: IoSqringOffsets,
    /// Where the CQ's fields are, as offsets into the ring mapping.
    pub cq_off: IoCqringOffsets,
}

/// `struct io_sqring_offsets`: byte offsets of the submission queue's
/// fields inside the mapping at [`IORING_OFF_SQ_RING`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IoSqringOffsets {
    /// The SQ head: the kernel advances it as it consumes entries.
    pub head: u32,
    /// The SQ tail: we advance it as we add entries.
    pub tail: u32,
    /// `entries - 1`, to turn a running index into a slot.
    pub ring_mask: u32,
    /// How many slots.
    pub ring_entries: u32,
    /// `IORING_SQ_*` flags the kernel sets (e.g. [`IORING_SQ_CQ_OVERFLOW`]).
    pub flags: u32,
    /// Entries the kernel dropped as invalid.
    pub dropped: u32,
    /// The index array: slot `i` of the ring names SQE `array[i]`.
    pub array: u32,
    /// Reserved.
    pub resv1: u32,
    /// For `IORING_SETUP_NO_MMAP` (unused here).
    pub user_addr: u64,
}

/// `struct io_cqring_offsets`: byte offsets of the completion queue's
/// fields (inside the same mapping, since `IORING_FEAT_SINGLE_MMAP`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IoCqringOffsets {
    /// The CQ head: we advance it as we take completions.
    pub head: u32,
    /// The CQ tail: the kernel advances it as it adds completions.
    pub tail: u32,
    /// `entries - 1`.
    pub ring_mask: u32,
    /// How many slots.
    pub ring_entries: u32,
    /// Completions the kernel had to drop (without `IORING_FEAT_NODROP`,
    /// or when even its overflow list could not get memory).
    pub overflow: u32,
    /// The array of [`Cqe`]s.
    pub cqes: u32,
    /// `IORING_CQ_*` flags we may set (unused here).
    pub flags: u32,
    /// Reserved.
    pub resv1: u32,
    /// For `IORING_SETUP_NO_MMAP` (unused here).
    pub user_addr: u64,
}

// ANCHOR: sqe
/// `struct io_uring_sqe`: one submission queue entry, 64 bytes, describing
/// one operation. Most fields are unions in C; each field here is named
/// after the member this chapter uses, with the others in its comment.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sqe {
    /// `opcode`: which operation (`IORING_OP_*`).
    pub opcode: u8,
    /// `flags`: `IOSQE_*` (links, drain, ...); 0 here.
    pub flags: u8,
    /// `ioprio`: I/O priority, or per-operation flags for some opcodes.
    pub ioprio: u16,
    /// `fd`: the file descriptor to operate on.
    pub fd: i32,
    /// `off` / `addr2`: the file offset (READ, WRITE), the address length
    /// (CONNECT), or how many completions a TIMEOUT waits for.
    pub off: u64,
    /// `addr` / `splice_off_in`: the buffer (READ, WRITE, SEND, RECV), the
    /// socket address (CONNECT), the timespec (TIMEOUT), or the `user_data`
    /// to cancel (ASYNC_CANCEL).
    pub addr: u64,
    /// `len`: the buffer's length (1 for a TIMEOUT: one timespec).
    pub len: u32,
    /// The flags union: `rw_flags`, `msg_flags` (SEND, RECV),
    /// `timeout_flags`, `cancel_flags`, ...
    pub op_flags: u32,
    /// `user_data`: 64 bits the kernel copies into this operation's
    /// completion untouched, so we know which operation it was.
    pub user_data: u64,
    /// `buf_index` / `buf_group` (a packed union of two `u16`s in C).
    pub buf_index: u16,
    /// `personality`: credentials to use (0: the submitter's).
    pub personality: u16,
    /// `splice_fd_in` / `file_index` / ...
    pub splice_fd_in: i32,
    /// `addr3` and padding, up to 64 bytes.
    pub pad: [u64; 2],
}
// ANCHOR_END: sqe

/// `struct io_uring_cqe`: one completion queue entry, 16 bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    /// The `user_data` of the SQE this completes.
    pub user_data: u64,
    /// What the equivalent system call would have returned, or `-errno`.
    pub res: i32,
    /// `IORING_CQE_F_*`: more completions to come, a buffer id, more data
    /// waiting in the socket, ...
    pub flags: u32,
}

/// `struct __kernel_timespec` (`include/uapi/linux/time_types.h`): 64-bit
/// seconds and nanoseconds, what IORING_OP_TIMEOUT reads.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelTimespec {
    /// Whole seconds.
    pub tv_sec: i64,
    /// Nanoseconds, below 1 000 000 000.
    pub tv_nsec: i64,
}

// `IORING_SETUP_*`: flags for io_uring_setup.
/// We choose the CQ size (`cq_entries`) instead of the default 2 × SQ.
pub const IORING_SETUP_CQSIZE: u32 = 1 << 3;

// `IORING_FEAT_*`: what this kernel's io_uring can do (`params.features`).
/// SQ and CQ rings live in one mapping (Linux 5.4).
pub const IORING_FEAT_SINGLE_MMAP: u32 = 1 << 0;
/// A full CQ never loses a completion: extras wait in a kernel list (5.5).
pub const IORING_FEAT_NODROP: u32 = 1 << 1;
/// An SQE's contents are copied when `io_uring_enter` consumes it, so its
/// slot may be reused at once (5.5).
pub const IORING_FEAT_SUBMIT_STABLE: u32 = 1 << 2;

// Offsets to pass to mmap to map each part of the shared memory.
/// The SQ ring (and, with `IORING_FEAT_SINGLE_MMAP`, the CQ ring too).
pub const IORING_OFF_SQ_RING: libc::off_t = 0;
/// The array of SQEs.
pub const IORING_OFF_SQES: libc::off_t = 0x1000_0000;

/// `IORING_SQ_CQ_OVERFLOW`, in the SQ ring's flags: completions are waiting
/// in the kernel's overflow list for room in the CQ.
pub const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;

/// `IORING_ENTER_GETEVENTS`: `io_uring_enter` also waits until
/// `min_complete` completions are in the CQ.
pub const IORING_ENTER_GETEVENTS: u32 = 1 << 0;

// `enum io_uring_op`: the operations this chapter uses (their numbers are
// their places in that enum).
/// Does nothing; completes with 0. Measures the machinery itself.
pub const IORING_OP_NOP: u8 = 0;
/// A timer: completes with `-ETIME` when it expires.
pub const IORING_OP_TIMEOUT: u8 = 11;
/// Cancels another operation, found by its `user_data`.
pub const IORING_OP_ASYNC_CANCEL: u8 = 14;
/// `connect(2)`.
pub const IORING_OP_CONNECT: u8 = 16;
/// `read(2)` / `pread(2)`.
pub const IORING_OP_READ: u8 = 22;
/// `write(2)` / `pwrite(2)`.
pub const IORING_OP_WRITE: u8 = 23;
/// `send(2)`.
pub const IORING_OP_SEND: u8 = 26;
/// `recv(2)`.
pub const IORING_OP_RECV: u8 = 27;

/// `IORING_ASYNC_CANCEL_ANY` (Linux 5.19): cancel every operation in
/// flight, not just the one with a given `user_data`.
pub const IORING_ASYNC_CANCEL_ANY: u32 = 1 << 2;

/// The largest SQ (`IORING_MAX_ENTRIES` in the kernel's `io_uring.h`).
pub const MAX_SQ_ENTRIES: u32 = 32_768;
/// The largest CQ (`IORING_MAX_CQ_ENTRIES`).
pub const MAX_CQ_ENTRIES: u32 = 2 * MAX_SQ_ENTRIES;

// The layout, checked by the compiler against the sizes and offsets in the
// kernel's header (and its BUILD_BUG_ON checks in io_uring/io_uring.c).
const _: () = assert!(size_of::<Sqe>() == 64);
const _: () = assert!(std::mem::offset_of!(Sqe, fd) == 4);
const _: () = assert!(std::mem::offset_of!(Sqe, off) == 8);
const _: () = assert!(std::mem::offset_of!(Sqe, addr) == 16);
const _: () = assert!(std::mem::offset_of!(Sqe, len) == 24);
const _: () = assert!(std::mem::offset_of!(Sqe, op_flags) == 28);
const _: () = assert!(std::mem::offset_of!(Sqe, user_data) == 32);
const _: () = assert!(std::mem::offset_of!(Sqe, buf_index) == 40);
const _: () = assert!(std::mem::offset_of!(Sqe, splice_fd_in) == 44);
const _: () = assert!(size_of::<Cqe>() == 16);
const _: () = assert!(std::mem::offset_of!(Cqe, res) == 8);
const _: () = assert!(size_of::<IoSqringOffsets>() == 40);
const _: () = assert!(size_of::<IoCqringOffsets>() == 40);
const _: () = assert!(size_of::<IoUringParams>() == 120);
const _: () = assert!(std::mem::offset_of!(IoUringParams, sq_off) == 40);
const _: () = assert!(size_of::<KernelTimespec>() == 16);

// ANCHOR: syscalls
/// `io_uring_setup(2)`: creates an io_uring instance with at least
/// `entries` SQ entries; fills `params` with what the kernel chose, and
/// returns the instance's file descriptor.
pub fn io_uring_setup(entries: u32, params: &mut IoUringParams) -> io::Result<OwnedFd> {
    // SAFETY: `params` is a valid, writable io_uring_params for the whole
    // call (the kernel reads our flags and sizes, writes its answer back).
    let fd = syscall!(unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, &raw mut *params) })?;
    // SAFETY: on success the kernel returned a new fd (opened O_CLOEXEC)
    // that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `io_uring_enter(2)`: hands the kernel `to_submit` new SQEs and, with
/// [`IORING_ENTER_GETEVENTS`] in `flags`, waits until at least
/// `min_complete` completions are in the CQ. Returns how many SQEs the
/// kernel consumed. Not retried here: the caller knows what to do on
/// `EINTR` (see `Ring::submit_and_wait`).
pub fn io_uring_enter(ring: BorrowedFd<'_>, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<u32> {
    counting::count(Syscall::IoUringEnter);
    // The last two arguments are a signal mask and its size: none.
    let no_sigmask = std::ptr::null::<libc::sigset_t>();
    // SAFETY: the fd is an io_uring instance the caller owns; the counts
    // and flags are plain integers, and a null signal mask is allowed. The
    // memory the kernel reads (the SQEs, through the rings) belongs to the
    // caller's Ring, which is borrowed for this call.
    let consumed = syscall!(unsafe {
        libc::syscall(libc::SYS_io_uring_enter, ring.as_raw_fd(), to_submit, min_complete, flags, no_sigmask, 0usize)
    })?;
    Ok(consumed as u32)
}
// ANCHOR_END: syscalls
