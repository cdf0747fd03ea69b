//! Microbenchmarks, side by side in one process: the cost of one switch or
//! yield, of one ping-pong between two tasks, of spawning and finishing one
//! task. Every contender does the same work, defined as in chapter 5's
//! bench (`ch05-runtime/src/bench.rs`):
//!
//! - **round trip**: control leaves the running task and comes back. For
//!   threads (ch01) it is two hand-overs between two threads on one CPU; for
//!   fibers (ch02, corosensei) two context switches; for an executor it is
//!   one [`YieldNow`]: the task wakes itself and returns `Pending`, the
//!   executor queues it and polls it again (one wake + one poll).
//! - **ping-pong**: two tasks send a number back and forth over two channels
//!   (each executor with its own kind of channel); per round trip.
//! - **spawn + complete**: from inside the executor, spawn N tasks that each
//!   count down one shared counter; the last one tells the waiting future
//!   through a channel. Per task. For threads and fibers: spawn one empty one
//!   and join it.
//!
//! Memory per idle task is measured in fresh processes ([`sleeps`]), and so
//! are the executors' spawns (`bench-run spawns`, in `run.rs`): a million
//! tasks fill the heap, and the next contender would inherit it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ch02_green_threads::{Config, Switch};

// ANCHOR: yield_now
/// Returns `Pending` once, after waking its own task: the smallest possible
/// trip through a scheduler (wake, queue, poll). The same future for every
/// executor, so they all do the same work.
pub struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
// ANCHOR_END: yield_now

/// The future one task runs for the round-trip benchmark: `n` yields.
async fn yields(n: usize) {
    for _ in 0..n {
        YieldNow(false).await;
    }
}

/// Who measures what, in the tables' order.
pub const ROUND_TRIP: [&str; 10] = [
    "ch01 OS threads (1 CPU)",
    "ch02 fibers, teaching switch",
    "ch02 fibers, inline switch",
    "ch02 fibers, inline + control words",
    "corosensei",
    "ch05 runtime, 1 thread",
    "tokio current_thread",
    "smol async-executor",
    "futures LocalPool",
    "ch05 runtime, 2 workers",
];

/// Total time of `n` round trips by `who` (one of [`ROUND_TRIP`]).
pub fn round_trip(who: &str, n: usize) -> io::Result<Duration> {
    let fibers =
        |switch| ch02_green_threads::measure::yield_round_trips::<false>(Config::switching_with(switch), n as u32);
    match who {
        "ch01 OS threads (1 CPU)" => Ok(ch01_os_threads::measure::ping_pong(n, true)? * 2 * n as u32),
        "ch02 fibers, teaching switch" => fibers(Switch::Call),
        "ch02 fibers, inline switch" => fibers(Switch::INLINE),
        "ch02 fibers, inline + control words" => fibers(Switch::Inline { save_float_control: true }),
        "corosensei" => Ok(corosensei_round_trips(n)),
        "ch05 runtime, 1 thread" => {
            ch05_timed(ch05_runtime::Runtime::new()?, async move { ch05_task(yields(n)).await })
        }
        "ch05 runtime, 2 workers" => {
            let runtime = ch05_runtime::Runtime::builder().worker_threads(2).build()?;
            ch05_timed(runtime, async move { ch05_task(yields(n)).await })
        }
        "tokio current_thread" => tokio_timed(async move { tokio::spawn(yields(n)).await.map_err(io::Error::other) }),
        "smol async-executor" => smol_timed(|executor| async move { executor.spawn(yields(n)).await }),
        "futures LocalPool" => local_pool_timed(|spawner| async move { local(&spawner, yields(n)).await }),
        other => Err(unknown(other)),
    }
}

/// corosensei's round trip: resume a coroutine that suspends at once.
fn corosensei_round_trips(n: usize) -> Duration {
    let mut coroutine = corosensei::Coroutine::<(), (), ()>::new(|yielder, ()| {
        loop {
            yielder.suspend(());
        }
    });
    let started = Instant::now();
    for _ in 0..n {
        let _ = coroutine.resume(());
    }
    started.elapsed()
    // Dropping the suspended coroutine unwinds its stack (corosensei's `unwind` feature).
}

/// Who takes part in ping-pong and spawn + complete among the executors.
pub const EXECUTORS: [&str; 4] =
    ["ch05 runtime, 1 thread", "tokio current_thread", "smol async-executor", "futures LocalPool"];

