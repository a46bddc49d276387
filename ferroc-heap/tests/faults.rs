//! Fault injection: the base fails its n-th allocate (or commit) for every n along a fixed
//! sequence of allocations of every kind. Each failure must surface as `Err` (never a crash or
//! a bad block), leave every block that succeeded intact, leak nothing (every base chunk is
//! released once the arenas drop), and leave the heap usable: the same requests succeed
//! once the base works again.
mod common;

use core::{alloc::Layout, ptr::NonNull};

use common::{lay, with_failing_heap};
use ferroc_arena::sizes::{MAX_ARENA_SLABS, SLAB_SIZE};
use ferroc_base::{Mmap, testing::Failing};
use ferroc_heap::Heap;

/// Requests of every kind: small, medium, large, huge, slab-aligned and beyond, one larger
/// than the largest arena (straight from the base), and enough small ones to need several
/// slabs.
fn requests() -> Vec<(Layout, bool)> {
    let mut v = Vec::new();
    for i in 0..400 {
        v.push((lay(8 + (i % 50) * 16, 8), false));
    }
    for i in 0..40 {
        v.push((lay(2000 + i * 100, 16), i % 3 == 0));
    }
    for i in 0..40 {
        v.push((lay(100_000 + i * 5000, 8), i % 2 == 0));
    }
    v.push((lay(5 << 20, 8), false));
    v.push((lay(3 << 20, 8), true));
    v.push((lay(100, 2 << 20), false));
    v.push((lay(1 << 20, 64 << 20), true));
    v.push((lay(0, 4096), false));
    v.push((lay(MAX_ARENA_SLABS * SLAB_SIZE + 1, 16), false));
    for i in 0..60 {
        v.push((lay(300_000, 8), i % 5 == 0));
    }
    v
}

/// The first and the last `min(size, 64)` bytes of a block of `size` bytes: their starts and
/// their length.
fn ends(p: NonNull<u8>, size: usize) -> ([*mut u8; 2], usize) {
    let n = size.min(64);
    ([p.as_ptr(), p.as_ptr().wrapping_add(size - n)], n)
}

/// Writes a pattern at both ends of a live block of `size` bytes (the whole of small ones).
fn mark(p: NonNull<u8>, size: usize, tag: u8) {
    let (starts, n) = ends(p, size);
    for start in starts {
        // SAFETY: `n` bytes at either end of the caller's live block of `size >= n` bytes.
        unsafe { start.write_bytes(tag, n) };
    }
}

/// Whether both ends of a live block of `size` bytes hold the pattern [`mark`] wrote.
fn marked(p: NonNull<u8>, size: usize, tag: u8) -> bool {
    let (starts, n) = ends(p, size);
    starts.iter().all(|&start| {
        // SAFETY: `n` bytes at either end of the caller's live block of `size >= n` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(start, n) };
        bytes.iter().all(|&b| b == tag)
    })
}

/// Runs the requests, then a reallocate growth chain; returns the live blocks and the number
/// of requests that failed.
fn run(heap: &Heap<'_, '_, &Failing<Mmap>>) -> (Vec<(NonNull<u8>, Layout, u8)>, usize) {
    let mut live = Vec::new();
    let mut failed = 0;
    for (i, (l, zeroed)) in requests().into_iter().enumerate() {
        let r = if zeroed {
            heap.allocate_zeroed(l)
        } else {
            heap.allocate(l)
        };
        match r {
            Ok(p) => {
                assert_eq!(p.as_ptr() as usize % l.align(), 0);
                if zeroed && l.size() > 0 {
                    let last = p.as_ptr().wrapping_add(l.size() - 1);
                    // SAFETY: the last byte of the live block of `l.size()` bytes just allocated.
                    assert_eq!(unsafe { *last }, 0);
                }
                let tag = (i % 251) as u8 + 1;
                if l.size() > 0 {
                    mark(p, l.size(), tag);
                }
                live.push((p, l, tag));
            }
            Err(_) => failed += 1,
        }
    }
    // Growth by reallocate from 1 byte to 8 MiB: a failed step leaves the old block intact.
    let mut l = lay(1, 8);
    let mut p = heap.allocate(l).ok();
    if let Some(b) = p {
        mark(b, 1, 0xEE);
    } else {
        failed += 1;
    }
    while let Some(b) = p
        && l.size() < 8 << 20
    {
        let next = lay(l.size() * 2, 8);
        // SAFETY: a live block allocated with `l`.
        match unsafe { heap.reallocate(b, l, next) } {
            Ok(q) => {
                assert!(marked(q, l.size().min(64), 0xEE));
                mark(q, next.size(), 0xEE);
                p = Some(q);
                l = next;
            }
            Err(_) => {
                assert!(
                    marked(b, l.size(), 0xEE),
                    "a failed reallocate kept the block"
                );
                failed += 1;
                break;
            }
        }
    }
    if let Some(b) = p {
        live.push((b, l, 0xEE));
    }
    (live, failed)
}

/// Frees `live` after checking its patterns.
fn check_and_free(heap: &Heap<'_, '_, &Failing<Mmap>>, live: Vec<(NonNull<u8>, Layout, u8)>) {
    for (p, l, tag) in live {
        if l.size() > 0 {
            assert!(marked(p, l.size(), tag), "{l:?} changed");
        }
        // SAFETY: a live block allocated with `l` (this fn's callers hand over what `run`
        // returned), freed once.
        unsafe { heap.deallocate(p, l) };
    }
}

/// One run with a failure injected by `inject`; returns how many requests failed. Leaks
/// nothing (`with_failing_heap` checks).
fn with_fault(inject: impl Fn(&Failing<Mmap>)) -> usize {
    let (failed, _) = with_failing_heap(|failing, _, heap| {
        inject(failing);
        let (live, failed) = run(heap);
        // The base works again: the heap serves everything.
        failing.fail_always(false);
        failing.fail_allocate_at(0);
        failing.fail_commit_at(0);
        let (again, f) = run(heap);
        assert_eq!(f, 0, "the heap is usable after the failure");
        check_and_free(heap, again);
        check_and_free(heap, live);
        heap.collect(true);
        failed
    });
    failed
}

#[test]
fn every_base_allocation_failing_in_turn() {
    // How many base allocations the sequence makes when nothing fails.
    let ((), clean) = with_failing_heap(|_, _, heap| {
        let (live, failed) = run(heap);
        assert_eq!(failed, 0);
        check_and_free(heap, live);
    });
    let calls = clean.allocations();
    // At least the first arena and the run larger than any arena.
    assert!(calls >= 2, "{calls} base allocations");
    let mut visible = 0;
    for n in 1..=calls + 2 {
        visible += usize::from(with_fault(|f| f.fail_allocate_at(n)) > 0);
    }
    // A failed arena growth retries with a smaller arena, but a failed huge run cannot hide.
    assert!(
        visible >= 1,
        "no injected allocation failure reached the caller"
    );
    println!("{calls} base allocations failed in turn, {visible} visible to the caller");
}

#[test]
fn every_commit_failing_in_turn() {
    // Every commit failure reaches the caller, so the run past the last commit has none.
    let mut n = 1;
    while with_fault(|f| f.fail_commit_at(n)) > 0 {
        n += 1;
        assert!(n < 1000, "commit failures never stop");
    }
    assert!(n > 4, "only {} commits in the sequence", n - 1);
    println!("{} commits failed in turn", n - 1);
}

#[test]
fn base_failing_for_a_while() {
    // Everything fails from the start: every request that needs memory is an error.
    let failed = with_fault(|f| f.fail_always(true));
    assert_eq!(failed, requests().len() + 1);
}
