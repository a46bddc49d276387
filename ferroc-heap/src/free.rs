//! Frees: local, remote and into full shards, then what a free may give back.
//!
//! [`Context::free`] finds the block's slab by masking (`slab.rs`) and its shard through the
//! unit's offset, then takes one of four ways, in this order:
//! - **local** (the slab is ours, the shard in a class queue): push on `local_free`, no atomic;
//!   a shard that empties is released unless it is its class's only one;
//! - **remote** (another context's slab, or an abandoned one): one CAS loop onto the shard's
//!   `thread_free`, inline (`abandon::free_remote`, the code the loom models run);
//! - **remote into a parked shard** (`abandon::free_into_parked`, cold): the push found the
//!   shard in its owner's full list (`PARKED`), so it pushes inside the fork guard and posts a
//!   notification in the slab's `notified` mask (see `thread_free.rs` for the handshake);
//! - **local into a full shard** (`free_into_own_full`, cold): the shard has room again and
//!   goes back to its class queue;
//!
//! and a huge block goes back to the arenas whole (`huge.rs`). The owner takes the
//! notifications back on its slow path (`process_notifications`).

use core::ptr::NonNull;

use ferroc_arena::BaseAlloc;
use ferroc_base::sync::atomic::Ordering;

use crate::{
    Context, abandon,
    shard::{FLAG_HUGE, FLAG_IN_FULL_LIST, Shard},
    slab::Slab,
};

impl<B: BaseAlloc> Context<'_, B> {
    /// Frees a block from any context of the same arenas.
    ///
    /// # Safety
    ///
    /// `ptr` was returned by an allocation of a context over the same `Arenas`, and is freed
    /// once.
    #[inline(always)]
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        // SAFETY: the caller promised a live block, which lies in a live slab whose header is
        // at `Slab::of`.
        let slab = unsafe { &*Slab::of(ptr) };
        if abandon::owned_by(slab, self.id()) {
            // Ours: the owner's copies of the offset and flags, on the line we write anyway.
            let shard = slab.own_shard_of(ptr);
            if shard.own_flags.get() == 0 {
                self.stats.free(shard);
                // SAFETY: a live block (the caller's promise) of our own shard, freed once.
                if unsafe { shard.push_local(ptr) } == 0 && !shard.is_alone() {
                    self.release_shard(shard);
                }
                return;
            }
            // Our slabs are never huge (a huge slab's owner is `NO_OWNER`, which no context's
            // id is), so the flag is `FLAG_IN_FULL_LIST`.
            // SAFETY: a live block (the caller's promise) of our own shard, freed once.
            return unsafe { self.free_into_own_full(shard, ptr) };
        }
        let shard = slab.shard_of(ptr);
        if shard.flags.load(Ordering::Relaxed) & FLAG_HUGE == 0 {
            // Another context's block (or an abandoned slab's): the remote path, one CAS loop,
            // inline too. `FLAG_IN_FULL_LIST` is the owner's business; the thread-free state
            // tells us.
            if !self.read_only {
                self.stats.free(shard);
            }
            // SAFETY: a live block of that shard (the caller's promise), freed once; blocks
            // are at least 8-aligned, so it can hold the list link.
            unsafe { abandon::free_remote(slab, shard, ptr.cast()) };
            return;
        }
        // SAFETY: `shard` is the huge shard of `slab` (its flag, which never changes while its
        // block lives), and the caller frees that block once.
        unsafe { self.free_huge(slab, shard) }
    }

    /// A local free into a shard of ours in the full list: it has room again, so it goes
    /// back to its class queue (and is released if the free empties it).
    ///
    /// Only [`free`](Self::free)'s local branch comes here. A remote free into a full shard
    /// never does: it pushes on `thread_free` and, if the shard is parked, notifies the owner
    /// (`abandon::free_into_parked`).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of `shard`, a shard of ours, freed once.
    #[cold]
    #[inline(never)]
    unsafe fn free_into_own_full(&self, shard: &Shard, ptr: NonNull<u8>) {
        self.stats.free(shard);
        self.unfull(shard);
        // SAFETY: a live block of our own shard, freed once (this fn's contract).
        if unsafe { shard.push_local(ptr) } == 0 && !shard.is_alone() {
            self.release_shard(shard);
        }
    }

    /// Moves a full shard of ours back to its class queue.
    pub(crate) fn unfull(&self, shard: &Shard) {
        shard.thread_free.unpark();
        shard.set_flags(0);
        self.full.remove(shard);
        self.queue_back(shard);
    }

    /// Takes the notifications remote frees posted for our full shards and puts those shards
    /// back in their queues.
    pub(crate) fn process_notifications(&self) {
        for s in self.own_slabs() {
            let mut bits = abandon::take_notifications(s);
            while bits != 0 {
                let u = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let shard = &s.shards[u];
                if shard.flags.load(Ordering::Relaxed) == FLAG_IN_FULL_LIST {
                    self.unfull(shard);
                }
            }
        }
    }

    /// Unqueues an empty shard and gives its units back (and the slab, if it empties).
    ///
    /// A local free that empties a shard releases it only if its class has another shard
    /// ([`Shard::is_alone`] says): the last one is kept, so an allocate/free pair does not
    /// create and release a shard each time.
    #[cold]
    pub(crate) fn release_shard(&self, shard: &Shard) {
        let c = shard.class();
        let was_head = self.queues[c].is_head(shard);
        self.queues[c].remove(shard);
        if was_head {
            self.update_direct(c);
        }
        self.release_units(shard);
    }

    /// Gives an unqueued empty shard's units back, and the slab if that empties it.
    fn release_units(&self, shard: &Shard) {
        let slab = Slab::of_shard(shard);
        let u = slab.unit_of(shard);
        if slab.put_units(u, shard.units.get() as usize) {
            self.release_slab(slab);
        }
    }
}
