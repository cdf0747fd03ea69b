//! Exercise 6.3, solved: a coroutine that borrows its own buffer.

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

// ANCHOR: async_fn
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
// ANCHOR_END: async_fn

// ANCHOR: struct
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
    /// Makes `ReadRecord` `!Unpin`: without it, a raw pointer and a byte
    /// array are `Unpin`, `Pin::new` would take any `ReadRecord`, and a
    /// caller could move it between two polls (`mem::swap`, a `Vec` that
    /// grows), leaving `rest` pointing at the old place.
    _pinned: PhantomPinned,
}
// ANCHOR_END: struct

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
        ReadRecord { reader, record: [0; RECORD], state: State::Start, _pinned: PhantomPinned }
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

// ANCHOR: poll
impl<R: PollRead> Future for ReadRecord<R> {
    type Output = io::Result<[u8; RECORD]>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: a plain `&mut` to a pinned value, from which nothing is
        // moved: `record` is written only through `rest` and copied out at
        // the end, never moved or swapped; `reader` and `state` are not
        // pinned (nothing points into them), used in place or replaced.
        let this = unsafe { self.get_unchecked_mut() };
        loop {
            match mem::replace(&mut this.state, State::Done) {
                State::Start => {
                    //     let mut record = [0u8; RECORD];   (our field, zeroed by `new`)
                    //     let mut rest: &mut [u8] = &mut record;
                    // The borrow starts on the first poll, when we are pinned:
                    // `record` stays at this address until we are dropped.
                    // The `&mut` made here ends on this line; from now on,
                    // `rest` is the way to the record.
                    let rest = NonNull::from(&mut this.record[..]);
                    this.state = State::Reading { rest };
                }
                State::Reading { mut rest } => {
                    //     while !rest.is_empty() { … }
                    //     Ok(record)
                    if rest.is_empty() {
                        // The borrow ends here: the state holding `rest` is
                        // gone, and the record is copied out.
                        return Poll::Ready(Ok(this.record));
                    }
                    //     let n = poll_fn(|cx| reader.poll_read(cx, rest)).await?;
                    // SAFETY: `rest` points into our own `record`, which has
                    // not moved since the first poll (we are pinned), and
                    // nothing else touches the record while `rest` exists.
                    // The `&mut` lives for this one call.
                    let buf = unsafe { rest.as_mut() };
                    match this.reader.poll_read(cx, buf) {
                        Poll::Pending => {
                            this.state = State::Reading { rest };
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)), // the `?`: stay `Done`
                        //     if n == 0 { return Err(ended_early(RECORD - rest.len())); }
                        Poll::Ready(Ok(0)) => return Poll::Ready(Err(ended_early(RECORD - buf.len()))),
                        //     rest = &mut rest[n..];
                        Poll::Ready(Ok(n)) => this.state = State::Reading { rest: NonNull::from(&mut buf[n..]) },
                    }
                }
                State::Done => panic!("ReadRecord polled after it returned Ready"),
            }
        }
    }
}
// ANCHOR_END: poll
