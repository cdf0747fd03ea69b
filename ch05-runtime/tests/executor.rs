//! The executor's promises: outputs and errors through `JoinHandle`, no
//! lost and no double wakeups, never a poll after completion, and a clean
//! shutdown. Every test runs on both executors where it makes sense.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use ch05_runtime::channel::channel;
use ch05_runtime::time::timeout;
use ch05_runtime::{IoDriver, JoinHandle, Runtime, spawn};

mod common;
use common::runtimes;

/// A future that counts its polls and drops, and checks it is never polled
/// after it returned `Ready`. Pending until `release` is set, then ready.
struct Probe {
    polls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
    done: bool,
}

impl Future for Probe {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        assert!(!self.done, "polled after it returned Ready");
        let polls = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.release.load(Ordering::SeqCst) {
            self.done = true;
            Poll::Ready(polls)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Counters {
    polls: Arc<AtomicUsize>,
    drops: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl Counters {
    fn probe(&self) -> Probe {
        Probe {
            polls: Arc::clone(&self.polls),
            drops: Arc::clone(&self.drops),
            release: Arc::clone(&self.release),
            waker: Arc::clone(&self.waker),
            done: false,
        }
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

#[test]
fn join_handles_give_outputs_and_errors() -> io::Result<()> {
    for runtime in runtimes()? {
        let (value, panicked, after) = runtime.block_on(async {
            let value = spawn(async { 6 * 7 }).await;
            let panicked = spawn(async {
                if true {
                    panic!("deliberate panic in a test task");
                }
            })
            .await;
            // The runtime lives on after a task panicked.
            let after = spawn(async { "still running" }).await;
            (value, panicked, after)
        });
        assert_eq!(value.unwrap(), 42);
        let error = panicked.unwrap_err();
        assert!(error.is_panic());
        assert_eq!(error.panic_message(), Some("deliberate panic in a test task"));
        assert!(error.to_string().contains("panicked: deliberate panic"), "{error}");
        assert_eq!(after.unwrap(), "still running");
        assert_eq!(runtime.unfinished_tasks(), 0);
    }
    Ok(())
}

#[test]
fn abort_drops_the_future_and_the_handle_says_so() -> io::Result<()> {
    for runtime in runtimes()? {
        let counters = Counters::default();
        let probe = counters.probe();
        let result = runtime.block_on(async {
            let handle = spawn(probe);
            // Wait (by causality, not time) until the task was polled once.
            poll_fn(|cx| {
                if counters.polls.load(Ordering::SeqCst) > 0 {
                    Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            handle.abort();
            handle.await
        });
        let error = result.unwrap_err();
        assert!(error.is_aborted(), "{error}");
        assert_eq!(counters.drops.load(Ordering::SeqCst), 1, "the aborted future was dropped");
        assert_eq!(counters.polls.load(Ordering::SeqCst), 1, "and never polled again");
    }
    Ok(())
}

#[test]
fn a_finished_task_keeps_its_output_when_aborted_late() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let output = runtime.block_on(async {
        let handle = spawn(async { 7 });
        // Let it finish: a second task that runs after it in FIFO order.
        spawn(async {}).await.unwrap();
        handle.abort();
        handle.await
    });
    assert_eq!(output.unwrap(), 7);
    Ok(())
}

/// An output that counts its drops.
struct Output(Arc<AtomicUsize>);

impl Drop for Output {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_a_join_handle_detaches_the_task_and_its_output_is_dropped() -> io::Result<()> {
    for runtime in runtimes()? {
        let (tx, mut rx) = channel();
        let drops = Arc::new(AtomicUsize::new(0));
        let output = Output(Arc::clone(&drops));
        let got = runtime.block_on(async move {
            drop(spawn(async move {
                tx.send("from a detached task").unwrap();
                output // nobody will read it
            }));
            rx.recv().await
        });
        assert_eq!(got, Some("from a detached task"), "the detached task ran");
        // The task sent, then returned its output: wait (bounded, by
        // causality) until the output is gone.
        let mut spins = 0;
        while drops.load(Ordering::SeqCst) == 0 && spins < 10_000_000 {
            thread::yield_now();
            spins += 1;
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1, "a detached task's output is dropped once it finishes");
    }
    Ok(())
}

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_last_sender_dropped_on_another_thread_wakes_the_receiver() {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    let (tx, mut rx) = channel::<u32>();
    let other = tx.clone();
    assert!(rx.poll_recv(&mut cx).is_pending(), "nothing sent yet: the receiver waits");
    drop(tx);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "one sender is left: no news for the receiver");
    assert!(rx.poll_recv(&mut cx).is_pending());
    // The last one goes, from another thread, without sending: only its
    // drop can tell the waiting receiver that nothing more will come.
    thread::spawn(move || drop(other)).join().unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1, "the last drop woke the receiver");
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
}

#[test]
fn a_wake_while_running_makes_the_task_run_exactly_once_more() -> io::Result<()> {
    for runtime in runtimes()? {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        let output = runtime.block_on(async move {
            spawn(poll_fn(move |cx| {
                match counted.fetch_add(1, Ordering::SeqCst) {
                    // First poll: three wakes while running (one notification).
                    0 => {
                        for _ in 0..3 {
                            cx.waker().wake_by_ref();
                        }
                        // Deliberately by value too: `wake` and `wake_by_ref` are
                        // separate paths through the task's state.
                        #[allow(clippy::waker_clone_wake)]
                        cx.waker().clone().wake();
                        Poll::Pending
                    }
                    // Second poll: the only one those wakes may cause.
                    _ => Poll::Ready("done"),
                }
            }))
            .await
        });
        assert_eq!(output.unwrap(), "done");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
    Ok(())
}

#[test]
fn a_completed_task_is_never_polled_again() -> io::Result<()> {
    for runtime in runtimes()? {
        let counters = Counters::default();
        counters.release.store(true, Ordering::SeqCst);
        let probe = counters.probe();
        let polls = runtime.block_on(async { spawn(probe).await.unwrap() });
        assert_eq!(polls, 1);
        // Stale wakes after completion are ignored (the Probe would panic).
        for _ in 0..5 {
            counters.wake();
        }
        runtime.block_on(async { spawn(async {}).await.unwrap() }); // let the runtime run again
        assert_eq!(counters.polls.load(Ordering::SeqCst), 1);
        assert_eq!(counters.drops.load(Ordering::SeqCst), 1);
    }
    Ok(())
}

/// Many tasks, each woken many times from other OS threads: every task must
/// see every wake it needs (a lost wake would leave it waiting: the bounded
/// wait below turns that into a failure, not a hang).
#[test]
fn no_wake_from_another_thread_is_lost() -> io::Result<()> {
    const TASKS: usize = 64;
    const ROUNDS: usize = 200;
    for runtime in runtimes()? {
        let (done_tx, done_rx) = mpsc::channel();
        let mut wakers_rx = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..TASKS {
            // Each task: ROUNDS times, publish its waker and wait for its
            // counter to move; a helper thread moves it and wakes.
            let (waker_tx, waker_rx) = mpsc::channel::<Waker>();
            let progress = Arc::new(AtomicUsize::new(0));
            wakers_rx.push((waker_rx, Arc::clone(&progress)));
            let done_tx = done_tx.clone();
            handles.push(runtime.spawn(async move {
                for round in 0..ROUNDS {
                    poll_fn(|cx| {
                        if progress.load(Ordering::SeqCst) > round {
                            Poll::Ready(())
                        } else {
                            waker_tx.send(cx.waker().clone()).unwrap();
                            Poll::Pending
                        }
                    })
                    .await;
                }
                done_tx.send(()).unwrap();
            }));
        }
        drop(done_tx);
        let wakers: Vec<_> = wakers_rx
            .into_iter()
            .map(|(waker_rx, progress)| {
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        let Ok(waker) = waker_rx.recv_timeout(Duration::from_secs(60)) else { return };
                        progress.fetch_add(1, Ordering::SeqCst);
                        waker.wake();
                    }
                })
            })
            .collect();
        // A lost wake leaves a task waiting forever: the time limit turns
        // that into a failure instead of a hang.
        let finished = runtime.block_on(timeout(Duration::from_secs(60), async {
            for handle in handles {
                handle.await.unwrap();
            }
        }));
        assert!(finished.is_ok(), "some task was never woken: a lost wake");
        for waker in wakers {
            waker.join().unwrap();
        }
        assert_eq!(done_rx.iter().count(), TASKS);
    }
    Ok(())
}

/// The same from the other side: wakes race with polls on a multi-threaded
/// runtime, where a task may be woken on one thread while it is polled, or
/// while it is finishing its poll, on another. Two kinds of wakes alternate:
///
/// - *during* a poll: the task is `RUNNING`, so the wake may only note
///   `NOTIFIED` and the same worker polls again;
/// - *right after* it: the wake finds the task idle (or still `RUNNING`, by
///   a hair) and queues it, and the other worker may start the next poll
///   while this worker is still returning from `run`: the real race.
///
/// Every poll checks that no other thread is inside the same task; the
/// test also checks that polls did move between the workers, so that the
/// second kind really happened.
#[test]
fn racing_wakes_never_run_a_task_twice_at_once() -> io::Result<()> {
    const POLLS: usize = 2_000;
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let moves = Arc::new(AtomicUsize::new(0));
    let last_thread = Arc::new(Mutex::new(None));
    // The wakes come from this thread, as soon as it gets a waker.
    let (waker_tx, waker_rx) = mpsc::channel::<(Waker, Option<Arc<AtomicBool>>)>();
    let waker_thread = thread::spawn(move || {
        for (waker, woke) in waker_rx {
            waker.wake();
            if let Some(woke) = woke {
                woke.store(true, Ordering::SeqCst);
            }
        }
    });
    let task = {
        let (inside, overlaps, moves, last_thread) =
            (Arc::clone(&inside), Arc::clone(&overlaps), Arc::clone(&moves), Arc::clone(&last_thread));
        let mut polls = 0;
        poll_fn(move |cx| {
            if inside.swap(true, Ordering::SeqCst) {
                // Counted, not asserted: a panic here would end the task
                // while the other thread is still in it.
                overlaps.fetch_add(1, Ordering::SeqCst);
                return Poll::Pending;
            }
            let this = thread::current().id();
            if last_thread.lock().unwrap().replace(this).is_some_and(|last| last != this) {
                moves.fetch_add(1, Ordering::SeqCst);
            }
            polls += 1;
            let done = polls == POLLS;
            if !done {
                if polls % 2 == 0 {
                    // Woken during this poll: wait (bounded) until the wake is done.
                    let woke = Arc::new(AtomicBool::new(false));
                    waker_tx.send((cx.waker().clone(), Some(Arc::clone(&woke)))).unwrap();
                    let mut spins = 0;
                    while !woke.load(Ordering::SeqCst) && spins < 100_000_000 {
                        std::hint::spin_loop();
                        spins += 1;
                    }
                } else {
                    // Woken right after this poll returns (or while it does).
                    waker_tx.send((cx.waker().clone(), None)).unwrap();
                }
            }
            inside.store(false, Ordering::SeqCst);
            if done { Poll::Ready(polls) } else { Poll::Pending }
        })
    };
    let polls = runtime.block_on(timeout(Duration::from_secs(60), runtime.spawn(task)));
    drop(runtime);
    let _ = waker_thread.join();
    let overlaps = overlaps.load(Ordering::SeqCst);
    assert_eq!(overlaps, 0, "two threads polled the same task at once, {overlaps} time(s)");
    assert_eq!(polls.expect("every wake led to a poll").unwrap(), POLLS);
    assert!(moves.load(Ordering::SeqCst) > 0, "the task never moved between the workers: the race was not tried");
    Ok(())
}

#[test]
fn a_dropped_receiver_lets_go_of_its_waker() {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let (tx, mut rx) = channel::<u32>();
    assert!(rx.poll_recv(&mut Context::from_waker(&waker)).is_pending(), "the receiver waits, keeping a clone");
    assert_eq!(Arc::strong_count(&counter), 3, "ours, `waker`, and the receiver's clone");
    drop(rx);
    assert_eq!(Arc::strong_count(&counter), 2, "the receiver's clone went with it, though a sender lives");
    assert!(tx.send(1).is_err(), "and sends fail");
}

#[test]
fn dropping_a_multi_threaded_runtime_on_its_own_worker_shuts_it_down() -> io::Result<()> {
    let runtime = Runtime::builder().worker_threads(2).build()?;
    let counters = Counters::default();
    let waiting = runtime.spawn(counters.probe()); // a task that waits forever
    let holder = Arc::new(Mutex::new(None::<Runtime>));
    let (done_tx, done_rx) = mpsc::channel();
    let dropper = {
        let holder = Arc::clone(&holder);
        async move {
            let runtime = holder.lock().unwrap().take();
            // On a worker of that very runtime: it cannot join itself.
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(runtime)));
            done_tx.send(dropped.is_ok()).unwrap();
        }
    };
    *holder.lock().unwrap() = Some(runtime);
    let runtime_ref = holder.lock().unwrap();
    let handle = runtime_ref.as_ref().expect("just put there").spawn(dropper);
    drop(runtime_ref);
    let dropped_cleanly = done_rx.recv_timeout(Duration::from_secs(60)).expect("the dropping task ran");
    assert!(dropped_cleanly, "dropping the runtime on its own worker panicked");
    assert_eq!(counters.drops.load(Ordering::SeqCst), 1, "the waiting task was dropped by the shutdown");
    let error = ch05_runtime::waker::block_on(waiting).unwrap_err();
    assert!(error.is_shutdown(), "{error}");
    // The task that dropped it was running at the time: it finishes its poll.
    let _ = ch05_runtime::waker::block_on(handle);
    Ok(())
}

#[test]
fn dropping_the_runtime_drops_every_unfinished_task() -> io::Result<()> {
    for runtime in runtimes()? {
        let counters = Counters::default();
        let handles: Vec<JoinHandle<usize>> = (0..10).map(|_| runtime.spawn(counters.probe())).collect();
        // Run them until each is waiting (polled once, pending forever).
        runtime.block_on(async {
            poll_fn(|cx| {
                if counters.polls.load(Ordering::SeqCst) >= 10 {
                    Poll::Ready(())
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await
        });
        assert_eq!(runtime.unfinished_tasks(), 10);
        drop(runtime);
        assert_eq!(counters.drops.load(Ordering::SeqCst), 10, "every pending future was dropped");
        // Their handles report the shutdown (awaited on the smallest executor).
        for handle in handles {
            let error = ch05_runtime::waker::block_on(handle).unwrap_err();
            assert!(error.is_shutdown(), "{error}");
        }
    }
    Ok(())
}

#[test]
fn dropping_the_runtime_drops_tasks_that_never_ran() -> io::Result<()> {
    for runtime in runtimes()? {
        let counters = Counters::default();
        // Dropped at once: the tasks a worker did not reach yet were never
        // polled, so they sit in the run queue and on no list of waiting tasks.
        let handles: Vec<JoinHandle<usize>> = (0..10).map(|_| runtime.spawn(counters.probe())).collect();
        drop(runtime);
        assert_eq!(counters.drops.load(Ordering::SeqCst), 10, "every queued future was dropped");
        for handle in handles {
            let error = ch05_runtime::waker::block_on(handle).unwrap_err();
            assert!(error.is_shutdown(), "{error}");
        }
    }
    Ok(())
}

#[test]
fn nested_block_on_is_refused_with_a_clear_panic() -> io::Result<()> {
    let runtime = Runtime::new()?;
    let inner = Runtime::new()?;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async { inner.block_on(async {}) });
    }));
    let payload = result.unwrap_err();
    let message = payload.downcast_ref::<String>().cloned().or(payload.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(message.unwrap_or_default().contains("already running a runtime"));
    // The runtime is still usable afterwards.
    assert_eq!(runtime.block_on(async { spawn(async { 1 }).await.unwrap() }), 1);
    Ok(())
}

#[test]
fn zero_workers_is_an_error() {
    let error = Runtime::builder().worker_threads(0).build().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn two_threads_cannot_drive_one_single_threaded_runtime_at_once() -> io::Result<()> {
    let runtime = Arc::new(Runtime::new()?);
    let (inside_tx, inside_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = {
        let runtime = Arc::clone(&runtime);
        thread::spawn(move || {
            runtime.block_on(async move {
                inside_tx.send(()).unwrap();
                // Hold block_on until the other thread has tried (a blocking
                // wait inside a future: fine here, there is nothing else to run).
                release_rx.recv().unwrap();
            })
        })
    };
    inside_rx.recv().unwrap();
    let second = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(async {})));
    release_tx.send(()).unwrap();
    first.join().unwrap();
    let payload = second.unwrap_err();
    let message = payload.downcast_ref::<&str>().map(|s| s.to_string()).or(payload.downcast_ref::<String>().cloned());
    assert!(message.unwrap_or_default().contains("from two threads at once"));
    // Once the first is done, the runtime works from any thread.
    assert_eq!(runtime.block_on(async { spawn(async { 2 }).await.unwrap() }), 2);
    Ok(())
}

#[test]
fn the_executor_thread_driver_is_for_single_threaded_runtimes() {
    let error = Runtime::builder().worker_threads(2).io_driver(IoDriver::ExecutorThread).build().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}
