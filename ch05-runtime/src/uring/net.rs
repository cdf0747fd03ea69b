//! TCP on the completion driver: `connect`, `read` and `write` as
//! operations, with buffers that belong to the operation.
//!
//! Compare with [`crate::net::TcpStream`]: there, `read(&mut buf)` borrows
//! the caller's buffer for one system call inside one poll. Here,
//! `read(buf)` takes the `Vec` and gives it back with the result:
//!
//! ```no_run
//! # async fn example(stream: &ch05_runtime::uring::net::TcpStream) -> std::io::Result<()> {
//! let buf = Vec::with_capacity(4096);
//! let (result, buf) = stream.read(buf).await; // the kernel had `buf` meanwhile
//! let n = result?;
//! println!("{:?}", &buf[buf.len() - n..]);
//! # Ok(())
//! # }
//! ```
//!
//! The socket is shared the same way: each operation holds the file
//! descriptor (an `Arc<OwnedFd>`), so it is closed only when the stream
//! *and* every operation on it are gone. Closing it under an operation
//! could let the kernel take the SQE after the number was reused by
//! another socket.
//!
//! The sockets stay in blocking mode: io_uring never blocks a thread on
//! them (it waits for readiness inside the kernel).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use ch03_epoll::client::{socket_address, tcp_socket};
use ch03_epoll::uring::Sqe;

use super::op::{Op, count};

/// How much room [`TcpStream::read_to_end`] makes before each read. The
/// delay server's answers are a few hundred bytes: one read holds one.
pub const READ_CHUNK: usize = 1024;

/// A TCP connection whose `connect`, `read` and `write` are io_uring
/// operations.
#[derive(Debug)]
pub struct TcpStream {
    /// The socket, shared with every operation on it.
    fd: Arc<OwnedFd>,
}

// ANCHOR: connect
impl TcpStream {
    /// Connects to `addr`: one CONNECT operation, which completes once the
    /// handshake is done. (Under epoll: a non-blocking `connect`, a wait
    /// for writable, and a `getsockopt` to learn how it ended.)
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let fd = Arc::new(tcp_socket(addr, 0)?);
        let address = Box::new(socket_address(addr));
        let sqe = Sqe::connect(fd.as_fd(), (&raw const address.0).cast(), address.1, 0);
        // SAFETY: CONNECT reads the address in the Box, which the operation
        // owns, and uses the socket, which the operation keeps open.
        let op = unsafe { Op::submit(sqe, (Arc::clone(&fd), address)) }.map_err(|(e, _)| e)?;
        let (res, _) = op.await;
        count(res)?;
        Ok(TcpStream { fd })
    }
}
// ANCHOR_END: connect

impl TcpStream {
    // ANCHOR: read
    /// Receives what arrives into `buf`'s spare capacity (after its
    /// `len()`), and hands `buf` back, longer by what was read: `Ok(0)`
    /// means the peer closed its side. A `buf` with no spare capacity is
    /// refused: reading 0 bytes would look like the end of the stream.
    pub async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            let full = io::Error::new(io::ErrorKind::InvalidInput, "read needs a Vec with spare capacity");
            return (Err(full), buf);
        }
        let spare = buf.spare_capacity_mut();
        let sqe = Sqe::recv(self.fd.as_fd(), spare.as_mut_ptr().cast(), spare.len(), 0);
        // SAFETY: RECV writes into the Vec's spare capacity, on the heap,
        // and names this stream's socket.
        let (received, mut buf) = unsafe { self.on_buffer(sqe, buf) }.await;
        match received {
            Ok(n) => {
                let n = n.min(buf.capacity() - buf.len()); // the kernel never writes more than it was given
                // SAFETY: the kernel wrote `n` bytes right after the
                // initialised part, and its completion (which we hold) says
                // it is done with them.
                unsafe { buf.set_len(buf.len() + n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Submits `sqe`, an operation on this socket that reads or writes
    /// `buf`, waits for it, and hands `buf` back with its result. An
    /// operation interrupted before it did anything (`EINTR`) is submitted
    /// again.
    ///
    /// # Safety
    ///
    /// Every address in `sqe` must point into `buf`'s heap buffer (its
    /// contents or its spare capacity), and its file descriptor must be
    /// this stream's socket.
    async unsafe fn on_buffer(&self, sqe: Sqe, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        loop {
            // SAFETY: the caller's promise. The operation owns `buf`, whose
            // heap buffer does not move when the Vec does, and a share of
            // the socket, which stays open until it completes.
            let op = match unsafe { Op::submit(sqe, (Arc::clone(&self.fd), buf)) } {
                Ok(op) => op,
                Err((e, (_, buf))) => return (Err(e), buf),
            };
            let (res, (_, done)) = op.await;
            buf = done;
            match count(res) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue, // nothing done: the same again
                result => return (result, buf),
            }
        }
    }
    // ANCHOR_END: read

    /// Sends as much of `buf` as the socket takes (one SEND), and hands
    /// `buf` back with how many bytes that was.
    pub async fn write(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        self.send_from(buf, 0).await
    }

    /// Sends all of `buf`, however many SENDs it takes, and hands it back.
    pub async fn write_all(&self, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut sent = 0;
        while sent < buf.len() {
            let (result, back) = self.send_from(buf, sent).await;
            buf = back;
            match result {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => sent += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// One SEND of `buf[from..]`.
    async fn send_from(&self, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        let rest = buf.get(from..).unwrap_or_default();
        let sqe = Sqe::send(self.fd.as_fd(), rest.as_ptr(), rest.len(), 0);
        // SAFETY: SEND reads the Vec's heap buffer, and names this stream's socket.
        unsafe { self.on_buffer(sqe, buf) }.await
    }
}

impl AsFd for TcpStream {
    /// The socket, for system calls of your own (`getsockopt`, ...).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl TcpStream {
    // ANCHOR: read_to_end
    /// Reads until the peer closes its side, appending to `buf`; hands it
    /// back with how many bytes were added. Before a read it makes room for
    /// [`READ_CHUNK`] more bytes, unless half of that is still free: the
    /// kernel needs the buffer *before* the data arrives, so a task waiting
    /// for its answer holds that much. (A long stream still reads in big
    /// pieces: `reserve` doubles the `Vec` as it grows.)
    pub async fn read_to_end(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let start = buf.len();
        loop {
            if buf.capacity() - buf.len() < READ_CHUNK / 2 {
                buf.reserve(READ_CHUNK);
            }
            let (result, back) = self.read(buf).await;
            buf = back;
            match result {
                Ok(0) => return (Ok(buf.len() - start), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }
    // ANCHOR_END: read_to_end

    /// Shuts down the reading half, the writing half (sends end of file), or
    /// both. A plain system call: nothing to wait for.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: the fd is this stream's, open while `self` lives; shutdown
        // takes no pointers.
        ch01_os_threads::syscall!(unsafe { libc::shutdown(self.fd.as_raw_fd(), how) }).map(|_| ())
    }
}
