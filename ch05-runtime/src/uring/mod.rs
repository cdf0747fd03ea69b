//! A completion driver: io_uring under the same executor.
//!
//! The [reactor](crate::reactor) answers "which sockets are ready?", and its
//! leaf futures then make the system call themselves. The leaf futures in
//! here hand over the *operation* instead, as chapter 3's
//! [`uring_client`](ch03_epoll::uring_client) does: "receive into this
//! buffer", "connect there", "complete in 50 ms". They are woken when it is
//! *done*, and find its result waiting. The executor does not notice the
//! difference: a future leaves its waker somewhere and returns `Pending`,
//! somebody calls `wake()`. Nothing in `task.rs`, `scheduler.rs` or the
//! executors knows this module exists.
//!
//! ```text
//!  a task, on any executor thread           the driver thread, "uring"              the kernel
//!  ─────────────────────────────            ──────────────────────────              ──────────
//!  Op::submit: entry `Queued`, its SQE ───► takes up to 1024 queued SQEs,
//!  in the queue (eventfd write if the       pushes them, io_uring_enter: submit ───► does the
//!  driver sleeps); poll: Pending,           and sleep until a completion            operation
//!  its waker in the entry                   CQE {user_data: id, res} ◄──────────── writes the
//!                                           entry `Done(res)`, take its waker       buffer, then
//!  poll: Ready((res, buffer)) ◄──────────── wake() it (outside the lock)            the CQE
//! ```
//!
//! ## One operation's life
//!
//! Every operation has an entry in the driver's table, keyed by its id (the
//! SQE's `user_data`; ids are never reused, like the reactor's tokens):
//!
//! ```text
//!   submit ──► Queued ──driver pushes its SQE──► InFlight ──its CQE──► Done ──poll──► removed; the
//!                │                                  │                    │            future gets the
//!                │ future dropped: removed,         │ future dropped:    │ dropped:   result and
//!                │ memory freed at once (the        │ memory moved in,   │ removed,   its memory back
//!                │ kernel never saw it)             ▼ ASYNC_CANCEL sent  │ freed
//!                                                Abandoned ──its CQE──► removed; the driver frees the memory
//! ```
//!
//! The memory an operation points the kernel at (a buffer, a socket
//! address, a timespec, and the socket itself) belongs to the operation, not
//! to whoever started it: the future (`Op`, in `op.rs`) owns it while it
//! waits, hands it back with the result, and if it is dropped before the
//! kernel is done, gives it to the driver to keep until the completion
//! arrives. Dropping a
//! future is not cancelling its operation: it *asks* for a cancel, and the
//! kernel may still write into the buffer until the completion says it has
//! stopped (see `op.rs`).
//!
//! ## Why a thread of its own
//!
//! - The [`Ring`] is not `Sync`: one thread pushes and takes completions.
//! - The kernel ties an operation to the thread that submitted it, and
//!   cancels it if that thread exits. Executor threads come and go (a
//!   multi-threaded runtime's workers end with it); the driver thread never
//!   does, so it does all the submitting.
//! - It keeps the executors as they are: the driver is to io_uring what
//!   the reactor thread is to epoll, and a wake from it reaches a task the
//!   way the reactor's does (through the injector). tokio-uring instead
//!   keeps the ring on the executor's own thread, as `IoDriver::ExecutorThread`
//!   does with epoll; that saves the hop, and ties the futures to that thread.
//!
//! ## Waking the driver: an eventfd READ on its own ring
//!
//! The driver sleeps in `io_uring_enter` until a completion arrives. A task
//! that submits meanwhile must end that sleep, so the driver keeps one
//! operation always in flight: a READ of an `eventfd`. Writing 8 bytes to
//! the eventfd, from any thread, completes that READ, and the completion
//! ends the wait. The alternatives do not fit: a NOP would have to be
//! pushed onto the ring, which only the driver thread may do; `MSG_RING`
//! (Linux 5.18) sends a completion from *another* ring, so every executor
//! thread would need one; a signal is swallowed, since `submit_and_wait`
//! retries `EINTR`, and a library should not take a signal from its
//! program anyway; `IORING_REGISTER_EVENTFD` works the other way round (the
//! kernel writes an eventfd when completions arrive). The eventfd is the
//! same trick the reactor uses (mio's `Waker` is one). Like the reactor, a
//! submitter writes only if the driver said it is going to sleep (the
//! `asleep` flag), and clears it: one write per sleep, however many tasks
//! submit.
//!
//! ## Locking and memory ordering
//!
//! | what | written by | kept correct by |
//! |---|---|---|
//! | the table: each op's state and waker, the queue of SQEs to submit, the ids to cancel, `asleep` | tasks and the driver | one `Mutex`: each transition above is one critical section, so a completion and a drop can never both free an operation's memory |
//! | a buffer the kernel fills (RECV) | the kernel | kernel write → CQ tail stored with `Release`, loaded by the driver with `Acquire` (`Ring::completion`) → the driver unlocks the table after marking `Done` → the task locks it and reads the bytes: each step happens before the next |
//! | bytes the kernel reads (SEND, the address of a CONNECT) | the task, before it submits | the task unlocks the table after queueing the SQE → the driver locks it, pushes the SQE and stores the SQ tail with `Release` → the kernel loads it with `Acquire` |
//! | "the driver sleeps" and "a submission came" | both | `asleep` is checked and set under the same lock as the lists, so the driver never sleeps with a request it has not seen, unless the request's thread sees `asleep` and writes the eventfd |
//! | [`Stats`] counters | tasks and the driver | `Relaxed` atomics: counts, never used to decide anything |
//!
//! Wakers are called, and memory is freed (which may close a socket), after
//! the lock is released: a waker runs executor code, and dropping a task's
//! future may drop an `Op`, which takes the same lock.

