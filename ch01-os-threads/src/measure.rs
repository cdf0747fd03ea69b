//! Measuring what OS threads cost: time to create one, time to switch between
//! two, memory per thread, and how many one process can hold.
//!
//! Each function does real work with real threads and returns numbers; the
//! `bench` subcommand prints them as a table. Everything is bounded: no
//! function runs away with the machine, even [`max_threads`].
//!
//! Memory comes from `/proc/self/status`, where Linux reports two sizes:
//! `VmSize`, the address space the process has *reserved* (virtual memory),
//! and `VmRSS`, the memory really backed by RAM (resident). A thread's stack
//! is reserved in full when the thread starts, but the memory management unit
//! (MMU) maps a page of RAM behind it only when the thread first touches that
//! page. So a thread with a 64 KiB stack reserves 64 KiB yet may use 8 KiB.
//!
//! What the process's numbers leave out is the kernel's own memory for each
//! thread, above all its kernel stack (16 KiB on x86-64: `THREAD_SIZE` in
//! the kernel's `arch/x86/include/asm/page_64_types.h`). `/proc/meminfo`
//! reports the kernel stacks of the whole machine as `KernelStack`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{sys, syscall};

/// A few lines of `/proc/self/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStatus {
    /// `VmSize`: reserved address space (virtual memory).
    pub virtual_bytes: u64,
    /// `VmRSS`: memory backed by RAM right now (resident set).
    pub resident_bytes: u64,
    /// `VmHWM`: the highest `VmRSS` so far ("high water mark"), see [`reset_peak_rss`].
    pub peak_resident_bytes: u64,
    /// `Threads`: how many threads the process has.
    pub threads: u64,
}

impl ProcStatus {
    /// Reads `/proc/self/status`.
    pub fn read() -> io::Result<ProcStatus> {
        let text = std::fs::read_to_string("/proc/self/status")?;
        let field = |name: &str| -> io::Result<u64> {
            let line = text.lines().find(|l| l.starts_with(name)).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("/proc/self/status has no {name} line"))
            })?;
            let mut words = line[name.len()..].split_whitespace();
            let number: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("cannot read a number in {line:?}"))
            })?;
            // Sizes are printed in kB (which the kernel means as KiB).
            Ok(if words.next() == Some("kB") { number * 1024 } else { number })
        };
        Ok(ProcStatus {
            virtual_bytes: field("VmSize:")?,
            resident_bytes: field("VmRSS:")?,
            peak_resident_bytes: field("VmHWM:")?,
            threads: field("Threads:")?,
        })
    }
}

/// Resets the peak resident size (`VmHWM`) to the current one, so that two
/// approaches measured one after the other in the same process each get
/// their own peak. Linux does this when "5" is written to `/proc/self/clear_refs`.
pub fn reset_peak_rss() -> io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// CPU time this process has used so far, user plus system, over all threads.
pub fn cpu_time() -> io::Result<Duration> {
    // SAFETY: an all-zero `rusage` is a valid value (it is plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` that outlives the call.
    syscall!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) })?;
    let to_duration = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(to_duration(usage.ru_utime) + to_duration(usage.ru_stime))
}

/// How many memory mappings this process has (lines of `/proc/self/maps`).
pub fn map_count() -> io::Result<usize> {
    Ok(std::fs::read_to_string("/proc/self/maps")?.lines().count())
}

/// The kernel stacks of every thread on the machine (`KernelStack` in
/// `/proc/meminfo`), in bytes.
pub fn kernel_stack_bytes() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    let line = text.lines().find_map(|l| l.strip_prefix("KernelStack:"));
    let kib = line.and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse::<u64>().ok());
    kib.map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/meminfo has no KernelStack line"))
}

/// The kernel's limit on mappings per process (`vm.max_map_count`).
pub fn max_map_count() -> io::Result<usize> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count")?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("odd vm.max_map_count {text:?}")))
}

// ANCHOR: spawn_join
/// Average time to create a thread with `stack_size` bytes of stack, run an
/// empty closure on it, and wait for it to end (`join`), over `n` threads.
pub fn spawn_join(n: usize, stack_size: usize) -> io::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let thread = thread::Builder::new().stack_size(stack_size).spawn(|| {})?;
        thread.join().map_err(|_| io::Error::other("an empty thread panicked"))?;
    }
    Ok(start.elapsed() / n.max(1) as u32)
}
// ANCHOR_END: spawn_join

