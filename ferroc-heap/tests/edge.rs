//! Edge cases of `Heap`: extreme alignments, size 0, huge blocks across threads, runs of exactly
//! 64 slabs, abandoned slabs with live blocks, teardown, in-place reallocation,
//! `allocator_api2` collections, statistics and memory going back after a peak.
mod common;

use core::{alloc::Layout, ptr::NonNull};

use common::{free_all, free_elsewhere, in_use, lay, with_failing_heap, with_heap};
use ferroc_arena::{
    Arenas, BaseAlloc,
    sizes::{MAX_ARENA_SLABS, SLAB_SIZE},
};
use ferroc_base::{Mmap, testing::Failing};
use ferroc_heap::{Context, Heap};

/// The slab a block lies in (for a block that is not aligned to a slab or more).
fn slab_of(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize & !(SLAB_SIZE - 1)
}

/// Allocates, checks, touches the first and last byte, and returns the block.
fn touch<B: BaseAlloc>(heap: &Heap<'_, '_, B>, l: Layout) -> NonNull<u8> {
    let p = heap.allocate(l).unwrap_or_else(|_| panic!("{l:?} failed"));
    assert_eq!(
        p.as_ptr() as usize % l.align(),
        0,
        "{l:?} misaligned: {p:?}"
    );
    // SAFETY: the live block just allocated.
    assert!(unsafe { heap.usable_size(p) } >= l.size());
    if l.size() > 0 {
        // SAFETY: the first byte of a live block of `l.size() > 0` bytes.
        unsafe { p.as_ptr().write(0xA5) };
        // SAFETY: the last byte of the same block.
        unsafe { *last_byte(p, l.size()) = 0x5A };
    }
    p
}

/// The last of a block's first `size` bytes (`size > 0`; the block holds at least that many).
fn last_byte(p: NonNull<u8>, size: usize) -> *mut u8 {
    p.as_ptr().wrapping_add(size - 1)
}

/// The index `abandoned_blocks` wrote at the start of a live block of at least 8 bytes.
///
/// # Safety
///
/// `p` is a live block of at least 8 bytes, written by `abandoned_blocks`.
unsafe fn index_at(p: usize) -> u64 {
    // SAFETY: a live block of at least 8 bytes (this fn's contract); unaligned read.
    unsafe { (p as *const u64).read_unaligned() }
}

/// Frees `a` through `deallocate` (with `l`) and `b` through `free`, both live blocks of
/// `heap` allocated with `l`, each freed once.
///
/// # Safety
///
/// As above.
unsafe fn free_pair<B: BaseAlloc>(
    heap: &Heap<'_, '_, B>,
    a: NonNull<u8>,
    b: NonNull<u8>,
    l: Layout,
) {
    // SAFETY: a live block of `heap` allocated with `l`, freed once (this fn's contract).
    unsafe { heap.deallocate(a, l) };
    // SAFETY: a live block of `heap`, freed once (this fn's contract).
    unsafe { heap.free(b) };
}

#[test]
fn alignments_of_2_mib_64_mib_and_1_gib() {
    with_heap(|_, heap| {
        for align in [2 << 20, 64 << 20, 1 << 30] {
            for size in [0, 1, 100, 3 << 20, 9 << 20] {
                let a = touch(heap, lay(size, align));
                let b = touch(heap, lay(size, align));
                assert_ne!(a, b);
                // SAFETY: live blocks of this heap, each freed once, once through each entry.
                unsafe { free_pair(heap, a, b, lay(size, align)) };
            }
        }
    });
}

#[test]
fn size_zero_with_alignment_4096() {
    with_heap(|_, heap| {
        let l = lay(0, 4096);
        let blocks: Vec<NonNull<u8>> = (0..200).map(|_| touch(heap, l)).collect();
        let mut sorted: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), blocks.len(), "distinct blocks");
        for pair in blocks.chunks(2) {
            // SAFETY: live blocks of this heap, freed once each, half by each entry point.
            unsafe { free_pair(heap, pair[0], pair[1], l) };
        }
        // And with the alignment beyond what any size class has.
        for align in [1 << 17, 1 << 20] {
            let p = touch(heap, lay(0, align));
            let q = touch(heap, lay(0, align));
            // SAFETY: live blocks, freed once.
            unsafe { free_pair(heap, p, q, lay(0, align)) };
        }
    });
}

