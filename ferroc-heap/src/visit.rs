//! Introspection: [`Context::visit_blocks`] (every live block of a context, with its usable
//! size, without allocating) and [`Context::contains`] (whether a pointer points into one).
//!
//! - **Live** means handed out and not freed: a shard's carved blocks (`capacity` of them,
//!   from `area`) minus those on its `free`, `local_free` and `thread_free` lists. The lists are
//!   walked, not collected, so introspection changes nothing: `thread_free` is read from its
//!   head (`ThreadFree::peek`, `Acquire`); blocks below the head stay put until the owner (the
//!   calling thread) takes them, and blocks pushed after the read count as live, as they were
//!   a moment before.
//! - **Which blocks**: those of the shards (small, medium and large blocks) of the slabs the
//!   context owns (its slab list). Huge blocks are nobody's: their slab's owner is `NO_OWNER`,
//!   any thread frees one straight back to the arenas, and no context keeps a list of them
//!   (one would have to be unlinked by a freeing thread that cannot reach the context, or keep
//!   freed memory until the owner looks). So they are neither visited nor contained, as in
//!   mimalloc with `MI_HUGE_PAGE_ABANDON`. Blocks of abandoned slabs are their next owner's.
//! - **No allocation**: a shard's free blocks are marked in a bitmap on the stack, sized at
//!   compile time from the geometry ([`MAX_BLOCKS`]: at most `SHARD_SIZE / 8` blocks).
//! - **The visitor may use the context** (allocate, free, collect): the walk never reads a
//!   slab after a call of the visitor without first finding it again in the slab list, and
//!   goes through the slabs in address order, so a slab released or added meanwhile is never
//!   followed into freed memory. Blocks allocated or freed during the walk may or may not be
//!   reported (those of a shard are read once, before its blocks are reported).
//! - **Foreign pointers**: [`Context::contains`] reads a slab header only once the pointer's
//!   slab address is found in the context's own slab list, so any pointer (the stack, a
//!   static, another context's block, unmapped memory) is answered without touching it.

use core::ptr::NonNull;

use ferroc_arena::{
    BaseAlloc,
    sizes::{SHARD_SHIFT, SHARD_SIZE, SHARDS_PER_SLAB, SLAB_SIZE},
};

use crate::{
    Context,
    class::{CLASS_COUNT, size_of_class, units_of_class},
    shard::Shard,
    slab::Slab,
    thread_free::Block,
};

/// The most blocks a shard of any class holds: its units' bytes over its block size.
pub(crate) const MAX_BLOCKS: usize = {
    let mut max = 0;
    let mut c = 0;
    while c < CLASS_COUNT {
        let n = units_of_class(c) * SHARD_SIZE / size_of_class(c);
        if n > max {
            max = n;
        }
        c += 1;
    }
    max
};

/// Words of the free-block bitmap: room for `SHARD_SIZE / 8` blocks (the smallest class is 8
/// bytes and spans one unit), checked against [`MAX_BLOCKS`] below.
const WORDS: usize = (SHARD_SIZE / 8).div_ceil(64);

const _: () = {
    assert!(
        MAX_BLOCKS <= SHARD_SIZE / 8,
        "a shard holds at most SHARD_SIZE / 8 blocks"
    );
    assert!(
        MAX_BLOCKS <= WORDS * 64,
        "the bitmap covers every block of a shard"
    );
    assert!(WORDS * 8 <= 2048, "the bitmap stays a small stack buffer");
};

/// What a walk needs of one shard, read at once: its geometry and its free blocks.
struct ShardView {
    area: usize,
    size: usize,
    capacity: usize,
    free: [u64; WORDS],
}

impl ShardView {
    /// Reads `shard` (a head shard of a slab of the calling context, which is its owner).
    fn of(shard: &Shard) -> Self {
        let size = shard.block_size.get();
        let mut view = ShardView {
            area: shard.area.get() as usize,
            size,
            capacity: (shard.capacity.get() as usize).min(MAX_BLOCKS),
            free: [0; WORDS],
        };
        if size == 0 {
            view.capacity = 0;
            return view;
        }
        view.mark(shard.free.get());
        view.mark(shard.local_free.get());
        view.mark(shard.thread_free.peek());
        view
    }

    /// The index of the block holding address `addr`, if it is one of the carved blocks.
    #[inline]
    fn index_of(&self, addr: usize) -> Option<usize> {
        let i = addr.checked_sub(self.area)? / self.size;
        (i < self.capacity).then_some(i)
    }

