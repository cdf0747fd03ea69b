//! The runtime: spawning fibers, round-robin scheduling, joining, and what
//! happens when a fiber ends or panics.
//!
//! One runtime per OS thread, kept in a thread-local for the duration of
//! [`run`]. The thread's own stack is the *main fiber* (id 0): it runs the
//! closure given to [`run`], and [`yield_now`] from it lets the other fibers
//! have a turn, just as [`yield_now`] from a fiber does.
//!
//! ## Scheduling
//!
//! Every live fiber, the main fiber included, has a small `Context`: its
//! saved stack pointer and its two neighbours in one circular, doubly linked
//! list (a ring) in the order they take turns. The thread-local `CURRENT`
//! points at the running fiber's context; [`yield_now`] just moves on to its
//! successor: round robin, in three loads and a store. A new fiber is
//! inserted just before the running one, so it runs after everyone already
//! waiting; a finished one is unlinked. There is no "blocked" state, because
//! there is nothing to wait for yet: a fiber that wants to wait for I/O can
//! only block the whole thread (chapter 3 fixes that), and
//! [`JoinHandle::join`] waits by yielding until the result is in.
//!
//! ```text
//!            spawn inserts here (between `prev` and CURRENT)
//!                    v
//!   ... <--> [prev] <--> [CURRENT] <--> [next] <--> ... (back to the start)
//!                                  yield_now moves here
//! ```
//!
//! ## Two kinds of state, and the borrow rule
//!
//! The hot path, [`yield_now`], touches only the contexts and `CURRENT`: no
//! `RefCell`, no bounds checks, no `Option`s. A yield round trip is two
//! switches, and every instruction on this path is paid twice per round trip
//! (see "Where the nanoseconds went" in the chapter page). A context's fields
//! are `Cell`s and it is reached through raw pointers, which is sound because
//! of one ownership rule: **every context is owned (through an `Rc`) by this
//! thread's `Runtime`, and is freed only after it has left the ring and is
//! no longer `CURRENT`.** So every pointer in the ring and in `CURRENT` points
//! at a live context.
//!
//! Everything else (slots, stacks, tasks, counters) sits in a `RefCell` in a
//! thread-local. It is borrowed only for short bookkeeping and **never across
//! a switch** (the fiber we switch to may borrow it too), and no user code
//! ever runs while it is borrowed (so a user's `Drop` cannot re-enter it).
//!
//! ## A fiber's life
//!
//! spawn → (ready ⇄ running)* → the closure returns or panics → the fiber's
//! entry function catches any panic (an unwind must never reach the switch
//! frames: there is nothing above the entry function to unwind into), stores
//! the result for [`JoinHandle::join`], and switches away for good. Its stack
//! cannot be recycled by the fiber itself (it is still running on it), so it
//! becomes the *zombie*, and the next runtime call made from another stack
//! measures its high-water mark, zeroes the used part and puts it on the free
//! list.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::{fmt, io, mem, ptr};

use crate::arch;
use crate::overflow;
use crate::stack::{DEFAULT_STACK_SIZE, Stack, StackPool};

/// Settings for [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Usable bytes per fiber stack (rounded up to whole pages; a guard page
    /// comes on top). Default 64 KiB.
    pub stack_size: usize,
    /// Measure each finished fiber's stack high-water mark (one `mincore`
    /// system call and a short scan per fiber: it multiplies the cost of a
    /// short fiber's life by about ten). Default off.
    pub measure_stack_use: bool,
    /// Keep at most this many finished fibers' stacks for reuse; beyond that
    /// they are unmapped. Default 1024.
    pub max_free_stacks: usize,
}

