//! Unit tests of `visit_blocks` and `contains` on one context: the live set after local and
//! remote frees (collected or not), early stops, a visitor that frees and collects, and the
//! pointers `contains` must refuse.

use core::{alloc::Layout, ptr::NonNull};
use std::{collections::BTreeMap, thread, vec::Vec};

use ferroc_arena::{Arenas, sizes::SHARD_SIZE};
use ferroc_base::Mmap;

use super::MAX_BLOCKS;
use crate::{Context, class::LARGE_MAX};

#[path = "../../tests/common/visited.rs"]
mod visited;

/// What `visit_blocks` reports: block address to usable size, with no block twice.
fn visited(cx: &Context<'_, Mmap>) -> BTreeMap<usize, usize> {
    visited::visited(|f| cx.visit_blocks(f))
}

/// The live set as the test tracks it, with the context's usable sizes.
fn expected(cx: &Context<'_, Mmap>, live: &[NonNull<u8>]) -> BTreeMap<usize, usize> {
    live.iter()
        .map(|&p| {
            // SAFETY: a live block of `cx`.
            (p.as_ptr() as usize, unsafe { cx.usable_size(p) })
        })
        .collect()
}

fn alloc(cx: &Context<'_, Mmap>, size: usize) -> NonNull<u8> {
    cx.allocate(Layout::from_size_align(size, 8).unwrap())
        .unwrap()
}

#[test]
fn bitmap_bound_is_the_smallest_class() {
    assert_eq!(MAX_BLOCKS, SHARD_SIZE / 8);
}

#[test]
fn empty_context_visits_nothing() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    assert!(visited(&cx).is_empty());
    assert!(!cx.contains(core::ptr::null()));
}

#[test]
fn live_set_after_local_and_remote_frees() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let sizes = [1, 8, 24, 100, 1024, 3000, 9000, 70_000, LARGE_MAX];
    let mut live: Vec<NonNull<u8>> = (0..400)
        .map(|i| alloc(&cx, sizes[i % sizes.len()]))
        .collect();
    assert_eq!(visited(&cx), expected(&cx, &live));

    // Local frees: every third block.
    let mut k = 0;
    live.retain(|&p| {
        k += 1;
        if k % 3 == 0 {
            // SAFETY: a live block of `cx`, freed once.
            unsafe { cx.free(p) };
            false
        } else {
            true
        }
    });
    assert_eq!(visited(&cx), expected(&cx, &live));

    // Remote frees, left uncollected on `thread_free`.
    let remote: Vec<usize> = live
        .iter()
        .step_by(4)
        .map(|p| p.as_ptr() as usize)
        .collect();
    live.retain(|p| !remote.contains(&(p.as_ptr() as usize)));
    thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(&arenas);
            for &a in &remote {
                // SAFETY: a live block of a context over the same arenas, freed once.
                unsafe { other.free(NonNull::new(a as *mut u8).unwrap()) };
            }
        });
    });
    assert_eq!(visited(&cx), expected(&cx, &live));
    for &a in &remote {
        assert!(
            !cx.contains(a as *const u8),
            "a remotely freed block is not live"
        );
    }
    // Collected: the same set.
    cx.collect(false);
    assert_eq!(visited(&cx), expected(&cx, &live));
    // Reused: new blocks show up.
    live.extend((0..50).map(|i| alloc(&cx, sizes[i % sizes.len()])));
    assert_eq!(visited(&cx), expected(&cx, &live));

    for p in live {
        // SAFETY: a live block of `cx`, freed once.
        unsafe { cx.free(p) };
    }
    assert!(visited(&cx).is_empty());
}

#[test]
fn early_stop() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let live: Vec<_> = (0..10).map(|_| alloc(&cx, 32)).collect();
    let mut n = 0;
    assert!(!cx.visit_blocks(|_, _| {
        n += 1;
        n < 3
    }));
    assert_eq!(n, 3);
    for p in live {
        // SAFETY: a live block of `cx`, freed once.
        unsafe { cx.free(p) };
    }
}

#[test]
fn visitor_may_free_and_collect() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    // Blocks over several slabs, so that freeing them releases shards and slabs mid-walk.
    let live: Vec<_> = (0..40).map(|_| alloc(&cx, LARGE_MAX)).collect();
    let small: Vec<_> = (0..1000).map(|_| alloc(&cx, 48)).collect();
    let mut n = 0;
    cx.visit_blocks(|p, _| {
        n += 1;
        // SAFETY: a live block of `cx` (reported live, and each block is reported once),
        // freed once.
        unsafe { cx.free(p) };
        cx.collect(true);
        true
    });
    assert_eq!(n, live.len() + small.len());
    assert!(visited(&cx).is_empty());
    assert!(!cx.owns_slabs());
}

#[test]
fn contains_only_live_blocks_of_this_context() {
    static STATIC: u64 = 7;
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let other = Context::new(&arenas);
    let on_stack = 0u64;

    let p = alloc(&cx, 40);
    let q = alloc(&cx, 40);
    let large = alloc(&cx, 200_000);
    let theirs = alloc(&other, 40);
    let huge = alloc(&cx, LARGE_MAX + 1);

    assert!(cx.contains(p.as_ptr()));
    // SAFETY: inside the 40 bytes (48 usable) of `p`.
    assert!(cx.contains(unsafe { p.as_ptr().add(47) }));
    assert!(cx.contains(large.as_ptr()));
    // SAFETY: inside the large block.
    assert!(cx.contains(unsafe { large.as_ptr().add(150_000) }));
    assert!(!cx.contains(theirs.as_ptr()), "another context's block");
    assert!(other.contains(theirs.as_ptr()));
    assert!(
        !cx.contains(huge.as_ptr()),
        "huge blocks belong to no context"
    );
    assert!(!cx.contains(core::ptr::from_ref(&on_stack).cast()));
    assert!(!cx.contains(core::ptr::from_ref(&STATIC).cast()));
    assert!(!cx.contains(core::ptr::null()));
    assert!(!cx.contains(usize::MAX as *const u8));
    // The slab header is no block.
    let header = (p.as_ptr() as usize) & !(ferroc_arena::sizes::SLAB_SIZE - 1);
    assert!(!cx.contains(header as *const u8));

    // SAFETY: live blocks of `cx`, each freed once.
    unsafe {
        cx.free(p);
    }
    assert!(!cx.contains(p.as_ptr()), "a freed block");
    assert!(cx.contains(q.as_ptr()));
    for b in [q, large, huge] {
        // SAFETY: live blocks of `cx`, each freed once.
        unsafe { cx.free(b) };
    }
    // SAFETY: `other`'s live block, freed once.
    unsafe { other.free(theirs) };
    assert!(!cx.contains(q.as_ptr()));
}
