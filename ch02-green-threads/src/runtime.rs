//! The scheduler: starting a runtime, spawning fibers, and what happens when
//! a fiber ends or panics.
//!
//! One runtime per OS thread, kept in a thread-local for the duration of
//! [`run`]. The thread's own stack is the *main fiber* (id 0): it runs the
//! closure given to [`run`], and [`yield_now`](crate::yield_now) from it lets
//! the other fibers have a turn, just as from a fiber. Who runs next is the
//! ring's business ([`crate::ring`]); this module keeps everything else.
//!
//! There is no "blocked" state, because there is nothing to wait for yet: a
//! fiber that wants to wait for I/O can only block the whole thread (chapter
//! 3 fixes that), and [`JoinHandle::join`](crate::JoinHandle::join) waits by
//! yielding until the result is in.
//!
//! ## The borrow rule
//!
//! The runtime's state (slots, stacks, tasks, counters) sits in a `RefCell`
//! in a thread-local. It is borrowed only for short bookkeeping and **never
//! across a switch** (the fiber we switch to may borrow it too), and no user
//! code ever runs while it is borrowed (so a user's `Drop` cannot re-enter
//! it).
//!
//! ## A fiber's life
//!
//! spawn → (ready ⇄ running)* → the closure returns or panics → the fiber's
//! entry function catches any panic (an unwind must never reach the switch
//! frames: there is nothing above the entry function to unwind into), stores
//! the result for [`JoinHandle::join`](crate::JoinHandle::join), and switches
//! away for good. Its stack cannot be recycled by the fiber itself (it is
//! still running on it), so it becomes the *zombie*, and the next runtime
//! call made from another stack measures its high-water mark, zeroes the
//! used part and puts it on the free list.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::{io, mem, ptr};

use crate::preempt::{self, Preempt, Quantum};
use crate::ring::{self, Context, Switch, set_current, with_current, yield_now};
use crate::stack::{DEFAULT_STACK_SIZE, Stack, StackPool};
use crate::task::{JoinHandle, Shared, Task};
use crate::{arch, asan, overflow};

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
    /// The context switch every yield makes. Default [`Switch::Call`], the
    /// one this chapter teaches; [`Switch::INLINE`] is the "going faster"
    /// one (see `arch::inline`).
    pub switch: Switch,
    /// Whether the runtime takes the CPU back from a fiber that does not
    /// yield, and how: at checkpoints, or also asynchronously (see
    /// [`crate::preempt`]). Default [`Preempt::Off`]: cooperative only.
    pub preempt: Preempt,
}

impl Config {
    /// The default settings, but measuring every fiber's stack use.
    pub fn measuring_stack_use() -> Config {
        Config { measure_stack_use: true, ..Config::default() }
    }

    /// The default settings, but switching with `switch`.
    pub fn switching_with(switch: Switch) -> Config {
        Config { switch, ..Config::default() }
    }

