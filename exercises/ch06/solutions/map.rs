//! Exercise 6.2, solved: pin projection by hand, for a two-field future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Runs `future`, then `f` on its output: `map(get, |response| response.status)`.
pub fn map<F, G, T>(future: F, f: G) -> Map<F, G>
where
    F: Future,
    G: FnOnce(F::Output) -> T,
{
    Map { future: Some(future), f: Some(f) }
}

// ANCHOR: map
/// The future [`map`] returns.
#[must_use = "futures do nothing unless polled: .await it"]
pub struct Map<F, G> {
    /// The future, until it finishes; then `None`. Structurally pinned: it
    /// may be an `async fn`'s future, which must stay where it was first
    /// polled, so it is only ever reached as `Pin<&mut _>`.
    future: Option<F>,
    /// The function, until it is called. Not pinned: calling an `FnOnce`
    /// moves it, and moving it is harmless (nothing points into it).
    f: Option<G>,
}

/// `Map`'s fields as its projection hands them out.
struct Fields<'a, F, G> {
    /// Pinned: polled in place, and dropped in place with `Pin::set`.
    future: Pin<&'a mut Option<F>>,
    /// Not pinned: a plain `&mut`, so it may be taken out.
    f: &'a mut Option<G>,
}

impl<F, G> Map<F, G> {
    /// Pin projection: a pinned `Map` gives a pinned `future` and a plain
    /// `&mut` to `f`.
    fn project(self: Pin<&mut Self>) -> Fields<'_, F, G> {
        // SAFETY: `get_unchecked_mut` is sound if nothing is moved out of
        // the pinned `Map` through the `&mut` it gives, and
        // `Pin::new_unchecked(&mut this.future)` declares `future` pinned for
        // as long as the `Map` is. The four rules hold for `Map`:
        // 1. `future` is handed out only here, and only pinned: no method of
        //    a pinned `Map` gives a `&mut Option<F>`, and `poll` ends it with
        //    `Pin::set(None)`, which drops the future where it is.
        // 2. `Map` has no `Drop` impl (its `drop` would get a plain
        //    `&mut self` and could move the future out; one written with
        //    std's `inner_drop` idiom, through this projection, would do).
        // 3. It is not `#[repr(packed)]` (a packed field may be moved to be
        //    aligned before it is dropped).
        // 4. `Map<F, G>` is `Unpin` only if `F` and `G` are (the auto trait;
        //    no `impl Unpin` here, which safe code could add), so
        //    `Pin::get_mut` cannot reach a pinned `!Unpin` future.
        // `f` is not pinned: nothing points into it, and it is moved out.
        unsafe {
            let this = self.get_unchecked_mut();
            Fields { future: Pin::new_unchecked(&mut this.future), f: &mut this.f }
        }
    }
}

impl<F, G, T> Future for Map<F, G>
where
    F: Future,
    G: FnOnce(F::Output) -> T,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let Fields { mut future, f } = self.project();
        let Some(running) = future.as_mut().as_pin_mut() else {
            panic!("Map polled after it returned Ready");
        };
        let output = ready!(running.poll(cx));
        // Done: drop the future now, in place (it may hold a socket, or a
        // big buffer), before `f` runs for who knows how long.
        future.set(None);
        // `f` is not pinned, so it may be moved out: `FnOnce` needs it by value.
        let f = f.take().expect("f is kept until the future finishes, and the future finishes once");
        Poll::Ready(f(output))
    }
}
// ANCHOR_END: map