// ANCHOR: ping_pong
/// Average time for one hand-over between two threads that take turns, over
/// `round_trips` round trips (each round trip is two hand-overs).
///
/// Each side parks (sleeps in the kernel) until the other wakes it, so one
/// hand-over is a wake-up plus a switch by the OS scheduler: the cost a
/// thread-per-request server pays every time a request's thread gets to run.
/// With `same_cpu` both threads are pinned to one CPU (the first this thread
/// may use), so it is a plain context switch; without, the wake-up may also
/// cross to another CPU.
pub fn ping_pong(round_trips: usize, same_cpu: bool) -> io::Result<Duration> {
    // Pinned before the partner starts, so it inherits the pin; its guard
    // puts this thread's own CPU set back when we return.
    let pinned = if same_cpu { Some(sys::pin_to_first_allowed_cpu()?) } else { None };
    // `ball_with_b` says whose turn it is; park/unpark do the sleeping. A
    // wake-up can be spurious, so each side re-checks the flag in a loop.
    let ball_with_b = Arc::new(AtomicBool::new(false));
    let main = thread::current();
    let b_flag = Arc::clone(&ball_with_b);
    let b = thread::Builder::new().spawn(move || {
        for _ in 0..round_trips {
            while !b_flag.load(Ordering::Acquire) {
                thread::park();
            }
            b_flag.store(false, Ordering::Release);
            main.unpark();
        }
    })?;
    let start = Instant::now();
    for _ in 0..round_trips {
        ball_with_b.store(true, Ordering::Release);
        b.thread().unpark();
        while ball_with_b.load(Ordering::Acquire) {
            thread::park();
        }
    }
    let elapsed = start.elapsed();
    b.join().map_err(|_| io::Error::other("the ping-pong thread panicked"))?;
    drop(pinned);
    Ok(elapsed / (2 * round_trips.max(1)) as u32)
}
// ANCHOR_END: ping_pong

/// Runs `f` with the calling thread pinned to one CPU (the first it may
/// use), then gives the thread back exactly the CPUs it had. Threads started
/// inside `f` inherit the pin, so everything runs on one CPU.
///
/// Why measure that way: in a virtual machine, waking a thread on *another*
/// CPU can cost tens of microseconds, and whether the kernel picks the other
/// CPU for a new thread changes from one moment to the next. Pinned, a
/// spawn+join costs the same every run; unpinned, it jumps between two values.
pub fn on_one_cpu<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let _pinned = sys::pin_to_first_allowed_cpu()?;
    f()
}

/// Memory per thread, measured with many threads alive at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadMemory {
    /// How many threads were alive when we measured.
    pub threads: usize,
    /// The stack size each was given.
    pub stack_size: usize,
    /// Growth of `VmSize` per thread: the reservation.
    pub virtual_per_thread: u64,
    /// Growth of `VmRSS` per thread: the pages really touched.
    pub resident_per_thread: u64,
    /// Growth of the machine's `KernelStack` per thread: the kernel's stack
    /// for each thread, which neither `VmSize` nor `VmRSS` counts. Whole
    /// machine, so threads other programs start or end meanwhile blur it.
    pub kernel_stack_per_thread: u64,
}

// ANCHOR: memory
/// Starts `n` threads with `stack_size` stacks, waits until all of them are
/// parked, reads `/proc/self/status`, then lets them finish.
///
/// Two effects of the C library (glibc) would blur the numbers, so a small
/// warm-up crowd runs first:
/// - the first threads of a process make malloc create per-thread arenas (up
///   to 8 per core), each reserving 64 MiB of address space once and for all;
///   the warm-up pays for that, not the threads we count;
/// - glibc keeps the stacks of ended threads (up to 40 MiB) to reuse them. The
///   warm-up threads get stacks smaller than any we measure, and glibc only
///   reuses a cached stack that is big enough, so ours are all fresh mappings.
pub fn memory_per_parked_thread(n: usize, stack_size: usize) -> io::Result<ThreadMemory> {
    const WARM_UP_STACK: usize = 32 * 1024;
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let warm_up = Crowd::spawn(16 * cores, WARM_UP_STACK.min(stack_size))?;
    warm_up.wait_until_all_parked();
    warm_up.release()?;

    let before = ProcStatus::read()?;
    let kernel_stacks_before = kernel_stack_bytes()?;
    let crowd = Crowd::spawn(n, stack_size)?;
    crowd.wait_until_all_parked();
    let during = ProcStatus::read()?;
    let kernel_stacks_during = kernel_stack_bytes()?;
    let spawned = crowd.len();
    crowd.release()?;
    if spawned < n {
        return Err(io::Error::other(format!("only {spawned} of {n} threads could start")));
    }
    let per_thread = |after: u64, before: u64| after.saturating_sub(before) / n.max(1) as u64;
    Ok(ThreadMemory {
        threads: n,
        stack_size,
        virtual_per_thread: per_thread(during.virtual_bytes, before.virtual_bytes),
        resident_per_thread: per_thread(during.resident_bytes, before.resident_bytes),
        kernel_stack_per_thread: per_thread(kernel_stacks_during, kernel_stacks_before),
    })
}
// ANCHOR_END: memory

