//! Introspection from C (the "Introspection" section of `include/ferroc.h`): the calling
//! thread's live blocks, and what a pointer is.
//!
//! - [`fe_heap_visit_blocks`]: every live block of the calling thread's heap with its usable
//!   size, without allocating (`ferroc_heap::Context::visit_blocks`); huge blocks (over
//!   512 KiB with the default geometry) belong to no heap and are not visited.
//! - [`fe_heap_contains`]: whether a pointer points into a live block of that heap.
//! - [`fe_is_ferroc_pointer`]: whether a pointer points into memory Ferroc got from the OS
//!   (the slab map, one load).
//!
//! All three take any pointer and never read through one that is not Ferroc's.

use core::ffi::c_void;

use ferroc_global::GlobalInstance;

use crate::{GLOBAL, is_ferroc_pointer};

/// The C visitor: `bool visitor(void *block, size_t size, void *arg)`, false to stop.
pub type FeBlockVisitor = unsafe extern "C" fn(*mut c_void, usize, *mut c_void) -> bool;

/// Calls `visitor(block, usable_size, arg)` for every live block of the calling thread's heap,
/// in address order, until it returns false. Returns true if every block was visited (also
/// for a null visitor, or a thread that has not allocated), false if the visitor stopped the
/// walk. Never allocates; the visitor may allocate and free (blocks allocated or freed during
/// the walk may or may not be reported).
///
/// # Safety
///
/// `visitor` is null or a function of the visitor's type that does not unwind; it is called
/// with `arg` as its last argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_heap_visit_blocks(
    visitor: Option<FeBlockVisitor>,
    arg: *mut c_void,
) -> bool {
    let Some(visitor) = visitor else {
        return true;
    };
    GLOBAL.visit_blocks(|block, size| {
        // SAFETY: a C function of the visitor's type that does not unwind (this fn's
        // contract), given a live block of ours, its size and the caller's `arg`.
        unsafe { visitor(block.as_ptr().cast(), size, arg) }
    })
}

/// Whether `p` points into a live block of the calling thread's heap (its start or any byte
/// up to its usable size): false for a freed block, another thread's block, a huge block,
/// and any pointer that is not Ferroc's (never read through).
#[unsafe(no_mangle)]
pub extern "C" fn fe_heap_contains(p: *const c_void) -> bool {
    GLOBAL.contains(p.cast())
}

/// Whether `p` points into memory Ferroc got from the OS (any slab of any thread, live or
/// free, huge blocks included); false for null, the stack, statics and other allocators'
/// memory.
#[unsafe(no_mangle)]
pub extern "C" fn fe_is_ferroc_pointer(p: *const c_void) -> bool {
    // `is_ferroc_pointer` looks up the slab of `ptr - 1` (where a block's header lies); given
    // `p + 1` it looks up `p`'s own slab, which is what "points into Ferroc's memory" asks.
    is_ferroc_pointer(p.cast::<u8>().wrapping_add(1))
}
