//! A stand-in for the network, for tests that step a coroutine by hand.
//!
//! [`scripted`] makes a [`Fetch`](crate::coroutine::Fetch) whose GETs need
//! no socket: each is [`Pending`](std::task::Poll::Pending) a set number of
//! times (waking its own task each time, so an executor polls it again),
//! then ready with the message as the body. So a test can poll
//! [`FetchThreeInto`](crate::coroutine::FetchThreeInto) with a no-op waker,
//! step by step, and look at its state and its self-pointer in between.
//!
//! A [`ScriptedGet`] is `!Unpin`, like a real GET (an `async fn`'s future),
//! and can report to a [`Probe`] where it was at each poll and where it was
//! dropped: a pinned future must be polled and dropped at one address.

use std::future::Future;
use std::io;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

/// What happened to a scripted GET, and where it was at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Polled while at this address.
    Polled(usize),
    /// Dropped while at this address.
    Dropped(usize),
}

/// Collects what the scripted GETs of one fetch saw: `(message, event)`.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// Every event, in order.
    events: Arc<Mutex<Vec<(String, Seen)>>>,
}

impl Probe {
    /// A probe with nothing seen yet.
    pub fn new() -> Probe {
        Probe::default()
    }

    /// A fetch like [`scripted`] whose GETs report here.
    pub fn fetch(&self, pending: u32) -> impl Fn(u64, &str) -> ScriptedGet + Clone + Send + use<> {
        let probe = self.clone();
        move |_delay_ms: u64, message: &str| ScriptedGet::new(pending, message, Some(probe.clone()))
    }

    /// Everything seen so far, in order.
    pub fn events(&self) -> Vec<(String, Seen)> {
        self.lock().clone()
    }

    fn record(&self, message: &str, seen: Seen) {
        self.lock().push((message.to_string(), seen));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Seen)>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A GET that is `Pending` `pending` times, then `Ready(Ok(message))`.
#[derive(Debug)]
pub struct ScriptedGet {
    /// `Pending` answers left.
    pending: u32,
    /// The body; taken when ready.
    message: Option<String>,
    /// Its name in the probe's events (the message).
    name: String,
    /// Where to report polls and the drop, if anywhere.
    probe: Option<Probe>,
    /// `!Unpin`, like the GETs it stands in for.
    _pinned: PhantomPinned,
}

impl ScriptedGet {
    fn new(pending: u32, message: &str, probe: Option<Probe>) -> ScriptedGet {
        let name = message.to_string();
        ScriptedGet { pending, message: Some(name.clone()), name, probe, _pinned: PhantomPinned }
    }
}

impl Future for ScriptedGet {
    type Output = io::Result<String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<String>> {
        // SAFETY: no field of `ScriptedGet` is structurally pinned (none
        // points anywhere); we change counters and take the message, which
        // never moves the `ScriptedGet` itself.
        let this = unsafe { self.get_unchecked_mut() };
        if let Some(probe) = &this.probe {
            probe.record(&this.name, Seen::Polled(ptr::from_ref(this).addr()));
        }
        if this.pending > 0 {
            this.pending -= 1;
            cx.waker().wake_by_ref(); // "poll me again": no event will come
            return Poll::Pending;
        }
        Poll::Ready(Ok(this.message.take().expect("ScriptedGet polled after it returned Ready")))
    }
}

impl Drop for ScriptedGet {
    fn drop(&mut self) {
        if let Some(probe) = &self.probe {
            probe.record(&self.name, Seen::Dropped(ptr::from_ref(self).addr()));
        }
    }
}

/// A fetch whose every GET is pending `pending` times, then answers its message.
pub fn scripted(pending: u32) -> impl Fn(u64, &str) -> ScriptedGet + Copy + Send {
    move |_delay_ms: u64, message: &str| ScriptedGet::new(pending, message, None)
}
