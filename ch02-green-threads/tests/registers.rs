//! The context switch must hand every callee-saved register back exactly as
//! it was, and the floating-point control words too when it saves them.
//!
//! Fibers each load their own known values into rbx, rbp, r12-r15, MXCSR
//! and the x87 control word, yield to the others (which load different
//! values), and when they are resumed read all of them back. A switch that
//! forgot one register, or restored another fiber's, fails here.
//!
//! Every test runs against each kind of switch (see [`SWITCHES`]): the one
//! the chapter teaches (`Switch::Call`, always saving the control words) and
//! the inline one with the control words saved and not. For the inline
//! switch the compiled function around it is part of what is tested: its
//! clobber list must make the compiler save r12-r15, and a name missing
//! from the list shows up here as another fiber's value.
//!
//! Through `yield_now` there is a compiled Rust function between our asm and
//! the switch, and that function may save and restore a callee-saved
//! register itself, which would hide a teaching switch that forgot it. So one
//! test also calls each switch straight from the asm, against a partner that
//! fills every register with garbage.

use std::arch::asm;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use ch02_green_threads::arch::{self, DEFAULT_MXCSR, DEFAULT_X87_CONTROL_WORD};
use ch02_green_threads::stack::Stack;
use ch02_green_threads::{Config, Switch, run, spawn, yield_now};

/// Every kind of switch a runtime can use.
const SWITCHES: [Switch; 3] =
    [Switch::Call, Switch::Inline { save_float_control: true }, Switch::Inline { save_float_control: false }];

/// Whether `switch` gives each fiber its own control words.
fn saves_float_control(switch: Switch) -> bool {
    matches!(switch, Switch::Call | Switch::Inline { save_float_control: true })
}

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
    /// from the defaults, exceptions still masked. MXCSR follows the last
    /// digit of `seed` and the x87 word the one before, so the two vary
    /// independently (the switch compares, and reloads, each on its own).
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
            x87_control: if (seed / 10).is_multiple_of(2) { 0x0F7F } else { 0x077F },
        }
    }

    /// [`pattern`](Self::pattern), with the control words the ABI starts
    /// with: for a switch that leaves them to the thread, where a fiber that
    /// changed them would change them for the others too.
    fn pattern_with_default_control(seed: u64) -> Registers {
        Registers { mxcsr: DEFAULT_MXCSR, x87_control: DEFAULT_X87_CONTROL_WORD, ..Registers::pattern(seed) }
    }

    /// The pattern to use with `switch`.
    fn pattern_for(switch: Switch, seed: u64) -> Registers {
        if saves_float_control(switch) {
            Registers::pattern(seed)
        } else {
            Registers::pattern_with_default_control(seed)
        }
    }
}

/// What the asm below calls with our values in the registers: `arch::switch`
/// itself, or [`yield_from_asm`].
type SwitchFn = unsafe extern "sysv64" fn(*mut *mut u8, *mut u8);

/// Yields once (a [`SwitchFn`] that ignores its arguments).
extern "sysv64" fn yield_from_asm(_: *mut *mut u8, _: *mut u8) {
    yield_now();
}

/// Loads `want` into the registers, yields (other fibers run and load their
/// own values), and returns what the registers hold when we are resumed.
fn load_yield_read(want: Registers) -> Registers {
    // SAFETY: `yield_from_asm` ignores its arguments and is safe to call.
    unsafe { load_call_read(want, yield_from_asm, std::ptr::null_mut(), std::ptr::null_mut()) }
}

