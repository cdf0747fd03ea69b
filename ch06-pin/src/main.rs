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
    say!("main", "built on the stack and initialised: {}", verdict(moved.before));
    say!("main", "{}", located(moved.before));
    say!("main", "moved into a Box: {}", verdict(moved.after));
    say!("main", "{}", located(moved.after));
    if moved.after.pointer == moved.before.field {
        say!("main", "the pointer still holds the old place, {:#x};", moved.after.pointer);
    } else {
        say!("main", "the pointer holds {:#x};", moved.after.pointer);
    }
    say!("main", "  it is not followed: that stack frame has returned,");
    say!("main", "  and reading it would be undefined behaviour");
    drop(boxed);
    let swapped = moving::swap("a", "b");
    let crossed = swapped.a.pointer == swapped.b.field && swapped.b.pointer == swapped.a.field;
    say!("main", "mem::swap(a, b){}", if crossed { ": each points at the other's name" } else { "" });
    say!("main", "  a: name at {:#x}, pointer -> {:#x}", swapped.a.field, swapped.a.pointer);
    say!("main", "  b: name at {:#x}, pointer -> {:#x}", swapped.b.field, swapped.b.pointer);
}
// ANCHOR_END: demo_move

/// `points at itself` or `points ELSEWHERE`.
fn verdict(addresses: moving::Addresses) -> &'static str {
    if addresses.points_at_itself() { "points at itself" } else { "points ELSEWHERE" }
}

/// `  name at 0x… (stack), pointer -> 0x…`: indented, to go under the
/// line it explains. (The demo's lines stay short enough to read in a
/// terminal of 90 columns and on the book's page without scrolling.)
fn located(addresses: moving::Addresses) -> String {
    format!("  name at {}, pointer -> {:#x}", describe(addresses.field), addresses.pointer)
}

// ANCHOR: demo_pinned
/// Part 2: pinned first, then pointed at itself; moved only as a pointer.
fn pinned_values() {
    section(2, "Pin: pinned first, then pointed at itself");
    let boxed = PinnedSelfRef::boxed("boxed");
    say!("main", "Box::pin, then init: {}", verdict(boxed.addresses()));
    say!("main", "{}", located(boxed.addresses()));
    say!("main", "  read through the pointer: {:?}", boxed.as_ref().name_via_pointer());
    let mut moved = vec![boxed]; // moves the Pin<Box<_>>: a pointer to the value
    moved.push(PinnedSelfRef::boxed("other"));
    moved.swap(0, 1);
    let boxed = &moved[1];
    say!("main", "the Pin<Box<_>> moved into a Vec, swapped: {}", verdict(boxed.addresses()));
    say!("main", "{}", located(boxed.addresses()));
    say!("main", "  read through the pointer: {:?}", boxed.as_ref().name_via_pointer());

    let mut on_stack = pin!(PinnedSelfRef::new("on the stack"));
    on_stack.as_mut().init();
    say!("main", "pin! on main's stack: {}", verdict(on_stack.addresses()));
    say!("main", "{}", located(on_stack.addresses()));
    say!("main", "  read through the pointer: {:?}", on_stack.as_ref().name_via_pointer());

    pinned::on_the_stack_by_hand("by hand", |value| {
        say!("main", "Pin::new_unchecked, by hand: {}", verdict(value.addresses()));
        say!("main", "{}", located(value.addresses()));
        say!("main", "  read through the pointer: {:?}", value.as_ref().name_via_pointer());
    });

    let mut unpin = SelfRef::new("Unpin");
    let pinned = Pin::new(&mut unpin); // allowed: SelfRef is Unpin, so Pin promises nothing ...
    let value: &mut SelfRef = pinned.get_mut(); // ... and gives the &mut straight back
    value.init();
    let mut other = SelfRef::new("other");
    std::mem::swap(value, &mut other);
    say!("main", "Pin::new on the Unpin SelfRef, mem::swap: {}", verdict(other.addresses()));
    say!("main", "{}", located(other.addresses()));
}
// ANCHOR_END: demo_pinned

