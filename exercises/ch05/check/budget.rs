//! The check of exercise 5.4: `Numbers` polled by hand outside a runtime
//! (no budget there: always ready), then inside a task (one unit per
//! number), then a task looping over it next to another task, which must
//! get its turn before the budget's worth of numbers has gone twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use ch05_exercises::budget::Numbers;
use ch05_runtime::coop::{self, DEFAULT_BUDGET};
use ch05_runtime::time::timeout;
use ch05_runtime::{Runtime, spawn};
use exercise_harness::wakes::{PATIENCE, Wakes};
use exercise_harness::{Verdict, ensure};

/// Numbers the busy task takes in all.
const MANY: u64 = 100_000;

pub fn check() -> Verdict {
    let (wakes, waker) = Wakes::new();
    let mut cx = Context::from_waker(&waker);
    let mut numbers = Numbers::default();
    for expected in 0..3 {
        let got = numbers.poll_next(&mut cx);
        ensure!(
            got == Poll::Ready(expected),
            "outside a runtime's task (no budget), poll_next returned {got:?} where Ready({expected}) was due"
        );
    }
    ensure!(wakes.count() == 0, "poll_next woke its waker although it was Ready: only a Pending needs a wake");

    let runtime = Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    let spent = runtime
        .block_on(runtime.spawn(async {
            let mut numbers = Numbers::default();
            let before = coop::budget_remaining();
            numbers.next().await;
            let after = coop::budget_remaining();
            (before, after)
        }))
        .map_err(|e| format!("the task failed: {e}"))?;
    let (Some(before), Some(after)) = spent else {
        return Err("a task of chapter 5's runtime ran without a budget: is its coop_budget off?".to_string());
    };
    ensure!(
        before.saturating_sub(after) == 1,
        "awaiting one number spent {} unit(s) of the task's budget; expected 1: take a unit with \
         coop::poll_proceed(cx) and call spend() on it when you return Ready",
        before.saturating_sub(after)
    );

    let taken = Arc::new(AtomicU64::new(0));
    let seen = {
        let taken = Arc::clone(&taken);
        let both = async move {
            let counter = Arc::clone(&taken);
            let busy = spawn(async move {
                let mut numbers = Numbers::default();
                for _ in 0..MANY {
                    numbers.next().await;
                    taken.fetch_add(1, Ordering::Relaxed);
                }
            });
            let other = spawn(async move { counter.load(Ordering::Relaxed) });
            let seen = other.await.map_err(|e| e.to_string())?;
            busy.await.map_err(|e| e.to_string())?;
            Ok::<u64, String>(seen)
        };
        runtime
            .block_on(runtime.spawn(timeout(PATIENCE, both)))
            .map_err(|e| format!("the test task failed: {e}"))?
            .map_err(|_| format!("two tasks did not finish within {} s", PATIENCE.as_secs()))??
    };
    ensure!(
        seen <= u64::from(DEFAULT_BUDGET),
        "a task spawned next to one that loops over Numbers first ran after {seen} numbers; with the \
         budget spent on each, the loop yields after {DEFAULT_BUDGET}: when poll_proceed says Pending, \
         return Pending (ready! does that for you)"
    );
    Ok(())
}
