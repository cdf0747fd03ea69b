//! io_uring by hand: completion instead of readiness.
//!
//! `epoll` answers "which sockets can make progress now?", and the program
//! then makes the `read` or `write` itself. io_uring takes the operation
//! instead: "read into this buffer", "send these bytes", "connect to this
//! address". The kernel does it whenever it can and reports when it is
//! *done*, with the result. Two rings of memory shared between the program
//! and the kernel carry that conversation:
//!
//! ```text
//!  submission queue (SQ): we add entries at the tail, the kernel takes them at the head
//!
//!        head (kernel moves it)              tail (we move it)
//!         │                                   │
//!   ┌─────▼─────┬───────────┬───────────┬─────▼─────┬───────────┐
//!   │ SQE: READ │ SQE: SEND │ SQE: NOP  │   free    │   free    │   64 bytes each
//!   └───────────┴───────────┴───────────┴───────────┴───────────┘
//!
//!  completion queue (CQ): the kernel adds entries at the tail, we take them at the head
//!
//!        head (we move it)       tail (kernel moves it)
//!         │                       │
//!   ┌─────▼─────┬───────────┬─────▼─────┬───────────┐
//!   │ CQE: 5    │ CQE: -ETIME │   free    │   free    │   16 bytes each
//!   └───────────┴───────────┴───────────┴───────────┘
//! ```
//!
//! Each side only ever moves its own index, so neither needs a lock: the
//! writer of an entry publishes it by moving its index past it, the reader
//! frees it by moving the other index. A system call, `io_uring_enter`, is
//! needed only to say "there are new entries" and to sleep until enough
//! completions have arrived, and one call can carry any number of entries
//! (batching).
//!
//! ## Memory ordering
//!
//! The kernel reads and writes the rings on another CPU at the same time as
//! we do, so the four indices are atomics, and each load and store says
//! what it must be ordered with (io_uring(7); the comment at the top of the
//! kernel's `io_uring/io_uring.c` pairs each with the kernel's side):
//!
//! | index   | written by | we           | ordering  | so that                                                        |
//! |---------|------------|--------------|-----------|----------------------------------------------------------------|
//! | SQ tail | us         | store        | `Release` | the SQE's bytes are visible to the kernel before the new tail is |
//! | SQ head | the kernel | load         | `Acquire` | the kernel has finished reading an SQE before we reuse its slot |
//! | CQ tail | the kernel | load         | `Acquire` | a CQE's bytes are visible to us once we see the tail past it    |
//! | CQ head | us         | store        | `Release` | we have finished reading a CQE before the kernel reuses its slot |
//!
//! Our own index we never need to load from shared memory: we keep a copy
//! (`local_tail`, `local_head`), since nobody else writes it.
//!
//! ## Who owns the buffer
//!
//! A READ's SQE carries the address of our buffer, and the kernel writes
//! into it *after* `io_uring_enter` has returned: whenever the data
//! arrives. From [`Ring::push`] until that operation's completion has been
//! taken, the buffer belongs to the kernel: it must not be freed, moved,
//! read or written by us. An SQE holds a raw address, not a borrow, so the
//! compiler cannot check this; that is why `push` is an `unsafe fn`, and
//! why every call site says in its `// SAFETY:` comment what keeps the
//! memory alive. (A borrow could not do it anyway: `std::mem::forget` is
//! safe, so a value can be forgotten without its destructor ever waiting
//! for the kernel. Runtimes built on io_uring take the buffer by value and
//! hand it back with the result; chapter 5 does the same.)
//!
//! ## Using it
//!
//! ```no_run
//! use ch03_epoll::uring::{Ring, Sqe};
//! use std::os::fd::AsFd;
//!
//! let mut ring = Ring::new(8)?;
//! let file = std::fs::File::open("/etc/hostname")?;
//! let mut buf = vec![0u8; 64];
//! let read = Sqe::read(file.as_fd(), buf.as_mut_ptr(), buf.len(), 42);
//! // SAFETY: `buf` is neither used nor dropped until the completion with
//! // user_data 42 has been taken, below.
//! unsafe { ring.push(&read) }?;
//! ring.submit_and_wait(1)?; // one system call: submit, and wait for one completion
//! let done = ring.completion()?.expect("submit_and_wait(1) waited for it");
//! assert_eq!(done.user_data, 42);
//! let n = done.result()? as usize;
//! println!("{}", String::from_utf8_lossy(&buf[..n]));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Where the kernel has no io_uring, or refuses it (`kernel.io_uring_disabled`,
//! a container's seccomp filter), [`Ring::new`] fails and
//! [`Unavailable::from_error`] says why in one line.

