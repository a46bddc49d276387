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
//! The loom models below (`cargo xtask test-loom`) check these: remote frees racing the take,
//! the full-shard handshake with one and two freers, the owner waiting out a notification,
//! abandonment and reclaim of a slab while another thread frees into it, and `fork()` (the
//! guard's prepare and parent) racing one or two notifiers.

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
    /// An empty list in state `NORMAL`.
    #[cfg(not(ferroc_loom))]
    pub const fn new() -> Self {
        ThreadFree(AtomicUsize::new(0))
    }

    /// An empty list in state `NORMAL`.
    #[cfg(ferroc_loom)]
    pub fn new() -> Self {
        ThreadFree(AtomicUsize::new(0))
    }

    /// Resets to an empty `NORMAL` list; only while no other thread can reach the shard.
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// The current state (a relaxed snapshot).
    pub fn state(&self) -> usize {
        self.0.load(Ordering::Relaxed) & STATE
    }

    /// The list's first block, without taking it (for consistency checks while no other
    /// thread frees into the shard).
    #[cfg(test)]
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
            // SAFETY: the block is ours until the CAS publishes it.
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
            // SAFETY: the block is ours until the CAS publishes it.
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
        // SAFETY: forwarded.
        match unsafe { self.push(block) } {
            // SAFETY: forwarded; nothing was pushed.
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

#[cfg(all(test, ferroc_loom))]
mod loom_tests {
    use super::*;
    use ferroc_arena::abandoned::AbandonedSet;
    use ferroc_base::bitmap::Bitmap;
    use loom::{
        cell::UnsafeCell,
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
    };
    use std::{boxed::Box, vec::Vec};

    /// `ferroc_base::loom_model` with a fixed preemption bound (and its iteration report).
    fn model_with_preemptions<F>(name: &str, preemptions: usize, f: F)
    where
        F: Fn() + Sync + Send + 'static,
    {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(preemptions);
        builder.check(move || {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f();
        });
        std::println!(
            "loom model {name}: {} iterations",
            count.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    struct Shared {
        tf: ThreadFree,
        notified: AtomicU64,
    }

    fn block() -> NonNull<Block> {
        NonNull::from(Box::leak(Box::new(Block {
            next: ptr::null_mut(),
        })))
    }

    fn drain(mut p: *mut Block, out: &mut Vec<usize>) {
        while !p.is_null() {
            out.push(p as usize);
            // SAFETY: blocks are leaked boxes owned by the test.
            p = unsafe { (*p).next };
        }
    }

    /// Two remote freers push while the owner takes the list: every block is collected exactly
    /// once, and what a freer wrote into its block before freeing it (a loom cell, so loom
    /// checks the order) is visible to the owner that collects it (`Release` push, `Acquire`
    /// take).
    #[test]
    fn loom_remote_free_push_collect() {
        ferroc_base::loom_model("remote_free_push_collect", || {
            let s = Arc::new(ThreadFree::new());
            let blocks = [block(), block()];
            let addrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
            let payload = Arc::new([UnsafeCell::new(0usize), UnsafeCell::new(0usize)]);
            let pushers: Vec<_> = blocks
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    let (s, payload) = (s.clone(), payload.clone());
                    let b = b.as_ptr() as usize;
                    loom::thread::spawn(move || {
                        // SAFETY: the block is this thread's until it is pushed.
                        payload[i].with_mut(|p| unsafe { *p = i + 1 });
                        // SAFETY: a fresh block handed to this thread alone.
                        let r = unsafe { s.push_remote(NonNull::new(b as *mut Block).unwrap()) };
                        assert_eq!(r, Pushed::Done);
                    })
                })
                .collect();
            // The owner collects while the freers run (yielding, so that loom schedules them
            // in between), and reads each block it gets before anyone is joined.
            let mut got = Vec::new();
            while got.len() < 2 {
                let before = got.len();
                drain(s.take(), &mut got);
                for &b in &got[before..] {
                    let i = addrs.iter().position(|&a| a == b).unwrap();
                    // SAFETY: the block was handed over by the take; loom checks the order.
                    payload[i].with(|p| assert_eq!(unsafe { *p }, i + 1));
                }
                loom::thread::yield_now();
            }
            for p in pushers {
                p.join().unwrap();
            }
            assert!(s.take().is_null());
            got.sort();
            let mut want = addrs.clone();
            want.sort();
            assert_eq!(got, want);
        });
    }

    /// The full-shard handshake: the owner marks the shard full while a freer pushes. Either
    /// the owner sees the block before marking (and does not mark), or the freer notifies
    /// exactly once; after the owner un-fulls it, the block is collected. The owner never
    /// observes `NOTIFYING` after it is done waiting.
    #[test]
    fn loom_full_shard_notification() {
        ferroc_base::loom_model("full_shard_notification", || {
            let s = Arc::new(Shared {
                tf: ThreadFree::new(),
                notified: AtomicU64::new(0),
            });
            let b = block().as_ptr() as usize;
            let freer = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    // SAFETY: a fresh block owned by this thread.
                    let r = unsafe { s.tf.push_remote(NonNull::new(b as *mut Block).unwrap()) };
                    if r == Pushed::MustNotify {
                        s.notified.fetch_or(1, Ordering::Release);
                        s.tf.notified();
                    }
                    r
                })
            };
            let mut got = Vec::new();
            let marked = s.tf.try_park();
            if !marked {
                drain(s.tf.take(), &mut got);
            }
            let r = freer.join().unwrap();
            if marked {
                // The freer must have notified, and the notification must be visible.
                assert_eq!(r, Pushed::MustNotify);
                assert_eq!(s.notified.load(Ordering::Acquire), 1);
                assert_eq!(s.tf.unpark(), NOTIFIED);
            } else {
                assert_eq!(r, Pushed::Done);
            }
            drain(s.tf.take(), &mut got);
            assert_eq!(got, [b]);
            assert_eq!(s.tf.state(), NORMAL);
        });
    }

    /// What one shard of a slab looks like to the abandon/reclaim model: its thread-free word,
    /// the slab's owner and notification mask, the arenas' abandoned set (one word), and the
    /// owner-only fields (`used`, and whether the slab has been given back) in loom cells, so
    /// that loom reports any access to them that is not ordered after the previous owner's.
    struct Slab {
        tf: ThreadFree,
        owner: AtomicUsize,
        notified: AtomicU64,
        abandoned_words: [AtomicU64; 1],
        abandoned_count: AtomicUsize,
        used: UnsafeCell<u32>,
        released: UnsafeCell<bool>,
        collected: UnsafeCell<Vec<usize>>,
    }

    impl Slab {
        fn abandoned(&self) -> AbandonedSet<'_> {
            AbandonedSet::new(Bitmap::new(&self.abandoned_words, 1), &self.abandoned_count)
        }

        /// The owner's collect: takes the remote frees and uncounts them; gives the slab back
        /// if nothing is live any more. Returns whether it did.
        fn collect_and_maybe_release(&self) -> bool {
            let mut got = Vec::new();
            drain(self.tf.take(), &mut got);
            let used = self.used.with_mut(|u| {
                // SAFETY: owner-only field; loom checks the ownership hand-over.
                unsafe {
                    *u -= got.len() as u32;
                    *u
                }
            });
            // SAFETY: as above.
            self.collected.with_mut(|c| unsafe { (*c).extend(got) });
            if used == 0 {
                // SAFETY: as above; nobody may touch the header after this.
                self.released.with_mut(|r| unsafe {
                    assert!(!*r, "released twice");
                    *r = true;
                });
            }
            used == 0
        }

        /// A context dying (or done with a reclaimed slab): waits out a notification, collects,
        /// and abandons the slab if blocks are still live.
        fn abandon_or_release(&self) {
            self.tf.unpark();
            if !self.collect_and_maybe_release() {
                self.owner.store(0, Ordering::Relaxed);
                self.abandoned().abandon(0);
            }
        }

        /// A reclaiming context: takes the slab if it is abandoned and makes it its own.
        fn reclaim(&self, id: usize) -> bool {
            if self.abandoned().reclaim().is_none() {
                return false;
            }
            self.owner.store(id, Ordering::Relaxed);
            self.tf.unpark();
            self.notified.store(0, Ordering::Relaxed);
            true
        }

        /// A free from a thread whose context id is `id`: local if the slab is its own.
        fn free(&self, id: usize, block: usize) {
            if self.owner.load(Ordering::Relaxed) == id {
                // SAFETY: the slab is ours: owner-only fields are ours to touch.
                self.used.with_mut(|u| unsafe { *u -= 1 });
                // SAFETY: as above.
                self.collected.with_mut(|c| unsafe { (*c).push(block) });
                return;
            }
            // SAFETY: a live block of the shard, freed once.
            let r = unsafe {
                self.tf
                    .push_remote(NonNull::new(block as *mut Block).unwrap())
            };
            if r == Pushed::MustNotify {
                // The header must still be there: the owner cannot release the slab while
                // the notification is in flight.
                // SAFETY: a read that loom checks against the release.
                self.released
                    .with(|r| assert!(!unsafe { *r }, "notified a released slab"));
                self.notified.fetch_or(1, Ordering::Release);
                self.tf.notified();
            }
        }
    }

    /// Abandon and reclaim of a slab while another thread frees into it. The slab has two
    /// live blocks in a full shard. Its owner (context 1) dies and abandons it while thread F
    /// frees block 1 remotely (possibly notifying), and context 2 reclaims the slab and frees
    /// block 2, locally if the reclaim came first. Context 2 then gives the slab up again
    /// (releasing it if nothing is live, abandoning it otherwise), and a last context reclaims
    /// whatever is left. Checks: every block is collected exactly once, `used` ends at 0, the
    /// slab is released exactly once and never touched afterwards, and the owner-only fields
    /// are only ever accessed in happens-before order (loom's cell checks).
    #[test]
    fn loom_abandon_reclaim_with_remote_free() {
        ferroc_base::loom_model("abandon_reclaim_with_remote_free", || {
            let s = Arc::new(Slab {
                tf: ThreadFree::new(),
                owner: AtomicUsize::new(1),
                notified: AtomicU64::new(0),
                abandoned_words: [AtomicU64::new(0)],
                abandoned_count: AtomicUsize::new(0),
                used: UnsafeCell::new(2),
                released: UnsafeCell::new(false),
                collected: UnsafeCell::new(Vec::new()),
            });
            assert!(s.tf.try_park(), "the shard starts in its owner's full list");
            let (b1, b2) = (block().as_ptr() as usize, block().as_ptr() as usize);
            let owner = {
                let s = s.clone();
                loom::thread::spawn(move || s.abandon_or_release())
            };
            let freer = {
                let s = s.clone();
                loom::thread::spawn(move || s.free(3, b1))
            };
            let reclaimer = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    let mine = s.reclaim(2);
                    s.free(2, b2);
                    if mine {
                        s.abandon_or_release();
                    }
                })
            };
            owner.join().unwrap();
            freer.join().unwrap();
            reclaimer.join().unwrap();
            // A last context takes over whatever is still abandoned, and every block is
            // free by now, so it releases the slab.
            if s.reclaim(4) {
                assert!(s.collect_and_maybe_release(), "all blocks are free");
            }
            // SAFETY: every other thread has been joined.
            unsafe {
                assert!(s.released.with(|r| *r), "the slab was given back");
                assert_eq!(s.used.with(|u| *u), 0);
                let mut got = s.collected.with(|c| (*c).clone());
                got.sort();
                let mut want = std::vec![b1, b2];
                want.sort();
                assert_eq!(got, want);
            }
        });
    }

    /// The whole delayed-free handshake with two remote freers: the owner moves the shard to
    /// its full list (unless blocks arrived first), then once looks for notifications the way
    /// `process_notifications` does (swap the slab's mask, un-full, collect). Whatever the
    /// interleaving, at most one notification is posted per full episode, a shard left in the
    /// full list always has its notification posted (none is lost), and every block is
    /// collected exactly once.
    #[test]
    fn loom_full_shard_two_freers() {
        ferroc_base::loom_model("full_shard_two_freers", || {
            let s = Arc::new(Shared {
                tf: ThreadFree::new(),
                notified: AtomicU64::new(0),
            });
            let posted = Arc::new(AtomicUsize::new(0));
            let blocks = [block().as_ptr() as usize, block().as_ptr() as usize];
            let freers: Vec<_> = blocks
                .iter()
                .map(|&b| {
                    let (s, posted) = (s.clone(), posted.clone());
                    loom::thread::spawn(move || {
                        // SAFETY: a fresh block owned by this thread.
                        let r = unsafe { s.tf.push_remote(NonNull::new(b as *mut Block).unwrap()) };
                        if r == Pushed::MustNotify {
                            posted.fetch_add(1, Ordering::Relaxed);
                            s.notified.fetch_or(1, Ordering::Release);
                            s.tf.notified();
                        }
                    })
                })
                .collect();
            let mut got = Vec::new();
            let mut in_full = s.tf.try_park();
            if !in_full {
                drain(s.tf.take(), &mut got);
            } else if s.notified.swap(0, Ordering::Acquire) != 0 {
                assert_eq!(s.tf.unpark(), NOTIFIED);
                in_full = false;
                drain(s.tf.take(), &mut got);
            }
            for f in freers {
                f.join().unwrap();
            }
            let posted = posted.load(Ordering::Relaxed);
            assert!(posted <= 1, "one notification per full episode");
            if in_full {
                // Still in the full list: a freer must have told us.
                assert_eq!(
                    posted, 1,
                    "a remote free into a full shard was not notified"
                );
                assert_eq!(s.notified.swap(0, Ordering::Acquire), 1);
                assert_eq!(s.tf.unpark(), NOTIFIED);
            }
            drain(s.tf.take(), &mut got);
            got.sort();
            let mut want = blocks.to_vec();
            want.sort();
            assert_eq!(got, want);
            assert_eq!(s.tf.state(), NORMAL);
        });
    }

    /// The owner un-fulls a shard (as when it processes a notification or abandons the slab)
    /// while a freer is mid-notification: the owner waits until `NOTIFIED`, so the freer's
    /// write to the slab header happens before the owner proceeds.
    #[test]
    fn loom_unfull_waits_for_notifier() {
        ferroc_base::loom_model("unfull_waits_for_notifier", || {
            let s = Arc::new(Shared {
                tf: ThreadFree::new(),
                notified: AtomicU64::new(0),
            });
            assert!(s.tf.try_park());
            let b = block().as_ptr() as usize;
            let freer = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    // SAFETY: a fresh block owned by this thread.
                    let r = unsafe { s.tf.push_remote(NonNull::new(b as *mut Block).unwrap()) };
                    // The owner may have un-fulled the shard before this push.
                    if r == Pushed::MustNotify {
                        s.notified.fetch_or(1, Ordering::Relaxed);
                        s.tf.notified();
                    }
                })
            };
            let left = s.tf.unpark();
            if left == NOTIFIED {
                // The freer finished: its slab write is visible.
                assert_eq!(s.notified.load(Ordering::Relaxed), 1);
            } else {
                assert_eq!(left, PARKED);
            }
            freer.join().unwrap();
        });
    }

    /// A remote freer notifies a full shard while another thread forks (`fork::prepare`,
    /// then what the child would copy, then `fork::parent`). At the fork the shard is never
    /// `NOTIFYING`, and if the notification was posted its slab bit is there too: the child's
    /// owner has nothing to wait for. The freer's notification is never lost (it is held
    /// back during the fork, not dropped), and the guard ends balanced.
    #[test]
    fn loom_fork_waits_for_notifier() {
        ferroc_base::loom_model("fork_waits_for_notifier", || {
            let s = Arc::new(Shared {
                tf: ThreadFree::new(),
                notified: AtomicU64::new(0),
            });
            assert!(s.tf.try_park());
            let b = block().as_ptr() as usize;
            let freer = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    // SAFETY: a fresh block owned by this thread.
                    let r = unsafe { s.tf.push_remote(NonNull::new(b as *mut Block).unwrap()) };
                    if r == Pushed::MustNotify {
                        s.notified.fetch_or(1, Ordering::Release);
                        s.tf.notified();
                    }
                    r
                })
            };
            let forker = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    crate::fork::prepare();
                    // What `fork()` would copy into the child.
                    let state = s.tf.state();
                    assert_ne!(state, NOTIFYING, "fork while a notification is in flight");
                    if state == NOTIFIED {
                        assert_eq!(s.notified.load(Ordering::Relaxed), 1);
                    } else {
                        assert_eq!(state, PARKED);
                        assert_eq!(s.notified.load(Ordering::Relaxed), 0);
                    }
                    crate::fork::parent();
                })
            };
            forker.join().unwrap();
            assert_eq!(freer.join().unwrap(), Pushed::MustNotify);
            assert_eq!(s.notified.load(Ordering::Acquire), 1);
            assert_eq!(s.tf.unpark(), NOTIFIED);
            let mut got = Vec::new();
            drain(s.tf.take(), &mut got);
            assert_eq!(got, [b]);
            assert_eq!(crate::fork::guard().in_flight(), 0);
        });
    }

    /// Two freers notify two full shards while a thread forks: the count of notifiers in
    /// flight holds the fork back until both are done or have not begun, whatever the order
    /// of their entries and exits.
    ///
    /// Run with at most one preemption: with two preemptions loom also explores an unfair
    /// schedule (one freer preempted inside its notification while the forker and the other,
    /// backed-out, freer yield to each other for ever) and stops on its branch limit. One
    /// preemption still covers a freer preempted anywhere in its notification with the fork
    /// and the other freer running meanwhile; `loom_fork_waits_for_notifier` runs with two.
    #[test]
    fn loom_fork_two_notifiers() {
        model_with_preemptions("fork_two_notifiers", 1, || {
            let shards = Arc::new([ThreadFree::new(), ThreadFree::new()]);
            for tf in shards.iter() {
                assert!(tf.try_park());
            }
            let freers: Vec<_> = (0..2)
                .map(|i| {
                    let shards = shards.clone();
                    let b = block().as_ptr() as usize;
                    loom::thread::spawn(move || {
                        // SAFETY: a fresh block owned by this thread.
                        let r = unsafe {
                            shards[i].push_remote(NonNull::new(b as *mut Block).unwrap())
                        };
                        assert_eq!(r, Pushed::MustNotify);
                        shards[i].notified();
                    })
                })
                .collect();
            crate::fork::prepare();
            for tf in shards.iter() {
                assert_ne!(
                    tf.state(),
                    NOTIFYING,
                    "fork while a notification is in flight"
                );
            }
            crate::fork::parent();
            for f in freers {
                f.join().unwrap();
            }
            for tf in shards.iter() {
                assert_eq!(tf.unpark(), NOTIFIED);
            }
            assert_eq!(crate::fork::guard().in_flight(), 0);
        });
    }
}
