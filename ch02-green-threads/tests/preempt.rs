//! Taking the CPU back: fibers that never yield share the CPU, at
//! checkpoints and asynchronously, with results identical to a run without
//! preemption; code outside the preemptible section is never switched in
//! the middle; and bad settings are refused.
//!
//! No test measures time. Loops are bounded by counts of work: fibers run
//! until each has had a number of turns, or until they have done so much
//! work that the turns could only be missing because preemption did not
//! work (then the test fails, it does not hang). Never by counts of ticks:
//! the timer ticks by the wall clock, also while the machine is too busy to
//! run this thread, so a bound in ticks is a time limit in disguise.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ch02_green_threads::preempt::{self, MAX_QUANTUM, MIN_QUANTUM, section, ticks};
use ch02_green_threads::preemptible::{self, mix, spin};
use ch02_green_threads::{Config, Preempt, Switch, checkpoint, current_id, run, spawn, stats, yield_now};

/// Every kind of switch: preemption must work with each.
const SWITCHES: [Switch; 3] = [Switch::Call, Switch::INLINE, Switch::Inline { save_float_control: true }];

/// The quantum of these tests: short, so that they take many ticks quickly.
const QUANTUM: Duration = Duration::from_micros(500);

fn config(preempt: Preempt, switch: Switch) -> Config {
    Config { preempt, switch, ..Config::default() }
}

fn checkpoints() -> Preempt {
    Preempt::Checkpoints { quantum: QUANTUM }
}

fn asynchronous() -> Preempt {
    Preempt::Asynchronous { quantum: QUANTUM }
}

#[test]
fn three_fibers_calling_only_checkpoint_take_turns_round_robin() -> io::Result<()> {
    for switch in SWITCHES {
        checkpoint_round_robin(switch)?;
    }
    Ok(())
}

fn checkpoint_round_robin(switch: Switch) -> io::Result<()> {
    /// Turns each fiber takes before it stops.
    const TURNS: usize = 5;
    /// Rounds of work after which a fiber gives up: hundreds of quanta's
    /// worth even in an optimised build (a round is `mix(_, 64)`, about
    /// 200 ns there), so only a fiber that checkpoints never stopped gets
    /// here.
    const GIVE_UP_AFTER_ROUNDS: u64 = 2_000_000;
    let (log, results, stats) = run(config(checkpoints(), switch), || -> io::Result<_> {
        // Who ran last, and the order in which the fibers started turns.
        let last = Rc::new(Cell::new(0u64));
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut fibers = Vec::new();
        for seed in 1..=3u64 {
            let (last, log) = (Rc::clone(&last), Rc::clone(&log));
            fibers.push(spawn(move || {
                let me = current_id().unwrap_or(0);
                let (mut turns, mut x, mut rounds) = (0, seed, 0);
                while turns < TURNS && rounds < GIVE_UP_AFTER_ROUNDS {
                    // Only a checkpoint can switch us (cooperative code):
                    // the Cell and the RefCell are safe to use here.
                    if last.get() != me {
                        last.set(me);
                        log.borrow_mut().push(me);
                        turns += 1;
                    }
                    x = mix(x, 64); // some work
                    rounds += 1;
                    checkpoint(); // the only way this loop gives up the CPU
                }
                x
            })?);
        }
        let results = fibers.into_iter().map(|f| f.join().map_err(io::Error::other)).collect::<io::Result<Vec<_>>>()?;
        let log = log.borrow().clone();
        Ok((log, results, stats().expect("inside run")))
    })??;
    let expected: Vec<u64> = [1, 2, 3].repeat(TURNS);
    assert_eq!(log, expected, "{switch:?}: the order in which fibers started their turns ({stats:?})");
    // Every forced switch was one of them reaching a checkpoint late.
    assert!(stats.preempted_at_checkpoints >= (3 * (TURNS as u64 - 1)), "{switch:?}: {stats:?}");
    assert_eq!(stats.preempted_asynchronously, 0, "{switch:?}: checkpoints only");
    // The work did not change: the same as without a runtime (each fiber's
    // rounds depend on its turns, so compare a fiber with itself: a result
    // is mix applied some number of times, which `reached` finds).
    for (seed, result) in (1..=3).zip(&results) {
        assert!(reached(seed, *result), "{switch:?}: fiber {seed}'s result is not mix(mix(...)) of its seed");
    }
    Ok(())
}