/// Loads `want` into the registers, calls `switch(save, resume)` (which
/// runs other code that loads other values), and returns what the registers
/// hold when it returns.
///
/// # Safety
///
/// Calling `switch(save, resume)` must be sound, and it must return.
///
/// Rust assumes the default floating-point environment. While ours is
/// changed, only the runtime's bookkeeping and the switch run (integer code,
/// no floating-point arithmetic), and the asm restores the original control
/// words before it ends, so no Rust float operation ever sees another mode.
unsafe fn load_call_read(want: Registers, switch: SwitchFn, save: *mut *mut u8, resume: *mut u8) -> Registers {
    let mut got = [0u64; 8];
    let call = [switch as usize, save as usize, resume as usize];
    let values =
        [want.rbx, want.rbp, want.r12, want.r13, want.r14, want.r15, want.mxcsr as u64, want.x87_control as u64];
    // SAFETY: the asm saves and restores everything it changes that the
    // compiler relies on: rbx and rbp (pushed and popped), rsp (restored from
    // the stack), MXCSR and x87 control (saved to the stack and reloaded);
    // r12-r15 are declared clobbered, the call clobbers what `clobber_abi`
    // says. It realigns the stack to 16 bytes for the call. `values` and
    // `got` are valid for 8 reads and writes of u64, `call` for 3 reads;
    // the caller vouches for the call itself.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "mov rax, rsp",
            "and rsp, -16",      // 16-byte alignment for the call below
            "sub rsp, 48",       // [rsp]: saved rsp, +8: `got`, +16: MXCSR, +20: x87 cw, +24: scratch,
            "mov [rsp], rax",    // +32: the function to call, +40: its second argument
            "mov [rsp + 8], rsi",
            "mov rax, [rdx]",
            "mov [rsp + 32], rax",
            "mov rax, [rdx + 16]",
            "mov [rsp + 40], rax",
            "mov rsi, [rdx + 8]",   // its first argument goes to rdi below, once rdi is free
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
            "mov rdi, rsi",            // switch(save,
            "mov rsi, [rsp + 40]",     //        resume)
            "call [rsp + 32]",         // other code runs here
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
            in("rdi") values.as_ptr(),
            in("rsi") got.as_mut_ptr(),
            in("rdx") call.as_ptr(),
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
    for switch in SWITCHES {
        registers_survive(switch)?;
    }
    Ok(())
}

