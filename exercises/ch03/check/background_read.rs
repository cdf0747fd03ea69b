//! The check of exercise 3.3: a FIFO (a named pipe) stands in for a slow
//! disk. Opening a FIFO for reading waits until a writer opens it, so a
//! `read_in_background` that opens or reads on the calling thread cannot
//! return, and an event that comes before the check writes is a lie. Then a
//! regular file, and a file that does not exist.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ch03_epoll::poll::{Events, Poll, Token};
use ch03_exercises::background_read::{BackgroundRead, read_in_background};
use exercise_harness::{Verdict, ensure};

/// The token the check asks for (and the next two, for the next reads).
const TOKEN: Token = Token(7);

/// What the check writes into the FIFO.
const MESSAGE: &[u8] = b"hello through a FIFO";

/// How long the check waits for `read_in_background` to return, or for an
/// event. A correct solution takes microseconds; this only bounds a wrong one.
const PATIENCE: Duration = Duration::from_secs(10);

pub fn check() -> Verdict {
    let scratch = Scratch::new().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let fifo = scratch.fifo().map_err(|e| format!("cannot make a FIFO: {e}"))?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;

    let registry = poll.registry().try_clone().map_err(|e| e.to_string())?;
    let (started, start) = mpsc::channel();
    let fifo_path = fifo.clone();
    thread::spawn(move || {
        let _ = started.send(read_in_background(&fifo_path, &registry, TOKEN));
    });
    let mut reading = match start.recv_timeout(PATIENCE) {
        Ok(result) => result.map_err(|e| format!("read_in_background failed: {e}"))?,
        Err(_) => {
            let _ = feed(&fifo); // lets the stuck read finish
            return Err(format!(
                "read_in_background did not return within {} s: it read the file itself. The check's FIFO has \
                 nothing to read until the check writes, like a slow disk; hand the whole read (open included) \
                 to another thread and return at once",
                PATIENCE.as_secs()
            ));
        }
    };

    let early = events_now(&mut poll)?;
    ensure!(
        !early.contains(&TOKEN),
        "the Poll reported token {} before anything was written to the file: report it only when the contents \
         are ready",
        TOKEN.0
    );
    ensure!(reading.take().is_none(), "take() returned a result before anything was written to the file");

    feed(&fifo)?;
    let contents = result_after_event(&mut poll, &mut reading, TOKEN, "the FIFO")?;
    ensure!(
        contents.as_deref().ok() == Some(MESSAGE),
        "the FIFO held {:?}; take() gave {contents:?}",
        String::from_utf8_lossy(MESSAGE)
    );
    ensure!(reading.take().is_none(), "take() handed the result out twice");

    drop(reading);

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut reading = start_reading(&poll, &file, Token(TOKEN.0 + 1))?;
    let contents = result_after_event(&mut poll, &mut reading, Token(TOKEN.0 + 1), "Cargo.toml")?;
    let expected = fs::read(&file).map_err(|e| e.to_string())?;
    ensure!(contents.as_ref().ok() == Some(&expected), "for exercises/ch03/Cargo.toml, take() gave {contents:?}");

    drop(reading);

    let mut reading = start_reading(&poll, &scratch.0.join("no-such-file"), Token(TOKEN.0 + 2))?;
    let missing = result_after_event(&mut poll, &mut reading, Token(TOKEN.0 + 2), "a file that does not exist")?;
    ensure!(
        missing.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::NotFound),
        "for a file that does not exist, take() gave {missing:?}; expected the NotFound error"
    );
    Ok(())
}

/// Starts a background read on `poll`'s registry.
fn start_reading(poll: &Poll, path: &Path, token: Token) -> Result<BackgroundRead, String> {
    read_in_background(path, poll.registry(), token).map_err(|e| format!("read_in_background failed: {e}"))
}

/// Waits for `token`'s event, then takes the result.
fn result_after_event(
    poll: &mut Poll,
    reading: &mut BackgroundRead,
    token: Token,
    what: &str,
) -> Result<io::Result<Vec<u8>>, String> {
    let mut events = Events::with_capacity(8);
    poll.poll(&mut events, Some(PATIENCE)).map_err(|e| format!("Poll::poll failed: {e}"))?;
    ensure!(
        events.iter().any(|event| event.token() == token),
        "the read of {what} finished, but the Poll reported nothing for token {} within {} s: register your end of \
         the wake-up socket with the registry, under the token you were given, and write to the other end when \
         the read is done",
        token.0,
        PATIENCE.as_secs()
    );
    reading.take().ok_or_else(|| {
        format!(
            "the Poll reported token {} for {what}, but take() had no result: leave the result where take() \
             finds it before you wake the Poll",
            token.0
        )
    })
}

/// The tokens ready right now (a zero timeout only looks).
fn events_now(poll: &mut Poll) -> Result<Vec<Token>, String> {
    let mut events = Events::with_capacity(8);
    poll.poll(&mut events, Some(Duration::ZERO)).map_err(|e| format!("Poll::poll failed: {e}"))?;
    Ok(events.iter().map(|event| event.token()).collect())
}

/// Opens the FIFO for writing, writes the message and closes it: the reader
/// gets the message, then the end of the file.
///
/// Opened non-blocking, the FIFO refuses a writer (`ENXIO`) until a reader
/// has it open, so the check spins (yielding the CPU) until the reading
/// thread has got that far; the deadline only bounds a reader that never
/// comes, it judges no speed.
fn feed(fifo: &Path) -> Result<(), String> {
    let give_up = Instant::now() + PATIENCE;
    let mut feeder = loop {
        match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo) {
            Ok(feeder) => break feeder,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < give_up => thread::yield_now(),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(format!(
                    "no thread opened the file for reading within {} s of read_in_background's return: start \
                     the thread that reads it",
                    PATIENCE.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot open the FIFO for writing: {e}")),
        }
    };
    feeder.write_all(MESSAGE).map_err(|e| format!("cannot write into the FIFO: {e}"))
}

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("ch03-exercises-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    /// Makes a FIFO (a named pipe) in the folder.
    fn fifo(&self) -> io::Result<PathBuf> {
        let path = self.0.join("slow-disk");
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: `c_path` is a valid NUL-terminated string that outlives
        // the call; mkfifo only reads it.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
