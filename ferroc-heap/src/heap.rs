//! [`Heap`]: the allocation front bound to one [`Context`].

use core::{alloc::Layout, fmt, marker::PhantomData, ptr::NonNull};

use ferroc_arena::BaseAlloc;

use crate::Context;

/// The allocation failed: the arenas and their base are out of memory (or the request cannot
/// be represented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("memory allocation failed")
    }
}

/// The allocation front bound to one [`Context`]: allocate, free, resize.
///
/// A `Heap` borrows its context, so the context cannot move or drop while the heap lives;
/// neither is `Send` or `Sync`. Several heaps may share one context (they are cheap handles
/// to its state). Blocks may be freed through any heap of the same `Arenas`, from any
/// thread.
///
/// ```
/// use ferroc_arena::Arenas;
/// use ferroc_base::Mmap;
/// use ferroc_heap::{Context, Heap};
///
/// let arenas = Arenas::new(Mmap);
/// let cx = Context::new(&arenas);
/// let heap = Heap::new(&cx);
/// let mut v = allocator_api2::vec::Vec::new_in(&heap);
/// v.extend(0..1000u32);
/// assert_eq!(v.iter().sum::<u32>(), 499_500);
/// ```
///
/// Safe code cannot move or drop a context while a heap uses it (other threads' frees reach
/// only slab headers, never the context, so a context with no heap may move freely):
///
/// ```compile_fail,E0505
/// # use ferroc_arena::Arenas;
/// # use ferroc_base::Mmap;
/// # use ferroc_heap::{Context, Heap};
/// let arenas = Arenas::new(Mmap);
/// let cx = Context::new(&arenas);
/// let heap = Heap::new(&cx);
/// let moved = cx;
/// let _ = heap.allocate(core::alloc::Layout::new::<u64>());
/// ```
///
/// Nor send a heap (or its context) to another thread:
///
/// ```compile_fail,E0277
/// # use ferroc_arena::Arenas;
/// # use ferroc_base::Mmap;
/// # use ferroc_heap::{Context, Heap};
/// fn send<T: Send>(_: T) {}
/// let arenas = Arenas::new(Mmap);
/// let cx = Context::new(&arenas);
/// send(Heap::new(&cx));
/// ```
pub struct Heap<'c, 'a, B: BaseAlloc> {
    cx: &'c Context<'a, B>,
    _not_send: PhantomData<*mut ()>,
}

impl<'c, 'a, B: BaseAlloc> Heap<'c, 'a, B> {
    /// A heap allocating from `cx`.
    pub const fn new(cx: &'c Context<'a, B>) -> Self {
        Heap {
            cx,
            _not_send: PhantomData,
        }
    }

    /// The context.
    pub fn context(&self) -> &'c Context<'a, B> {
        self.cx
    }

    /// Allocates a block for `layout` (any size, including 0, and any power-of-two alignment).
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.cx.allocate(layout).ok_or(AllocError)
    }

    /// Allocates a zero-filled block.
    pub fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.cx.allocate_zeroed(layout).ok_or(AllocError)
    }

    /// Frees a block allocated with `layout`.
    ///
    /// # Safety
    ///
    /// `ptr` was allocated by a heap over the same `Arenas` and is freed once.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: `ptr` is a live block over the same `Arenas`, freed once (this fn's
        // contract), which is what `Context::free` needs.
        unsafe { self.cx.free(ptr) }
    }

    /// Frees a block without knowing its layout (what C's `free` needs).
    ///
    /// # Safety
    ///
    /// `ptr` was allocated by a heap over the same `Arenas` and is freed once.
    #[inline]
    pub unsafe fn free(&self, ptr: NonNull<u8>) {
        // SAFETY: `ptr` is a live block over the same `Arenas`, freed once (this fn's
        // contract), which is what `Context::free` needs.
        unsafe { self.cx.free(ptr) }
    }

    /// Resizes a block from `old` to `new` (in place when the block's class allows, otherwise
    /// allocate, copy, free). On error the old block is untouched.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block allocated with `old` by a heap over the same `Arenas`.
    pub unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: `ptr` is a live block over the same `Arenas` allocated with `old`, so it
        // holds at least `old.size()` bytes (this fn's contract).
        unsafe { self.cx.reallocate(ptr, old.size(), new) }.ok_or(AllocError)
    }

    /// The usable size of a live block (at least the size asked for).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of a heap over the same `Arenas`.
    pub unsafe fn usable_size(&self, ptr: NonNull<u8>) -> usize {
        // SAFETY: `ptr` is a live block over the same `Arenas` (this fn's contract).
        unsafe { self.cx.usable_size(ptr) }
    }

    /// Collects remote frees and releases free memory; `force` releases everything possible
    /// and purges it to the base at once.
    pub fn collect(&self, force: bool) {
        self.cx.collect(force)
    }

    /// Calls `f(block, usable_size)` for every live block of the context, in address order,
    /// until `f` returns false (then the result is false). Never allocates; huge blocks belong
    /// to no context and are not visited. See [`Context::visit_blocks`].
    pub fn visit_blocks(&self, f: impl FnMut(NonNull<u8>, usize) -> bool) -> bool {
        self.cx.visit_blocks(f)
    }

    /// Whether `ptr` points into a live block of the context (not a freed one, not another
    /// context's, not a huge one); any pointer may be asked about. See [`Context::contains`].
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.cx.contains(ptr)
    }

    /// The context's statistics.
    #[cfg(feature = "stat")]
    pub fn stats(&self) -> crate::Stats {
        self.cx.stats()
    }
}