/// Whether `value` is `seed` after some number of `mix(_, 64)` rounds
/// (at most a million).
fn reached(seed: u64, value: u64) -> bool {
    let mut x = seed;
    (0..1_000_000).any(|_| {
        x = mix(x, 64);
        x == value
    })
}

// ANCHOR: never_yield_test
/// `mix` in chunks, reporting progress through an atomic: the work of one
/// fiber that never yields. In the preemptible section, like `mix` itself.
#[unsafe(link_section = "preempt_text")]
#[inline(never)]
fn mix_reporting(seed: u64, rounds: u64, progress: &AtomicU64) -> u64 {
    const CHUNK: u64 = 1 << 10;
    let (mut x, mut done) = (seed, 0);
    while done < rounds {
        x = mix(x, CHUNK);
        done += CHUNK;
        progress.store(done, Ordering::Relaxed);
    }
    x
}

#[test]
fn three_fibers_that_never_yield_are_preempted_and_compute_bit_identical_results() -> io::Result<()> {
    for switch in SWITCHES {
        never_yielding(switch)?;
    }
    Ok(())
}

fn never_yielding(switch: Switch) -> io::Result<()> {
    // Long enough that the three are seen in progress at once; how long that
    // is depends on the machine and the build, so the work doubles until it
    // is (a bounded number of times).
    let mut rounds = 1 << 18;
    for _ in 0..12 {
        let without: Vec<u64> = (1..=3).map(|seed| mix_reporting(seed, rounds, &AtomicU64::new(0))).collect();
        let (results, snapshots, stats) = run(config(asynchronous(), switch), || -> io::Result<_> {
            let progress: Rc<[AtomicU64; 3]> = Rc::new(Default::default());
            let mut fibers = Vec::new();
            for seed in 1..=3u64 {
                let progress = Rc::clone(&progress);
                fibers.push(spawn(move || mix_reporting(seed, rounds, &progress[seed as usize - 1]))?);
            }
            // The main fiber gets a turn after each round of the ring: it
            // notes how far each fiber has come.
            let mut snapshots = Vec::new();
            while !fibers.iter().all(|fiber| fiber.is_finished()) {
                snapshots.push(progress.each_ref().map(|p| p.load(Ordering::Relaxed)));
                yield_now();
            }
            let results =
                fibers.into_iter().map(|f| f.join().map_err(io::Error::other)).collect::<io::Result<Vec<_>>>()?;
            Ok((results, snapshots, stats().expect("inside run")))
        })??;
        // Bit for bit what they compute without preemption, every attempt.
        assert_eq!(results, without, "{switch:?}, {rounds} rounds: preemption changed a result");
        let all_under_way = snapshots.iter().filter(|s| s.iter().all(|&done| done > 0 && done < rounds)).count();
        if all_under_way >= 2 {
            assert!(stats.preempted_asynchronously >= 6, "{switch:?}: {stats:?}");
            assert_eq!(stats.preempted_at_checkpoints, 0, "{switch:?}: no checkpoint in this code");
            let latencies = preempt_latency_count(&stats);
            assert!(latencies > 0, "{switch:?}: no latency recorded");
            return Ok(());
        }
        // Not seen under way together: the work fit in a quantum or two.
        // Unless nothing was ever preempted over many ticks: then it is broken.
        assert!(
            stats.preempted_asynchronously > 0 || stats.ticks < 100,
            "{switch:?}: {} ticks, and not one fiber was preempted: {stats:?}",
            stats.ticks
        );
        rounds *= 2;
    }
    panic!("{switch:?}: even {rounds} rounds of work were done before the timer ticked often enough");
}
// ANCHOR_END: never_yield_test

/// How many latencies the runtime recorded (one per forced switch, up to
/// its limit).
fn preempt_latency_count(stats: &ch02_green_threads::Stats) -> u64 {
    (stats.preempted_asynchronously + stats.preempted_at_checkpoints).min(preempt::MAX_LATENCIES as u64)
}