#[test]
fn huge_blocks_freed_by_another_thread() {
    with_heap(|arenas, heap| {
        // Arena-served, slab-aligned, and one larger than the largest arena (straight from the
        // base: address space only, the base reserves without committing swap).
        let layouts = [
            lay(SLAB_SIZE + SLAB_SIZE / 4, 8),
            lay(10 * SLAB_SIZE, 2 * SLAB_SIZE),
            lay(MAX_ARENA_SLABS * SLAB_SIZE + 1, 16),
        ];
        let blocks: Vec<(usize, Layout)> = layouts
            .iter()
            .map(|&l| (touch(heap, l).as_ptr() as usize, l))
            .collect();
        assert_eq!(arenas.stats().direct_runs, 1);
        std::thread::scope(|s| {
            s.spawn(|| {
                let other = Context::new(arenas);
                let h = Heap::new(&other);
                for &(p, l) in &blocks {
                    let p = NonNull::new(p as *mut u8).unwrap();
                    // SAFETY: the last byte of a live block handed over, of `l.size()` bytes.
                    assert_eq!(unsafe { *last_byte(p, l.size()) }, 0x5A);
                    // SAFETY: a live block handed over, allocated with `l`, freed once.
                    unsafe { h.deallocate(p, l) };
                }
            });
        });
        assert_eq!(in_use(arenas), (0, 0, 0));
    });
}

#[test]
fn runs_of_exactly_64_slabs() {
    with_failing_heap(|_, arenas, heap| {
        // A block just over 63 slabs needs a run of 64; its usable size is the whole run past
        // the header, and a block of exactly that size still fits 64 slabs.
        let probe = touch(heap, lay(63 * SLAB_SIZE + 1, 16));
        let usable = {
            // SAFETY: the live block just allocated.
            let u = unsafe { heap.usable_size(probe) };
            // SAFETY: the same live block, freed once.
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
        let small = touch(heap, lay(64, 8));
        for n in 1..=2 {
            let runs: Vec<_> = (0..n).map(|_| touch(heap, lay(usable, 16))).collect();
            assert_eq!(held(), 1 + 64 * n);
            // SAFETY: the live blocks just allocated, each freed once.
            unsafe { free_all(heap, runs) };
            assert_eq!(held(), 1);
        }
        // One byte more takes 65 slabs.
        let p = touch(heap, lay(usable + 1, 16));
        assert_eq!(held(), 1 + 65);
        // SAFETY: live blocks, freed once.
        unsafe { free_all(heap, [p, small]) };
        heap.collect(true);
        assert_eq!(in_use(arenas), (0, 0, 0));
    });
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
                    // SAFETY: the live block just allocated, of `size >= 8` bytes.
                    unsafe { p.as_ptr().cast::<u64>().write_unaligned(i as u64) };
                    p.as_ptr() as usize
                })
                .collect()
        })
        .join()
        .unwrap()
    })
}

/// Checks the index `abandoned_blocks` wrote in each of `blocks` (given with their index),
/// and hands them on.
///
/// # Safety
///
/// Each is a live block of `abandoned_blocks`.
unsafe fn checked(blocks: impl Iterator<Item = (usize, usize)>) -> impl Iterator<Item = usize> {
    blocks.map(|(i, p)| {
        // SAFETY: a live block of `abandoned_blocks` (this fn's contract).
        assert_eq!(unsafe { index_at(p) }, i as u64);
        p
    })
}

#[test]
fn abandoned_slabs_stay_valid_and_are_reclaimed() {
    with_heap(|arenas, heap| {
        let blocks = abandoned_blocks(arenas, 2000, 64);
        assert!(arenas.abandoned_count() >= 1);
        let numbered = || blocks.iter().copied().enumerate();
        // Half of the blocks are freed by yet another thread while the slab is abandoned.
        // SAFETY: the even blocks are live blocks of the dead context.
        let even = unsafe { checked(numbered().step_by(2)) };
        // SAFETY: the same blocks, each freed once.
        unsafe { free_elsewhere(arenas, even) };
        // A new context of the same size class takes the abandoned slab over instead of a new
        // one.
        let slabs_before = arenas.stats().slabs_in_use;
        let fresh = touch(heap, lay(64, 8));
        assert!(
            blocks
                .iter()
                .any(|&p| p & !(SLAB_SIZE - 1) == slab_of(fresh)),
            "the abandoned slab was reclaimed"
        );
        assert_eq!(arenas.stats().slabs_in_use, slabs_before);
        // The rest is freed by its new owner.
        // SAFETY: the odd blocks are still live.
        let rest = unsafe { checked(numbered().skip(1).step_by(2)) };
        // SAFETY: the odd blocks, live, each freed once.
        unsafe { free_all(heap, rest.map(|p| NonNull::new(p as *mut u8).unwrap())) };
        // SAFETY: a live block, freed once.
        unsafe { heap.free(fresh) };
    });
}

