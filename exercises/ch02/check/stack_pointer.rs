//! The check of exercise 2.2: the stack pointer is next to the caller's
//! locals, lower in a deeper call, and in each fiber on a stack of its own.

use std::hint::black_box;

use ch02_exercises::stack_pointer::stack_pointer;
use ch02_green_threads::{Config, run, spawn};
use exercise_harness::{Verdict, ensure};

/// How far the stack pointer may be from a local variable of its caller:
/// a few frames of a debug build.
const NEAR: usize = 16 * 1024;

/// Two fibers' stacks are separate mappings of 64 KiB plus a guard page;
/// their stack pointers, at the same depth in each, are at least this far apart.
const APART: usize = 60 * 1024;

pub fn check() -> Verdict {
    let local = 0u8;
    let here = (&raw const local).addr();
    let sp = black_box(stack_pointer());
    ensure!(
        sp.abs_diff(here) < NEAR,
        "stack_pointer() returned {sp:#x}, but a local variable of its caller is at {here:#x}, {} bytes away: \
         the stack pointer is the register rsp (read it with asm!)",
        sp.abs_diff(here)
    );

    let outer = stack_pointer();
    let inner = deeper();
    ensure!(
        inner < outer && outer - inner >= 512,
        "called from a function with a 512-byte array on its stack, stack_pointer() returned {inner:#x}; from its \
         caller, {outer:#x}. The deeper call's stack pointer must be lower by at least 512: x86-64 stacks grow down"
    );

    let fibers = run(Config::default(), || -> Result<Vec<(usize, usize)>, String> {
        let handles = (0..2)
            .map(|_| spawn(where_am_i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("spawn failed: {e}"))?;
        handles.into_iter().map(|h| h.join().map_err(|e| format!("a fiber failed: {e}"))).collect()
    })
    .map_err(|e| format!("the runtime failed: {e}"))??;
    let [(a, a_local), (b, b_local)] = fibers[..] else { return Err("expected two fibers' answers".into()) };
    ensure!(
        a.abs_diff(a_local) < NEAR && b.abs_diff(b_local) < NEAR,
        "in a fiber, stack_pointer() returned {a:#x} with a local variable at {a_local:#x}: it should be the \
         stack pointer of the fiber that calls it"
    );
    ensure!(
        a.abs_diff(b) >= APART && a.abs_diff(sp) >= APART && b.abs_diff(sp) >= APART,
        "in two fibers, stack_pointer() returned {a:#x} and {b:#x}, and {sp:#x} outside them: each fiber runs on \
         a stack of its own, so these should be far apart (at least {} KiB)",
        APART / 1024
    );
    Ok(())
}

/// One call deeper, with 512 bytes of its own on the stack.
#[inline(never)]
fn deeper() -> usize {
    let bytes = black_box([0u8; 512]);
    let sp = stack_pointer();
    black_box(&bytes);
    sp
}

/// What a fiber reports: its stack pointer, and where a local of its own is.
fn where_am_i() -> (usize, usize) {
    let local = 0u8;
    let sp = black_box(stack_pointer());
    (sp, (&raw const local).addr())
}
