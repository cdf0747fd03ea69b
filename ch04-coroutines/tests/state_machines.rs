//! The coroutines' state machines, stepped by hand with instrumented leaf
//! futures: no network, no executor, fully deterministic.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::{Context, Waker};

use ch04_coroutines::combinators::{join_all, then};
use ch04_coroutines::coroutine::{FetchThree, fetch_three_async, fetch_three_async_scoped, size_table};
use ch04_coroutines::future::{FromStd, Future, PollState};
use ch04_coroutines::http::HttpGetFuture;
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::Executor;
use ch04_coroutines::testing::{Countdown, Probe, Script, poll_by_hand};

/// The four lines the example program prints when every GET echoes its message.
fn expected_lines() -> Vec<String> {
    vec![
        "start: three GETs, one after the other".to_string(),
        "first answer \"one\"; asking for \"one\" + \"-two\"".to_string(),
        "second answer \"one-two\"; 10 bytes so far".to_string(),
        "third answer \"three\"; done: 15 bytes in 3 answers".to_string(),
    ]
}

fn script(not_ready: usize) -> Script {
    Script { not_ready, fail_on: None, probe: Probe::new() }
}

#[test]
fn fetch_three_goes_through_its_states_in_order() {
    let script = script(1);
    let log = Log::recording();
    let mut coroutine = FetchThree::new(script.clone(), log.named("c"));
    assert_eq!(coroutine.state_name(), "Start");

    let mut states = Vec::new();
    let mut output = None;
    for _ in 0..10 {
        let state = coroutine.poll();
        states.push(coroutine.state_name());
        if let PollState::Ready(result) = state {
            output = Some(result);
            break;
        }
    }
    // Each leaf says NotReady once, so each poll moves exactly one state on.
    assert_eq!(states, ["AwaitingOne", "AwaitingTwo", "AwaitingThree", "Done"]);
    assert_eq!(output.expect("finished").expect("no error"), 15);
    // Three leaves, each polled twice (NotReady, then Ready), never after Ready.
    assert_eq!(script.probe.polls(), 6);
    assert_eq!(script.probe.polls_after_ready(), 0);
    assert_eq!(script.probe.completed(), ["one", "one-two", "three"]);
    assert_eq!(log.texts_of("c"), expected_lines());
}

#[test]
fn a_coroutine_runs_through_every_ready_leaf_in_one_poll() {
    let script = script(0);
    let mut coroutine = FetchThree::new(script.clone(), Log::recording());
    let (result, polls) = poll_by_hand(&mut coroutine, 10).expect("finishes");
    assert_eq!((result.expect("no error"), polls), (15, 1));
    assert_eq!(script.probe.polls(), 3);
}

#[test]
fn polling_a_finished_coroutine_panics() {
    let mut coroutine = FetchThree::new(script(0), Log::recording());
    assert!(matches!(coroutine.poll(), PollState::Ready(Ok(15))));
    let again = catch_unwind(AssertUnwindSafe(|| coroutine.poll()));
    let message = *again.expect_err("second poll must panic").downcast::<&str>().expect("a &str message");
    assert_eq!(message, "FetchThree polled after it returned Ready");
}

#[test]
fn the_compilers_async_fn_also_panics_when_polled_after_ready() {
    let future = pin!(fetch_three_async(script(0), Log::recording()));
    let mut future = future;
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_ready());
    let again = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
    let message = *again.expect_err("second poll must panic").downcast::<&str>().expect("a &str message");
    assert!(message.contains("resumed after completion"), "{message}");
}