#[test]
fn forced_collect_with_an_abandoned_live_block_returns() {
    with_heap(|arenas, heap| {
        // One live block in an abandoned slab (small) and one in a full shard (a shard of 4 KiB
        // blocks filled completely before its owner exits).
        let live = abandoned_blocks(arenas, 1, 48);
        let full = abandoned_blocks(arenas, 64, 4096);
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
                let other = Context::new(arenas);
                for &p in &full {
                    // SAFETY: live blocks of the dead context, freed once.
                    unsafe { other.free(NonNull::new(p as *mut u8).unwrap()) };
                }
                other.collect(true);
            });
            heap.collect(true);
        });
        // The block stayed valid; its slab is ours now, and freeing it releases everything.
        // SAFETY: the live block of the dead context.
        assert_eq!(unsafe { index_at(live[0]) }, 0);
        // SAFETY: the same live block, freed once.
        unsafe { heap.free(NonNull::new(live[0] as *mut u8).unwrap()) };
    });
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
                // SAFETY: the live blocks allocated above with `l`, each freed once.
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
            // SAFETY: the live blocks just allocated, each freed once.
            unsafe { free_elsewhere(&arenas, v) };
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
    with_heap(|_, heap| {
        for (size, align) in [(100, 8), (1000, 16), (5000, 64), (100_000, 8), (6 << 20, 8)] {
            let p = touch(heap, lay(size, align));
            // SAFETY: the live block just allocated.
            let usable = unsafe { heap.usable_size(p) };
            // SAFETY: a live block allocated with `lay(size, align)`.
            let grown = unsafe { heap.reallocate(p, lay(size, align), lay(usable, align)) };
            assert_eq!(grown.unwrap(), p, "grow to the usable size of {size}");
            // SAFETY: the block kept its place, so it is live, its first byte written by `touch`.
            assert_eq!(unsafe { *p.as_ptr() }, 0xA5);
            // SAFETY: the same live block, now of `lay(usable, align)`.
            let shrunk = unsafe { heap.reallocate(p, lay(usable, align), lay(size, align)) };
            assert_eq!(shrunk.unwrap(), p, "back to {size}");
            // SAFETY: the same live block, now of `lay(size, align)` again.
            let moved = unsafe { heap.reallocate(p, lay(size, align), lay(usable + 1, align)) };
            let moved = moved.unwrap();
            // (A huge block may grow in place over the free slabs after it: see below.)
            if size <= ferroc_heap::class::LARGE_MAX {
                assert_ne!(moved, p, "past the usable size it moves");
            }
            // SAFETY: the live block `reallocate` returned, holding the old bytes.
            assert_eq!(unsafe { *moved.as_ptr() }, 0xA5);
            // SAFETY: that block, of `lay(usable + 1, align)`, freed once.
            unsafe { heap.deallocate(moved, lay(usable + 1, align)) };
        }
    });
}

/// Writes a pattern into one word of every 4 KiB of `[p, p + len)`.
///
/// # Safety
///
/// `[p, p + len)` is a live block's.
unsafe fn stamp(p: NonNull<u8>, len: usize, seed: usize) {
    for off in (0..len).step_by(4096) {
        // SAFETY: `off < len`, inside the caller's live block (this fn's contract).
        unsafe { word_at(p, off).write_unaligned(off ^ seed) };
    }
}

/// Checks the pattern [`stamp`] wrote over `[p, p + len)`.
///
/// # Safety
///
/// As for [`stamp`].
unsafe fn check_stamp(p: NonNull<u8>, len: usize, seed: usize) {
    for off in (0..len).step_by(4096) {
        // SAFETY: `off < len`, inside the caller's live block (this fn's contract).
        let v = unsafe { word_at(p, off).read_unaligned() };
        assert_eq!(v, off ^ seed, "offset {off}");
    }
}

/// The (unaligned) word `off` bytes into the block at `p`.
fn word_at(p: NonNull<u8>, off: usize) -> *mut usize {
    p.as_ptr().wrapping_add(off).cast()
}

