//! Leaf futures for TCP: `TcpListener::accept`, `TcpStream::connect`,
//! `read` and `write`.
//!
//! Each is a non-blocking syscall on a mio socket, tried first and waited
//! for only if it says `WouldBlock`: then the future leaves its waker with
//! the reactor (see [`IoSource::poll_io`]) and returns `Pending`. The
//! `poll_*` methods are the leaf futures' `poll`; the `async fn`s are thin
//! wrappers (`std::future::poll_fn`) so a task can simply `.await` them.
//!
//! A read or write future holds no state of its own between polls (the
//! bytes are in the kernel's buffers), so dropping one before it finishes
//! loses nothing: that is what makes cancelling by drop (`timeout`,
//! `abort`) safe for them.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::task::{Context, Poll, ready};

use crate::reactor::{Direction, IoSource};

/// A listening TCP socket whose `accept` is a future.
#[derive(Debug)]
pub struct TcpListener {
    /// The mio listener, registered with the reactor.
    io: IoSource<mio::net::TcpListener>,
}

impl TcpListener {
    /// Listens on `addr` with a backlog of 1 024 pending connections.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, 1024)
    }

    /// Listens on `addr`; the kernel queues up to `backlog` finished
    /// handshakes that were not accepted yet (capped by `net.core.somaxconn`).
    pub fn bind_with_backlog(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        // std's `bind` already called `listen` with its own backlog; on
        // Linux, calling it again on a listening socket just updates it.
        // SAFETY: the fd belongs to `listener`, alive for this call; `listen`
        // takes no pointers.
        if unsafe { libc::listen(listener.as_raw_fd(), backlog) } == -1 {
            return Err(io::Error::last_os_error());
        }
        listener.set_nonblocking(true)?;
        Ok(TcpListener { io: IoSource::new(mio::net::TcpListener::from_std(listener))? })
    }

    /// The address it listens on (with the real port if it bound port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Accepts one connection: `Ready` at once if the kernel has one queued,
    /// otherwise `Pending` until the reactor sees the listener readable.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |listener| listener.accept()).map(|accepted| {
            let (stream, peer) = accepted?;
            Ok((TcpStream { io: IoSource::new(stream)? }, peer))
        })
    }

    /// Waits for the next connection.
    ///
    /// Takes `&mut self`: one task accepts at a time (the reactor keeps one
    /// waker per direction of a socket).
    pub async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

/// A TCP connection whose `connect`, `read` and `write` are futures.
#[derive(Debug)]
pub struct TcpStream {
    /// The mio stream, registered with the reactor.
    io: IoSource<mio::net::TcpStream>,
}

// ANCHOR: connect
impl TcpStream {
    /// Connects to `addr`: starts the handshake without waiting, then waits
    /// for the socket to become writable, which is how the kernel reports
    /// that the handshake finished (or failed: then the error is read from
    /// the socket, as chapter 3 does with `SO_ERROR`).
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream { io: IoSource::new(mio::net::TcpStream::connect(addr)?)? };
        poll_fn(|cx| stream.io.poll_io(cx, Direction::Write, connected)).await?;
        Ok(stream)
    }
}

/// `Ok` once a non-blocking connect finished, its error if it failed, and
/// `WouldBlock` while the handshake is still going.
fn connected(stream: &mio::net::TcpStream) -> io::Result<()> {
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(()),
        // Not connected yet: writable events can come before the handshake ends.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}
// ANCHOR_END: connect

// ANCHOR: read_write
impl TcpStream {
    /// Reads what has arrived into `buf` (`Ok(0)`: the peer closed its side).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Read, |mut stream| stream.read(buf))
    }

    /// Writes as much of `buf` as the kernel's send buffer takes.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_io(cx, Direction::Write, |mut stream| stream.write(buf))
    }

    /// Reads what has arrived into `buf`, waiting until something has.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes some of `buf`, waiting until there is room for at least a byte.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }
}
// ANCHOR_END: read_write

impl TcpStream {
    /// Writes all of `buf`, however many writes it takes.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no more bytes")),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    // ANCHOR: read_to_end
    /// Reads what has arrived and appends it to `out` (`Ok(0)`: the peer
    /// closed its side).
    ///
    /// Through a buffer on the stack of this one poll: a buffer that lived in
    /// an `async fn` across its `.await`s would be part of the future's state,
    /// and a 4 KiB array there makes every task that awaits it 4 KiB bigger
    /// (chapter 4: a coroutine is as large as its largest state).
    pub fn poll_read_append(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; 4096];
        let n = ready!(self.poll_read(cx, &mut chunk))?;
        out.extend_from_slice(&chunk[..n]);
        Poll::Ready(Ok(n))
    }

    /// Waits until something arrives and appends it to `out` (see
    /// [`poll_read_append`](Self::poll_read_append)).
    pub async fn read_append(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_append(cx, out)).await
    }

    /// Reads until the peer closes its side; returns how many bytes were added.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        while self.read_append(out).await? > 0 {}
        Ok(out.len() - start)
    }
    // ANCHOR_END: read_to_end

    /// Shuts down the reading half, the writing half (sends end of file), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sends small writes at once instead of waiting to fill a packet (Nagle's algorithm off).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }
}
