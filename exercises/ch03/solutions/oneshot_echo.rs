//! Exercise 3.2, solved: an echo server with `EPOLLONESHOT`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use ch03_epoll::poll::{Events, Interest, Poll, Token};

/// The listener's token; clients get 1, 2, 3, ...
pub const LISTENER: Token = Token(0);

/// Every source is registered for reading, once: after one event the kernel
/// disables it until [`Registry::reregister`](ch03_epoll::poll::Registry::reregister)
/// arms it again.
pub const INTEREST: Interest = Interest::READABLE.add(Interest::ONESHOT);

/// An echo server on chapter 3's `Poll`: it sends every client back what
/// the client sent, on one thread.
pub struct EchoServer {
    /// The event queue.
    poll: Poll,
    /// Room for one `Poll::poll`'s events.
    events: Events,
    /// Where clients connect (non-blocking).
    listener: TcpListener,
    /// The connected clients (non-blocking), by token.
    clients: HashMap<Token, TcpStream>,
    /// The token the next client gets.
    next_token: usize,
}

impl EchoServer {
    /// Serves clients of `listener` (made non-blocking and registered here).
    pub fn new(listener: TcpListener) -> io::Result<EchoServer> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        poll.registry().register(&listener, LISTENER, INTEREST)?;
        Ok(EchoServer { poll, events: Events::with_capacity(64), listener, clients: HashMap::new(), next_token: 1 })
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Waits up to `timeout` for events, handles each, and returns how many
    /// there were (0: the time ran out).
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.poll.poll(&mut self.events, timeout)?;
        let tokens: Vec<Token> = self.events.iter().map(|event| event.token()).collect();
        for &token in &tokens {
            if token == LISTENER {
                self.accept_clients()?;
            } else {
                self.echo(token)?;
            }
        }
        Ok(tokens.len())
    }

    // ANCHOR: accept_clients
    /// The listener reported: accept every waiting client, register each,
    /// and arm the listener again.
    fn accept_clients(&mut self) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(true)?;
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    self.poll.registry().register(&client, token, INTEREST)?;
                    self.clients.insert(token, client);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The client gave up between its handshake and our accept:
                // that concerns it alone.
                Err(_) => continue,
            }
        }
        // The event disabled the listener: without this, the next client
        // would wait in the backlog forever.
        self.poll.registry().reregister(&self.listener, LISTENER, INTEREST)
    }
    // ANCHOR_END: accept_clients

    // ANCHOR: echo
    /// A client reported: read what it sent, send it back, and arm it again
    /// (or forget it, if it closed).
    fn echo(&mut self, token: Token) -> io::Result<()> {
        let Some(client) = self.clients.get_mut(&token) else { return Ok(()) };
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        let open = loop {
            match client.read(&mut chunk) {
                Ok(0) => break false,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break false, // reset by the peer: it is gone
            }
        };
        // A teaching shortcut: the messages are small, so the send buffer
        // takes them whole. A real server keeps what `write` did not take and
        // waits for WRITABLE before it writes the rest.
        let open = open && client.write_all(&received).is_ok();
        if open {
            // One event, then silence: this is what makes the socket ours
            // alone until we are done with it (see the chapter).
            self.poll.registry().reregister(client, token, INTEREST)
        } else {
            // Closing the socket takes it out of the event queue too.
            self.clients.remove(&token);
            Ok(())
        }
    }
    // ANCHOR_END: echo
}
