//! Large OS pages, hugetlb: where the system has reserved 2 MiB pages
//! (`/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages` above 0), a chunk of whole huge
//! pages is backed by them with `Mmap::set_large_pages(true)`; decommit keeps them, moves are
//! refused (the caller copies), the page size stays the OS's, and a chunk larger than the
//! pool falls back to normal pages. Where 1 GiB pages are reserved, a chunk of more than 1 GiB
//! is aligned to 1 GiB and its first GiB is one of them. Where none are reserved, the test says
//! it was skipped for that reason and passes.
//!
//! The setting is process-wide and the pool is the system's, so this binary holds a single
//! test.
#![cfg(all(feature = "base-mmap", target_os = "linux"))]

mod common;

use std::alloc::Layout;

use common::{free_1g_pages, free_2m_pages, touch, vma_at};
use ferroc_base::{BaseAlloc, Mmap};

const HUGE: usize = 2 << 20;

const GIB: usize = 1 << 30;

#[test]
fn hugetlb_pages_back_chunks_where_reserved() {
    // Read before the first allocation, which is when Mmap reads (and caches) them too.
    let (free_2m, free_1g) = (free_2m_pages(), free_1g_pages());
    Mmap::set_large_pages(true);
    if free_2m == 0 {
        println!(
            "skipped (2 MiB): no 2 MiB hugetlb pages are reserved \
             (/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages is 0)"
        );
    } else {
        two_mib_pages(free_2m, free_1g != 0);
    }
    if free_1g == 0 {
        println!(
            "skipped (1 GiB): no 1 GiB hugetlb pages are reserved \
             (/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages is 0)"
        );
    } else {
        one_gib_pages(free_1g);
    }
    Mmap::set_large_pages(false);
}

/// A chunk of more than 1 GiB, asked for with the arenas' 4 MiB alignment: aligned to 1 GiB,
/// its first GiB one hugetlb page, the rest normal.
fn one_gib_pages(free: usize) {
    let page = Mmap.page_size();
    let size = GIB + (4 << 20);
    let chunk = Mmap
        .allocate(Layout::from_size_align(size, 4 << 20).unwrap(), false)
        .unwrap();
    let p = chunk.pointer();
    let start = p.as_ptr() as usize;
    assert_eq!(start % GIB, 0, "aligned to the 1 GiB page");
    assert_eq!(
        vma_at(start).kernel_page_kb,
        GIB >> 10,
        "{:?}",
        vma_at(start)
    );
    assert_eq!(
        vma_at(start + GIB).kernel_page_kb,
        page >> 10,
        "past the 1 GiB page"
    );
    // SAFETY: the first byte of our committed chunk.
    unsafe { p.as_ptr().write(3) };
    // SAFETY: the last byte of our committed chunk.
    unsafe { p.as_ptr().wrapping_add(size - 1).write(4) };
    assert_eq!(free_1g_pages() + 1, free, "the page comes from the pool");
    // SAFETY: a slab inside the 1 GiB page of our live chunk; not needed.
    let zeroed = unsafe { Mmap.decommit(p, 4 << 20) };
    assert!(!zeroed, "hugetlb pages are kept");
    // SAFETY: inside our live chunk.
    assert_eq!(unsafe { p.as_ptr().read() }, 3);
    drop(chunk);
    assert_eq!(free_1g_pages(), free, "the page went back to the pool");
    println!("hugetlb: a chunk of 1 GiB + 4 MiB got a 1 GiB page ({free} were free)");
}

