//! Each thread costs four memory mappings (its stack, the stack's guard page,
//! std's signal stack and that one's guard page; `tests/thread_layout.rs`
//! shows which), which is why `vm.max_map_count` caps how many threads a
//! process can hold.
//!
//! In a test binary of its own: counting `/proc/self/maps` only works when
//! no other test is making or unmapping anything at the same time.

use std::io;
use std::sync::{Arc, Barrier};
use std::thread;

use ch01_os_threads::measure::map_count;

mod common;
use common::{signal_stack_is_stds, skip};

/// Starts `n` threads with `stack` bytes of stack, waits until every one of
/// them runs, calls `f`, then lets them end.
fn with_parked_threads<T>(n: usize, stack: usize, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let started = Arc::new(Barrier::new(n + 1));
    let release = Arc::new(Barrier::new(n + 1));
    let threads = (0..n)
        .map(|_| {
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            thread::Builder::new().stack_size(stack).spawn(move || {
                started.wait();
                release.wait();
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    started.wait();
    let result = f();
    release.wait();
    for thread in threads {
        thread.join().map_err(|_| io::Error::other("a parked thread panicked"))?;
    }
    result
}

#[test]
fn each_running_thread_adds_four_mappings() -> io::Result<()> {
    if !signal_stack_is_stds()? {
        skip("each_running_thread_adds_four_mappings");
        return Ok(());
    }
    // Warm-up: the first threads of a process make malloc create per-thread
    // arenas (mappings of their own, once), up to 8 per online CPU (glibc's
    // `NARENAS_FROM_NCORES` in malloc/arena.c: online CPUs, not the ones
    // this thread may use). A crowd of more small-stack threads than that
    // pays for all of them first. Their stacks stay in glibc's cache, mapped,
    // and are too small to be reused for the threads we count.
    // SAFETY: sysconf only reads a configuration value.
    let online_cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    with_parked_threads(8 * online_cpus + 8, 32 * 1024, || Ok(()))?;

    const N: usize = 100;
    let before = map_count()?;
    let during = with_parked_threads(N, 96 * 1024, map_count)?;
    assert_eq!(during - before, 4 * N, "{before} mappings before, {during} with {N} threads running");
    Ok(())
}
