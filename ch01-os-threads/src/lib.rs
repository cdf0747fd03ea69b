//! # Chapter 1: OS threads
//!
//! The operating system is an abstraction over the hardware: it shares a few
//! CPU cores among many threads, and the memory management unit (MMU) gives
//! each process its own virtual address space. Programs ask the OS for
//! anything through system calls, its public API.
//!
//! This crate shows the simplest way to do several things at once: one OS
//! thread per task. Threads give *concurrency* (many waits overlapping, like
//! five slow requests in flight at once) and *parallelism* (computing on all
//! cores at the same instant) for free, at a cost in memory and switching
//! that [`measure`] puts numbers on.
//!
//! It also holds the pieces every later chapter reuses.
//!
//! ## Layout
//!
//! - [`delay_server`]: the HTTP delay server (`GET /<delay_ms>/<message>`), one
//!   thread per connection, used by every chapter's demo and tests.
//! - [`client`]: a blocking HTTP GET client for it.
//! - [`http`]: the request and response format both sides share.
//! - [`measure`]: what threads cost, measured (`cargo run --release -p
//!   ch01-os-threads -- bench`).
//! - [`report`]: bench tables, medians, and the machine line above each table.
//! - [`trace`]: the `[component]  12 ms  …` lines every demo prints.
//! - [`sys`]: the workspace's one [`syscall!`] macro, pinning a thread to a
//!   CPU, raising the open-file limit.
//! - [`cli`]: how every chapter binary reports an error (one line, exit 1).
//! - [`bench_kit`]: measurement plumbing for the `bench` subcommands (server
//!   and runs in child processes, one sample line format, progress). Not
//!   something the chapters teach.
//!
//! Linux only: the measurements read `/proc`, and the whole workspace teaches
//! Linux's syscalls.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "ch01-os-threads supports Linux only: it reads /proc and calls Linux syscalls (the workshop targets x86-64 Linux)"
);

pub mod bench_kit;
pub mod cli;
pub mod client;
pub mod delay_server;
pub mod http;
pub mod measure;
pub mod report;
pub mod sys;
pub mod trace;
