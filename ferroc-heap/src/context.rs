//! [`Context`]: what one thread owns, the shard queues, the slab list, adopting and abandoning
//! slabs, collecting, and the dispatch of the calls that need no path of their own.
//!
//! The paths live next door, each in its own file, as `impl Context` blocks: allocation
//! (`alloc.rs`: the direct table, the small fast path, the slow path), frees (`free.rs`:
//! local, remote, into full shards, releasing), huge blocks (`huge.rs`). This file holds the
//! state they share and what changes who owns it.

use core::{
    alloc::Layout,
    cell::Cell,
    marker::PhantomData,
    ptr::{self, NonNull},
};

use ferroc_arena::{
    Arenas, BaseAlloc, SlabRun,
    sizes::{SHARD_SIZE, SHARDS_PER_SLAB, SLAB_SIZE},
};
use ferroc_base::sync::atomic::Ordering;

#[cfg(feature = "stat")]
use crate::stat::Stats;
use crate::{
    abandon::{self, Settled},
    class::{CLASS_COUNT, DIRECT_SLOTS, LARGE_MAX},
    shard::{EMPTY, FLAG_HUGE, Shard},
    slab::{Slab, SlabWithRun},
    stat::StatCells,
};

#[cfg(test)]
mod tests;

/// The id of a context that has not allocated yet: no slab is ever owned by it.
const UNASSIGNED: usize = usize::MAX;

/// A doubly linked list of shards (through their `next`/`prev`).
///
/// Every pointer in it (its ends, the links of its shards) is null or a shard head of a slab
/// its context owns: live shard metadata that only the owning thread writes.
pub(crate) struct Queue {
    pub(crate) head: Cell<*mut Shard>,
    tail: Cell<*mut Shard>,
}

impl Queue {
    const fn new() -> Self {
        Queue {
            head: Cell::new(ptr::null_mut()),
            tail: Cell::new(ptr::null_mut()),
        }
    }

    /// Makes `prev` and `next` neighbours: `prev`'s `next` link (or the head, for null) points
    /// at `next`, `next`'s `prev` link (or the tail) at `prev`. Both are null or shards of this
    /// queue (or the one being linked in).
    #[inline]
    fn join(&self, prev: *mut Shard, next: *mut Shard) {
        // SAFETY: `prev` is null or a shard of this queue (this fn's contract): live metadata.
        match unsafe { prev.as_ref() } {
            Some(p) => p.next.set(next),
            None => self.head.set(next),
        }
        // SAFETY: `next` is null or a shard of this queue (this fn's contract): live metadata.
        match unsafe { next.as_ref() } {
            Some(n) => n.prev.set(prev),
            None => self.tail.set(prev),
        }
    }

    #[inline]
    pub(crate) fn push_front(&self, s: &Shard) {
        let p = ptr::from_ref(s).cast_mut();
        self.join(p, self.head.get());
        self.join(ptr::null_mut(), p);
    }

    #[inline]
    pub(crate) fn push_back(&self, s: &Shard) {
        let p = ptr::from_ref(s).cast_mut();
        self.join(self.tail.get(), p);
        self.join(p, ptr::null_mut());
    }

    #[inline]
    pub(crate) fn remove(&self, s: &Shard) {
        self.join(s.prev.get(), s.next.get());
        s.next.set(ptr::null_mut());
        s.prev.set(ptr::null_mut());
    }

    /// Forgets every shard (they keep their stale links; [`push_front`](Self::push_front) and
    /// [`push_back`](Self::push_back) overwrite them).
    fn clear(&self) {
        self.head.set(ptr::null_mut());
        self.tail.set(ptr::null_mut());
    }

    pub(crate) fn is_head(&self, s: &Shard) -> bool {
        ptr::eq(self.head.get(), s)
    }

    pub(crate) fn head(&self) -> Option<&Shard> {
        // SAFETY: the head is null or a shard of this queue: live shard metadata of our slabs.
        unsafe { self.head.get().as_ref() }
    }
}

