//! The fork guard: `fork()` never happens while a remote freer is between the two steps of a
//! full-shard notification.
//!
//! A remote free into a `PARKED` shard moves it to `NOTIFYING` with its push, sets the shard's
//! bit in the slab's `notified` mask, and moves it to `NOTIFIED` (see `thread_free.rs`). The
//! owner waits out `NOTIFYING` before it un-fulls, abandons or releases the shard. A child of
//! `fork()` has only the forking thread: if another thread was inside that window, the state
//! would stay `NOTIFYING` for ever and the child's owner would spin on its next un-full.
//!
//! So every notifier counts itself in `IN_FLIGHT` for the whole window, and
//! [`prepare`] (a `pthread_atfork` prepare handler, registered by ferroc-global with feature
//! `libc`) raises `FORKING`, which keeps new notifiers out, and waits until the count is
//! zero. [`parent`] lowers the flag again; [`child`] clears both, since the child has no other
//! thread. Only the rare notification path pays (two read-modify-writes of a process-wide
//! word and a fence); pushes onto a shard that is not `PARKED` never look at the guard.
//!
//! # Orderings
//! - The notifier's increment of `in_flight` then load of `forking`, against the forker's
//!   increment of `forking` then load of `in_flight`, is a store-load (Dekker) pattern: each
//!   side puts a `SeqCst` fence between its increment and its load. The two fences are in one
//!   total order, and the load after the later fence sees the increment before the earlier
//!   one: either the notifier sees the fork and backs out before touching the shard, or the
//!   forker sees the notifier and waits. Release/acquire alone would let both loads read the
//!   old values and both go ahead. (Fences rather than `SeqCst` accesses because loom models
//!   `SeqCst` fences exactly but `SeqCst` accesses only as `AcqRel`; on x86 the increments
//!   are full barriers anyway.)
//! - A count the forker sees that includes a notifier's increment but not its decrement is at
//!   least 1 (every decrement follows its own increment in the modification order), so the
//!   forker waits for that notifier. [`leave`](ForkGuard::leave)'s decrement is `Release`
//!   and the forker's loads are `Acquire`; every change of the count is a read-modify-write,
//!   so the zero it finally reads is in that decrement's release sequence: the notifier's last
//!   step, the `NOTIFIED` CAS, happens-before the forker's `fork()`, and the child's copy of
//!   memory holds `NOTIFIED`, not `NOTIFYING`.
//! - The notifier's load of `forking` is `Acquire`: if it reads the zero written by
//!   [`parent`](ForkGuard::parent)'s `Release` decrement, the `fork()` before that
//!   happens-before the notifier's push, which so cannot be in the child. A notifier that
//!   backed out waits with `Acquire` loads until `forking` is zero, then re-enters through the
//!   same fenced pair (so a second fork is handled the same way).
//! - [`child`](ForkGuard::child)'s stores are `Relaxed`: the child runs them before it has
//!   any other thread.
//!
//! The guard is not tied to shards: any short step that another thread may wait for can be
//! counted in it with [`ForkGuard::enter`]/[`ForkGuard::leave`] (ferroc-global's statistics
//! readers do, for the `READING` state of a thread slot that the slot's exiting owner waits
//! out).
//!
//! Explicit users of `Context` who fork a multi-threaded program (ferroc-global does this
//! for its instances) call [`prepare`], [`parent`] and [`child`] around `fork()` themselves,
//! e.g. from their own `pthread_atfork` handlers.
//!
//! `fork()` from a signal handler that interrupted a remote free of the same thread would wait
//! for itself in [`prepare`]; freeing from a signal handler is unsupported anyway.

use ferroc_base::sync::{
    atomic::{AtomicUsize, Ordering, fence},
    spin_loop,
};

/// The guard's two counters; one process-wide instance (see [`guard`]).
pub struct ForkGuard {
    /// How many threads are forking (in `prepare`, not yet through `parent`).
    forking: AtomicUsize,
    /// How many remote freers are inside a notification.
    in_flight: AtomicUsize,
}

impl Default for ForkGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl ForkGuard {
    /// No fork, no notification.
    #[cfg(not(ferroc_loom))]
    pub const fn new() -> Self {
        ForkGuard {
            forking: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// No fork, no notification.
    #[cfg(ferroc_loom)]
    pub fn new() -> Self {
        ForkGuard {
            forking: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A remote freer about to move a `PARKED` shard to `NOTIFYING` (or any other thread about
    /// to start a step that others wait for): counts itself in, first waiting out a fork in
    /// progress. Must be followed by [`leave`](Self::leave), soon, without blocking.
    #[cold]
    pub fn enter(&self) {
        loop {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            // Store-load: see the module docs.
            fence(Ordering::SeqCst);
            if self.forking.load(Ordering::Acquire) == 0 {
                return;
            }
            // A fork is waiting for notifiers to drain: do not start one.
            self.in_flight.fetch_sub(1, Ordering::Release);
            while self.forking.load(Ordering::Acquire) != 0 {
                spin_loop();
            }
        }
    }

    /// The step is done (for a notifier: its shard is `NOTIFIED`, or it pushed without
    /// notifying).
    #[cold]
    pub fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Release);
    }

    /// Before `fork()`: keeps new notifications from starting and waits until none is in
    /// flight.
    pub fn prepare(&self) {
        self.forking.fetch_add(1, Ordering::Relaxed);
        // Store-load: see the module docs.
        fence(Ordering::SeqCst);
        while self.in_flight.load(Ordering::Acquire) != 0 {
            spin_loop();
        }
    }

    /// After `fork()`, in the parent: lets waiting notifiers go on.
    pub fn parent(&self) {
        self.forking.fetch_sub(1, Ordering::Release);
    }

    /// After `fork()`, in the child (which has no other thread yet).
    pub fn child(&self) {
        self.forking.store(0, Ordering::Relaxed);
        self.in_flight.store(0, Ordering::Relaxed);
    }

    /// How many notifications are in flight (a relaxed snapshot, for tests).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(not(ferroc_loom))]
static GUARD: ForkGuard = ForkGuard::new();

#[cfg(ferroc_loom)]
loom::lazy_static! {
    static ref GUARD: ForkGuard = ForkGuard::new();
}

/// The process-wide guard every notification goes through.
#[inline]
pub fn guard() -> &'static ForkGuard {
    &GUARD
}

/// `pthread_atfork` prepare handler: see the module docs.
pub fn prepare() {
    guard().prepare();
}

/// `pthread_atfork` parent handler: see the module docs.
pub fn parent() {
    guard().parent();
}

/// `pthread_atfork` child handler: see the module docs.
pub fn child() {
    guard().child();
}
