//! Taking the CPU back from a fiber that never yields: a timer, a signal,
//! checkpoints, and asynchronous preemption at safe points. Off unless a
//! runtime's [`Config::preempt`](crate::Config::preempt) asks for it.
//!
//! Cooperative fibers run until they yield. Go had the same problem with
//! its goroutines and solved it in two steps, and so does this module:
//!
//! 1. **Checkpoints.** A timer ticks once per *quantum*. Each tick tells
//!    the fiber running at that moment that its time is up, by setting a
//!    flag. [`checkpoint`] is one load of that flag and a branch the CPU
//!    predicts; when the flag names the running fiber it clears it and
//!    yields. A loop that calls `checkpoint()` shares the CPU, and nothing
//!    else changes. (Go's compiler puts such a check into every function's
//!    prologue; a loop without calls still starved the others until 1.14.)
//! 2. **Asynchronous preemption.** A fiber that calls neither `yield_now`
//!    nor `checkpoint` is switched anyway, right where the tick finds it, if
//!    that place is *safe to interrupt*: code in the `preempt_text` link
//!    section (see [`section`]). The signal handler rewrites the registers
//!    the kernel saved for the fiber so that, on return from the handler,
//!    the fiber calls the scheduler through a trampoline that saves and
//!    restores everything ([`crate::arch::preempt`]). Anywhere else the tick
//!    only sets the flag, and the fiber yields at its next checkpoint or
//!    `yield_now`. (Go 1.14's "asynchronous preemption", with safe points
//!    its compiler records.)
//!
//! ## The timer: one per runtime, on the runtime's own thread
//!
//! `timer_create(CLOCK_MONOTONIC)` with `SIGEV_THREAD_ID`: the kernel sends
//! the timer's signal to the thread that runs the runtime, and to no other,
//! at the end of every quantum. A helper thread that sleeps a quantum and
//! then `tgkill`s the runtime's thread would do the same with more: it is
//! one more thread for the kernel to wake every quantum, which on a busy
//! CPU must itself wait for a turn, and two context switches per tick.
//! Go's `sysmon` is such a thread because it watches every thread of the
//! process and does other chores on the way; a runtime that lives on one
//! thread needs one timer.
//!
//! The clock is the wall clock (`CLOCK_MONOTONIC`), not the thread's CPU
//! time: the kernel checks CPU-time timers only on its scheduler tick (4 ms
//! on a kernel built with `HZ=250`), while a monotonic timer is a
//! high-resolution timer that fires microseconds after its time (tens of
//! them on the virtual machine of the chapter's bench).
//!
//! ## The signal: SIGURG
//!
//! Go's choice, for Go's reasons. `SIGURG` ("urgent data on a socket")
//! is almost never used for its original purpose; its default action is to
//! ignore it, so one that arrives when no handler of ours is installed
//! does no harm (a real-time signal's default action would kill the
//! process); debuggers pass it on without stopping; and the C library
//! uses no such signal for itself (glibc takes real-time signals 32 and
//! 33). A program that does use `SIGURG` keeps its handler: ours passes on
//! every `SIGURG` that is not one of our timers' (see `on_tick`).
//!
//! The handler is installed with `SA_ONSTACK` (it runs on the thread's
//! alternate signal stack, which [`crate::overflow::AltStack`] makes sure
//! of, so it never writes a frame onto a fiber's stack: the fiber's bytes
//! below its red zone are where the trampoline's frame goes), `SA_SIGINFO`
//! (for the timer's identity in `si_value` and the interrupted registers)
//! and `SA_RESTART` (see below).
//!
//! ## System calls and the tick
//!
//! A tick that arrives while the thread is blocked in a system call
//! interrupts it. `SA_RESTART` makes the kernel restart most of them by
//! itself (`read`, `write` and `accept` on pipes and sockets, `wait`,
//! `futex`, `flock`), but some always fail with `EINTR` however the handler
//! was installed: `epoll_wait`, `poll`, `select`, `nanosleep`,
//! `clock_nanosleep`, `sigtimedwait`, and socket calls on a socket with a
//! receive timeout (`SO_RCVTIMEO`). Code that makes those must retry on
//! `EINTR` (std's `thread::sleep` does; so does chapter 3's `Poll`). This
//! runtime makes no blocking system call of its own (`mmap`, `mprotect`,
//! `mincore`, `sigaction`, `timer_*` never block).
//!
//! ## Whose time is up
//!
//! The timer is a metronome, not a stopwatch per fiber: each tick ends the
//! turn of whichever fiber runs at that moment. The flag holds *that
//! fiber's* context, so a fiber that had yielded by itself since is not
//! caught by a tick meant for the one before it: a checkpoint that finds
//! the flag naming someone else drops it. After a forced switch the next
//! fiber starts right after a tick and gets nearly a whole quantum; after
//! a voluntary one it gets what is left of the quantum in progress.
//!
//! ## The preemptible section, and why only there
//!
//! A fiber interrupted at an arbitrary instruction may be in the middle of
//! anything: inside `malloc` holding the allocator's lock, half-way through
//! a `RefCell` borrow, with an `Rc`'s count loaded into a register and not
//! yet written back. If another fiber ran now and did the same, the lock
//! would deadlock the thread and the borrow or the count would be wrong.
//! Between OS threads that is what `Send`, `Sync` and atomics prevent;
//! between our fibers nothing does, because a cooperative switch is a
//! function call, and the compiler already assumes a call may change any
//! memory it can reach. An asynchronous switch is no call: to the compiler
//! the interrupted code is a straight line that nothing else touches.
//!
//! So only code that is safe to interrupt may be, and the programmer says
//! which, by putting it in the `preempt_text` link section:
//!
//! ```
//! #[unsafe(link_section = "preempt_text")] // I vouch: pure computation
//! #[inline(never)] // keep it a function of its own, inside the section
//! fn collatz_steps(mut n: u64) -> u64 {
//!     let mut steps = 0;
//!     while n > 1 {
//!         n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
//!         steps += 1;
//!     }
//!     steps
//! }
//! # assert_eq!(collatz_steps(27), 111);
//! ```
//!
//! The rules for code in the section: it takes no lock, does not allocate
//! or free, makes no system call, touches no `Rc`, `RefCell` or
//! thread-local shared with other fibers and calls nothing of the runtime
//! (`yield_now`, `spawn`; [`checkpoint`] is allowed: its slow path is a
//! function outside the section). Memory it shares with other fibers it
//! reads and writes only through atomics, as a thread would. What it calls
//! runs outside the section (and is not preempted there) unless the
//! compiler inlined it, so an inlined callee must obey the rules too.
//!
//! The linker collects every function marked so into one output section
//! and, because `preempt_text` is a valid C identifier, defines the symbols
//! `__start_preempt_text` and `__stop_preempt_text` around it: the
//! handler's whole test is one range check of the interrupted `rip`.

