//! The `thread_free` word of a shard: blocks freed by threads other than the owner, plus the
//! shard's notification state, in one atomic.
//!
//! The word is `list head | state`: free blocks are at least 8-aligned, so the two low bits
//! hold the state and the rest is a pointer to the first block of an intrusive singly linked
//! list (each block's first word points to the next).
//!
//! States:
//! - `NORMAL`: the shard sits in its class queue; the owner collects the list when it runs out
//!   of free blocks, so remote frees only push.
//! - `PARKED`: the owner moved the shard to its full list and will not look at it again unless
//!   told; the next remote free must tell it.
//! - `NOTIFYING`: a remote freer has pushed onto a `PARKED` shard and is now setting the shard's
//!   bit in its slab's `notified` mask. While in this state the owner must not release the
//!   shard (the freer is about to touch the slab header).
//! - `NOTIFIED`: the notification is posted; further remote frees just push.
//!
//! # Invariants
//! - Only the owner moves `NORMAL -> PARKED` (and only while the list is empty) and
//!   `NOTIFIED | PARKED -> NORMAL`; only a remote freer moves `PARKED -> NOTIFYING`, and only that
//!   same freer moves `NOTIFYING -> NOTIFIED`. So exactly one notification is posted per full
//!   episode, and a full shard can never miss a remote free: the push and the state change are
//!   one CAS.
//! - Blocks in the list are counted as used by the shard until the owner takes them (and
//!   after, until it pops or counts them: see the shard invariant), so a shard (and its slab)
//!   is only released once every remote free into it has been taken.
//! - While the state is `NOTIFYING` the shard is not released (the owner waits it out in
//!   [`ThreadFree::unpark`] before un-fulling, abandoning or releasing), so the freer's
//!   write to the slab header lands in live memory.
//! - That wait is the only place where a thread waits for another one's step, so `fork()`
//!   must never catch a freer between `PARKED -> NOTIFYING` and `NOTIFYING -> NOTIFIED`: that
//!   freer would not exist in the child, and the child's owner would wait for ever. Every
//!   notifier is counted in the process-wide fork guard (`crate::fork`) from before its
//!   `PARKED -> NOTIFYING` CAS until after its `NOTIFIED` CAS, and the guard's `prepare` (run
//!   before `fork()` by ferroc-global's `pthread_atfork` handler) keeps new notifiers out and
//!   waits until none is counted. A push that finds the shard not `PARKED` never touches the
//!   guard: the common remote free stays one CAS.
//!
//! # Orderings, and why each suffices
//! - [`push`](ThreadFree::push): the CAS is `Release` on success, so the block's link and
//!   every write the freer made to the block happen-before the owner's `Acquire` take that
//!   receives it (later pushes continue the release sequence: each is a read-modify-write of
//!   the same word). The first load and the failure ordering are `Relaxed`: they only guess
//!   the current word, which the CAS checks.
//! - [`take`](ThreadFree::take): one `Acquire` `fetch_and` that keeps the state bits, paired
//!   with the pushes' `Release`. Its `Relaxed` pre-check may read a stale empty list; that only
//!   leaves the blocks for the next collect (they still count as used, so nothing is released
//!   early), and a later `try_park` CAS sees the real word and fails.
//! - [`try_park`](ThreadFree::try_park): `Relaxed`. It publishes no data: the freer
//!   that sees `PARKED` touches only atomics of the slab header, which stays live because its
//!   block still counts as used. The CAS compares the whole word, so it fails if any block
//!   arrived, whatever the pre-check saw.
//! - The fork guard's entry (in [`push_parked`](ThreadFree::push_parked), the cold push onto a
//!   `PARKED` shard) is
//!   sequenced before the `PARKED -> NOTIFYING` CAS and its exit after the `NOTIFIED` CAS; the
//!   guard's own orderings (a `SeqCst`-fenced store-load pair, release/acquire on the count)
//!   are explained in `fork.rs`. The push reloads the word after entering, since entering may
//!   have waited out a fork.
//! - [`notified`](ThreadFree::notified): `Release`, paired with the owner's `Acquire` loads
//!   and CAS in [`unpark`](ThreadFree::unpark): the freer's write of the slab's
//!   notified bit (its last access to the slab) happens-before the owner goes on to reuse,
//!   abandon or release the shard. The slab's mask itself is only a hint of where to look
//!   (`Release` `fetch_or`, `Acquire` `swap`): the owner acts on a shard only after
//!   `unpark`, so a stale mask delays a notification, never loses one (the bit stays
//!   set until the owner swaps it out).
//! - [`reset`](ThreadFree::reset): `Relaxed`, only while no other thread can reach the shard
//!   (a new shard's blocks reach other threads only through the program's own
//!   synchronisation). [`state`](ThreadFree::state) is a `Relaxed` snapshot for tests.
//!
//! The loom models (`loom_tests/`, run by `cargo xtask test-loom`) drive this code itself:
//! remote frees racing the take (`remote_free.rs`), the full-shard handshake with one and two
//! freers and the owner waiting out a notification (`notify.rs`), abandonment and reclaim of a
//! slab while another thread frees into it (`abandon.rs`, through `crate::abandon`), and
//! `fork()` (the guard's prepare and parent) racing one or two notifiers (`fork.rs`).