// ANCHOR: demo_unpin
/// Part 3: which types are `Unpin`; the answers come from the compiler, and
/// so does each reason: every row has one for either answer.
fn who_is_unpin() {
    section(3, "who is Unpin? (the compiler answers)");
    // The reasons that fit any type.
    const ALL_FIELDS: &str = "all its fields are Unpin";
    const A_FIELD: &str = "one of its fields is not Unpin";
    let addr = ([127, 0, 0, 1], 9).into(); // only to create futures; nothing connects
    let get = ch05_runtime::http::get(addr, "/0/x");
    let mut table = Table::new(&["type", "Unpin", "because"]);
    let mut row = |name: &str, unpin: bool, if_unpin: &str, if_not: &str| {
        table.row(&[name, if unpin { "yes" } else { "NO" }, if unpin { if_unpin } else { if_not }]);
    };
    let plain = unpin_of_type!((u32, String, Vec<u8>));
    row("u32, String, Vec<u8>", plain, "plain data: moving it breaks nothing", A_FIELD);
    row("SelfRef", unpin_of_type!(SelfRef), "a raw pointer is Unpin: it may move", A_FIELD);
    let pinned = unpin_of_type!(PinnedSelfRef);
    row("PinnedSelfRef", pinned, "all its fields are Unpin: no PhantomPinned", "it holds a PhantomPinned");
    row("ch05 Sleep", unpin_of_type!(ch05_runtime::time::Sleep), "a deadline and a timer key", A_FIELD);
    row("ch05 JoinHandle<u32>", unpin_of_type!(ch05_runtime::JoinHandle<u32>), "a pointer to the task", A_FIELD);
    let borrows = "may borrow its own locals across .await";
    row("async fn future (ch05 http::get)", unpin_of_value!(get), ALL_FIELDS, borrows);
    row("async { 1 }", unpin_of_value!(async { 1 }), ALL_FIELDS, "the same for every async block");
    let boxed = Box::pin(ch05_runtime::http::get(addr, "/0/x"));
    row("Pin<Box<that future>>", unpin_of_value!(boxed), "a pointer: moving it moves no future", A_FIELD);
    let by_hand = unpin_of_value!(FetchThreeInto::new(http(addr), Log::silent()));
    row("FetchThreeInto (by hand)", by_hand, ALL_FIELDS, "it holds a PhantomPinned");
    row("Observed<Sleep>", unpin_of_type!(Observed<ch05_runtime::time::Sleep>), ALL_FIELDS, A_FIELD);
    let observed = Observed::new(ch05_runtime::http::get(addr, "/0/x"));
    row("Observed<async fn future>", unpin_of_value!(observed), ALL_FIELDS, A_FIELD);
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
    say!("main", "FetchThreeInto::new at {}", describe(was_at));
    let pointer = match moved[0].self_pointer() {
        None => "no self-pointer".to_string(),
        Some(addresses) => format!("self-pointer {addresses:?}"),
    };
    say!("main", "  moved to {}: still {}, {pointer}", describe(now_at), moved[0].state_name());
    say!("main", "  a move before the first poll is fine");

    step_by_hand();

    // The real run: spawn moves it once more, into the task's allocation,
    // and pins it there for good; `Observed` notes where each poll finds it.
    let coroutine = moved.into_iter().next().context("the coroutine")?;
    let by_hand = runtime.block_on(spawn_observed(coroutine))?;
    report("FetchThreeInto by hand", &by_hand);
    let by_compiler = runtime.block_on(spawn_observed(fetch_three_into_async(http(addr), log.named("async fn"))))?;
    report("the async fn", &by_compiler);
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

/// One finished task, in two lines.
fn report(what: &str, (id, observed): &(TaskId, Observation<std::io::Result<String>>)) {
    match &observed.output {
        Ok(text) => say!("main", "{id}, {what}: returned {text:?}"),
        Err(e) => say!("main", "{id}, {what}: failed ({e})"),
    }
    say!("main", "  polled {} times, {}", observed.polls(), place(observed));
}
// ANCHOR_END: demo_coroutine

// ANCHOR: demo_step
/// Steps a `FetchThreeInto` by hand with GETs that need no network, moving
/// its `Pin<Box<_>>` between polls, and prints its self-pointer each time.
fn step_by_hand() {
    say!("main", "stepped by hand: scripted GETs (no network), Box::pin");
    let mut pinned = Box::pin(FetchThreeInto::new(scripted(1), Log::silent()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut holders = Vec::new(); // the Pin<Box<_>> moves in here and out again
    let mut buffer_seen_at = Vec::new();
    for poll in 1.. {
        let result = pinned.as_mut().poll(&mut cx);
        let state = pinned.state_name();
        match pinned.self_pointer() {
            Some(addresses) => {
                let points = if addresses.points_at_itself() { "at its own buffer" } else { "ELSEWHERE" };
                say!("main", "stepped, poll {poll}: {state}, out points {points}");
                say!("main", "  buffer at {}, out -> {:#x}", describe(addresses.field), addresses.pointer);
                buffer_seen_at.push(addresses.field);
            }
            None => say!("main", "stepped, poll {poll}: {state}, no self-pointer"),
        }
        if let Poll::Ready(output) = result {
            say!("main", "stepped: returned {output:?}");
            let stayed = buffer_seen_at.windows(2).all(|pair| pair[0] == pair[1]);
            let value = if stayed { "the value did not" } else { "the value MOVED" };
            say!("main", "  its Pin<Box<_>> moved between the polls, {value}");
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
    say!("main", "block_on(f): pinned with pin! in its frame (ch05 executor.rs)");
    say!("main", "  f polled {} times, {}", on_stack.polls(), place(&on_stack));
    let (id, in_task) = runtime.block_on(spawn_observed(fetch_three_into_async(http(addr), silent)))?;
    say!("main", "spawn(f): pinned in {id}'s Arc (ch05 task.rs, poll_future)");
    say!("main", "  f polled {} times, {}", in_task.polls(), place(&in_task));
    on_stack.output.and(in_task.output).context("a GET failed")?;
    Ok(())
}

/// Where an observed future was polled: `every time at 0x… (heap)`.
fn place<T>(observed: &Observation<T>) -> String {
    match observed.single_address() {
        Some(address) => format!("every time at {}", describe(address)),
        None => "in MORE THAN ONE PLACE".to_string(),
    }
}
// ANCHOR_END: demo_where