use std::ffi::{c_int, c_void};
use std::io;
use std::mem;
use std::ops::Range;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ch01_os_threads::syscall;

use crate::arch;
use crate::ring::{self, Context, yield_now};
use crate::runtime::with_runtime;

// ANCHOR: config
/// Whether and how a runtime takes the CPU back from a fiber that keeps it
/// (`Config::preempt`). Off by default. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Preempt {
    /// Cooperative only: a fiber runs until it yields.
    #[default]
    Off,
    /// Every `quantum` a timer tells the running fiber that its time is
    /// up; it yields at its next [`checkpoint`] (or `yield_now`).
    Checkpoints {
        /// How long a fiber may run before it is asked to yield.
        quantum: Duration,
    },
    /// As `Checkpoints`, and a fiber whose time is up while it runs code of
    /// the `preempt_text` section is switched at once, right there.
    Asynchronous {
        /// How long a fiber may run before it is switched.
        quantum: Duration,
    },
}
// ANCHOR_END: config

impl Preempt {
    /// The quantum, unless preemption is off.
    pub fn quantum(self) -> Option<Duration> {
        match self {
            Preempt::Off => None,
            Preempt::Checkpoints { quantum } | Preempt::Asynchronous { quantum } => Some(quantum),
        }
    }
}

/// The signal the timer sends (see the module docs for why this one).
pub const SIGNAL: c_int = libc::SIGURG;

