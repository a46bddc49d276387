//! A slab changing hands: abandon, reclaim, and the remote free that races them.
//!
//! These are the steps of the heap where a slab's owner changes, written once, generic over
//! the slab and its shards ([`OwnedSlab`], [`OwnedShard`]). The heap runs them on its real
//! `Slab` and `Shard` (`Context::abandon_all`, `Context::adopt`, `Context::free`); the loom
//! models (`loom_tests/abandon.rs`, `loom_tests/notify.rs`) run the very same functions on a
//! one-shard slab whose owner-only fields are loom cells, so that loom reports any access to
//! them that is not ordered after the previous owner's.
//!
//! # The steps
//! - [`give_up`] (a dying context, for each of its slabs): [`settle`] every shard, then either
//!   nothing is live (the caller releases the slab) or the slab is disowned (`owner =
//!   NO_OWNER`) and the caller hands it to the arenas' abandoned set.
//! - [`take_over`] (a context that took the slab out of the abandoned set): the slab becomes
//!   ours (`owner = id`, notification mask cleared), every shard is settled, live ones are
//!   handed to the caller (to queue), and an empty slab is released.
//! - [`settle`] (one shard, at both): wait out a remote freer's notification in flight
//!   ([`ThreadFree::unpark`]), leave every list, collect local and remote frees; give the
//!   units back if no block is live.
//! - [`free_remote`] (any thread that does not own the slab): push onto the shard's
//!   `thread_free`; if the shard is `PARKED`, the cold [`free_into_parked`] pushes inside the
//!   fork guard and posts the notification it owes (the slab's mask, then
//!   [`ThreadFree::notified`]).
//!
//! # Invariants
//! - A freer's block counts as used until its owner collects it, so a slab is released only
//!   after every remote free into it has been taken: the freer's push (and, for a notifier, its
//!   write to the slab's mask) lands in live memory. While a shard is `NOTIFYING` it is not
//!   released: [`settle`] waits it out first.
//! - The owner-only fields (lists, counts, flags) pass from one owner to the next through the
//!   abandoned set: the abandoning context's last write happens-before the reclaimer's first
//!   read. `owner` is not what hands them over (see below).
//!
//! # Orderings, and why each suffices
//! - `owner` stores and loads are `Relaxed` (see `slab.rs`): ids are never reused, a thread
//!   only ever stores its own id, and a stale or foreign value sends a free down the remote
//!   path, which is right for every thread but the owner. The owner reads its own id because
//!   it stored it itself, in program order. The hand-over of the owner-only fields is the
//!   abandoned set's `Release` abandon / `Acquire` reclaim (`ferroc_arena::abandoned`), which
//!   the caller runs after [`give_up`] and before [`take_over`].
//! - The mask is cleared with a `Relaxed` store at [`take_over`]: it is only a hint of where to
//!   look (the owner acts on a shard only after [`ThreadFree::unpark`]), and a bit posted
//!   after the clear only sends the owner to look at a shard that is not in its full list.
//! - A notifier's `fetch_or` on the mask is `Release` and [`take_notifications`]'s `swap` is
//!   `Acquire`: the owner that finds the bit finds the shard's push too. The pre-check is a
//!   `Relaxed` load: a stale zero only delays the notification (the bit stays set until the
//!   owner swaps it out).
//! - The thread-free word's own orderings (push `Release`, take `Acquire`, `unpark`'s
//!   `Acquire` against `notified`'s `Release`) are in `thread_free.rs`.

#![cfg_attr(all(ferroc_loom, not(test)), allow(dead_code))]

use core::ptr::NonNull;

use ferroc_base::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::thread_free::{Block, Pushed, ThreadFree};

/// The owner id of an abandoned slab (and of huge slabs, which nobody owns).
pub(crate) const NO_OWNER: usize = 0;

/// One shard as abandon, reclaim and a remote free see it.
pub(crate) trait OwnedShard {
    /// The shard's remote-free word (shared with every freeing thread).
    fn thread_free(&self) -> &ThreadFree;
    /// Owner only: drops the shard from every list, takes its local and remote frees in, and
    /// returns how many blocks are still live (exact: see the shard invariant).
    fn collect_live(&self) -> u32;
}

/// One slab as abandon, reclaim and a remote free see it.
pub(crate) trait OwnedSlab {
    /// Its shards.
    type Shard: OwnedShard;
    /// The owning context's id, or [`NO_OWNER`].
    fn owner(&self) -> &AtomicUsize;
    /// Units whose (full) shard got a remote free since the owner last looked.
    fn notified(&self) -> &AtomicU64;
    /// The bit of `shard`'s unit in [`notified`](Self::notified).
    fn unit_bit(&self, shard: &Self::Shard) -> u64;
    /// Owner only: the shards in use.
    fn shards(&self) -> impl Iterator<Item = &Self::Shard>;
    /// Owner only: gives the units of an empty shard back to the slab.
    fn put_shard(&self, shard: &Self::Shard);
}

/// What a slab holds once its owner settled every shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// No block is live: the caller releases the slab.
    Empty,
    /// Blocks are live: abandoned ([`give_up`]) or kept ([`take_over`]).
    Live,
}

