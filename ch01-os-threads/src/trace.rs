//! Printed traces: `[component]` prefixes with milliseconds since start.
//!
//! Every chapter prints lines like
//!
//! ```text
//! [main]           0 ms  delay server listening on 127.0.0.1:41234
//! [thread 2]     102 ms  got "two"
//! ```
//!
//! The clock starts the first time anything asks for it (call [`start`] at the
//! top of `main` so that is "the start of the program").

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Starts the trace clock (if nothing started it yet) and returns its start.
pub fn start() -> Instant {
    *START.get_or_init(Instant::now)
}

/// Time since the trace clock started.
pub fn elapsed() -> Duration {
    start().elapsed()
}

/// Milliseconds since the trace clock started.
pub fn ms() -> u128 {
    elapsed().as_millis()
}

/// One trace line: `[component]`, padded, then the milliseconds, then the text.
pub fn line(component: &str, text: &str) -> String {
    format!("{:<14} {:>6} ms  {text}", format!("[{component}]"), ms())
}

/// Prints a trace line (as [`say!`](crate::say) does) on stdout, or on
/// stderr when `aside`: a bench run with `--json` keeps stdout for its JSON
/// lines, and what it says on the way still reaches the terminal.
pub fn say_aside(aside: bool, component: &str, text: &str) {
    if aside {
        eprintln!("{}", line(component, text));
    } else {
        println!("{}", line(component, text));
    }
}

/// Prints the header of a demo's section: a blank line, then
/// `--- 2. the same five requests, one OS thread each ---`. Every chapter's
/// demo marks its sections this way.
pub fn section(number: usize, title: &str) {
    println!("\n--- {number}. {title} ---");
}

/// Prints a trace line: `say!("main", "fetched {}", body)`.
///
/// The whole line goes out in one `println!`, so lines from different threads
/// never interleave mid-line.
#[macro_export]
macro_rules! say {
    ($component:expr, $($arg:tt)*) => {
        println!("{}", $crate::trace::line(&$component, &format!($($arg)*)))
    };
}
