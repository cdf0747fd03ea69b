//! Turning a fiber's stack overflow into a clear report instead of a
//! mysterious crash (or, without a guard page, silent memory corruption).
//!
//! When a fiber runs past the end of its stack it touches the guard page, the
//! CPU faults, and the kernel sends the thread `SIGSEGV`. Our handler:
//!
//! 1. runs on an **alternate signal stack** (`sigaltstack`): the fiber's own
//!    stack is full, so the handler could not even push its first frame there;
//! 2. compares the faulting address (`si_addr`) with the guard page of the
//!    fiber running on this thread (found through the scheduler's own
//!    pointer to the running fiber, so telling the handler costs nothing),
//!    and of the fiber that is in the middle of switching to it (a yield
//!    names the next fiber as running just *before* the switch pushes the
//!    old fiber's registers, and that push is where a fiber that yields
//!    deep in a recursion overflows);
//! 3. if it matches, writes `green thread N overflowed its 64 KiB stack` to
//!    stderr and aborts (the process dies by `SIGABRT`);
//! 4. otherwise (a real bug elsewhere, or a fault in the main thread's stack)
//!    it hands the fault to the handler that was installed before ours, if
//!    any: normally Rust's own, which reports an overflow of a thread's stack
//!    ("thread 'main' has overflowed its stack") the same way. If that one
//!    returns (the fault was not its business either), or there was none, it
//!    restores the default action and returns: the faulting instruction runs
//!    again, faults again, and the process dies by `SIGSEGV` as usual.
//!
//! A signal handler may interrupt the program anywhere, even in the middle of
//! `malloc` or while a `RefCell` is borrowed, so it may only use
//! async-signal-safe operations: no allocation, no locks, no `println!`. It
//! loads one thread-local atomic pointer (the running fiber's context, which
//! the scheduler keeps for [`crate::yield_now`] anyway) and reads fields of
//! that context that never change, formats the message into a fixed buffer
//! on its own stack, and calls `write(2)` and `abort(3)`, both
//! async-signal-safe.
//!
//! So telling the handler which fiber runs costs the switch nothing: it
//! looks where the scheduler already looks.

use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use ch01_os_threads::syscall;

use crate::ring;

/// The `SIGSEGV` handler that was installed before ours (`sa_sigaction`:
/// an address, or `SIG_DFL` / `SIG_IGN`), to pass on the faults that are not
/// ours. Atomics, because the signal handler reads them.
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
/// That handler's `sa_flags` (whether it takes the `siginfo_t` argument).
static PREVIOUS_FLAGS: AtomicI32 = AtomicI32::new(0);

// ANCHOR: install
/// Installs the `SIGSEGV` handler for the whole process (once), remembering
/// the one before it (Rust's own stack-overflow reporter) for other faults.
pub fn install_handler() -> io::Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: an all-zero `sigaction` is valid (no flags, empty mask).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigsegv as *const () as usize;
        // SA_SIGINFO: we need the fault address. SA_ONSTACK: run on the
        // alternate stack, since the faulting stack may have no room left.
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: an all-zero `sigaction` is valid; the kernel fills it in.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `action` is a valid sigaction whose handler only does
        // async-signal-safe things (see `on_sigsegv`); `previous` is writable.
        if let Err(e) = syscall!(unsafe { libc::sigaction(libc::SIGSEGV, &action, &mut previous) }) {
            result = Err(e);
            return;
        }
        // Flags first: the handler reads the address (Acquire) before them.
        PREVIOUS_FLAGS.store(previous.sa_flags, Ordering::Relaxed);
        PREVIOUS_HANDLER.store(previous.sa_sigaction, Ordering::Release);
    });
    result
}
// ANCHOR_END: install

// ANCHOR: handler
/// The `SIGSEGV` handler. Only async-signal-safe operations in here.
extern "C" fn on_sigsegv(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t because we set SA_SIGINFO.
    let (fault, code) = unsafe { ((*info).si_addr() as usize, (*info).si_code) };
    // The guard page of the running fiber (or of the one switching to it)?
    if let Some((id, size)) = ring::guard_page_owner(fault) {
        let mut message = Message::default();
        message.push(b"green thread ");
        message.push_number(id);
        message.push(b" overflowed its ");
        message.push_number(size as u64 / 1024);
        message.push(b" KiB stack (it hit the guard page; give it a bigger stack or use less)\n");
        // SAFETY: write(2) and abort(3) are async-signal-safe; the buffer is
        // valid for its length.
        unsafe {
            libc::write(libc::STDERR_FILENO, message.bytes.as_ptr().cast(), message.len);
            libc::abort();
        }
    }
    // Not a fiber's guard page. A real fault (code > 0) goes to the handler
    // installed before ours, if there was one: Rust's, which reports an
    // overflow of the thread's own stack and otherwise restores the default
    // action and returns. Then we restore the default action too (in case a
    // handler did not: the fault would come straight back to us, forever).
    let previous = PREVIOUS_HANDLER.load(Ordering::Acquire);
    if code > 0 && previous != libc::SIG_DFL && previous != libc::SIG_IGN {
        if PREVIOUS_FLAGS.load(Ordering::Relaxed) & libc::SA_SIGINFO != 0 {
            // SAFETY: `previous` is the address of the handler the kernel
            // had installed with SA_SIGINFO, so it takes these arguments;
            // we pass on exactly what the kernel gave us.
            unsafe {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(previous);
                handler(signal, info, context);
            }
        } else {
            // SAFETY: as above, for a handler installed without SA_SIGINFO.
            unsafe {
                let handler: extern "C" fn(libc::c_int) = std::mem::transmute(previous);
                handler(signal);
            }
        }
    }
    // Let the default action happen.
    // SAFETY: an all-zero sigaction with SIG_DFL (0) restores the default;
    // sigaction and raise are async-signal-safe.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &default, std::ptr::null_mut());
        // A real fault re-faults when we return. A signal someone *sent*
        // (kill; si_code <= 0) would not, so send it again: it stays pending
        // until this handler returns, then the default action ends the process.
        if code <= 0 {
            libc::raise(signal);
        }
    }
}
// ANCHOR_END: handler

