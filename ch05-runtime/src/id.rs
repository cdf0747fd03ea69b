//! [`TaskId`]: a task's number, the `N` of `[task N]`.
//!
//! Its own small file because everything names tasks (the task itself, its
//! [`JoinHandle`](crate::JoinHandle), the blocking pool's jobs, the trace)
//! and none of them should need the others to do so.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A task's number, unique in the process: the `N` of `[task N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

impl TaskId {
    /// The next unused id (ids start at 1 and are never reused).
    pub(crate) fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}