/// The shortest quantum `run` accepts. Every tick costs the thread a signal
/// delivery and a return from it, a few microseconds.
pub const MIN_QUANTUM: Duration = Duration::from_micros(10);

/// The longest quantum `run` accepts.
pub const MAX_QUANTUM: Duration = Duration::from_secs(60);

/// At most this many forced switches' latencies are kept per runtime (the
/// first ones), for [`latencies`].
pub const MAX_LATENCIES: usize = 100_000;

/// `Ticks::mode`: no runtime on this thread preempts.
const OFF: u8 = 0;
/// `Ticks::mode`: the runtime preempts at checkpoints only.
const CHECKPOINTS: u8 = 1;
/// `Ticks::mode`: the runtime also preempts asynchronously.
const ASYNCHRONOUS: u8 = 2;

// ANCHOR: ticks
/// What the timer's signal handler and the fibers of one thread share.
/// Atomics, because the handler writes them between any two instructions
/// of the thread; on x86-64 their loads and stores are plain `mov`s.
struct Ticks {
    /// The fiber (its context) whose quantum ended at the last tick and
    /// that has not yielded for it yet; null when nobody's time is up.
    /// [`checkpoint`] loads this, and only this.
    time_up: AtomicPtr<Context>,
    /// The number of the tick that set `time_up` (1: the first quantum's
    /// end), to measure how late the switch came.
    time_up_tick: AtomicU64,
    /// Quantum ends so far, including those a late signal stands for (the
    /// kernel counts ends that pass while the signal is still pending as
    /// "overruns" and sends one signal).
    count: AtomicU64,
    /// This thread's runtime's mode: [`OFF`], [`CHECKPOINTS`] or [`ASYNCHRONOUS`].
    mode: AtomicU8,
}

thread_local! {
    /// This thread's [`Ticks`]. A constant initialiser and no destructor: a
    /// single load at a fixed offset from the thread pointer, safe from a
    /// signal handler.
    static TICKS: Ticks = const {
        Ticks {
            time_up: AtomicPtr::new(ptr::null_mut()),
            time_up_tick: AtomicU64::new(0),
            count: AtomicU64::new(0),
            mode: AtomicU8::new(OFF),
        }
    };
}
// ANCHOR_END: ticks

// ANCHOR: checkpoint
/// Yields if the running fiber's quantum has ended; otherwise does nothing.
///
/// One load of a thread-local flag and a branch the CPU predicts ("not
/// yet"): cheap enough for the innermost loop. Outside a runtime, or on a
/// runtime without preemption, it never yields.
#[inline(always)]
pub fn checkpoint() {
    if !TICKS.with(|ticks| ticks.time_up.load(Ordering::Relaxed)).is_null() {
        time_up();
    }
}

/// The rare half of [`checkpoint`]: take the flag, and yield if it names us.
#[cold]
#[inline(never)]
fn time_up() {
    // Take the flag (a tick may set it again at any moment: taking it with
    // one swap means no tick is lost in between). `Acquire` pairs with the
    // handler's `Release`, so `time_up_tick` is the flag's tick.
    let (flagged, tick) = TICKS.with(|ticks| {
        (ticks.time_up.swap(ptr::null_mut(), Ordering::Acquire), ticks.time_up_tick.load(Ordering::Relaxed))
    });
    if ptr::eq(flagged, ring::current_context()) {
        record(Forced::AtCheckpoint, tick);
        yield_now();
    }
    // Otherwise the tick ended the turn of a fiber that has yielded since:
    // its quantum is over, ours has only begun. The flag is dropped.
}
// ANCHOR_END: checkpoint

