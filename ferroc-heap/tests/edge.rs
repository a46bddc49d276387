//! Edge cases of `Heap`: extreme alignments, size 0, huge blocks across threads, runs of exactly
//! 64 slabs, abandoned slabs with live blocks, teardown, in-place reallocation,
//! `allocator_api2` collections, statistics and memory going back after a peak.
use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::{
    Arenas, BaseAlloc,
    sizes::{MAX_ARENA_SLABS, SLAB_SIZE},
};
use ferroc_base::{Mmap, testing::Failing};
use ferroc_heap::{Context, Heap};

fn lay(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// The slab a block lies in (for a block that is not aligned to a slab or more).
fn slab_of(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize & !(SLAB_SIZE - 1)
}

fn in_use<B: BaseAlloc>(arenas: &Arenas<B>) -> (usize, usize, usize) {
    let s = arenas.stats();
    (s.slabs_in_use, s.abandoned, s.direct_runs)
}

/// Allocates, checks, touches the first and last byte, and returns the block.
fn touch<B: BaseAlloc>(heap: &Heap<'_, '_, B>, l: Layout) -> NonNull<u8> {
    let p = heap.allocate(l).unwrap_or_else(|_| panic!("{l:?} failed"));
    assert_eq!(
        p.as_ptr() as usize % l.align(),
        0,
        "{l:?} misaligned: {p:?}"
    );
    // SAFETY: a live block of at least `l.size()` bytes.
    unsafe {
        assert!(heap.usable_size(p) >= l.size());
        if l.size() > 0 {
            p.as_ptr().write(0xA5);
            p.as_ptr().add(l.size() - 1).write(0x5A);
        }
    }
    p
}

#[test]
fn alignments_of_2_mib_64_mib_and_1_gib() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    for align in [2 << 20, 64 << 20, 1 << 30] {
        for size in [0, 1, 100, 3 << 20, 9 << 20] {
            let a = touch(&heap, lay(size, align));
            let b = touch(&heap, lay(size, align));
            assert_ne!(a, b);
            // SAFETY: live blocks of this heap, each freed once, once through each entry.
            unsafe {
                heap.deallocate(a, lay(size, align));
                heap.free(b);
            }
        }
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn size_zero_with_alignment_4096() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let l = lay(0, 4096);
    let mut blocks: Vec<NonNull<u8>> = (0..200).map(|_| touch(&heap, l)).collect();
    let mut sorted: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), blocks.len(), "distinct blocks");
    for (i, p) in blocks.drain(..).enumerate() {
        // SAFETY: live blocks of this heap, freed once each, half by each entry point.
        unsafe {
            if i % 2 == 0 {
                heap.deallocate(p, l);
            } else {
                heap.free(p);
            }
        }
    }
    // And with the alignment beyond what any size class has.
    for align in [1 << 17, 1 << 20] {
        let p = touch(&heap, lay(0, align));
        let q = touch(&heap, lay(0, align));
        // SAFETY: live blocks, freed once.
        unsafe {
            heap.deallocate(p, lay(0, align));
            heap.free(q);
        }
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn huge_blocks_freed_by_another_thread() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    // Arena-served, slab-aligned, and one larger than the largest arena (straight from the
    // base: address space only, the base reserves without committing swap).
    let layouts = [
        lay(SLAB_SIZE + SLAB_SIZE / 4, 8),
        lay(10 * SLAB_SIZE, 2 * SLAB_SIZE),
        lay(MAX_ARENA_SLABS * SLAB_SIZE + 1, 16),
    ];
    let blocks: Vec<(usize, Layout)> = layouts
        .iter()
        .map(|&l| (touch(&heap, l).as_ptr() as usize, l))
        .collect();
    assert_eq!(arenas.stats().direct_runs, 1);
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(&arenas);
            let h = Heap::new(&other);
            for &(p, l) in &blocks {
                let p = NonNull::new(p as *mut u8).unwrap();
                // SAFETY: live blocks handed over, freed once.
                unsafe {
                    assert_eq!(*p.as_ptr().add(l.size() - 1), 0x5A);
                    h.deallocate(p, l);
                }
            }
        });
    });
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn runs_of_exactly_64_slabs() {
    let failing = Failing::new(Mmap);
    {
        let arenas = Arenas::new(&failing);
        let cx = Context::new(&arenas);
        let heap = Heap::new(&cx);
        // A block just over 63 slabs needs a run of 64; its usable size is the whole run past
        // the header, and a block of exactly that size still fits 64 slabs.
        let probe = touch(&heap, lay(63 * SLAB_SIZE + 1, 16));
        let usable = {
            // SAFETY: a live block.
            let u = unsafe { heap.usable_size(probe) };
            // SAFETY: freed once.
            unsafe { heap.free(probe) };
            u
        };
        assert!(usable > 63 * SLAB_SIZE && usable < 64 * SLAB_SIZE);
        // Once alone, then twice at once, next to a slab in use. (A run larger than the next
        // arena to be made comes straight from the base: count its slabs too.)
        let held = || {
            let s = arenas.stats();
            s.slabs_in_use + (s.direct_bytes >> ferroc_arena::sizes::SLAB_SHIFT)
        };
        let small = touch(&heap, lay(64, 8));
        for n in 1..=2 {
            let mut runs = Vec::new();
            for _ in 0..n {
                let p = touch(&heap, lay(usable, 16));
                runs.push(p);
            }
            assert_eq!(held(), 1 + 64 * n);
            for p in runs {
                // SAFETY: live blocks, freed once.
                unsafe { heap.free(p) };
            }
            assert_eq!(held(), 1);
        }
        // One byte more takes 65 slabs.
        let p = touch(&heap, lay(usable + 1, 16));
        assert_eq!(held(), 1 + 65);
        // SAFETY: live blocks, freed once.
        unsafe {
            heap.free(p);
            heap.free(small);
        }
        heap.collect(true);
        drop(cx);
        assert_eq!(in_use(&arenas), (0, 0, 0));
    }
    assert_eq!(failing.live_chunks(), 0);
}