impl Config {
    /// The default settings, but measuring every fiber's stack use.
    pub fn measuring_stack_use() -> Config {
        Config { measure_stack_use: true, ..Config::default() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config { stack_size: DEFAULT_STACK_SIZE, measure_stack_use: false, max_free_stacks: 1024 }
    }
}

/// Counters of one runtime, from [`stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Fibers spawned so far (the main fiber not included).
    pub spawned: u64,
    /// Fibers whose closure has returned or panicked.
    pub finished: u64,
    /// Of those, how many panicked.
    pub panicked: u64,
    /// Spawns that got a stack from the free list instead of `mmap`.
    pub recycled_stacks: u64,
    /// Fiber stacks mapped right now (in use or on the free list).
    pub stacks_mapped: usize,
    /// Stacks on the free list right now.
    pub stacks_free: usize,
    /// Usable size of each stack.
    pub stack_size: usize,
    /// Fibers whose stack use was measured.
    pub measured: u64,
    /// The most stack any measured fiber used, in bytes.
    pub max_stack_used: usize,
    /// Total stack used by all measured fibers, in bytes (for the mean).
    pub total_stack_used: u64,
}

/// What [`JoinHandle::join_with_stats`] tells about a finished fiber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiberStats {
    /// The fiber's id.
    pub id: u64,
    /// Its stack's high-water mark in bytes, if the runtime measures them.
    pub stack_used: Option<usize>,
    /// The usable size of its stack.
    pub stack_size: usize,
}

/// Why [`JoinHandle::join`] has no value to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The fiber's closure panicked; the panic was caught at the fiber's entry.
    Panicked {
        /// The fiber's id.
        fiber: u64,
        /// The panic message.
        message: String,
    },
    /// The fiber can never finish from where `join` was called.
    Unfinishable {
        /// The fiber's id.
        fiber: u64,
        /// Why not.
        reason: &'static str,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Panicked { fiber, message } => write!(f, "green thread {fiber} panicked: {message}"),
            JoinError::Unfinishable { fiber, reason } => write!(f, "cannot join green thread {fiber}: {reason}"),
        }
    }
}

impl std::error::Error for JoinError {}

// ANCHOR: context
/// What the hot path ([`yield_now`]) and the overflow handler need of a
/// fiber, at an address that does not move while the fiber lives (it sits
/// behind an `Rc` owned by the `Runtime`; see "Two kinds of state" in the
/// module docs for why raw pointers to it are sound).
pub(crate) struct Context {
    /// Its saved stack pointer while it is not running (written by
    /// `arch::switch` when it switches away, read when it is resumed).
    sp: Cell<*mut u8>,
    /// The fiber that runs after it (the ring's forward link).
    next: Cell<*const Context>,
    /// The fiber that runs before it (so spawn and exit can relink in O(1)).
    /// Atomic (plain `mov`s on x86-64, and off the yield path) because the
    /// overflow handler reads it: while a fiber is still pushing its registers
    /// in `arch::switch`, `CURRENT` already names its successor, whose `prev`
    /// is the fiber that is switching away (see [`guard_page_owner`]).
    prev: AtomicPtr<Context>,
    /// Its slot in `Runtime::fibers`.
    slot: usize,
    /// Its id: 0 for the main fiber, then 1, 2, ... in spawn order.
    id: u64,
    /// Its stack's guard page (empty for the main fiber), for the overflow
    /// handler. Never changes after the context is created.
    guard: Range<usize>,
    /// The usable size of its stack, for the overflow message.
    stack_size: usize,
}

thread_local! {
    /// The running fiber's context, or null outside [`run`]. An atomic only
    /// because the overflow handler (a signal handler, which may interrupt
    /// the thread at any instruction) reads it too; on x86-64 its loads and
    /// stores are plain `mov`s. A constant initialiser and no destructor, so
    /// reading it is a single load at a fixed offset from the thread pointer.
    static CURRENT: AtomicPtr<Context> = const { AtomicPtr::new(std::ptr::null_mut()) };
}

/// Makes `context` the running one (null: no runtime). `Release` so that a
/// signal handler that loads the pointer (`Acquire`) also sees the fields
/// the context was created with; on x86-64 this is an ordinary store.
#[inline(always)]
fn set_current(context: *const Context) {
    CURRENT.with(|current| current.store(context.cast_mut(), Ordering::Release));
}

