//! The check of exercise 4.2: the coroutine stepped by hand with scripted
//! GETs (each `NotReady` twice before its answer), its size next to the
//! compiler's, and a real run on chapter 4's executor.

use std::io;

use ch01_os_threads::delay_server::{Config, DelayServer};
use ch04_coroutines::http::{Http, HttpGetFuture};
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::Executor;
use ch04_coroutines::testing::{Probe, Script, poll_by_hand};
use ch04_exercises::greet::{Greet, greet_async};
use exercise_harness::{Verdict, ensure};

/// What the program returns when the server echoes the messages.
const ANSWER: &str = "hello-world, world!";

/// `NotReady` answers of each scripted GET before its answer.
const NOT_READY: usize = 2;

pub fn check() -> Verdict {
    let probe = Probe::new();
    let script = Script { not_ready: NOT_READY, fail_on: None, probe: probe.clone() };
    let mut greet = Greet::new(script.clone());
    ensure!(probe.polls() == 0, "Greet::new polled a GET: creating a coroutine runs none of its code");
    let Some((answer, polls)) = poll_by_hand(&mut greet, 20) else {
        return Err("Greet was not Ready after 20 polls (its two GETs need 6 between them)".into());
    };
    ensure!(answer.as_deref().ok() == Some(ANSWER), "Greet returned {answer:?}; greet_async returns Ok({ANSWER:?})");
    ensure!(
        probe.completed() == ["world", "hello-world"],
        "the GETs asked for {:?}; greet_async asks for [\"world\", \"hello-world\"]",
        probe.completed()
    );
    let needed = 2 * NOT_READY + 1;
    ensure!(
        polls == needed,
        "Greet needed {polls} polls, where {needed} suffice (each GET says NotReady {NOT_READY} times): return \
         NotReady only when a GET did, and when the first GET is ready, start the second and poll it in the same \
         call. On a real executor, a NotReady that no leaf gave is never followed by another poll: nothing \
         would wake the task"
    );

    let failing = Probe::new();
    let script = Script { not_ready: 0, fail_on: Some("world".into()), probe: failing.clone() };
    let failed = poll_by_hand(&mut Greet::new(script), 5).map(|(answer, _)| answer);
    ensure!(
        matches!(&failed, Some(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset),
        "when the first GET fails, Greet returned {failed:?}; like the `?` after `.await`, it should return that \
         error at once"
    );
    ensure!(failing.completed() == ["world"], "after the first GET failed, Greet still started the second");

    // The leanest states: (fetch, first GET) and (name, second GET). An
    // enum is as large as its largest variant, plus a tag if no field has a
    // spare value to hold it.
    let largest = size_of::<(Http, HttpGetFuture)>().max(size_of::<(String, HttpGetFuture)>());
    let lean = largest + size_of::<usize>();
    let http = Http { addr: ([127, 0, 0, 1], 0).into() };
    let (ours, compilers) = (size_of::<Greet<Http>>(), size_of_val(&greet_async(http)));
    ensure!(
        ours <= lean,
        "Greet<Http> is {ours} bytes; with states that hold only what the code after each .await needs, it is at \
         most {lean} (its largest state, {largest} bytes, plus a tag). The compiler's greet_async is {compilers}: \
         it keeps `fetch` (and the format! temporary) to the end. Once the second GET has started, your \
         coroutine needs only `name` and that GET"
    );

    let server = DelayServer::start(Config::default()).map_err(|e| format!("cannot start a delay server: {e}"))?;
    let mut executor = Executor::new(&Log::silent()).map_err(|e| e.to_string())?;
    let answer = executor
        .block_on(Greet::new(Http { addr: server.addr() }))
        .map_err(|e| format!("the executor failed: {e}"))?
        .map_err(|e| format!("Greet failed against the delay server: {e}"))?;
    ensure!(answer == ANSWER, "against the delay server, Greet returned {answer:?}; expected {ANSWER:?}");
    Ok(())
}
