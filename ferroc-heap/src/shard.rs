//! Shards: the pages of blocks of one size class, with their three free lists.
//!
//! A shard covers one or more shard units of a slab and holds `reserved` blocks of
//! `block_size` bytes starting at `area`. Its metadata lives in the slab header (one `Shard`
//! per unit; only a shard's first unit, its *head*, is used; the others just say how far back
//! the head is, so that any pointer finds its shard in O(1)).
//!
//! # The three lists
//! - `free`: blocks ready to hand out; allocation pops from it (owner only, no atomics).
//! - `local_free`: blocks the owner freed; pushed without atomics, moved to `free` when `free`
//!   runs out (keeping frees off the list allocation pops from, so a free-then-malloc pattern
//!   does not bounce on one cache line).
//! - `thread_free`: blocks other threads freed, pushed with one CAS loop, taken by the owner
//!   with one atomic RMW (see [`ThreadFree`]).
//!
//! Blocks past `capacity` have never been handed out and are carved lazily, a page's worth at
//! a time (`extend`), so a fresh shard's memory is not touched all at once.
//!
//! # Invariant
//! `used == capacity - |local_free| - free_counted × |free|`: `used` counts the blocks that are
//! live, in `thread_free` (freed remotely, not yet collected), or on an *uncounted* `free`
//! list. `free_counted` is true except right after a collect that found `free` empty and simply
//! made the remote list the new `free`: counting that list would mean walking it, a cache miss per
//! block (the blocks were last written by other cores), on the allocation slow path, and each
//! of those blocks is about to be popped anyway. So the list keeps counting as used, pops from
//! it leave `used` alone (`used += free_counted`), and `used` is exact again once it runs out, or
//! at once through [`Shard::settle`] (the cold paths that ask whether a shard is empty call
//! it). `used` never reads lower than the true number of live blocks, so a shard with
//! `used == 0` holds no live block and no block in flight, and can be released; one whose
//! `free` is uncounted is at worst released later.
//!
//! # States (`flags` and the thread-free state)
//! - in a class queue, `flags == 0`, thread-free `NORMAL`: the usual state;
//! - in the full list, `flags == FLAG_IN_FULL_LIST`, thread-free `PARKED`/`NOTIFYING`/
//!   `NOTIFIED`: no room; a remote free posts a notification (the slab's `notified` mask) so
//!   the owner puts it back;
//! - `HUGE`: the only shard of a huge slab, holding one block; never in a queue, released by
//!   whichever thread frees the block.

use core::{
    cell::Cell,
    mem::size_of,
    ptr::{self, NonNull},
};

use ferroc_base::sync::atomic::{AtomicU8, Ordering};

use crate::thread_free::{Block, ThreadFree};

/// The shard is in its context's full list.
pub const FLAG_IN_FULL_LIST: u8 = 1;
/// The shard is the single-block shard of a huge slab.
pub const FLAG_HUGE: u8 = 2;

/// Bytes of a cache line, as far as the layout of [`Shard`] is concerned.
const LINE: usize = 64;
const PTR: usize = size_of::<usize>();

/// Shard metadata (see the module docs).
///
/// # Layout: three cache lines
/// 1. what the owner writes on every allocation and local free (`free`, `used`,
///    `local_free`...), and its own copies of `offset` and `flags`;
/// 2. what every free reads, written only while the shard is set up or changes list (`offset`,
///    `flags`, the block size...);
/// 3. `thread_free`, which other threads' frees write.
///
/// Sharing one line between the first and the others made a remote free miss on `offset`
/// and `flags` and bounce the line the owner was popping from (perf: the hottest loads of
/// larson's `free` were those); sharing it between the last two made each remote CAS
/// invalidate what the owner's local frees read.
#[repr(C, align(64))]
pub struct Shard {
    // --- Line 1: the owner's hot fields.
    /// Blocks ready to allocate.
    pub(crate) free: Cell<*mut Block>,
    /// Blocks the owner freed.
    pub(crate) local_free: Cell<*mut Block>,
    /// The first block.
    pub(crate) area: Cell<*mut u8>,
    /// Links in a class queue or the full list.
    pub(crate) next: Cell<*mut Shard>,
    pub(crate) prev: Cell<*mut Shard>,
    /// Blocks live, in `thread_free`, or on an uncounted `free` (see the invariant).
    pub(crate) used: Cell<u32>,
    /// Blocks carved so far.
    pub(crate) capacity: Cell<u32>,
    /// Blocks that fit in the area.
    pub(crate) reserved: Cell<u32>,
    /// Whether the blocks on `free` are counted out of `used` (false while they still count
    /// as used, see the invariant); a pop adds it (as 0 or 1) to `used`.
    pub(crate) free_counted: Cell<bool>,
    /// The owner's copies of `offset` and `flags` (line 2), so that a local free reads one
    /// line. Written together with them ([`set_offset`](Self::set_offset),
    /// [`set_flags`](Self::set_flags)); read only by the owner.
    pub(crate) own_offset: Cell<u16>,
    pub(crate) own_flags: Cell<u8>,
    /// Whether the area not carved yet reads zero.
    pub(crate) zeroed: Cell<bool>,
    _line1: [u8; LINE - (5 * PTR + 18)],
    // --- Line 2: read by every free.
    /// The size of each block.
    pub(crate) block_size: Cell<usize>,
    /// For a non-head unit: how many units back its head is. 0 for heads and free units.
    pub(crate) offset: Cell<u16>,
    /// Units the shard spans (for a head); 0 when the unit is free.
    pub(crate) units: Cell<u16>,
    /// `FLAG_*`; atomic because any thread freeing into the shard reads it. `Relaxed`
    /// everywhere: only the owner writes it, and other threads only test `FLAG_HUGE`, which is
    /// set before the block is handed out and never changes while it lives.
    pub(crate) flags: AtomicU8,
    /// The size class (for a head).
    pub(crate) class: Cell<u8>,
    _line2: [u8; LINE - (PTR + 6)],
    // --- Line 3: other threads' frees.
    /// Blocks other threads freed, and the full-shard handshake state.
    pub(crate) thread_free: ThreadFree,
}

