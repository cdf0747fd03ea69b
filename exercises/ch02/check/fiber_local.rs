//! The check of exercise 2.3: fibers that count in their own values,
//! yielding between steps and in the middle of `with`.

use std::rc::Rc;

use ch02_exercises::fiber_local::FiberLocal;
use ch02_green_threads::{Config, JoinHandle, run, spawn, yield_now};
use exercise_harness::{Verdict, ensure};

/// How many fibers count at once, and to how much each.
const FIBERS: usize = 3;
const STEPS: u32 = 5;

pub fn check() -> Verdict {
    // Outside a runtime the thread is "fiber 0".
    let local = FiberLocal::new(|| 100u32);
    let first = local.with(|v| *v);
    ensure!(first == 100, "the first with() saw {first}; expected the value init makes (100)");
    local.with(|v| *v += 1);
    let again = local.with(|v| *v);
    ensure!(again == 101, "after adding 1, the next with() saw {again}; expected 101: keep the value between calls");

    // Each fiber counts in its own value; the main fiber's stays untouched.
    let (counts, main_value) = run(Config::default(), || -> Result<(Vec<u32>, u32), String> {
        let local = Rc::new(FiberLocal::new(|| 0u32));
        let fibers = start(FIBERS, &local, |local| {
            for _ in 0..STEPS {
                local.with(|v| *v += 1);
                yield_now();
            }
            local.with(|v| *v)
        })?;
        let counts = join(fibers)?;
        Ok((counts, local.with(|v| *v)))
    })
    .map_err(|e| format!("the runtime failed: {e}"))??;
    ensure!(
        counts.iter().all(|&count| count == STEPS),
        "{FIBERS} fibers each added 1 to their own value {STEPS} times, and then read {counts:?}; each should read \
         {STEPS}. Fibers that see each other's counts share one value: key the values by fiber (current_id())"
    );
    ensure!(main_value == 0, "the main fiber's value is {main_value}, but only the other fibers counted");

    // A fiber that yields in the middle of `with` keeps its value borrowed
    // while the others use theirs.
    let counts = run(Config::default(), || -> Result<Vec<u32>, String> {
        let local = Rc::new(FiberLocal::new(|| 0u32));
        let fibers = start(2, &local, |local| {
            local.with(|v| {
                *v += 1;
                yield_now(); // the other fiber runs its own `with` now
                *v += 10;
            });
            local.with(|v| *v)
        })?;
        join(fibers)
    })
    .map_err(|e| format!("the runtime failed: {e}"))?
    .map_err(|e| {
        format!(
            "{e}. A fiber yielded inside with(), and the next fiber's with() failed: something stayed borrowed \
             across the switch. Borrow the table only to find or add a value, and give each value a cell of its own"
        )
    })?;
    ensure!(counts == [11, 11], "two fibers that yielded inside with() read {counts:?}; expected [11, 11]");
    Ok(())
}

/// Spawns `n` fibers that run `body` with a shared `local`.
fn start(
    n: usize,
    local: &Rc<FiberLocal<u32>>,
    body: fn(&FiberLocal<u32>) -> u32,
) -> Result<Vec<JoinHandle<u32>>, String> {
    (0..n)
        .map(|_| {
            let local = Rc::clone(local);
            spawn(move || body(&local)).map_err(|e| format!("spawn failed: {e}"))
        })
        .collect()
}

/// Joins the fibers, turning a panic into its message.
fn join(fibers: Vec<JoinHandle<u32>>) -> Result<Vec<u32>, String> {
    fibers.into_iter().map(|fiber| fiber.join().map_err(|e| e.to_string())).collect()
}
