//! `bench`: what pinning costs, and how big the pinned coroutines are.
//!
//! 1. Time per future, for futures of three sizes, each polled to the end
//!    (one `Pending`, then `Ready`): pinned with `pin!` on the stack and
//!    polled with a no-op waker (also after one move, to see what moving a
//!    future costs); pinned with `Box::pin` (one allocation, the future
//!    moved into it, freed at the end); and on chapter 5's runtime,
//!    through `block_on` (which pins with `pin!` in its own frame) and
//!    through `spawn` + awaiting the `JoinHandle` (the task's `Arc` is the
//!    allocation the future is pinned in). Medians of [`RUNS`] runs.
//! 2. `size_of` the hand-written self-referential coroutine, its parts, and
//!    the compiler's `async fn` with the same body.

use std::future::Future;
use std::hint::black_box;
use std::io::Write;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ch01_os_threads::report::{self, Table};
use ch05_runtime::{Runtime, spawn};
use ch06_pin::coroutine;

/// Runs per measurement; the table shows the median.
const RUNS: usize = 7;
/// Futures per run.
const FUTURES: usize = 100_000;
/// Futures per run with `--quick` (a smoke test: the numbers mean little).
const QUICK_FUTURES: usize = 200;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let n = match args {
        [] => FUTURES,
        [flag] if flag == "--quick" => QUICK_FUTURES,
        _ => bail!("bench takes no arguments but --quick (small sizes, for a smoke test)"),
    };
    let runtime = Runtime::new().context("starting chapter 5's runtime")?;
    // Short headers, so the table fits 90 columns (a terminal, the book's
    // page); the legend below the table says what each column is.
    let mut table =
        Table::new(&["future", "pin!", "moved, pin!", "Box::pin", "Box::pin extra", "block_on", "spawn + await"]);
    row::<8>(&mut table, &runtime, n)?;
    row::<1024>(&mut table, &runtime, n)?;
    row::<{ 16 * 1024 }>(&mut table, &runtime, n)?;
    eprint!("\r\x1b[K");
    println!("{}", report::machine());
    print!("{table}");
    println!("{}", legend(n));

    println!("{}", report::machine());
    let mut sizes = Table::new(&["what", "bytes"]);
    for size in coroutine::size_table() {
        sizes.row(&[size.what.to_string(), size.bytes.to_string()]);
    }
    print!("{sizes}");
    println!("(size_of, nothing polled; GETs from chapter 5's http::get, then the tests' scripted GET)");
    Ok(())
}

/// What the columns of the first table are, in lines of at most 90 columns.
fn legend(n: usize) -> String {
    format!(
        "future: its size_of. pin!: pinned on the stack. moved, pin!: moved once first.\n\
         Box::pin: pinned on the heap; Box::pin extra: what that costs more than pin!.\n\
         block_on, spawn + await: through chapter 5's runtime (pin! in block_on's frame;\n\
         the task's Arc). Per future: created, pinned, polled twice (Pending, then Ready)\n\
         and dropped; median of {RUNS} runs of {n} futures each.\n"
    )
}

/// Measures one size of future in every column.
fn row<const N: usize>(table: &mut Table, runtime: &Runtime, n: usize) -> anyhow::Result<()> {
    let size = size_of_val(&holding::<N>(0));
    let measure = |what: &str, f: &mut dyn FnMut() -> anyhow::Result<Duration>| {
        progress(&format!("{} B future: {what}", size));
        let median = report::median_of(RUNS, f)?;
        Ok::<_, anyhow::Error>(median / n as u32)
    };
    let stack = measure("pin! + poll", &mut || Ok(on_the_stack::<N>(n)))?;
    let moved = measure("a move, pin! + poll", &mut || Ok(moved_then_pinned::<N>(n)))?;
    let boxed = measure("Box::pin + poll", &mut || Ok(in_a_box::<N>(n)))?;
    let block_on = measure("ch05 block_on", &mut || Ok(ch05_block_on::<N>(runtime, n)))?;
    let spawned = measure("ch05 spawn + await", &mut || ch05_spawn::<N>(runtime, n))?;
    table.row(&[
        report::bytes(size as u64),
        report::duration(stack),
        report::duration(moved),
        report::duration(boxed),
        report::duration(boxed.saturating_sub(stack)),
        report::duration(block_on),
        report::duration(spawned),
    ]);
    Ok(())
}

/// One line on stderr, rewritten in place: what the bench is measuring now.
fn progress(what: &str) {
    eprint!("\r\x1b[K[bench] {what} ...");
    let _ = std::io::stderr().flush();
}

// ANCHOR: holding
/// `Pending` once (after waking its task), then `Ready`: a real suspension.
struct YieldOnce(bool);

impl Future for YieldOnce {
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

/// A future at least `N` bytes big: its buffer lives across an `.await`.
async fn holding<const N: usize>(seed: u8) -> u8 {
    let mut buffer = [seed; N];
    YieldOnce(false).await;
    black_box(&mut buffer); // the buffer is really used: it cannot be left out
    buffer[N - 1]
}
// ANCHOR_END: holding

// ANCHOR: bench_pin
/// `n` futures, each pinned on this stack frame with `pin!`.
fn on_the_stack<const N: usize>(n: usize) -> Duration {
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    for i in 0..n {
        let mut future = pin!(holding::<N>(black_box(i as u8)));
        while future.as_mut().poll(&mut cx).map(black_box).is_pending() {}
    }
    started.elapsed()
}

/// `n` futures, each moved once (through a function the optimiser may not
/// inline, so the copy really happens) and then pinned with `pin!`.
fn moved_then_pinned<const N: usize>(n: usize) -> Duration {
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    for i in 0..n {
        let mut future = pin!(move_it(holding::<N>(black_box(i as u8))));
        while future.as_mut().poll(&mut cx).map(black_box).is_pending() {}
    }
    started.elapsed()
}

/// Takes a value and gives it back: one move (a copy of all its bytes).
#[inline(never)]
fn move_it<T>(value: T) -> T {
    value
}

/// `n` futures, each pinned in a fresh heap allocation with `Box::pin`.
fn in_a_box<const N: usize>(n: usize) -> Duration {
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    for i in 0..n {
        let mut future = Box::pin(holding::<N>(black_box(i as u8)));
        while future.as_mut().poll(&mut cx).map(black_box).is_pending() {}
    }
    started.elapsed()
}
// ANCHOR_END: bench_pin

/// `n` futures, each run by chapter 5's `block_on` (it pins with `pin!`).
fn ch05_block_on<const N: usize>(runtime: &Runtime, n: usize) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        black_box(runtime.block_on(holding::<N>(black_box(i as u8))));
    }
    started.elapsed()
}

/// `n` tasks, spawned and awaited one at a time (each is one `Arc`
/// allocation holding the future, pinned there).
fn ch05_spawn<const N: usize>(runtime: &Runtime, n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    runtime.block_on(async {
        for i in 0..n {
            black_box(spawn(holding::<N>(black_box(i as u8))).await?);
        }
        Ok::<_, ch05_runtime::JoinError>(())
    })?;
    Ok(started.elapsed())
}