const _: () = {
    assert!(core::mem::offset_of!(Shard, block_size) == LINE);
    assert!(core::mem::offset_of!(Shard, thread_free) == 2 * LINE);
    assert!(size_of::<Shard>() == 3 * LINE);
};

impl Shard {
    /// A free unit's metadata: all zero bytes, so that a zeroed slab header needs no writing
    /// (`free_counted` is only meaningful for heads, which [`init`](Self::init) sets up).
    pub(crate) const fn new() -> Self {
        Shard {
            free: Cell::new(ptr::null_mut()),
            local_free: Cell::new(ptr::null_mut()),
            area: Cell::new(ptr::null_mut()),
            next: Cell::new(ptr::null_mut()),
            prev: Cell::new(ptr::null_mut()),
            used: Cell::new(0),
            capacity: Cell::new(0),
            reserved: Cell::new(0),
            free_counted: Cell::new(false),
            own_offset: Cell::new(0),
            own_flags: Cell::new(0),
            zeroed: Cell::new(false),
            _line1: [0; LINE - (5 * PTR + 18)],
            block_size: Cell::new(0),
            offset: Cell::new(0),
            units: Cell::new(0),
            flags: AtomicU8::new(0),
            class: Cell::new(0),
            _line2: [0; LINE - (PTR + 6)],
            thread_free: ThreadFree::new(),
        }
    }

    /// Sets a head up for `reserved` blocks of class `class` at `area`.
    pub(crate) fn init(
        &self,
        class: usize,
        block_size: usize,
        area: *mut u8,
        units: usize,
        reserved: usize,
        zeroed: bool,
    ) {
        self.free.set(ptr::null_mut());
        self.local_free.set(ptr::null_mut());
        self.used.set(0);
        self.set_flags(0);
        self.class.set(class as u8);
        self.set_offset(0);
        self.units.set(units as u16);
        self.free_counted.set(true);
        self.thread_free.reset();
        self.block_size.set(block_size);
        self.area.set(area);
        self.capacity.set(0);
        self.reserved.set(reserved as u32);
        self.zeroed.set(zeroed);
        self.next.set(ptr::null_mut());
        self.prev.set(ptr::null_mut());
    }

    /// Sets `flags` and the owner's copy (owner only).
    #[inline]
    pub(crate) fn set_flags(&self, flags: u8) {
        self.flags.store(flags, Ordering::Relaxed);
        self.own_flags.set(flags);
    }

    /// Sets `offset` and the owner's copy (owner only, while no other thread can be reading
    /// it: the unit holds no live block).
    #[inline]
    pub(crate) fn set_offset(&self, offset: u16) {
        self.offset.set(offset);
        self.own_offset.set(offset);
    }

