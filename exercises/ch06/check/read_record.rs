//! The check of exercise 6.3: `ReadRecord` polled by hand over a scripted
//! reader that notes every buffer it is handed, while the coroutine's
//! `Pin<Box<_>>` moves into a `Vec` and to another thread; after each poll,
//! where `rest` points (as numbers: `cursor()`); the end of the data and a
//! reader's error; whether the compiler considers it `Unpin`; then the real
//! thing, over TCP on 127.0.0.1 on chapter 5's runtime, next to the `async
//! fn` with the same body.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use ch05_runtime::net::{TcpListener, TcpStream};
use ch05_runtime::{Runtime, spawn};
use ch06_exercises::read_record::{Cursor, PollRead, RECORD, ReadRecord, ended_early, read_record_async};
use ch06_pin::unpin_of_type;
use exercise_harness::wakes::Wakes;
use exercise_harness::{Verdict, ensure};

use crate::drive::{poll_on_another_thread, run_patiently};

/// The record the scripts and the server send, in the pieces they send it in.
const PIECES: [&[u8]; 3] = [b"pinned", b" in p", b"lace."];
const WHOLE: &[u8; RECORD] = b"pinned in place.";

pub fn check() -> Verdict {
    step_by_step()?;
    the_end_and_errors()?;
    not_unpin()?;
    over_tcp()
}

/// Four polls, in three places of the box, over a script with three
/// `Pending`s; after each, `rest` must cover exactly what has not arrived.
fn step_by_step() -> Verdict {
    let (wakes, waker) = Wakes::new();
    let mut cx = Context::from_waker(&waker);
    let [one, two, three] = PIECES;
    let (reader, log) = Script::new(&[
        Step::Bytes(one),
        Step::Pending,
        Step::Bytes(two),
        Step::Pending,
        Step::Pending,
        Step::Bytes(three),
    ]);
    let mut coroutine = Box::pin(ReadRecord::new(reader)); // a move before the first poll: fine

    let first = coroutine.as_mut().poll(&mut cx);
    let record_at = after_pending(1, &first, coroutine.cursor(), &log, None)?;
    let mut moved = vec![coroutine]; // the box moves; the coroutine in it stays
    let second = moved[0].as_mut().poll(&mut cx);
    after_pending(2, &second, moved[0].cursor(), &log, Some(record_at))?;
    let mut coroutine = moved.remove(0);
    let third = poll_on_another_thread(&mut coroutine, &waker)?;
    after_pending(3, &third, coroutine.cursor(), &log, Some(record_at))?;
    let fourth = coroutine.as_mut().poll(&mut cx);

    let handed = log.lock().handed.clone();
    for &(at, len) in &handed {
        ensure!(
            at >= record_at && at + len == record_at + RECORD && len > 0,
            "the reader was handed a buffer of {len} bytes at {at:#x}; the record is at {record_at:#x}, {RECORD} \
             bytes: hand it the part of the record still to fill (rest itself), never a copy, and never an empty \
             one (a reader answers an empty buffer with 0, which means the end of the data)"
        );
    }
    match fourth {
        Poll::Ready(Ok(record)) => ensure!(
            &record == WHOLE,
            "the reader sent {:?} in three pieces, and ReadRecord returned {:?}",
            String::from_utf8_lossy(WHOLE),
            String::from_utf8_lossy(&record)
        ),
        other => return Err(format!("the whole record had arrived, and the fourth poll returned {other:?}")),
    }
    ensure!(
        wakes.count() == 3,
        "the reader woke the waker it was given each of the 3 times it answered Pending, and ReadRecord's waker saw \
         {} wakes: hand the reader the cx that poll got",
        wakes.count()
    );
    Ok(())
}