// ANCHOR: preempted
/// Where the trampoline takes a fiber that a tick caught in the
/// preemptible section. A plain function call on the fiber's own stack:
/// the interrupted code holds no lock and no borrow (the section's rules),
/// so this may do whatever a yield may do, allocation included.
pub(crate) extern "sysv64" fn preempted() {
    let tick = TICKS.with(|ticks| {
        ticks.time_up.store(ptr::null_mut(), Ordering::Relaxed);
        ticks.time_up_tick.load(Ordering::Relaxed)
    });
    record(Forced::Asynchronously, tick);
    yield_now();
}
// ANCHOR_END: preempted

/// How a forced switch happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forced {
    /// The fiber called [`checkpoint`] after its quantum ended.
    AtCheckpoint,
    /// The tick caught the fiber in the section; the trampoline yielded.
    Asynchronously,
}

/// Counts a forced switch and how long after its tick it came.
fn record(how: Forced, tick: u64) {
    let now = monotonic_nanos();
    with_runtime(|rt| {
        if let Some(quantum) = rt.quantum_mut() {
            quantum.record(how, tick, now);
        }
    });
}

/// This thread's runtime's latencies of forced switches so far: from the
/// end of the quantum (the tick's nominal time) to the switch. The first
/// [`MAX_LATENCIES`]. `None` outside a runtime or without preemption.
pub fn latencies() -> Option<Vec<Duration>> {
    with_runtime(|rt| rt.quantum_mut().map(|quantum| quantum.latencies.clone())).flatten()
}

/// Timer ticks (quantum ends) on this thread since its runtime started
/// preempting; 0 without preemption.
pub fn ticks() -> u64 {
    TICKS.with(|ticks| match ticks.mode.load(Ordering::Relaxed) {
        OFF => 0,
        _ => ticks.count.load(Ordering::Relaxed),
    })
}

// ANCHOR: section
unsafe extern "C" {
    /// The first byte of the `preempt_text` output section (defined by the
    /// linker, because the name is a C identifier and we refer to it).
    static __start_preempt_text: u8;
    /// One past its last byte.
    static __stop_preempt_text: u8;
}

/// The addresses of the preemptible section: every function marked
/// `#[unsafe(link_section = "preempt_text")]` in the program, the
/// chapter's own and the user's, in one range.
pub fn section() -> Range<usize> {
    // The library's own preemptible functions are referenced here, so the
    // object file holding them is always linked in: the section exists, and
    // the linker defines the two symbols, in every program that asks.
    let _ = std::hint::black_box(crate::preemptible::mix as fn(u64, u64) -> u64);
    // Only the symbols' addresses are taken: they are labels, not data.
    (&raw const __start_preempt_text as usize)..(&raw const __stop_preempt_text as usize)
}
// ANCHOR_END: section

// ANCHOR: on_tick
/// The `SIGURG` handler. Only async-signal-safe operations in here: atomic
/// loads and stores, reading and writing the saved registers, and one
/// write to the interrupted fiber's stack. It never switches fibers.
extern "C" fn on_tick(signal: c_int, info: *mut libc::siginfo_t, ucontext: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t (we set SA_SIGINFO); the
    // timer fields are meaningful for SI_TIMER, checked before use.
    let (code, value, overrun) =
        unsafe { ((*info).si_code, (*info).si_value().sival_ptr, (*info).si_overrun().max(0)) };
    // One of our timers? They all send our tag in si_value.
    if code != libc::SI_TIMER || value != timer_tag() {
        pass_on(signal, info, ucontext);
        return;
    }
    TICKS.with(|ticks| {
        let mode = ticks.mode.load(Ordering::Relaxed);
        if mode == OFF {
            return; // a tick from a timer deleted a moment ago: nobody to tell
        }
        let tick = ticks.count.load(Ordering::Relaxed) + 1 + overrun as u64;
        ticks.count.store(tick, Ordering::Relaxed);
        let current = ring::current_context();
        if current.is_null() {
            return; // the runtime is being taken down
        }
        // Time's up for the fiber running now. Tick first, then the flag
        // (`Release`): whoever takes the flag finds its tick.
        ticks.time_up_tick.store(tick, Ordering::Relaxed);
        ticks.time_up.store(current.cast_mut(), Ordering::Release);
        if mode == ASYNCHRONOUS {
            // SAFETY: `current` is the running fiber's context (CURRENT),
            // alive while it runs; the ucontext is the kernel's, for this
            // handler, which returns normally.
            unsafe { preempt_if_safe(&*current, ucontext) };
        }
    });
}
// ANCHOR_END: on_tick