/// Runs `f` with the running fiber's context; `None` outside [`run`].
#[inline(always)]
fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    let context = CURRENT.with(|current| current.load(Ordering::Acquire));
    // SAFETY: CURRENT is null or points at the running fiber's context, which
    // this thread's runtime owns and frees only after it has left the ring
    // and stopped being CURRENT (see the module docs). The reference lives
    // only for the call to `f`, during which the running fiber cannot finish.
    unsafe { context.as_ref() }.map(f)
}

/// For the overflow handler: if `fault` lies in the guard page of the running
/// fiber, or of the fiber that is switching to it, that fiber's id and stack
/// size. `None` otherwise (the main fiber has no guard page of ours) and
/// outside [`run`]. Async-signal-safe: two atomic loads and reads of fields
/// that never change after creation.
///
/// Why two fibers: a yield sets `CURRENT` to the successor *before* calling
/// `arch::switch`, whose first instructions still write the old fiber's
/// stack (the control words, then six pushes: 64 bytes below the call). A
/// fiber that recurses and yields on every level overflows exactly there,
/// and at that moment the overflowing fiber is `CURRENT`'s predecessor.
pub(crate) fn guard_page_owner(fault: usize) -> Option<(u64, usize)> {
    with_current(|current| {
        // SAFETY: ring links always point at live contexts (module docs), and
        // `prev` is atomic, so reading it from a signal handler is no data
        // race; `Acquire` pairs with the `Release` stores in spawn and exit,
        // so the context's fields are seen as they were created.
        let previous = unsafe { &*current.prev.load(Ordering::Acquire) };
        [current, previous]
            .into_iter()
            .find(|context| context.id != 0 && context.guard.contains(&fault))
            .map(|context| (context.id, context.stack_size))
    })
    .flatten()
}
// ANCHOR_END: context

// ANCHOR: state
/// One fiber as the runtime sees it.
struct Fiber {
    /// Its context: the ring links and the saved stack pointer. Owned here;
    /// the ring and `CURRENT` only point at it.
    #[expect(dead_code, reason = "never read: holding it is what keeps the context alive")]
    context: Rc<Context>,
    /// Its stack; `None` for the main fiber, which runs on the thread's own.
    stack: Option<Stack>,
    /// Its closure and result slot; `None` for the main fiber.
    task: Option<Rc<dyn Task>>,
}

/// The state of the runtime on one thread.
struct Runtime {
    /// The settings it was started with.
    config: Config,
    /// Fibers by slot; slot 0 is the main fiber. Slots of finished fibers are
    /// `None` and get reused (`free_slots`).
    fibers: Vec<Option<Fiber>>,
    /// Empty slots in `fibers`.
    free_slots: Vec<usize>,
    /// Slot of a fiber that has finished but whose stack has not been
    /// recycled yet (it was still running on it when it finished).
    zombie: Option<usize>,
    /// Stacks, fresh or recycled.
    pool: StackPool,
    /// The id the next spawned fiber gets.
    next_id: u64,
    /// Counters for `stats()`.
    stats: Stats,
}
// ANCHOR_END: state

thread_local! {
    /// This thread's runtime while [`run`] is running.
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's runtime; `None` if there is none (outside
/// [`run`], or while the thread is exiting).
#[inline(always)]
fn with_runtime<R>(f: impl FnOnce(&mut Runtime) -> R) -> Option<R> {
    RUNTIME
        .try_with(|cell| {
            let mut runtime = cell.try_borrow_mut().ok()?;
            runtime.as_mut().map(f)
        })
        .ok()
        .flatten()
}

fn no_runtime() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no green-thread runtime on this thread: call spawn from inside ch02_green_threads::run(..)",
    )
}

