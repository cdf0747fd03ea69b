//! The check behind every chapter's exercises: `cargo run -p ch03-exercises`
//! runs chapter 3's checks against your code and says, in plain words, what
//! is done and what is wrong.
//!
//! A chapter's exercise crate (`exercises/chNN/`) has three parts:
//!
//! - `src/`: the learner's code, one file per exercise, `todo!()` where the
//!   work goes. It compiles from the start.
//! - `solutions/`: the reference solutions, one file per exercise. The book's
//!   solution pages include them, and the crate's `solution` feature builds
//!   the crate from them instead of from `src/` (that is how CI proves every
//!   check passes on a solution).
//! - `check/`: the binary, which lists the chapter's [`Exercise`]s and hands
//!   them to [`main`]. Each exercise's check is a plain function that returns
//!   `Err("what is wrong, and why")` or `Ok(())`.
//!
//! This crate runs each check on a thread of its own and turns what happened
//! into a verdict ([`Outcome`]):
//!
//! - `PASS`: the check returned `Ok`;
//! - `TODO`: the learner's code reached a `todo!()` (the verdict names the
//!   file and line), so the exercise is not started or not finished;
//! - `FAIL`: the check returned its explanation, or the code panicked
//!   (the verdict says where and with what message);
//! - `HANG`: the check did not finish within [`TIME_LIMIT`]. A correct
//!   solution finishes in well under a second; the limit only turns a wait
//!   that never ends (a lost wake-up, a blocking call) into a verdict instead
//!   of a frozen terminal. It is never used to judge speed.
//! - `SKIP`: the check could not run on this machine, which lacks (or
//!   refuses) something it needs, such as io_uring; it ended with
//!   [`skip`] and the reason. Not a failure.
//!
//! For checks that poll futures by hand, [`wakes::Wakes`] is a waker that
//! counts its wakes (chapters 5 and 6 use it).
//!
//! Panic messages are recorded, not printed, so the output is the verdicts
//! and nothing else.
//!
//! These checks are not `#[test]`s on purpose: `cargo test --workspace` must
//! stay green on the untouched repository, where every exercise is still
//! `todo!()`.

use std::io::Write as _;
use std::panic::{self, PanicHookInfo};
use std::process::ExitCode;
use std::sync::{Mutex, Once, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use ch01_os_threads::report::wrap;

pub mod wakes;

/// What a check returns: `Err` carries the explanation shown to the learner.
pub type Verdict = Result<(), String>;

/// Returns `Err(format!(...))` from the enclosing check unless `condition`
/// holds: `ensure!(got == 3, "expected 3 pages, found {got}")`.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $($explanation:tt)+) => {
        if !$condition {
            return Err(format!($($explanation)+));
        }
    };
}

/// Ends a check that cannot run on this machine (a kernel feature it needs
/// is missing or refused) before it runs the learner's code: the verdict
/// is `SKIP` with `reason`, which does not count as a failure.
/// `return skip(format!("io_uring is not available here: {why}"));`
pub fn skip(reason: impl Into<String>) -> Verdict {
    let reason = reason.into();
    *SKIPPED.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
    Err(reason)
}

/// The reason given to [`skip`] by the check running now.
static SKIPPED: Mutex<Option<String>> = Mutex::new(None);

/// One exercise of a chapter, as its check binary lists it.
#[derive(Debug, Clone, Copy)]
pub struct Exercise {
    /// A short name, the same as the module and file (`drain` for `src/drain.rs`).
    pub name: &'static str,
    /// What the learner builds, in a few words.
    pub title: &'static str,
    /// The idea of the concept map (DESIGN.md) it practises.
    pub idea: &'static str,
    /// The check: `Ok(())` when the exercise is solved, otherwise what is wrong.
    pub check: fn() -> Verdict,
}

/// A chapter's exercises, in the order they should be done (rising difficulty).
#[derive(Debug, Clone, Copy)]
pub struct Chapter {
    /// The chapter's number, e.g. 3.
    pub number: u32,
    /// The exercise crate's package, for the commands the check suggests
    /// (`env!("CARGO_PKG_NAME")` in the check binary).
    pub package: &'static str,
    /// The exercises, easiest first.
    pub exercises: &'static [Exercise],
}

