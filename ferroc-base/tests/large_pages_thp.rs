//! Large OS pages, transparent huge pages: with `Mmap::set_large_pages(true)` a big live heap
//! of arena-sized chunks is backed by huge pages (`AnonHugePages` of its mappings rises
//! compared with the setting off), and every `Mmap` operation still works on those chunks.
//!
//! The setting is process-wide, so this binary holds a single test. Where the kernel offers
//! no THP (`/sys/kernel/mm/transparent_hugepage/enabled` is `never` or missing), it says it
//! was skipped for that reason and passes.
#![cfg(all(feature = "base-mmap", target_os = "linux"))]

mod common;

use std::{alloc::Layout, ptr::NonNull};

use common::{thp_mode, touch, vma_at, vmas_of};
use ferroc_base::{BaseAlloc, Chunk, Mmap};

/// A slab of ferroc-arena (4 MiB by default), the alignment it asks arenas for.
const SLAB: usize = 4 << 20;
/// Slabs of an arena of the first size (16 slabs: 64 MiB).
const ARENA_SLABS: usize = 16;
/// Arena-sized chunks in the heap: 128 MiB in all.
const CHUNKS: usize = 2;

/// A live heap: `CHUNKS` chunks the size ferroc-arena asks for its first arenas (the slabs
/// and a page for the header), every page written. Returns the chunks and the KiB of huge
/// pages backing them (`AnonHugePages`, plus any hugetlb pages if the system has reserved
/// some), and the KiB resident.
fn live_heap() -> (Vec<Chunk<Mmap>>, usize, usize) {
    let page = Mmap.page_size();
    let layout = Layout::from_size_align(ARENA_SLABS * SLAB + page, SLAB).unwrap();
    let chunks: Vec<_> = (0..CHUNKS)
        .map(|_| Mmap.allocate(layout, false).unwrap())
        .collect();
    for c in &chunks {
        assert_eq!(c.pointer().as_ptr() as usize % SLAB, 0);
        assert!(c.is_zeroed());
        // SAFETY: the whole chunk is ours, and Mmap's chunks are committed when mapped.
        unsafe { Mmap.commit(c.pointer(), c.layout().size()) }.unwrap();
        // SAFETY: the whole chunk is ours and committed.
        unsafe { touch(c.pointer().as_ptr(), c.layout().size(), page, 1) };
    }
    let ranges: Vec<_> = chunks
        .iter()
        .map(|c| (c.pointer().as_ptr() as usize, c.layout().size()))
        .collect();
    let vmas = vmas_of(&ranges);
    let huge = vmas.iter().map(|v| v.anon_huge_kb + v.hugetlb_kb).sum();
    let rss = vmas.iter().map(|v| v.rss_kb + v.hugetlb_kb).sum();
    (chunks, huge, rss)
}