// ANCHOR: run
/// Starts a runtime on this thread, runs `main` as its main fiber, then keeps
/// switching until every spawned fiber has finished, and returns `main`'s
/// value.
///
/// Fails if this thread already runs a runtime (fibers cannot nest runtimes),
/// if `config` is unusable, or if the overflow handler cannot be set up.
///
/// If `main` panics, the panic continues out of `run` after the runtime is
/// taken down; fibers that had not finished are abandoned: they never run
/// again, the objects on their stacks are never dropped, and their stacks
/// are leaked (mapped until the process exits), never unmapped or reused,
/// because something may still point into them. Their [`JoinHandle`]s
/// return [`JoinError::Unfinishable`].
pub fn run<R>(config: Config, main: impl FnOnce() -> R) -> io::Result<R> {
    if config.stack_size < 4096 || config.stack_size > 1 << 30 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stack_size {} is out of range (4 KiB to 1 GiB)", config.stack_size),
        ));
    }
    overflow::install_handler()?;
    let _alternate_stack = overflow::AltStack::ensure()?;
    // The main fiber's context: alone in the ring, its own neighbour.
    let main_context = Rc::new(Context {
        sp: Cell::new(ptr::null_mut()),
        next: Cell::new(ptr::null()),
        prev: AtomicPtr::new(ptr::null_mut()),
        slot: 0,
        id: 0,
        guard: 0..0,
        stack_size: 0,
    });
    main_context.next.set(Rc::as_ptr(&main_context));
    main_context.prev.store(Rc::as_ptr(&main_context).cast_mut(), Ordering::Relaxed);
    let main_context_ptr = Rc::as_ptr(&main_context);
    let main_fiber = Fiber { context: main_context, stack: None, task: None };
    let runtime = Runtime {
        config,
        fibers: vec![Some(main_fiber)],
        free_slots: Vec::new(),
        zombie: None,
        pool: StackPool::new(config.stack_size, config.max_free_stacks),
        next_id: 1,
        stats: Stats { stack_size: config.stack_size, ..Stats::default() },
    };
    RUNTIME.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) if slot.is_none() => {
            *slot = Some(runtime);
            Ok(())
        }
        _ => Err(io::Error::new(io::ErrorKind::AlreadyExists, "this thread already runs a green-thread runtime")),
    })?;
    // The runtime owns the main context now (and keeps it until Teardown).
    set_current(main_context_ptr);
    // From here on, the runtime must be taken down however we leave (also by
    // a panic in `main`): the guard does that when dropped.
    let teardown = Teardown;
    let value = main();
    // Run to completion: while fibers are left, give them turns.
    while with_runtime(|rt| rt.live()).unwrap_or(0) > 0 {
        yield_now();
    }
    drop(teardown);
    Ok(value)
}
// ANCHOR_END: run

/// Takes the runtime out of the thread-local when dropped.
struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        // First: nothing may point at a context once the runtime frees them.
        // The fence keeps the compiler from moving the frees below above this
        // store: the overflow handler, which may interrupt this thread
        // anywhere, must never find CURRENT pointing at freed memory.
        set_current(ptr::null());
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        let Some(mut runtime) = RUNTIME.with(|cell| cell.borrow_mut().take()) else { return };
        runtime.reap();
        // Only when `main` panicked can fibers be left. Their stacks may hold
        // live objects (even pinned ones), so the memory must never be reused:
        // leak it. Their closures and results are dropped normally, outside
        // the thread-local borrow.
        for fiber in runtime.fibers.iter_mut().filter_map(Option::take) {
            if let Some(stack) = fiber.stack {
                mem::forget(stack);
            }
        }
    }
}

// ANCHOR: yield_now
/// Lets the next ready fiber run; returns when it is this fiber's turn again.
/// Does nothing outside a runtime or when no other fiber is ready.
///
/// `#[inline(always)]` on purpose: the `call` to the switch then sits in the
/// caller's own code, which is what keeps the CPU's branch predictors right
/// (see `arch::x86_64`'s "Why `switch` ends in `jmp`").
#[inline(always)]
pub fn yield_now() {
    if let Some((save, resume)) = prepare_yield() {
        // SAFETY: `prepare_yield` made our successor in the ring current;
        // `save` points into our own context's `sp` cell (alive: we are in
        // the ring), `resume` is the saved stack pointer of a suspended (or
        // never started) fiber whose stack the runtime keeps mapped. No
        // reference to a context and no borrow of the runtime is held.
        unsafe { arch::switch(save, resume) }
    }
}
// ANCHOR_END: yield_now

