//! # ferroc-base: where Ferroc's memory comes from
//!
//! The lowest layer of Ferroc. Everything above it asks a [`BaseAlloc`] for large aligned
//! [`Chunk`]s and never talks to the operating system itself; all OS calls of the allocator
//! live in this crate.
//!
//! ## Glossary
//! - **base**: a source of chunks, implementing [`BaseAlloc`]: [`Mmap`] (the OS, feature
//!   `base-mmap`), [`Static`] (a fixed region, feature `base-static`), or the fault-injecting
//!   [`testing::Failing`] (feature `testing`).
//! - **chunk**: an owned, aligned, contiguous region from a base ([`Chunk`]); dropping it gives
//!   it back. The arenas above carve chunks into slabs.
//! - **commit / decommit**: making a sub-range of a chunk usable / telling the base its contents
//!   are no longer needed so the physical memory can go back. Decommitted memory stays inside
//!   the chunk and may be committed again.
//! - **page size**: the base's commit granularity, read at run time (4, 16 and 64 KiB pages all
//!   exist; nothing here assumes 4096).
//! - **bitmap**: the lock-free [`bitmap::Bitmap`] of claimable runs, shared by [`Static`] and
//!   the arenas.
//! - **large OS pages**: huge pages behind big chunks, one process-wide switch
//!   ([`Mmap::set_large_pages`], off by default): transparent huge pages (`MADV_HUGEPAGE`)
//!   and, where the system has reserved them, hugetlb pages (`MAP_HUGETLB`, 2 MiB or 1 GiB).
//!   Only [`Mmap`] has them; they never change [`BaseAlloc::page_size`].
//!
//! ## Invariants
//! - A chunk is aligned to at least its layout's alignment, holds at least its layout's size,
//!   and does not overlap any other live chunk of the same base.
//! - A chunk reports [`Chunk::is_zeroed`] only if every byte of it read zero when handed out.
//! - No function here panics on a failed OS call or a full region: failures are typed errors.
//! - [`Mmap`] leaves `errno` as it found it.
//! - Large OS pages change how a chunk is backed, never what the [`BaseAlloc`] contract
//!   promises: hugetlb memory is never decommitted (a decommit over it answers "not zeroed")
//!   and never moved (`move_pages` answers "cannot"), so the layers above need no hint and no
//!   change; they only see fewer zeroed purges and more copies on those chunks.
//!
//! ## What it owns
//! The OS calls (`mmap`, `munmap`, `madvise`, `mremap`, `sysconf`, `clock_gettime`, and the
//! `open`/`read` of a few `/sys` files for large pages), the fixed-region bookkeeping of
//! [`Static`], and the loom switch ([`sync`]) used by every lock-free structure.
//!
//! ## Large OS pages (design)
//! [`Mmap`] decides from a chunk's size alone: with the switch on, every chunk of at least one
//! huge page (in Ferroc: arenas and the runs served straight from the base; pool pages and
//! other small chunks stay as they are) is aligned to the largest huge page it can use, its
//! prefix of whole reserved hugetlb pages is mapped with `MAP_HUGETLB` (without
//! `MAP_NORESERVE`, so a short pool is an `mmap` refusal, answered by the normal mapping, and
//! never a fault), and the rest is advised `MADV_HUGEPAGE`. What the system offers is read
//! once from `/sys` without allocating. Since `decommit` and `move_pages` get only an address
//! range, hugetlb chunks are recorded in a fixed lock-free table, scanned only once some
//! chunk is hugetlb-backed. The trade: fewer TLB misses and page faults for big heaps, for
//! memory that grows in 2 MiB steps (a touched byte makes its whole huge page resident), and,
//! with hugetlb, pages that stay with the process until their chunk is unmapped. Details in
//! the `mmap` module.
#![no_std]

#[cfg(any(feature = "std", ferroc_loom, test))]
extern crate std;

pub mod bitmap;
pub mod sync;

#[cfg(all(test, ferroc_loom))]
mod loom_tests;
#[cfg(any(feature = "base-mmap", ferroc_loom))]
mod range_table;