/// A huge block that stays huge grows in place over the free slabs after it, moves its pages
/// (no copy, nothing left to purge) when a neighbour is in the way, and shrinks in place
/// giving its tail back; contents survive each step.
#[test]
fn huge_blocks_resize_in_place_or_by_moving_pages() {
    const MIB: usize = 1 << 20;
    with_heap(|arenas, heap| {
        // Slabs of a huge block's run: the block and the header before it (under a slab).
        let slabs = |bytes: usize| (bytes + 1).div_ceil(SLAB_SIZE);
        // `heap.usable_size` of a block live at that point.
        // SAFETY: every block passed below is live when it is.
        let usable = |p| unsafe { heap.usable_size(p) };
        let mut size = 6 * MIB;
        let p = touch(heap, lay(size, 8));
        // SAFETY: the live block just allocated, of `size` bytes.
        unsafe { stamp(p, size, 1) };
        let before = arenas.stats().slabs_in_use;
        // Grows over the free slabs after it: same block.
        // SAFETY: `p` is live, allocated with `lay(size, 8)`; it is handed on.
        let q = unsafe { heap.reallocate(p, lay(size, 8), lay(12 * MIB, 8)) }.unwrap();
        assert_eq!(q, p, "grown in place");
        assert!(usable(q) >= 12 * MIB);
        // SAFETY: `q` is live and holds the old `size` bytes.
        unsafe { check_stamp(q, size, 1) };
        assert_eq!(
            arenas.stats().slabs_in_use,
            before + slabs(12 * MIB) - slabs(6 * MIB)
        );
        size = 12 * MIB;
        // SAFETY: `q` is live with `size` bytes.
        unsafe { stamp(q, size, 2) };
        // A neighbour right after it: growing further moves it.
        let next = q.as_ptr() as usize + usable(q);
        let blocker = touch(heap, lay(MIB, 8));
        assert_eq!(slab_of(blocker), next, "the next free slab");
        // SAFETY: `q` is live, of `lay(size, 8)`; it is handed on.
        let r = unsafe { heap.reallocate(q, lay(size, 8), lay(30 * MIB, 8)) }.unwrap();
        assert_ne!(r, q);
        // SAFETY: `r` is live and holds the old `size` bytes.
        unsafe { check_stamp(r, size, 2) };
        if cfg!(target_os = "linux") {
            // Moved by remapping: the old slabs read zero and are not waiting to be purged,
            // which a copy would have left them.
            assert_eq!(arenas.stats().pending_purge, 0, "pages moved, not copied");
        }
        size = 30 * MIB;
        // SAFETY: `r` is live with `size` bytes.
        unsafe { stamp(r, size, 3) };
        // Shrinks in place, giving the tail back.
        let used = arenas.stats().slabs_in_use;
        // SAFETY: `r` is live, of `lay(size, 8)`; it is handed on.
        let s = unsafe { heap.reallocate(r, lay(size, 8), lay(5 * MIB, 8)) }.unwrap();
        assert_eq!(s, r, "shrunk in place");
        assert!(usable(s) >= 5 * MIB && usable(s) < 8 * MIB);
        assert_eq!(
            arenas.stats().slabs_in_use,
            used - slabs(30 * MIB) + slabs(5 * MIB)
        );
        // SAFETY: `s` is live and holds the first 5 MiB stamped.
        unsafe { check_stamp(s, 5 * MIB, 3) };
        // Down to a class size: a copy into a shard.
        // SAFETY: `s` is live, of `lay(5 * MIB, 8)`; it is handed on.
        let t = unsafe { heap.reallocate(s, lay(5 * MIB, 8), lay(100_000, 8)) }.unwrap();
        // SAFETY: `t` is live and holds the first 100,000 bytes of `s`.
        unsafe { check_stamp(t, 100_000, 3) };
        // SAFETY: `t` is live, of `lay(100_000, 8)`, freed once.
        unsafe { heap.deallocate(t, lay(100_000, 8)) };
        // SAFETY: `blocker` is live, of `lay(MIB, 8)`, freed once.
        unsafe { heap.deallocate(blocker, lay(MIB, 8)) };
    });
}

#[test]
fn allocator_api2_collections() {
    use allocator_api2::{boxed::Box, vec::Vec};
    with_heap(|_, heap| {
        let mut v = Vec::new_in(heap);
        for i in 0..300_000u64 {
            v.push(i);
        }
        assert_eq!(v.iter().sum::<u64>(), 299_999 * 300_000 / 2);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v.capacity(), 10);
        assert_eq!(v[9], 9);
        let b = Box::new_in([7u8; 10_000], heap);
        assert!(b.iter().all(|&x| x == 7));
        let mut z: Vec<u8, _> = Vec::with_capacity_in(4 << 20, heap);
        z.resize(4 << 20, 1);
        assert_eq!(z.iter().map(|&x| x as usize).sum::<usize>(), 4 << 20);
    });
}