/// [`yield_now`] through [`arch::switch_naive`], the switch that resumes with
/// `ret`: the same work, mispredicted. For the bench.
#[inline(always)]
pub fn yield_now_naive() {
    if let Some((save, resume)) = prepare_yield() {
        // SAFETY: as in `yield_now`; both switches save the same frame layout.
        unsafe { arch::switch_naive(save, resume) }
    }
}

// ANCHOR: next_switch
/// The bookkeeping half of a yield: move on in the ring and return the two
/// stack-pointer slots for the switch. `None` outside a runtime or when the
/// running fiber is alone.
///
/// This is the hot path, so it touches nothing but the contexts: one
/// thread-local load, the successor link, one thread-local store, the
/// successor's saved stack pointer. No `RefCell` borrow, no slot index to
/// bounds-check, no `Option` to unwrap (each of those was a load and a
/// branch on every switch, and some were loads that had to wait for the one
/// before them).
#[inline(always)]
fn prepare_yield() -> Option<(*mut *mut u8, *mut u8)> {
    with_current(|current| {
        let next = current.next.get();
        if ptr::eq(next, current) {
            return None;
        }
        // SAFETY: ring links always point at live contexts owned by the
        // runtime (see the module docs).
        let next = unsafe { &*next };
        set_current(next);
        // `sp` is a `Cell`: the switch writes our stack pointer into it
        // through this raw pointer, after every reference here is gone.
        Some((current.sp.as_ptr(), next.sp.get()))
    })
    .flatten()
}
// ANCHOR_END: next_switch

