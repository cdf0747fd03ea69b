//! Chapter 6: self-referential futures and `Pin`.
//!
//! `cargo run -p ch06-pin` runs the guided demo (with an embedded delay
//! server, or the one in `DELAY_SERVER=host:port`):
//!
//! 1. the problem: a value that points at its own field is moved (into a
//!    box, and by `mem::swap`); its addresses show the pointer left behind;
//! 2. `Pin`: the same value pinned first (`Box::pin`, `pin!`,
//!    `Pin::new_unchecked`) and pointed at itself after, moved as a
//!    `Pin<Box<_>>`: it stays put, and reading through the pointer is safe;
//! 3. which types are `Unpin`, as the compiler answers;
//! 4. a self-referential coroutine, by hand and by the compiler, on chapter
//!    5's runtime: moved before its first poll (fine), stepped by hand with
//!    its self-pointer checked, then run as tasks that print the same lines;
//! 5. where the runtime pins: `block_on`'s stack frame, a task's `Arc`.
//!
//! `cargo run --release -p ch06-pin -- bench` measures `pin!` against
//! `Box::pin` and prints the sizes of the two coroutines. `--help` says the same.

mod bench;

use std::future::Future;
use std::pin::{Pin, pin};
use std::process::ExitCode;
use std::ptr;
use std::task::{Context, Poll, Waker};

use anyhow::{Context as _, bail};
use ch01_os_threads::delay_server::{Config, DemoServer};
use ch01_os_threads::report::Table;
use ch01_os_threads::trace::section;
use ch01_os_threads::{cli, say};
use ch05_runtime::task::TaskId;
use ch05_runtime::{JoinError, Runtime};
use ch06_pin::coroutine::{FetchThreeInto, fetch_three_into_async, http};
use ch06_pin::log::Log;
use ch06_pin::moving::{self, SelfRef};
use ch06_pin::pinned::{self, PinnedSelfRef};
use ch06_pin::place::describe;
use ch06_pin::projection::{Observation, Observed};
use ch06_pin::testing::scripted;
use ch06_pin::{unpin_of_type, unpin_of_value};

const HELP: &str = "\
ch06-pin: self-referential futures and Pin, on chapter 5's runtime

USAGE:
    cargo run -p ch06-pin [-- COMMAND]

COMMANDS:
    (none)     the guided demo: a self-referential value moved (addresses
               only), Pin, who is Unpin, a self-referential coroutine on
               chapter 5's runtime, where the runtime pins (about 1.5 s)
    bench      pin! vs Box::pin per future, and the coroutines' sizes
               (use --release)
    --help     this text

ENVIRONMENT:
    DELAY_SERVER=host:port   use that delay server instead of an embedded one
";

fn main() -> ExitCode {
    ch01_os_threads::trace::start();
    ch01_os_threads::cli::quiet_closed_pipes();
    cli::exit_code(run(std::env::args().skip(1).collect()))
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None => demo(),
        Some("bench") => bench::run(&args[1..]),
        Some("--help" | "-h" | "help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(cli::unknown("command", other)),
    }
}

fn demo() -> anyhow::Result<()> {
    the_move_problem();
    pinned_values();
    who_is_unpin();
    let server = DemoServer::from_env_or_start(Config::default()).context("starting the delay server")?;
    say!("main", "{}", server.describe());
    let runtime = Runtime::new().context("starting chapter 5's runtime")?;
    self_referential_coroutine(&runtime, server.addr())?;
    where_the_runtime_pins(&runtime, server.addr())?;
    Ok(())
}

// ANCHOR: demo_move
/// Part 1: the move, seen through addresses only.
fn the_move_problem() {
    section(1, "the problem: a value that points into itself, moved");
    let (moved, boxed) = moving::move_into_box("hello");
    say!("main", "built on the stack and initialised: {}", located(moved.before));
    say!("main", "moved into a Box: {}", located(moved.after));
    let left_behind = moved.after.pointer == moved.before.field;
    say!(
        "main",
        "the pointer holds {:#x}{}; it is not followed: that stack frame has returned, and reading it would be \
         undefined behaviour",
        moved.after.pointer,
        if left_behind { ", where the value was before the move" } else { "" }
    );
    drop(boxed);
    let swapped = moving::swap("a", "b");
    let crossed = swapped.a.pointer == swapped.b.field && swapped.b.pointer == swapped.a.field;
    say!(
        "main",
        "mem::swap(a, b): a's name at {:#x}, pointer -> {:#x}; b's name at {:#x}, pointer -> {:#x}{}",
        swapped.a.field,
        swapped.a.pointer,
        swapped.b.field,
        swapped.b.pointer,
        if crossed { ": each points at the other's name" } else { "" }
    );
}
// ANCHOR_END: demo_move

