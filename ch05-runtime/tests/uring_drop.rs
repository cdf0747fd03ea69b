//! Dropping a future whose operation is in flight: the kernel may still
//! write into its buffer, so the buffer must outlive the drop.
//!
//! Hundreds of reads (and timers, and connects) are dropped at every point
//! of their life: before the driver has pushed them, while the kernel has
//! them and the peer's bytes race the cancel, and after they completed.
//! Each drop is followed by an allocation of the same size, filled with a
//! canary byte: a buffer freed too early would be handed out right there,
//! and the kernel's late write would show in it. At the end every parked
//! buffer must have been freed, every socket closed, and the bytes the
//! dropped reads did not take must still be in the stream, in order.
//!
//! x86-64 only, like the ASan run (one line of assembly asks ASan about
//! a buffer; see `freed_per_asan`).
//!
//! One test in this binary, so that the driver's counts are its own. Run it
//! under AddressSanitizer as well, which checks our side of every buffer
//! (the kernel's writes are invisible to it: that is the canaries' job):
//!
//! ```sh
//! RUSTFLAGS=-Zsanitizer=address cargo +nightly test -p ch05-runtime \
//!     --target x86_64-unknown-linux-gnu --target-dir target/asan --test uring_drop
//! ```

#![cfg(target_arch = "x86_64")]

use std::future::{Future, poll_fn};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ch05_runtime::uring::{self, net::TcpStream};
use ch05_runtime::{Runtime, yield_now};

mod common;
use common::{uring_or_skip, wait_until};

/// Rounds of each kind; below 256, so each round's bytes (its number) are
/// in order in the stream.
const ROUNDS: usize = 80;
/// Each read's buffer, and each canary.
const BUFFER: usize = 64 * 1024;
/// Bytes the peer sends per round.
const CHUNK: usize = 500;
/// What a canary is filled with.
const CANARY: u8 = 0xA5;

/// Polls `future` once (the operation is submitted on its first poll).
async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Yields until `condition` holds (bounded: a broken driver fails the test).
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000_000 {
        if condition() {
            return;
        }
        yield_now().await;
    }
    panic!("gave up waiting until {what}");
}

/// A waker that only notes it was called.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// A waker that, once called, holds the thread that called it until
/// released. Given to a short timer, it holds the driver thread (which
/// calls wakers after each round) so that a test can act while the driver
/// cannot: here, make the kernel complete a RECV whose future was dropped
/// before the driver gets to cancel it.
#[derive(Default)]
struct Gate {
    /// (the driver is inside `wake`, the gate is open)
    state: Mutex<(bool, bool)>,
    /// Signals both changes.
    changed: Condvar,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 = true;
        self.changed.notify_all();
        while !state.1 {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The driver, held inside a `Gate`'s `wake`.
struct Held {
    /// The gate it waits at.
    gate: Arc<Gate>,
    /// The timer whose waker the gate is: completed, not yet taken.
    timer: uring::time::Sleep,
}

impl Gate {
    /// Holds the driver: a 1 ms TIMEOUT with a `Gate` as its waker, then
    /// waits (bounded) until the driver is inside it.
    fn hold_the_driver() -> Held {
        let gate = Arc::new(Gate::default());
        let waker = Waker::from(Arc::clone(&gate));
        let mut timer = uring::time::sleep(Duration::from_millis(1));
        assert!(Pin::new(&mut timer).poll(&mut Context::from_waker(&waker)).is_pending());
        let state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, waited) = gate
            .changed
            .wait_timeout_while(state, Duration::from_secs(20), |state| !state.0)
            .unwrap_or_else(PoisonError::into_inner);
        assert!(!waited.timed_out(), "the driver never called the timer's waker");
        drop(state);
        Held { gate, timer }
    }
}

impl Held {
    /// Lets the driver go on.
    fn release(self) {
        let Held { gate, timer } = self;
        let mut state = gate.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.1 = true;
        gate.changed.notify_all();
        drop(state);
        drop(timer); // done, never taken: its entry goes
    }
}

/// Under AddressSanitizer, whether any byte of `[at, at + len)` is
/// poisoned (freed, or never allocated), asked through ASan's own
/// `__asan_region_is_poisoned`; `None` in a build without ASan. ASan cannot
/// see the kernel's writes, but it can say whether the memory they went to
/// was still allocated.
fn freed_per_asan(at: usize, len: usize) -> Option<bool> {
    let address: usize;
    // SAFETY: loads the function's address from the GOT and touches no
    // other memory. `.weak`: where the ASan runtime is not linked in (a
    // build without `-Zsanitizer=address`), the symbol is undefined and
    // the linker leaves 0 there instead of failing.
    unsafe {
        std::arch::asm!(
            ".weak __asan_region_is_poisoned",
            "mov {address}, qword ptr [rip + __asan_region_is_poisoned@GOTPCREL]",
            address = out(reg) address,
            options(nostack, pure, readonly, preserves_flags),
        );
    }
    if address == 0 {
        return None;
    }
    // SAFETY: a non-zero address is ASan's `void *__asan_region_is_poisoned(
    // void *beg, size_t size)`, which reads ASan's shadow memory, never the
    // region itself; it returns the first poisoned byte, or null.
    let first_poisoned: extern "C" fn(*const u8, usize) -> *const u8 = unsafe { std::mem::transmute(address) };
    Some(!first_poisoned(at as *const u8, len).is_null())
}

/// Bytes received by the kernel for `stream` that nobody has read yet.
fn bytes_waiting(stream: &TcpStream) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `waiting`, which lives across
    // the call; the fd is the stream's, open while it lives.
    let ok = unsafe { libc::ioctl(stream.as_fd().as_raw_fd(), libc::FIONREAD, &raw mut waiting) };
    assert_eq!(ok, 0, "FIONREAD: {}", io::Error::last_os_error());
    waiting as usize
}

