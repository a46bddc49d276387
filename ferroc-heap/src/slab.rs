//! Slabs as the heap sees them: a header at the start of each slab, then shard units.
//!
//! ```text
//! slab (SLAB_SIZE, aligned) = [ header | unit 0 area ][ unit 1 ][ unit 2 ] ... [ unit N-1 ]
//! header = owner, notified mask, free/fresh unit masks, links, Shard × (N + 1) (three cache
//!          lines each, see `shard.rs`), the run token
//! ```
//!
//! **Finding a block's slab**: `(ptr - 1) & !(SLAB_SIZE - 1)`. No block starts at a slab's
//! first byte (the header is there), so for every ordinary block this is the same as masking
//! `ptr`. The `- 1` matters for huge blocks aligned to a slab or more: they start exactly one
//! slab after their header, and `ptr - 1` falls in the header's slab. The unit index of such a
//! block is `N`, which is why the header has `N + 1` shard slots (the last one points back to
//! shard 0).
//!
//! **Ownership**: `owner` is the id of the context that owns the slab, `0` while abandoned; a
//! free whose context id matches takes the local path. It is atomic because every freeing
//! thread reads it; only the owner (or the reclaimer, after taking the abandoned bit) writes it.
//! Every access is `Relaxed`, which suffices because ids are never reused and a thread only
//! ever writes its own context's id: a thread reads its own id exactly when it (in program
//! order) made the slab its own, and any stale or foreign value sends it down the remote path,
//! which is right for every thread but the owner. The owner's plain fields are handed from one
//! owner to the next by the arenas' abandoned bit (`Release` abandon, `Acquire` reclaim), not
//! by `owner`.
//!
//! **Notifications**: `notified` has one bit per unit, set by a remote freer whose push found
//! the unit's shard full (see `thread_free.rs` for the handshake and its orderings), and
//! swapped out by the owner when it looks for shards to take back from its full list.

use core::{
    cell::Cell,
    mem::{MaybeUninit, size_of},
    ptr::{self, NonNull, addr_of_mut},
};

use ferroc_arena::{
    BaseAlloc, SlabRun,
    sizes::{SHARD_SHIFT, SHARD_SIZE, SHARDS_PER_SLAB, SLAB_SIZE},
};
use ferroc_base::sync::atomic::{AtomicU64, AtomicUsize};

use crate::shard::Shard;

pub(crate) use crate::abandon::NO_OWNER;

/// Mask of every unit of a slab.
pub(crate) const ALL_UNITS: u64 = if SHARDS_PER_SLAB == 64 {
    u64::MAX
} else {
    (1u64 << SHARDS_PER_SLAB) - 1
};

/// Mask of units `u..u + n`.
#[inline]
pub(crate) fn unit_mask(u: usize, n: usize) -> u64 {
    let ones = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    ones << u
}

/// The part of a slab header that does not depend on the base.
#[repr(C)]
pub(crate) struct Slab {
    /// The owning context's id, or [`NO_OWNER`].
    pub(crate) owner: AtomicUsize,
    /// Units whose (full) shard got a remote free since the owner last looked.
    pub(crate) notified: AtomicU64,
    /// Units not in any shard (owner only).
    pub(crate) free_units: Cell<u64>,
    /// Units never handed out since the slab was zeroed (owner only).
    pub(crate) fresh_units: Cell<u64>,
    /// Shards in use (owner only).
    pub(crate) used_shards: Cell<u32>,
    /// Links in the owner's slab list.
    pub(crate) next: Cell<*mut Slab>,
    pub(crate) prev: Cell<*mut Slab>,
    /// One shard slot per unit, plus one for huge blocks that start at the slab's end.
    pub(crate) shards: [Shard; SHARDS_PER_SLAB + 1],
}

/// A whole slab header: the common part, then the run token to give the slab back with.
#[repr(C)]
pub(crate) struct SlabWithRun<B: BaseAlloc> {
    pub(crate) header: Slab,
    run: MaybeUninit<SlabRun<B>>,
}

/// Bytes the header takes at the start of a slab.
pub(crate) const fn header_size<B: BaseAlloc>() -> usize {
    size_of::<SlabWithRun<B>>()
}

impl Slab {
    /// The slab of a block pointer (see the module docs for the `- 1`).
    #[inline(always)]
    pub(crate) fn of(ptr: NonNull<u8>) -> *mut Slab {
        ((ptr.as_ptr() as usize - 1) & !(SLAB_SIZE - 1)) as *mut Slab
    }

