//! Microbenchmarks, side by side: the cost of one switch or yield, of one
//! ping-pong between two tasks, of spawning and finishing one task. Every
//! contender does the same work, defined as in chapter 5's bench
//! (`ch05-runtime/src/bench.rs`):
//!
//! - **round trip**: control leaves the running task and comes back. For
//!   threads (ch01) it is two hand-overs between two threads on one CPU; for
//!   fibers (ch02, corosensei) two context switches; for an executor it is
//!   one [`YieldNow`] in a spawned task: the task wakes itself and returns
//!   `Pending`, the executor queues it and polls it again (one wake + one
//!   poll).
//! - **ping-pong**: two spawned tasks send a number back and forth over two
//!   channels (each executor with its own kind of channel), while the future
//!   given to `block_on` only awaits the end; per round trip. The variant
//!   **from block_on** plays the ping side in the `block_on` future itself,
//!   which measures how the runtime wakes that future, a different path in
//!   every runtime (see the Showdown page).
//! - **spawn + complete**: spawn N tasks that each count down one shared
//!   counter; the last one tells the waiting future through a channel. Per
//!   task. For threads and fibers: spawn one empty one and join it.
//!
//! Every runtime is set up as its users would: tokio with `enable_all` (so
//! its scheduler polls its I/O and timer driver every `event_interval` = 61
//! ticks), smol's executors run by `async_io::block_on` (what `smol::block_on`
//! is; it polls async-io's reactor whenever the executor's future returns
//! `Pending`, which `Executor::run` does at least every 200 tasks).
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

// The contenders' names, as the tables print them. One place, so that a
// row, a target and a sentence on the page always name the same thing.

/// Chapter 1's OS threads, pinned to one CPU for the hand-over rows.
pub const CH01: &str = "ch01 OS threads (1 CPU)";
/// Chapter 2's fibers with the switch the chapter teaches.
pub const CH02: &str = "ch02 fibers, teaching switch";
/// Chapter 5's single-threaded runtime, with the process's reactor thread.
pub const CH05: &str = "ch05 runtime, 1 thread";
/// The same, driving its own reactor (`IoDriver::ExecutorThread`).
pub const CH05_OWN: &str = "ch05 runtime, 1 thread, own reactor";
/// Chapter 5's multi-threaded runtime.
pub const CH05_MULTI: &str = "ch05 runtime, 2 workers";
/// tokio's single-threaded runtime.
pub const TOKIO: &str = "tokio current_thread";
/// tokio's work-stealing runtime.
pub const TOKIO_MULTI: &str = "tokio multi_thread, 2 workers";
/// async-executor's `Executor` (its tasks must be `Send`), run on one thread.
pub const SMOL: &str = "smol Executor";
/// async-executor's `LocalExecutor` (tasks may hold `Rc`), run on one thread.
pub const SMOL_LOCAL: &str = "smol LocalExecutor";
/// futures' `LocalPool`.
pub const LOCAL_POOL: &str = "futures LocalPool";

/// Runs the future `$work` makes on a fresh executor (built before the
/// clock starts), on this thread, as `smol::block_on(executor.run(...))`
/// does; evaluates to its time. `$executor` names the executor inside
/// `$work` (a borrow: the spawned futures own what they use).
macro_rules! smol_timed {
    ($new:expr, |$executor:ident| $work:expr) => {{
        let owned = $new;
        let $executor = &owned;
        let future = $work;
        let started = Instant::now();
        async_io::block_on(owned.run(future));
        started.elapsed()
    }};
}

/// [`smol_timed`] on the executor `$who` names ([`SMOL`] or [`SMOL_LOCAL`]):
/// the same text for both, which is the point (async-executor's
/// `LocalExecutor` is its `Executor` that also accepts futures that are not
/// `Send`).
macro_rules! on_smol {
    ($who:expr, |$executor:ident| $work:expr) => {
        match $who {
            SMOL => Ok(smol_timed!(async_executor::Executor::new(), |$executor| $work)),
            _ => Ok(smol_timed!(async_executor::LocalExecutor::new(), |$executor| $work)),
        }
    };
}