// ANCHOR: spawn
/// Starts a new fiber running `f` on this thread's runtime. It first runs at
/// the next [`yield_now`] (round robin: after the fibers already ready).
///
/// `f` need not be `Send`: a fiber never leaves the thread it was spawned on.
/// Fails outside [`run`] (`NotFound`), or when no stack can be mapped.
pub fn spawn<F, T>(f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + 'static,
    T: 'static,
{
    let shared = Rc::new(Shared {
        id: Cell::new(0),
        closure: Cell::new(Some(f)),
        result: Cell::new(None),
        finished: Cell::new(false),
        detached: Cell::new(false),
        stack_used: Cell::new(None),
    });
    let task: Rc<dyn Task> = shared.clone();
    let (id, slot, stack_size) = with_runtime(|rt| rt.spawn(task)).ok_or_else(no_runtime)??;
    shared.id.set(id);
    Ok(JoinHandle { id, slot, stack_size, shared })
}
// ANCHOR_END: spawn

/// The running fiber's id (0 for the main fiber), or `None` outside [`run`].
pub fn current_id() -> Option<u64> {
    with_current(|context| context.id)
}

/// This thread's runtime counters, or `None` outside [`run`].
pub fn stats() -> Option<Stats> {
    with_runtime(|rt| {
        rt.reap();
        Stats { stacks_mapped: rt.pool.mapped(), stacks_free: rt.pool.free(), ..rt.stats }
    })
}

impl Runtime {
    /// Fibers spawned and not finished yet.
    fn live(&self) -> u64 {
        self.stats.spawned - self.stats.finished
    }

    fn spawn(&mut self, task: Rc<dyn Task>) -> io::Result<(u64, usize, usize)> {
        self.reap();
        let (stack, recycled) = self.pool.take()?;
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.fibers.push(None);
            self.fibers.len() - 1
        });
        // The fiber's entry function finds its task through its slot number,
        // passed as the entry argument (an integer, not a real pointer).
        let arg = std::ptr::without_provenance_mut(slot);
        // SAFETY: `top` is the page-aligned top of a stack we own that nothing
        // runs on (fresh, or recycled from a finished fiber); `run` checked
        // it has at least 4 KiB, room for the 72-byte frame and for
        // `fiber_entry` to start (and a guard page below if it needs more).
        // `fiber_entry` never returns: it ends by switching away for good.
        let sp = unsafe { arch::init_stack(stack.top(), fiber_entry, arg) };
        let id = self.next_id;
        self.next_id += 1;
        let context = Rc::new(Context {
            sp: Cell::new(sp),
            next: Cell::new(ptr::null()),
            prev: AtomicPtr::new(ptr::null_mut()),
            slot,
            id,
            guard: stack.guard(),
            stack_size: stack.size(),
        });
        // Link it in between the running fiber and its predecessor: it runs
        // after all the others have had their turn.
        let new = Rc::as_ptr(&context);
        with_current(|current| {
            let prev = current.prev.load(Ordering::Relaxed);
            context.next.set(current);
            context.prev.store(prev, Ordering::Relaxed);
            // SAFETY: ring links point at live contexts (module docs).
            unsafe { (*prev).next.set(new) };
            // `Release`: the overflow handler may follow this link (see
            // `guard_page_owner`), and must find `context` fully written.
            current.prev.store(new.cast_mut(), Ordering::Release);
        })
        .ok_or_else(no_runtime)?;
        self.fibers[slot] = Some(Fiber { context, stack: Some(stack), task: Some(task) });
        self.stats.spawned += 1;
        self.stats.recycled_stacks += u64::from(recycled);
        Ok((id, slot, self.config.stack_size))
    }

    // ANCHOR: exit
    /// The running fiber has finished: it leaves the ring and becomes the
    /// zombie, and its successor runs. Returns the slots for that last switch.
    fn prepare_exit(&mut self, panicked: bool) -> Option<(*mut *mut u8, *mut u8)> {
        self.reap(); // an earlier zombie: its stack is not ours, safe to recycle now
        let switch = with_current(|me| {
            if me.slot == 0 || ptr::eq(me.next.get(), me) {
                return None; // the main fiber never "exits", and is always in the ring
            }
            // SAFETY: ring links point at live contexts (module docs).
            let (prev, next) = unsafe { (&*me.prev.load(Ordering::Relaxed), &*me.next.get()) };
            prev.next.set(next); // unlink: prev <-> next
            next.prev.store(ptr::from_ref(prev).cast_mut(), Ordering::Release);
            set_current(next);
            Some((me.slot, me.sp.as_ptr(), next.sp.get()))
        })
        .flatten();
        let (slot, save, resume) = switch?;
        // Our context stays alive (the runtime owns it) until `reap`, which
        // runs on another stack after this last switch.
        self.zombie = Some(slot);
        self.stats.finished += 1;
        self.stats.panicked += u64::from(panicked);
        Some((save, resume))
    }

    /// Recycles the zombie's stack: measure how much of it was used, zero
    /// that part, and put it on the free list.
    fn reap(&mut self) {
        let Some(slot) = self.zombie.take() else { return };
        let Some(fiber) = self.fibers[slot].take() else { return };
        self.free_slots.push(slot);
        let Some(mut stack) = fiber.stack else { return };
        if self.config.measure_stack_use {
            // SAFETY: the fiber finished and switched away for good (we run on
            // another stack now), so nothing lives on its stack any more.
            match unsafe { stack.used_bytes() } {
                Ok(used) => {
                    // SAFETY: as above.
                    unsafe { stack.clear_used(used) };
                    self.stats.measured += 1;
                    self.stats.max_stack_used = self.stats.max_stack_used.max(used);
                    self.stats.total_stack_used += used as u64;
                    if let Some(task) = &fiber.task {
                        task.record_stack_use(used);
                    }
                }
                // Could not measure: do not reuse a stack we could not clean.
                Err(_) => {
                    self.pool.unmap(stack);
                    return;
                }
            }
        }
        self.pool.give_back(stack);
        // `fiber.task` is dropped here: the fiber already consumed its closure
        // and (if nobody can join it) dropped its result, so no user code runs.
    }
    // ANCHOR_END: exit

    /// Whether `join`ing the fiber in slot `slot` whose task is `task` can
    /// ever succeed from here.
    ///
    /// The fiber is recognised by its task's address, not by its id: ids
    /// start at 1 in every runtime, and a handle can outlive its runtime
    /// (returned from `run`, or left over when `main` panicked), so fiber 1
    /// in slot 1 of a later runtime may be a stranger. The address cannot be
    /// reused while the handle lives, since the handle keeps the task alive.
    fn join_state(&self, task: *const (), slot: usize) -> JoinState {
        let alive = self.zombie != Some(slot)
            && self
                .fibers
                .get(slot)
                .and_then(Option::as_ref)
                .and_then(|fiber| fiber.task.as_ref())
                .is_some_and(|own| ptr::addr_eq(Rc::as_ptr(own), task));
        match alive {
            true if with_current(|c| c.slot) == Some(slot) => JoinState::SelfJoin,
            true => JoinState::Alive,
            false => JoinState::Gone,
        }
    }
}

