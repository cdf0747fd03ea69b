//! The lines a program prints, `[task 3]  12 ms  text`, also recorded.
//!
//! The two versions of this chapter's coroutine (by hand and by the
//! compiler) print through a [`Log`], which keeps every line under the
//! version's label, so a test can check that both said exactly the same.
//! Chapter 4's log is the same idea for one thread (`Rc`); this one is
//! `Send`, as a task spawned on chapter 5's runtime must be.

use std::sync::{Arc, Mutex, PoisonError};

/// Every line recorded so far, `(label, text)`, in order; shared by the handles.
type Lines = Arc<Mutex<Vec<(String, String)>>>;

/// A handle to a shared list of lines, writing under one label.
#[derive(Debug, Clone)]
pub struct Log {
    /// The lines of every handle made from the same [`Log::printing`] /
    /// [`Log::recording`]. `None`: a silent log.
    lines: Option<Lines>,
    /// Also print each line (the demo), or only record it (tests).
    echo: bool,
    /// The label lines are recorded under, e.g. `hand-written`.
    label: Arc<str>,
}

impl Log {
    /// Prints every line and records it.
    pub fn printing() -> Log {
        Log { lines: Some(Arc::default()), echo: true, label: Arc::from("main") }
    }

    /// Only records (tests compare the lines afterwards).
    pub fn recording() -> Log {
        Log { lines: Some(Arc::default()), echo: false, label: Arc::from("main") }
    }

    /// Drops every line (the bench measures the futures, not a terminal).
    pub fn silent() -> Log {
        Log { lines: None, echo: false, label: Arc::from("main") }
    }

    /// Another handle on the same lines, recording under `label`.
    pub fn named(&self, label: &str) -> Log {
        Log { lines: self.lines.clone(), echo: self.echo, label: Arc::from(label) }
    }

    /// Writes one line. Printed as `[task N]` when a task of chapter 5's
    /// runtime says it, else as `[label]`.
    pub fn say(&self, text: impl Into<String>) {
        let Some(lines) = &self.lines else { return };
        let text = text.into();
        if self.echo {
            let who = ch05_runtime::task::current_id().map_or_else(|| self.label.to_string(), |id| id.to_string());
            println!("{}", ch01_os_threads::trace::line(&who, &text));
        }
        lines.lock().unwrap_or_else(PoisonError::into_inner).push((self.label.to_string(), text));
    }

    /// The texts recorded under `label`, in order.
    pub fn texts_of(&self, label: &str) -> Vec<String> {
        let Some(lines) = &self.lines else { return Vec::new() };
        let lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().filter(|(l, _)| l == label).map(|(_, text)| text.clone()).collect()
    }
}
