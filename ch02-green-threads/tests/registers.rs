//! The context switch must hand every callee-saved register and the
//! floating-point control words back exactly as they were.
//!
//! Two fibers each load their own known values into rbx, rbp, r12-r15, MXCSR
//! and the x87 control word, yield to the other (which loads different
//! values), and when they are resumed read all of them back. A switch that
//! forgot one register, or restored another fiber's, fails here.

use std::arch::asm;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use ch02_green_threads::{Config, run, spawn, yield_now};

/// Values one fiber loads, and reads back after the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Registers {
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    mxcsr: u32,
    x87_control: u16,
}

impl Registers {
    /// Distinct values per `seed`; MXCSR and x87 rounding modes that differ
    /// from the defaults (and from each other), exceptions still masked.
    fn pattern(seed: u64) -> Registers {
        let word = |n: u64| 0x0101_0101_0101_0101u64.wrapping_mul(seed * 16 + n);
        Registers {
            rbx: word(1),
            rbp: word(2),
            r12: word(3),
            r13: word(4),
            r14: word(5),
            r15: word(6),
            // Round toward zero (bits 13-14 = 11) or down (01), all exceptions masked.
            mxcsr: if seed.is_multiple_of(2) { 0x7F80 } else { 0x3F80 },
            // Round toward zero (bits 10-11 = 11) or down (01), exceptions masked.
            x87_control: if seed.is_multiple_of(2) { 0x0F7F } else { 0x077F },
        }
    }
}

/// Called from the asm below with our values in the registers: yields once.
extern "sysv64" fn yield_from_asm() {
    yield_now();
}

/// Loads `want` into the registers, yields (other fibers run and load their
/// own values), and returns what the registers hold when we are resumed.
///
/// Rust assumes the default floating-point environment. While ours is
/// changed, only the runtime's bookkeeping and the switch run (integer code,
/// no floating-point arithmetic), and the asm restores the original control
/// words before it ends, so no Rust float operation ever sees another mode.
fn load_yield_read(want: Registers) -> Registers {
    let mut got = [0u64; 8];
    let values =
        [want.rbx, want.rbp, want.r12, want.r13, want.r14, want.r15, want.mxcsr as u64, want.x87_control as u64];
    // SAFETY: the asm saves and restores everything it changes that the
    // compiler relies on: rbx and rbp (pushed and popped), rsp (restored from
    // the stack), MXCSR and x87 control (saved to the stack and reloaded);
    // r12-r15 are declared clobbered, the call clobbers what `clobber_abi`
    // says. It realigns the stack to 16 bytes for the call. `values` and
    // `got` are valid for 8 reads and writes of u64.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov rax, rsp",
            "and rsp, -16",      // 16-byte alignment for the call below
            "sub rsp, 32",       // [rsp]: saved rsp, +8: `got`, +16: MXCSR, +20: x87 cw, +24: scratch
            "mov [rsp], rax",
            "mov [rsp + 8], rsi",
            "stmxcsr [rsp + 16]",      // the caller's control words, to put back at the end
            "fnstcw [rsp + 20]",
            "ldmxcsr [rdi + 48]",      // ours
            "fldcw [rdi + 56]",
            "mov rbx, [rdi]",
            "mov rbp, [rdi + 8]",
            "mov r12, [rdi + 16]",
            "mov r13, [rdi + 24]",
            "mov r14, [rdi + 32]",
            "mov r15, [rdi + 40]",
            "call {yield_from_asm}",   // other fibers run here
            "mov rax, [rsp + 8]",      // `got`
            "mov [rax], rbx",
            "mov [rax + 8], rbp",
            "mov [rax + 16], r12",
            "mov [rax + 24], r13",
            "mov [rax + 32], r14",
            "mov [rax + 40], r15",
            "stmxcsr [rsp + 24]",
            "mov ecx, [rsp + 24]",
            "mov [rax + 48], rcx",
            "fnstcw [rsp + 24]",
            "movzx ecx, word ptr [rsp + 24]",
            "mov [rax + 56], rcx",
            "ldmxcsr [rsp + 16]",      // the caller's control words back
            "fldcw [rsp + 20]",
            "mov rsp, [rsp]",
            "pop rbp",
            "pop rbx",
            yield_from_asm = sym yield_from_asm,
            in("rdi") values.as_ptr(),
            in("rsi") got.as_mut_ptr(),
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            clobber_abi("sysv64"),
        );
    }
    Registers {
        rbx: got[0],
        rbp: got[1],
        r12: got[2],
        r13: got[3],
        r14: got[4],
        r15: got[5],
        // Only MXCSR's control bits are callee-saved; bits 0-5 are sticky
        // status flags ("an inexact result happened") that any code may set.
        mxcsr: got[6] as u32 & 0xFFC0,
        x87_control: got[7] as u16,
    }
}

#[test]
fn callee_saved_registers_and_control_words_survive_switches() -> io::Result<()> {
    let results = run(Config::default(), || -> io::Result<_> {
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut fibers = Vec::new();
        for seed in 1..=3 {
            let results = Rc::clone(&results);
            fibers.push(spawn(move || {
                for round in 0..3 {
                    let want = Registers::pattern(seed * 10 + round);
                    let got = load_yield_read(want); // yields: no RefCell borrow may be held across it
                    results.borrow_mut().push((want, got));
                }
            })?);
        }
        // The main fiber takes part too, with its own values.
        for round in 0..3 {
            let want = Registers::pattern(100 + round);
            let got = load_yield_read(want);
            results.borrow_mut().push((want, got));
        }
        for fiber in fibers {
            fiber.join().map_err(io::Error::other)?;
        }
        Ok(Rc::try_unwrap(results).expect("fibers are done").into_inner())
    })??;
    assert_eq!(results.len(), 12);
    for (want, got) in results {
        assert_eq!(got, want);
    }
    Ok(())
}

#[test]
fn control_words_do_not_leak_between_fibers() -> io::Result<()> {
    // A fiber that changes MXCSR and yields must not change it for the
    // others: each context keeps its own.
    let seen = run(Config::default(), || -> io::Result<_> {
        let changer = spawn(|| load_yield_read(Registers::pattern(2)))?;
        let watcher = spawn(|| {
            let mut mxcsr = 0u32;
            // SAFETY: stmxcsr only writes the 4 bytes of `mxcsr`.
            unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut mxcsr, options(nostack)) };
            mxcsr & 0xFFC0 // control bits only, as above
        })?;
        let seen_by_watcher = watcher.join().map_err(io::Error::other)?;
        changer.join().map_err(io::Error::other)?;
        Ok(seen_by_watcher)
    })??;
    // In hex, so a wrong rounding mode is easy to read off (bits 13-14).
    assert_eq!(format!("{seen:#06x}"), format!("{:#06x}", ch02_green_threads::arch::DEFAULT_MXCSR));
    Ok(())
}