mod ops;
#[cfg(target_arch = "x86_64")]
pub mod refuse;
pub mod sys;
mod unavailable;

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

pub use ops::Completion;
pub use sys::{KernelTimespec, Sqe};
pub use unavailable::Unavailable;

use sys::{Cqe, IoUringParams};

// ANCHOR: ring
/// An io_uring instance: its file descriptor and the shared memory of its
/// two rings. See the module docs for the picture.
///
/// A `Ring` is `Send` (a driver thread may own it) but not `Sync`: pushing
/// and taking completions need `&mut self`. The kernel ties each operation
/// to the thread that submitted it: if that thread exits, the kernel
/// cancels its operations, so the thread that owns the ring should be the
/// one that submits.
pub struct Ring {
    /// The instance. Closed (after `Drop::drop` has waited for every
    /// operation in flight) when the ring is dropped.
    fd: OwnedFd,
    /// One mapping with both rings: their indices, the SQ's index array and
    /// the CQEs (`IORING_FEAT_SINGLE_MMAP`: one `mmap` instead of two).
    rings: Mmap,
    /// A second mapping: the array of SQEs the SQ's slots refer to.
    sqes: Mmap,
    /// Where the SQ's fields are, and our copy of its tail.
    sq: SubmissionQueue,
    /// Where the CQ's fields are, and our copy of its head.
    cq: CompletionQueue,
    /// Operations the kernel has consumed whose completion we have not
    /// taken yet. `Drop` waits until this is 0.
    in_flight: u64,
    /// How many dropped completions (the CQ's `overflow` counter) we have
    /// already subtracted from `in_flight`.
    dropped_seen: u32,
}

/// The submission queue: byte offsets of its shared fields in `rings`.
struct SubmissionQueue {
    /// The head: written by the kernel as it consumes SQEs.
    head: u32,
    /// The tail: written by us to publish new SQEs.
    tail: u32,
    /// Flags the kernel sets, e.g. [`sys::IORING_SQ_CQ_OVERFLOW`].
    flags: u32,
    /// Slots, a power of two; `entries - 1` turns an index into a slot.
    entries: u32,
    /// Our tail: SQEs are written up to here by `push`, and published to
    /// the shared `tail` by `submit`.
    local_tail: u32,
}

/// The completion queue: byte offsets of its shared fields in `rings`.
struct CompletionQueue {
    /// The head: written by us as we take CQEs.
    head: u32,
    /// The tail: written by the kernel as it adds CQEs.
    tail: u32,
    /// Completions the kernel had to drop (see [`Ring::dropped`]).
    overflow: u32,
    /// The array of CQEs.
    cqes: u32,
    /// Slots, a power of two.
    entries: u32,
    /// Our head: the next CQE to take.
    local_head: u32,
}
// ANCHOR_END: ring

/// What [`Ring::push`] returns when every SQ slot holds an entry the kernel
/// has not consumed yet: [`Ring::submit`] them, then push again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqFull {
    /// The SQ's size.
    pub entries: u32,
}

impl fmt::Display for SqFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the submission queue is full ({} entries not yet submitted): submit, then push again", self.entries)
    }
}

impl std::error::Error for SqFull {}

impl From<SqFull> for io::Error {
    fn from(full: SqFull) -> io::Error {
        io::Error::new(io::ErrorKind::WouldBlock, full)
    }
}

impl Ring {
    /// A ring with `sq_entries` SQ entries (rounded up to a power of two by
    /// the kernel) and twice as many CQ entries.
    pub fn new(sq_entries: u32) -> io::Result<Ring> {
        Ring::setup(sq_entries, None)
    }

    /// A ring whose CQ has `cq_entries` (at least `sq_entries`; rounded up to
    /// a power of two): room for as many completions as you will have
    /// operations in flight at once, which may be far more than you submit
    /// in one go (`IORING_SETUP_CQSIZE`).
    pub fn with_cq_size(sq_entries: u32, cq_entries: u32) -> io::Result<Ring> {
        Ring::setup(sq_entries, Some(cq_entries))
    }