// ANCHOR: preempt_if_safe
/// Sends the interrupted fiber into the trampoline if, and only if, it was
/// interrupted somewhere safe: in the preemptible section, on the stack of
/// the fiber the runtime names as running.
///
/// # Safety
///
/// As for [`arch::preempt::enter_trampoline`]: `ucontext` is the kernel's,
/// for a running `SA_SIGINFO` handler that returns normally. `current` is
/// the running fiber's context.
unsafe fn preempt_if_safe(current: &Context, ucontext: *mut c_void) {
    // SAFETY: the caller's contract.
    let (rip, rsp) = unsafe { arch::preempt::interrupted_at(ucontext) };
    // 1. A safe point: code that is marked safe to interrupt. Everything
    //    else (the runtime's own code, the switch, the trampoline, malloc,
    //    any function the user did not mark) waits for a checkpoint.
    if !section().contains(&rip) {
        return;
    }
    // 2. A fiber with a stack of ours: the main fiber runs on the thread's
    //    own stack, whose bounds we do not keep.
    if current.id == 0 {
        return;
    }
    // 3. On *that* fiber's stack. During a switch, CURRENT already names
    //    the next fiber while rsp is still on the old one's stack: not a
    //    moment to switch again (and the switch is not in the section
    //    anyway; this makes sure, whatever code the section holds).
    let stack = current.stack_bottom..current.stack_bottom + current.stack_size;
    if !stack.contains(&rsp) {
        return;
    }
    // SAFETY: the fiber runs section code (pure computation, the section's
    // rules) on `stack`, its own mapped stack; `vector_state` succeeded
    // before the mode became ASYNCHRONOUS (`start`).
    unsafe { arch::preempt::enter_trampoline(ucontext, stack) };
}
// ANCHOR_END: preempt_if_safe

/// Hands a `SIGURG` that is not one of our ticks to the handler that was
/// installed before ours, if there was one (its default action is to
/// ignore it).
fn pass_on(signal: c_int, info: *mut libc::siginfo_t, ucontext: *mut c_void) {
    let previous = PREVIOUS_HANDLER.load(Ordering::Acquire);
    if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
        return;
    }
    if PREVIOUS_FLAGS.load(Ordering::Relaxed) & libc::SA_SIGINFO != 0 {
        // SAFETY: `previous` is the address of a handler installed with
        // SA_SIGINFO, so it takes these three arguments; we pass on exactly
        // what the kernel gave us.
        unsafe {
            let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = mem::transmute(previous);
            handler(signal, info, ucontext);
        }
    } else {
        // SAFETY: as above, for a handler installed without SA_SIGINFO.
        unsafe {
            let handler: extern "C" fn(c_int) = mem::transmute(previous);
            handler(signal);
        }
    }
}

/// What every timer of ours carries in `si_value`: the address of a static
/// of this module, which nobody else sends.
fn timer_tag() -> *mut c_void {
    static TAG: u8 = 0;
    (&raw const TAG).cast_mut().cast()
}

// ANCHOR: install
/// The `SIGURG` handler that was installed before ours (an address, or
/// `SIG_DFL` / `SIG_IGN`), for [`pass_on`]. Atomics: the handler reads them.
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
/// That handler's `sa_flags`.
static PREVIOUS_FLAGS: AtomicI32 = AtomicI32::new(0);

/// Whose the process's `SIGURG` handler is: ours while at least one
/// runtime preempts.
struct Installation {
    /// Runtimes (one per thread at most) that preempt right now.
    runtimes: usize,
    /// The action to put back when the last one ends.
    previous: Option<libc::sigaction>,
}

/// Guards the installation: runtimes on several threads start and end at
/// the same time. Never locked in the signal handler.
static INSTALLATION: Mutex<Installation> = Mutex::new(Installation { runtimes: 0, previous: None });

