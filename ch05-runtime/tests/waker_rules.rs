//! The waker rules every leaf future of this crate keeps, checked on each:
//!
//! - a future keeps the waker of its **latest** poll, and lets go of the
//!   one before (the task that polls it may change between polls: a
//!   `JoinHandle` handed to another task, a future moved between tasks);
//! - polling again with a waker that `will_wake` the stored one (the same
//!   task, the common case) clones nothing;
//! - the wake may come from another thread (the reactor's), which is why a
//!   `Waker` must be `Send + Sync`.
//!
//! A counting waker shows all three: it counts its clones, drops and wakes,
//! and notes the thread of each wake.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::thread::{self, ThreadId};
use std::time::Duration;

use ch05_runtime::Runtime;
use ch05_runtime::channel::channel;
use ch05_runtime::net::{TcpListener, TcpStream};
use ch05_runtime::time::sleep;

/// What was done to one waker (and all its clones). Lives in a `static`,
/// so the waker's data pointer is valid forever and nothing is freed.
struct Counts {
    /// `clone` calls: each made a copy that someone now holds.
    clones: AtomicUsize,
    /// `drop` calls, and `wake` (which consumes a copy).
    drops: AtomicUsize,
    /// The thread of each wake, in order.
    woken_on: Mutex<Vec<ThreadId>>,
    /// Signalled at each wake.
    woken: Condvar,
}

impl Counts {
    const fn new() -> Counts {
        Counts {
            clones: AtomicUsize::new(0),
            drops: AtomicUsize::new(0),
            woken_on: Mutex::new(Vec::new()),
            woken: Condvar::new(),
        }
    }

    /// A waker whose every clone reports here.
    fn waker(&'static self) -> Waker {
        // SAFETY: the data pointer is a `&'static Counts`, valid forever and
        // `Sync` (atomics and a mutex), so it may be used from any thread;
        // the vtable's functions only count, and free nothing.
        unsafe { Waker::from_raw(RawWaker::new(std::ptr::from_ref(self).cast(), &VTABLE)) }
    }

    /// How many copies of this waker others hold (clones not yet dropped).
    fn held_elsewhere(&self) -> usize {
        self.clones.load(Ordering::SeqCst) - self.drops.load(Ordering::SeqCst)
    }

    fn clones(&self) -> usize {
        self.clones.load(Ordering::SeqCst)
    }