/// Chunks of 2 MiB pages, what every operation does on them, and the fallback.
fn two_mib_pages(free: usize, gib_pages: bool) {
    let page = Mmap.page_size();
    assert_eq!(
        page,
        Mmap::os_page_size(),
        "the page size stays the OS page size"
    );

    // Whole huge pages and a page more (an arena's header): the pages go to hugetlb, the
    // extra page stays normal.
    let pages = free.min(8);
    let hsize = pages * HUGE;
    let layout = Layout::from_size_align(hsize + page, HUGE).unwrap();
    let chunk = Mmap.allocate(layout, false).unwrap();
    let p = chunk.pointer();
    let start = p.as_ptr() as usize;
    assert_eq!(start % HUGE, 0);
    assert!(chunk.is_zeroed());
    assert_eq!(vma_at(start).kernel_page_kb, 2048, "{:?}", vma_at(start));
    assert_eq!(
        vma_at(start + hsize).kernel_page_kb,
        page >> 10,
        "the header page"
    );
    // SAFETY: the whole chunk is ours and committed.
    unsafe { touch(p.as_ptr(), chunk.layout().size(), page, 0x77) };
    let after = free_2m_pages();
    println!("hugetlb: {free} free 2 MiB pages, {after} after touching a chunk of {pages}");
    assert!(
        after + pages <= free,
        "the chunk's pages come from the pool"
    );
    assert_eq!(vma_at(start).hugetlb_kb, hsize >> 10);

    // Decommit of hugetlb pages keeps them (and says the range does not read zero); the
    // normal page after them is decommitted and reads zero.
    // SAFETY: the first huge page of our live chunk; its contents are not needed.
    assert!(!unsafe { Mmap.decommit(p, HUGE) });
    // SAFETY: inside our live chunk.
    assert_eq!(unsafe { p.as_ptr().read() }, 0x77, "hugetlb pages are kept");
    // SAFETY: `hsize` is inside the chunk (it is `hsize + page` long).
    let header = unsafe { p.add(hsize) };
    // SAFETY: the normal page of our live chunk; its contents are not needed.
    assert!(unsafe { Mmap.decommit(header, page) });
    // SAFETY: inside our live chunk, still mapped.
    assert_eq!(unsafe { header.as_ptr().read() }, 0);
    // A range over both: the normal part goes, the call says "not zero".
    // SAFETY: `hsize - HUGE` is inside our chunk: its last huge page.
    let last = unsafe { p.add(hsize - HUGE) };
    // SAFETY: the header page of our live chunk.
    unsafe { header.as_ptr().write(5) };
    // SAFETY: `[last, last + HUGE + page)` lies inside our chunk; its contents are not needed.
    assert!(!unsafe { Mmap.decommit(last, HUGE + page) });
    // SAFETY: inside our live chunk, still mapped.
    let byte = unsafe { header.as_ptr().read() };
    assert_eq!(byte, 0, "the normal part was decommitted");

    // Moves touching hugetlb memory are refused and change nothing.
    let other = Mmap
        .allocate(Layout::from_size_align(4 * HUGE, HUGE).unwrap(), true)
        .unwrap();
    let q = other.pointer();
    // SAFETY: our committed chunk, 4 huge pages long.
    unsafe { q.as_ptr().write_bytes(0x22, HUGE) };
    // SAFETY: disjoint, aligned ranges of our live chunks, unused meanwhile.
    assert!(!unsafe { Mmap.move_pages(p, q, HUGE) });
    // SAFETY: disjoint, aligned ranges of our live chunks, unused meanwhile.
    assert!(!unsafe { Mmap.move_pages(q, p, HUGE) });
    // SAFETY: inside our live chunks.
    assert_eq!(unsafe { p.as_ptr().read() }, 0x77);
    // SAFETY: inside our live chunks.
    assert_eq!(unsafe { q.as_ptr().read() }, 0x22);
    let other_hugetlb = vma_at(q.as_ptr() as usize).hugetlb_kb > 0;
    drop(other);

    drop(chunk);
    assert_eq!(free_2m_pages(), free, "the pages went back to the pool");

    // More than the pool holds: the hugetlb mapping is refused and the chunk is normal.
    let big = (free + 2) * HUGE;
    if gib_pages && big >= GIB {
        return;
    }
    let chunk = Mmap
        .allocate(Layout::from_size_align(big, HUGE).unwrap(), false)
        .unwrap();
    let p = chunk.pointer();
    assert!(chunk.is_zeroed());
    assert_eq!(vma_at(p.as_ptr() as usize).kernel_page_kb, page >> 10);
    // SAFETY: the whole chunk is ours and committed.
    unsafe { touch(p.as_ptr(), big, page, 1) };
    // SAFETY: a slab of our live chunk; not needed.
    let zeroed = unsafe { Mmap.decommit(p, 2 * HUGE) };
    assert!(zeroed, "normal pages decommit");
    drop(chunk);
    assert_eq!(free_2m_pages(), free);
    println!("hugetlb: fallback ok; the 4-page chunk after the first was hugetlb: {other_hugetlb}");
}