/// Chapter 5's and tokio's `spawn` and unbounded channels have the same
/// shape (`send` returns at once, `recv().await` gives an `Option`, a
/// `JoinHandle` gives a `Result`), so one text serves both: the same work,
/// line for line. The other executors' APIs differ and get their own.
macro_rules! ping_pong_on {
    ($spawn:path, $channel:path, $n:expr) => {
        async move {
            let (to_b, mut b_gets) = $channel();
            let (to_a, mut a_gets) = $channel();
            let b = $spawn(async move {
                while let Some(ball) = b_gets.recv().await {
                    let _ = to_a.send(ball);
                }
            });
            for ball in 0..$n {
                let _ = to_b.send(ball);
                a_gets.recv().await;
            }
            drop(to_b);
            b.await.map_err(|e| io::Error::other(e.to_string()))
        }
    };
}

/// [`spawn_complete`] for chapter 5 and tokio, as [`ping_pong_on`]: `n`
/// tasks each count `left` down, and the one for which `last` says so tells
/// the waiting future.
macro_rules! spawn_complete_on {
    ($spawn:path, $channel:path, $n:expr, $left:expr, $last:expr) => {
        async move {
            let (left, (done, mut all_done)) = ($left, $channel());
            for _ in 0..$n {
                let (left, done) = (Arc::clone(&left), done.clone());
                drop($spawn(async move {
                    if $last(&left) {
                        let _ = done.send(());
                    }
                }));
            }
            all_done.recv().await;
            Ok(())
        }
    };
}

/// Total time of `n` ping-pong round trips between two tasks on `who`.
pub fn ping_pong(who: &str, n: usize) -> io::Result<Duration> {
    match who {
        "ch05 runtime, 1 thread" => ch05_timed(
            ch05_runtime::Runtime::new()?,
            ping_pong_on!(ch05_runtime::spawn, ch05_runtime::channel::channel, n),
        ),
        "tokio current_thread" => tokio_timed(ping_pong_on!(tokio::spawn, tokio::sync::mpsc::unbounded_channel, n)),
        "smol async-executor" => smol_timed(|executor| async move {
            let (to_b, b_gets) = async_channel::unbounded::<usize>();
            let (to_a, a_gets) = async_channel::unbounded::<usize>();
            let b = executor.spawn(async move {
                while let Ok(ball) = b_gets.recv().await {
                    let _ = to_a.send(ball).await;
                }
            });
            for ball in 0..n {
                let _ = to_b.send(ball).await;
                let _ = a_gets.recv().await;
            }
            drop(to_b);
            b.await
        }),
        "futures LocalPool" => local_pool_timed(|spawner| async move {
            use futures::StreamExt;
            let (to_b, mut b_gets) = futures::channel::mpsc::unbounded::<usize>();
            let (to_a, mut a_gets) = futures::channel::mpsc::unbounded::<usize>();
            let b = local(&spawner, async move {
                while let Some(ball) = b_gets.next().await {
                    let _ = to_a.unbounded_send(ball);
                }
            });
            for ball in 0..n {
                let _ = to_b.unbounded_send(ball);
                a_gets.next().await;
            }
            drop(to_b);
            b.await
        }),
        other => Err(unknown(other)),
    }
}

/// Total time to spawn and complete `n` tasks on `who` (see the module docs).
pub fn spawn_complete(who: &str, n: usize) -> io::Result<Duration> {
    let counter = || Arc::new(AtomicUsize::new(n));
    // Each task counts down; the one that reaches zero says so.
    let last = |left: &AtomicUsize| left.fetch_sub(1, Ordering::AcqRel) == 1;
    match who {
        "ch05 runtime, 1 thread" => ch05_timed(
            ch05_runtime::Runtime::new()?,
            spawn_complete_on!(ch05_runtime::spawn, ch05_runtime::channel::channel, n, counter(), last),
        ),
        "tokio current_thread" => {
            tokio_timed(spawn_complete_on!(tokio::spawn, tokio::sync::mpsc::unbounded_channel, n, counter(), last))
        }
        "smol async-executor" => smol_timed(|executor| async move {
            let (left, (done, all_done)) = (counter(), async_channel::unbounded::<()>());
            for _ in 0..n {
                let (left, done) = (Arc::clone(&left), done.clone());
                executor
                    .spawn(async move {
                        if last(&left) {
                            let _ = done.send(()).await;
                        }
                    })
                    .detach();
            }
            let _ = all_done.recv().await;
        }),
        "futures LocalPool" => local_pool_timed(|spawner| async move {
            use futures::StreamExt;
            use futures::task::LocalSpawnExt;
            let (left, (done, mut all_done)) = (counter(), futures::channel::mpsc::unbounded::<()>());
            for _ in 0..n {
                let (left, done) = (Arc::clone(&left), done.clone());
                let _ = spawner.spawn_local(async move {
                    if last(&left) {
                        let _ = done.unbounded_send(());
                    }
                });
            }
            all_done.next().await;
        }),
        other => Err(unknown(other)),
    }
}