/// Per-thread owner of slabs taken from an [`Arenas`], and the state behind every [`Heap`]
/// bound to it. Not `Send`: its slabs name it as their owner, and frees from its thread take
/// the lock-free local path.
///
/// Nothing outside a `Context` points into it (remote frees reach shards and slab headers
/// only), so it may be moved freely while no `Heap` borrows it. Dropping it releases what is
/// free and abandons slabs with live blocks to the arenas, where other contexts reclaim them.
///
/// [`Heap`]: crate::Heap
pub struct Context<'a, B: BaseAlloc> {
    pub(crate) arenas: &'a Arenas<B>,
    id: Cell<usize>,
    /// Small sizes: `(size + 7) / 8` to the current shard of the size's class (`alloc.rs`).
    pub(crate) direct: [Cell<*mut Shard>; DIRECT_SLOTS],
    /// Shards with room (or not yet known to be full), by class.
    pub(crate) queues: [Queue; CLASS_COUNT],
    /// Shards without room.
    pub(crate) full: Queue,
    /// The slabs this context owns (huge slabs excluded).
    slabs: Cell<*mut Slab>,
    pub(crate) stats: StatCells,
    /// A placeholder shared read-only between threads ([`Context::new_read_only`]): its frees
    /// are not counted, so it is never written.
    pub(crate) read_only: bool,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, B: BaseAlloc> Context<'a, B> {
    /// A context over `arenas`. `const`: it takes no memory until its first allocation.
    pub const fn new(arenas: &'a Arenas<B>) -> Self {
        Context {
            arenas,
            id: Cell::new(UNASSIGNED),
            direct: [const { Cell::new(EMPTY) }; DIRECT_SLOTS],
            queues: [const { Queue::new() }; CLASS_COUNT],
            full: Queue::new(),
            slabs: Cell::new(ptr::null_mut()),
            stats: StatCells::new(),
            read_only: false,
            _not_send: PhantomData,
        }
    }

    /// A context that never allocates and is never written, for sharing between threads as a
    /// placeholder (a global allocator's thread slots start at one): frees and size queries
    /// through it take the remote path and are not counted in its statistics. Allocating
    /// through it is a bug (it would write).
    pub const fn new_read_only(arenas: &'a Arenas<B>) -> Self {
        let mut cx = Self::new(arenas);
        cx.read_only = true;
        cx
    }

    /// The arenas this context takes slabs from.
    pub fn arenas(&self) -> &'a Arenas<B> {
        self.arenas
    }
}

