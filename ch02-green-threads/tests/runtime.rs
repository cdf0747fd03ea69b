//! The runtime's behaviour: round-robin order, many fibers, panics, joins,
//! and misuse that must fail cleanly.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use ch02_green_threads::{Config, JoinError, JoinHandle, Switch, current_id, run, spawn, stats, yield_now};

/// Every kind of switch: the scheduling must not depend on which one runs.
const SWITCHES: [Switch; 3] = [Switch::Call, Switch::INLINE, Switch::Inline { save_float_control: true }];

/// A shared log the fibers write their steps to.
type Log = Rc<RefCell<Vec<String>>>;

fn note(log: &Log, what: String) {
    log.borrow_mut().push(what);
}

#[test]
fn fibers_take_turns_in_exact_round_robin_order_with_the_main_fiber() -> io::Result<()> {
    for switch in SWITCHES {
        round_robin(switch)?;
    }
    Ok(())
}

fn round_robin(switch: Switch) -> io::Result<()> {
    let log = run(Config::switching_with(switch), || -> io::Result<Log> {
        let log: Log = Rc::default();
        for name in ["a", "b", "c"] {
            let log = Rc::clone(&log);
            spawn(move || {
                for i in 0..3 {
                    note(&log, format!("{name}{i}"));
                    yield_now();
                }
            })?;
        }
        for i in 0..3 {
            note(&log, format!("main{i}"));
            yield_now();
        }
        Ok(log)
    })??;
    let expected = ["main0", "a0", "b0", "c0", "main1", "a1", "b1", "c1", "main2", "a2", "b2", "c2"];
    assert_eq!(*log.borrow(), expected, "{switch:?}");
    Ok(())
}

#[test]
fn a_fiber_spawned_by_a_fiber_runs_after_those_already_waiting() -> io::Result<()> {
    let log = run(Config::default(), || -> io::Result<Log> {
        let log: Log = Rc::default();
        let inner_log = Rc::clone(&log);
        spawn(move || -> io::Result<()> {
            note(&inner_log, "a spawns d".into());
            let d_log = Rc::clone(&inner_log);
            spawn(move || note(&d_log, "d".into()))?;
            yield_now();
            note(&inner_log, "a again".into());
            Ok(())
        })?;
        let b_log = Rc::clone(&log);
        spawn(move || note(&b_log, "b".into()))?;
        yield_now();
        note(&log, "main".into());
        Ok(log)
    })??;
    assert_eq!(*log.borrow(), ["a spawns d", "b", "main", "d", "a again"]);
    Ok(())
}

#[test]
fn ten_thousand_fibers_all_finish_with_the_expected_sum() -> io::Result<()> {
    for switch in SWITCHES {
        ten_thousand_fibers(switch)?;
    }
    Ok(())
}

fn ten_thousand_fibers(switch: Switch) -> io::Result<()> {
    const FIBERS: u64 = 10_000;
    const YIELDS: u64 = 10;
    let (sum, from_joins, stats) = run(Config::switching_with(switch), || -> io::Result<_> {
        let sum = Rc::new(Cell::new(0u64));
        let mut fibers = Vec::new();
        for n in 1..=FIBERS {
            let sum = Rc::clone(&sum);
            fibers.push(spawn(move || {
                for _ in 0..YIELDS {
                    sum.set(sum.get() + n);
                    yield_now();
                }
                n
            })?);
        }
        let mut from_joins = 0;
        for fiber in fibers {
            from_joins += fiber.join().map_err(io::Error::other)?;
        }
        Ok((sum.get(), from_joins, stats().expect("inside run")))
    })??;
    assert_eq!(from_joins, FIBERS * (FIBERS + 1) / 2);
    assert_eq!(sum, YIELDS * FIBERS * (FIBERS + 1) / 2);
    assert_eq!((stats.spawned, stats.finished, stats.panicked), (FIBERS, FIBERS, 0));
    Ok(())
}

#[test]
fn a_panicking_fiber_is_reported_and_the_others_finish_correctly() -> io::Result<()> {
    for switch in SWITCHES {
        a_panicking_fiber(switch)?;
    }
    Ok(())
}