impl<B: BaseAlloc> fmt::Debug for Heap<'_, '_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heap").field("context", self.cx).finish()
    }
}

/// Implements an `Allocator` trait (stable `allocator_api2` or nightly `core`) for a type with
/// `allocate`, `allocate_zeroed`, `deallocate` and `reallocate` like [`Heap`]'s (an inherent
/// API, or a trait's in scope where the macro expands, as ferroc-global's `GlobalInstance`).
#[macro_export]
#[doc(hidden)]
macro_rules! __impl_allocator {
    ($path:path, $err:path, [$($gen:tt)*], $ty:ty) => {
        // SAFETY: blocks stay valid until deallocated through any heap of the same arenas;
        // `allocate` returns blocks fitting the layout; `grow`/`shrink` keep the contents.
        unsafe impl<$($gen)*> $path for $ty {
            #[inline]
            fn allocate(
                &self,
                layout: ::core::alloc::Layout,
            ) -> ::core::result::Result<::core::ptr::NonNull<[u8]>, $err> {
                let p = (**self).allocate(layout).map_err(|_| $err)?;
                ::core::result::Result::Ok(::core::ptr::NonNull::slice_from_raw_parts(p, layout.size()))
            }
            fn allocate_zeroed(
                &self,
                layout: ::core::alloc::Layout,
            ) -> ::core::result::Result<::core::ptr::NonNull<[u8]>, $err> {
                let p = (**self).allocate_zeroed(layout).map_err(|_| $err)?;
                ::core::result::Result::Ok(::core::ptr::NonNull::slice_from_raw_parts(p, layout.size()))
            }
            #[inline]
            unsafe fn deallocate(&self, ptr: ::core::ptr::NonNull<u8>, layout: ::core::alloc::Layout) {
                // SAFETY: the trait's contract (`ptr` is a live block of ours allocated with
                // `layout`) is `deallocate`'s.
                unsafe { (**self).deallocate(ptr, layout) }
            }
            unsafe fn grow(
                &self,
                ptr: ::core::ptr::NonNull<u8>,
                old: ::core::alloc::Layout,
                new: ::core::alloc::Layout,
            ) -> ::core::result::Result<::core::ptr::NonNull<[u8]>, $err> {
                // SAFETY: the trait's contract (`ptr` is a live block of ours allocated with
                // `old`) is `reallocate`'s.
                let p = unsafe { (**self).reallocate(ptr, old, new) }.map_err(|_| $err)?;
                ::core::result::Result::Ok(::core::ptr::NonNull::slice_from_raw_parts(p, new.size()))
            }
            unsafe fn grow_zeroed(
                &self,
                ptr: ::core::ptr::NonNull<u8>,
                old: ::core::alloc::Layout,
                new: ::core::alloc::Layout,
            ) -> ::core::result::Result<::core::ptr::NonNull<[u8]>, $err> {
                // SAFETY: the trait's contract for `grow_zeroed` is `grow`'s.
                let p = unsafe { <Self as $path>::grow(self, ptr, old, new) }?;
                let tail = p.as_ptr().cast::<u8>().wrapping_add(old.size());
                // SAFETY: `p` holds `new.size() >= old.size()` bytes (`grow_zeroed`'s
                // contract), so the tail past `old.size()` is ours to write.
                unsafe { tail.write_bytes(0, new.size() - old.size()) };
                ::core::result::Result::Ok(p)
            }
            unsafe fn shrink(
                &self,
                ptr: ::core::ptr::NonNull<u8>,
                old: ::core::alloc::Layout,
                new: ::core::alloc::Layout,
            ) -> ::core::result::Result<::core::ptr::NonNull<[u8]>, $err> {
                // SAFETY: the trait's contract for `shrink` (a live block of ours allocated
                // with `old`, `new` no larger) is all `grow` relies on: `reallocate` resizes
                // either way.
                unsafe { <Self as $path>::grow(self, ptr, old, new) }
            }
        }
    };
}

#[cfg(feature = "allocator-api2")]
__impl_allocator!(
    allocator_api2::alloc::Allocator,
    allocator_api2::alloc::AllocError,
    [B: BaseAlloc],
    &Heap<'_, '_, B>
);

#[cfg(all(feature = "nightly", ferroc_nightly))]
__impl_allocator!(
    core::alloc::Allocator,
    core::alloc::AllocError,
    [B: BaseAlloc],
    &Heap<'_, '_, B>
);
