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
    cell::{Cell, UnsafeCell},
    mem::{MaybeUninit, size_of},
    ptr::{self, NonNull},
};

use ferroc_arena::{
    BaseAlloc, SlabRun,
    sizes::{SHARD_SHIFT, SHARD_SIZE, SHARDS_PER_SLAB, SLAB_SIZE},
};
use ferroc_base::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
///
/// Every field is valid at all zero bytes (a free unit's [`Shard`] is all zeros, the token's
/// slot may hold anything), and all zeros is a fresh header with every unit free, nothing
/// listed, no owner: [`init`](Self::init) relies on it.
#[repr(C)]
pub(crate) struct SlabWithRun<B: BaseAlloc> {
    pub(crate) header: Slab,
    /// Present while the slab is owned or huge; moved out while abandoned or given back.
    run: UnsafeCell<MaybeUninit<SlabRun<B>>>,
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
        self.head_of(ptr, |slot| slot.offset.get())
    }

    /// [`shard_of`](Self::shard_of) for the owner: through the owner's copy of the offsets,
    /// which shares a cache line with the fields a local free writes.
    #[inline(always)]
    pub(crate) fn own_shard_of(&self, ptr: NonNull<u8>) -> &Shard {
        self.head_of(ptr, |slot| slot.own_offset.get())
    }

    /// The head shard of the unit holding `ptr`, found `back(slot)` units before the unit's
    /// slot. `back` reads one of the slot's two copies of its offset, which are equal.
    #[inline(always)]
    fn head_of(&self, ptr: NonNull<u8>, back: impl Fn(&Shard) -> u16) -> &Shard {
        let unit = (ptr.as_ptr() as usize - self.addr()) >> SHARD_SHIFT;
        debug_assert!(unit <= SHARDS_PER_SLAB);
        // SAFETY: `unit <= SHARDS_PER_SLAB` for any pointer into the slab or one slab past it
        // (huge aligned blocks), and there are `SHARDS_PER_SLAB + 1` slots.
        let slot = unsafe { self.shards.get_unchecked(unit) };
        // SAFETY: every slot's offset points back to its head, at or after slot 0.
        unsafe { self.shards.get_unchecked(unit - back(slot) as usize) }
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

    /// Moves the run token out, to give the slab back or abandon it.
    ///
    /// # Safety
    ///
    /// The slab's base is `B` (its header is a whole [`SlabWithRun<B>`]) and it holds its
    /// token; the slab header is not used again until a new token is stored with
    /// [`store_run`](Self::store_run).
    pub(crate) unsafe fn take_run<B: BaseAlloc>(&self) -> SlabRun<B> {
        // SAFETY: the header is a whole `SlabWithRun<B>` (this fn's contract).
        let whole = unsafe { SlabWithRun::<B>::from_header(self) };
        // SAFETY: the token is there (this fn's contract) and, moved out, not read again.
        unsafe { whole.take_run() }
    }

    /// Stores a run token (after reclaiming an abandoned slab, or taking the token to resize
    /// a huge run).
    ///
    /// # Safety
    ///
    /// The slab's base is `B` (its header is a whole [`SlabWithRun<B>`]), the previous token
    /// was taken (`take_run`) and `run` is this same slab's run.
    pub(crate) unsafe fn store_run<B: BaseAlloc>(&self, run: SlabRun<B>) {
        // SAFETY: the header is a whole `SlabWithRun<B>` (this fn's contract).
        let whole = unsafe { SlabWithRun::<B>::from_header(self) };
        // SAFETY: the old token was moved out and `run` is this slab's (this fn's contract).
        unsafe { whole.store_run(run) }
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
        // All zero bytes are a fresh header (see the type's docs): a zeroed run already holds
        // it, and leaving it unwritten keeps the header's pages untouched until their shards
        // are used (the shard slots are 12 KiB of a 4 MiB slab's header).
        if !zeroed {
            // SAFETY: the header lies at the start of the run, which is ours, committed and
            // not in use (this fn's contract); nothing refers to it yet.
            unsafe { slab.write_bytes(0, 1) };
        }
        // SAFETY: the header's bytes are all zero, a valid `SlabWithRun<B>`, in a run that is
        // ours (this fn's contract) and stays mapped while the slab is used.
        let whole = unsafe { &*slab };
        let h = &whole.header;
        h.owner.store(owner, Ordering::Relaxed);
        h.free_units.set(ALL_UNITS);
        if zeroed {
            h.fresh_units.set(ALL_UNITS);
        }
        // SAFETY: a fresh header holds no token, and `run` is this slab's.
        unsafe { whole.store_run(run) };
        h
    }

    /// The full header of a slab.
    ///
    /// # Safety
    ///
    /// `header` is the header of a slab of base `B`.
    #[inline]
    unsafe fn from_header(header: &Slab) -> &SlabWithRun<B> {
        // SAFETY: `Slab` is the first field of the `repr(C)` `SlabWithRun<B>`, and the slab's
        // base is `B` (this fn's contract).
        unsafe { &*ptr::from_ref(header).cast::<SlabWithRun<B>>() }
    }

    /// Moves the run token out.
    ///
    /// # Safety
    ///
    /// The token is there (`init` or `store_run` wrote it, no `take_run` since), and is not
    /// read again until a new one is stored.
    unsafe fn take_run(&self) -> SlabRun<B> {
        // SAFETY: the slot holds a token (this fn's contract), which the owner alone moves
        // out; the caller does not read it again.
        unsafe { ptr::read(self.run.get().cast::<SlabRun<B>>()) }
    }

    /// Stores a run token.
    ///
    /// # Safety
    ///
    /// The slot holds no token (never written, or taken), and `run` is this slab's.
    unsafe fn store_run(&self, run: SlabRun<B>) {
        // SAFETY: the slot is only written by the slab's owner (or the one thread handing it
        // over), while nobody reads it; it holds no token to leak (this fn's contract).
        unsafe { self.run.get().write(MaybeUninit::new(run)) }
    }
}

/// Sets up a huge slab: one block of everything past `offset` bytes into the run, found from
/// any pointer through slot 0. Returns the block.
///
/// # Safety
///
/// As for [`SlabWithRun::init`]; `offset` is at least the header size and below the run's size plus
/// one slab.
pub(crate) unsafe fn init_huge<B: BaseAlloc>(
    run: SlabRun<B>,
    offset: usize,
) -> (NonNull<u8>, &'static Slab) {
    let (zeroed, size) = (run.is_zeroed(), run.size());
    let start = run.pointer();
    // SAFETY: a committed run that is the caller's, its first slab not in use (this fn's
    // contract).
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
