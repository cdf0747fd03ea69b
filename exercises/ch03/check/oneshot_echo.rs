//! The check of exercise 3.2: real clients on 127.0.0.1 talk to the echo
//! server, which the check drives one `turn` at a time on its own thread.
//! Each step names what a correct server must do after ONESHOT fired.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use ch03_epoll::poll::Interest;
use ch03_exercises::oneshot_echo::{EchoServer, INTEREST};
use exercise_harness::{Verdict, ensure};

/// How long one turn may wait for an event.
const TURN: Duration = Duration::from_millis(100);

/// How many turns a step may take before the check gives up. A correct
/// server needs one or two; this bounds a server that never answers to 5 s.
const TURNS: usize = 50;

pub fn check() -> Verdict {
    ensure!(INTEREST.contains(Interest::ONESHOT), "INTEREST is {INTEREST}: keep ONESHOT in it, it is the exercise");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut server = EchoServer::new(listener).map_err(|e| format!("EchoServer::new failed: {e}"))?;

    let mut first = Client::connect(addr)?;
    first.send(b"hello")?;
    echoed(&mut server, &mut first, b"hello", || {
        "client 1 sent \"hello\" and got no echo: accept every waiting client and register it; when a client \
         reports, read what it sent and write it back"
            .to_string()
    })?;

    first.send(b"again")?;
    echoed(&mut server, &mut first, b"again", || {
        "client 1's first message came back, its second did not: ONESHOT disabled the client's socket after its \
         first event. Arm it again with reregister after handling each event."
            .to_string()
    })?;

    let mut second = Client::connect(addr)?;
    second.send(b"me too")?;
    echoed(&mut server, &mut second, b"me too", || {
        "a second client got no echo: the listener is registered ONESHOT too, so after accepting, arm it again \
         (reregister), or no later client is ever accepted"
            .to_string()
    })?;
    first.send(b"and once more")?;
    echoed(&mut server, &mut first, b"and once more", || {
        "client 1's third message got no echo once client 2 had come".to_string()
    })?;

    drop(first);
    until(
        &mut server,
        |server| server.clients() == 1,
        || {
            "client 1 closed its connection, and the server still counts it: a read of 0 bytes means the client \
         closed; drop its stream (which also takes it out of the event queue)"
                .to_string()
        },
    )?;
    second.send(b"still here")?;
    echoed(&mut server, &mut second, b"still here", || {
        "after client 1 left, client 2's next message got no echo".to_string()
    })?;
    Ok(())
}

/// Turns the server until `client` has received `expected`, and nothing
/// else; `missing` explains an echo that never came.
fn echoed(
    server: &mut EchoServer,
    client: &mut Client,
    expected: &[u8],
    missing: impl FnOnce() -> String,
) -> Result<(), String> {
    until(server, |_| client.received_so_far().len() >= expected.len(), missing)?;
    let got = std::mem::take(&mut client.received);
    ensure!(
        got == expected,
        "a client sent {:?} and got back {:?}",
        String::from_utf8_lossy(expected),
        String::from_utf8_lossy(&got)
    );
    Ok(())
}

/// Turns the server until `done` holds, at most [`TURNS`] times; if it
/// never does, the explanation `stuck` makes. A turn that fails ends it
/// with the server's error.
fn until(
    server: &mut EchoServer,
    mut done: impl FnMut(&EchoServer) -> bool,
    stuck: impl FnOnce() -> String,
) -> Result<(), String> {
    for _ in 0..TURNS {
        if done(server) {
            return Ok(());
        }
        server.turn(Some(TURN)).map_err(|e| format!("EchoServer::turn failed: {e}"))?;
    }
    if done(server) { Ok(()) } else { Err(format!("{} (the check gave the server {TURNS} turns)", stuck())) }
}

/// A test client: a non-blocking socket and what it has received.
struct Client {
    /// Its connection.
    stream: TcpStream,
    /// Bytes received and not yet matched.
    received: Vec<u8>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("cannot connect to the server: {e}"))?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Client { stream, received: Vec::new() })
    }

    fn send(&mut self, message: &[u8]) -> Result<(), String> {
        self.stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let sent = self.stream.write_all(message).map_err(|e| format!("a client could not send: {e}"));
        self.stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        sent
    }

    /// Reads whatever has arrived (never waits) and returns all of it.
    fn received_so_far(&mut self) -> &[u8] {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        &self.received
    }
}
