//! Exercise 6.3: a coroutine that borrows its own buffer.
//!
//! `read_record_async` below reads a record of `RECORD` bytes into a local
//! array, through `rest`, a `&mut` borrow of the part still to fill, that
//! lives across the `.await`: its future points into itself, like chapter
//! 6's `fetch_three_into_async`. Write that future by hand: `ReadRecord`,
//! whose `rest` (in `State::Reading`) is a pointer into its own `record`.
//!
//! 1. Make `ReadRecord` `!Unpin`. As it is, every field is `Unpin` (a byte
//!    array, a raw pointer), so `Pin::new` accepts it and a caller could
//!    move it between two polls, leaving `rest` pointing at the old place.
//! 2. Write `poll`, each step next to the line of the `async fn` it stands
//!    for: on the first poll, point `rest` at the whole `record` (only now
//!    is the coroutine pinned); read into `rest` with the reader's
//!    `poll_read` until it is `Pending` or the record is full; keep `rest`
//!    shrinking over what has arrived; end with the record, or with
//!    `ended_early` if the data stops short, or with the reader's error.
//!
//! Every `unsafe` block gets a `// SAFETY:` comment. The rest is given:
//! the trait the reader implements, the states, `new`, `cursor` (which the
//! check uses to see where `rest` points), and `Send`.
//!
//! Check it: `cargo run -p ch06-exercises -- 3`

// Starter code: until your code uses them, the arguments and some imports
// look unused. Delete this line when your code uses them.
#![allow(unused_variables, unused_imports, dead_code)]

use std::future::{Future, poll_fn};
use std::io;
use std::marker::PhantomPinned;
use std::mem;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use ch05_runtime::net::TcpStream;

/// How many bytes a record has.
pub const RECORD: usize = 16;

/// Something that reads bytes the way chapter 5's `TcpStream` does.
pub trait PollRead {
    /// Reads what has arrived into `buf`: `Ready(Ok(n))` with `n` bytes
    /// written to the start of `buf`, `Ready(Ok(0))` at the end of the data,
    /// or `Pending`, with `cx`'s waker kept for when more arrives.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

impl PollRead for TcpStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        TcpStream::poll_read(self, cx, buf)
    }
}

/// The error for data that ended after `filled` bytes of a record.
pub fn ended_early(filled: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the data ended after {filled} of the record's {RECORD} bytes"),
    )
}

/// The program as you would write it. `rest` borrows `record` across the
/// `.await`, as many times as the reads take, so the future the compiler
/// makes from this holds a pointer into itself.
pub async fn read_record_async<R: PollRead>(mut reader: R) -> io::Result<[u8; RECORD]> {
    let mut record = [0u8; RECORD];
    let mut rest: &mut [u8] = &mut record; // borrowed from here ...
    while !rest.is_empty() {
        let n = poll_fn(|cx| reader.poll_read(cx, rest)).await?; // ... across this await ...
        if n == 0 {
            return Err(ended_early(RECORD - rest.len()));
        }
        rest = &mut mem::take(&mut rest)[n..];
    }
    Ok(record) // ... to here
}

/// [`read_record_async`], written by hand.
///
/// # Panics
///
/// If polled again after it returned `Ready` (as an `async fn` does).
pub struct ReadRecord<R> {
    /// Where the bytes come from. Not pinned: read through a plain `&mut`.
    reader: R,
    /// The `async fn`'s local `record`. `rest` points into it, so it must
    /// stay where it is: the whole coroutine is pinned.
    record: [u8; RECORD],
    /// Where the program is, and the borrow it holds there.
    state: State,
    // Step 1 of the task goes here (and in `new`).
}

/// The states of [`ReadRecord`]: one per `.await`, plus the two ends.
enum State {
    /// Created, not polled: nothing points anywhere yet, so it may still move.
    Start,
    /// At the `.await`: `rest`, the part of `record` still to fill. A
    /// pointer into this same value.
    Reading {
        /// The `async fn`'s `rest: &mut [u8]`.
        rest: NonNull<[u8]>,
    },
    /// Returned.
    Done,
}

// SAFETY: the raw pointer `rest` stops the compiler from deriving `Send`.
// It only ever points into the `record` of the `ReadRecord` that holds it,
// so whoever owns the coroutine owns what `rest` points at: sending it to
// another thread sends the record with it, and no other thread keeps a way
// in. That is what the `&mut [u8]` it stands for would do.
unsafe impl<R: Send> Send for ReadRecord<R> {}

/// Where `record` is, and where `rest` points: numbers, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The address of the `record` field.
    pub record_at: usize,
    /// The address `rest` holds.
    pub rest_at: usize,
    /// How many bytes `rest` covers.
    pub rest_len: usize,
}

impl<R> ReadRecord<R> {
    /// The coroutine for `read_record_async(reader)`: like calling the `async
    /// fn`, this only stores the argument. It holds no pointer yet, so it
    /// may be moved freely until it is pinned and polled.
    pub fn new(reader: R) -> ReadRecord<R> {
        ReadRecord { reader, record: [0; RECORD], state: State::Start }
    }

    /// Where `record` is and where `rest` points, while `rest` exists.
    pub fn cursor(&self) -> Option<Cursor> {
        match &self.state {
            State::Reading { rest } => Some(Cursor {
                record_at: (&raw const self.record).addr(),
                rest_at: rest.as_ptr().addr(),
                rest_len: rest.len(),
            }),
            State::Start | State::Done => None,
        }
    }
}

impl<R: PollRead> Future for ReadRecord<R> {
    type Output = io::Result<[u8; RECORD]>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        todo!("Start: point rest at the record; Reading: poll_read into rest until Pending or full; Done: panic")
    }
}