/// Allocates `n` blocks of `size` in a context of its own, on a thread of its own that exits,
/// so the slab is abandoned with the blocks live.
fn abandoned_blocks(arenas: &Arenas<Mmap>, n: usize, size: usize) -> Vec<usize> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let cx = Context::new(arenas);
            let heap = Heap::new(&cx);
            (0..n)
                .map(|i| {
                    let p = touch(&heap, lay(size, 8));
                    // SAFETY: a live block of `size >= 8` bytes.
                    unsafe { p.as_ptr().cast::<u64>().write_unaligned(i as u64) };
                    p.as_ptr() as usize
                })
                .collect()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn abandoned_slabs_stay_valid_and_are_reclaimed() {
    let arenas = Arenas::new(Mmap);
    let blocks = abandoned_blocks(&arenas, 2000, 64);
    assert!(arenas.abandoned_count() >= 1);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    // Half of the blocks are freed by yet another thread while the slab is abandoned.
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(&arenas);
            for (i, &p) in blocks.iter().enumerate().step_by(2) {
                let p = NonNull::new(p as *mut u8).unwrap();
                // SAFETY: live blocks of the dead context, freed once.
                unsafe {
                    assert_eq!(p.as_ptr().cast::<u64>().read_unaligned(), i as u64);
                    other.free(p);
                }
            }
        });
    });
    // A new context of the same size class takes the abandoned slab over instead of a new one.
    let slabs_before = arenas.stats().slabs_in_use;
    let fresh = touch(&heap, lay(64, 8));
    assert!(
        blocks
            .iter()
            .any(|&p| p & !(SLAB_SIZE - 1) == slab_of(fresh)),
        "the abandoned slab was reclaimed"
    );
    assert_eq!(arenas.stats().slabs_in_use, slabs_before);
    // The rest is freed by its new owner.
    for (i, &p) in blocks.iter().enumerate().skip(1).step_by(2) {
        let p = NonNull::new(p as *mut u8).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(p.as_ptr().cast::<u64>().read_unaligned(), i as u64);
            heap.free(p);
        }
    }
    // SAFETY: freed once.
    unsafe { heap.free(fresh) };
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn forced_collect_with_an_abandoned_live_block_returns() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    // One live block in an abandoned slab (small) and one in a full shard (a shard of 4 KiB
    // blocks filled completely before its owner exits).
    let live = abandoned_blocks(&arenas, 1, 48);
    let full = abandoned_blocks(&arenas, 64, 4096);
    assert!(arenas.abandoned_count() >= 1);
    heap.collect(true);
    heap.collect(true);
    assert_eq!(
        arenas.abandoned_count(),
        0,
        "reclaimed by the forced collect"
    );
    // Meanwhile another thread frees the full shard's blocks, racing a third forced collect.
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(&arenas);
            for &p in &full {
                // SAFETY: live blocks, freed once.
                unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
            }
            other.collect(true);
        });
        heap.collect(true);
    });
    // The block stayed valid; its slab is ours now, and freeing it releases everything.
    let p = NonNull::new(live[0] as *mut u8).unwrap();
    // SAFETY: a live block, freed once.
    unsafe {
        assert_eq!(p.as_ptr().cast::<u64>().read_unaligned(), 0);
        heap.free(p);
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn teardown_with_nothing_live_returns_every_byte() {
    let failing = Failing::new(Mmap);
    {
        let arenas = Arenas::new(&failing);
        {
            // A context takes no memory until it allocates, not even to collect.
            let cx = Context::new(&arenas);
            cx.collect(false);
            cx.collect(true);
            drop(cx);
            assert_eq!(failing.allocations(), 0);
        }
        {
            let cx = Context::new(&arenas);
            let heap = Heap::new(&cx);
            let mut v: Vec<(NonNull<u8>, Layout)> = Vec::new();
            for i in 0..3000usize {
                let l = lay([8, 100, 1000, 5000, 70_000, 600_000, 5 << 20][i % 7], 8);
                v.push((touch(&heap, l), l));
            }
            for (p, l) in v {
                // SAFETY: live blocks, freed once.
                unsafe { heap.deallocate(p, l) };
            }
            // No collect: dropping the context must give everything back.
            drop(cx);
            assert_eq!(in_use(&arenas), (0, 0, 0));
            assert!(failing.live_chunks() > 0, "the arenas keep their chunks");
        }
        {
            // Blocks freed by another thread before the owner's context drops, uncollected.
            let cx = Context::new(&arenas);
            let heap = Heap::new(&cx);
            let v: Vec<usize> = (0..3000)
                .map(|i| touch(&heap, lay(16 + i % 2000, 16)).as_ptr() as usize)
                .collect();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let other = Context::new(&arenas);
                    for p in v {
                        // SAFETY: live blocks, freed once.
                        unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
                    }
                });
            });
            drop(cx);
            assert_eq!(in_use(&arenas), (0, 0, 0));
        }
    }
    assert_eq!(
        failing.live_chunks(),
        0,
        "every chunk went back to the base"
    );
}

