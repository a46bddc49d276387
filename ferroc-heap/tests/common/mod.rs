//! Helpers the integration tests share (each test crate uses some of them).
#![allow(dead_code)]

pub mod visited;

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::{Arenas, BaseAlloc};
use ferroc_base::{Mmap, testing::Failing};
use ferroc_heap::{Context, Heap};

pub fn lay(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// Slabs in use, abandoned slabs and runs straight from the base.
pub fn in_use<B: BaseAlloc>(arenas: &Arenas<B>) -> (usize, usize, usize) {
    let s = arenas.stats();
    (s.slabs_in_use, s.abandoned, s.direct_runs)
}

/// Runs `f` with a heap over fresh `Mmap` arenas, then checks that a forced collect gives
/// every slab and run back.
pub fn with_heap(f: impl FnOnce(&Arenas<Mmap>, &Heap<'_, '_, Mmap>)) {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    f(&arenas, &heap);
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

/// Runs `f` with a heap over arenas over a [`Failing`] base; once `f` returns, checks that
/// dropping the context left no slab or run in use and dropping the arenas gave every base
/// chunk back. Returns what `f` did and the base (for its counters).
pub fn with_failing_heap<R>(
    f: impl FnOnce(&Failing<Mmap>, &Arenas<&Failing<Mmap>>, &Heap<'_, '_, &Failing<Mmap>>) -> R,
) -> (R, Failing<Mmap>) {
    let failing = Failing::new(Mmap);
    let r = {
        let arenas = Arenas::new(&failing);
        let cx = Context::new(&arenas);
        let r = f(&failing, &arenas, &Heap::new(&cx));
        drop(cx);
        let s = arenas.stats();
        assert_eq!((s.slabs_in_use, s.direct_runs), (0, 0), "{s:?}");
        r
    };
    assert_eq!(failing.live_chunks(), 0, "base chunks leaked");
    (r, failing)
}

/// Frees the blocks at `blocks` from a context of its own on another thread (remote frees,
/// into full shards too).
///
/// # Safety
///
/// Each is a live block of a context over `arenas`, freed once.
pub unsafe fn free_elsewhere<B: BaseAlloc>(
    arenas: &Arenas<B>,
    blocks: impl IntoIterator<Item = usize> + Send,
) where
    Arenas<B>: Sync,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(arenas);
            for p in blocks {
                // SAFETY: a live block of a context over `arenas`, freed once (this fn's
                // contract).
                unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
            }
        });
    });
}

/// Frees `blocks` through `heap`.
///
/// # Safety
///
/// Each is a live block of a context over the heap's arenas, freed once.
pub unsafe fn free_all<B: BaseAlloc>(
    heap: &Heap<'_, '_, B>,
    blocks: impl IntoIterator<Item = NonNull<u8>>,
) {
    for p in blocks {
        // SAFETY: a live block of a context over the heap's arenas, freed once (this fn's
        // contract).
        unsafe { heap.free(p) };
    }
}