    fn wakes(&self) -> Vec<ThreadId> {
        self.woken_on.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits for the first wake (a guard of 60 s turns a lost wake into a
    /// failure instead of a hang) and returns the thread it came from.
    fn wait_for_wake(&self) -> ThreadId {
        let woken_on = self.woken_on.lock().unwrap_or_else(PoisonError::into_inner);
        let (woken_on, _) = self
            .woken
            .wait_timeout_while(woken_on, Duration::from_secs(60), |woken_on| woken_on.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        *woken_on.first().expect("no wake within 60 s: the wake was lost")
    }

    fn woke(&self) {
        self.woken_on.lock().unwrap_or_else(PoisonError::into_inner).push(thread::current().id());
        self.woken.notify_all();
    }
}

/// The `Counts` a waker's data pointer stands for.
fn counts(data: *const ()) -> &'static Counts {
    // SAFETY: every waker with `VTABLE` was made by `Counts::waker`, whose
    // data pointer is a `&'static Counts`.
    unsafe { &*data.cast::<Counts>() }
}

fn clone_waker(data: *const ()) -> RawWaker {
    counts(data).clones.fetch_add(1, Ordering::SeqCst);
    RawWaker::new(data, &VTABLE)
}

fn wake(data: *const ()) {
    counts(data).woke();
    counts(data).drops.fetch_add(1, Ordering::SeqCst); // `wake` consumes its copy
}

fn wake_by_ref(data: *const ()) {
    counts(data).woke();
}

fn drop_waker(data: *const ()) {
    counts(data).drops.fetch_add(1, Ordering::SeqCst);
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_waker, wake, wake_by_ref, drop_waker);

/// Polls `future` once with `waker`; it must wait.
fn poll_pending<F: Future + ?Sized>(future: Pin<&mut F>, waker: &Waker) {
    let polled = future.poll(&mut Context::from_waker(waker));
    assert!(polled.is_pending(), "the future was expected to wait");
}

/// The three steps every test below takes with its future: two polls by
/// the same task (`old`), then one by another (`new`).
fn poll_old_twice_then_new<F: Future + ?Sized>(mut future: Pin<&mut F>, old: &'static Counts, new: &'static Counts) {
    let (old_waker, new_waker) = (old.waker(), new.waker());
    poll_pending(future.as_mut(), &old_waker);
    assert_eq!(old.held_elsewhere(), 1, "the first poll keeps a copy of its waker");
    poll_pending(future.as_mut(), &old_waker);
    assert_eq!(old.clones(), 1, "a poll with a waker that will_wake the stored one clones nothing");
    poll_pending(future.as_mut(), &new_waker);
    assert_eq!(old.held_elsewhere(), 0, "a poll with another waker lets go of the old one");
    assert_eq!(new.held_elsewhere(), 1, "... and keeps the new one");
}

#[test]
fn a_channel_receiver_keeps_the_waker_of_its_latest_poll() {
    static OLD: Counts = Counts::new();
    static NEW: Counts = Counts::new();
    let (tx, mut rx) = channel::<u32>();
    let mut recv = pin!(rx.recv());
    poll_old_twice_then_new(recv.as_mut(), &OLD, &NEW);
    tx.send(7).expect("the receiver is alive");
    assert_eq!(NEW.wakes(), [thread::current().id()], "send wakes the latest waker, on the sender's thread");
    assert!(OLD.wakes().is_empty());
    let woken = recv.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert_eq!(woken, Poll::Ready(Some(7)));
}

#[test]
fn a_join_handle_keeps_the_waker_of_its_latest_poll() -> io::Result<()> {
    static OLD: Counts = Counts::new();
    static NEW: Counts = Counts::new();
    // Two workers run the task in the background while this thread polls
    // its handle by hand, as another task would.
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let (tx, mut rx) = channel::<u32>();
    let handle = runtime.spawn(async move { rx.recv().await });
    let mut handle = pin!(handle);
    poll_old_twice_then_new(handle.as_mut(), &OLD, &NEW);
    tx.send(7).expect("the task is alive");
    assert_ne!(NEW.wait_for_wake(), thread::current().id(), "the worker that finished the task woke it");
    assert!(OLD.wakes().is_empty());
    let joined = handle.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(joined, Poll::Ready(Ok(Some(7)))), "{joined:?}");
    Ok(())
}

#[test]
fn a_sleep_keeps_the_waker_of_its_latest_poll() {
    static OLD: Counts = Counts::new();
    static NEW: Counts = Counts::new();
    let mut sleeping = pin!(sleep(Duration::from_millis(20)));
    poll_old_twice_then_new(sleeping.as_mut(), &OLD, &NEW);
    assert_ne!(NEW.wait_for_wake(), thread::current().id(), "the reactor's thread fired the timer");
    assert!(OLD.wakes().is_empty());
    assert!(sleeping.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready());
}

#[test]
fn a_socket_read_keeps_the_waker_of_its_latest_poll() -> io::Result<()> {
    static OLD: Counts = Counts::new();
    static NEW: Counts = Counts::new();
    let runtime = Runtime::new()?;
    let (mut reader, mut writer) = runtime.block_on(async {
        let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let connecting = TcpStream::connect(listener.local_addr()?).await?;
        let (accepted, _) = listener.accept().await?;
        Ok::<_, io::Error>((connecting, accepted))
    })?;
    let mut buf = [0u8; 16];
    {
        let mut read = pin!(reader.read(&mut buf));
        poll_old_twice_then_new(read.as_mut(), &OLD, &NEW);
        runtime.block_on(writer.write_all(b"hello"))?;
        assert_ne!(NEW.wait_for_wake(), thread::current().id(), "the reactor's thread saw the bytes");
        assert!(OLD.wakes().is_empty());
        let read = read.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(read, Poll::Ready(Ok(5))), "{read:?}");
    }
    assert_eq!(&buf[..5], b"hello");
    Ok(())
}
