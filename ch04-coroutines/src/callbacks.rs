//! The same program with callbacks: an event loop that calls a closure when
//! a GET completes.
//!
//! A callback is "the code to run later" plus the state it needs, captured
//! by a closure. It works, and needs no state machine, but look at what the
//! program turns into (see [`fetch_three_callbacks`]):
//!
//! - each next step is a closure *inside* the previous one, so three awaits
//!   become three levels of nesting;
//! - every value a later step needs must be moved into every closure on the
//!   way there (`log` is cloned, `bytes` travels down by value);
//! - the function returns long before the answer exists, so the result goes
//!   into shared, mutable state (`Rc<RefCell<..>>`) that outlives it;
//! - errors cannot use `?` across closures: every level handles them itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use ch01_os_threads::client::connect_error;
use ch01_os_threads::http::{self, Response};
use ch03_epoll::client::connect_nonblocking;
use ch03_epoll::http_get::HttpGet;
use ch03_epoll::poll::{Events, Poll, Token};

use crate::coroutine::DELAYS;
use crate::http::interest;
use crate::log::Log;

/// What to run when a GET completes: gets the loop (to start more GETs) and
/// the body or the error.
pub type Callback = Box<dyn FnOnce(&mut EventLoop, io::Result<String>)>;

/// A GET in flight and the callback waiting for it.
struct InFlight {
    /// Chapter 3's exchange: the socket and how far the GET got.
    exchange: HttpGet<TcpStream>,
    /// Called once with the result.
    callback: Callback,
}

/// A ch03-style event loop that runs callbacks.
pub struct EventLoop {
    /// The event queue.
    poll: Poll,
    /// Room for one wait's events.
    events: Events,
    /// Next token to hand out.
    next_token: usize,
    /// The GETs in flight, by token.
    in_flight: HashMap<Token, InFlight>,
}

impl EventLoop {
    /// The longest single wait before the loop gives up.
    pub const WAIT_TIMEOUT: Duration = Duration::from_secs(70);

    /// An empty loop.
    pub fn new() -> io::Result<EventLoop> {
        Ok(EventLoop {
            poll: Poll::new()?,
            events: Events::with_capacity(64),
            next_token: 0,
            in_flight: HashMap::new(),
        })
    }

    // ANCHOR: get
    /// Starts `GET /<delay_ms>/<message>` and arranges for `callback` to run
    /// with the result. If it cannot even start, the callback runs at once.
    pub fn get(
        &mut self,
        addr: SocketAddr,
        delay_ms: u64,
        message: &str,
        callback: impl FnOnce(&mut EventLoop, io::Result<String>) + 'static,
    ) {
        let path = http::path(delay_ms, message);
        let token = Token(self.next_token);
        self.next_token += 1;
        let started = connect_nonblocking(addr)
            .map_err(|e| connect_error(addr, e))
            .and_then(|stream| self.poll.registry().register(&stream, token, interest()).map(|()| stream));
        match started {
            Ok(stream) => {
                let exchange = HttpGet::new(stream, addr, &path);
                self.in_flight.insert(token, InFlight { exchange, callback: Box::new(callback) });
            }
            Err(e) => callback(self, Err(e)),
        }
    }
    // ANCHOR_END: get

    /// Runs until no GET is in flight: wait, read, call back.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.in_flight.is_empty() {
            self.poll.poll(&mut self.events, Some(Self::WAIT_TIMEOUT))?;
            if self.events.is_empty() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no event within the wait timeout"));
            }
            // Collect the tokens first: a callback needs `&mut self`, which
            // it cannot have while we iterate over `self.events`.
            let tokens: Vec<Token> = self.events.iter().map(|event| event.token()).collect();
            for token in tokens {
                let Some(get) = self.in_flight.get_mut(&token) else { continue };
                let Some(result) = get.exchange.advance().finished else { continue }; // not complete yet
                let done = self.in_flight.remove(&token).expect("looked up above");
                let _ = self.poll.registry().deregister(done.exchange.stream());
                (done.callback)(self, result.and_then(Response::into_ok_body));
            }
        }
        Ok(())
    }
}

// ANCHOR: fetch_three_callbacks
/// The program from [`crate::coroutine`], written with callbacks. The result
/// lands in `result` when the last callback runs.
pub fn fetch_three_callbacks(
    event_loop: &mut EventLoop,
    addr: SocketAddr,
    log: Log,
    result: Rc<RefCell<Option<io::Result<usize>>>>,
) {
    log.say("start: three GETs, one after the other");
    event_loop.get(addr, DELAYS[0], "one", move |event_loop, one| {
        let one = match one {
            Ok(one) => one,
            Err(e) => return *result.borrow_mut() = Some(Err(e)),
        };
        log.say(format!("first answer {one:?}; asking for {one:?} + \"-two\""));
        let bytes = one.len();
        event_loop.get(addr, DELAYS[1], &format!("{one}-two"), move |event_loop, two| {
            let two = match two {
                Ok(two) => two,
                Err(e) => return *result.borrow_mut() = Some(Err(e)),
            };
            let bytes = bytes + two.len();
            log.say(format!("second answer {two:?}; {bytes} bytes so far"));
            event_loop.get(addr, DELAYS[2], "three", move |_, three| {
                let three = match three {
                    Ok(three) => three,
                    Err(e) => return *result.borrow_mut() = Some(Err(e)),
                };
                let bytes = bytes + three.len();
                log.say(format!("third answer {three:?}; done: {bytes} bytes in 3 answers"));
                *result.borrow_mut() = Some(Ok(bytes));
            });
        });
    });
}
// ANCHOR_END: fetch_three_callbacks

/// Runs the callback version against the delay server at `addr`; the
/// program prints to `program`. Returns the byte count.
pub fn run_callbacks(addr: SocketAddr, program: Log) -> io::Result<usize> {
    let mut event_loop = EventLoop::new()?;
    let result = Rc::new(RefCell::new(None));
    fetch_three_callbacks(&mut event_loop, addr, program, Rc::clone(&result));
    event_loop.run()?;
    let outcome = result.borrow_mut().take();
    outcome.unwrap_or_else(|| Err(io::Error::other("the event loop ended before the last callback ran")))
}
