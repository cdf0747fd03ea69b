//! The check of exercise 2.2: the stack pointer lies in the calling
//! thread's stack (as the C library reports its bounds), is lower in a
//! deeper call, and in each fiber lies on a stack of that fiber's own.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ops::Range;

use ch02_exercises::stack_pointer::stack_pointer;
use ch02_green_threads::{Config, run, spawn};
use exercise_harness::{Verdict, ensure};

/// Two fibers' stacks are separate mappings of 64 KiB plus a guard page;
/// their stack pointers, at the same depth in each, are at least this far apart.
const APART: usize = 60 * 1024;

pub fn check() -> Verdict {
    let stack = thread_stack().map_err(|e| format!("cannot learn this thread's stack: {e}"))?;
    let sp = black_box(stack_pointer());
    ensure!(
        stack.contains(&sp),
        "stack_pointer() returned {sp:#x}, outside this thread's stack ({:#x} to {:#x}): the stack pointer is the \
         register rsp (read it with asm!)",
        stack.start,
        stack.end
    );

    let outer = stack_pointer();
    let inner = deeper();
    ensure!(
        inner < outer,
        "called one function deeper, stack_pointer() returned {inner:#x}, and from its caller {outer:#x}: the \
         deeper call's stack pointer must be lower, because x86-64 stacks grow down"
    );

    let fibers = run(Config::default(), || -> Result<Vec<usize>, String> {
        let handles = (0..2)
            .map(|_| spawn(|| black_box(stack_pointer())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("spawn failed: {e}"))?;
        handles.into_iter().map(|h| h.join().map_err(|e| format!("a fiber failed: {e}"))).collect()
    })
    .map_err(|e| format!("the runtime failed: {e}"))??;
    let [a, b] = fibers[..] else { return Err("expected two fibers' answers".into()) };
    ensure!(
        !stack.contains(&a) && !stack.contains(&b) && a.abs_diff(b) >= APART,
        "in two fibers, stack_pointer() returned {a:#x} and {b:#x} (this thread's stack is {:#x} to {:#x}): each \
         fiber runs on a stack of its own, outside the thread's and at least {} KiB from the other's",
        stack.start,
        stack.end,
        APART / 1024
    );
    Ok(())
}

/// One call deeper, with some bytes of its own on the stack.
#[inline(never)]
fn deeper() -> usize {
    let bytes = black_box([0u8; 512]);
    let sp = stack_pointer();
    black_box(&bytes);
    sp
}

/// The calling thread's stack, as glibc knows it (`pthread_getattr_np`).
fn thread_stack() -> Result<Range<usize>, String> {
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `attr` is writable memory for one pthread_attr_t, which the
    // call initialises on success (checked before it is read).
    let result = unsafe { libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) };
    if result != 0 {
        return Err(std::io::Error::from_raw_os_error(result).to_string());
    }
    let (mut low, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: `attr` was initialised by pthread_getattr_np above; the two
    // out-pointers are valid for one write each.
    let result = unsafe { libc::pthread_attr_getstack(attr.as_ptr(), &mut low, &mut size) };
    // SAFETY: `attr` is initialised and destroyed exactly once.
    unsafe { libc::pthread_attr_destroy(attr.as_mut_ptr()) };
    if result != 0 {
        return Err(std::io::Error::from_raw_os_error(result).to_string());
    }
    Ok(low.addr()..low.addr() + size)
}