    /// The slab a shard's metadata lives in.
    #[inline]
    pub(crate) fn of_shard(shard: &Shard) -> &Slab {
        // SAFETY: shard metadata only exists inside slab headers, which start at the slab's
        // aligned base, and the slab outlives references to its shards.
        unsafe { &*((shard as *const Shard as usize & !(SLAB_SIZE - 1)) as *const Slab) }
    }

    /// The address of the slab.
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// The shard holding `ptr`, a pointer into this slab's blocks.
    #[inline(always)]
    pub(crate) fn shard_of(&self, ptr: NonNull<u8>) -> &Shard {
        let unit = (ptr.as_ptr() as usize - self.addr()) >> SHARD_SHIFT;
        debug_assert!(unit <= SHARDS_PER_SLAB);
        // SAFETY: `unit <= SHARDS_PER_SLAB` for any pointer into the slab or one slab past it
        // (huge aligned blocks), and every slot's offset points back to its head.
        unsafe {
            let slot = self.shards.get_unchecked(unit);
            self.shards.get_unchecked(unit - slot.offset.get() as usize)
        }
    }

    /// [`shard_of`](Self::shard_of) for the owner: through the owner's copy of the offsets,
    /// which shares a cache line with the fields a local free writes.
    #[inline(always)]
    pub(crate) fn own_shard_of(&self, ptr: NonNull<u8>) -> &Shard {
        let unit = (ptr.as_ptr() as usize - self.addr()) >> SHARD_SHIFT;
        debug_assert!(unit <= SHARDS_PER_SLAB);
        // SAFETY: as for `shard_of`; the owner's copies equal the shared offsets.
        unsafe {
            let slot = self.shards.get_unchecked(unit);
            self.shards
                .get_unchecked(unit - slot.own_offset.get() as usize)
        }
    }

    /// The unit index of a head shard.
    #[inline]
    pub(crate) fn unit_of(&self, shard: &Shard) -> usize {
        (shard as *const Shard as usize - self.shards.as_ptr() as usize) / size_of::<Shard>()
    }

    /// The address of unit `u`.
    #[inline]
    pub(crate) fn unit_addr(&self, u: usize) -> usize {
        self.addr() + (u << SHARD_SHIFT)
    }

    /// Finds `n` consecutive free units at index `from` or later and takes them; with
    /// `touched_only`, only units handed out before (whose pages are resident unless the slab
    /// was purged), so a new shard reuses memory the process holds before it touches more.
    pub(crate) fn take_units(&self, n: usize, from: usize, touched_only: bool) -> Option<usize> {
        let mut free = self.free_units.get();
        if touched_only {
            free &= !self.fresh_units.get();
        }
        let mut u = from;
        while u + n <= SHARDS_PER_SLAB {
            let m = unit_mask(u, n);
            if free & m == m {
                self.free_units.set(self.free_units.get() & !m);
                self.used_shards.set(self.used_shards.get() + 1);
                return Some(u);
            }
            // Skip past the first taken unit of the window.
            u += ((!free & m) >> u).trailing_zeros() as usize + 1;
        }
        None
    }

    /// Gives units back (their shard is empty and unlinked). Returns whether the slab is now
    /// entirely free.
    pub(crate) fn put_units(&self, u: usize, n: usize) -> bool {
        for k in 1..n {
            self.shards[u + k].set_offset(0);
        }
        self.shards[u].units.set(0);
        self.free_units.set(self.free_units.get() | unit_mask(u, n));
        let used = self.used_shards.get() - 1;
        self.used_shards.set(used);
        used == 0
    }

    /// Whether units `u..u + n` have never been handed out (and so read zero); marks them used.
    pub(crate) fn take_fresh(&self, u: usize, n: usize) -> bool {
        let m = unit_mask(u, n);
        let fresh = self.fresh_units.get() & m == m;
        self.fresh_units.set(self.fresh_units.get() & !m);
        fresh
    }

    /// The head shards in use.
    pub(crate) fn heads(&self) -> impl Iterator<Item = &Shard> {
        self.shards[..SHARDS_PER_SLAB]
            .iter()
            .filter(|s| s.units.get() != 0 && s.offset.get() == 0)
    }

    /// Points every unit slot at itself (a huge slab: only slot 0 is a shard, and any pointer
    /// into the block finds it because the block starts inside the first unit or right at the
    /// slab's end).
    fn map_all_to_first(&self) {
        for (u, s) in self.shards.iter().enumerate() {
            s.set_offset(u as u16);
        }
    }
}

