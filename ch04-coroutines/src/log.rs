//! The lines the chapter prints, `[component]  12 ms  text`, also recorded.
//!
//! Every part of the program (executor, leaf futures, coroutines, the
//! callback version) writes through a [`Log`]. It prints each line in ch01's
//! trace format (milliseconds since start) if asked to, and always keeps the
//! lines without their timestamps, so a test can check their order or compare
//! what three versions of the same program said.

use std::cell::RefCell;
use std::rc::Rc;

/// A handle to a shared list of lines, with the component name it writes as.
///
/// Cloning is cheap (two reference counts); [`Log::named`] makes a handle
/// for another component that writes to the same list.
#[derive(Debug, Clone)]
pub struct Log {
    /// The shared list (one per program run).
    lines: Rc<Lines>,
    /// What this handle prints between brackets, e.g. `coroutine 1`.
    component: Rc<str>,
}

/// The shared part of a [`Log`].
#[derive(Debug)]
struct Lines {
    /// Also print each line to stdout (the demo) or only record it (tests, bench).
    echo: bool,
    /// Set for the bench: record nothing, print nothing.
    silent: bool,
    /// `(component, text)` of every line so far.
    recorded: RefCell<Vec<(String, String)>>,
}

impl Log {
    /// A log that prints every line to stdout and records it.
    pub fn printing() -> Log {
        Log::with(true, false)
    }

    /// A log that only records (tests compare the lines afterwards).
    pub fn recording() -> Log {
        Log::with(false, false)
    }

    /// A log that drops every line (the bench: 10 000 requests would print
    /// 60 000 lines and measure the terminal instead of the coroutines).
    pub fn silent() -> Log {
        Log::with(false, true)
    }

    fn with(echo: bool, silent: bool) -> Log {
        let lines = Lines { echo, silent, recorded: RefCell::new(Vec::new()) };
        Log { lines: Rc::new(lines), component: Rc::from("main") }
    }

    /// Another handle on the same lines, writing as `component`.
    pub fn named(&self, component: &str) -> Log {
        Log { lines: Rc::clone(&self.lines), component: Rc::from(component) }
    }

    /// Whether lines are kept at all (callers can skip building a message).
    pub fn enabled(&self) -> bool {
        !self.lines.silent
    }

    /// Writes one line.
    pub fn say(&self, text: impl Into<String>) {
        if self.lines.silent {
            return;
        }
        let text = text.into();
        if self.lines.echo {
            println!("{}", ch01_os_threads::trace::line(&self.component, &text));
        }
        self.lines.recorded.borrow_mut().push((self.component.to_string(), text));
    }

    /// Every `(component, text)` recorded so far, in order.
    pub fn lines(&self) -> Vec<(String, String)> {
        self.lines.recorded.borrow().clone()
    }

    /// The texts of the lines written by `component`, in order.
    pub fn texts_of(&self, component: &str) -> Vec<String> {
        self.lines.recorded.borrow().iter().filter(|(c, _)| c == component).map(|(_, t)| t.clone()).collect()
    }
}