/// `name at 0x… (stack), pointer -> 0x… (points at its own name)`.
fn located(addresses: moving::Addresses) -> String {
    let verdict = if addresses.points_at_itself() { "points at its own name" } else { "points ELSEWHERE" };
    format!("name at {}, pointer -> {:#x} ({verdict})", describe(addresses.field), addresses.pointer)
}

// ANCHOR: demo_pinned
/// Part 2: pinned first, then pointed at itself; moved only as a pointer.
fn pinned_values() {
    section(2, "Pin: pinned first, then pointed at itself");
    let boxed = PinnedSelfRef::boxed("boxed");
    say!(
        "main",
        "Box::pin: {}; through the pointer: {:?}",
        located(boxed.addresses()),
        boxed.as_ref().name_via_pointer()
    );
    let mut moved = vec![boxed]; // moves the Pin<Box<_>>: a pointer to the value
    moved.push(PinnedSelfRef::boxed("other"));
    moved.swap(0, 1);
    let boxed = &moved[1];
    say!(
        "main",
        "the Pin<Box<_>> moved into a Vec and swapped there: {}; through the pointer: {:?}",
        located(boxed.addresses()),
        boxed.as_ref().name_via_pointer()
    );

    let mut on_stack = pin!(PinnedSelfRef::new("on the stack"));
    on_stack.as_mut().init();
    let read = on_stack.as_ref().name_via_pointer();
    say!("main", "pin! on main's stack: {}; through the pointer: {read:?}", located(on_stack.addresses()));

    pinned::on_the_stack_by_hand("by hand", |value| {
        let read = value.as_ref().name_via_pointer();
        say!("main", "Pin::new_unchecked, by hand: {}; through the pointer: {read:?}", located(value.addresses()));
    });

    let mut unpin = SelfRef::new("Unpin");
    let pinned = Pin::new(&mut unpin); // allowed: SelfRef is Unpin, so Pin promises nothing ...
    let value: &mut SelfRef = pinned.get_mut(); // ... and gives the &mut straight back
    value.init();
    let mut other = SelfRef::new("other");
    std::mem::swap(value, &mut other);
    say!("main", "Pin::new on the Unpin SelfRef, then mem::swap: {}", located(other.addresses()));
}
// ANCHOR_END: demo_pinned

// ANCHOR: demo_unpin
/// Part 3: which types are `Unpin`; the answers come from the compiler.
fn who_is_unpin() {
    section(3, "who is Unpin? (the compiler answers)");
    let addr = ([127, 0, 0, 1], 9).into(); // only to create futures; nothing connects
    let get = ch05_runtime::http::get(addr, "/0/x");
    let mut table = Table::new(&["type", "Unpin", "because"]);
    let mut row = |name: &str, unpin: bool, because: &str| {
        table.row(&[name, if unpin { "yes" } else { "NO" }, because]);
    };
    row("u32, String, Vec<u8>", unpin_of_type!((u32, String, Vec<u8>)), "plain data: moving it breaks nothing");
    row("SelfRef", unpin_of_type!(SelfRef), "a raw pointer is Unpin: nothing stops its move");
    row("PinnedSelfRef", unpin_of_type!(PinnedSelfRef), "it holds a PhantomPinned");
    row("ch05 Sleep", unpin_of_type!(ch05_runtime::time::Sleep), "a deadline and a timer key");
    row("ch05 JoinHandle<u32>", unpin_of_type!(ch05_runtime::JoinHandle<u32>), "a pointer to the task");
    row("async fn's future (ch05 http::get)", unpin_of_value!(get), "may borrow its own locals across .await");
    row("async { 1 }", unpin_of_value!(async { 1 }), "the same for every async block");
    let boxed = Box::pin(ch05_runtime::http::get(addr, "/0/x"));
    row("Pin<Box<that future>>", unpin_of_value!(boxed), "a pointer: moving it moves no future");
    row("FetchThreeInto (by hand)", unpin_of_value!(FetchThreeInto::new(http(addr), Log::silent())), "PhantomPinned");
    row("Observed<Sleep>", unpin_of_type!(Observed<ch05_runtime::time::Sleep>), "all its fields are Unpin");
    let observed = Observed::new(ch05_runtime::http::get(addr, "/0/x"));
    row("Observed<async fn future>", unpin_of_value!(observed), "one field is not");
    println!("{table}");
}
// ANCHOR_END: demo_unpin

