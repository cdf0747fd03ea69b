//! What a Rust thread is made of in memory, read from the thread itself and
//! from `/proc/self/maps` (Linux, glibc).
//!
//! A thread made by `std::thread` on x86-64 Linux with glibc owns four
//! mappings:
//!
//! 1. glibc's stack block (`allocate_stack` in glibc's `nptl/allocatestack.c`):
//!    the stack we asked for, mapped read-write. Thread-local data and
//!    glibc's thread descriptor live at its top, inside the same block;
//! 2. the guard page below it, `PROT_NONE` (glibc maps the whole block
//!    `PROT_NONE` and then `mprotect`s the usable part read-write);
//! 3. Rust std's alternate signal stack, where its `SIGSEGV` handler runs to
//!    report "thread ... has overflowed its stack" (`make_handler` in std's
//!    `sys/pal/unix/stack_overflow.rs`): the larger of `SIGSTKSZ` and the
//!    kernel's `AT_MINSIGSTKSZ`;
//! 4. the guard page below that one.
//!
//! Each test here looks at them; `tests/thread_map_count.rs` counts them.

use std::cell::Cell;
use std::io;
use std::thread;

mod common;
use common::{mapping_at, maps, signal_stack, signal_stack_is_stds, skip, std_signal_stack_size};

const STACK: usize = 64 * 1024;

/// Where the calling thread's pieces are, as glibc and the kernel say.
#[derive(Debug)]
struct Layout {
    /// Lowest address of the usable stack, and its size.
    stack: (usize, usize),
    /// glibc's guard size (below `stack`).
    guard: usize,
    /// The alternate signal stack (`sigaltstack`): start and size.
    signal_stack: (usize, usize),
}

fn current_layout() -> io::Result<Layout> {
    // SAFETY: an all-zero pthread_attr_t is only a placeholder for
    // pthread_getattr_np to fill in; we destroy it once read.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is writable; pthread_self is the calling, live thread.
    let error = unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    let (mut low, mut size, mut guard) = (std::ptr::null_mut(), 0usize, 0usize);
    // SAFETY: `attr` was initialised by pthread_getattr_np; the out-pointers
    // are valid and writable. pthread_attr_destroy is called exactly once.
    unsafe {
        libc::pthread_attr_getstack(&attr, &mut low, &mut size);
        libc::pthread_attr_getguardsize(&attr, &mut guard);
        libc::pthread_attr_destroy(&mut attr);
    }
    let signal_stack = signal_stack()?.unwrap_or((0, 0));
    Ok(Layout { stack: (low as usize, size), guard, signal_stack })
}

fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

thread_local! {
    /// A thread-local variable, to find where thread-local data lives.
    static MARK: Cell<u64> = const { Cell::new(0) };
}

#[test]
fn a_thread_is_its_stack_and_guard_plus_a_signal_stack_and_guard() -> io::Result<()> {
    if !signal_stack_is_stds()? {
        skip("a_thread_is_its_stack_and_guard_plus_a_signal_stack_and_guard");
        return Ok(());
    }
    let page = page_size();
    let report = thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || -> io::Result<String> {
            let layout = current_layout()?;
            let maps = maps()?;
            let (low, size) = layout.stack;
            let what = format!("{layout:?}");

            // 1. The usable stack is exactly what we asked for, read-write.
            assert_eq!(size, STACK, "{what}");
            let stack = mapping_at(&maps, low).expect("the stack is mapped");
            assert_eq!(stack.perms, "rw-p", "{what}");
            assert!(stack.end >= low + size, "{what}: {stack:?}");

            // Thread-local data is inside that block, not a mapping of its own.
            let local = MARK.with(|mark| mark as *const Cell<u64> as usize);
            assert!((low..low + size).contains(&local), "{what}: thread-local at {local:#x}");

            // 2. One guard page right below it, inaccessible.
            assert_eq!(layout.guard, page, "{what}");
            let guard = mapping_at(&maps, low - 1).expect("the guard is mapped");
            assert_eq!(guard.perms, "---p", "{what}: {guard:?}");
            assert!(guard.start <= low - layout.guard, "{what}: {guard:?}");

            // 3. std's signal stack: its own read-write mapping, of the size
            // std computes, outside glibc's block.
            let (signal_low, signal_size) = layout.signal_stack;
            assert_eq!(signal_size, std_signal_stack_size(), "{what}");
            assert!(!(low - layout.guard..low + size).contains(&signal_low), "{what}");
            let signal = mapping_at(&maps, signal_low).expect("the signal stack is mapped");
            assert_eq!(signal.perms, "rw-p", "{what}: {signal:?}");
            assert!(signal.end >= signal_low + signal_size, "{what}: {signal:?}");

            // 4. And a guard page below it.
            let signal_guard = mapping_at(&maps, signal_low - 1).expect("the signal stack's guard is mapped");
            assert_eq!(signal_guard.perms, "---p", "{what}: {signal_guard:?}");
            assert!(signal_guard.start <= signal_low - page, "{what}: {signal_guard:?}");

            let total = size + layout.guard + signal_size + page;
            Ok(format!(
                "{} KiB + {} KiB + {} KiB + {} KiB = {} KiB",
                size / 1024,
                layout.guard / 1024,
                signal_size / 1024,
                page / 1024,
                total / 1024
            ))
        })?
        .join()
        .map_err(|_| io::Error::other("the measured thread panicked"))??;
    // Visible with `cargo test -- --nocapture`.
    println!("one thread with a {} KiB stack reserves {report}", STACK / 1024);
    Ok(())
}

#[test]
fn glibc_reuses_a_joined_threads_stack() -> io::Result<()> {
    // glibc hands out a cached stack that is at least as big as the one asked
    // for and at most four times as big (`get_cached_stack` in
    // nptl/allocatestack.c). 384 KiB is more than four times the other
    // test's 64 KiB and less than a quarter of the test harness's 2 MiB
    // threads, so the only cached stack that fits is the first thread's.
    const SIZE: usize = 384 * 1024;
    let stack_of_a_new_thread = || -> io::Result<usize> {
        thread::Builder::new()
            .stack_size(SIZE)
            .spawn(|| current_layout().map(|layout| layout.stack.0))?
            .join()
            .map_err(|_| io::Error::other("the thread panicked"))?
    };
    let first = stack_of_a_new_thread()?;
    // `join` has returned: glibc put the first thread's stack in its cache
    // (up to 40 MiB of them, `__nptl_stack_cache_maxsize`), and the next
    // thread of a size that fits gets it back instead of a fresh mmap.
    let second = stack_of_a_new_thread()?;
    assert_eq!(first, second, "the second thread runs on the first one's stack");
    Ok(())
}