/// Why [`max_threads`] stopped.
#[derive(Debug)]
pub enum LimitReason {
    /// It reached the cap it was given.
    Cap,
    /// Spawning more would use up `vm.max_map_count`, the kernel's limit on
    /// memory mappings per process (each thread's stack and guard page are
    /// mappings). We stop before reaching it: at the limit, any `mmap` in the
    /// process fails, and an allocation failure would abort the program.
    MapCount {
        /// The limit (`vm.max_map_count`).
        max: usize,
        /// Mappings in use when we stopped.
        in_use: usize,
    },
    /// The OS refused to create another thread (e.g. a `pids.max` or
    /// `RLIMIT_NPROC` limit), with its error.
    SpawnFailed(io::Error),
}

/// How many threads one process held at once, and what stopped it.
#[derive(Debug)]
pub struct ThreadLimit {
    /// Threads alive at the peak.
    pub held: usize,
    /// What stopped the count.
    pub stopped_because: LimitReason,
}

// ANCHOR: max_threads
/// Starts threads with `stack_size` stacks until one of: `cap` reached, the
/// process is close to `vm.max_map_count`, or the OS refuses. Then it releases
/// them all and reports how many it held. Bounded and clean by design.
pub fn max_threads(cap: usize, stack_size: usize) -> io::Result<ThreadLimit> {
    // Look at the mappings every `CHECK_EVERY` threads (reading /proc/self/maps
    // costs more as it grows), keeping room for the threads between checks.
    const CHECK_EVERY: usize = 256;
    const MAPS_PER_THREAD_AT_MOST: usize = 4;
    const SPARE_MAPS: usize = 1024;
    let max = max_map_count()?;
    let mut crowd = Crowd::new();
    let stopped_because = loop {
        if crowd.len() >= cap {
            break LimitReason::Cap;
        }
        if crowd.len().is_multiple_of(CHECK_EVERY) {
            let in_use = map_count()?;
            if in_use + CHECK_EVERY * MAPS_PER_THREAD_AT_MOST + SPARE_MAPS > max {
                break LimitReason::MapCount { max, in_use };
            }
        }
        if let Err(e) = crowd.add(stack_size) {
            break LimitReason::SpawnFailed(e);
        }
    };
    let held = crowd.len();
    crowd.wait_until_all_parked();
    crowd.release()?;
    Ok(ThreadLimit { held, stopped_because })
}
// ANCHOR_END: max_threads

/// Many threads parked on one gate, released together.
struct Crowd {
    /// Where the threads park until released.
    gate: Arc<Gate>,
    /// The threads, to join on release.
    threads: Vec<JoinHandle<()>>,
}

/// The gate a [`Crowd`] waits at.
#[derive(Default)]
struct Gate {
    /// `(threads that have arrived, gate open)`.
    state: Mutex<(usize, bool)>,
    /// Signalled by each thread as it arrives; the main thread waits here.
    arrived: Condvar,
    /// Signalled once, when the gate opens; the crowd waits here.
    opened: Condvar,
}

impl Crowd {
    fn new() -> Crowd {
        Crowd { gate: Arc::new(Gate::default()), threads: Vec::new() }
    }

    fn spawn(n: usize, stack_size: usize) -> io::Result<Crowd> {
        let mut crowd = Crowd::new();
        for _ in 0..n {
            if let Err(e) = crowd.add(stack_size) {
                crowd.release()?;
                return Err(io::Error::new(e.kind(), format!("could not start {n} threads: {e}")));
            }
        }
        Ok(crowd)
    }

    fn len(&self) -> usize {
        self.threads.len()
    }

    fn add(&mut self, stack_size: usize) -> io::Result<()> {
        let gate = Arc::clone(&self.gate);
        let thread = thread::Builder::new().stack_size(stack_size).spawn(move || {
            let mut state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 += 1;
            gate.arrived.notify_one();
            while !state.1 {
                state = gate.opened.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
        })?;
        self.threads.push(thread);
        Ok(())
    }

    fn wait_until_all_parked(&self) {
        let mut state = self.gate.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.0 < self.threads.len() {
            state = self.gate.arrived.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn release(self) -> io::Result<()> {
        self.gate.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.gate.opened.notify_all();
        for thread in self.threads {
            thread.join().map_err(|_| io::Error::other("a parked thread panicked"))?;
        }
        Ok(())
    }
}