use core::ptr::{self, NonNull};

use ferroc_base::sync::{
    atomic::{AtomicUsize, Ordering},
    spin_loop,
};

/// A free block: its first word links to the next.
#[repr(C)]
pub struct Block {
    /// The next free block.
    pub next: *mut Block,
}

/// The states of the thread-free word (its low two bits).
pub const NORMAL: usize = 0;
/// See the module docs.
pub const PARKED: usize = 1;
/// See the module docs.
pub const NOTIFYING: usize = 2;
/// See the module docs.
pub const NOTIFIED: usize = 3;
const STATE: usize = 3;

/// What a remote free must do after pushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Nothing: the owner will find the block.
    Done,
    /// (From [`ThreadFree::push`] only.) Nothing was pushed: the shard is `PARKED`, so this free
    /// is a notification: call [`ThreadFree::push_parked`].
    Parked,
    /// (From [`ThreadFree::push_parked`] only.) The shard was parked: post the notification, then
    /// call [`ThreadFree::notified`].
    MustNotify,
}

/// The remote-free list and notification state of one shard.
pub struct ThreadFree(AtomicUsize);

impl Default for ThreadFree {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadFree {
    ferroc_base::const_unless_loom! {
        /// An empty list in state `NORMAL`.
        pub fn new() -> Self {
            ThreadFree(AtomicUsize::new(0))
        }
    }

    /// Resets to an empty `NORMAL` list; only while no other thread can reach the shard.
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// The current state (a relaxed snapshot).
    pub fn state(&self) -> usize {
        self.0.load(Ordering::Relaxed) & STATE
    }

    /// The list's first block, without taking it (owner: the blocks below the head stay put
    /// until the owner takes them, and `Acquire` pairs with the pushes' `Release`, so their
    /// links are readable; introspection and consistency checks).
    #[cfg(not(ferroc_loom))]
    pub(crate) fn peek(&self) -> *mut Block {
        (self.0.load(Ordering::Acquire) & !STATE) as *mut Block
    }