#[test]
fn reallocate_in_place_within_the_class() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    for (size, align) in [(100, 8), (1000, 16), (5000, 64), (100_000, 8), (6 << 20, 8)] {
        let p = touch(&heap, lay(size, align));
        // SAFETY: a live block; every reallocate below keeps it live (same pointer).
        unsafe {
            let usable = heap.usable_size(p);
            let grown = heap
                .reallocate(p, lay(size, align), lay(usable, align))
                .unwrap();
            assert_eq!(grown, p, "grow to the usable size of {size}");
            assert_eq!(*p.as_ptr(), 0xA5);
            let shrunk = heap
                .reallocate(p, lay(usable, align), lay(size, align))
                .unwrap();
            assert_eq!(shrunk, p, "back to {size}");
            let moved = heap
                .reallocate(p, lay(size, align), lay(usable + 1, align))
                .unwrap();
            // (A huge block may grow in place over the free slabs after it: see below.)
            if size <= ferroc_heap::class::LARGE_MAX {
                assert_ne!(moved, p, "past the usable size it moves");
            }
            assert_eq!(*moved.as_ptr(), 0xA5);
            heap.deallocate(moved, lay(usable + 1, align));
        }
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

/// Writes a pattern into one word of every 4 KiB of `[p, p + len)`.
///
/// # Safety
///
/// `[p, p + len)` is a live block's.
unsafe fn stamp(p: NonNull<u8>, len: usize, seed: usize) {
    for off in (0..len).step_by(4096) {
        // SAFETY: the caller's contract.
        unsafe {
            p.as_ptr()
                .add(off)
                .cast::<usize>()
                .write_unaligned(off ^ seed)
        };
    }
}

/// Checks the pattern [`stamp`] wrote over `[p, p + len)`.
///
/// # Safety
///
/// As for [`stamp`].
unsafe fn check_stamp(p: NonNull<u8>, len: usize, seed: usize) {
    for off in (0..len).step_by(4096) {
        // SAFETY: the caller's contract.
        let v = unsafe { p.as_ptr().add(off).cast::<usize>().read_unaligned() };
        assert_eq!(v, off ^ seed, "offset {off}");
    }
}

/// A huge block that stays huge grows in place over the free slabs after it, moves its pages
/// (no copy, nothing left to purge) when a neighbour is in the way, and shrinks in place
/// giving its tail back; contents survive each step.
#[test]
fn huge_blocks_resize_in_place_or_by_moving_pages() {
    const MIB: usize = 1 << 20;
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    // Slabs of a huge block's run: the block and the header before it (under a slab).
    let slabs = |bytes: usize| (bytes + 1).div_ceil(SLAB_SIZE);
    let mut size = 6 * MIB;
    let p = touch(&heap, lay(size, 8));
    // SAFETY: `p` is live with `size` bytes throughout; each reallocate hands it on.
    unsafe {
        stamp(p, size, 1);
        let before = arenas.stats().slabs_in_use;
        // Grows over the free slabs after it: same block.
        let q = heap.reallocate(p, lay(size, 8), lay(12 * MIB, 8)).unwrap();
        assert_eq!(q, p, "grown in place");
        assert!(heap.usable_size(q) >= 12 * MIB);
        check_stamp(q, size, 1);
        assert_eq!(
            arenas.stats().slabs_in_use,
            before + slabs(12 * MIB) - slabs(6 * MIB)
        );
        size = 12 * MIB;
        stamp(q, size, 2);
        // A neighbour right after it: growing further moves it.
        let next = q.as_ptr() as usize + heap.usable_size(q);
        let blocker = touch(&heap, lay(MIB, 8));
        assert_eq!(slab_of(blocker), next, "the next free slab");
        let r = heap.reallocate(q, lay(size, 8), lay(30 * MIB, 8)).unwrap();
        assert_ne!(r, q);
        check_stamp(r, size, 2);
        if cfg!(target_os = "linux") {
            // Moved by remapping: the old slabs read zero and are not waiting to be purged,
            // which a copy would have left them.
            assert_eq!(arenas.stats().pending_purge, 0, "pages moved, not copied");
        }
        size = 30 * MIB;
        stamp(r, size, 3);
        // Shrinks in place, giving the tail back.
        let used = arenas.stats().slabs_in_use;
        let s = heap.reallocate(r, lay(size, 8), lay(5 * MIB, 8)).unwrap();
        assert_eq!(s, r, "shrunk in place");
        assert!(heap.usable_size(s) >= 5 * MIB && heap.usable_size(s) < 8 * MIB);
        assert_eq!(
            arenas.stats().slabs_in_use,
            used - slabs(30 * MIB) + slabs(5 * MIB)
        );
        check_stamp(s, 5 * MIB, 3);
        // Down to a class size: a copy into a shard.
        let t = heap
            .reallocate(s, lay(5 * MIB, 8), lay(100_000, 8))
            .unwrap();
        check_stamp(t, 100_000, 3);
        heap.deallocate(t, lay(100_000, 8));
        heap.deallocate(blocker, lay(MIB, 8));
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn allocator_api2_collections() {
    use allocator_api2::{boxed::Box, vec::Vec};
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    {
        let mut v = Vec::new_in(&heap);
        for i in 0..300_000u64 {
            v.push(i);
        }
        assert_eq!(v.iter().sum::<u64>(), 299_999 * 300_000 / 2);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v.capacity(), 10);
        assert_eq!(v[9], 9);
        let b = Box::new_in([7u8; 10_000], &heap);
        assert!(b.iter().all(|&x| x == 7));
        let mut z: Vec<u8, _> = Vec::with_capacity_in(4 << 20, &heap);
        z.resize(4 << 20, 1);
        assert_eq!(z.iter().map(|&x| x as usize).sum::<usize>(), 4 << 20);
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

/// Committed memory after a peak: back near the live size once the peak is freed.
#[test]
fn memory_goes_back_after_a_peak() {
    let arenas = Arenas::new(Mmap);
    // Decommit released slabs at once, so the figure needs no waiting.
    arenas.set_purge_delay(0);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let live: Vec<NonNull<u8>> = (0..1000).map(|_| touch(&heap, lay(256, 8))).collect();
    let base = arenas.stats().committed;
    let sizes = [32, 256, 3000, 40_000];
    let peak: Vec<(NonNull<u8>, usize)> = (0..40_000)
        .map(|i| {
            let s = sizes[i % sizes.len()];
            (touch(&heap, lay(s, 8)), s)
        })
        .collect();
    let high = arenas.stats().committed;
    assert!(high >= base + (256 << 20), "peak committed {high}");
    // Half freed by the owner, half by another thread (remote frees into full shards).
    let (mine, theirs): (Vec<_>, Vec<_>) =
        peak.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, (p, s)) in mine {
        // SAFETY: live blocks, freed once.
        unsafe { heap.deallocate(p, lay(s, 8)) };
    }
    let theirs: Vec<usize> = theirs
        .into_iter()
        .map(|(_, (p, _))| p.as_ptr() as usize)
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(&arenas);
            for p in theirs {
                // SAFETY: live blocks, freed once.
                unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
            }
        });
    });
    // An ordinary collect takes the remote frees and releases every emptied shard but the one
    // kept per class: at most one slab per size class of the peak stays.
    heap.collect(false);
    let after = arenas.stats().committed;
    assert!(
        after <= base + sizes.len() * SLAB_SIZE,
        "committed {after} after the peak (live {base}, peak {high})"
    );
    // A forced one gives everything but the live set's slab back.
    heap.collect(true);
    assert_eq!(arenas.stats().committed, base);
    for p in live {
        // SAFETY: live blocks, freed once.
        unsafe { heap.free(p) };
    }
    heap.collect(true);
    assert_eq!(arenas.stats().committed, 0);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