/// Whether the context `id` owns `slab` (a free by it is local).
#[inline(always)]
pub(crate) fn owned_by<S: OwnedSlab>(slab: &S, id: usize) -> bool {
    slab.owner().load(Ordering::Relaxed) == id
}

/// Owner: settles one shard of a slab that changes hands (see the module docs). Returns
/// whether blocks are still live; if not, its units are back in the slab.
fn settle<S: OwnedSlab>(slab: &S, shard: &S::Shard) -> bool {
    // A notifier in flight is about to write the slab header: it must stay live (and ours)
    // until the notifier is done.
    shard.thread_free().unpark();
    if shard.collect_live() == 0 {
        slab.put_shard(shard);
        return false;
    }
    true
}

/// A context gives up `slab` (it is dying): settles every shard. [`Settled::Empty`]: the
/// caller releases the slab. [`Settled::Live`]: the slab is disowned, and the caller hands it
/// to the abandoned set (whose `Release` publishes everything written here).
pub(crate) fn give_up<S: OwnedSlab>(slab: &S) -> Settled {
    let mut live = false;
    for shard in slab.shards() {
        live |= settle(slab, shard);
    }
    if !live {
        return Settled::Empty;
    }
    slab.owner().store(NO_OWNER, Ordering::Relaxed);
    Settled::Live
}

/// The context `id` takes over `slab`, which it just took out of the abandoned set: makes it
/// its own, settles every shard and calls `keep` on those with live blocks.
/// [`Settled::Empty`]: nothing is live, the caller releases the slab.
pub(crate) fn take_over<S: OwnedSlab>(
    slab: &S,
    id: usize,
    mut keep: impl FnMut(&S::Shard),
) -> Settled {
    slab.owner().store(id, Ordering::Relaxed);
    slab.notified().store(0, Ordering::Relaxed);
    let mut live = false;
    for shard in slab.shards() {
        if settle(slab, shard) {
            live = true;
            keep(shard);
        }
    }
    if live { Settled::Live } else { Settled::Empty }
}

/// Owner: takes the notifications remote frees posted in `slab` (a mask of units).
#[inline]
pub(crate) fn take_notifications<S: OwnedSlab>(slab: &S) -> u64 {
    if slab.notified().load(Ordering::Relaxed) == 0 {
        return 0;
    }
    slab.notified().swap(0, Ordering::Acquire)
}

/// A free by a thread that does not own `slab` (the remote path: one CAS loop, inline).
/// Returns whether it posted a notification (the shard was `PARKED`).
///
/// # Safety
///
/// `block` is a live block of `shard` in `slab`, freed once, at least 4-aligned.
#[inline(always)]
pub(crate) unsafe fn free_remote<S: OwnedSlab>(
    slab: &S,
    shard: &S::Shard,
    block: NonNull<Block>,
) -> bool {
    // SAFETY: this fn's contract: a live block of `shard`, freed once, aligned; from now on it
    // is a free block nobody else references.
    if unsafe { shard.thread_free().push(block) } == Pushed::Parked {
        // SAFETY: this fn's contract, and `push` pushed nothing (it found `PARKED`).
        return unsafe { free_into_parked(slab, shard, block) };
    }
    false
}

/// A remote free into a shard that was `PARKED`: pushes inside the fork guard and posts the
/// notification it owes the owner (out of line, so that the common remote free keeps no
/// registers across a call). Returns whether it posted one.
///
/// # Safety
///
/// `block` is a live block of `shard` in `slab`, freed once, at least 4-aligned, not pushed
/// yet.
#[cold]
#[inline(never)]
pub(crate) unsafe fn free_into_parked<S: OwnedSlab>(
    slab: &S,
    shard: &S::Shard,
    block: NonNull<Block>,
) -> bool {
    // SAFETY: this fn's contract: a free block of `shard` nobody else references, aligned,
    // not pushed yet.
    if unsafe { shard.thread_free().push_parked(block) } != Pushed::MustNotify {
        return false;
    }
    // The shard cannot be released while NOTIFYING, so the header is still there.
    slab.notified()
        .fetch_or(slab.unit_bit(shard), Ordering::Release);
    // Also leaves the fork guard.
    shard.thread_free().notified();
    true
}

#[cfg(not(ferroc_loom))]
mod heap {
    use ferroc_base::sync::atomic::{AtomicU64, AtomicUsize};

    use super::{OwnedShard, OwnedSlab};
    use crate::{shard::Shard, slab::Slab, thread_free::ThreadFree};

    impl OwnedShard for Shard {
        #[inline(always)]
        fn thread_free(&self) -> &ThreadFree {
            &self.thread_free
        }

        fn collect_live(&self) -> u32 {
            self.set_flags(0);
            self.collect_all();
            self.used.get()
        }
    }

    impl OwnedSlab for Slab {
        type Shard = Shard;

        #[inline(always)]
        fn owner(&self) -> &AtomicUsize {
            &self.owner
        }

        #[inline(always)]
        fn notified(&self) -> &AtomicU64 {
            &self.notified
        }

        #[inline]
        fn unit_bit(&self, shard: &Shard) -> u64 {
            1u64 << self.unit_of(shard)
        }

        fn shards(&self) -> impl Iterator<Item = &Shard> {
            self.heads()
        }

        fn put_shard(&self, shard: &Shard) {
            self.put_units(self.unit_of(shard), shard.units.get() as usize);
        }
    }
}