    /// Pops a free block (the allocation fast path: two loads, two stores, a prefetch, no
    /// atomics).
    ///
    /// The new head is prefetched: the next pop reads its first word, and a block that waited
    /// on a free list (or was freed by another core) is rarely still in this core's cache, so
    /// without the prefetch that read is a cache miss on the critical path of the next
    /// allocation. With it the miss overlaps whatever the program does in between.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<NonNull<u8>> {
        let block = self.free.get();
        if block.is_null() {
            return None;
        }
        // SAFETY: a block on `free` is a free block of this shard whose first word is its link.
        let next = unsafe { (*block).next };
        self.free.set(next);
        prefetch(next);
        self.used
            .set(self.used.get() + u32::from(self.free_counted.get()));
        // SAFETY: checked non-null above.
        Some(unsafe { NonNull::new_unchecked(block.cast()) })
    }

    /// Pushes a block the owner frees; returns the new `used`.
    ///
    /// # Safety
    ///
    /// `block` is a live block of this shard, freed once, by the owning context.
    #[inline(always)]
    pub(crate) unsafe fn push_local(&self, block: NonNull<u8>) -> u32 {
        let block = block.cast::<Block>().as_ptr();
        // SAFETY: the block is ours to reuse as a link now.
        unsafe { (*block).next = self.local_free.get() };
        self.local_free.set(block);
        let used = self.used.get() - 1;
        self.used.set(used);
        used
    }

    /// Whether a block can be handed out without collecting.
    #[inline]
    pub(crate) fn has_free(&self) -> bool {
        !self.free.get().is_null()
    }

    /// Moves `local_free` and `thread_free` into `free` (owner). Returns whether `free` is now
    /// non-empty. `used` may stay above the number of live blocks (an uncounted `free`, see
    /// the invariant); [`collect_all`](Self::collect_all) makes it exact.
    pub(crate) fn collect(&self) -> bool {
        let mut remote = self.thread_free.take();
        if !remote.is_null() {
            if self.free.get().is_null() {
                // The usual case: the remote list becomes `free` as it is, uncounted.
                self.free.set(remote);
                self.free_counted.set(false);
                return true;
            }
            self.settle();
            // Count the blocks and find the tail to splice the list in front of `free`.
            let head = remote;
            let mut n = 1u32;
            loop {
                // SAFETY: `remote` is on the list `take` handed over to us: a free block of
                // this shard, linked through its first word.
                let next = unsafe { (*remote).next };
                if next.is_null() {
                    break;
                }
                remote = next;
                n += 1;
            }
            // SAFETY: `remote` is the handed-over list's last block, a free block of this shard
            // whose first word is its link.
            unsafe { (*remote).next = self.free.get() };
            self.free.set(head);
            self.used.set(self.used.get() - n);
        }
        if self.free.get().is_null() {
            self.free.set(self.local_free.replace(ptr::null_mut()));
            self.free_counted.set(true);
        }
        self.has_free()
    }

    /// [`collect`](Self::collect), then [`settle`](Self::settle): afterwards `used` is the
    /// number of live blocks (for the paths that release empty shards).
    pub(crate) fn collect_all(&self) {
        self.collect();
        self.settle();
    }

    /// Counts an uncounted `free` list out of `used`, so that `used` is exact.
    pub(crate) fn settle(&self) {
        if self.free_counted.get() {
            return;
        }
        let mut n = 0u32;
        let mut p = self.free.get();
        while !p.is_null() {
            n += 1;
            // SAFETY: blocks on `free` are free blocks of this shard, linked by their first word.
            p = unsafe { (*p).next };
        }
        self.used.set(self.used.get() - n);
        self.free_counted.set(true);
    }

    /// Carves up to a page's worth of never-used blocks onto `free`. Returns whether any were.
    pub(crate) fn extend(&self, page_size: usize) -> bool {
        let (cap, reserved) = (self.capacity.get(), self.reserved.get());
        if cap >= reserved {
            return false;
        }
        // The new blocks are counted ones; so must the list they go in front of be.
        self.settle();
        let size = self.block_size.get();
        let n = ((page_size / size).max(1) as u32).min(reserved - cap);
        // Blocks `cap..cap + n` lie inside the shard's area (`reserved` blocks fit) and have
        // never been handed out; linking them writes only their first words.
        // SAFETY: block `cap` is inside the area (`cap < reserved`).
        let first = unsafe { self.area.get().add(cap as usize * size) };
        let mut p = first;
        for _ in 1..n {
            // SAFETY: `p` is a block before `cap + n - 1`, so the next one is inside the area.
            let next = unsafe { p.add(size) };
            // SAFETY: `p` is a block of the area never handed out: its first word is ours.
            unsafe { (*p.cast::<Block>()).next = next.cast() };
            p = next;
        }
        // SAFETY: `p` is block `cap + n - 1`, inside the area and never handed out.
        unsafe { (*p.cast::<Block>()).next = self.free.get() };
        self.free.set(first.cast());
        self.capacity.set(cap + n);
        true
    }

    /// Whether the shard is the only one in its queue (it has no neighbours).
    #[inline(always)]
    pub(crate) fn is_alone(&self) -> bool {
        self.prev.get().is_null() && self.next.get().is_null()
    }

    /// The size class.
    #[inline]
    pub(crate) fn class(&self) -> usize {
        self.class.get() as usize
    }
}

/// Asks the CPU to bring the line at `p` into its caches. Never faults (null and dangling
/// addresses included) and has no effect on the program's meaning; a no-op where the target
/// has no stable prefetch instruction.
#[inline(always)]
fn prefetch(p: *const Block) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the program.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A shard that is never in use: every direct-table entry starts pointing at it, so the first
/// allocation of every size finds an empty `free` list and takes the slow path. It is never
/// written.
pub(crate) struct EmptyShard(pub(crate) Shard);

// SAFETY: nothing ever writes to the empty shard (allocation only reads its `free`, which is
// null, and no path frees into it or queues it), so sharing it is sharing immutable data.
unsafe impl Sync for EmptyShard {}

pub(crate) static EMPTY_SHARD: EmptyShard = EmptyShard(Shard::new());

/// A pointer to [`EMPTY_SHARD`], usable in `const` initialisers.
pub(crate) const EMPTY: *mut Shard = &EMPTY_SHARD.0 as *const Shard as *mut Shard;