#[cfg(all(feature = "base-mmap", not(ferroc_loom)))]
mod mmap;
#[cfg(all(feature = "base-mmap", not(ferroc_loom)))]
pub use mmap::{Mmap, MmapError};

#[cfg(all(feature = "base-static", not(ferroc_loom)))]
mod static_region;
#[cfg(all(feature = "base-static", not(ferroc_loom)))]
pub use static_region::{Static, StaticError, StaticMemory};

#[cfg(all(feature = "testing", not(ferroc_loom)))]
pub mod testing;

use core::{alloc::Layout, fmt, mem::ManuallyDrop, ptr::NonNull};

/// A source of large, aligned chunks of memory.
///
/// # Safety
///
/// An implementor guarantees that:
/// - [`allocate`](Self::allocate) returns a chunk whose pointer is aligned to at least
///   `layout.align()`, that spans at least `layout.size()` bytes which are readable and writable
///   once committed (all of them when `commit` was true), and that overlaps no other chunk
///   alive from the same base;
/// - a chunk reports itself zeroed only if every byte reads zero;
/// - the memory stays valid until [`deallocate`](Self::deallocate) is called on the chunk, and
///   nothing else touches it meanwhile;
/// - [`commit`](Self::commit) on a sub-range of a live chunk makes it readable and writable, and
///   [`decommit`](Self::decommit) keeps the range inside the chunk (it may be committed again)
///   and returns `true` only if the range will read zero afterwards;
/// - [`page_size`](Self::page_size) is a power of two that never changes while chunks live;
/// - none of the methods panics or unwinds.
pub unsafe trait BaseAlloc: Sized {
    /// What the base keeps with each chunk to release it later.
    type Handle: Copy;
    /// Why an allocation or a commit failed.
    type Error: fmt::Debug + fmt::Display;

    /// The commit granularity in bytes, a power of two read at run time.
    fn page_size(&self) -> usize;

    /// Allocates a chunk for `layout`; if `commit` is true the whole chunk is usable at once.
    fn allocate(&self, layout: Layout, commit: bool) -> Result<Chunk<Self>, Self::Error>;

    /// Gives a chunk's memory back.
    ///
    /// # Safety
    ///
    /// `chunk` came from this base, is released only once (this is called by `Chunk`'s drop),
    /// and nothing uses its memory afterwards.
    unsafe fn deallocate(chunk: &mut Chunk<Self>);

    /// Makes `[ptr, ptr + len)` readable and writable.
    ///
    /// # Safety
    ///
    /// The range lies inside a live chunk of this base and is page-aligned.
    unsafe fn commit(&self, ptr: NonNull<u8>, len: usize) -> Result<(), Self::Error>;

    /// Tells the base the contents of `[ptr, ptr + len)` are no longer needed. Returns whether
    /// the range reads zero from now on.
    ///
    /// # Safety
    ///
    /// The range lies inside a live chunk of this base, is page-aligned, and nothing reads the
    /// old contents afterwards.
    unsafe fn decommit(&self, ptr: NonNull<u8>, len: usize) -> bool;

    /// A monotonic clock in milliseconds, if the base has one. Time-based purging of free
    /// memory is only done when it has; without one, memory is purged by explicit collects.
    fn now_ms(&self) -> Option<u64> {
        None
    }

    /// Moves the pages of `[from, from + len)` to `[to, to + len)` without copying their bytes
    /// (Linux: `mremap`), if the base can. On success (`true`) the target holds what the source
    /// held and the source range stays part of its chunk, decommitted, reading zero. On failure
    /// (`false`, the default: a base that cannot) neither range has changed.
    ///
    /// # Safety
    ///
    /// Both ranges lie inside live chunks of this base, are page-aligned and do not overlap;
    /// nothing uses either while the call runs, and the target's old contents are not needed.
    unsafe fn move_pages(&self, from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
        let _ = (from, to, len);
        false
    }

    /// Asks the base to back the large chunks it hands out from now on with large OS pages
    /// (`on`), or not. A hint: a base that cannot (the default) ignores it. The large-pages
    /// option of an instance (`FERROC_LARGE_PAGES`) reaches the base through this, before the
    /// instance makes its first arena.
    fn use_large_pages(&self, on: bool) {
        let _ = on;
    }
}

