//! [`Context`]: one thread's slabs, shard queues and direct table, and every slow path.

use core::{
    alloc::Layout,
    cell::Cell,
    marker::PhantomData,
    ptr::{self, NonNull},
};

use ferroc_arena::{
    Arenas, BaseAlloc, SlabRun,
    sizes::{SHARD_SIZE, SHARDS_PER_SLAB, SLAB_SHIFT, SLAB_SIZE},
};
use ferroc_base::{align_up, sync::atomic::Ordering};

#[cfg(feature = "stat")]
use crate::stat::Stats;
use crate::{
    abandon::{self, Settled},
    class::{
        CLASS_COUNT, CLASS_SIZES, DIRECT_SLOTS, LARGE_MAX, SMALL_MAX, align_of_class, class_for,
        units_of_class,
    },
    shard::{EMPTY, FLAG_HUGE, FLAG_IN_FULL_LIST, Shard},
    slab::{Slab, SlabWithRun, header_size, init_huge},
    stat::{Kind, StatCells},
};

/// The id of a context that has not allocated yet: no slab is ever owned by it.
const UNASSIGNED: usize = usize::MAX;

/// A doubly linked list of shards (through their `next`/`prev`).
struct Queue {
    head: Cell<*mut Shard>,
    tail: Cell<*mut Shard>,
}

impl Queue {
    const fn new() -> Self {
        Queue {
            head: Cell::new(ptr::null_mut()),
            tail: Cell::new(ptr::null_mut()),
        }
    }

    fn push_front(&self, s: &Shard) {
        let p = s as *const Shard as *mut Shard;
        s.prev.set(ptr::null_mut());
        s.next.set(self.head.get());
        match NonNull::new(self.head.get()) {
            // SAFETY: queued shards are live shard metadata of our slabs.
            Some(h) => unsafe { h.as_ref().prev.set(p) },
            None => self.tail.set(p),
        }
        self.head.set(p);
    }

    fn push_back(&self, s: &Shard) {
        let p = s as *const Shard as *mut Shard;
        s.next.set(ptr::null_mut());
        s.prev.set(self.tail.get());
        match NonNull::new(self.tail.get()) {
            // SAFETY: as above.
            Some(t) => unsafe { t.as_ref().next.set(p) },
            None => self.head.set(p),
        }
        self.tail.set(p);
    }

    fn remove(&self, s: &Shard) {
        let (prev, next) = (s.prev.get(), s.next.get());
        match NonNull::new(prev) {
            // SAFETY: as above.
            Some(p) => unsafe { p.as_ref().next.set(next) },
            None => self.head.set(next),
        }
        match NonNull::new(next) {
            // SAFETY: as above.
            Some(n) => unsafe { n.as_ref().prev.set(prev) },
            None => self.tail.set(prev),
        }
        s.next.set(ptr::null_mut());
        s.prev.set(ptr::null_mut());
    }

    fn is_head(&self, s: &Shard) -> bool {
        ptr::eq(self.head.get(), s)
    }

    fn head(&self) -> Option<&Shard> {
        // SAFETY: as above.
        NonNull::new(self.head.get()).map(|p| unsafe { &*p.as_ptr() })
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
    arenas: &'a Arenas<B>,
    id: Cell<usize>,
    /// Small sizes: `(size + 7) / 8` to the current shard of the size's class.
    direct: [Cell<*mut Shard>; DIRECT_SLOTS],
    /// Shards with room (or not yet known to be full), by class.
    queues: [Queue; CLASS_COUNT],
    /// Shards without room.
    full: Queue,
    /// The slabs this context owns (huge slabs excluded).
    slabs: Cell<*mut Slab>,
    stats: StatCells,
    /// A placeholder shared read-only between threads ([`Context::new_read_only`]): its frees
    /// are not counted, so it is never written.
    read_only: bool,
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

    /// The id its slabs carry, once it has allocated.
    #[inline]
    fn id(&self) -> usize {
        self.id.get()
    }

    fn assign_id(&self) -> usize {
        if self.id.get() == UNASSIGNED {
            self.id.set(self.arenas.new_owner_id());
        }
        self.id.get()
    }

    // ---------------------------------------------------------------------------------------
    // Allocation
    // ---------------------------------------------------------------------------------------

    /// Allocates a block for `layout`. `None` when out of memory.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Option<NonNull<u8>> {
        let (size, align) = (layout.size(), layout.align());
        if let Some(p) = self.allocate_small(size, align) {
            return Some(p);
        }
        self.allocate_slow(size, align)
    }