mod op;
mod stats;

pub mod http;
pub mod net;
pub mod time;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;

use ch01_os_threads::{say, syscall};
use ch03_epoll::counting::{self, Syscall};
use ch03_epoll::uring::{Completion, Ring, Sqe};

/// Why io_uring cannot be used here, in one line (chapter 3's).
pub use ch03_epoll::uring::Unavailable;
use stats::Counters;
pub use stats::Stats;

/// SQ entries: how many SQEs one round of the driver can push before it
/// must submit (a full SQ is simply submitted early).
const SQ_ENTRIES: u32 = 1024;

/// CQ entries: room for this many completions between two rounds of the
/// driver. More than that wait in the kernel's overflow list and are moved
/// in on the next round (`IORING_FEAT_NODROP`), so none is lost. 16 384
/// CQEs are 256 KiB.
const CQ_ENTRIES: u32 = 16_384;

/// The most operations one round of the driver takes from the queue. A
/// burst of submissions (ten thousand tasks starting at once) then goes to
/// the kernel in pieces, with the completions taken and their tasks woken
/// between two pieces, instead of every task waiting until the last of
/// them has been submitted. The same rule as the executor's intervals: no
/// source of work is left waiting for another to run dry.
const BATCH: usize = SQ_ENTRIES as usize;

/// The `user_data` of the driver's own eventfd READ. Operations use ids
/// counted up from 0, so neither reserved value is ever one of theirs.
const WAKE_READ: u64 = u64::MAX;

/// The `user_data` of every ASYNC_CANCEL. Its own completion only says
/// whether it found its target; the target's completion is what counts.
const CANCEL: u64 = u64::MAX - 1;

/// The completion driver: its table, shared with every task, and the
/// eventfd that ends its sleep. The ring itself belongs to its thread.
#[derive(Debug)]
pub(crate) struct Driver {
    /// Every operation not yet handed back, and what the driver is to do next.
    table: Mutex<Table>,
    /// Written (8 bytes) to end the driver's `io_uring_enter`.
    wake_fd: OwnedFd,
    /// The ring's sizes, for [`describe`].
    sizes: (u32, u32),
    /// Counts for [`stats`].
    counters: Counters,
}