    /// Pushes `block` (remote free: one CAS loop), unless the shard is `PARKED`: then nothing is
    /// pushed and the result is [`Pushed::Parked`], and the caller goes on with
    /// [`push_parked`](Self::push_parked), out of line, so that this path stays a leaf.
    ///
    /// # Safety
    ///
    /// `block` is a free block of this shard that nobody else references, at least 4-aligned.
    #[inline]
    pub unsafe fn push(&self, block: NonNull<Block>) -> Pushed {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let state = cur & STATE;
            if state == PARKED {
                return Pushed::Parked;
            }
            // SAFETY: the caller handed us the block (this fn's contract) and nobody reads it
            // until the CAS below publishes it.
            unsafe { (*block.as_ptr()).next = (cur & !STATE) as *mut Block };
            let new = block.as_ptr() as usize | state;
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return Pushed::Done,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The push of a remote free that found the shard `PARKED`: counts itself into the fork
    /// guard first (so that no `fork()` happens while the shard is `NOTIFYING`), then pushes.
    /// If the push moved `PARKED -> NOTIFYING` the result is [`Pushed::MustNotify`] and the
    /// caller stays counted in until [`notified`](Self::notified); otherwise (the owner
    /// un-fulled the shard meanwhile) it is [`Pushed::Done`], and the guard is left at once.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    #[cold]
    #[inline(never)]
    pub unsafe fn push_parked(&self, block: NonNull<Block>) -> Pushed {
        let guard = crate::fork::guard();
        guard.enter();
        // Reloaded: entering may have waited out a fork.
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let state = cur & STATE;
            // SAFETY: the caller handed us the block (this fn's contract) and nobody reads it
            // until the CAS below publishes it.
            unsafe { (*block.as_ptr()).next = (cur & !STATE) as *mut Block };
            let new_state = if state == PARKED { NOTIFYING } else { state };
            let new = block.as_ptr() as usize | new_state;
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) if state == PARKED => return Pushed::MustNotify,
                Ok(_) => {
                    guard.leave();
                    return Pushed::Done;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// [`push`](Self::push), then [`push_parked`](Self::push_parked) if the shard was `PARKED`:
    /// `Done` or `MustNotify` (for tests and models; the heap calls the two itself).
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push).
    pub unsafe fn push_remote(&self, block: NonNull<Block>) -> Pushed {
        // SAFETY: this fn's contract: a free block of this shard nobody else references,
        // aligned.
        match unsafe { self.push(block) } {
            // SAFETY: this fn's contract, and `push` pushed nothing (it found `PARKED`), so the
            // block is still unreferenced.
            Pushed::Parked => unsafe { self.push_parked(block) },
            done => done,
        }
    }

    /// Ends a notification begun by a push that returned [`Pushed::MustNotify`], and leaves
    /// the fork guard.
    pub fn notified(&self) {
        // Only the notifying thread changes the state now; pushes keep it.
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            debug_assert_eq!(cur & STATE, NOTIFYING);
            let new = (cur & !STATE) | NOTIFIED;
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        // After the state change: the fork guard's count covers the whole NOTIFYING window.
        crate::fork::guard().leave();
    }

    /// Takes the whole list (owner), keeping the state. Null if empty.
    #[inline]
    pub fn take(&self) -> *mut Block {
        if self.0.load(Ordering::Relaxed) & !STATE == 0 {
            return ptr::null_mut();
        }
        (self.0.fetch_and(STATE, Ordering::Acquire) & !STATE) as *mut Block
    }

    /// Owner: moves `NORMAL -> PARKED` if the list is empty. Returns false (and changes nothing)
    /// if blocks arrived, which the caller should collect instead.
    pub fn try_park(&self) -> bool {
        self.0
            .compare_exchange(NORMAL, PARKED, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Owner: waits out a notification in flight, then moves back to `NORMAL`. Returns the
    /// state it left (`PARKED`, `NOTIFIED` or `NORMAL`).
    pub fn unpark(&self) -> usize {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            match cur & STATE {
                NORMAL => return NORMAL,
                NOTIFYING => {
                    spin_loop();
                    cur = self.0.load(Ordering::Acquire);
                }
                state => match self.0.compare_exchange_weak(
                    cur,
                    cur & !STATE,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return state,
                    Err(actual) => cur = actual,
                },
            }
        }
    }
}