    /// Marks the blocks of a free list. Stops at anything that is not a carved block's start
    /// (a list corrupted by a double free or a stray write), and after `capacity` blocks (a
    /// cycle), so a damaged list never sends it into memory that is not the shard's.
    fn mark(&mut self, mut p: *mut Block) {
        let mut left = self.capacity;
        while !p.is_null() && left > 0 {
            let addr = p as usize;
            let Some(i) = self.index_of(addr) else { break };
            if addr != self.area + i * self.size {
                break;
            }
            self.free[i / 64] |= 1 << (i % 64);
            left -= 1;
            // SAFETY: `p` is the start of a carved block of this shard on one of its free
            // lists (checked just above), so its first word is its link; the calling thread
            // owns the shard, and other threads only push new heads on `thread_free`, never
            // writing a block already on a list.
            p = unsafe { (*p).next };
        }
    }

    /// Whether block `i` is live.
    #[inline]
    fn is_live(&self, i: usize) -> bool {
        self.free[i / 64] & (1 << (i % 64)) == 0
    }
}

impl<B: BaseAlloc> Context<'_, B> {
    /// Calls `f(block, usable_size)` for every live block of the context's slabs, in address
    /// order, until `f` returns false. Returns false if `f` stopped the walk, true if every
    /// block was visited. Never allocates.
    ///
    /// A block is live from its allocation to its free, from any thread; blocks freed by
    /// other threads and not collected yet are not live. Huge blocks (larger than an eighth
    /// of a slab, or aligned more than any size class) belong to no context and are not
    /// visited (see the module docs of `visit.rs` for why).
    ///
    /// `f` may allocate and free through this context; blocks allocated or freed while the
    /// walk runs may or may not be reported.
    pub fn visit_blocks(&self, mut f: impl FnMut(NonNull<u8>, usize) -> bool) -> bool {
        let mut after = None;
        while let Some(mut slab) = self.next_own_slab(after) {
            let base = slab.addr();
            after = Some(base);
            let mut u = 0;
            while u < SHARDS_PER_SLAB {
                let head = &slab.shards[u];
                let units = head.units.get() as usize;
                if units == 0 || head.offset.get() != 0 {
                    u += 1;
                    continue;
                }
                u += units;
                let view = ShardView::of(head);
                let mut called = false;
                for i in (0..view.capacity).filter(|&i| view.is_live(i)) {
                    let p = (view.area + i * view.size) as *mut u8;
                    called = true;
                    // SAFETY: a carved block's address inside a slab: never null.
                    let block = unsafe { NonNull::new_unchecked(p) };
                    if !f(block, view.size) {
                        return false;
                    }
                }
                if called {
                    // `f` may have released the slab: read it again only if it is still ours.
                    match self.own_slab_at(base) {
                        Some(s) => slab = s,
                        None => break,
                    }
                }
            }
        }
        true
    }

    /// Whether `ptr` points into a live block of this context (anywhere from its start to its
    /// usable size): a block of one of its slabs' shards, handed out and not freed (by any
    /// thread). False for a freed block, for a block of another context (or an abandoned
    /// slab), for a huge block (huge blocks belong to no context) and for any pointer outside
    /// Ferroc's memory; such pointers are never read through.
    pub fn contains(&self, ptr: *const u8) -> bool {
        let addr = ptr as usize;
        let Some(slab) = self.own_slab_at(addr & !(SLAB_SIZE - 1)) else {
            return false;
        };
        let unit = (addr - slab.addr()) >> SHARD_SHIFT;
        let Some(head) = unit
            .checked_sub(slab.shards[unit].offset.get() as usize)
            .map(|h| &slab.shards[h])
        else {
            return false;
        };
        if head.units.get() == 0 || head.block_size.get() == 0 {
            return false;
        }
        let view = ShardView::of(head);
        view.index_of(addr).is_some_and(|i| view.is_live(i))
    }

    /// The slab of ours at address `base`, if we own one there (found by walking our slab
    /// list, so a foreign address is never read).
    fn own_slab_at(&self, base: usize) -> Option<&Slab> {
        self.own_slabs().find(|s| s.addr() == base)
    }

    /// The slab of ours at the lowest address above `after` (the lowest of all for `None`).
    fn next_own_slab(&self, after: Option<usize>) -> Option<&Slab> {
        self.own_slabs()
            .filter(|s| after.is_none_or(|a| s.addr() > a))
            .min_by_key(|s| s.addr())
    }
}

#[cfg(test)]
mod tests;