/// The state behind the driver's lock.
#[derive(Debug, Default)]
struct Table {
    /// Each operation's state, by id.
    ops: HashMap<u64, Lifecycle>,
    /// The id the next operation gets.
    next_id: u64,
    /// The SQEs of `Queued` operations, in the order they were submitted
    /// (kept here, not in their entries, so that an entry stays small:
    /// thousands of them wait at once).
    to_submit: VecDeque<Sqe>,
    /// Ids of `Abandoned` operations to send an ASYNC_CANCEL for.
    to_cancel: Vec<u64>,
    /// The driver is about to wait, or waits, in `io_uring_enter`: a new
    /// request must write the eventfd (and clear this).
    asleep: bool,
}

// ANCHOR: lifecycle
/// Where one operation is (see the picture in the module docs).
enum Lifecycle {
    /// Submitted by its future, not yet pushed onto the ring: the kernel
    /// has not seen it, so dropping the future frees its memory at once.
    Queued {
        /// The task to wake when it completes (the latest poll's).
        waker: Option<Waker>,
    },
    /// On the ring: the kernel may be reading or writing its memory now.
    InFlight {
        /// Its operation, `RECV`, `CONNECT`, ... (for the `[uring]` lines).
        name: &'static str,
        /// The task to wake when it completes (the latest poll's).
        waker: Option<Waker>,
    },
    /// Completed: the result waits for its future's next poll.
    Done {
        /// What the kernel put in the CQE: a count, or `-errno`.
        res: i32,
    },
    /// Its future was dropped while the kernel had it: the driver keeps its
    /// memory until the completion arrives, and an ASYNC_CANCEL is on its
    /// way to make that sooner.
    Abandoned {
        /// Its operation (for the `[uring]` lines).
        name: &'static str,
        /// What the future owned for the kernel: buffer, address, socket.
        memory: Box<dyn Send>,
    },
}
// ANCHOR_END: lifecycle

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::Queued { .. } => f.write_str("Queued"),
            Lifecycle::InFlight { name, .. } => write!(f, "InFlight({name})"),
            Lifecycle::Done { res } => write!(f, "Done({res})"),
            Lifecycle::Abandoned { name, .. } => write!(f, "Abandoned({name})"),
        }
    }
}

/// Whether to print `[uring]` lines (off unless a demo asks).
static LOG: AtomicBool = AtomicBool::new(false);

/// Turns the driver's `[uring]` lines on or off: each round's submissions
/// and each completion with what it led to.
pub fn log_events(on: bool) {
    LOG.store(on, Ordering::Relaxed);
}

fn logging() -> bool {
    LOG.load(Ordering::Relaxed)
}

static DRIVER: OnceLock<Driver> = OnceLock::new();
/// Held while the driver starts, so that only one thread starts it.
static STARTING: Mutex<()> = Mutex::new(());

/// Starts the completion driver (its ring and its thread) if it is not
/// running yet. The leaf futures start it themselves; call this first to
/// learn up front whether io_uring is available: where it is not, the
/// error says why through [`Unavailable::from_error`].
pub fn start() -> io::Result<()> {
    Driver::get().map(|_| ())
}

/// What the driver has done so far.
pub fn stats() -> Stats {
    DRIVER.get().map_or_else(Stats::default, Driver::stats)
}

/// `a ring of 1024 SQ and 16384 CQ entries, on thread "uring"`, once started.
pub fn describe() -> Option<String> {
    DRIVER.get().map(|driver| {
        let (sq, cq) = driver.sizes;
        format!("a ring of {sq} SQ and {cq} CQ entries, on thread \"uring\"")
    })
}