/// Decommit, move and page size on the chunks of a large-pages heap.
/// Where a chunk has hugetlb pages (if the system has reserved some), decommit keeps them and
/// moves are refused; elsewhere decommit zeroes and the pages move (Linux 5.7 or later).
fn operations_still_work(chunks: &[Chunk<Mmap>]) {
    let hugetlb = |c: &Chunk<Mmap>| vma_at(c.pointer().as_ptr() as usize).hugetlb_kb > 0;
    let page = Mmap.page_size();
    assert_eq!(
        page,
        Mmap::os_page_size(),
        "the page size stays the OS page size"
    );
    let (a, b) = (chunks[0].pointer(), chunks[1].pointer());
    // Decommit one whole slab, as the arenas purge: it reads zero afterwards (or is kept, for
    // hugetlb pages, and then the call says so).
    // SAFETY: slab 1 of our live chunk, slab-aligned; its contents are not needed.
    let slab1 = unsafe { a.add(SLAB) };
    // SAFETY: that slab is inside our chunk, aligned, and its contents are not needed.
    let zeroed = unsafe { Mmap.decommit(slab1, SLAB) };
    assert_eq!(zeroed, !hugetlb(&chunks[0]), "decommit of a whole slab");
    if zeroed {
        for off in (0..SLAB).step_by(page) {
            // SAFETY: inside the decommitted slab of our live chunk, which stays mapped.
            assert_eq!(unsafe { slab1.as_ptr().wrapping_add(off).read() }, 0);
        }
    }
    // Move slab 2 of `a` onto slab 2 of `b`: done by the kernel, or refused (hugetlb), and
    // then nothing changed.
    // SAFETY: slab 2 of our chunk `a`, inside it.
    let from = unsafe { a.add(2 * SLAB) };
    // SAFETY: slab 2 of our chunk `b`, inside it.
    let to = unsafe { b.add(2 * SLAB) };
    // SAFETY: slab 2 of our chunk `a`, committed.
    unsafe { from.as_ptr().write_bytes(0x5A, SLAB) };
    // SAFETY: slab 2 of our chunk `b`, committed.
    unsafe { to.as_ptr().write_bytes(0x11, SLAB) };
    // SAFETY: disjoint slab-aligned ranges of our live chunks, unused meanwhile.
    let moved = unsafe { Mmap.move_pages(from, to, SLAB) };
    let refused = hugetlb(&chunks[0]) || hugetlb(&chunks[1]);
    assert_eq!(moved, !refused, "move of a whole slab");
    for off in (0..SLAB).step_by(page / 2) {
        // SAFETY: inside slab 2 of our live chunk `b`.
        let t = unsafe { to.as_ptr().wrapping_add(off).read() };
        // SAFETY: inside slab 2 of our live chunk `a`.
        let f = unsafe { from.as_ptr().wrapping_add(off).read() };
        if moved {
            assert_eq!((t, f), (0x5A, 0), "moved bytes at {off}");
        } else {
            assert_eq!((t, f), (0x11, 0x5A), "refused move changed bytes at {off}");
        }
    }
    // Commit after decommit makes the slab usable again.
    // SAFETY: slab 1 of our live chunk.
    unsafe { Mmap.commit(slab1, SLAB) }.unwrap();
    // SAFETY: slab 1 of our live chunk, committed.
    unsafe { slab1.as_ptr().write_bytes(3, SLAB) };
}

#[test]
fn large_pages_back_a_big_live_heap_with_huge_pages() {
    assert!(!Mmap::large_pages(), "large pages are off by default");
    Mmap::set_large_pages(true);
    assert!(Mmap::large_pages());
    Mmap::set_large_pages(false);
    assert!(!Mmap::large_pages());

    let mode = thp_mode();
    let (off_chunks, off_kb, off_rss) = live_heap();
    drop(off_chunks);
    Mmap::set_large_pages(true);
    // A chunk of at least one huge page is aligned to it, whatever alignment was asked for.
    let small_align = Mmap
        .allocate(Layout::from_size_align(8 << 20, 4096).unwrap(), false)
        .unwrap();
    let small_start = small_align.pointer().as_ptr() as usize;
    let (on_chunks, on_kb, on_rss) = live_heap();
    let heap_kb = (CHUNKS * ARENA_SLABS * SLAB) >> 10;
    println!(
        "THP mode {mode:?}: a live heap of {heap_kb} KiB in {CHUNKS} arena-sized chunks; \
         huge pages backing it: {off_kb} KiB with large pages off ({off_rss} KiB resident), \
         {on_kb} KiB with them on ({on_rss} KiB resident)"
    );
    match mode.as_deref() {
        Some("madvise") => assert!(
            on_kb >= off_kb + 2048,
            "AnonHugePages did not rise: {off_kb} KiB off, {on_kb} KiB on"
        ),
        Some("always") => assert!(
            on_kb >= 2048,
            "no huge page under THP 'always': {on_kb} KiB"
        ),
        other => {
            println!("skipped: the kernel offers no transparent huge pages (THP mode {other:?})");
        }
    }
    if mode.as_deref() == Some("madvise") || mode.as_deref() == Some("always") {
        assert_eq!(
            small_start % (2 << 20),
            0,
            "a large chunk aligned to the huge page"
        );
        let start = on_chunks[0].pointer().as_ptr() as usize;
        let vma = vma_at(start);
        assert!(vma.anon_huge_kb + vma.hugetlb_kb > 0, "{vma:?}");
    }
    operations_still_work(&on_chunks);
    drop(on_chunks);
    drop(small_align);
    // Small chunks are left alone.
    let small = Mmap
        .allocate(Layout::from_size_align(64 << 10, 4096).unwrap(), true)
        .unwrap();
    let p: NonNull<u8> = small.pointer();
    // SAFETY: our committed 64 KiB chunk.
    unsafe { p.as_ptr().write_bytes(9, 64 << 10) };
    Mmap::set_large_pages(false);
}