/// The same with the default purge delay: an explicit forced collect purges at once.
#[test]
fn memory_goes_back_with_the_default_purge_delay() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let peak: Vec<NonNull<u8>> = (0..20_000).map(|_| touch(&heap, lay(5000, 8))).collect();
    assert!(arenas.stats().committed >= 100 << 20);
    for p in peak {
        // SAFETY: live blocks, freed once.
        unsafe { heap.free(p) };
    }
    heap.collect(true);
    let s = arenas.stats();
    assert_eq!(
        (s.committed, s.slabs_in_use, s.pending_purge),
        (0, 0, 0),
        "{s:?}"
    );
}

#[cfg(feature = "stat")]
#[test]
fn stat_counters_add_up() {
    use ferroc_heap::Kind;
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let layouts = [
        (lay(24, 8), Kind::Small),
        (lay(1024, 8), Kind::Small),
        (lay(3000, 8), Kind::Medium),
        (lay(100_000, 8), Kind::Large),
        (lay(5 << 20, 8), Kind::Huge),
        (lay(0, 1 << 20), Kind::Huge),
    ];
    let mut blocks = Vec::new();
    let mut bytes = [0u64; 4];
    let mut count = [0u64; 4];
    for round in 0..10 {
        for &(l, kind) in &layouts {
            let p = touch(&heap, l);
            // SAFETY: a live block.
            bytes[kind as usize] += unsafe { heap.usable_size(p) } as u64;
            count[kind as usize] += 1;
            blocks.push((p, l, round));
        }
    }
    let s = heap.stats();
    for k in Kind::ALL {
        assert_eq!(
            s.allocated[k as usize].blocks,
            count[k as usize],
            "{}",
            k.name()
        );
        assert_eq!(
            s.allocated[k as usize].bytes,
            bytes[k as usize],
            "{}",
            k.name()
        );
    }
    assert_eq!(s.live_blocks(), 60);
    assert_eq!(s.live_bytes(), bytes.iter().sum::<u64>() as i64);
    assert!(s.slabs >= 1 && s.peak_slabs >= s.slabs);
    assert!(s.reserved >= s.committed && s.committed >= s.slabs as u64 * SLAB_SIZE as u64);
    // Odd rounds are freed by another context (they count there), even ones here.
    let (mine, theirs): (Vec<_>, Vec<_>) = blocks.into_iter().partition(|b| b.2 % 2 == 0);
    for (p, l, _) in mine {
        // SAFETY: live blocks, freed once.
        unsafe { heap.deallocate(p, l) };
    }
    let theirs: Vec<(usize, Layout)> = theirs
        .into_iter()
        .map(|(p, l, _)| (p.as_ptr() as usize, l))
        .collect();
    let other_stats = std::thread::scope(|s| {
        s.spawn(|| {
            let other = Context::new(&arenas);
            let h = Heap::new(&other);
            for (p, l) in theirs {
                // SAFETY: live blocks, freed once.
                unsafe { h.deallocate(NonNull::new(p as *mut u8).unwrap(), l) };
            }
            h.stats()
        })
        .join()
        .unwrap()
    });
    let mut total = heap.stats();
    total.merge(&other_stats);
    for k in 0..4 {
        assert_eq!(total.freed[k], total.allocated[k], "kind {k}");
        assert_eq!(other_stats.allocated[k].blocks, 0);
    }
    assert_eq!(total.live_blocks(), 0);
    assert_eq!(other_stats.freed.iter().map(|c| c.blocks).sum::<u64>(), 30);
    heap.collect(true);
    let s = heap.stats();
    assert_eq!((s.slabs, s.committed), (0, 0), "{s:?}");
    assert!(s.peak_slabs >= 1);
}