impl Driver {
    /// The process's driver, started (with its thread) on first use.
    pub(crate) fn get() -> io::Result<&'static Driver> {
        if let Some(driver) = DRIVER.get() {
            return Ok(driver);
        }
        let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(driver) = DRIVER.get() {
            return Ok(driver); // another thread started it while we waited
        }
        // Errors keep their errno, for Unavailable::from_error.
        let ring = Ring::with_cq_size(SQ_ENTRIES, CQ_ENTRIES)?;
        // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
        let fd = syscall!(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
        // SAFETY: a fresh fd that nobody else owns.
        let wake_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let driver = Driver {
            table: Mutex::new(Table::default()),
            wake_fd,
            sizes: (ring.sq_entries(), ring.cq_entries()),
            counters: Counters::default(),
        };
        // The thread waits for `DRIVER` to be set before it runs, so if
        // starting it fails, nothing was set and the next call tries again.
        thread::Builder::new().name("uring".into()).spawn(move || DRIVER.wait().run(ring))?;
        Ok(DRIVER.get_or_init(|| driver))
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Wakers are called and memory freed outside this lock, so nothing
        // panics while it is held; a poisoned lock still guards a consistent table.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> Stats {
        let (pending, queued, parked) = {
            let table = self.table();
            let count = |state: fn(&Lifecycle) -> bool| table.ops.values().filter(|op| state(op)).count() as u64;
            let queued = count(|op| matches!(op, Lifecycle::Queued { .. }));
            let parked = count(|op| matches!(op, Lifecycle::Abandoned { .. }));
            (table.ops.len() as u64, queued, parked)
        };
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            enters: count(&self.counters.enters),
            wakeups: count(&self.counters.wakeups),
            operations: count(&self.counters.operations),
            abandoned: count(&self.counters.abandoned),
            cancels: count(&self.counters.cancels),
            pending,
            queued,
            parked,
        }
    }

    // ANCHOR: submit
    /// A future's side: queues `sqe` (its `user_data` is set here) and
    /// returns the operation's id. The driver pushes it on its next round.
    pub(crate) fn submit(&self, mut sqe: Sqe) -> u64 {
        let mut table = self.table();
        let id = table.next_id;
        table.next_id += 1;
        sqe.user_data = id;
        table.ops.insert(id, Lifecycle::Queued { waker: None });
        table.to_submit.push_back(sqe);
        let wake = table.take_asleep();
        drop(table);
        self.counters.operations.fetch_add(1, Ordering::Relaxed);
        if wake {
            self.wake();
        }
        id
    }

    /// A future's side, when polled: the result if the operation is done
    /// (its entry is then removed), else `Pending` with `waker` kept.
    pub(crate) fn poll(&self, id: u64, waker: &Waker) -> Poll<i32> {
        let mut table = self.table();
        let replaced = match table.ops.get_mut(&id) {
            Some(Lifecycle::Done { res }) => {
                let res = *res;
                table.ops.remove(&id);
                return Poll::Ready(res);
            }
            Some(Lifecycle::Queued { waker: stored, .. } | Lifecycle::InFlight { waker: stored, .. }) => {
                match stored {
                    Some(stored) if stored.will_wake(waker) => None,
                    _ => stored.replace(waker.clone()), // the latest poll's waker replaces the old one
                }
            }
            // Abandoned, or gone: only a dropped future leaves these, and a
            // dropped future is not polled.
            Some(Lifecycle::Abandoned { .. }) | None => None,
        };
        drop(table);
        drop(replaced); // dropping a waker can drop a task, and its Ops: not under our lock
        Poll::Pending
    }
    // ANCHOR_END: submit

    // ANCHOR: abandon
    /// A future's side, when it is dropped before its result: `memory` is
    /// what it owned for the kernel. Freed now if the kernel never had it
    /// or is done with it; otherwise kept, and the operation cancelled.
    pub(crate) fn abandon(&self, id: u64, memory: Box<dyn Send>) {
        let mut table = self.table();
        let removed = table.ops.remove(&id);
        let free_now = match &removed {
            Some(Lifecycle::InFlight { name, .. }) => {
                // The kernel may write into `memory` at any moment until the
                // completion: keep it, and ask for that moment to be soon.
                table.ops.insert(id, Lifecycle::Abandoned { name, memory });
                table.to_cancel.push(id);
                None
            }
            // Queued: the driver skips ids that are gone, so the kernel
            // never sees it. Done: the kernel has finished with it.
            _ => Some(memory),
        };
        let kept = free_now.is_none();
        let wake = kept && table.take_asleep();
        drop(table);
        if kept {
            self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
        }
        // Freeing may close a socket, and the old entry holds a waker:
        // neither under our lock.
        drop((removed, free_now));
        if wake {
            self.wake();
        }
    }
    // ANCHOR_END: abandon

    /// Ends the driver's `io_uring_enter`: completes its eventfd READ.
    fn wake(&self) {
        self.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from `one`, which lives across the call,
        // to an eventfd this driver owns.
        let wrote = unsafe { libc::write(self.wake_fd.as_raw_fd(), (&raw const one).cast(), size_of::<u64>()) };
        if wrote != size_of::<u64>() as isize {
            eprintln!("[uring] could not wake the driver: {}", io::Error::last_os_error());
        }
    }

    // ANCHOR: driver_loop
    /// The driver thread: one round after another, forever.
    ///
    /// ```text
    /// loop {
    ///     take up to BATCH queued SQEs and the cancels; if that was all, note "asleep"   (under the lock)
    ///     push them; io_uring_enter: submit, and sleep until a completion
    ///         (or, if more is queued, only take the completions that are ready)
    ///     take every completion                                   (no lock: the ring is ours)
    ///     settle them: Done + take the waker, or free an Abandoned op's memory   (under the lock)
    ///     free that memory, call those wakers                     (outside the lock)
    /// }
    /// ```
    fn run(&self, mut ring: Ring) {
        // The eventfd READ's 8 bytes. This function never returns, so the
        // memory outlives every READ that points into it.
        let mut wake_buffer = Box::new(0u64);
        let mut wake_read_posted = false;
        let mut round = Round::default();
        loop {
            if !wake_read_posted {
                let read = Sqe::read(self.wake_fd.as_fd(), (&raw mut *wake_buffer).cast(), size_of::<u64>(), WAKE_READ);
                // SAFETY: the buffer lives as long as this thread (above),
                // and nothing else reads or writes it.
                wake_read_posted = unsafe { push(&mut ring, &read) }.is_ok();
            }
            let more_queued = self.table().take_requests(&mut round);
            for (sqe, is_cancel) in round.to_push.drain(..) {
                // SAFETY: an operation's SQE points into memory its `Op`
                // owns and hands to the table if dropped (`abandon`): it
                // lives until the completion, which `settle` waits for. A
                // cancel carries no address.
                if let Err(e) = unsafe { push(&mut ring, &sqe) } {
                    // Not on the ring, so no completion will come: make one.
                    let res = -e.raw_os_error().unwrap_or(libc::EIO);
                    round.completions.push(Completion { user_data: sqe.user_data, res, flags: 0 });
                } else if is_cancel {
                    self.counters.cancels.fetch_add(1, Ordering::Relaxed);
                }
            }
            if logging() {
                let then = if more_queued { "take what is ready" } else { "sleep until a completion" };
                say!("uring", "io_uring_enter: submit {} SQE(s), {then}", ring.queued());
            }
            let before = counting::snapshot().of(Syscall::IoUringEnter);
            // More waits in the queue: submit this piece without waiting,
            // settle what completed, then take the next piece.
            let entered = if more_queued { ring.submit() } else { ring.submit_and_wait(1) };
            if let Err(e) = entered {
                // Not expected (EBADR: the kernel dropped completions for
                // want of memory). Say it, and do not spin if it repeats.
                eprintln!("[uring] io_uring_enter failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
            loop {
                match ring.completion() {
                    Ok(Some(done)) => round.completions.push(done),
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("[uring] taking completions failed: {e}");
                        break;
                    }
                }
            }
            let calls = counting::snapshot().of(Syscall::IoUringEnter) - before;
            self.counters.enters.fetch_add(calls, Ordering::Relaxed);
            wake_read_posted &= !round.completions.iter().any(|done| done.user_data == WAKE_READ);
            self.table().settle(&mut round);
            round.finish();
        }
    }
    // ANCHOR_END: driver_loop
}