enum JoinState {
    Alive,
    SelfJoin,
    Gone,
}

// ANCHOR: entry
/// Where every fiber starts (via `arch::fiber_start`), on its own stack.
/// It never returns: there is no caller to return to.
extern "sysv64" fn fiber_entry(arg: *mut u8) -> ! {
    let slot = arg.addr();
    let task = with_runtime(|rt| rt.fibers.get(slot)?.as_ref()?.task.clone()).flatten();
    let mut panicked = false;
    if let Some(task) = task {
        // `task.run()` catches the closure's panic itself. This outer catch is
        // for the rare panic after that (a panicking `Drop` of the payload or
        // of the result): no unwind may leave this function, since above it
        // there is no frame to unwind into, only the 0 return address.
        panicked = panic::catch_unwind(AssertUnwindSafe(|| task.run())).unwrap_or_else(|payload| {
            mem::forget(payload); // dropping it might panic again
            true
        });
    }
    let switch = with_runtime(|rt| rt.prepare_exit(panicked)).flatten();
    if let Some((save, resume)) = switch {
        // SAFETY: we are finished; the runtime made the next ready fiber
        // current and keeps our stack (as the zombie) mapped until another
        // fiber runs. Nothing resumes the stack pointer saved in `save`.
        unsafe { arch::switch(save, resume) };
    }
    abort_with("a green thread ended without a runtime to return to, or a finished one was resumed")
}
// ANCHOR_END: entry

/// Writes `why` to stderr and aborts: for broken invariants in places where
/// a panic could not unwind.
fn abort_with(why: &str) -> ! {
    eprintln!("ch02-green-threads: fatal: {why}");
    std::process::abort()
}

// ANCHOR: task
/// A fiber's closure and result, shared by the fiber (as `dyn Task`) and its
/// [`JoinHandle`] (as `dyn Outcome<T>`): one allocation per spawn.
struct Shared<F, T> {
    /// The fiber's id (set right after spawning, before it can run).
    id: Cell<u64>,
    /// The closure, until the fiber starts.
    closure: Cell<Option<F>>,
    /// The result, from when the fiber finishes until `join` takes it.
    result: Cell<Option<Result<T, JoinError>>>,
    /// The fiber has finished (the result may already be taken).
    finished: Cell<bool>,
    /// The `JoinHandle` was dropped: nobody will take the result.
    detached: Cell<bool>,
    /// The fiber's stack high-water mark, once measured.
    stack_used: Cell<Option<usize>>,
}

/// The fiber's side of [`Shared`].
trait Task {
    /// Runs the closure, catching a panic, and stores the result. Returns
    /// whether it panicked.
    fn run(&self) -> bool;
    /// Records the measured stack use.
    fn record_stack_use(&self, bytes: usize);
}