/// A fixed-size text buffer: formatting without allocating.
struct Message {
    /// The text so far; what does not fit is dropped.
    bytes: [u8; 160],
    /// How many bytes of `bytes` are used.
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Message { bytes: [0; 160], len: 0 }
    }
}

impl Message {
    fn push(&mut self, text: &[u8]) {
        for &b in text {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

// ANCHOR: altstack
/// This thread's alternate signal stack, if we had to install one.
///
/// Rust's standard library already gives the main thread and every thread it
/// spawns an alternate signal stack (for its own "thread has overflowed its
/// stack" message). A thread created some other way may have none; then we
/// map one, and remove it again when the runtime ends.
#[derive(Debug)]
pub struct AltStack {
    /// The mapping we installed, or `None` if the thread already had one.
    installed: Option<(*mut libc::c_void, usize)>,
}

impl AltStack {
    /// Makes sure this thread has an alternate signal stack.
    pub fn ensure() -> io::Result<AltStack> {
        // SAFETY: an all-zero stack_t is valid; sigaltstack with a null new
        // stack only reads the current setting into `current`.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        syscall!(unsafe { libc::sigaltstack(std::ptr::null(), &mut current) })?;
        if current.ss_flags & libc::SS_DISABLE == 0 {
            return Ok(AltStack { installed: None });
        }
        let size = 64 * 1024;
        // SAFETY: a fresh private anonymous mapping.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if memory == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let new = libc::stack_t { ss_sp: memory, ss_flags: 0, ss_size: size };
        // SAFETY: `new` describes a mapping we own, which stays mapped until
        // `drop` has switched the alternate stack off again.
        if let Err(error) = syscall!(unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) }) {
            // SAFETY: our own mapping, not installed anywhere.
            unsafe { libc::munmap(memory, size) };
            return Err(error);
        }
        Ok(AltStack { installed: Some((memory, size)) })
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        if let Some((memory, size)) = self.installed {
            let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            // SAFETY: switching our alternate stack off, then unmapping it:
            // no handler can be running on it, since we are running here.
            unsafe {
                libc::sigaltstack(&off, std::ptr::null_mut());
                libc::munmap(memory, size);
            }
        }
    }
}
// ANCHOR_END: altstack

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_formats_numbers_without_allocating() {
        let mut m = Message::default();
        m.push(b"green thread ");
        m.push_number(0);
        m.push(b"/");
        m.push_number(18_446_744_073_709_551_615);
        assert_eq!(&m.bytes[..m.len], b"green thread 0/18446744073709551615");
    }

    fn current_altstack() -> io::Result<libc::stack_t> {
        // SAFETY: an all-zero stack_t is valid; a null new stack only reads.
        let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        syscall!(unsafe { libc::sigaltstack(std::ptr::null(), &mut current) })?;
        Ok(current)
    }

    #[test]
    fn a_thread_without_an_alternate_stack_gets_one_and_loses_it_again() -> io::Result<()> {
        std::thread::spawn(|| -> io::Result<()> {
            // A thread made by std already has one: ensure() keeps it.
            let std_stack = current_altstack()?;
            assert_eq!(std_stack.ss_flags & libc::SS_DISABLE, 0);
            assert!(AltStack::ensure()?.installed.is_none());
            // Take std's away for a moment to see ensure() install its own.
            let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            // SAFETY: switching the alternate stack off; std's memory stays mapped.
            assert_eq!(unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) }, 0);
            let ours = AltStack::ensure()?;
            let (memory, _) = ours.installed.expect("installed one");
            assert_eq!(current_altstack()?.ss_sp, memory);
            drop(ours);
            assert_ne!(current_altstack()?.ss_flags & libc::SS_DISABLE, 0);
            // SAFETY: std's own alternate stack back, as it was.
            assert_eq!(unsafe { libc::sigaltstack(&std_stack, std::ptr::null_mut()) }, 0);
            Ok(())
        })
        .join()
        .expect("test thread panicked")
    }
}