/// What one round of the driver collects under the lock and acts on
/// outside it. Kept across rounds so its `Vec`s are allocated once.
#[derive(Default)]
struct Round {
    /// SQEs to push: the queued operations, then the cancels (`true`).
    to_push: Vec<(Sqe, bool)>,
    /// Completions taken from the ring.
    completions: Vec<Completion>,
    /// Wakers of the tasks whose operation completed.
    to_wake: Vec<Waker>,
    /// Memory of abandoned operations that completed: free to go now.
    to_free: Vec<Box<dyn Send>>,
    /// `[uring]` lines, when logging.
    log: Vec<String>,
    /// The eventfd READ completed with an error: wait a little before the
    /// next one, rather than spin if it fails every time.
    failed_wake_read: bool,
}

impl Round {
    /// The round's last step, outside the lock: free, wake, print.
    fn finish(&mut self) {
        if std::mem::take(&mut self.failed_wake_read) {
            thread::sleep(Duration::from_millis(10));
        }
        self.to_free.clear();
        self.to_wake.drain(..).for_each(Waker::wake);
        for line in self.log.drain(..) {
            say!("uring", "{line}");
        }
    }
}

impl Table {
    /// Whether the driver sleeps and must be woken; clears the note (one
    /// eventfd write per sleep is enough).
    fn take_asleep(&mut self) -> bool {
        std::mem::replace(&mut self.asleep, false)
    }