// ANCHOR: demo_coroutine
/// Part 4: the self-referential coroutine, by hand and by the compiler.
fn self_referential_coroutine(runtime: &Runtime, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    section(4, "a self-referential coroutine on chapter 5's runtime");
    // Moving before the first poll: nothing points anywhere yet.
    let log = Log::printing();
    let coroutine = FetchThreeInto::new(http(addr), log.named("hand-written"));
    let was_at = ptr::from_ref(&coroutine).addr();
    let moved = vec![coroutine]; // a move, to the heap
    let now_at = ptr::from_ref(&moved[0]).addr();
    say!(
        "main",
        "FetchThreeInto::new at {}, moved to {}: still {}, self-pointer {:?}: a move before the first poll is fine",
        describe(was_at),
        describe(now_at),
        moved[0].state_name(),
        moved[0].self_pointer()
    );

    step_by_hand();

    // The real run: spawn moves it once more, into the task's allocation,
    // and pins it there for good; `Observed` notes where each poll finds it.
    let coroutine = moved.into_iter().next().context("the coroutine")?;
    let by_hand = runtime.block_on(spawn_observed(coroutine))?;
    report("FetchThreeInto, by hand", &by_hand);
    let by_compiler = runtime.block_on(spawn_observed(fetch_three_into_async(http(addr), log.named("async fn"))))?;
    report("async fn fetch_three_into_async", &by_compiler);
    let same = log.texts_of("hand-written") == log.texts_of("async fn");
    say!("main", "the two printed the same lines: {}", if same { "yes" } else { "NO" });
    if !same || by_hand.1.output.as_ref().ok() != by_compiler.1.output.as_ref().ok() {
        bail!("the hand-written coroutine and the async fn differ");
    }
    Ok(())
}

/// Spawns `future` wrapped in [`Observed`] and waits for it: its task id
/// and what `Observed` saw.
async fn spawn_observed<F>(future: F) -> Result<(TaskId, Observation<F::Output>), JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = ch05_runtime::spawn(Observed::new(future));
    let id = handle.id();
    Ok((id, handle.await?))
}

/// One finished task, as a line.
fn report(what: &str, (id, observed): &(TaskId, Observation<std::io::Result<String>>)) {
    let (polls, at) = (observed.polls(), place(observed));
    match &observed.output {
        Ok(text) => say!("main", "{id} ({what}) returned {text:?}; polled {polls} times, every time at {at}"),
        Err(e) => say!("main", "{id} ({what}) failed ({e}); polled {polls} times at {at}"),
    }
}
// ANCHOR_END: demo_coroutine

// ANCHOR: demo_step
/// Steps a `FetchThreeInto` by hand with GETs that need no network, moving
/// its `Pin<Box<_>>` between polls, and prints its self-pointer each time.
fn step_by_hand() {
    say!("main", "stepping a FetchThreeInto with scripted GETs (no network), pinned with Box::pin:");
    let mut pinned = Box::pin(FetchThreeInto::new(scripted(1), Log::silent()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut holders = Vec::new(); // the Pin<Box<_>> moves in here and out again
    for poll in 1.. {
        let result = pinned.as_mut().poll(&mut cx);
        let pointer = match pinned.self_pointer() {
            Some(addresses) => format!(
                "buffer at {}, out -> {:#x} ({})",
                describe(addresses.field),
                addresses.pointer,
                if addresses.points_at_itself() { "its own buffer" } else { "ELSEWHERE" }
            ),
            None => "no self-pointer".to_string(),
        };
        say!("main", "stepped, poll {poll}: {}, {pointer}", pinned.state_name());
        if let Poll::Ready(output) = result {
            say!("main", "stepped: returned {output:?}; its Pin<Box<_>> moved between the polls, the value did not");
            break;
        }
        holders.push(pinned); // move the box ...
        pinned = holders.pop().expect("just pushed"); // ... and back
    }
}
// ANCHOR_END: demo_step

// ANCHOR: demo_where
/// Part 5: where chapter 5 pins the future of a `block_on` and of a task.
fn where_the_runtime_pins(runtime: &Runtime, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    section(5, "where the runtime pins");
    let silent = Log::silent();
    let on_stack = runtime.block_on(Observed::new(fetch_three_into_async(http(addr), silent.clone())));
    say!(
        "main",
        "block_on(f): f polled {} times at {}: pinned with pin! in block_on's frame (ch05 executor.rs)",
        on_stack.polls(),
        place(&on_stack)
    );
    let (id, in_task) = runtime.block_on(spawn_observed(fetch_three_into_async(http(addr), silent)))?;
    say!(
        "main",
        "spawn(f): f polled {} times at {}: pinned inside {id}'s Arc (ch05 task.rs, poll_future)",
        in_task.polls(),
        place(&in_task)
    );
    on_stack.output.and(in_task.output).context("a GET failed")?;
    Ok(())
}

/// Where an observed future was polled.
fn place<T>(observed: &Observation<T>) -> String {
    observed.single_address().map_or_else(|| "MORE THAN ONE PLACE".to_string(), describe)
}
// ANCHOR_END: demo_where