impl<B: BaseAlloc> SlabWithRun<B> {
    /// Writes a fresh header at the start of `run` for `owner`. The slab's units are all free.
    ///
    /// # Safety
    ///
    /// `run` is a committed run owned by the caller whose first slab is not in use.
    pub(crate) unsafe fn init(run: SlabRun<B>, owner: usize) -> &'static Slab {
        let zeroed = run.is_zeroed();
        let slab = run.pointer().as_ptr().cast::<SlabWithRun<B>>();
        // SAFETY: the header lies at the start of the run, which is ours and committed; every
        // field is written before a reference to the header is made.
        unsafe {
            let h = addr_of_mut!((*slab).header);
            addr_of_mut!((*h).owner).write(AtomicUsize::new(owner));
            addr_of_mut!((*h).notified).write(AtomicU64::new(0));
            addr_of_mut!((*h).free_units).write(Cell::new(ALL_UNITS));
            addr_of_mut!((*h).fresh_units).write(Cell::new(if zeroed { ALL_UNITS } else { 0 }));
            addr_of_mut!((*h).used_shards).write(Cell::new(0));
            addr_of_mut!((*h).next).write(Cell::new(ptr::null_mut()));
            addr_of_mut!((*h).prev).write(Cell::new(ptr::null_mut()));
            // A free unit's metadata is all zero bytes (`Shard::new`): a zeroed run already
            // holds it, and leaving it unwritten keeps the header's pages untouched until
            // their shards are used (the slots are 12 KiB of a 4 MiB slab's header).
            if !zeroed {
                let shards = addr_of_mut!((*h).shards).cast::<Shard>();
                for u in 0..=SHARDS_PER_SLAB {
                    shards.add(u).write(Shard::new());
                }
            }
            addr_of_mut!((*slab).run).write(MaybeUninit::new(run));
            &*h
        }
    }

    /// The full header of a slab.
    ///
    /// # Safety
    ///
    /// `header` is the header of a slab of base `B`.
    #[inline]
    pub(crate) unsafe fn from_header(header: &Slab) -> &SlabWithRun<B> {
        // SAFETY: `Slab` is the first field of the `repr(C)` `SlabWithRun<B>`.
        unsafe { &*(header as *const Slab).cast::<SlabWithRun<B>>() }
    }

    /// Moves the run token out, to give the slab back or abandon it.
    ///
    /// # Safety
    ///
    /// The token is taken once; the slab header is not used again until a new token is
    /// stored with [`Slab::store_run`].
    pub(crate) unsafe fn take_run(&self) -> SlabRun<B> {
        // SAFETY: the caller's contract; `init` or `store_run` wrote it.
        unsafe { ptr::read(self.run.as_ptr()) }
    }

    /// Stores a run token (after reclaiming an abandoned slab).
    ///
    /// # Safety
    ///
    /// The previous token was taken (`take_run`) and this is the same slab's run.
    pub(crate) unsafe fn store_run(&self, run: SlabRun<B>) {
        // SAFETY: the header is ours; the old token was moved out.
        unsafe { (self.run.as_ptr() as *mut SlabRun<B>).write(run) }
    }
}

/// Sets up a huge slab: one block of everything past `offset` bytes into the run, found from
/// any pointer through slot 0. Returns the block.
///
/// # Safety
///
/// As for [`Slab::init`]; `offset` is at least the header size and below the run's size plus
/// one slab.
pub(crate) unsafe fn init_huge<B: BaseAlloc>(
    run: SlabRun<B>,
    offset: usize,
) -> (NonNull<u8>, &'static Slab) {
    let (zeroed, size) = (run.is_zeroed(), run.size());
    let start = run.pointer();
    // SAFETY: the caller's contract.
    let slab = unsafe { SlabWithRun::<B>::init(run, NO_OWNER) };
    slab.map_all_to_first();
    let shard = &slab.shards[0];
    // SAFETY: `offset` is inside (or at the end of) the run.
    let block = unsafe { start.add(offset) };
    shard.init(0, size - offset, block.as_ptr(), SHARDS_PER_SLAB, 1, zeroed);
    shard.capacity.set(1);
    shard.used.set(1);
    shard.set_flags(crate::shard::FLAG_HUGE);
    (block, slab)
}

const _: () = {
    assert!(SHARDS_PER_SLAB <= 64, "the unit masks are u64");
    assert!(SHARDS_PER_SLAB < u16::MAX as usize);
    assert!(
        size_of::<Slab>() < SHARD_SIZE,
        "the header must leave room in unit 0"
    );
};