    // ANCHOR: take_requests
    /// The driver's side, before it pushes and waits: the SQEs of up to
    /// [`BATCH`] queued operations (now in flight), then an ASYNC_CANCEL
    /// for each abandoned one. Returns whether more operations are queued;
    /// if none are, notes that the driver is going to sleep.
    fn take_requests(&mut self, round: &mut Round) -> bool {
        let batch = self.to_submit.len().min(BATCH);
        for sqe in self.to_submit.drain(..batch) {
            // Gone: its future was dropped while it was queued.
            if let Some(entry) = self.ops.get_mut(&sqe.user_data)
                && let Lifecycle::Queued { waker } = entry
            {
                let waker = waker.take();
                *entry = Lifecycle::InFlight { name: sqe.name(), waker };
                round.to_push.push((sqe, false));
            }
        }
        for id in self.to_cancel.drain(..) {
            // Still abandoned: its completion has not come in since.
            if matches!(self.ops.get(&id), Some(Lifecycle::Abandoned { .. })) {
                round.to_push.push((Sqe::cancel(id, CANCEL), true));
            }
        }
        if !self.to_submit.is_empty() {
            return true; // the driver comes back for them without sleeping
        }
        // From here until the driver takes the lock again, a new request
        // must wake it: it may already be asleep in io_uring_enter.
        self.asleep = true;
        false
    }
    // ANCHOR_END: take_requests

    // ANCHOR: settle
    /// The driver's side, after the wait: each completion settles its
    /// operation. The driver is awake again, so requests need not wake it.
    fn settle(&mut self, round: &mut Round) {
        self.asleep = false;
        for done in round.completions.drain(..) {
            let id = done.user_data;
            let what = match self.ops.remove(&id) {
                Some(Lifecycle::InFlight { name, waker }) => {
                    self.ops.insert(id, Lifecycle::Done { res: done.res });
                    round.to_wake.extend(waker);
                    format!("{name} #{id} -> {}: wake its task", describe_res(done.res))
                }
                Some(Lifecycle::Abandoned { name, memory }) => {
                    // The kernel is done with it: only now may it be freed.
                    round.to_free.push(memory);
                    format!(
                        "{name} #{id} -> {}: its future was dropped, so free its memory now",
                        describe_res(done.res)
                    )
                }
                Some(other) => {
                    self.ops.insert(id, other); // a second completion for one operation: cannot happen
                    continue;
                }
                None if id == WAKE_READ => {
                    if done.res < 0 && done.res != -libc::EINTR {
                        eprintln!("[uring] the eventfd READ failed: {}", describe_res(done.res));
                        round.failed_wake_read = true;
                    }
                    "eventfd READ -> woken by a submission".to_string()
                }
                None if id == CANCEL => format!("ASYNC_CANCEL -> {}", describe_res(done.res)),
                None => continue, // not one of ours: cannot happen
            };
            if logging() {
                round.log.push(what);
            }
        }
    }
    // ANCHOR_END: settle
}

/// `0`, `5`, `-125 (Operation canceled)`: a CQE's result for a `[uring]` line.
fn describe_res(res: i32) -> String {
    if res < 0 {
        let error = io::Error::from_raw_os_error(-res).to_string();
        let reason = error.split(" (os error").next().unwrap_or(&error).to_string();
        format!("{res} ({reason})")
    } else {
        res.to_string()
    }
}