impl<F: FnOnce() -> T, T> Task for Shared<F, T> {
    fn run(&self) -> bool {
        let Some(f) = self.closure.take() else { return false };
        let (result, payload) = match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => (Ok(value), None),
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                eprintln!(
                    "{}",
                    ch01_os_threads::trace::line(
                        &format!("fiber {}", self.id.get()),
                        &format!("panicked: {message} (caught at its entry; the others carry on)")
                    )
                );
                (Err(JoinError::Panicked { fiber: self.id.get(), message }), Some(payload))
            }
        };
        self.finished.set(true);
        if self.detached.get() {
            drop(result); // nobody will join: drop it here, on our own stack
        } else {
            self.result.set(Some(result));
        }
        let panicked = payload.is_some();
        drop(payload); // last: if this panics, the result is already stored
        panicked
    }

    fn record_stack_use(&self, bytes: usize) {
        self.stack_used.set(Some(bytes));
    }
}
// ANCHOR_END: task

/// The [`JoinHandle`]'s side of [`Shared`].
trait Outcome<T> {
    fn take_result(&self) -> Option<Result<T, JoinError>>;
    fn is_finished(&self) -> bool;
    fn stack_used(&self) -> Option<usize>;
    fn detach(&self);
}

impl<F, T> Outcome<T> for Shared<F, T> {
    fn take_result(&self) -> Option<Result<T, JoinError>> {
        self.result.take()
    }

    fn is_finished(&self) -> bool {
        self.finished.get()
    }

    fn stack_used(&self) -> Option<usize> {
        self.stack_used.get()
    }

    fn detach(&self) {
        self.detached.set(true);
        drop(self.result.take());
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

// ANCHOR: join
/// Owned permission to wait for a fiber's result. `!Send`: it belongs to the
/// thread whose runtime runs the fiber, so this does not compile:
///
/// ```compile_fail
/// use ch02_green_threads::{Config, run, spawn};
///
/// run(Config::default(), || {
///     let handle = spawn(|| 1).unwrap();
///     // error: `Rc<..>` cannot be sent between threads safely
///     std::thread::spawn(move || handle.join());
/// })
/// .unwrap();
/// ```
pub struct JoinHandle<T> {
    /// The fiber's id.
    id: u64,
    /// The fiber's slot in the runtime (with the address of `shared`,
    /// identifies it).
    slot: usize,
    /// Its stack size, for [`FiberStats`].
    stack_size: usize,
    /// The result slot shared with the fiber.
    shared: Rc<dyn Outcome<T>>,
}

impl<T> JoinHandle<T> {
    /// The fiber's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the fiber has finished (returned or panicked).
    pub fn is_finished(&self) -> bool {
        self.shared.is_finished()
    }

    /// Waits for the fiber to finish, yielding to the others meanwhile, and
    /// returns its closure's value, or the panic that ended it.
    pub fn join(self) -> Result<T, JoinError> {
        self.join_with_stats().0
    }

    /// [`JoinHandle::join`], plus how much stack the fiber used.
    pub fn join_with_stats(self) -> (Result<T, JoinError>, FiberStats) {
        let result = loop {
            if let Some(result) = self.shared.take_result() {
                break result;
            }
            let task = Rc::as_ptr(&self.shared).cast::<()>();
            let state = with_runtime(|rt| rt.join_state(task, self.slot)).unwrap_or(JoinState::Gone);
            match state {
                JoinState::Alive => yield_now(),
                JoinState::SelfJoin => {
                    break Err(JoinError::Unfinishable { fiber: self.id, reason: "a green thread cannot join itself" });
                }
                JoinState::Gone => {
                    break Err(JoinError::Unfinishable { fiber: self.id, reason: "it ended without a result" });
                }
            }
        };
        // The fiber may be the zombie still: recycling it measures its stack.
        with_runtime(Runtime::reap);
        let stats = FiberStats { id: self.id, stack_used: self.shared.stack_used(), stack_size: self.stack_size };
        (result, stats)
    }
}
// ANCHOR_END: join

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.shared.detach();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).field("finished", &self.is_finished()).finish()
    }
}