impl Chapter {
    /// Where the learner's files are, from the workspace root: `exercises/ch03/src`.
    pub fn dir(&self) -> String {
        format!("exercises/ch{:02}/src", self.number)
    }

    /// The book page with the tasks and hints: `docs/src/ch03-exercises.md`.
    pub fn page(&self) -> String {
        format!("docs/src/ch{:02}-exercises.md", self.number)
    }

    /// The book page with the reference solutions: `docs/src/ch03-solutions.md`.
    pub fn solutions(&self) -> String {
        format!("docs/src/ch{:02}-solutions.md", self.number)
    }
}

/// The longest a check may run before it is reported as hanging. Only a
/// wrong solution gets near it (see the module docs).
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Solved.
    Pass,
    /// The learner's code reached a `todo!()` here (`file:line`).
    Todo(String),
    /// The check found something wrong: its explanation.
    Fail(String),
    /// The code panicked: the message, where, and on which thread.
    Panic(String),
    /// Still running after this long.
    Hang(Duration),
    /// Not run on this machine, for this reason (see [`skip`]).
    Skip(String),
}

impl Outcome {
    /// The four-letter label printed in front of the exercise.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Todo(_) => "TODO",
            Outcome::Fail(_) | Outcome::Panic(_) => "FAIL",
            Outcome::Hang(_) => "HANG",
            Outcome::Skip(_) => "SKIP",
        }
    }

    /// What to tell the learner, in plain words (`None` for a pass).
    pub fn explanation(&self) -> Option<String> {
        match self {
            Outcome::Pass => None,
            Outcome::Todo(at) => Some(format!("not done yet: your code reached the todo!() at {at}")),
            Outcome::Fail(why) => Some(why.clone()),
            Outcome::Panic(what) => Some(format!("your code panicked: {what}")),
            Outcome::Hang(limit) => Some(format!(
                "still running after {} s (a correct solution takes well under one): something waits for an \
                 event that never comes: a lost wake-up, a call that blocks, or a loop that never ends",
                limit.as_secs()
            )),
            Outcome::Skip(why) => Some(format!("skipped on this machine: {why}")),
        }
    }
}

/// A panic seen while a check ran.
#[derive(Debug, Clone)]
struct PanicNote {
    /// The panic's message.
    message: String,
    /// `file:line:column`, if the panic said where.
    location: Option<String>,
    /// The thread that panicked.
    thread: String,
}

impl PanicNote {
    /// Whether this is a `todo!()` (its message is fixed by std).
    fn is_todo(&self) -> bool {
        self.message == "not yet implemented" || self.message.starts_with("not yet implemented: ")
    }

    /// `file:line` of the panic, without the column.
    fn file_line(&self) -> String {
        let Some(location) = &self.location else { return "an unknown place".to_string() };
        location.rsplit_once(':').map_or(location.as_str(), |(file_line, _column)| file_line).to_string()
    }
}

/// The panics recorded while a check runs; `None` between checks.
static RECORDED: Mutex<Option<Vec<PanicNote>>> = Mutex::new(None);

/// Replaces the panic hook once: while a check runs, panics (on its thread
/// and on the threads it starts) are recorded instead of printed. Between
/// checks, panics print as usual (a bug in the harness itself).
fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            let mut recorded = RECORDED.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(notes) = recorded.as_mut() else {
                drop(recorded);
                return default(info);
            };
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_string());
            let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let thread = thread::current();
            let thread = thread.name().map_or_else(|| format!("{:?}", thread.id()), str::to_string);
            notes.push(PanicNote { message, location, thread });
        }));
    });
}