// ANCHOR: yield_now
/// Returns `Pending` once, after waking its own task: the smallest possible
/// trip through a scheduler (wake, queue, poll). The same future for every
/// executor, so they all do the same work.
pub struct YieldNow(bool);

impl YieldNow {
    /// A future that yields once.
    pub fn new() -> YieldNow {
        YieldNow(false)
    }
}

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
        YieldNow::new().await;
    }
}

/// Who measures the round trip, in the tables' order.
pub const ROUND_TRIP: [&str; 12] = [
    CH01,
    CH02,
    "ch02 fibers, inline switch",
    "ch02 fibers, inline + control words",
    "corosensei",
    CH05,
    CH05_MULTI,
    TOKIO,
    TOKIO_MULTI,
    SMOL,
    SMOL_LOCAL,
    LOCAL_POOL,
];

/// Total time of `n` round trips by `who` (one of [`ROUND_TRIP`]).
pub fn round_trip(who: &str, n: usize) -> io::Result<Duration> {
    let fibers =
        |switch| ch02_green_threads::measure::yield_round_trips::<false>(Config::switching_with(switch), n as u32);
    match who {
        CH01 => Ok(ch01_os_threads::measure::ping_pong(n, true)? * 2 * n as u32),
        CH02 => fibers(Switch::Call),
        "ch02 fibers, inline switch" => fibers(Switch::INLINE),
        "ch02 fibers, inline + control words" => fibers(Switch::Inline { save_float_control: true }),
        "corosensei" => Ok(corosensei_round_trips(n)),
        CH05 | CH05_MULTI => ch05_timed(ch05_runtime(who)?, async move { ch05_task(yields(n)).await }),
        TOKIO | TOKIO_MULTI => {
            tokio_timed(tokio_runtime(who)?, async move { tokio::spawn(yields(n)).await.map_err(io::Error::other) })
        }
        SMOL | SMOL_LOCAL => on_smol!(who, |executor| async move { executor.spawn(yields(n)).await }),
        LOCAL_POOL => local_pool_timed(|spawner| async move { local(&spawner, yields(n)).await }),
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

/// Who plays ping-pong between two spawned tasks, in the tables' order.
pub const PING_PONG: [&str; 7] = [CH05, CH05_MULTI, TOKIO, TOKIO_MULTI, SMOL, SMOL_LOCAL, LOCAL_POOL];

/// Who plays ping-pong from the `block_on` future: the single-threaded
/// executors, where that future runs on the same thread as the tasks.
pub const PING_PONG_FROM_BLOCK_ON: [&str; 5] = [CH05, TOKIO, SMOL, SMOL_LOCAL, LOCAL_POOL];

/// Who spawns and completes tasks, in the tables' order (threads and fibers
/// are measured apart, in `run.rs`).
pub const SPAWNERS: [&str; 7] = PING_PONG;

/// Where the ping side of ping-pong runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// In a spawned task, like the pong side: task-to-task ping-pong.
    InTask,
    /// In the future given to `block_on`.
    FromBlockOn,
}

impl Ping {
    /// The word on `bench-run`'s command line.
    pub fn id(self) -> &'static str {
        match self {
            Ping::InTask => "tasks",
            Ping::FromBlockOn => "block_on",
        }
    }

    /// Reads back [`id`](Self::id).
    pub fn from_id(id: &str) -> io::Result<Ping> {
        match id {
            "tasks" => Ok(Ping::InTask),
            "block_on" => Ok(Ping::FromBlockOn),
            other => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no ping-pong variant {other:?}"))),
        }
    }
}

