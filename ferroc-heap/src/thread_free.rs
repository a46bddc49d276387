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
//! - `FULL`: the owner moved the shard to its full list and will not look at it again unless
//!   told; the next remote free must tell it.
//! - `NOTIFYING`: a remote freer has pushed onto a `FULL` shard and is now setting the shard's
//!   bit in its slab's `notified` mask. While in this state the owner must not release the
//!   shard (the freer is about to touch the slab header).
//! - `NOTIFIED`: the notification is posted; further remote frees just push.
//!
//! # Invariants
//! - Only the owner moves `NORMAL -> FULL` (and only while the list is empty) and
//!   `NOTIFIED | FULL -> NORMAL`; only a remote freer moves `FULL -> NOTIFYING`, and only that
//!   same freer moves `NOTIFYING -> NOTIFIED`. So exactly one notification is posted per full
//!   episode, and a full shard can never miss a remote free: the push and the state change are
//!   one CAS.
//! - Blocks in the list are counted as used by the shard until the owner takes them.
//!
//! # Orderings
//! - A push is a `Release` CAS: the block's link (and the freer's last writes to the block)
//!   happen-before the owner's `Acquire` take of the list.
//! - The owner's take is one `fetch_and` that keeps the state bits (one atomic RMW).
//! - State-only changes by the owner use `Acquire` on `NOTIFYING -> ...` waits so that the
//!   freer's write of the slab's notified bit (its `Release` store of `NOTIFIED`) is seen.

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
pub const FULL: usize = 1;
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
    /// The shard was full: post the notification, then call [`ThreadFree::notified`].
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

    /// Pushes `block` (remote free: one CAS loop).
    ///
    /// # Safety
    ///
    /// `block` is a free block of this shard that nobody else references, at least 4-aligned.
    #[inline]
    pub unsafe fn push(&self, block: NonNull<Block>) -> Pushed {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let state = cur & STATE;
            // SAFETY: the block is ours until the CAS publishes it.
            unsafe { (*block.as_ptr()).next = (cur & !STATE) as *mut Block };
            let new_state = if state == FULL { NOTIFYING } else { state };
            let new = block.as_ptr() as usize | new_state;
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) if state == FULL => return Pushed::MustNotify,
                Ok(_) => return Pushed::Done,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Ends a notification begun by a push that returned [`Pushed::MustNotify`].
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
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes the whole list (owner), keeping the state. Null if empty.
    #[inline]
    pub fn take(&self) -> *mut Block {
        if self.0.load(Ordering::Relaxed) & !STATE == 0 {
            return ptr::null_mut();
        }
        (self.0.fetch_and(STATE, Ordering::Acquire) & !STATE) as *mut Block
    }

    /// Owner: moves `NORMAL -> FULL` if the list is empty. Returns false (and changes nothing)
    /// if blocks arrived, which the caller should collect instead.
    pub fn try_mark_full(&self) -> bool {
        self.0
            .compare_exchange(NORMAL, FULL, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Owner: waits out a notification in flight, then moves back to `NORMAL`. Returns the
    /// state it left (`FULL`, `NOTIFIED` or `NORMAL`).
    pub fn unmark_full(&self) -> usize {
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
    use loom::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };
    use std::{boxed::Box, vec::Vec};

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
    /// once.
    #[test]
    fn loom_remote_free_push_collect() {
        ferroc_base::loom_model("remote_free_push_collect", || {
            let s = Arc::new(ThreadFree::new());
            let blocks = [block(), block()];
            let addrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
            let pushers: Vec<_> = blocks
                .into_iter()
                .map(|b| {
                    let s = s.clone();
                    let b = b.as_ptr() as usize;
                    loom::thread::spawn(move || {
                        // SAFETY: a fresh block handed to this thread alone.
                        let r = unsafe { s.push(NonNull::new(b as *mut Block).unwrap()) };
                        assert_eq!(r, Pushed::Done);
                    })
                })
                .collect();
            let mut got = Vec::new();
            drain(s.take(), &mut got);
            for p in pushers {
                p.join().unwrap();
            }
            drain(s.take(), &mut got);
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
                    let r = unsafe { s.tf.push(NonNull::new(b as *mut Block).unwrap()) };
                    if r == Pushed::MustNotify {
                        s.notified.fetch_or(1, Ordering::Release);
                        s.tf.notified();
                    }
                    r
                })
            };
            let mut got = Vec::new();
            let marked = s.tf.try_mark_full();
            if !marked {
                drain(s.tf.take(), &mut got);
            }
            let r = freer.join().unwrap();
            if marked {
                // The freer must have notified, and the notification must be visible.
                assert_eq!(r, Pushed::MustNotify);
                assert_eq!(s.notified.load(Ordering::Acquire), 1);
                assert_eq!(s.tf.unmark_full(), NOTIFIED);
            } else {
                assert_eq!(r, Pushed::Done);
            }
            drain(s.tf.take(), &mut got);
            assert_eq!(got, [b]);
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
            assert!(s.tf.try_mark_full());
            let b = block().as_ptr() as usize;
            let freer = {
                let s = s.clone();
                loom::thread::spawn(move || {
                    // SAFETY: a fresh block owned by this thread.
                    let r = unsafe { s.tf.push(NonNull::new(b as *mut Block).unwrap()) };
                    // The owner may have un-fulled the shard before this push.
                    if r == Pushed::MustNotify {
                        s.notified.fetch_or(1, Ordering::Relaxed);
                        s.tf.notified();
                    }
                })
            };
            let left = s.tf.unmark_full();
            if left == NOTIFIED {
                // The freer finished: its slab write is visible.
                assert_eq!(s.notified.load(Ordering::Relaxed), 1);
            } else {
                assert_eq!(left, FULL);
            }
            freer.join().unwrap();
        });
    }
}
