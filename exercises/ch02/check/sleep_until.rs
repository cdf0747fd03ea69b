//! The check of exercise 2.1: two sleeping fibers and a third that counts
//! its turns. The count must grow while the others sleep, and the fiber
//! with the earlier deadline must wake first.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ch02_exercises::sleep_until::sleep_until;
use ch02_green_threads::{Config, run, spawn, yield_now};
use exercise_harness::{Verdict, ensure};

/// Who sleeps how long (from the same start), the later deadline first.
const SLEEPERS: [(&str, Duration); 2] = [("late", Duration::from_millis(40)), ("early", Duration::from_millis(10))];

/// A sleeper that woke: its name, whether the deadline had passed, and how
/// many turns the counting fiber had while it slept.
type Woke = (&'static str, bool, u64);

pub fn check() -> Verdict {
    let deadline = Instant::now() + Duration::from_millis(5);
    sleep_until(deadline);
    ensure!(Instant::now() >= deadline, "outside a runtime, sleep_until returned before its deadline");

    let woke = run(Config::default(), sleepers_and_a_counter).map_err(|e| format!("the runtime failed: {e}"))??;
    for &(name, on_time, _) in &woke {
        ensure!(on_time, "fiber {name:?} woke before its deadline: sleep_until must not return until it has passed");
    }
    let order: Vec<&str> = woke.iter().map(|&(name, ..)| name).collect();
    for &(name, _, turns) in &woke {
        ensure!(
            turns > 0,
            "while fiber {name:?} slept, the counting fiber had no turn at all: a sleeping fiber must hand its \
             turn on (thread::sleep blocks the whole OS thread, and every fiber on it)"
        );
    }
    ensure!(
        order == ["early", "late"],
        "the fibers woke in the order {order:?}; the one with the earlier deadline should wake first"
    );
    Ok(())
}

/// The main fiber of the runtime: starts the sleepers and the counter.
fn sleepers_and_a_counter() -> Result<Vec<Woke>, String> {
    let woke: Rc<RefCell<Vec<Woke>>> = Rc::default();
    let turns = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let mut sleepers = Vec::new();
    for (name, delay) in SLEEPERS {
        let (woke, turns) = (Rc::clone(&woke), Rc::clone(&turns));
        let sleeper = spawn(move || {
            let turns_before = turns.get();
            sleep_until(start + delay);
            woke.borrow_mut().push((name, Instant::now() >= start + delay, turns.get() - turns_before));
        });
        sleepers.push(sleeper.map_err(|e| format!("spawn failed: {e}"))?);
    }
    // The counter takes turns for as long as a sleeper is left (a sleeper
    // that panicked is finished too, so this ends whatever happens).
    while !sleepers.iter().all(|sleeper| sleeper.is_finished()) {
        turns.set(turns.get() + 1);
        yield_now();
    }
    for sleeper in sleepers {
        sleeper.join().map_err(|e| format!("a sleeping fiber failed: {e}"))?;
    }
    Ok(woke.take())
}
