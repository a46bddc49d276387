//! Allocation: the direct table, the small fast path and the slow path behind it.
//!
//! - **Fast** ([`Context::allocate_small`], the one entry `Heap`, the global instances and
//!   the C API try first): `(size + 7) / 8` indexes the direct table, whose entry is the
//!   current shard of the size's class; pop its `free` list. No atomic, no lock, no branch on
//!   "initialised": a new context's entries point at the empty shard, so the first
//!   allocation of each size takes the slow path.
//! - **Slow** (`allocate_slow`): a size class for the request (or a huge run, `huge.rs`);
//!   then a shard of that class with room: the class queue's shards, each collected (its
//!   `local_free` and `thread_free`), those without room moved to the full list; shards the
//!   remote frees took back from the full list (`free.rs`); a fresh shard carved from our
//!   slabs (units that held a shard before first: their pages are resident), from a
//!   reclaimed abandoned slab, or from a new slab.
//! - The direct table follows the queues: whenever a small class's queue head changes,
//!   `update_direct` points the class's entries at the new head (or the empty
//!   shard).

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::BaseAlloc;
use ferroc_base::align_up;

use crate::{
    Context,
    class::{CLASS_SIZES, LARGE_MAX, SMALL_MAX, align_of_class, class_for, units_of_class},
    shard::{EMPTY, FLAG_IN_FULL_LIST, Shard},
    slab::{Slab, header_size},
};

impl<B: BaseAlloc> Context<'_, B> {
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
        // SAFETY: `size <= SMALL_MAX`, so `(size + 7) / 8 < DIRECT_SLOTS`: inside the table.
        let slot = unsafe { self.direct.get_unchecked((size + 7) >> 3) };
        // SAFETY: table entries always point at a live shard of ours or the empty one.
        let shard = unsafe { &*slot.get() };
        let p = shard.pop()?;
        self.stats.alloc(shard);
        Some(p)
    }

    /// Allocates zeroed memory.
    pub fn allocate_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
        let (size, align) = (layout.size(), layout.align());
        if size > LARGE_MAX || class_for(size.max(1), align).is_none() {
            let (p, zeroed) = self.allocate_huge(size, align)?;
            if !zeroed {
                // SAFETY: the huge block just allocated is ours and at least `size` bytes long.
                unsafe { p.as_ptr().write_bytes(0, size) };
            }
            return Some(p);
        }
        let p = self.allocate(layout)?;
        // SAFETY: the block just allocated for `layout` is ours and at least `size` bytes long.
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
        self.stats.alloc(shard);
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
    pub(crate) fn update_direct(&self, c: usize) {
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
            // `adopt` pushed the slab at the head of the list (if it kept it).
            if let Some(s) = self.own_slabs().next()
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
        let (s, u) = self.own_slabs().find_map(|s| {
            s.take_units(units, from, true)
                .or_else(|| s.take_units(units, from, false))
                .map(|u| (s, u))
        })?;
        Some(self.init_shard(s, u, units, c))
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
}