/// Queues `sqe`; if the SQ is full, first hands the kernel what is queued
/// (that frees the slots) and tries again.
///
/// # Safety
///
/// As [`Ring::push`]: the memory `sqe` points into must stay valid until
/// its completion has been taken.
unsafe fn push(ring: &mut Ring, sqe: &Sqe) -> io::Result<()> {
    // SAFETY: the caller keeps `Ring::push`'s promise.
    if unsafe { ring.push(sqe) }.is_err() {
        ring.submit()?;
        // SAFETY: as above.
        unsafe { ring.push(sqe) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqe(name: u8) -> Sqe {
        Sqe { opcode: name, ..Sqe::default() }
    }

    /// The table's transitions, without a ring or a thread: what a
    /// completion and a drop do in each state.
    #[test]
    fn each_state_frees_memory_exactly_when_the_kernel_is_done_with_it() {
        let mut table = Table::default();
        for id in 0..4 {
            table.ops.insert(id, Lifecycle::Queued { waker: None });
            table.to_submit.push_back(Sqe { user_data: id, ..sqe(27) });
        }
        table.ops.remove(&3); // dropped while queued: never pushed
        let mut round = Round::default();
        assert!(!table.take_requests(&mut round), "nothing left queued");
        let pushed: Vec<u64> = round.to_push.iter().map(|(sqe, _)| sqe.user_data).collect();
        assert_eq!(pushed, [0, 1, 2]);
        assert!(table.asleep, "the driver is about to wait: requests must wake it");
        round.to_push.clear();

        // Op 1's future is dropped in flight: its memory goes into the table.
        let memory = std::sync::Arc::new(());
        let Some(Lifecycle::InFlight { name, .. }) = table.ops.remove(&1) else { panic!("in flight") };
        table.ops.insert(1, Lifecycle::Abandoned { name, memory: Box::new(std::sync::Arc::clone(&memory)) });
        table.to_cancel.push(1);
        table.take_requests(&mut round);
        assert_eq!(round.to_push.len(), 1);
        assert_eq!((round.to_push[0].0.addr, round.to_push[0].1), (1, true), "an ASYNC_CANCEL of op 1");
        assert_eq!(std::sync::Arc::strong_count(&memory), 2, "kept while the kernel may still write");

        round.completions.push(Completion { user_data: 0, res: 5, flags: 0 });
        round.completions.push(Completion { user_data: 1, res: -libc::ECANCELED, flags: 0 });
        table.settle(&mut round);
        assert!(!table.asleep);
        assert!(matches!(table.ops.get(&0), Some(Lifecycle::Done { res: 5 })));
        assert!(!table.ops.contains_key(&1), "abandoned and completed: gone");
        assert_eq!(round.to_free.len(), 1);
        round.finish();
        assert_eq!(std::sync::Arc::strong_count(&memory), 1, "freed once its completion came");
        assert!(matches!(table.ops.get(&2), Some(Lifecycle::InFlight { .. })), "op 2 still waits");
    }

    #[test]
    fn a_burst_goes_to_the_kernel_in_pieces_without_sleeping_in_between() {
        let mut table = Table::default();
        for id in 0..BATCH as u64 + 5 {
            table.ops.insert(id, Lifecycle::Queued { waker: None });
            table.to_submit.push_back(Sqe { user_data: id, ..sqe(16) });
        }
        let mut round = Round::default();
        assert!(table.take_requests(&mut round), "5 left: come back for them");
        assert!(!table.asleep, "not about to sleep: a submission need not wake it");
        assert_eq!(round.to_push.len(), BATCH);
        round.to_push.clear();
        assert!(!table.take_requests(&mut round));
        let rest: Vec<u64> = round.to_push.iter().map(|(sqe, _)| sqe.user_data).collect();
        assert_eq!(rest, (BATCH as u64..BATCH as u64 + 5).collect::<Vec<_>>(), "in the order submitted");
        assert!(table.asleep);
    }

    #[test]
    fn results_read_as_errno_names() {
        assert_eq!(describe_res(5), "5");
        assert_eq!(describe_res(-libc::ECANCELED), "-125 (Operation canceled)");
    }
}