    // ANCHOR: setup
    fn setup(sq_entries: u32, cq_entries: Option<u32>) -> io::Result<Ring> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        if sq_entries == 0 || sq_entries > sys::MAX_SQ_ENTRIES {
            return Err(invalid(format!("an io_uring SQ has 1 to {} entries, not {sq_entries}", sys::MAX_SQ_ENTRIES)));
        }
        let mut params = IoUringParams::default();
        if let Some(cq_entries) = cq_entries {
            if cq_entries < sq_entries || cq_entries > sys::MAX_CQ_ENTRIES {
                let most = sys::MAX_CQ_ENTRIES;
                return Err(invalid(format!("the CQ needs {sq_entries} to {most} entries, not {cq_entries}")));
            }
            params.flags |= sys::IORING_SETUP_CQSIZE;
            params.cq_entries = cq_entries;
        }
        // Errors keep their errno (Unavailable::from_error reads it).
        let fd = sys::io_uring_setup(sq_entries, &mut params).map_err(memlock_hint)?;

        let needed = [
            (sys::IORING_FEAT_SINGLE_MMAP, "IORING_FEAT_SINGLE_MMAP"),
            (sys::IORING_FEAT_NODROP, "IORING_FEAT_NODROP"),
            (sys::IORING_FEAT_SUBMIT_STABLE, "IORING_FEAT_SUBMIT_STABLE"),
        ];
        if let Some(&(_, missing)) = needed.iter().find(|(bit, _)| params.features & bit == 0) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, Unavailable::TooOld { missing }));
        }

        // Both rings in one mapping, as long as the longer of the two needs;
        // the SQEs in another. MAP_POPULATE maps the pages in now instead of
        // on first touch.
        let (sq_off, cq_off) = (params.sq_off, params.cq_off);
        let sq_bytes = sq_off.array as usize + params.sq_entries as usize * size_of::<u32>();
        let cq_bytes = cq_off.cqes as usize + params.cq_entries as usize * size_of::<Cqe>();
        let rings = Mmap::map(fd.as_fd(), sys::IORING_OFF_SQ_RING, sq_bytes.max(cq_bytes))?;
        let sqes = Mmap::map(fd.as_fd(), sys::IORING_OFF_SQES, params.sq_entries as usize * size_of::<Sqe>())?;

        // Every offset the kernel gave must lie inside the mapping, aligned:
        // checked once here, so the accessors below can rely on it.
        for offset in [sq_off.head, sq_off.tail, sq_off.flags, cq_off.head, cq_off.tail, cq_off.overflow] {
            rings.check::<AtomicU32>(offset, 1)?;
        }
        rings.check::<u32>(sq_off.array, params.sq_entries as usize)?;
        rings.check::<Cqe>(cq_off.cqes, params.cq_entries as usize)?;

        let mut ring = Ring {
            sq: SubmissionQueue {
                head: sq_off.head,
                tail: sq_off.tail,
                flags: sq_off.flags,
                entries: params.sq_entries,
                local_tail: 0,
            },
            cq: CompletionQueue {
                head: cq_off.head,
                tail: cq_off.tail,
                overflow: cq_off.overflow,
                cqes: cq_off.cqes,
                entries: params.cq_entries,
                local_head: 0,
            },
            fd,
            rings,
            sqes,
            in_flight: 0,
            dropped_seen: 0,
        };
        // The SQ ring does not hold SQEs but indices into the SQE array
        // (`array`). We always put the SQE for slot i in SQE i, so the array
        // is the identity, written once. Nothing is published yet: the
        // kernel reads `array` only for slots before the tail we release.
        let array = ring.rings.at::<u32>(sq_off.array);
        for i in 0..params.sq_entries {
            // SAFETY: `check` above proved `sq_entries` u32s fit at `array`.
            unsafe { array.add(i as usize).write(i) };
        }
        // Both indices start at 0 (the kernel set them); so do our copies.
        ring.sq.local_tail = ring.rings.index(ring.sq.tail).load(Ordering::Relaxed);
        ring.cq.local_head = ring.rings.index(ring.cq.head).load(Ordering::Relaxed);
        Ok(ring)
    }
    // ANCHOR_END: setup

    /// How many SQEs fit in the SQ.
    pub fn sq_entries(&self) -> u32 {
        self.sq.entries
    }

    /// How many CQEs fit in the CQ.
    pub fn cq_entries(&self) -> u32 {
        self.cq.entries
    }

    /// Operations submitted whose completion has not been taken yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// SQEs pushed that the kernel has not consumed yet.
    pub fn queued(&self) -> u32 {
        // Acquire: pairs with the kernel's Release store of the SQ head
        // after it has read the SQEs before it (see `push`).
        self.sq.local_tail.wrapping_sub(self.rings.index(self.sq.head).load(Ordering::Acquire))
    }

    /// Completions in the CQ, ready to be taken.
    pub fn ready(&self) -> u32 {
        // Acquire: see `completion`.
        self.rings.index(self.cq.tail).load(Ordering::Acquire).wrapping_sub(self.cq.local_head)
    }

    /// Completions the kernel could not deliver at all (it drops one only
    /// when even its overflow list cannot get memory; 0 in practice).
    pub fn dropped(&self) -> u32 {
        // Relaxed: a statistic; nothing else is read on the strength of it.
        self.rings.index(self.cq.overflow).load(Ordering::Relaxed)
    }

    /// Whether completions are waiting in the kernel's overflow list for
    /// room in the CQ (`IORING_SQ_CQ_OVERFLOW`).
    pub fn overflowed(&self) -> bool {
        // Relaxed: a hint that makes us call io_uring_enter, and that
        // system call does its own synchronisation.
        self.rings.index(self.sq.flags).load(Ordering::Relaxed) & sys::IORING_SQ_CQ_OVERFLOW != 0
    }

    // ANCHOR: push
    /// Queues one operation. The kernel does not see it until [`submit`]
    /// (or [`submit_and_wait`]), so many pushes can go out in one system call.
    ///
    /// Fails with [`SqFull`] when every slot holds an SQE not yet submitted.
    ///
    /// # Safety
    ///
    /// Every address in `sqe` (a buffer, a socket address, a timespec) must
    /// point to memory that stays valid, and is not moved, until this
    /// operation's completion has been taken with [`completion`], or the
    /// ring has been dropped (its `Drop` waits for every operation in
    /// flight). A buffer the kernel writes into (READ, RECV) must also not be
    /// read or written by anyone else until then. If the ring is leaked
    /// (`mem::forget`), that memory must be leaked as well: the kernel may
    /// write into it at any time.
    ///
    /// [`submit`]: Ring::submit
    /// [`submit_and_wait`]: Ring::submit_and_wait
    /// [`completion`]: Ring::completion
    pub unsafe fn push(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // Acquire (in `queued`): the kernel stores the SQ head with Release
        // after it has copied the SQEs before it; seeing that head, we know
        // those slots are free to overwrite.
        if self.queued() == self.sq.entries {
            return Err(SqFull { entries: self.sq.entries });
        }
        let slot = self.sq.local_tail & (self.sq.entries - 1);
        // SAFETY: `slot < entries` and the SQE mapping holds `entries` SQEs;
        // the kernel is done with this slot (the head is past it, above) and
        // will not read it before we publish the tail in `submit`.
        unsafe { self.sqes.at::<Sqe>(0).add(slot as usize).write(*sqe) };
        self.sq.local_tail = self.sq.local_tail.wrapping_add(1);
        Ok(())
    }
    // ANCHOR_END: push

    /// Hands every queued SQE to the kernel, without waiting for any
    /// completion. Returns how many the kernel consumed. Costs no system
    /// call when nothing is queued.
    pub fn submit(&mut self) -> io::Result<u32> {
        self.enter(0)
    }

    /// Hands every queued SQE to the kernel and waits until at least `want`
    /// completions are ready to take, in as few system calls as possible
    /// (usually one). Returns how many SQEs the kernel consumed.
    ///
    /// A signal that interrupts the wait (`EINTR`) is not an error: it waits
    /// again. If the kernel asks us to take completions first (`EBUSY`,
    /// `EAGAIN`), it returns early with the ones that are ready.
    /// Waiting for more completions than there are operations in flight
    /// would never end, and is refused (`InvalidInput`).
    pub fn submit_and_wait(&mut self, want: u32) -> io::Result<u32> {
        let could_complete = self.in_flight + u64::from(self.queued());
        if u64::from(want) > could_complete {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("waiting for {want} completions with {could_complete} operations in flight would never end"),
            ));
        }
        self.enter(want)
    }

    // ANCHOR: enter
    /// Publishes the queued SQEs and calls `io_uring_enter` until the kernel
    /// has consumed all of them and `want` completions are ready.
    fn enter(&mut self, want: u32) -> io::Result<u32> {
        // Release: the SQEs `push` wrote become visible to the kernel no
        // later than the tail that tells it they are there.
        self.rings.index(self.sq.tail).store(self.sq.local_tail, Ordering::Release);
        let flags = if want > 0 { sys::IORING_ENTER_GETEVENTS } else { 0 };
        let mut submitted = 0;
        loop {
            let queued = self.queued();
            if queued == 0 && self.ready() >= want {
                return Ok(submitted);
            }
            match sys::io_uring_enter(self.fd.as_fd(), queued, want, flags) {
                Ok(consumed) => {
                    // The kernel stops a batch early at an SQE it cannot
                    // even start (that SQE still gets a completion, with the
                    // error); the loop hands it the rest.
                    if consumed == 0 && queued > 0 {
                        return Err(io::Error::other(format!("io_uring_enter took none of {queued} queued SQEs")));
                    }
                    submitted += consumed;
                    self.in_flight += u64::from(consumed);
                }
                // A signal arrived while we waited. Nothing is lost: what
                // the kernel consumed shows in the SQ head; wait again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The CQ is full (EBUSY) or the kernel is short of memory
                // for requests (EAGAIN): it wants completions taken first.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) && self.ready() > 0 => {
                    return Ok(submitted);
                }
                Err(e) if e.raw_os_error() == Some(libc::EBADR) => {
                    // Completions were dropped (see `dropped`): they will
                    // never arrive, so they are no longer in flight.
                    let dropped = self.dropped();
                    self.in_flight = self.in_flight.saturating_sub(u64::from(dropped.wrapping_sub(self.dropped_seen)));
                    self.dropped_seen = dropped;
                    return Err(io::Error::other(format!("the kernel dropped {dropped} completions so far: {e}")));
                }
                Err(e) => return Err(e),
            }
        }
    }
    // ANCHOR_END: enter

    // ANCHOR: completion
    /// Takes the next completion, if one is ready. Never blocks (wait with
    /// [`submit_and_wait`](Ring::submit_and_wait)).
    ///
    /// When the CQ is empty but the kernel has completions waiting in its
    /// overflow list (more finished than the CQ could hold), it asks the
    /// kernel to move them in (one `io_uring_enter`) and takes from there:
    /// no completion is lost (`IORING_FEAT_NODROP`).
    pub fn completion(&mut self) -> io::Result<Option<Completion>> {
        if self.ready() == 0 {
            if !self.overflowed() {
                return Ok(None);
            }
            self.flush_overflow()?;
            if self.ready() == 0 {
                return Ok(None);
            }
        }
        let slot = self.cq.local_head & (self.cq.entries - 1);
        // SAFETY: `slot < entries` and `check` proved `entries` CQEs fit at
        // `cqes`. Acquire (in `ready`): the kernel wrote this CQE before it
        // stored a tail past it with Release, so its bytes are all here; it
        // will not write this slot again until we move the head past it.
        let cqe = unsafe { self.rings.at::<Cqe>(self.cq.cqes).add(slot as usize).read() };
        self.cq.local_head = self.cq.local_head.wrapping_add(1);
        // Release: our read of the CQE above is done before the kernel can
        // see the slot is free and write the next completion into it.
        self.rings.index(self.cq.head).store(self.cq.local_head, Ordering::Release);
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(Some(Completion::from(cqe)))
    }
    // ANCHOR_END: completion

    /// Asks the kernel to move completions from its overflow list into the
    /// CQ: `io_uring_enter` with `GETEVENTS` and `min_complete` 0 does that
    /// and returns at once.
    fn flush_overflow(&mut self) -> io::Result<()> {
        loop {
            match sys::io_uring_enter(self.fd.as_fd(), 0, 0, sys::IORING_ENTER_GETEVENTS) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

// ANCHOR: drop
impl Drop for Ring {
    /// Waits until no operation is in flight, so that the kernel never
    /// writes into memory after the ring is gone: asks it to cancel
    /// everything still running (`IORING_ASYNC_CANCEL_ANY`), then takes
    /// completions until the last one has arrived.
    ///
    /// Kernels before 5.19 refuse "cancel any" (`-EINVAL`): there, `Drop`
    /// waits for the operations to finish on their own, so cancel them one
    /// by one ([`Sqe::cancel`]) before dropping the ring.
    fn drop(&mut self) {
        if self.in_flight == 0 {
            // Nothing to wait for. SQEs pushed but never submitted are
            // dropped with the ring: the kernel never started them.
            return;
        }
        let cancel = Sqe::cancel_any(u64::MAX);
        // SAFETY: an ASYNC_CANCEL carries no address, only flags.
        if unsafe { self.push(&cancel) }.is_err() {
            // The SQ is full: submitting it frees the slots.
            let _ = self.submit();
            // SAFETY: as above.
            let _ = unsafe { self.push(&cancel) };
        }
        while self.in_flight > 0 || self.queued() > 0 {
            if let Err(e) = self.submit_and_wait(1) {
                // We cannot tell when the kernel is done with the memory
                // these operations point into. Carrying on could let it
                // write into memory that has been freed: stop instead.
                eprintln!("io_uring: cannot wait for {} operations in flight ({e}); aborting", self.in_flight);
                std::process::abort();
            }
            while let Ok(Some(_)) = self.completion() {}
        }
    }
}
// ANCHOR_END: drop

// SAFETY: the raw pointers inside (in `Mmap`) point into mappings this
// `Ring` owns and unmaps; nothing in it belongs to one thread. Moving it
// to another thread moves that ownership along. (`&Ring` is not shared
// across threads: there is no `Sync`, and every operation takes `&mut`.)
unsafe impl Send for Ring {}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("sq_entries", &self.sq.entries)
            .field("cq_entries", &self.cq.entries)
            .field("queued", &self.queued())
            .field("in_flight", &self.in_flight)
            .field("ready", &self.ready())
            .finish()
    }
}

