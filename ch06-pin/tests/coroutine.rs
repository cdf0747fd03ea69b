//! The self-referential coroutine: by hand and by the compiler, the same
//! lines and the same result on chapter 5's runtime; its self-pointer right
//! after every poll, however its box moves; its GETs polled and dropped in
//! one place.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ch01_os_threads::delay_server::{Config, DelayServer};
use ch05_runtime::{Runtime, spawn};
use ch06_pin::coroutine::{Fetch, FetchThreeInto, fetch_three_into_async, http};
use ch06_pin::log::Log;
use ch06_pin::testing::{Probe, Seen, scripted};

/// Both executors of chapter 5.
fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![Runtime::new()?, Runtime::builder().worker_threads(2).build()?])
}

/// Runs both versions as tasks on `runtime`; returns their outputs and what
/// each printed.
fn run_both<F: Fetch + Copy + Send + 'static>(
    runtime: &Runtime,
    fetch: F,
) -> (io::Result<String>, io::Result<String>, Vec<String>, Vec<String>)
where
    F::Get: Send,
{
    let log = Log::recording();
    let (hand, compiler) = (log.named("hand"), log.named("compiler"));
    let by_hand = runtime.block_on(async move { spawn(FetchThreeInto::new(fetch, hand)).await }).expect("no panic");
    let by_compiler =
        runtime.block_on(async move { spawn(fetch_three_into_async(fetch, compiler)).await }).expect("no panic");
    (by_hand, by_compiler, log.texts_of("hand"), log.texts_of("compiler"))
}