/// Runs one check on its own thread and says how it ended, waiting at most
/// `limit` for it.
pub fn run(exercise: &Exercise, limit: Duration) -> Outcome {
    record_panics();
    *RECORDED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
    *SKIPPED.lock().unwrap_or_else(PoisonError::into_inner) = None;
    let (done, finished) = mpsc::channel();
    let check = exercise.check;
    let spawned = thread::Builder::new().name(format!("check {}", exercise.name)).spawn(move || {
        let _ = done.send(panic::catch_unwind(check));
    });
    if let Err(e) = spawned {
        return Outcome::Fail(format!("could not start a thread for the check: {e}"));
    }
    let result = finished.recv_timeout(limit);
    let panics = RECORDED.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_default();
    let skipped = SKIPPED.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let (Ok(Ok(Err(_))), Some(why)) = (&result, skipped) {
        return Outcome::Skip(why);
    }
    let todo = panics.iter().find(|p| p.is_todo());
    match result {
        Ok(Ok(Ok(()))) => Outcome::Pass,
        // A todo!() anywhere (also on a thread the code started) means "not
        // done yet", whatever error it then caused.
        _ if todo.is_some() => Outcome::Todo(todo.map(PanicNote::file_line).unwrap_or_default()),
        Ok(Ok(Err(why))) => match panics.first() {
            Some(p) => {
                Outcome::Fail(format!("{why} (thread {:?} panicked at {}: {})", p.thread, p.file_line(), p.message))
            }
            None => Outcome::Fail(why),
        },
        Ok(Err(_payload)) => Outcome::Panic(match panics.first() {
            Some(p) => format!("{} (at {}, thread {:?})", p.message, p.file_line(), p.thread),
            None => "a panic without a message".to_string(),
        }),
        Err(mpsc::RecvTimeoutError::Timeout) => Outcome::Hang(limit),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Outcome::Fail("the check's thread ended without a verdict".to_string())
        }
    }
}

/// `println!` that ignores a closed stdout (`| head`): the verdicts are
/// the output, and a reader who stopped reading is no error.
macro_rules! show {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

const HELP: &str = "\
Checks your solutions to this chapter's exercises.

USAGE:
    cargo run -p chNN-exercises [-- N]

    (no argument)   check every exercise of the chapter, in order
    N               check only exercise N (e.g. 1)
    --list          the exercises: number, name, title
    --help          this text

Exit code 0 when every exercise checked passes (or is skipped: this machine
cannot run it), 1 when one does not, 2 for a mistyped command.
";

/// The check binary's `main`: runs the exercises named on the command line
/// (all by default), prints a verdict per exercise, and returns exit code 0
/// only if all of them passed.
pub fn main(chapter: &Chapter) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<(usize, &Exercise)> = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => chapter.exercises.iter().enumerate().map(|(i, e)| (i + 1, e)).collect(),
        ["--help" | "-h" | "help"] => {
            show!("{}", HELP.trim_end());
            return ExitCode::SUCCESS;
        }
        ["--list"] => {
            for (i, exercise) in chapter.exercises.iter().enumerate() {
                show!("{}\t{}\t{} (idea: {})", i + 1, exercise.name, exercise.title, exercise.idea);
            }
            return ExitCode::SUCCESS;
        }
        [one] => match one.parse::<usize>().ok().filter(|n| (1..=chapter.exercises.len()).contains(n)) {
            Some(n) => vec![(n, &chapter.exercises[n - 1])],
            None => {
                let count = chapter.exercises.len();
                eprintln!("error: no exercise {one:?} in chapter {}: choose 1 to {count} (see --help)", chapter.number);
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("error: expected at most one exercise number (see --help)");
            return ExitCode::from(2);
        }
    };

    show!(
        "Chapter {} exercises: your code is in {}/, the tasks and hints in {}",
        chapter.number,
        chapter.dir(),
        chapter.page()
    );
    let (mut passed, mut skipped) = (0, 0);
    let mut next = None;
    for &(n, exercise) in &chosen {
        let outcome = run(exercise, TIME_LIMIT);
        show!("  {}  {}.{n} {}: {}", outcome.label(), chapter.number, exercise.name, exercise.title);
        if let Some(why) = outcome.explanation() {
            for line in wrap(&why, 100 - INDENT.len(), "").lines() {
                show!("{INDENT}{line}");
            }
        }
        match outcome {
            Outcome::Pass => passed += 1,
            Outcome::Skip(_) => skipped += 1,
            _ => {
                next.get_or_insert((n, exercise.name));
            }
        }
    }
    let (number, dir, package) = (chapter.number, chapter.dir(), chapter.package);
    let summary = match skipped {
        0 => format!("{passed} of {} passed.", chosen.len()),
        _ => format!("{passed} of {} passed, {skipped} skipped (this machine cannot run it).", chosen.len()),
    };
    match next {
        Some((n, name)) => {
            show!("{summary} Next: exercise {number}.{n}, in {dir}/{name}.rs; then run this again.");
            ExitCode::FAILURE
        }
        None => {
            // One exercise checked and passed: point at the one after it.
            let following = match chosen[..] {
                [(n, _)] => chapter.exercises.get(n).map(|e| (n + 1, e.name)),
                _ => None,
            };
            match following {
                Some((n, name)) => show!(
                    "{summary} Next: exercise {number}.{n}, in {dir}/{name}.rs (check it: cargo run -p {package} -- {n})."
                ),
                None if chosen.len() == chapter.exercises.len() && skipped > 0 => show!(
                    "{summary} Every exercise this machine can run is done. The reference solutions: {}",
                    chapter.solutions()
                ),
                None if chosen.len() == chapter.exercises.len() => show!(
                    "{summary} Chapter {number}'s exercises are done! The reference solutions, to compare: {}",
                    chapter.solutions()
                ),
                None => show!("{summary} That was the chapter's last exercise."),
            }
            ExitCode::SUCCESS
        }
    }
}