/// Committed memory after a peak: back near the live size once the peak is freed.
#[test]
fn memory_goes_back_after_a_peak() {
    with_heap(|arenas, heap| {
        // Decommit released slabs at once, so the figure needs no waiting.
        arenas.set_purge_delay(0);
        let live: Vec<NonNull<u8>> = (0..1000).map(|_| touch(heap, lay(256, 8))).collect();
        let base = arenas.stats().committed;
        let sizes = [32, 256, 3000, 40_000];
        let peak: Vec<(NonNull<u8>, usize)> = (0..40_000)
            .map(|i| {
                let s = sizes[i % sizes.len()];
                (touch(heap, lay(s, 8)), s)
            })
            .collect();
        let high = arenas.stats().committed;
        assert!(high >= base + (256 << 20), "peak committed {high}");
        // Half freed by the owner, half by another thread (remote frees into full shards).
        let (mine, theirs): (Vec<_>, Vec<_>) =
            peak.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        for (_, (p, s)) in mine {
            // SAFETY: live blocks of `lay(s, 8)`, freed once.
            unsafe { heap.deallocate(p, lay(s, 8)) };
        }
        let theirs: Vec<usize> = theirs
            .into_iter()
            .map(|(_, (p, _))| p.as_ptr() as usize)
            .collect();
        // SAFETY: the other half of the peak, live, each freed once.
        unsafe { free_elsewhere(arenas, theirs) };
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
        // SAFETY: the live set, each freed once.
        unsafe { free_all(heap, live) };
        heap.collect(true);
        assert_eq!(arenas.stats().committed, 0);
        assert_eq!(in_use(arenas), (0, 0, 0));
    });
}

/// The same with the default purge delay: an explicit forced collect purges at once.
#[test]
fn memory_goes_back_with_the_default_purge_delay() {
    with_heap(|arenas, heap| {
        let peak: Vec<NonNull<u8>> = (0..20_000).map(|_| touch(heap, lay(5000, 8))).collect();
        assert!(arenas.stats().committed >= 100 << 20);
        // SAFETY: the peak's live blocks, each freed once.
        unsafe { free_all(heap, peak) };
        heap.collect(true);
        let s = arenas.stats();
        assert_eq!(
            (s.committed, s.slabs_in_use, s.pending_purge),
            (0, 0, 0),
            "{s:?}"
        );
    });
}

#[cfg(feature = "stat")]
#[test]
fn stat_counters_add_up() {
    with_heap(|arenas, heap| {
        use ferroc_heap::Kind;
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
                let p = touch(heap, l);
                // SAFETY: the live block just allocated.
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
            // SAFETY: live blocks allocated with `l`, freed once.
            unsafe { heap.deallocate(p, l) };
        }
        let theirs: Vec<(usize, Layout)> = theirs
            .into_iter()
            .map(|(p, l, _)| (p.as_ptr() as usize, l))
            .collect();
        let other_stats = std::thread::scope(|s| {
            s.spawn(|| {
                let other = Context::new(arenas);
                let h = Heap::new(&other);
                for (p, l) in theirs {
                    // SAFETY: live blocks allocated with `l`, handed over, freed once.
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
    });
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
    let halves = |half| blocks.iter().skip(half).step_by(2);
    for &(p, l) in halves(0) {
        // SAFETY: live blocks allocated with `l` (the even ones), freed once.
        unsafe { heap.deallocate(p, l) };
    }
    let more: Vec<NonNull<u8>> = (0..2000)
        .map(|i| touch(&heap, lay(8 + i % 300, 8)))
        .collect();
    for &(p, l) in halves(1) {
        // SAFETY: live blocks allocated with `l` (the odd ones, still live), freed once.
        unsafe { heap.deallocate(p, l) };
    }
    // SAFETY: the live blocks just allocated, each freed once.
    unsafe { free_all(&heap, more) };
    heap.collect(true);
    assert_eq!(in_use(&arenas), (0, 0, 0));
}

#[test]
fn impossible_requests_fail_cleanly() {
    with_heap(|_, heap| {
        let keep = touch(heap, lay(100, 8));
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
        // SAFETY: the last byte of a live block of 100 bytes.
        assert_eq!(unsafe { *last_byte(keep, 100) }, 0x5A);
        let p = touch(heap, lay(5000, 64));
        // SAFETY: live blocks, freed once.
        unsafe { free_all(heap, [p, keep]) };
    });
}