#[test]
#[cfg_attr(miri, ignore = "real sockets: Miri runs only the tests without network")]
fn by_hand_and_by_the_compiler_print_the_same_on_the_delay_server() -> io::Result<()> {
    let server = DelayServer::start(Config::default())?;
    for runtime in runtimes()? {
        let (by_hand, by_compiler, hand_lines, compiler_lines) = run_both(&runtime, http(server.addr()));
        assert_eq!(by_hand?, "one one-two three");
        assert_eq!(by_compiler?, "one one-two three");
        assert_eq!(hand_lines.len(), 4, "{hand_lines:?}");
        assert_eq!(hand_lines, compiler_lines);
        assert_eq!(hand_lines[2], r#"second answer "one-two"; buffer "one one-two""#);
    }
    Ok(())
}

#[test]
#[cfg_attr(miri, ignore = "real sockets: Miri runs only the tests without network")]
fn both_fail_the_same_way_when_the_server_is_gone() -> io::Result<()> {
    // A port that was just free: connecting is refused.
    let closed: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let runtime = Runtime::new()?;
    let (by_hand, by_compiler, hand_lines, compiler_lines) = run_both(&runtime, http(closed));
    let (hand_error, compiler_error) = (by_hand.unwrap_err(), by_compiler.unwrap_err());
    assert_eq!(hand_error.kind(), compiler_error.kind());
    assert_eq!(hand_error.to_string(), compiler_error.to_string());
    assert_eq!(hand_lines, ["start: three GETs, one after the other"]);
    assert_eq!(hand_lines, compiler_lines);
    Ok(())
}

#[test]
fn by_block_on_too_pinned_on_its_stack() -> io::Result<()> {
    let log = Log::recording();
    let runtime = Runtime::new()?;
    let by_hand = runtime.block_on(FetchThreeInto::new(scripted(2), log.named("hand")))?;
    let by_compiler = runtime.block_on(fetch_three_into_async(scripted(2), log.named("compiler")))?;
    assert_eq!(by_hand, by_compiler);
    assert_eq!(log.texts_of("hand"), log.texts_of("compiler"));
    Ok(())
}

#[test]
fn moving_before_the_first_poll_is_fine() -> io::Result<()> {
    let coroutine = FetchThreeInto::new(scripted(1), Log::silent());
    assert_eq!(coroutine.self_pointer(), None, "no pointer exists before the first poll");
    let mut moved = vec![coroutine]; // a move
    let coroutine = moved.pop().expect("just pushed"); // and another
    assert_eq!(coroutine.state_name(), "Start");
    let runtime = Runtime::new()?;
    assert_eq!(runtime.block_on(coroutine)?, "one one-two three");
    Ok(())
}

#[test]
fn after_each_poll_the_self_pointer_points_at_the_coroutines_own_buffer() {
    let mut pinned = Box::pin(FetchThreeInto::new(scripted(1), Log::silent()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut states = Vec::new();
    let mut buffer_at = None;
    let output = loop {
        let polled = pinned.as_mut().poll(&mut cx);
        states.push(pinned.state_name());
        if let Some(addresses) = pinned.self_pointer() {
            assert!(addresses.points_at_itself(), "in {}: {addresses:?}", pinned.state_name());
            assert_eq!(*buffer_at.get_or_insert(addresses.field), addresses.field, "the buffer never moved");
        }
        if let Poll::Ready(output) = polled {
            break output;
        }
        // Move the box between polls: to another thread and back.
        pinned = std::thread::spawn(move || pinned).join().expect("no panic");
    };
    assert_eq!(output.expect("scripted GETs do not fail"), "one one-two three");
    assert_eq!(states, ["AwaitingOne", "AwaitingTwo", "AwaitingThree", "Done"]);
    assert!(buffer_at.is_some(), "the self-pointer existed at some point");
}

#[test]
fn pinned_on_the_stack_it_works_the_same() {
    let mut coroutine = pin!(FetchThreeInto::new(scripted(3), Log::silent()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut polls = 0;
    let output = loop {
        polls += 1;
        if let Poll::Ready(output) = coroutine.as_mut().poll(&mut cx) {
            break output;
        }
        if let Some(addresses) = coroutine.self_pointer() {
            assert!(addresses.points_at_itself());
        }
    };
    assert_eq!(output.expect("scripted GETs do not fail"), "one one-two three");
    assert_eq!(polls, 3 * 3 + 1, "three GETs pending three times each, then the last poll");
}

#[test]
fn every_get_is_polled_and_dropped_in_one_place() -> io::Result<()> {
    for runtime in runtimes()? {
        let probe = Probe::new();
        let fetch = probe.fetch(2);
        let log = Log::silent();
        let (hand_fetch, compiler_fetch) = (fetch.clone(), fetch);
        let (by_hand_log, by_compiler_log) = (log.clone(), log);
        runtime.block_on(async move { spawn(FetchThreeInto::new(hand_fetch, by_hand_log)).await }).expect("ok")?;
        runtime
            .block_on(async move { spawn(fetch_three_into_async(compiler_fetch, by_compiler_log)).await })
            .expect("ok")?;
        let events = probe.events();
        // Six GETs (three per version), each polled three times, dropped once.
        assert_eq!(events.len(), 6 * 4, "{events:?}");
        for get in events.chunks(4) {
            let name = &get[0].0;
            assert!(get.iter().all(|(n, _)| n == name), "one GET after the other: {events:?}");
            let Seen::Dropped(dropped_at) = get[3].1 else { panic!("dropped last: {get:?}") };
            assert_eq!(get[..3].iter().map(|(_, seen)| *seen).collect::<Vec<_>>(), [Seen::Polled(dropped_at); 3]);
        }
    }
    Ok(())
}

#[test]
#[should_panic(expected = "FetchThreeInto polled after it returned Ready")]
fn polling_after_ready_panics() {
    let mut coroutine = pin!(FetchThreeInto::new(scripted(0), Log::silent()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(coroutine.as_mut().poll(&mut cx).is_ready());
    let _ = coroutine.as_mut().poll(&mut cx);
}

#[test]
fn the_size_table_adds_up() {
    let table = ch06_pin::coroutine::size_table();
    let bytes = |what: &str| {
        table.iter().find(|row| row.what.trim_start() == what).unwrap_or_else(|| panic!("no row {what:?}")).bytes
    };
    // The hand-written coroutine is its three parts, nothing more:
    // `PhantomPinned` takes no space, and the fields need no padding.
    let parts = bytes("its state enum (fetch, log, out)")
        + bytes("its GET in flight (Option<GET future>)")
        + bytes("its buffer (String)");
    assert_eq!(bytes("FetchThreeInto (by hand)"), parts);
    // The GET the coroutines await is `get_body`'s `async move` block: it
    // holds the address and the path it was given, and chapter 5's
    // `http::get` future inside.
    let inner = bytes("ch05 http::get's future (an async fn)");
    let outer = bytes("one GET as fetched here (get_body)");
    assert!(outer >= inner + size_of::<SocketAddr>() + size_of::<String>(), "{outer} vs {inner}");
    assert!(bytes("its GET in flight (Option<GET future>)") >= outer);
}