    /// The small fast path, the one entry every front (`Heap`, the global instances, the C
    /// API) tries first: pops a block for `size` bytes aligned to `align` from the direct
    /// table's shard when the request is small (`size <= SMALL_MAX`, `align <= 16`: blocks of
    /// 16 bytes or more are 16-aligned). `None` when the request is not small or the shard has
    /// no free block: then the caller takes its slow path. Only reads the context when it
    /// fails, so it is safe to call on a context that must not change.
    #[inline(always)]
    pub fn allocate_small(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        if size > SMALL_MAX || align > 16 {
            return None;
        }
        let size = size.max(align);
        // SAFETY: `size <= SMALL_MAX`, so the index is in the table; entries always point at a
        // live shard or the empty one.
        let shard = unsafe { &*self.direct.get_unchecked((size + 7) >> 3).get() };
        let p = shard.pop()?;
        self.stats.alloc(Kind::Small, shard.block_size.get());
        Some(p)
    }

    /// Allocates zeroed memory.
    pub fn allocate_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
        let (size, align) = (layout.size(), layout.align());
        if size > LARGE_MAX || class_for(size.max(1), align).is_none() {
            let (p, zeroed) = self.allocate_huge(size, align)?;
            if !zeroed {
                // SAFETY: the block is ours and at least `size` bytes long.
                unsafe { p.as_ptr().write_bytes(0, size) };
            }
            return Some(p);
        }
        let p = self.allocate(layout)?;
        // SAFETY: the block is ours and at least `size` bytes long.
        unsafe { p.as_ptr().write_bytes(0, size) };
        Some(p)
    }

    /// Everything but the direct-table pop.
    #[cold]
    #[inline(never)]
    fn allocate_slow(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        match class_for(size.max(1), align) {
            Some(c) => self.allocate_in_class(c),
            None => self.allocate_huge(size, align).map(|(p, _)| p),
        }
    }

    fn allocate_in_class(&self, c: usize) -> Option<NonNull<u8>> {
        self.assign_id();
        let shard = self.find_shard(c)?;
        let p = shard.pop()?;
        self.stats
            .alloc(Kind::of_size(CLASS_SIZES[c]), CLASS_SIZES[c]);
        Some(p)
    }

    /// A shard of class `c` with a free block: the queue's, after collecting; then one put
    /// back by a notification; then a fresh one.
    fn find_shard(&self, c: usize) -> Option<&Shard> {
        if let Some(s) = self.shard_with_room(c) {
            return Some(s);
        }
        self.process_notifications();
        if let Some(s) = self.shard_with_room(c) {
            return Some(s);
        }
        self.fresh_shard(c)
    }

    /// Walks the queue of class `c`, collecting each shard; shards without room go to the
    /// full list. The first shard with a free block becomes the queue's head.
    fn shard_with_room(&self, c: usize) -> Option<&Shard> {
        let page = self.arenas.base().page_size();
        while let Some(s) = self.queues[c].head() {
            if s.collect() || s.extend(page) {
                return Some(s);
            }
            if s.thread_free.try_park() {
                self.queues[c].remove(s);
                s.set_flags(FLAG_IN_FULL_LIST);
                self.full.push_back(s);
                self.update_direct(c);
            }
            // Otherwise remote frees arrived meanwhile: collect them on the next round.
        }
        None
    }

    /// Points the direct-table entries of class `c` (if small) at its queue's head.
    fn update_direct(&self, c: usize) {
        let size = CLASS_SIZES[c];
        if size > SMALL_MAX {
            return;
        }
        let head = self.queues[c].head.get();
        let target = if head.is_null() { EMPTY } else { head };
        let first = if c == 0 {
            0
        } else {
            CLASS_SIZES[c - 1] / 8 + 1
        };
        for slot in &self.direct[first..=size / 8] {
            slot.set(target);
        }
    }

    /// Takes units for a new shard of class `c` from our slabs (within a slab, units that held a
    /// shard before first), a reclaimed slab or a new one.
    fn fresh_shard(&self, c: usize) -> Option<&Shard> {
        let units = units_of_class(c);
        // Shards of several units never start at unit 0, which the header shares.
        let from = usize::from(units > 1);
        if let Some(shard) = self.shard_in_own_slabs(c, units, from) {
            return Some(shard);
        }
        while let Some(run) = self.arenas.reclaim() {
            self.adopt(run);
            if let Some(s) = self.shard_with_room(c) {
                return Some(s);
            }
            // SAFETY: `adopt` pushed the slab at the head of the list (if it kept it).
            if let Some(s) = unsafe { self.slabs.get().as_ref() }
                && let Some(u) = s.take_units(units, from, false)
            {
                return Some(self.init_shard(s, u, units, c));
            }
        }
        let slab = self.new_slab()?;
        let u = slab.take_units(units, from, false)?;
        Some(self.init_shard(slab, u, units, c))
    }

    /// A new shard of class `c` over `units` free units (at `from` or later) of the first of
    /// our slabs that has them, on units that held a shard before if it can (their pages are
    /// resident). Only the first such slab is looked into: walking every slab for resident units
    /// made each new shard of a program with hundreds of slabs cost a walk of all of them.
    fn shard_in_own_slabs(&self, c: usize, units: usize, from: usize) -> Option<&Shard> {
        let mut slab = self.slabs.get();
        while !slab.is_null() {
            // SAFETY: listed slabs are ours and live.
            let s = unsafe { &*slab };
            if let Some(u) = s
                .take_units(units, from, true)
                .or_else(|| s.take_units(units, from, false))
            {
                return Some(self.init_shard(s, u, units, c));
            }
            slab = s.next.get();
        }
        None
    }

    /// Lays out a shard of class `c` over units `u..u + n` of `slab` and queues it first.
    fn init_shard<'s>(&self, slab: &'s Slab, u: usize, n: usize, c: usize) -> &'s Shard {
        let size = CLASS_SIZES[c];
        let area = if u == 0 {
            align_up(slab.addr() + header_size::<B>(), align_of_class(c)).unwrap_or(usize::MAX)
        } else {
            slab.unit_addr(u)
        };
        let end = slab.unit_addr(u + n);
        let reserved = end.saturating_sub(area) / size;
        let zeroed = slab.take_fresh(u, n);
        for k in 1..n {
            slab.shards[u + k].set_offset(k as u16);
        }
        let shard = &slab.shards[u];
        shard.init(c, size, area as *mut u8, n, reserved, zeroed);
        self.queues[c].push_front(shard);
        self.update_direct(c);
        shard.extend(self.arenas.base().page_size());
        shard
    }

    /// Claims a new slab from the arenas and lists it.
    fn new_slab(&self) -> Option<&Slab> {
        let run = self.arenas.allocate(1, SLAB_SIZE, 0, true).ok()?;
        // SAFETY: a committed run that is ours alone.
        let slab = unsafe { SlabWithRun::<B>::init(run, self.id()) };
        self.link_slab(slab);
        self.stats.slab(1);
        Some(slab)
    }

    fn link_slab(&self, slab: &Slab) {
        let p = slab as *const Slab as *mut Slab;
        slab.prev.set(ptr::null_mut());
        slab.next.set(self.slabs.get());
        // SAFETY: listed slabs are ours and live.
        if let Some(h) = unsafe { self.slabs.get().as_ref() } {
            h.prev.set(p);
        }
        self.slabs.set(p);
    }

    fn unlink_slab(&self, slab: &Slab) {
        let (prev, next) = (slab.prev.get(), slab.next.get());
        // SAFETY: listed slabs are ours and live.
        match unsafe { prev.as_ref() } {
            Some(p) => p.next.set(next),
            None => self.slabs.set(next),
        }
        // SAFETY: as above.
        if let Some(n) = unsafe { next.as_ref() } {
            n.prev.set(prev);
        }
    }

    /// Where a huge block of `size` bytes aligned to `align` lies in its run: the block's
    /// offset from the run's start, the run's alignment and its offset for it, and how many
    /// slabs the run has.
    fn huge_geometry(size: usize, align: usize) -> Option<(usize, usize, usize, usize)> {
        let header = header_size::<B>();
        let (offset, run_align, run_offset) = if align >= SLAB_SIZE {
            (SLAB_SIZE, align, SLAB_SIZE)
        } else {
            // At least 16-aligned, like every block of 16 bytes or more (the header's size is
            // only a multiple of 8).
            (align_up(header, align.max(16))?, SLAB_SIZE, 0)
        };
        let total = offset.checked_add(size.max(1))?;
        Some((offset, run_align, run_offset, total.div_ceil(SLAB_SIZE)))
    }

    /// Serves a huge block (or one whose alignment no class has) from a run of its own.
    /// Returns the block and whether it reads zero.
    #[cold]
    fn allocate_huge(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        let (offset, run_align, run_offset, count) = Self::huge_geometry(size, align)?;
        let run = self
            .arenas
            .allocate(count, run_align, run_offset, true)
            .ok()?;
        let zeroed = run.is_zeroed();
        let usable = (count << SLAB_SHIFT) - offset;
        // SAFETY: a committed run that is ours alone; `offset` is past the header.
        let (block, _) = unsafe { init_huge(run, offset) };
        self.stats.alloc(Kind::Huge, usable);
        Some((block, zeroed))
    }

    // ---------------------------------------------------------------------------------------
    // Free
    // ---------------------------------------------------------------------------------------

    /// Frees a block from any context of the same arenas.
    ///
    /// # Safety
    ///
    /// `ptr` was returned by an allocation of a context over the same `Arenas`, and is freed
    /// once.
    #[inline(always)]
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        // SAFETY: a live block lies in a live slab whose header is at `Slab::of`.
        let slab = unsafe { &*Slab::of(ptr) };
        if abandon::owned_by(slab, self.id()) {
            // Ours: the owner's copies of the offset and flags, on the line we write anyway.
            let shard = slab.own_shard_of(ptr);
            if shard.own_flags.get() == 0 {
                self.stats.free(
                    Kind::of_size(shard.block_size.get()),
                    shard.block_size.get(),
                );
                // SAFETY: our own live block.
                if unsafe { shard.push_local(ptr) } == 0 && !shard.is_alone() {
                    self.release_shard(shard);
                }
                return;
            }
            // SAFETY: forwarded.
            return unsafe { self.free_slow(slab, shard, ptr) };
        }
        let shard = slab.shard_of(ptr);
        if shard.flags.load(Ordering::Relaxed) & FLAG_HUGE == 0 {
            // Another context's block (or an abandoned slab's): the remote path, one CAS loop,
            // inline too. `FLAG_IN_FULL_LIST` is the owner's business; the thread-free state tells us.
            if !self.read_only {
                let size = shard.block_size.get();
                self.stats.free(Kind::of_size(size), size);
            }
            // SAFETY: a live block of that shard (this fn's contract), freed once; blocks are
            // at least 8-aligned.
            unsafe { abandon::free_remote(slab, shard, ptr.cast()) };
            return;
        }
        // SAFETY: forwarded.
        unsafe { self.free_slow(slab, shard, ptr) }
    }

    /// Frees a block that is huge or in a full shard of ours (and, from [`Context::free`]'s
    /// point of view, nothing else; the remote path stays here for completeness).
    #[cold]
    #[inline(never)]
    unsafe fn free_slow(&self, slab: &Slab, shard: &Shard, ptr: NonNull<u8>) {
        let size = shard.block_size.get();
        let flags = shard.flags.load(Ordering::Relaxed);
        // A read-only placeholder (the global allocator's sentinel) is shared between threads:
        // it must not even count. Any other context counts its frees, allocated or not.
        let counts = !self.read_only;
        if flags & FLAG_HUGE != 0 {
            if counts {
                self.stats.free(Kind::Huge, size);
            }
            // SAFETY: a huge slab holds one block, now freed: the run is nobody's but ours.
            let run = unsafe { SlabWithRun::<B>::from_header(slab).take_run() };
            self.arenas.deallocate(run);
            return;
        }
        if counts {
            self.stats.free(Kind::of_size(size), size);
        }
        if abandon::owned_by(slab, self.id()) {
            // Ours, in the full list: it has room again.
            self.unfull(shard);
            // SAFETY: our own live block.
            if unsafe { shard.push_local(ptr) } == 0 && !shard.is_alone() {
                self.release_shard(shard);
            }
            return;
        }
        // SAFETY: a live block of that shard (this fn's contract), freed once; blocks are at
        // least 8-aligned.
        unsafe { abandon::free_remote(slab, shard, ptr.cast()) };
    }

    /// Moves a full shard of ours back to its class queue.
    fn unfull(&self, shard: &Shard) {
        shard.thread_free.unpark();
        shard.set_flags(0);
        self.full.remove(shard);
        let c = shard.class();
        self.queues[c].push_back(shard);
        if self.queues[c].is_head(shard) {
            self.update_direct(c);
        }
    }

    /// Unqueues an empty shard and gives its units back (and the slab, if it empties).
    ///
    /// A local free that empties a shard releases it only if its class has another shard
    /// ([`Shard::is_alone`] says): the last one is kept, so an allocate/free pair does not
    /// create and release a shard each time.
    #[cold]
    fn release_shard(&self, shard: &Shard) {
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

    fn release_slab(&self, slab: &Slab) {
        self.unlink_slab(slab);
        self.stats.slab(-1);
        // SAFETY: the slab has no shard in use and is unlisted: nobody reaches it any more.
        let run = unsafe { SlabWithRun::<B>::from_header(slab).take_run() };
        self.arenas.deallocate(run);
    }

    /// Takes the notifications remote frees posted for our full shards and puts those shards
    /// back in their queues.
    fn process_notifications(&self) {
        let mut slab = self.slabs.get();
        while !slab.is_null() {
            // SAFETY: listed slabs are ours and live.
            let s = unsafe { &*slab };
            let mut bits = abandon::take_notifications(s);
            while bits != 0 {
                let u = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let shard = &s.shards[u];
                if shard.flags.load(Ordering::Relaxed) == FLAG_IN_FULL_LIST {
                    self.unfull(shard);
                }
            }
            slab = s.next.get();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Abandon and reclaim
    // ---------------------------------------------------------------------------------------

    /// Makes a reclaimed slab ours: its shards with live blocks join our queues, empty ones
    /// are released, and so is the slab if nothing in it is live.
    fn adopt(&self, run: SlabRun<B>) {
        let id = self.assign_id();
        // SAFETY: a reclaimed run is a slab with a header written by its previous owner, whose
        // writes happen-before the reclaim (arenas' Release/Acquire on the abandoned bit).
        let slab = unsafe { &*run.pointer().as_ptr().cast::<Slab>() };
        // SAFETY: the abandoning context took the old token out; this is the same slab.
        unsafe { SlabWithRun::<B>::from_header(slab).store_run(run) };
        self.link_slab(slab);
        self.stats.slab(1);
        let kept = abandon::take_over(slab, id, |shard| {
            let c = shard.class();
            self.queues[c].push_back(shard);
            if self.queues[c].is_head(shard) {
                self.update_direct(c);
            }
        });
        if kept == Settled::Empty {
            self.release_slab(slab);
        }
    }

    /// Gives back what is free and abandons slabs that still hold live blocks.
    fn abandon_all(&self) {
        // Empty the queues first: from now on shards only matter through their slabs.
        for c in 0..CLASS_COUNT {
            self.queues[c].head.set(ptr::null_mut());
            self.queues[c].tail.set(ptr::null_mut());
            self.update_direct(c);
        }
        self.full.head.set(ptr::null_mut());
        self.full.tail.set(ptr::null_mut());
        let mut slab = self.slabs.get();
        while !slab.is_null() {
            // SAFETY: listed slabs are ours and live.
            let s = unsafe { &*slab };
            slab = s.next.get();
            if abandon::give_up(s) == Settled::Empty {
                self.release_slab(s);
            } else {
                self.unlink_slab(s);
                self.stats.slab(-1);
                // SAFETY: the token is moved to the arenas' abandoned set; the next owner
                // stores the one `reclaim` gives it.
                let run = unsafe { SlabWithRun::<B>::from_header(s).take_run() };
                if let Err(run) = self.arenas.abandon(run) {
                    // Only single-slab arena runs can be abandoned, and ours all are.
                    // SAFETY: put back as it was.
                    unsafe { SlabWithRun::<B>::from_header(s).store_run(run) };
                }
            }
        }
        self.slabs.set(ptr::null_mut());
    }

    // ---------------------------------------------------------------------------------------
    // Collect, sizes, stats
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
            while let Some(shard) = NonNull::new(p) {
                // SAFETY: queued shards are ours and live.
                let shard = unsafe { &*shard.as_ptr() };
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
        // SAFETY: as for `free`.
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
        // SAFETY: the caller's contract.
        let usable = unsafe { self.usable_size(ptr) };
        (ptr.as_ptr() as usize).is_multiple_of(new.align())
            && new.size() <= usable
            && new.size() >= usable / 2
    }

    /// Resizes a block: in place when the new size fits the block and still uses at least
    /// half of it; a huge block that stays huge also grows in place over the free slabs after
    /// it, shrinks in place giving its tail back, or moves by remapping its pages (no copy)
    /// where the base can; otherwise allocate, copy, free. `None` (the old block intact) when
    /// out of memory.
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
        // SAFETY: the caller's contract.
        let slab = unsafe { &*Slab::of(ptr) };
        let shard = slab.shard_of(ptr);
        let aligned = (ptr.as_ptr() as usize).is_multiple_of(new.align());
        if shard.flags.load(Ordering::Relaxed) & FLAG_HUGE != 0
            && new.size() > LARGE_MAX
            && aligned
            // SAFETY: a live huge block of at least `old_size` bytes (the caller's contract).
            && let Some(r) = unsafe { self.reallocate_huge(slab, ptr, old_size, new) }
        {
            return r;
        }
        // SAFETY: the caller's contract.
        if unsafe { self.fits_in_place(ptr, new) } {
            return Some(ptr);
        }
        let p = self.allocate(new)?;
        // SAFETY: both blocks are live and distinct; the old one holds `old_size` bytes.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), old_size.min(new.size()));
            self.free(ptr);
        }
        Some(p)
    }

    /// Resizes a huge block that stays huge without copying where possible: same run, run
    /// grown or shrunk in place, or a new run its pages move to. `None` to let the caller
    /// allocate, copy and free (an alignment the run does not have); `Some(None)` when out of
    /// memory (the block intact).
    ///
    /// # Safety
    ///
    /// `ptr` is a live huge block of `slab` holding `old_size` bytes, aligned to `new.align()`.
    #[cold]
    unsafe fn reallocate_huge(
        &self,
        slab: &Slab,
        ptr: NonNull<u8>,
        old_size: usize,
        new: Layout,
    ) -> Option<Option<NonNull<u8>>> {
        let (offset, run_align, run_offset, count) = Self::huge_geometry(new.size(), new.align())?;
        if ptr.as_ptr() as usize - slab.addr() != offset {
            // Laid out for another alignment: the block must move to a run of its own.
            return None;
        }
        let shard = &slab.shards[0];
        let old_usable = shard.block_size.get();
        // SAFETY: a huge block's slab header is a whole `SlabWithRun<B>`.
        let slabs = unsafe { SlabWithRun::<B>::from_header(slab) };
        // SAFETY: a huge slab's token is taken only by the block's single owner, which the
        // caller is; it is stored back (or the run given up) on every path below.
        let mut run = unsafe { slabs.take_run() };
        let resized = count == run.count()
            || self.arenas.shrink_in_place(&mut run, count)
            || self
                .arenas
                .grow_in_place(&mut run, count, true)
                .unwrap_or(false);
        if resized {
            let usable = (run.count() << SLAB_SHIFT) - offset;
            // SAFETY: the token of this very slab, taken above.
            unsafe { slabs.store_run(run) };
            shard.block_size.set(usable);
            self.stats.free(Kind::Huge, old_usable);
            self.stats.alloc(Kind::Huge, usable);
            return Some(Some(ptr));
        }
        if count < run.count() {
            // A run from the base cannot shrink: keep it while it is at least half used.
            // SAFETY: as above.
            unsafe { slabs.store_run(run) };
            return (new.size() >= old_usable / 2).then_some(Some(ptr));
        }
        let Ok(to) = self.arenas.allocate(count, run_align, run_offset, false) else {
            // SAFETY: as above.
            unsafe { slabs.store_run(run) };
            return Some(None);
        };
        // SAFETY: the old run holds only this block, which nobody uses while we move it.
        let copied_from = match unsafe { self.arenas.move_into(run, &to) } {
            Ok(()) => None,
            Err(run) => {
                if self.arenas.commit(&to).is_err() {
                    self.arenas.deallocate(to);
                    // SAFETY: as above.
                    unsafe { slabs.store_run(run) };
                    return Some(None);
                }
                Some(run)
            }
        };
        let usable = (count << SLAB_SHIFT) - offset;
        // SAFETY: a committed run that is ours alone; `offset` is past the header. After a move
        // the header written over is the old block's, and the block's bytes are untouched.
        let (block, _) = unsafe { init_huge(to, offset) };
        if let Some(run) = copied_from {
            // SAFETY: distinct live memory; the old block holds `old_size` bytes.
            unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), block.as_ptr(), old_size) };
            self.arenas.deallocate(run);
        }
        self.stats.free(Kind::Huge, old_usable);
        self.stats.alloc(Kind::Huge, usable);
        Some(Some(block))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{shard::FLAG_IN_FULL_LIST, thread_free};
    use ferroc_base::Mmap;
    use std::{collections::BTreeSet, vec::Vec};

    /// The length of a free list, checking that every block on it is a block of `shard`
    /// (inside its carved area, at a block boundary) and on no other list (`seen`).
    fn walk(shard: &Shard, mut p: *mut thread_free::Block, seen: &mut BTreeSet<usize>) -> u32 {
        let (area, size) = (shard.area.get() as usize, shard.block_size.get());
        let end = area + shard.capacity.get() as usize * size;
        let mut n = 0;
        while !p.is_null() {
            let a = p as usize;
            assert!(
                a >= area && a < end && (a - area).is_multiple_of(size),
                "stray block {a:#x}"
            );
            assert!(seen.insert(a), "block {a:#x} on two lists");
            n += 1;
            // SAFETY: a free block of the shard, linked through its first word.
            p = unsafe { (*p).next };
        }
        n
    }

    /// Checks the documented shard invariant and the queue/list states of every shard of
    /// `cx`, while no other thread frees into them.
    fn check(cx: &Context<'_, Mmap>) {
        let mut queued = BTreeSet::new();
        for (c, queue) in cx.queues.iter().enumerate() {
            let mut p = queue.head.get();
            while let Some(s) = NonNull::new(p) {
                // SAFETY: queued shards are live shard metadata.
                let s = unsafe { s.as_ref() };
                assert_eq!(s.class(), c);
                assert_eq!(s.flags.load(Ordering::Relaxed), 0);
                assert_eq!(s.thread_free.state(), thread_free::NORMAL);
                queued.insert(s as *const Shard as usize);
                p = s.next.get();
            }
            if CLASS_SIZES[c] <= SMALL_MAX {
                let head = queue.head.get();
                let want = if head.is_null() { EMPTY } else { head };
                assert_eq!(
                    cx.direct[CLASS_SIZES[c] / 8].get(),
                    want,
                    "direct table, class {c}"
                );
            }
        }
        let mut full = BTreeSet::new();
        let mut p = cx.full.head.get();
        while let Some(s) = NonNull::new(p) {
            // SAFETY: as above.
            let s = unsafe { s.as_ref() };
            assert_eq!(s.flags.load(Ordering::Relaxed), FLAG_IN_FULL_LIST);
            let st = s.thread_free.state();
            assert!(
                st == thread_free::PARKED || st == thread_free::NOTIFIED,
                "state {st}"
            );
            full.insert(s as *const Shard as usize);
            p = s.next.get();
        }
        let mut slab = cx.slabs.get();
        while !slab.is_null() {
            // SAFETY: listed slabs are ours and live.
            let sl = unsafe { &*slab };
            let mut units = 0u64;
            let mut shards = 0;
            for s in sl.heads() {
                let mut seen = BTreeSet::new();
                let free = walk(s, s.free.get(), &mut seen);
                let local = walk(s, s.local_free.get(), &mut seen);
                let remote = walk(s, s.thread_free.peek(), &mut seen);
                assert!(s.capacity.get() <= s.reserved.get());
                let counted = u32::from(s.free_counted.get());
                assert!(counted <= 1);
                assert_eq!(
                    s.used.get(),
                    s.capacity.get() - counted * free - local,
                    "used"
                );
                assert!(remote <= s.used.get());
                let addr = s as *const Shard as usize;
                assert!(queued.contains(&addr) ^ full.contains(&addr), "in one list");
                let u = sl.unit_of(s);
                units |= crate::slab::unit_mask(u, s.units.get() as usize);
                shards += 1;
            }
            assert_eq!(units & sl.free_units.get(), 0, "free units in use");
            assert_eq!(
                units | sl.free_units.get(),
                crate::slab::ALL_UNITS,
                "units lost"
            );
            assert_eq!(shards, sl.used_shards.get());
            for s in &sl.shards {
                assert_eq!(s.own_offset.get(), s.offset.get(), "owner's offset copy");
                assert_eq!(
                    s.own_flags.get(),
                    s.flags.load(Ordering::Relaxed),
                    "flags copy"
                );
            }
            slab = sl.next.get();
        }
    }

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Blocks freed by another thread come back as an uncounted `free` list: allocation pops
    /// them without counting, `used` stays exact enough to release nothing live, and once
    /// everything is freed locally the shards and slabs are released.
    #[test]
    fn uncounted_remote_lists_are_reused_and_settled() {
        let arenas = Arenas::new(Mmap);
        let cx = Context::new(&arenas);
        let l = Layout::from_size_align(64, 8).unwrap();
        let first: Vec<usize> = (0..4000)
            .map(|_| cx.allocate(l).unwrap().as_ptr() as usize)
            .collect();
        std::thread::scope(|s| {
            s.spawn(|| {
                let other = Context::new(&arenas);
                for &p in &first {
                    // SAFETY: live blocks, freed once.
                    unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
                }
            });
        });
        let mut second = Vec::new();
        let mut saw_uncounted = false;
        for _ in 0..4000 {
            second.push(cx.allocate(l).unwrap().as_ptr() as usize);
            // SAFETY: the direct entry points at a live shard or the empty one.
            saw_uncounted |= unsafe { !(*cx.direct[64 / 8].get()).free_counted.get() };
        }
        assert!(saw_uncounted, "a remote list was taken whole");
        check(&cx);
        let reused = second.iter().filter(|p| first.contains(p)).count();
        assert!(reused > 3000, "remotely freed blocks are reused ({reused})");
        for p in second.drain(..2000) {
            // SAFETY: live blocks, freed once.
            unsafe { cx.free(NonNull::new(p as *mut u8).unwrap()) };
        }
        check(&cx);
        cx.collect(false);
        check(&cx);
        for p in second {
            // SAFETY: live blocks, freed once.
            unsafe { cx.free(NonNull::new(p as *mut u8).unwrap()) };
        }
        cx.collect(true);
        assert!(!cx.owns_slabs());
        assert_eq!(arenas.stats().slabs_in_use, 0);
    }

    #[test]
    fn shard_invariants_hold_through_local_and_remote_frees() {
        let arenas = Arenas::new(Mmap);
        let cx = Context::new(&arenas);
        let mut rng = Rng(0x5EED);
        let mut live: Vec<usize> = Vec::new();
        for round in 0..6 {
            for _ in 0..4000 {
                if live.is_empty() || rng.below(3) != 0 {
                    let size = [16, 48, 200, 1024, 3000, 20_000, 200_000][rng.below(7)];
                    let align = 1 << rng.below(7);
                    let p = cx
                        .allocate(Layout::from_size_align(size, align).unwrap())
                        .unwrap();
                    live.push(p.as_ptr() as usize);
                } else {
                    let p = live.swap_remove(rng.below(live.len()));
                    // SAFETY: a live block, freed once.
                    unsafe { cx.free(NonNull::new(p as *mut u8).unwrap()) };
                }
            }
            check(&cx);
            // Another thread frees a third of what is live (into full shards, too).
            let theirs: Vec<usize> = (0..live.len() / 3)
                .map(|_| live.swap_remove(rng.below(live.len())))
                .collect();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let other = Context::new(&arenas);
                    for p in theirs {
                        // SAFETY: live blocks, freed once.
                        unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
                    }
                });
            });
            check(&cx);
            cx.collect(round % 2 == 0);
            check(&cx);
        }
        // A context that dies with live blocks: its slabs are adopted by a forced collect.
        let orphans: Vec<usize> = std::thread::scope(|s| {
            s.spawn(|| {
                let dying = Context::new(&arenas);
                let mut rng = Rng(7);
                let mut v: Vec<usize> = (0..3000)
                    .map(|_| {
                        let size = [24, 512, 5000][rng.below(3)];
                        let l = Layout::from_size_align(size, 8).unwrap();
                        dying.allocate(l).unwrap().as_ptr() as usize
                    })
                    .collect();
                for _ in 0..1500 {
                    let p = v.swap_remove(rng.below(v.len()));
                    // SAFETY: a live block, freed once.
                    unsafe { dying.free(NonNull::new(p as *mut u8).unwrap()) };
                }
                v
            })
            .join()
            .unwrap()
        });
        cx.collect(true);
        check(&cx);
        for p in live.into_iter().chain(orphans) {
            // SAFETY: live blocks, freed once.
            unsafe { cx.free(NonNull::new(p as *mut u8).unwrap()) };
        }
        check(&cx);
        cx.collect(true);
        assert!(!cx.owns_slabs());
        assert_eq!(arenas.stats().slabs_in_use, 0);
    }
}