// ANCHOR: outside_test
#[test]
fn code_outside_the_section_is_never_switched_mid_way_and_yields_at_its_next_checkpoint() -> io::Result<()> {
    /// How often each counting fiber increments the counter.
    const INCREMENTS: u64 = 20;
    let (counter, switched_mid_way, not_switched_at_checkpoint, stats) =
        run(config(asynchronous(), Switch::Call), || {
            // Bumped by a spinner in the section every round: it changes only
            // while the spinner runs.
            let epoch = Rc::new(AtomicU64::new(0));
            let stop = Rc::new(AtomicBool::new(false));
            let counter = Rc::new(Cell::new(0u64)); // updated non-atomically
            let switched_mid_way = Rc::new(Cell::new(0));
            let not_switched_at_checkpoint = Rc::new(Cell::new(0));
            let mut counters = Vec::new();
            for _ in 0..2 {
                let (epoch, counter) = (Rc::clone(&epoch), Rc::clone(&counter));
                let (mid_way, not_at_checkpoint) =
                    (Rc::clone(&switched_mid_way), Rc::clone(&not_switched_at_checkpoint));
                counters.push(spawn(move || {
                    for _ in 0..INCREMENTS {
                        // A read-modify-write that takes at least two quantum
                        // ends: the timer ticks while this fiber is outside the
                        // section, and must only set the flag.
                        let before = epoch.load(Ordering::Relaxed);
                        let value = counter.get();
                        let until = ticks() + 2;
                        while ticks() < until {
                            std::hint::spin_loop();
                        }
                        counter.set(value + 1);
                        mid_way.set(mid_way.get() + u32::from(epoch.load(Ordering::Relaxed) != before));
                        // Our time is up: this checkpoint yields, and the
                        // spinner runs before we do again.
                        let before = epoch.load(Ordering::Relaxed);
                        checkpoint();
                        not_at_checkpoint
                            .set(not_at_checkpoint.get() + u32::from(epoch.load(Ordering::Relaxed) == before));
                    }
                })?);
            }
            // The spinner: never yields, always in the section, bounded in case
            // preemption is broken (then it finishes alone and the test fails).
            let (spin_stop, spin_epoch) = (Rc::clone(&stop), Rc::clone(&epoch));
            let spinner = spawn(move || spin(&spin_stop, &spin_epoch, 50_000_000))?;
            for fiber in counters {
                fiber.join().map_err(io::Error::other)?;
            }
            stop.store(true, Ordering::Relaxed);
            let spun = spinner.join().map_err(io::Error::other)?;
            assert!(spun.stopped, "the spinner ran to its bound: it was never preempted");
            Ok::<_, io::Error>((
                counter.get(),
                switched_mid_way.get(),
                not_switched_at_checkpoint.get(),
                stats().unwrap(),
            ))
        })??;
    assert_eq!(counter, 2 * INCREMENTS, "an update outside the section was cut in two: {stats:?}");
    assert_eq!(switched_mid_way, 0, "a fiber outside the section was switched between two ticks: {stats:?}");
    assert_eq!(not_switched_at_checkpoint, 0, "a checkpoint after the quantum's end did not yield: {stats:?}");
    assert!(stats.preempted_at_checkpoints >= 2 * INCREMENTS, "{stats:?}");
    assert!(stats.preempted_asynchronously >= 1, "the spinner was never preempted: {stats:?}");
    Ok(())
}
// ANCHOR_END: outside_test

#[test]
fn a_tick_for_a_fiber_that_has_yielded_since_does_not_cut_the_next_ones_turn() -> io::Result<()> {
    // Fiber A waits for a tick (the flag now names A), then yields by
    // itself. Fiber B's checkpoint must not yield for A's tick. If a tick
    // lands in B's own few instructions, that attempt tells nothing: again.
    let mut inconclusive = 0;
    for _ in 0..50 {
        let verdict = run(config(checkpoints(), Switch::Call), || -> io::Result<Option<bool>> {
            let a_ran_again = Rc::new(Cell::new(false));
            let flag = Rc::clone(&a_ran_again);
            let a = spawn(move || {
                let until = ticks() + 1;
                while ticks() < until {
                    std::hint::spin_loop();
                }
                yield_now(); // the tick named A; A yields without a checkpoint
                flag.set(true);
            })?;
            let b = spawn(move || {
                let ticks_before = ticks();
                checkpoint(); // A's tick: must not yield here
                let yielded = a_ran_again.get();
                (ticks() == ticks_before).then_some(yielded)
            })?;
            a.join().map_err(io::Error::other)?;
            b.join().map_err(io::Error::other)
        })??;
        match verdict {
            Some(yielded) => {
                assert!(!yielded, "fiber B yielded at its first checkpoint for a tick that ended fiber A's turn");
                return Ok(());
            }
            None => inconclusive += 1,
        }
    }
    panic!("{inconclusive} attempts in a row had a tick inside fiber B's checkpoint");
}