/// One more runtime preempts: installs the handler if it is the first.
fn install_handler() -> io::Result<()> {
    let mut installation = INSTALLATION.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if installation.runtimes == 0 {
        // SAFETY: an all-zero sigaction is valid (no flags, empty mask).
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = on_tick as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: an all-zero sigaction is valid; the kernel fills it in.
        let mut previous: libc::sigaction = unsafe { mem::zeroed() };
        // Known before ours can run, so nothing of someone else's is lost.
        // SAFETY: reading the current action into our own local.
        syscall!(unsafe { libc::sigaction(SIGNAL, ptr::null(), &mut previous) })?;
        PREVIOUS_FLAGS.store(previous.sa_flags, Ordering::Relaxed);
        PREVIOUS_HANDLER.store(previous.sa_sigaction, Ordering::Release);
        // SAFETY: `action` is valid and its handler only does
        // async-signal-safe things (see `on_tick`).
        syscall!(unsafe { libc::sigaction(SIGNAL, &action, ptr::null_mut()) })?;
        installation.previous = Some(previous);
    }
    installation.runtimes += 1;
    Ok(())
}

/// One runtime less: the last one puts the previous handler back.
fn release_handler() {
    let mut installation = INSTALLATION.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    installation.runtimes -= 1;
    if installation.runtimes == 0
        && let Some(previous) = installation.previous.take()
    {
        // SAFETY: `previous` is the action the kernel gave us. Our timers
        // are all deleted by now, and a signal one of them sent before is
        // no longer pending (see `Quantum::drop`).
        unsafe { libc::sigaction(SIGNAL, &previous, ptr::null_mut()) };
    }
}
// ANCHOR_END: install

// ANCHOR: timer
/// A preempting runtime's timer, and what its forced switches measured.
/// Deleting it (dropping) stops the ticks on this thread.
#[derive(Debug)]
pub(crate) struct Quantum {
    /// The POSIX timer that ticks on this thread.
    timer: libc::timer_t,
    /// When the timer was started (`CLOCK_MONOTONIC`, nanoseconds): tick
    /// `n` is due at `start + n * length`.
    start: u64,
    /// The quantum in nanoseconds.
    length: u64,
    /// Forced switches at a checkpoint.
    at_checkpoints: u64,
    /// Forced switches through the trampoline.
    asynchronous: u64,
    /// How late each forced switch came after its tick was due (the first
    /// [`MAX_LATENCIES`]).
    latencies: Vec<Duration>,
}

impl Quantum {
    /// Starts preemption on this thread as `preempt` says (`None` when it
    /// says `Off`): installs the handler, then starts a timer that sends
    /// [`SIGNAL`] to this thread at the end of every quantum.
    pub(crate) fn start(preempt: Preempt) -> io::Result<Option<Quantum>> {
        let (mode, quantum) = match preempt {
            Preempt::Off => return Ok(None),
            Preempt::Checkpoints { quantum } => (CHECKPOINTS, quantum),
            Preempt::Asynchronous { quantum } => (ASYNCHRONOUS, quantum),
        };
        if !(MIN_QUANTUM..=MAX_QUANTUM).contains(&quantum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a preemption quantum of {quantum:?} is out of range ({MIN_QUANTUM:?} to {MAX_QUANTUM:?})"),
            ));
        }
        if mode == ASYNCHRONOUS {
            arch::preempt::vector_state()?; // the trampoline knows what to save
        }
        if signal_blocked()? {
            return Err(io::Error::other(
                "SIGURG is blocked on this thread, so its timer could never interrupt a fiber: unblock it \
                 (pthread_sigmask) before starting a preempting runtime",
            ));
        }
        install_handler()?;
        TICKS.with(|ticks| {
            ticks.count.store(0, Ordering::Relaxed);
            ticks.time_up.store(ptr::null_mut(), Ordering::Relaxed);
            ticks.mode.store(mode, Ordering::Relaxed);
        });
        let (start, length) = (monotonic_nanos(), quantum.as_nanos() as u64);
        match create_timer(start, length) {
            Ok(timer) => {
                Ok(Some(Quantum { timer, start, length, at_checkpoints: 0, asynchronous: 0, latencies: Vec::new() }))
            }
            Err(error) => {
                TICKS.with(|ticks| ticks.mode.store(OFF, Ordering::Relaxed));
                release_handler();
                Err(error)
            }
        }
    }

    /// Counts a forced switch at `now` (nanoseconds) for tick `tick`.
    fn record(&mut self, how: Forced, tick: u64, now: u64) {
        match how {
            Forced::AtCheckpoint => self.at_checkpoints += 1,
            Forced::Asynchronously => self.asynchronous += 1,
        }
        let due = self.start + tick * self.length;
        if tick > 0 && self.latencies.len() < MAX_LATENCIES {
            self.latencies.push(Duration::from_nanos(now.saturating_sub(due)));
        }
    }

    /// `(at checkpoints, asynchronously)`: the forced switches so far.
    pub(crate) fn forced_switches(&self) -> (u64, u64) {
        (self.at_checkpoints, self.asynchronous)
    }
}