/// Chapter 5's and tokio's `spawn` and unbounded channels have the same
/// shape (`send` returns at once, `recv().await` gives an `Option`, a
/// `JoinHandle` gives a `Result`), so one text serves both: the same work,
/// line for line. The other executors' APIs differ and get their own.
/// `$ping` is a closure that runs the ping side where the variant says.
macro_rules! ping_pong_on {
    ($spawn:path, $channel:path, $n:expr, $ping:expr) => {
        async move {
            let (to_b, mut b_gets) = $channel();
            let (to_a, mut a_gets) = $channel();
            let pong = $spawn(async move {
                while let Some(ball) = b_gets.recv().await {
                    let _ = to_a.send(ball);
                }
            });
            let ping_side = async move {
                for ball in 0..$n {
                    let _ = to_b.send(ball);
                    a_gets.recv().await;
                }
                // `to_b` drops here: the pong side sees the end and finishes.
            };
            match $ping {
                Ping::InTask => $spawn(ping_side).await.map_err(|e| io::Error::other(e.to_string()))?,
                Ping::FromBlockOn => ping_side.await,
            }
            pong.await.map_err(|e| io::Error::other(e.to_string()))
        }
    };
}

/// Total time of `n` ping-pong round trips on `who`, the ping side where
/// `ping` says.
pub fn ping_pong(who: &str, ping: Ping, n: usize) -> io::Result<Duration> {
    if ping == Ping::FromBlockOn && !PING_PONG_FROM_BLOCK_ON.contains(&who) {
        return Err(unknown(who));
    }
    match who {
        CH05 | CH05_MULTI => {
            ch05_timed(ch05_runtime(who)?, ping_pong_on!(ch05_runtime::spawn, ch05_runtime::channel::channel, n, ping))
        }
        TOKIO | TOKIO_MULTI => {
            tokio_timed(tokio_runtime(who)?, ping_pong_on!(tokio::spawn, tokio::sync::mpsc::unbounded_channel, n, ping))
        }
        SMOL | SMOL_LOCAL => on_smol!(who, |executor| async move {
            let (to_b, b_gets) = async_channel::unbounded::<usize>();
            let (to_a, a_gets) = async_channel::unbounded::<usize>();
            let pong = executor.spawn(async move {
                while let Ok(ball) = b_gets.recv().await {
                    let _ = to_a.send(ball).await;
                }
            });
            let ping_side = async move {
                for ball in 0..n {
                    let _ = to_b.send(ball).await;
                    let _ = a_gets.recv().await;
                }
            };
            match ping {
                Ping::InTask => executor.spawn(ping_side).await,
                Ping::FromBlockOn => ping_side.await,
            }
            pong.await
        }),
        LOCAL_POOL => local_pool_timed(|spawner| async move {
            use futures::StreamExt;
            let (to_b, mut b_gets) = futures::channel::mpsc::unbounded::<usize>();
            let (to_a, mut a_gets) = futures::channel::mpsc::unbounded::<usize>();
            let pong = local(&spawner, async move {
                while let Some(ball) = b_gets.next().await {
                    let _ = to_a.unbounded_send(ball);
                }
            });
            let ping_side = async move {
                for ball in 0..n {
                    let _ = to_b.unbounded_send(ball);
                    a_gets.next().await;
                }
            };
            match ping {
                Ping::InTask => local(&spawner, ping_side).await,
                Ping::FromBlockOn => ping_side.await,
            }
            pong.await
        }),
        other => Err(unknown(other)),
    }
}

/// [`spawn_complete`] for chapter 5 and tokio, as [`ping_pong_on`]: a task
/// spawns `n` tasks that each count `left` down, and the one for which
/// `last` says so tells the spawner. The spawner is a task, so that on the
/// multi-threaded runtimes the spawns come from a worker, as a server's
/// accept loop would make them.
macro_rules! spawn_complete_on {
    ($spawn:path, $channel:path, $n:expr, $left:expr, $last:expr) => {
        async move {
            let (left, (done, mut all_done)) = ($left, $channel());
            let spawner = $spawn(async move {
                for _ in 0..$n {
                    let (left, done) = (Arc::clone(&left), done.clone());
                    drop($spawn(async move {
                        if $last(&left) {
                            let _ = done.send(());
                        }
                    }));
                }
                all_done.recv().await;
            });
            spawner.await.map_err(|e| io::Error::other(e.to_string()))
        }
    };
}

