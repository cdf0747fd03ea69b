//! Exercise 3.2: an echo server with `EPOLLONESHOT`.
//!
//! `Interest::ONESHOT` makes the kernel report a source once and then
//! disable it until `Registry::reregister` arms it again. With several
//! threads polling one queue, that is how exactly one of them gets to handle
//! each socket. Here is an echo server that registers everything ONESHOT;
//! the machinery is done (`new`, `turn`). Write the two handlers: accepting
//! clients, and echoing what a client sent. After each, re-arm what fired.
//!
//! Check it: `cargo run -p ch03-exercises -- 2`

// Starter code: the fields and `todo!()`s leave some names unused. Delete
// this line when your code uses them.
#![allow(unused_imports, unused_variables, dead_code)]

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

    /// The listener reported: accept every waiting client, register each,
    /// and arm the listener again.
    fn accept_clients(&mut self) -> io::Result<()> {
        todo!("accept until WouldBlock, register each client, then re-arm the listener")
    }

    /// A client reported: read what it sent, send it back, and arm it again
    /// (or forget it, if it closed).
    fn echo(&mut self, token: Token) -> io::Result<()> {
        todo!("read until WouldBlock, write it back, then re-arm the client (or drop it if it closed)")
    }
}