impl<B: BaseAlloc> Context<'_, B> {
    /// The id its slabs carry, once it has allocated.
    #[inline]
    pub(crate) fn id(&self) -> usize {
        self.id.get()
    }

    pub(crate) fn assign_id(&self) -> usize {
        if self.id.get() == UNASSIGNED {
            self.id.set(self.arenas.new_owner_id());
        }
        self.id.get()
    }

    // ---------------------------------------------------------------------------------------
    // Slabs and queues
    // ---------------------------------------------------------------------------------------

    /// Claims a new slab from the arenas and lists it.
    pub(crate) fn new_slab(&self) -> Option<&Slab> {
        let run = self.arenas.allocate(1, SLAB_SIZE, 0, true).ok()?;
        // SAFETY: a committed run that is ours alone.
        let slab = unsafe { SlabWithRun::<B>::init(run, self.id()) };
        self.link_slab(slab);
        self.stats.slab(1);
        Some(slab)
    }

    /// Unlists a slab with no shard in use and gives it back to the arenas.
    pub(crate) fn release_slab(&self, slab: &Slab) {
        self.unlink_slab(slab);
        self.stats.slab(-1);
        // SAFETY: a slab of our arenas (base `B`) holding its token; it has no shard in use
        // and is unlisted: nobody reaches it any more.
        let run = unsafe { slab.take_run::<B>() };
        self.arenas.deallocate(run);
    }

    fn link_slab(&self, slab: &Slab) {
        let p = ptr::from_ref(slab).cast_mut();
        slab.prev.set(ptr::null_mut());
        slab.next.set(self.slabs.get());
        // SAFETY: the list's head is null or a slab of ours, live while listed.
        if let Some(h) = unsafe { self.slabs.get().as_ref() } {
            h.prev.set(p);
        }
        self.slabs.set(p);
    }

    fn unlink_slab(&self, slab: &Slab) {
        let (prev, next) = (slab.prev.get(), slab.next.get());
        // SAFETY: a listed slab's `prev` is null or a slab of ours, live while listed.
        match unsafe { prev.as_ref() } {
            Some(p) => p.next.set(next),
            None => self.slabs.set(next),
        }
        // SAFETY: a listed slab's `next` is null or a slab of ours, live while listed.
        if let Some(n) = unsafe { next.as_ref() } {
            n.prev.set(prev);
        }
    }

    /// Our slabs, from the list's head; for loops that unlist none of them (the list must not
    /// change while it is walked).
    pub(crate) fn own_slabs(&self) -> impl Iterator<Item = &Slab> {
        // SAFETY: the list's head is null or a slab of ours, live while listed.
        let first = unsafe { self.slabs.get().as_ref() };
        core::iter::successors(first, |s| {
            // SAFETY: a listed slab's `next` is null or a slab of ours, live while listed, and
            // the walk unlists nothing.
            unsafe { s.next.get().as_ref() }
        })
    }

    /// Queues a shard of ours at the back of its class queue, pointing the direct table at it
    /// if it is the only one.
    pub(crate) fn queue_back(&self, shard: &Shard) {
        let c = shard.class();
        self.queues[c].push_back(shard);
        if self.queues[c].is_head(shard) {
            self.update_direct(c);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Adopt and abandon
    // ---------------------------------------------------------------------------------------

    /// Makes a reclaimed slab ours: its shards with live blocks join our queues, empty ones
    /// are released, and so is the slab if nothing in it is live.
    pub(crate) fn adopt(&self, run: SlabRun<B>) {
        let id = self.assign_id();
        // SAFETY: a reclaimed run is a slab with a header written by its previous owner, whose
        // writes happen-before the reclaim (arenas' Release/Acquire on the abandoned bit).
        let slab = unsafe { &*run.pointer().as_ptr().cast::<Slab>() };
        // SAFETY: a slab of our arenas (base `B`); the abandoning context took the old token
        // out, and `run` is this same slab's.
        unsafe { slab.store_run::<B>(run) };
        self.link_slab(slab);
        self.stats.slab(1);
        if abandon::take_over(slab, id, |shard| self.queue_back(shard)) == Settled::Empty {
            self.release_slab(slab);
        }
    }

    /// Gives back what is free and abandons slabs that still hold live blocks.
    fn abandon_all(&self) {
        // Empty the queues first: from now on shards only matter through their slabs.
        for c in 0..CLASS_COUNT {
            self.queues[c].clear();
            self.update_direct(c);
        }
        self.full.clear();
        let mut slab = self.slabs.get();
        // SAFETY: the list's head and each listed slab's `next` are null or a slab of ours,
        // live while listed; `next` is read before the slab is unlisted or released.
        while let Some(s) = unsafe { slab.as_ref() } {
            slab = s.next.get();
            if abandon::give_up(s) == Settled::Empty {
                self.release_slab(s);
            } else {
                self.unlink_slab(s);
                self.stats.slab(-1);
                // SAFETY: a listed slab of ours (base `B`) holds its token; it is moved to the
                // arenas' abandoned set, and the next owner stores the one `reclaim` gives it.
                let run = unsafe { s.take_run::<B>() };
                if let Err(run) = self.arenas.abandon(run) {
                    // Only single-slab arena runs can be abandoned, and ours all are.
                    // SAFETY: the token of this same slab (base `B`), taken out just above.
                    unsafe { s.store_run::<B>(run) };
                }
            }
        }
        self.slabs.set(ptr::null_mut());
    }

    // ---------------------------------------------------------------------------------------
    // Collect, sizes, resizing, stats
    // ---------------------------------------------------------------------------------------

    /// Collects remote frees and releases empty shards and slabs. With `force`, also empties
    /// the shards kept for reuse, takes over abandoned slabs (releasing what is free in them)
    /// and purges free memory back to the base at once.
    pub fn collect(&self, force: bool) {
        if self.id() == UNASSIGNED && !force {
            return;
        }
        self.process_notifications();
        if force {
            while let Some(shard) = self.full.head() {
                self.unfull(shard);
            }
            while let Some(run) = self.arenas.reclaim() {
                self.adopt(run);
            }
        }
        for c in 0..CLASS_COUNT {
            let mut p = self.queues[c].head.get();
            // SAFETY: queued shards are ours and live; `next` is read before a release.
            while let Some(shard) = unsafe { p.as_ref() } {
                p = shard.next.get();
                shard.collect_all();
                let only = self.queues[c].head.get() == self.queues[c].tail.get();
                if shard.used.get() == 0 && (force || !only) {
                    self.release_shard(shard);
                }
            }
        }
        self.arenas.purge(force);
    }

    /// The usable size of a live block.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of a context over the same `Arenas`.
    #[inline]
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>) -> usize {
        // SAFETY: the caller promised a live block, which lies in a live slab whose header is
        // at `Slab::of`.
        let slab = unsafe { &*Slab::of(ptr) };
        slab.shard_of(ptr).block_size.get()
    }

    /// Whether resizing `ptr` to `new` keeps the block as it is: it is aligned for `new`, and
    /// the new size fits the block and uses at least half of it. Only reads the block's shard,
    /// so any context over the same `Arenas` (the globals' read-only placeholder too) answers.
    ///
    /// # Safety
    ///
    /// As for [`usable_size`](Self::usable_size).
    #[inline]
    pub unsafe fn fits_in_place(&self, ptr: NonNull<u8>, new: Layout) -> bool {
        // SAFETY: the caller promised a live block of a context over our arenas (this fn's
        // contract, the same as `usable_size`'s).
        let usable = unsafe { self.usable_size(ptr) };
        (ptr.as_ptr() as usize).is_multiple_of(new.align())
            && new.size() <= usable
            && new.size() >= usable / 2
    }

    /// Resizes a block: in place when the new size fits the block and still uses at least
    /// half of it; a huge block that stays huge also grows in place over the free slabs after
    /// it, shrinks in place giving its tail back, or moves by remapping its pages (no copy)
    /// where the base can (`huge.rs`); otherwise allocate, copy, free. `None` (the old block
    /// intact) when out of memory.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of a context over the same `Arenas`, of at least `old_size`
    /// bytes.
    pub unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old_size: usize,
        new: Layout,
    ) -> Option<NonNull<u8>> {
        // SAFETY: the caller promised a live block, which lies in a live slab whose header is
        // at `Slab::of`.
        let slab = unsafe { &*Slab::of(ptr) };
        let shard = slab.shard_of(ptr);
        let aligned = (ptr.as_ptr() as usize).is_multiple_of(new.align());
        if shard.flags.load(Ordering::Relaxed) & FLAG_HUGE != 0
            && new.size() > LARGE_MAX
            && aligned
            // SAFETY: a live huge block of at least `old_size` bytes (the caller's promise and
            // the flag just read), aligned to `new.align()` (checked just before).
            && let Some(r) = unsafe { self.reallocate_huge(slab, ptr, old_size, new) }
        {
            return r;
        }
        // SAFETY: the caller promised a live block of a context over our arenas.
        if unsafe { self.fits_in_place(ptr, new) } {
            return Some(ptr);
        }
        let p = self.allocate(new)?;
        // SAFETY: `p` is a new block of at least `new.size()` bytes, distinct from the live
        // old one, which holds at least `old_size` bytes (the caller's promise).
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), old_size.min(new.size())) };
        // SAFETY: the caller's live block of a context over our arenas, freed once: it is not
        // used again (`p` replaces it).
        unsafe { self.free(ptr) };
        Some(p)
    }

    /// This context's statistics, with the arenas' reservation figures.
    #[cfg(feature = "stat")]
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.snapshot();
        s.add_arenas(&self.arenas.stats());
        s
    }

    /// Whether any slab is owned (for tests and teardown checks).
    pub fn owns_slabs(&self) -> bool {
        !self.slabs.get().is_null()
    }
}

impl<B: BaseAlloc> Drop for Context<'_, B> {
    fn drop(&mut self) {
        if self.id() != UNASSIGNED {
            self.abandon_all();
        }
    }
}

impl<B: BaseAlloc> core::fmt::Debug for Context<'_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context").field("id", &self.id()).finish()
    }
}

const _: () = assert!(SHARD_SIZE * SHARDS_PER_SLAB == SLAB_SIZE);
