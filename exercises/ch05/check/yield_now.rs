//! The check of exercise 5.1: `yield_now` polled by hand (Pending once,
//! having woken its own waker, then Ready), then two tasks on chapter 5's
//! single-threaded runtime that must take turns.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;

use ch05_exercises::yield_now::yield_now;
use ch05_runtime::time::timeout;
use ch05_runtime::{Runtime, spawn};
use exercise_harness::wakes::{PATIENCE, Wakes};
use exercise_harness::{Verdict, ensure};

/// Steps each task takes, yielding after each.
const STEPS: usize = 3;

pub fn check() -> Verdict {
    let (wakes, waker) = Wakes::new();
    let mut cx = Context::from_waker(&waker);
    let mut future = yield_now();
    let first = Pin::new(&mut future).poll(&mut cx);
    ensure!(
        first.is_pending(),
        "the first poll of yield_now() returned Ready: it must return Pending once, so that the executor runs \
         the other tasks before this one goes on"
    );
    // Waking more than once is harmless (the task is queued once); not at
    // all is the mistake.
    ensure!(
        wakes.count() >= 1,
        "the first poll returned Pending without waking the waker: nothing else will ever wake this task (it \
         waits for nothing), so it must wake itself, or it is never polled again"
    );
    let second = Pin::new(&mut future).poll(&mut cx);
    ensure!(
        second.is_ready(),
        "the second poll returned Pending: yield once, then be Ready (or the task never goes on)"
    );

    let runtime = Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let taking_turns = async {
        let tasks: Vec<_> = ["a", "b"].into_iter().map(|name| spawn(steps(name, Arc::clone(&log)))).collect();
        for task in tasks {
            task.await.map_err(|e| format!("a task failed: {e}"))?;
        }
        Ok::<(), String>(())
    };
    runtime
        .block_on(timeout(PATIENCE, taking_turns))
        .map_err(|_| format!("two yielding tasks did not finish within {} s", PATIENCE.as_secs()))??;
    let order = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let expected: Vec<String> = (0..STEPS).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    ensure!(
        order == expected,
        "two tasks that yield after each step ran their steps in the order {order:?}; expected {expected:?}: \
         yield_now puts the task behind the others in the run queue, so they take turns"
    );
    Ok(())
}

/// A task that notes `STEPS` steps, yielding after each.
async fn steps(name: &'static str, log: Arc<Mutex<Vec<String>>>) {
    for i in 0..STEPS {
        log.lock().unwrap_or_else(PoisonError::into_inner).push(format!("{name}{i}"));
        yield_now().await;
    }
}