    /// The default settings, but preempting as `preempt` says.
    pub fn preempting(preempt: Preempt) -> Config {
        Config { preempt, ..Config::default() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stack_size: DEFAULT_STACK_SIZE,
            measure_stack_use: false,
            max_free_stacks: 1024,
            switch: Switch::Call,
            preempt: Preempt::Off,
        }
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
    /// Quantum ends (timer ticks) so far; 0 without preemption.
    pub ticks: u64,
    /// Fibers made to yield at a [`checkpoint`](crate::checkpoint) because
    /// their quantum had ended.
    pub preempted_at_checkpoints: u64,
    /// Fibers switched asynchronously, in the preemptible section.
    pub preempted_asynchronously: u64,
}

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
pub(crate) struct Runtime {
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
    /// The preemption timer and what it measured, if the runtime preempts.
    quantum: Option<Quantum>,
}
// ANCHOR_END: state

thread_local! {
    /// This thread's runtime while [`run`] is running.
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's runtime; `None` if there is none (outside
/// [`run`], or while the thread is exiting).
#[inline(always)]
pub(crate) fn with_runtime<R>(f: impl FnOnce(&mut Runtime) -> R) -> Option<R> {
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
    // The thread's own stack: only ASan needs to know it ((0, 0) otherwise).
    let main_stack = asan::thread_stack();
    // The main fiber's context: alone in the ring, its own neighbour.
    let main_context = Rc::new(Context {
        sp: Cell::new(ptr::null_mut()),
        next: Cell::new(ptr::null()),
        prev: AtomicPtr::new(ptr::null_mut()),
        slot: 0,
        id: 0,
        guard: 0..0,
        stack_bottom: main_stack.0,
        stack_size: main_stack.1,
        switch: config.switch,
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
        quantum: None,
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
    // The timer starts last, when there is a runtime for its ticks to talk
    // to; Teardown stops it first.
    let quantum = Quantum::start(config.preempt)?;
    with_runtime(|rt| rt.quantum = quantum);
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
        // No more ticks: the preemption timer is deleted (and its signal
        // handler put back if this was the last preempting runtime).
        drop(runtime.quantum.take());
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
    Ok(JoinHandle::new(id, slot, stack_size, shared))
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
        let (preempted_at_checkpoints, preempted_asynchronously) =
            rt.quantum.as_ref().map_or((0, 0), Quantum::forced_switches);
        Stats {
            stacks_mapped: rt.pool.mapped(),
            stacks_free: rt.pool.free(),
            ticks: preempt::ticks(),
            preempted_at_checkpoints,
            preempted_asynchronously,
            ..rt.stats
        }
    })
}

impl Runtime {
    /// The preemption timer and its measurements, if the runtime preempts.
    pub(crate) fn quantum_mut(&mut self) -> Option<&mut Quantum> {
        self.quantum.as_mut()
    }

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
        // it has at least 4 KiB, room for a frame of at most 72 bytes and for
        // `fiber_entry` to start (and a guard page below if it needs more).
        // `fiber_entry` never returns: it ends by switching away for good.
        // The frame is the one the runtime's kind of switch resumes.
        let sp = unsafe {
            match self.config.switch {
                Switch::Call => arch::init_stack(stack.top(), fiber_entry, arg),
                Switch::Inline { save_float_control } => {
                    arch::inline::init_stack(stack.top(), fiber_entry, arg, save_float_control)
                }
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        let context = Rc::new(Context {
            sp: Cell::new(sp),
            next: Cell::new(ptr::null()),
            prev: AtomicPtr::new(ptr::null_mut()),
            slot,
            id,
            guard: stack.guard(),
            stack_bottom: stack.bottom() as usize,
            stack_size: stack.size(),
            switch: self.config.switch,
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
    fn prepare_exit(&mut self, panicked: bool) -> Option<(Switch, *mut *mut u8, *mut u8, (usize, usize))> {
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
            Some((me.slot, me.sp.as_ptr(), next.sp.get(), (next.stack_bottom, next.stack_size)))
        })
        .flatten();
        let (slot, save, resume, next_stack) = switch?;
        // Our context stays alive (the runtime owns it) until `reap`, which
        // runs on another stack after this last switch.
        self.zombie = Some(slot);
        self.stats.finished += 1;
        self.stats.panicked += u64::from(panicked);
        Some((self.config.switch, save, resume, next_stack))
    }

    /// Recycles the zombie's stack: measure how much of it was used, zero
    /// that part, and put it on the free list.
    pub(crate) fn reap(&mut self) {
        let Some(slot) = self.zombie.take() else { return };
        let Some(fiber) = self.fibers[slot].take() else { return };
        self.free_slots.push(slot);
        let Some(mut stack) = fiber.stack else { return };
        // An ASan build: the frames the fiber left poisoned the shadow of its
        // stack; clean it before the stack is scanned, cleared or reused.
        asan::unpoison(stack.bottom(), stack.size());
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
    pub(crate) fn join_state(&self, task: *const (), slot: usize) -> JoinState {
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

/// Whether a `join` can still get its fiber's result.
pub(crate) enum JoinState {
    /// The fiber is in the ring: yield and ask again.
    Alive,
    /// The fiber asking is the one it waits for: it would wait forever.
    SelfJoin,
    /// The fiber is gone without leaving a result (its runtime ended).
    Gone,
}

// ANCHOR: entry
/// Where every fiber starts (via `arch::fiber_start`), on its own stack.
/// It never returns: there is no caller to return to.
extern "sysv64" fn fiber_entry(arg: *mut u8) -> ! {
    asan::finish_switch(ptr::null_mut()); // the first switch to this fiber is done (ASan builds)
    let slot = arg.addr();
    let task = with_runtime(|rt| rt.fibers.get(slot)?.as_ref()?.task.clone()).flatten();
    let mut panicked = false;
    if let Some(task) = task {
        // `task.run()` catches the closure's panic itself. This outer catch is
        // for the rare panic after that (a panicking `Drop` of the payload or
        // of the result): no unwind may leave this function, since above it
        // there is no frame to unwind into, only the 0 return address.
        panicked = panic::catch_unwind(AssertUnwindSafe(|| task.run())).unwrap_or_else(|payload| {
            // Dropping the payload might panic again: catch that too, and
            // only that second payload is given up on (leaked, never dropped).
            if let Err(again) = panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
                mem::forget(again);
            }
            true
        });
    }
    let switch = with_runtime(|rt| rt.prepare_exit(panicked)).flatten();
    if let Some((how, save, resume, (bottom, size))) = switch {
        asan::start_final_switch(bottom, size); // nothing, unless built for ASan
        // SAFETY: we are finished; the runtime made the next ready fiber
        // current and keeps our stack (as the zombie) mapped until another
        // fiber runs. Nothing resumes the stack pointer saved in `save`.
        // `how` is the runtime's switch, which saved the next fiber.
        unsafe { ring::switch(how, save, resume) };
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