fn registers_survive(switch: Switch) -> io::Result<()> {
    let results = run(Config::switching_with(switch), || -> io::Result<_> {
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut fibers = Vec::new();
        for seed in 1..=3 {
            let results = Rc::clone(&results);
            fibers.push(spawn(move || {
                for round in 0..3 {
                    let want = Registers::pattern_for(switch, seed * 10 + round);
                    let got = load_yield_read(want); // yields: no RefCell borrow may be held across it
                    results.borrow_mut().push((want, got));
                }
            })?);
        }
        // The main fiber takes part too, with its own values.
        for round in 0..3 {
            let want = Registers::pattern_for(switch, 100 + round);
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
        assert_eq!(got, want, "{switch:?}");
    }
    Ok(())
}

#[test]
fn control_words_do_not_leak_between_fibers() -> io::Result<()> {
    // A fiber that changes MXCSR and yields must not change it for the
    // others: each context keeps its own.
    for switch in SWITCHES.into_iter().filter(|&switch| saves_float_control(switch)) {
        let seen = mxcsr_seen_while_another_fiber_changed_it(switch)?;
        // In hex, so a wrong rounding mode is easy to read off (bits 13-14).
        assert_eq!(format!("{seen:#06x}"), format!("{DEFAULT_MXCSR:#06x}"), "{switch:?}");
    }
    Ok(())
}

#[test]
fn without_saving_them_the_control_words_belong_to_the_thread() -> io::Result<()> {
    // The inline switch's default: the words are not saved, so the fiber
    // that runs next sees the rounding mode the changer left. (The changer
    // puts the thread's words back when it is resumed.)
    let switch = Switch::INLINE;
    let seen = mxcsr_seen_while_another_fiber_changed_it(switch)?;
    assert_eq!(format!("{seen:#06x}"), format!("{:#06x}", Registers::pattern(2).mxcsr), "{switch:?}");
    Ok(())
}

/// A fiber loads `Registers::pattern(2)`'s control words and yields; a
/// second fiber reads MXCSR's control bits. Returns what it read.
fn mxcsr_seen_while_another_fiber_changed_it(switch: Switch) -> io::Result<u32> {
    run(Config::switching_with(switch), || -> io::Result<_> {
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
    })?
}

/// What `the_switch_alone_restores_every_register` shares with its partner.
struct Pair {
    /// Main's saved stack pointer.
    main: *mut u8,
    /// The partner's saved stack pointer.
    partner: *mut u8,
    /// The MXCSR and x87 control word the partner loads before each switch.
    partner_control: [u32; 2],
    /// The switch both sides call.
    switch: SwitchFn,
}

/// `arch::inline::switch` as a function the asm can call. Its compiled
/// prologue and epilogue save and restore exactly what the clobber list
/// names, which is what this test checks for the inline switch.
unsafe extern "sysv64" fn inline_switch(save: *mut *mut u8, resume: *mut u8) {
    // SAFETY: the caller's contract (see `the_switch_alone_restores_every_register`).
    unsafe { arch::inline::switch(save, resume) }
}

/// `arch::inline::switch_saving_float_control` as a function, likewise.
unsafe extern "sysv64" fn inline_switch_saving_float_control(save: *mut *mut u8, resume: *mut u8) {
    // SAFETY: the caller's contract (see `the_switch_alone_restores_every_register`).
    unsafe { arch::inline::switch_saving_float_control(save, resume) }
}

/// The partner context: fills every callee-saved register with garbage and
/// the control words with `partner_control`, and switches straight back,
/// forever.
extern "sysv64" fn clobberer(arg: *mut u8) -> ! {
    let pair = arg.cast::<Pair>();
    loop {
        // SAFETY: rbx and rbp are pushed and popped, r12-r15 declared
        // clobbered, our own control words saved and reloaded around the
        // call. The call is aligned: Rust enters an `asm!` block that may use
        // the stack (no `nostack`) with rsp aligned as for a call (16 bytes),
        // and two pushes plus 16 bytes keep it a multiple of 16. `pair`
        // outlives every switch to us (see the test) and `main` was saved by
        // the switch that resumed us, which is the one we call.
        unsafe {
            asm!(
                "push rbx",
                "push rbp",
                "sub rsp, 16",
                "stmxcsr [rsp]",
                "fnstcw [rsp + 4]",
                "ldmxcsr [{garbage}]",
                "fldcw [{garbage} + 4]",
                "mov rbx, -1",
                "mov rbp, -2",
                "mov r12, -3",
                "mov r13, -4",
                "mov r14, -5",
                "mov r15, -6",
                "call {switch}",
                "ldmxcsr [rsp]",
                "fldcw [rsp + 4]",
                "add rsp, 16",
                "pop rbp",
                "pop rbx",
                switch = in(reg) (*pair).switch,
                garbage = in(reg) &raw const (*pair).partner_control,
                in("rdi") &raw mut (*pair).partner,
                in("rsi") (*pair).main,
                out("r12") _, out("r13") _, out("r14") _, out("r15") _,
                clobber_abi("sysv64"),
            );
        }
    }
}

#[test]
fn the_switch_alone_restores_every_register() -> io::Result<()> {
    for switch in SWITCHES {
        the_switch_alone_restores(switch)?;
    }
    Ok(())
}

fn the_switch_alone_restores(switch: Switch) -> io::Result<()> {
    let stack = Stack::new(16 * 1024)?;
    let function: SwitchFn = match switch {
        Switch::Call => arch::switch,
        Switch::Inline { save_float_control: true } => inline_switch_saving_float_control,
        Switch::Inline { save_float_control: false } => inline_switch,
    };
    let mut pair = Box::new(Pair {
        main: std::ptr::null_mut(),
        partner: std::ptr::null_mut(),
        partner_control: [0, 0],
        switch: function,
    });
    let pair_ptr: *mut Pair = &mut *pair;
    // SAFETY: the stack is fresh and its top 16-byte aligned; the clobberer
    // never returns. The frame is the one `function` resumes.
    unsafe {
        (*pair_ptr).partner = match switch {
            Switch::Call => arch::init_stack(stack.top(), clobberer, pair_ptr.cast()),
            Switch::Inline { save_float_control } => {
                arch::inline::init_stack(stack.top(), clobberer, pair_ptr.cast(), save_float_control)
            }
        }
    };
    for seed in [0, 1, 10, 11] {
        let want = Registers::pattern_for(switch, seed);
        // Other rounding modes than ours (bits 13-14 of MXCSR, 10-11 of x87).
        let (mxcsr, x87) = (want.mxcsr, u32::from(want.x87_control));
        let (other_mxcsr, other_x87) = (mxcsr ^ 0x6000, x87 ^ 0x0C00);
        // The partner's control words differ from ours in one, the other, or
        // both: the switch must notice each difference on its own. A switch
        // that leaves the words to the thread would hand us the partner's,
        // so its partner loads ours.
        let partner_controls = if saves_float_control(switch) {
            vec![[mxcsr, other_x87], [other_mxcsr, x87], [other_mxcsr, other_x87]]
        } else {
            vec![[mxcsr, x87]]
        };
        for partner_control in partner_controls {
            // SAFETY: the partner is suspended (it only reads this field while running).
            unsafe { (*pair_ptr).partner_control = partner_control };
            // SAFETY: the partner's stack pointer is fresh from init_stack or
            // saved by its last switch (the same function), its stack is
            // mapped, and it always switches straight back to `main`.
            let got = unsafe { load_call_read(want, function, &raw mut (*pair_ptr).main, (*pair_ptr).partner) };
            assert_eq!(got, want, "{switch:?}, seed {seed}, partner's control words {partner_control:#x?}");
        }
    }
    // The partner stays suspended for good. It owns nothing on its stack,
    // so unmapping the stack under it is harmless.
    drop(stack);
    drop(pair);
    Ok(())
}