fn a_panicking_fiber(switch: Switch) -> io::Result<()> {
    let (results, stats) = run(Config::switching_with(switch), || -> io::Result<_> {
        let mut fibers = Vec::new();
        for n in 1..=5u64 {
            fibers.push(spawn(move || {
                let mut total = 0;
                for i in 0..4 {
                    if n == 3 && i == 2 {
                        panic!("fiber three gives up");
                    }
                    total += n * 100 + i;
                    yield_now();
                }
                total
            })?);
        }
        let results: Vec<_> = fibers.into_iter().map(|f| f.join()).collect();
        Ok((results, stats().expect("inside run")))
    })??;
    let expected = |n: u64| (0..4).map(|i| n * 100 + i).sum::<u64>();
    for (n, result) in (1..=5).zip(&results) {
        match result {
            Ok(total) => assert_eq!(*total, expected(n), "fiber {n}"),
            Err(JoinError::Panicked { fiber, message }) => {
                assert_eq!((*fiber, message.as_str()), (3, "fiber three gives up"));
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(results[2].is_err() && results.iter().filter(|r| r.is_ok()).count() == 4);
    assert_eq!((stats.finished, stats.panicked), (5, 1));
    Ok(())
}

#[test]
fn join_reports_stack_use_when_measuring() -> io::Result<()> {
    let (deep, shallow) = run(Config::measuring_stack_use(), || -> io::Result<_> {
        let deep = spawn(|| std::hint::black_box([7u8; 16 * 1024])[100])?;
        let shallow = spawn(|| 1 + 1)?;
        Ok((deep.join_with_stats().1, shallow.join_with_stats().1))
    })??;
    let (deep_used, shallow_used) = (deep.stack_used.expect("measured"), shallow.stack_used.expect("measured"));
    assert!(shallow_used > 0, "shallow {shallow_used} B");
    if ch02_green_threads::asan::ENABLED {
        // ASan moves large locals to a "fake stack" on the heap (to catch
        // use after return), so the array is not on the fiber's stack.
        eprintln!("deep vs shallow not compared under AddressSanitizer: it keeps the array off the stack");
        return Ok(());
    }
    assert!(deep_used >= 16 * 1024, "a 16 KiB array lives on the stack, but only {deep_used} B were used");
    assert!(shallow_used < deep_used, "shallow {shallow_used} B, deep {deep_used} B");
    assert_eq!(deep.stack_size, 64 * 1024);
    Ok(())
}

#[test]
fn misuse_fails_cleanly() -> io::Result<()> {
    // Outside a runtime: spawn is an error, yield_now does nothing.
    assert_eq!(spawn(|| ()).unwrap_err().kind(), io::ErrorKind::NotFound);
    yield_now();
    assert_eq!(current_id(), None);
    // A bad stack size.
    let tiny = Config { stack_size: 100, ..Config::default() };
    assert_eq!(run(tiny, || ()).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    run(Config::default(), || -> io::Result<()> {
        assert_eq!(current_id(), Some(0));
        // No runtime inside a runtime, not even from a fiber.
        assert_eq!(run(Config::default(), || ()).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let nested = spawn(|| run(Config::default(), || ()).map_err(|e| e.kind()))?;
        assert_eq!(nested.join().map_err(io::Error::other)?, Err(io::ErrorKind::AlreadyExists));
        Ok(())
    })??;
    Ok(())
}

#[test]
fn a_fiber_that_joins_itself_gets_an_error_not_a_hang() -> io::Result<()> {
    let outcome = run(Config::default(), || -> io::Result<_> {
        let slot: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let outcome: Rc<Cell<Option<bool>>> = Rc::default();
        let (own, out) = (Rc::clone(&slot), Rc::clone(&outcome));
        let handle = spawn(move || {
            let me = own.borrow_mut().take().expect("main put our handle here before we ran");
            out.set(Some(matches!(me.join(), Err(JoinError::Unfinishable { .. }))));
        })?;
        *slot.borrow_mut() = Some(handle); // the fiber has not run yet: spawn only queues it
        Ok(outcome) // `run` waits for the fiber before returning
    })??;
    assert_eq!(outcome.get(), Some(true));
    Ok(())
}

#[test]
fn a_handle_from_an_earlier_runtime_never_waits_for_a_stranger() -> io::Result<()> {
    // Runtime 1: fiber 1 is left suspended when `main` panics, and its handle
    // escapes. (The fiber's stack is leaked, as `run` documents.)
    let escaped: Rc<RefCell<Option<JoinHandle<u32>>>> = Rc::default();
    let slot = Rc::clone(&escaped);
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(Config::default(), move || {
            let handle = spawn(|| {
                yield_now();
                1
            })
            .expect("inside run");
            yield_now(); // fiber 1 runs up to its yield
            *slot.borrow_mut() = Some(handle);
            panic!("main gives up on purpose (the test expects this)");
        })
    }));
    assert!(first.is_err(), "the panic came out of run");
    let old = escaped.borrow_mut().take().expect("main stored the handle");
    // Runtime 2: its fiber 1 sits in the same slot with the same id, but it
    // is a stranger. Joining the old handle must not wait for it.
    let (joined, stranger_done) = run(Config::default(), || -> io::Result<_> {
        let stranger = spawn(|| {
            for _ in 0..3 {
                yield_now();
            }
        })?;
        assert_eq!(stranger.id(), old.id());
        let joined = old.join();
        Ok((joined, stranger.is_finished()))
    })??;
    assert!(matches!(joined, Err(JoinError::Unfinishable { fiber: 1, .. })), "{joined:?}");
    assert!(!stranger_done, "join waited for runtime 2's fiber 1");
    Ok(())
}

/// Panics when dropped: for panics that happen after a fiber's closure is done.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

#[test]
fn panics_from_drops_after_the_closure_are_caught_at_the_fiber_entry_too() -> io::Result<()> {
    // None of these may unwind past the fiber's entry (there is nothing
    // above it but the switch; the process would abort): each is caught, and
    // the runtime carries on with the others.
    let (captured, normal, stats) = run(Config::default(), || -> io::Result<_> {
        // 1. A captured value whose drop panics as the closure ends.
        let guard = PanicsOnDrop("a capture's drop");
        let captured = spawn(move || {
            let _moved_in = &guard;
            yield_now();
            1
        })?;
        // 2. The fiber's result, dropped on the fiber because nobody will
        //    join it (its handle is dropped at once), panics.
        drop(spawn(|| PanicsOnDrop("the unjoined result's drop"))?);
        // 3. The panic payload itself panics when dropped.
        drop(spawn(|| std::panic::panic_any(PanicsOnDrop("the payload's drop")))?);
        let normal = spawn(|| {
            for _ in 0..3 {
                yield_now();
            }
            7
        })?;
        Ok((captured.join(), normal.join(), stats().expect("inside run")))
    })??;
    assert!(
        matches!(&captured, Err(JoinError::Panicked { fiber: 1, message }) if message == "a capture's drop"),
        "{captured:?}"
    );
    assert_eq!(normal, Ok(7));
    assert_eq!((stats.finished, stats.panicked), (4, 3));
    Ok(())
}