/// Adds the likely cause to `ENOMEM` from `io_uring_setup`.
fn memlock_hint(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        io::Error::new(
            e.kind(),
            format!(
                "io_uring_setup: {e} (before Linux 5.12, ring memory counts against the locked-memory limit: \
                 see `ulimit -l`, or use a smaller ring)"
            ),
        )
    } else {
        e
    }
}

/// A shared mapping of part of the io_uring instance, unmapped on drop.
struct Mmap {
    /// Where it starts.
    ptr: NonNull<u8>,
    /// How long it is, in bytes.
    len: usize,
}

impl Mmap {
    /// Maps `len` bytes of the ring `fd` at the kernel's magic `offset`.
    fn map(fd: BorrowedFd<'_>, offset: libc::off_t, len: usize) -> io::Result<Mmap> {
        use std::os::fd::AsRawFd;
        // SAFETY: we ask for a new mapping anywhere (null hint) of `len`
        // bytes of a file we own; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned address 0"))?;
        Ok(Mmap { ptr, len })
    }

    /// Checks that `count` values of type `T` fit at byte `offset`, aligned
    /// for `T` (the kernel's offsets are, but the accessors rely on it).
    fn check<T>(&self, offset: u32, count: usize) -> io::Result<()> {
        let end = (offset as usize).checked_add(count.saturating_mul(size_of::<T>()));
        let fits = end.is_some_and(|end| end <= self.len);
        let aligned = self.at::<T>(offset).is_aligned();
        if fits && aligned {
            Ok(())
        } else {
            Err(io::Error::other(format!("io_uring offset {offset} lies outside its {}-byte mapping", self.len)))
        }
    }

    /// A pointer `offset` bytes into the mapping.
    fn at<T>(&self, offset: u32) -> *mut T {
        self.ptr.as_ptr().wrapping_add(offset as usize).cast()
    }

    /// The shared index at `offset`.
    fn index(&self, offset: u32) -> &AtomicU32 {
        // SAFETY: every offset passed here was checked in `Ring::setup` to
        // hold an aligned u32 inside the mapping, which lives as long as
        // `&self`. The kernel writes it concurrently, which is what atomics
        // are for: every access goes through this AtomicU32.
        unsafe { AtomicU32::from_ptr(self.at::<u32>(offset)) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what mmap returned and was
        // given, and nothing borrowed from the mapping outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
