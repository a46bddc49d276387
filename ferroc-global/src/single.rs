//! [`SingleGlobal`]: one context for the whole program, for bare metal and single-threaded
//! programs without thread-local storage.

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::Arenas;
use ferroc_base::BaseAlloc;
use ferroc_heap::Context;

use crate::common::Placeholder;

/// A global allocator with a single context (made by [`config!`](crate::config) with
/// `thread_exit = unsafe none`). Sound only if the program allocates from one thread at a
/// time, which is what the `unsafe` in the macro promises.
pub struct SingleGlobal<B: BaseAlloc + 'static> {
    arenas: Arenas<B>,
    cx: Placeholder<B>,
}

impl<B: BaseAlloc + 'static> SingleGlobal<B> {
    /// The global `this` (the static being defined) over `base`.
    pub const fn new(this: &'static Self, base: B) -> Self {
        SingleGlobal {
            arenas: Arenas::new(base),
            cx: Placeholder(Context::new(&this.arenas)),
        }
    }

    /// The arenas.
    pub fn arenas(&'static self) -> &'static Arenas<B> {
        &self.arenas
    }

    /// Allocates. Null when out of memory.
    #[inline(always)]
    pub fn alloc(&'static self, layout: Layout) -> *mut u8 {
        self.cx
            .0
            .allocate(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    /// Allocates zeroed memory. Null when out of memory.
    pub fn alloc_zeroed(&'static self, layout: Layout) -> *mut u8 {
        self.cx
            .0
            .allocate_zeroed(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    /// Frees a block.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator.
    #[inline(always)]
    pub unsafe fn dealloc(&'static self, ptr: NonNull<u8>) {
        // SAFETY: forwarded.
        unsafe { self.cx.0.free(ptr) }
    }

    /// Resizes a block. Null when out of memory, leaving the old block alone.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator holding `old_size` bytes.
    pub unsafe fn realloc(
        &'static self,
        ptr: NonNull<u8>,
        old_size: usize,
        new: Layout,
    ) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.cx.0.reallocate(ptr, old_size, new) }
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    /// The usable size of a live block.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator.
    #[inline]
    pub unsafe fn usable_size(&'static self, ptr: NonNull<u8>) -> usize {
        // SAFETY: forwarded.
        unsafe { self.cx.0.usable_size(ptr) }
    }

    /// Collects (see `Context::collect`).
    pub fn collect(&'static self, force: bool) {
        self.cx.0.collect(force)
    }

    /// Statistics.
    #[cfg(feature = "stat")]
    pub fn stats(&'static self) -> ferroc_heap::Stats {
        self.cx.0.stats()
    }

    /// Prints the statistics to standard error without allocating.
    pub fn show_stats(&'static self) {
        #[cfg(all(feature = "stat", feature = "libc"))]
        crate::print::print_stats(&self.stats());
    }
}