/// What must hold after poll number `poll` returned `Pending`: the reader's
/// last answer was `Pending`, and `rest` covers exactly what has not
/// arrived, inside the record (which stays at `record_at` once known).
/// Returns where the record is.
fn after_pending(
    poll: usize,
    result: &Poll<io::Result<[u8; RECORD]>>,
    cursor: Option<Cursor>,
    log: &Shared,
    record_at: Option<usize>,
) -> Result<usize, String> {
    let (arrived, last) = {
        let log = log.lock();
        (log.arrived, log.last)
    };
    ensure!(
        result.is_pending(),
        "poll {poll} returned {result:?}; {arrived} of {RECORD} bytes had arrived, and the reader had just answered \
         Pending"
    );
    ensure!(
        last == Some(Answer::Pending),
        "poll {poll} returned Pending, but the reader's last answer was {}, not Pending: only a reader that \
         answers Pending has kept the waker, so nobody would wake this task. Read again, until the reader says \
         Pending or the record is full",
        describe(last)
    );
    let Some(cursor) = cursor else {
        return Err(format!(
            "after poll {poll} returned Pending, ReadRecord holds no rest (cursor() is None): at the .await, the \
             async fn holds rest, a pointer into its own record. Keep it in State::Reading"
        ));
    };
    if let Some(record_at) = record_at {
        ensure!(
            cursor.record_at == record_at,
            "the record was at {record_at:#x}, and after poll {poll} it is at {:#x}: the coroutine moved while \
             pinned",
            cursor.record_at
        );
    }
    let expected =
        Cursor { record_at: cursor.record_at, rest_at: cursor.record_at + arrived, rest_len: RECORD - arrived };
    ensure!(
        cursor == expected,
        "after poll {poll}, {arrived} of {RECORD} bytes had arrived, and rest points at {:#x} ({} bytes from the \
         record's start at {:#x}) and covers {} bytes; it should point {arrived} bytes in, over the {} bytes still \
         to fill: rest = &mut rest[n..] after each read of n bytes",
        cursor.rest_at,
        cursor.rest_at.wrapping_sub(cursor.record_at) as isize,
        cursor.record_at,
        cursor.rest_len,
        RECORD - arrived
    );
    Ok(cursor.record_at)
}

/// The data ends early: `ended_early`, as the `async fn` says it; a reader's
/// error: passed on.
fn the_end_and_errors() -> Verdict {
    let waker = Wakes::new().1;
    let mut cx = Context::from_waker(&waker);
    let [one, ..] = PIECES;
    let mut short = Box::pin(ReadRecord::new(Script::new(&[Step::Bytes(one), Step::Pending, Step::End]).0));
    let _ = short.as_mut().poll(&mut cx);
    let ended = short.as_mut().poll(&mut cx);
    let expected = ended_early(one.len());
    ensure!(
        matches!(&ended, Poll::Ready(Err(e)) if e.kind() == expected.kind() && e.to_string() == expected.to_string()),
        "the data ended after {} bytes, and ReadRecord returned {ended:?}; expected Ready(Err(ended_early({}))), as \
         the async fn returns: a read of 0 bytes is the end of the data",
        one.len(),
        one.len()
    );
    let mut failing =
        Box::pin(ReadRecord::new(Script::new(&[Step::Bytes(one), Step::Fail(io::ErrorKind::ConnectionReset)]).0));
    let failed = failing.as_mut().poll(&mut cx);
    ensure!(
        matches!(&failed, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset),
        "the reader failed with ConnectionReset, and ReadRecord returned {failed:?}; pass the reader's error on"
    );
    Ok(())
}

/// A `ReadRecord` must not be `Unpin`.
fn not_unpin() -> Verdict {
    ensure!(
        !unpin_of_type!(ReadRecord<Script>),
        "ReadRecord is Unpin (its fields are: a byte array and a raw pointer are Unpin). Then Pin::new accepts it \
         and safe code can move it between two polls (mem::swap, a Vec that grows), and rest points at the old \
         place. Give it a PhantomPinned field"
    );
    Ok(())
}

/// Over TCP on 127.0.0.1, on two worker threads: the server writes a record
/// in three pieces to two connections, and a short one to a third.
fn over_tcp() -> Verdict {
    if cfg!(miri) {
        return Ok(()); // Miri runs no sockets: the scripted steps above are what it checks
    }
    let runtime =
        Runtime::builder().worker_threads(2).build().map_err(|e| format!("cannot start chapter 5's runtime: {e}"))?;
    let (by_hand, by_compiler, short) =
        run_patiently(&runtime, "three record reads over TCP on 127.0.0.1", three_reads())?
            .map_err(|e| format!("the TCP part of the check failed: {e}"))?;
    ensure!(
        by_hand.as_ref().ok() == Some(WHOLE),
        "over TCP, a server wrote {:?} in three pieces; ReadRecord returned {by_hand:?}",
        String::from_utf8_lossy(WHOLE)
    );
    ensure!(
        by_compiler.as_ref().ok() == by_hand.as_ref().ok(),
        "over TCP, ReadRecord returned {by_hand:?}, and the async fn, on the same data, {by_compiler:?}"
    );
    let expected = ended_early(PIECES[0].len());
    ensure!(
        matches!(&short, Err(e) if e.to_string() == expected.to_string()),
        "over TCP, a server wrote {} bytes and closed the connection; ReadRecord returned {short:?}, expected \
         Err(ended_early({}))",
        PIECES[0].len(),
        PIECES[0].len()
    );
    Ok(())
}