#[test]
fn a_leaf_error_ends_the_coroutine_with_that_error() {
    let script = Script { not_ready: 1, fail_on: Some("one-two".into()), probe: Probe::new() };
    let log = Log::recording();
    let mut coroutine = FetchThree::new(script.clone(), log.named("c"));
    let (result, _) = poll_by_hand(&mut coroutine, 10).expect("finishes");
    assert_eq!(result.expect_err("the second GET failed").kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(coroutine.state_name(), "Done");
    // The third GET never started, and nothing after the failure printed.
    assert_eq!(script.probe.completed(), ["one", "one-two"]);
    assert_eq!(log.texts_of("c"), expected_lines()[..2]);
}

#[test]
fn the_async_fn_prints_what_the_hand_written_coroutine_prints() {
    let by_hand = Log::recording();
    let by_compiler = Log::recording();
    let mut coroutine = FetchThree::new(script(2), by_hand.named("c"));
    let mut async_fn = FromStd::new(fetch_three_async(script(2), by_compiler.named("c")));
    let (hand, hand_polls) = poll_by_hand(&mut coroutine, 20).expect("finishes");
    let (compiler, compiler_polls) = poll_by_hand(&mut async_fn, 20).expect("finishes");
    assert_eq!((hand.expect("ok"), hand_polls), (15, 7));
    assert_eq!((compiler.expect("ok"), compiler_polls), (15, 7));
    assert_eq!(by_hand.lines(), by_compiler.lines());

    // The version that ends each value early prints the same, too.
    let scoped = Log::recording();
    let mut async_scoped = FromStd::new(fetch_three_async_scoped(script(2), scoped.named("c")));
    let (result, polls) = poll_by_hand(&mut async_scoped, 20).expect("finishes");
    assert_eq!((result.expect("ok"), polls), (15, 7));
    assert_eq!(by_hand.lines(), scoped.lines());
}

#[test]
fn join_all_returns_input_order_while_children_finish_in_delay_order() {
    let probe = Probe::new();
    // "Delays" in polls: a finishes last, b first.
    let children = vec![
        Countdown::new("a", 3, 'a', &probe),
        Countdown::new("b", 0, 'b', &probe),
        Countdown::new("c", 2, 'c', &probe),
        Countdown::new("d", 1, 'd', &probe),
    ];
    let mut joined = join_all(children);
    let (outputs, polls) = poll_by_hand(&mut joined, 10).expect("finishes");
    assert_eq!(outputs, ['a', 'b', 'c', 'd']);
    assert_eq!(probe.completed(), ["b", "d", "c", "a"]);
    assert_eq!(polls, 4);
    // Each child polled until Ready and never again: 4 + 1 + 3 + 2.
    assert_eq!(probe.polls(), 10);
    assert_eq!(probe.polls_after_ready(), 0);
}

#[test]
fn dropping_a_join_all_midway_cancels_the_children_still_running() {
    let probe = Probe::new();
    let children = vec![Countdown::new("quick", 0, (), &probe), Countdown::new("slow", 5, (), &probe)];
    let mut joined = join_all(children);
    assert_eq!(joined.poll(), PollState::NotReady);
    // The finished child's future is dropped at once (its output waits in the join).
    assert_eq!((probe.completed(), probe.drops()), (vec!["quick".to_string()], 1));
    drop(joined);
    assert_eq!(probe.drops(), 2, "the running child is dropped with the join: cancelled");
    assert_eq!(probe.completed(), ["quick"], "the slow one never finished");
}

#[test]
fn join_all_of_nothing_is_ready_at_once() {
    let mut joined = join_all(Vec::<Countdown<u8>>::new());
    assert_eq!(joined.poll(), PollState::Ready(vec![]));
}

#[test]
fn then_starts_the_second_future_only_after_the_first_is_ready() {
    let probe = Probe::new();
    let second_probe = probe.clone();
    let mut chain = then(Countdown::new("first", 2, 20, &probe), move |x| {
        // By the time we are called, the first future has finished.
        assert_eq!(second_probe.completed(), ["first"]);
        Countdown::new("second", 1, x + 1, &second_probe)
    });
    let (output, polls) = poll_by_hand(&mut chain, 10).expect("finishes");
    assert_eq!((output, polls), (21, 4));
    assert_eq!(probe.completed(), ["first", "second"]);
    assert_eq!(probe.polls(), 5); // first: 3 polls, second: 2
    assert_eq!(probe.drops(), 2, "each future is dropped once it is done");
    let again = catch_unwind(AssertUnwindSafe(|| chain.poll()));
    assert!(again.is_err(), "a finished Then panics when polled");
}

#[test]
fn a_coroutine_is_its_largest_state_plus_a_tag_not_the_sum() {
    let rows = size_table();
    let size = |what: &str| rows.iter().find(|row| row.what == what).map(|row| row.bytes).expect(what);
    let states: Vec<usize> = rows.iter().filter(|row| row.what.starts_with("state ")).map(|row| row.bytes).collect();
    assert_eq!(states.len(), 4);
    let largest = *states.iter().max().unwrap();
    let sum: usize = states.iter().sum();
    let coroutine = size("hand-written FetchThree (enum)");
    assert!(coroutine >= largest, "the enum holds its largest state: {coroutine} < {largest}");
    assert!(coroutine <= largest + 16, "the enum is its largest state plus a tag: {coroutine} vs {largest}");
    assert!(coroutine < sum, "the enum is smaller than the sum of its states: {coroutine} vs {sum}");
    // The state that no longer needs `fetch` is smaller than the one before it.
    assert!(size("state AwaitingThree") < size("state AwaitingTwo"));
    assert!(size("async fn fetch_three_async") >= largest);
}

#[test]
fn a_leaf_polled_outside_an_executor_is_an_error_not_a_panic() -> io::Result<()> {
    // A listener, so that connecting works and registering is what fails.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut get = HttpGetFuture::new(listener.local_addr()?, "/0/x");
    match get.poll() {
        PollState::Ready(Err(e)) => assert!(e.to_string().contains("outside an Executor"), "{e}"),
        PollState::Ready(Ok(body)) => panic!("expected an error, got the body {body:?}"),
        PollState::NotReady => panic!("expected an error, got NotReady"),
    }
    Ok(())
}

#[test]
fn the_executor_reports_futures_that_nothing_can_wake() -> io::Result<()> {
    let probe = Probe::new();
    let mut executor = Executor::new(&Log::recording())?;
    // A Countdown says NotReady without registering any socket: waiting in
    // epoll would never end, so the executor must say so instead of hanging.
    let error = executor.block_on(Countdown::new("lonely", 1, (), &probe)).expect_err("cannot finish");
    assert!(error.to_string().contains("nothing could ever wake them"), "{error}");
    assert_eq!(executor.stats().polls, 1);
    assert_eq!(executor.stats().waits, 0);
    Ok(())
}

#[test]
fn one_executor_per_thread() -> io::Result<()> {
    let log = Log::recording();
    let first = Executor::new(&log)?;
    assert_eq!(Executor::new(&log).err().map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
    drop(first);
    Executor::new(&log).map(drop)
}