#[test]
fn a_context_moves_freely_between_heaps() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let blocks: Vec<(NonNull<u8>, Layout)> = (0..2000)
        .map(|i| {
            let l = lay(8 + (i % 300) * 8, 8);
            (touch(&Heap::new(&cx), l), l)
        })
        .collect();
    // Moved (twice) with blocks live and shards queued, then used again.
    let boxed = Box::new(cx);
    let cx = *boxed;
    let heap = Heap::new(&cx);
    for (i, &(p, l)) in blocks.iter().enumerate() {
        if i % 2 == 0 {
            // SAFETY: live blocks, freed once.
            unsafe { heap.deallocate(p, l) };
        }
    }
    let more: Vec<NonNull<u8>> = (0..2000)
        .map(|i| touch(&heap, lay(8 + i % 300, 8)))
        .collect();
    for (i, &(p, l)) in blocks.iter().enumerate() {
        if i % 2 == 1 {
            // SAFETY: as above.
            unsafe { heap.deallocate(p, l) };
        }
    }
    for p in more {
        // SAFETY: as above.
        unsafe { heap.free(p) };
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn impossible_requests_fail_cleanly() {
    let arenas = Arenas::new(Mmap);
    let cx = Context::new(&arenas);
    let heap = Heap::new(&cx);
    let keep = touch(&heap, lay(100, 8));
    let max = isize::MAX as usize;
    for (size, align) in [
        (max - 4095, 4096),
        (max / 2, 8),
        (max - (1 << 30) + 1, 1 << 30),
        (1 << 47, 1 << 20),
    ] {
        let l = lay(size, align);
        assert!(heap.allocate(l).is_err(), "{l:?}");
        assert!(heap.allocate_zeroed(l).is_err(), "{l:?}");
        // SAFETY: a live block of 100 bytes; on error it is untouched.
        assert!(unsafe { heap.reallocate(keep, lay(100, 8), l) }.is_err());
    }
    // Still usable, and the block that failed to grow is intact.
    // SAFETY: a live block of 100 bytes.
    assert_eq!(unsafe { *keep.as_ptr().add(99) }, 0x5A);
    let p = touch(&heap, lay(5000, 64));
    // SAFETY: live blocks, freed once.
    unsafe {
        heap.free(p);
        heap.free(keep);
    }
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}