/// A connection: ours on the completion driver, and the peer's std end.
async fn connect(listener: &TcpListener) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let ours = TcpStream::connect(listener.local_addr()?).await?;
    let (theirs, _) = listener.accept()?; // the handshake is done: accept returns at once
    theirs.set_read_timeout(Some(Duration::from_secs(20)))?; // a broken test fails, not hangs
    Ok((ours, theirs))
}

#[test]
fn futures_dropped_mid_flight_never_free_what_the_kernel_may_still_write() -> io::Result<()> {
    if !uring_or_skip("drops mid-flight")? {
        return Ok(());
    }
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    // Where the dropped connects go: never accepted, its backlog (128 or
    // more) holds every round's.
    let sink = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let runtime = Runtime::new()?;
    let before = uring::stats();
    let mut canaries: Vec<Vec<u8>> = Vec::new();
    let leftover = runtime.block_on(async {
        let (stream, mut peer) = connect(&listener).await?;
        for round in 0..ROUNDS {
            let bytes = [round as u8; CHUNK];

            // (a) Dropped right after its first poll: usually still queued
            // with the driver, so the kernel never sees it.
            let mut read = Box::pin(stream.read(Vec::with_capacity(BUFFER)));
            let _ = poll_once(read.as_mut()).await;
            drop(read);
            canaries.push(vec![CANARY; BUFFER]);
            peer.write_all(&bytes)?;

            // (b) Dropped while the kernel has it, on a fresh connection
            // with nothing to receive yet. The driver is then held (see
            // `Gate`), so its ASYNC_CANCEL cannot overtake the peer's bytes:
            // the kernel writes them into the buffer of a future that is
            // gone. Only the driver's keeping that buffer makes this safe.
            let (fresh, mut fresh_peer) = connect(&listener).await?;
            let buffer = Vec::with_capacity(BUFFER);
            let at = buffer.as_ptr() as usize; // only an address: never used to reach the memory
            let mut read = Box::pin(fresh.read(buffer));
            assert!(poll_once(read.as_mut()).await.is_pending(), "nothing was sent yet");
            until("the driver pushed the RECV", || uring::stats().queued == 0).await;
            let held = Gate::hold_the_driver();
            drop(read);
            canaries.push(vec![CANARY; BUFFER]);
            fresh_peer.write_all(&bytes)?;
            until("the kernel received the bytes into the dropped read's buffer", || bytes_waiting(&fresh) == 0).await;
            // Under AddressSanitizer: the memory the kernel just wrote must
            // still be allocated (parked with the driver), not freed.
            assert_ne!(freed_per_asan(at, BUFFER), Some(true), "round {round}: the kernel wrote into freed memory");
            held.release();
            drop(fresh); // the socket closes once the dropped RECV has completed
            let mut rest = Vec::new();
            fresh_peer.read_to_end(&mut rest)?; // end of file: closed, not leaked
            assert!(rest.is_empty());

            // (c) Completed before it is dropped: the kernel is done with
            // it, and the bytes it took are lost with it. Under completion
            // I/O, a dropped read may have taken data.
            peer.write_all(&bytes)?;
            let done = Arc::new(Flag::default());
            let waker = Waker::from(Arc::clone(&done));
            let mut read = Box::pin(stream.read(Vec::with_capacity(BUFFER)));
            if read.as_mut().poll(&mut Context::from_waker(&waker)).is_pending() {
                until("the RECV completed", || done.0.load(Ordering::Acquire)).await;
            }
            drop(read);
            canaries.push(vec![CANARY; BUFFER]);

            // A timer and a connect, dropped in flight too.
            let mut nap = Box::pin(uring::time::sleep(Duration::from_secs(3600)));
            let _ = poll_once(nap.as_mut()).await;
            if round % 2 == 0 {
                until("the driver pushed the TIMEOUT", || uring::stats().queued == 0).await;
            }
            drop(nap);
            let mut connecting = Box::pin(TcpStream::connect(sink.local_addr()?));
            let _ = poll_once(connecting.as_mut()).await;
            drop(connecting);
        }
        // Every parked buffer is freed once its completion arrives.
        until("every operation is settled", || {
            let now = uring::stats();
            now.pending == 0 && now.parked == 0
        })
        .await;
        // What the dropped reads did not take is still in the stream.
        peer.shutdown(Shutdown::Write)?;
        let (read, leftover) = stream.read_to_end(Vec::new()).await;
        read?;
        Ok::<_, io::Error>(leftover)
    })?;
    wait_until("nothing is left in the driver", || uring::stats().pending == 0);

    let spent = uring::stats() - before;
    assert!(spent.abandoned >= ROUNDS as u64, "every read of (b) was abandoned in flight: {spent:?}");
    for (i, canary) in canaries.iter().enumerate() {
        let changed = canary.iter().filter(|&&b| b != CANARY).count();
        assert_eq!(changed, 0, "canary {i}: {changed} bytes written after a drop freed their buffer");
    }
    assert!(leftover.len() <= 2 * ROUNDS * CHUNK);
    assert!(leftover.windows(2).all(|pair| pair[0] <= pair[1]), "the stream's bytes are out of order");
    Ok(())
}