impl Drop for Quantum {
    fn drop(&mut self) {
        // After timer_delete the timer sends nothing more. A signal it sent
        // just before is pending on this thread, and the kernel delivers a
        // pending signal on the way back from every system call: by the time
        // timer_delete has returned, our handler has seen it. So none can
        // arrive once the handler is gone.
        // SAFETY: our own timer, deleted once.
        unsafe { libc::timer_delete(self.timer) };
        TICKS.with(|ticks| {
            ticks.mode.store(OFF, Ordering::Relaxed);
            ticks.time_up.store(ptr::null_mut(), Ordering::Relaxed);
        });
        release_handler();
    }
}

/// A timer that sends [`SIGNAL`] to this thread every `length` nanoseconds
/// from `start` on (`CLOCK_MONOTONIC`, absolute: tick `n` is due at
/// `start + n * length`, however late the call to arm it comes).
fn create_timer(start: u64, length: u64) -> io::Result<libc::timer_t> {
    // SAFETY: an all-zero sigevent is valid; we fill in what we use.
    let mut event: libc::sigevent = unsafe { mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = SIGNAL;
    event.sigev_value = libc::sigval { sival_ptr: timer_tag() };
    // SAFETY: gettid has no preconditions.
    event.sigev_notify_thread_id = unsafe { libc::gettid() };
    let mut timer: libc::timer_t = ptr::null_mut();
    // SAFETY: `event` is valid and `timer` writable; the kernel copies both.
    syscall!(unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer) })?;
    let spec = libc::itimerspec { it_interval: timespec(length), it_value: timespec(start + length) };
    // SAFETY: `timer` is the timer just created; `spec` is valid.
    if let Err(error) = syscall!(unsafe { libc::timer_settime(timer, libc::TIMER_ABSTIME, &spec, ptr::null_mut()) }) {
        // SAFETY: our own timer, never armed, deleted once.
        unsafe { libc::timer_delete(timer) };
        return Err(error);
    }
    Ok(timer)
}
// ANCHOR_END: timer

/// Whether [`SIGNAL`] is blocked on the calling thread.
fn signal_blocked() -> io::Result<bool> {
    // SAFETY: an all-zero sigset_t is a valid place for the mask.
    let mut mask: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: a null new mask only reads the current one into `mask`.
    let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), &mut mask) };
    if result != 0 {
        return Err(io::Error::from_raw_os_error(result));
    }
    // SAFETY: `mask` is initialised by pthread_sigmask.
    Ok(unsafe { libc::sigismember(&mask, SIGNAL) } == 1)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of the timer and of `Instant`).
pub(crate) fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is writable; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Nanoseconds as a `timespec`.
fn timespec(nanos: u64) -> libc::timespec {
    libc::timespec { tv_sec: (nanos / 1_000_000_000) as libc::time_t, tv_nsec: (nanos % 1_000_000_000) as libc::c_long }
}