/// An owned, aligned region of memory from a base; dropping it gives the memory back.
pub struct Chunk<B: BaseAlloc> {
    ptr: NonNull<u8>,
    layout: Layout,
    zeroed: bool,
    handle: B::Handle,
}

// SAFETY: a chunk is a unique owner of plain memory; moving it to another thread moves that
// ownership, and the handle is only used to release the memory.
unsafe impl<B: BaseAlloc> Send for Chunk<B> where B::Handle: Send {}
// SAFETY: `&Chunk` only gives out the pointer and layout, which are plain values.
unsafe impl<B: BaseAlloc> Sync for Chunk<B> where B::Handle: Sync {}

impl<B: BaseAlloc> Chunk<B> {
    /// Wraps memory a base has just allocated.
    ///
    /// # Safety
    ///
    /// `ptr` and `layout` describe memory that satisfies the guarantees of [`BaseAlloc`] for
    /// `B`, `zeroed` is true only if every byte reads zero, and `B::deallocate` with `handle`
    /// releases it.
    pub unsafe fn new(ptr: NonNull<u8>, layout: Layout, zeroed: bool, handle: B::Handle) -> Self {
        Chunk {
            ptr,
            layout,
            zeroed,
            handle,
        }
    }

    /// The start of the region.
    #[inline]
    pub fn pointer(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The size and alignment of the region.
    #[inline]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether every byte read zero when the chunk was handed out.
    #[inline]
    pub fn is_zeroed(&self) -> bool {
        self.zeroed
    }

    /// The base's handle for this chunk.
    #[inline]
    pub fn handle(&self) -> &B::Handle {
        &self.handle
    }

    /// The same memory as a chunk of base `W` with `handle`: for a base that wraps another
    /// (a fault injector, a test probe), to hand the inner base's chunk out as its own, and in
    /// its [`deallocate`](BaseAlloc::deallocate) to release it through the inner base again.
    ///
    /// # Safety
    ///
    /// Exactly one of the two chunks is ever released: the other is forgotten (kept in a
    /// [`ManuallyDrop`]) or is the one being released now. Releasing the new chunk through `W`
    /// releases the memory as `B` would.
    pub unsafe fn with_handle<W: BaseAlloc>(&self, handle: W::Handle) -> Chunk<W> {
        Chunk {
            ptr: self.ptr,
            layout: self.layout,
            zeroed: self.zeroed,
            handle,
        }
    }

    /// Splits the chunk into its parts without releasing it.
    pub fn into_parts(self) -> (NonNull<u8>, Layout, bool, B::Handle) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the handle is moved out exactly once.
        let handle = unsafe { core::ptr::read(&this.handle) };
        (this.ptr, this.layout, this.zeroed, handle)
    }
}

impl<B: BaseAlloc> Drop for Chunk<B> {
    fn drop(&mut self) {
        // SAFETY: a chunk is only built from a base's allocation (`Chunk::new`'s contract) and
        // is dropped once.
        unsafe { B::deallocate(self) }
    }
}

impl<B: BaseAlloc> fmt::Debug for Chunk<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("ptr", &self.ptr)
            .field("layout", &self.layout)
            .field("zeroed", &self.zeroed)
            .finish()
    }
}

/// Rounds `x` up to a multiple of the power of two `align`, or `None` on overflow.
#[inline]
pub const fn align_up(x: usize, align: usize) -> Option<usize> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Runs a loom model under a bounded preemption count, printing how many interleavings ran.
///
/// `LOOM_MAX_PREEMPTIONS` (default 2) bounds the search. The line printed,
/// `loom model NAME: N iterations`, is what `cargo xtask test-loom` adds up.
#[cfg(ferroc_loom)]
pub fn loom_model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(move || {
        c.fetch_add(1, Ordering::Relaxed);
        f();
    });
    std::println!(
        "loom model {name}: {} iterations",
        count.load(Ordering::Relaxed)
    );
}
