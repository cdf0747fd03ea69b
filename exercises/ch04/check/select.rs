//! The check of exercise 4.1: countdowns (leaves that are `NotReady` a set
//! number of times) show who was polled and who was dropped when; then
//! two real GETs race on chapter 4's executor.

use ch01_os_threads::delay_server::{Config, DelayServer};
use ch04_coroutines::future::{Future, PollState};
use ch04_coroutines::http::{Fetch, Http};
use ch04_coroutines::log::Log;
use ch04_coroutines::runtime::{self, Executor};
use ch04_coroutines::testing::{Countdown, Probe};
use ch04_exercises::select::{Either, select};
use exercise_harness::{Verdict, ensure};

pub fn check() -> Verdict {
    // `b` is ready on its 2nd poll, `a` would be on its 4th.
    let (a_probe, b_probe) = (Probe::new(), Probe::new());
    let mut race = select(Countdown::new("a", 3, 'a', &a_probe), Countdown::new("b", 1, 'b', &b_probe));
    let first = race.poll();
    ensure!(first == PollState::NotReady, "the first poll returned {first:?}, but neither future was ready yet");
    ensure!(
        a_probe.polls() == 1 && b_probe.polls() == 1,
        "the first poll of select polled a {} time(s) and b {} time(s): poll each once, a then b",
        a_probe.polls(),
        b_probe.polls()
    );
    let second = race.poll();
    ensure!(second == PollState::Ready(Either::Right('b')), "the second poll returned {second:?}; b was ready");
    ensure!(
        a_probe.drops() == 1,
        "select returned Ready, and the future that lost is still alive (not dropped) inside it. Cancelling is \
         dropping: drop the loser at once (a GET that lost would keep its socket open and registered)"
    );
    drop(race);

    let both = Probe::new();
    let mut tie = select(Countdown::new("a", 0, 1, &both), Countdown::new("b", 0, 2, &both));
    let tied = tie.poll();
    ensure!(
        tied == PollState::Ready(Either::Left(1)),
        "when both futures are ready on the first poll, select returned {tied:?}; it should return a's output \
         (poll a first)"
    );
    ensure!(both.polls() == 1, "a was ready at once, yet select polled {} futures: b need not run", both.polls());

    // Two real GETs: the fast one wins, the slow one is cancelled.
    let server = DelayServer::start(Config::default()).map_err(|e| format!("cannot start a delay server: {e}"))?;
    let http = Http { addr: server.addr() };
    let mut executor = Executor::new(&Log::silent()).map_err(|e| e.to_string())?;
    let winner = executor
        .block_on(select(http.get(5_000, "slow"), http.get(10, "fast")))
        .map_err(|e| format!("the executor failed: {e}"))?;
    let registered = runtime::registered().map_err(|e| e.to_string())?;
    match winner {
        Either::Right(Ok(body)) if body == "fast" => {}
        other => {
            return Err(format!(
                "select of a 5 s GET and a 10 ms GET returned {other:?}; expected Right(Ok(\"fast\"))"
            ));
        }
    }
    ensure!(registered == 0, "after select returned, {registered} socket(s) were still registered");
    Ok(())
}