/// Total time to spawn and complete `n` tasks on `who` (see the module docs).
pub fn spawn_complete(who: &str, n: usize) -> io::Result<Duration> {
    let counter = || Arc::new(AtomicUsize::new(n));
    // Each task counts down; the one that reaches zero says so.
    let last = |left: &AtomicUsize| left.fetch_sub(1, Ordering::AcqRel) == 1;
    match who {
        CH05 | CH05_MULTI => ch05_timed(
            ch05_runtime(who)?,
            spawn_complete_on!(ch05_runtime::spawn, ch05_runtime::channel::channel, n, counter(), last),
        ),
        TOKIO | TOKIO_MULTI => tokio_timed(
            tokio_runtime(who)?,
            spawn_complete_on!(tokio::spawn, tokio::sync::mpsc::unbounded_channel, n, counter(), last),
        ),
        // The spawner is the future given to `block_on`: on a single-threaded
        // executor it runs on the tasks' thread, and its spawns go to the
        // same queue as a task's would.
        SMOL | SMOL_LOCAL => on_smol!(who, |executor| async move {
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
        LOCAL_POOL => local_pool_timed(|spawner| async move {
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

/// A chapter 5 runtime for `who` ([`CH05`], [`CH05_OWN`] or [`CH05_MULTI`]).
pub fn ch05_runtime(who: &str) -> io::Result<ch05_runtime::Runtime> {
    use ch05_runtime::{IoDriver, Runtime};
    match who {
        CH05 => Runtime::new(),
        CH05_OWN => Runtime::builder().io_driver(IoDriver::ExecutorThread).build(),
        CH05_MULTI => Runtime::builder().worker_threads(2).build(),
        other => Err(unknown(other)),
    }
}

/// A tokio runtime for `who` ([`TOKIO`] or [`TOKIO_MULTI`]), with
/// `enable_all` as tokio's users build it (`#[tokio::main]` does the same).
pub fn tokio_runtime(who: &str) -> io::Result<tokio::runtime::Runtime> {
    match who {
        TOKIO => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        TOKIO_MULTI => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build(),
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

/// Runs `work` on `runtime` (built before the clock starts) and times it.
fn tokio_timed(runtime: tokio::runtime::Runtime, work: impl Future<Output = io::Result<()>>) -> io::Result<Duration> {
    let started = Instant::now();
    runtime.block_on(work)?;
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

/// The error for a name that is not a contender here.
pub fn unknown(who: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("no such contender {who:?}"))
}

/// The runtimes whose idle tasks are measured: `n` tasks each sleeping the
/// same delay, in a fresh process (`bench-run sleeps ...`).
pub const SLEEPERS: [(&str, &str); 6] = [
    ("ch05-1", CH05),
    ("ch05-own", CH05_OWN),
    ("ch05-2", CH05_MULTI),
    ("tokio-1", TOKIO),
    ("tokio-2", TOKIO_MULTI),
    ("smol", SMOL_LOCAL),
];

/// `n` tasks, each sleeping `delay`, all at once, on `who` (an id of
/// [`SLEEPERS`]); returns how many finished. As in chapter 5's bench.
pub fn sleeps(who: &str, n: usize, delay: Duration) -> io::Result<usize> {
    let name = SLEEPERS.iter().find(|(id, _)| *id == who).map(|(_, name)| *name).ok_or_else(|| unknown(who))?;
    match name {
        CH05 | CH05_OWN | CH05_MULTI => Ok(ch05_runtime(name)?.block_on(async move {
            let tasks: Vec<_> = (0..n).map(|_| ch05_runtime::spawn(ch05_runtime::time::sleep(delay))).collect();
            let mut finished = 0;
            for task in tasks {
                finished += usize::from(task.await.is_ok());
            }
            finished
        })),
        TOKIO | TOKIO_MULTI => Ok(tokio_runtime(name)?.block_on(async move {
            let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(tokio::time::sleep(delay))).collect();
            let mut finished = 0;
            for task in tasks {
                finished += usize::from(task.await.is_ok());
            }
            finished
        })),
        _ => {
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
    }
}