/// Where an explanation starts, under the exercise's name.
const INDENT: &str = "        ";

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a check; one at a time, since the recorded panics are global
    /// (as in the check binary, which runs its checks one after another).
    fn run(check: fn() -> Verdict, limit: Duration) -> Outcome {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        super::run(&Exercise { name: "test", title: "a test", idea: "testing", check }, limit)
    }

    #[test]
    fn a_check_that_returns_ok_passes() {
        assert_eq!(run(|| Ok(()), TIME_LIMIT), Outcome::Pass);
    }

    #[test]
    fn an_explanation_is_passed_on() {
        let outcome = run(|| Err("the second message got no echo".into()), TIME_LIMIT);
        assert_eq!(outcome, Outcome::Fail("the second message got no echo".into()));
        assert_eq!(outcome.label(), "FAIL");
    }

    #[test]
    fn a_todo_is_reported_with_its_place() {
        fn unfinished() -> Verdict {
            todo!()
        }
        let outcome = run(unfinished, TIME_LIMIT);
        let Outcome::Todo(at) = &outcome else { panic!("expected TODO, got {outcome:?}") };
        assert!(at.starts_with("exercises/harness/src/lib.rs:"), "{at}");
        assert!(outcome.explanation().unwrap().contains("todo!()"));
    }

    #[test]
    fn a_todo_on_another_thread_still_means_not_done() {
        fn unfinished_helper() -> Verdict {
            let helper = thread::spawn(|| -> u32 { todo!("the helper") });
            helper.join().map_err(|_| "the helper thread panicked".to_string())?;
            Ok(())
        }
        assert!(matches!(run(unfinished_helper, TIME_LIMIT), Outcome::Todo(_)));
    }

    #[test]
    fn a_panic_says_what_and_where() {
        let outcome = run(|| panic!("index out of bounds"), TIME_LIMIT);
        let Outcome::Panic(what) = &outcome else { panic!("expected FAIL, got {outcome:?}") };
        assert!(what.starts_with("index out of bounds (at exercises/harness/src/lib.rs:"), "{what}");
    }

    #[test]
    fn a_skipped_check_says_why_and_is_no_failure() {
        let outcome = run(|| skip("io_uring is not available here"), TIME_LIMIT);
        assert_eq!(outcome, Outcome::Skip("io_uring is not available here".into()));
        assert_eq!(outcome.label(), "SKIP");
        assert_eq!(outcome.explanation().unwrap(), "skipped on this machine: io_uring is not available here");
        // The next check starts afresh: an Err of its own is a failure.
        assert_eq!(run(|| Err("wrong".into()), TIME_LIMIT), Outcome::Fail("wrong".into()));
    }

    #[test]
    fn a_check_that_never_finishes_is_cut_off() {
        fn forever() -> Verdict {
            loop {
                thread::park(); // nobody unparks it: a lost wake-up
            }
        }
        let limit = Duration::from_millis(20);
        assert_eq!(run(forever, limit), Outcome::Hang(limit));
    }
}