/// A chapter 5 task running `future`, awaited.
async fn ch05_task(future: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    ch05_runtime::spawn(future).await.map_err(|e| io::Error::other(e.to_string()))
}

/// A LocalPool task running `future`; the handle completes with it.
fn local<F: Future<Output = ()> + 'static>(
    spawner: &futures::executor::LocalSpawner,
    future: F,
) -> impl Future<Output = ()> + use<F> {
    use futures::task::LocalSpawnExt;
    let handle = spawner.spawn_local_with_handle(future);
    async move {
        if let Ok(handle) = handle {
            handle.await;
        }
    }
}

/// Runs `work` on `runtime` (built before the clock starts) and times it.
fn ch05_timed(runtime: ch05_runtime::Runtime, work: impl Future<Output = io::Result<()>>) -> io::Result<Duration> {
    let started = Instant::now();
    runtime.block_on(work)?;
    Ok(started.elapsed())
}

/// Runs `work` on a fresh tokio current_thread runtime and times it.
fn tokio_timed(work: impl Future<Output = io::Result<()>>) -> io::Result<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    runtime.block_on(work)?;
    Ok(started.elapsed())
}

/// Runs the future `work` makes on a fresh async-executor, driven by this
/// thread, and times it.
fn smol_timed<F, W>(work: W) -> io::Result<Duration>
where
    W: FnOnce(Arc<async_executor::Executor<'static>>) -> F,
    F: Future<Output = ()>,
{
    let executor = Arc::new(async_executor::Executor::new());
    let future = work(Arc::clone(&executor));
    let started = Instant::now();
    futures_lite::future::block_on(executor.run(future));
    Ok(started.elapsed())
}

/// Runs the future `work` makes on a fresh LocalPool and times it.
fn local_pool_timed<F, W>(work: W) -> io::Result<Duration>
where
    W: FnOnce(futures::executor::LocalSpawner) -> F,
    F: Future<Output = ()>,
{
    let mut pool = futures::executor::LocalPool::new();
    let future = work(pool.spawner());
    let started = Instant::now();
    pool.run_until(future);
    Ok(started.elapsed())
}

fn unknown(who: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("no such contender {who:?}"))
}

/// The runtimes whose idle tasks are measured: `n` tasks each sleeping the
/// same delay, in a fresh process (`bench-run sleeps ...`).
pub const SLEEPERS: [(&str, &str); 6] = [
    ("ch05-1", "ch05 runtime, 1 thread"),
    ("ch05-own", "ch05 runtime, 1 thread, own reactor"),
    ("ch05-2", "ch05 runtime, 2 workers"),
    ("tokio-1", "tokio current_thread"),
    ("tokio-2", "tokio multi_thread, 2 workers"),
    ("smol", "smol async-executor"),
];

/// `n` tasks, each sleeping `delay`, all at once, on `who` (an id of
/// [`SLEEPERS`]); returns how many finished. As in chapter 5's bench.
pub fn sleeps(who: &str, n: usize, delay: Duration) -> io::Result<usize> {
    match who {
        "ch05-1" | "ch05-own" | "ch05-2" => {
            let runtime = match who {
                "ch05-1" => ch05_runtime::Runtime::new()?,
                "ch05-own" => {
                    ch05_runtime::Runtime::builder().io_driver(ch05_runtime::IoDriver::ExecutorThread).build()?
                }
                _ => ch05_runtime::Runtime::builder().worker_threads(2).build()?,
            };
            Ok(runtime.block_on(async move {
                let tasks: Vec<_> = (0..n).map(|_| ch05_runtime::spawn(ch05_runtime::time::sleep(delay))).collect();
                let mut finished = 0;
                for task in tasks {
                    finished += usize::from(task.await.is_ok());
                }
                finished
            }))
        }
        "tokio-1" | "tokio-2" => {
            let runtime = match who {
                "tokio-1" => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
                _ => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?,
            };
            Ok(runtime.block_on(async move {
                let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(tokio::time::sleep(delay))).collect();
                let mut finished = 0;
                for task in tasks {
                    finished += usize::from(task.await.is_ok());
                }
                finished
            }))
        }
        "smol" => {
            let executor = async_executor::LocalExecutor::new();
            Ok(async_io::block_on(executor.run(async {
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        executor.spawn(async move {
                            async_io::Timer::after(delay).await;
                        })
                    })
                    .collect();
                let mut finished = 0;
                for task in tasks {
                    task.await;
                    finished += 1;
                }
                finished
            })))
        }
        other => Err(unknown(other)),
    }
}