// ANCHOR: section_test
/// A function of this test binary in the section: the linker merges it
/// with the library's into one range.
#[unsafe(link_section = "preempt_text")]
#[inline(never)]
fn preemptible_here(x: u64) -> u64 {
    x.wrapping_mul(3)
}

/// The same, outside it.
#[inline(never)]
fn not_preemptible(x: u64) -> u64 {
    x.wrapping_mul(5)
}

#[test]
fn the_linker_gathers_every_marked_function_into_the_section_and_nothing_else() {
    let range = section();
    assert!(range.start < range.end, "empty section {range:x?}");
    let inside = [
        ("preemptible::mix", mix as fn(u64, u64) -> u64 as usize),
        ("preemptible::spin", spin as fn(&AtomicBool, &AtomicU64, u64) -> preemptible::Spun as usize),
        ("preemptible_here (this test)", preemptible_here as fn(u64) -> u64 as usize),
        ("mix_reporting (this test)", mix_reporting as fn(u64, u64, &AtomicU64) -> u64 as usize),
    ];
    for (name, address) in inside {
        assert!(range.contains(&address), "{name} at {address:#x} is outside the section {range:x?}");
    }
    let outside = [
        ("not_preemptible (this test)", not_preemptible as fn(u64) -> u64 as usize),
        ("yield_now", yield_now as fn() as usize),
        (
            "spin_with_checkpoints",
            preemptible::spin_with_checkpoints as fn(&AtomicBool, &AtomicU64, u64) -> preemptible::Spun as usize,
        ),
        (
            "ch02_green_threads::arch::switch",
            ch02_green_threads::arch::switch as unsafe extern "sysv64" fn(*mut *mut u8, *mut u8) as usize,
        ),
    ];
    for (name, address) in outside {
        assert!(!range.contains(&address), "{name} at {address:#x} is inside the section {range:x?}");
    }
    // Called, they still compute (and are not inlined away from the section).
    assert_eq!((preemptible_here(2), not_preemptible(2)), (6, 10));
}
// ANCHOR_END: section_test

#[test]
fn bad_quanta_are_refused_and_preemption_is_off_by_default() -> io::Result<()> {
    assert_eq!(Config::default().preempt, Preempt::Off);
    for quantum in [Duration::ZERO, MIN_QUANTUM / 2, MAX_QUANTUM * 2] {
        for preempt in [Preempt::Checkpoints { quantum }, Preempt::Asynchronous { quantum }] {
            let error = run(Config::preempting(preempt), || ()).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{preempt:?}: {error}");
            assert!(error.to_string().contains("out of range"), "{error}");
        }
    }
    // Without preemption: no ticks, checkpoints never yield, and a spinner
    // runs to its bound before anyone else runs.
    let (ticks_seen, spun, other_ran_before) = run(Config::default(), || -> io::Result<_> {
        let other_ran = Rc::new(Cell::new(false));
        let flag = Rc::clone(&other_ran);
        let (stop, progress) = (Rc::new(AtomicBool::new(false)), Rc::new(AtomicU64::new(0)));
        let spinner = spawn(move || {
            let spun = preemptible::spin_with_checkpoints(&stop, &progress, 100_000);
            (spun, flag.get())
        })?;
        let other = spawn(move || other_ran.set(true))?;
        let (spun, other_ran_before) = spinner.join().map_err(io::Error::other)?;
        other.join().map_err(io::Error::other)?;
        Ok((stats().expect("inside run").ticks, spun, other_ran_before))
    })??;
    assert_eq!(ticks_seen, 0);
    assert!(!spun.stopped && spun.rounds == 100_000 && !other_ran_before, "{spun:?}");
    Ok(())
}

#[test]
fn a_thread_that_blocks_sigurg_cannot_preempt_and_is_told_so() -> io::Result<()> {
    std::thread::spawn(|| -> io::Result<()> {
        // SAFETY: an all-zero sigset_t is valid to fill; we block SIGURG on
        // this test thread only, which ends right after.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGURG);
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0);
        }
        let error = run(Config::preempting(checkpoints()), || ()).unwrap_err();
        assert!(error.to_string().contains("SIGURG is blocked"), "{error}");
        // Cooperative runtimes do not care.
        run(Config::default(), || ())?;
        Ok(())
    })
    .join()
    .expect("test thread")
}