/// The three reads of [`over_tcp`]: by hand, by the compiler, and short.
type Reads = (io::Result<[u8; RECORD]>, io::Result<[u8; RECORD]>, io::Result<[u8; RECORD]>);

async fn three_reads() -> io::Result<Reads> {
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let server = spawn(async move {
        for pieces in [&PIECES[..], &PIECES[..], &PIECES[..1]] {
            let (mut stream, _) = listener.accept().await?;
            for piece in pieces {
                stream.write_all(piece).await?;
            }
        } // each stream is dropped here: its connection closes
        Ok::<(), io::Error>(())
    });
    // Each connect finishes before the next starts, so the server accepts
    // them in this order.
    let by_hand = spawn(ReadRecord::new(TcpStream::connect(addr).await?));
    let by_compiler = spawn(read_record_async(TcpStream::connect(addr).await?));
    let short = spawn(ReadRecord::new(TcpStream::connect(addr).await?));
    let task_failed = |e| io::Error::other(format!("a task failed: {e}"));
    server.await.map_err(task_failed)??;
    Ok((
        by_hand.await.map_err(task_failed)?,
        by_compiler.await.map_err(task_failed)?,
        short.await.map_err(task_failed)?,
    ))
}

/// One step of a [`Script`].
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Bytes that have arrived (as many as fit are handed over; the rest wait).
    Bytes(&'static [u8]),
    /// Nothing yet: `Pending`, after waking the waker (more "arrives" at once).
    Pending,
    /// The end of the data: `Ok(0)`.
    End,
    /// A failed read.
    Fail(io::ErrorKind),
}

/// What a [`Script`] answered last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `Ready(Ok(n))`.
    Data(usize),
    /// `Pending`.
    Pending,
    /// `Ready(Ok(0))` or `Ready(Err)`.
    EndOrError,
}

/// A script's last answer, in words.
fn describe(last: Option<Answer>) -> String {
    match last {
        Some(Answer::Data(n)) => format!("{n} bytes of data"),
        Some(Answer::Pending) => "Pending".to_string(),
        Some(Answer::EndOrError) => "the end of the data (or an error)".to_string(),
        None => "nothing: it was never asked to read".to_string(),
    }
}

/// What a [`Script`] saw, for the check to look at between polls.
#[derive(Debug, Default)]
struct Log {
    /// Every buffer it was handed: (address, length).
    handed: Vec<(usize, usize)>,
    /// Bytes handed over so far.
    arrived: usize,
    /// Its last answer.
    last: Option<Answer>,
}

/// A [`Log`] shared between a script and the check.
#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Log>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A reader that follows a script of [`Step`]s, one per read, and notes what
/// it was handed.
#[derive(Debug)]
struct Script {
    /// The steps left.
    steps: VecDeque<Step>,
    /// What it saw.
    log: Shared,
}

impl Script {
    fn new(steps: &[Step]) -> (Script, Shared) {
        let log = Shared::default();
        (Script { steps: steps.iter().copied().collect(), log: log.clone() }, log)
    }
}

impl PollRead for Script {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut log = self.log.lock();
        log.handed.push((buf.as_ptr().addr(), buf.len()));
        let (answer, result) = match self.steps.pop_front() {
            Some(Step::Bytes(bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    self.steps.push_front(Step::Bytes(&bytes[n..]));
                }
                log.arrived += n;
                (Answer::Data(n), Poll::Ready(Ok(n)))
            }
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                (Answer::Pending, Poll::Pending)
            }
            Some(Step::End) => (Answer::EndOrError, Poll::Ready(Ok(0))),
            Some(Step::Fail(kind)) => (Answer::EndOrError, Poll::Ready(Err(kind.into()))),
            None => (
                Answer::EndOrError,
                Poll::Ready(Err(io::Error::other(
                    "read again after the check's script had ended (after the end of the data, an error, or the whole record)",
                ))),
            ),
        };
        log.last = Some(answer);
        result
    }
}
