//! Large OS pages for [`Mmap`](super::Mmap): what the system offers, how a fresh chunk gets
//! backed by huge pages, and which chunks are hugetlb-backed.
//!
//! - **What the system offers** is read once from `/sys` (with `open`/`read` into a stack
//!   buffer: nothing allocates) and cached in one word: the transparent-huge-page size
//!   (`transparent_hugepage/hpage_pmd_size`), and whether reserved 2 MiB and 1 GiB hugetlb pages
//!   were free (`hugepages/hugepages-{2048,1048576}kB/free_hugepages > 0`) at that moment.
//! - **Backing a chunk** ([`back`]): a chunk of at least one huge page is mapped aligned to the
//!   largest huge page it can use (only address space is spent on the slack). Its largest
//!   prefix that is a whole number of hugetlb pages is then re-mapped in place with
//!   `MAP_FIXED | MAP_HUGETLB | MAP_HUGE_1GB/2MB` (1 GiB pages first, then 2 MiB ones), without
//!   `MAP_NORESERVE`, so the kernel reserves the pages up front and refuses the mapping when
//!   the pool is short instead of failing a later page fault. When it refuses, the range is
//!   mapped normally again. The rest of the chunk (all of it without hugetlb) is advised
//!   `MADV_HUGEPAGE`, so the kernel backs each aligned 2 MiB of it with a transparent huge page
//!   at the first touch, and khugepaged may collapse it later.
//! - **The hugetlb registry** ([`hugetlb_part`]): a fixed table of the hugetlb prefixes of
//!   live chunks ([`RangeTable`], with its invariant, orderings and loom models), one word
//!   each (start and length in 2 MiB units), so that `decommit`, `move_pages` and
//!   `deallocate` (which only get an address range) know whether a range is hugetlb memory.
//!   A chunk gets hugetlb pages only if it got a slot; when the table is full it gets
//!   transparent huge pages instead. Every hugetlb mapping of ours has a slot. The table is
//!   only scanned once some chunk has been registered; until then each lookup is one load.

use core::{
    ffi::{CStr, c_int},
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::range_table::RangeTable;

#[cfg(target_os = "linux")]
use super::unmap;
use super::{MmapError, preserving_errno};

/// 2 MiB, the smaller hugetlb page (and the THP size of x86-64 and of arm64 with 4 KiB pages).
const HUGE_2M: usize = 2 << 20;
/// 1 GiB, the larger hugetlb page.
const HUGE_1G: usize = 1 << 30;

/// `MAP_HUGE_SHIFT` of the kernel ABI: log2 of the wanted hugetlb page size goes in the mmap
/// flags' bits 26 and up (the same on every Linux architecture).
#[cfg(target_os = "linux")]
const MAP_HUGE_SHIFT: c_int = 26;

/// Bits of [`FACTS`].
const PROBED: usize = 1;
const TLB_2M: usize = 1 << 1;
const TLB_1G: usize = 1 << 2;
/// log2 of the THP size sits in bits 8..16 (0: no THP).
const THP_SHIFT_AT: u32 = 8;

/// What the system offers, probed once (0 until then).
///
/// One word holding a self-contained value: `Relaxed` is enough, as nothing else is published
/// through it. Two threads that probe at the same time store the same value (or both valid
/// ones, if an administrator changed the pool between their reads).
static FACTS: AtomicUsize = AtomicUsize::new(0);

/// What the system offers for large pages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts {
    /// The transparent huge page size, 0 if the kernel has no THP.
    thp: usize,
    /// Reserved 2 MiB hugetlb pages were free when probed.
    tlb_2m: bool,
    /// Reserved 1 GiB hugetlb pages were free when probed.
    tlb_1g: bool,
}

/// Reads a decimal number from the start of the file at `path` (as `/sys` files hold), without
/// allocating.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_number(path: &CStr) -> Option<usize> {
    // SAFETY: `path` is a NUL-terminated string; `open` has no other precondition.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 32];
    // SAFETY: `buf` is a writable stack buffer of `buf.len()` bytes and `fd` is open.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `fd` was opened just above and is closed once, here.
    unsafe { libc::close(fd) };
    let n = usize::try_from(n).ok()?.min(buf.len());
    let digits = buf[..n].iter().take_while(|b| b.is_ascii_digit());
    let (mut value, mut any) = (0usize, false);
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// Reads what the system offers from `/sys`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn probe() -> usize {
    let (facts, _) = preserving_errno(|| {
        let mut facts = PROBED;
        if let Some(thp) = read_number(c"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
            && thp.is_power_of_two()
        {
            facts |= (thp.trailing_zeros() as usize) << THP_SHIFT_AT;
        }
        if cfg!(target_os = "linux") {
            let free = |path: &CStr| read_number(path).is_some_and(|n| n > 0);
            if free(c"/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages") {
                facts |= TLB_2M;
            }
            if free(c"/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages") {
                facts |= TLB_1G;
            }
        }
        facts
    });
    facts
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn probe() -> usize {
    PROBED
}

/// What the system offers, probed at the first call and cached.
#[cold]
pub(super) fn facts() -> Facts {
    let mut bits = FACTS.load(Ordering::Relaxed);
    if bits & PROBED == 0 {
        bits = probe();
        FACTS.store(bits, Ordering::Relaxed);
    }
    let shift = (bits >> THP_SHIFT_AT) & 0xff;
    Facts {
        thp: if shift == 0 { 0 } else { 1 << shift },
        tlb_2m: bits & TLB_2M != 0,
        tlb_1g: bits & TLB_1G != 0,
    }
}

/// How a chunk of a given size is backed with large pages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// The alignment its start gets (1 when it gets no large pages).
    pub(super) align: usize,
    /// The hugetlb page sizes to try on its prefix, largest first (0: none).
    hugetlb: [usize; 2],
    /// The THP size if the rest is advised `MADV_HUGEPAGE` (0: not).
    thp: usize,
}

impl Plan {
    /// The plan for a chunk of `size` bytes: large pages only for chunks of at least one huge
    /// page (arenas and the runs served straight from the base; small chunks stay as they are).
    pub(super) fn for_size(size: usize) -> Plan {
        let facts = facts();
        let mut plan = Plan {
            align: 1,
            hugetlb: [0; 2],
            thp: 0,
        };
        let mut n = 0;
        for (offered, page) in [(facts.tlb_1g, HUGE_1G), (facts.tlb_2m, HUGE_2M)] {
            if offered && size >= page {
                plan.hugetlb[n] = page;
                plan.align = plan.align.max(page);
                n += 1;
            }
        }
        if facts.thp != 0 && size >= facts.thp {
            plan.thp = facts.thp;
            plan.align = plan.align.max(facts.thp);
        }
        plan
    }
}

/// Maps `[start, start + len)` over our own mapping with `flags` added to a private anonymous
/// read-write mapping at exactly that address. Returns the `errno` on failure.
///
/// # Safety
///
/// The range is part of a fresh mapping of ours that nobody uses yet.
#[cfg(target_os = "linux")]
unsafe fn map_over(start: usize, len: usize, flags: c_int) -> Result<(), c_int> {
    let (ptr, err) = preserving_errno(|| {
        // SAFETY: MAP_FIXED replaces only pages of the caller's fresh, unused mapping (this
        // fn's contract); the new mapping is anonymous and private.
        unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | flags,
                -1,
                0,
            )
        }
    });
    if ptr as usize == start {
        Ok(())
    } else {
        Err(err)
    }
}

/// Backs the fresh chunk `[start, start + size)` with large pages as `plan` says: hugetlb pages
/// on its prefix where the pool has them, transparent huge pages advised on the rest. On an
/// error the chunk has been unmapped.
///
/// # Safety
///
/// The range is a fresh mapping of ours, aligned to `plan.align`, that nobody uses yet.
#[cold]
pub(super) unsafe fn back(start: usize, size: usize, plan: &Plan) -> Result<(), MmapError> {
    // SAFETY: the caller's fresh, unused mapping, aligned to `plan.align` (this fn's contract).
    let hugetlb = unsafe { hugetlb_prefix(start, size, plan) }?;
    let (rest, len) = (start + hugetlb, size - hugetlb);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if plan.thp != 0 && len >= plan.thp {
        preserving_errno(|| {
            // SAFETY: the range is the caller's own fresh mapping; MADV_HUGEPAGE only changes
            // how the kernel backs it, never its contents. A kernel without THP refuses it
            // (EINVAL), which changes nothing.
            unsafe { libc::madvise(rest as *mut libc::c_void, len, libc::MADV_HUGEPAGE) }
        });
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (rest, len);
    Ok(())
}

/// Re-maps the largest prefix of the fresh chunk `[start, start + size)` that is a whole
/// number of hugetlb pages with those pages, trying the sizes of `plan` in turn. Returns how
/// many bytes it covers (0: none, the chunk is as it was). On an error the chunk has been
/// unmapped.
///
/// # Safety
///
/// As for [`back`].
#[cfg(target_os = "linux")]
unsafe fn hugetlb_prefix(start: usize, size: usize, plan: &Plan) -> Result<usize, MmapError> {
    for &page in plan.hugetlb.iter().filter(|&&p| p != 0) {
        let len = size & !(page - 1);
        if !start.is_multiple_of(page) || len == 0 {
            continue;
        }
        let Some(slot) = RANGES.claim(start, len) else {
            return Ok(0);
        };
        let size_flag = (page.trailing_zeros() as c_int) << MAP_HUGE_SHIFT;
        // No MAP_NORESERVE: the kernel reserves the pages now, or refuses.
        // SAFETY: the prefix of the caller's fresh, unused mapping (this fn's contract).
        if unsafe { map_over(start, len, libc::MAP_HUGETLB | size_flag) }.is_ok() {
            return Ok(len);
        }
        RANGES.release(slot);
        // A refused MAP_FIXED may have unmapped the old pages (older kernels unmap first):
        // map the range normally again, whatever state it is in.
        // SAFETY: still the prefix of the caller's fresh, unused mapping.
        if let Err(err) = unsafe { map_over(start, len, libc::MAP_NORESERVE) } {
            // SAFETY: the whole chunk is ours and unused (this fn's contract); unmapping a
            // range with holes in it is fine.
            unsafe { unmap(start as *mut u8, size) };
            return Err(MmapError::Map(err));
        }
    }
    Ok(0)
}

/// No hugetlb pages outside Linux.
///
/// # Safety
///
/// As for [`back`] (nothing is done).
#[cfg(not(target_os = "linux"))]
unsafe fn hugetlb_prefix(_start: usize, _size: usize, _plan: &Plan) -> Result<usize, MmapError> {
    Ok(0)
}

/// How many hugetlb-backed chunks can be alive at once (more get transparent huge pages).
const SLOTS: usize = 256;

/// The hugetlb prefixes of live chunks (see the invariant in `range_table.rs`).
static RANGES: RangeTable<SLOTS> = RangeTable::new();

/// Forgets the hugetlb prefix of the chunk at `start`, if it has one (before it is unmapped).
pub(super) fn forget(start: usize) {
    RANGES.forget(start);
}

/// The hugetlb range `[begin, end)` that overlaps `[ptr, ptr + len)`, if any: exact for a
/// range of a live chunk the caller holds (see `range_table.rs`).
#[inline]
pub(super) fn hugetlb_part(ptr: usize, len: usize) -> Option<(usize, usize)> {
    RANGES.overlapping(ptr, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BaseAlloc, Mmap};
    use core::alloc::Layout;

    /// The registry drives decommit, move and deallocate: a range recorded as hugetlb keeps its
    /// pages on decommit (and says so) and refuses moves, while the parts around it do not.
    /// Normal memory stands in for hugetlb pages here (the test with real ones needs a
    /// reserved pool: `tests/large_pages_hugetlb.rs`).
    #[test]
    fn registered_ranges_are_kept_and_never_moved() {
        let page = Mmap::os_page_size();
        let chunk = Mmap
            .allocate(
                Layout::from_size_align(4 * HUGE_2M + page, HUGE_2M).unwrap(),
                true,
            )
            .unwrap();
        let p = chunk.pointer();
        let start = p.as_ptr() as usize;
        let len = 2 * HUGE_2M;
        // SAFETY: our committed chunk, `4 * HUGE_2M + page` long.
        unsafe { p.as_ptr().write_bytes(0x42, 4 * HUGE_2M + page) };
        let slot = RANGES.claim(start, len).unwrap();
        assert_eq!(hugetlb_part(start + page, page), Some((start, start + len)));
        assert_eq!(hugetlb_part(start + len, HUGE_2M), None);
        // SAFETY: the first 3 huge pages' worth of our live chunk; not needed any more.
        let zeroed = unsafe { Mmap.decommit(p, 3 * HUGE_2M) };
        assert!(!zeroed, "a range with kept pages does not read zero");
        let at = |off: usize| {
            // SAFETY: `off` is inside our live, committed chunk.
            unsafe { p.as_ptr().wrapping_add(off).read() }
        };
        assert_eq!(
            (at(0), at(len - 1)),
            (0x42, 0x42),
            "registered pages are kept"
        );
        assert_eq!(
            (at(len), at(3 * HUGE_2M - 1)),
            (0, 0),
            "the rest is decommitted"
        );
        assert_eq!(at(3 * HUGE_2M), 0x42, "past the range");
        // SAFETY: inside our chunk.
        let third = unsafe { p.add(3 * HUGE_2M) };
        // SAFETY: disjoint, aligned ranges of our live chunk, unused meanwhile.
        assert!(!unsafe { Mmap.move_pages(p, third, HUGE_2M) });
        // SAFETY: disjoint, aligned ranges of our live chunk, unused meanwhile.
        assert!(!unsafe { Mmap.move_pages(third, p, HUGE_2M) });
        assert_eq!(at(3 * HUGE_2M), 0x42, "a refused move changes nothing");
        forget(start);
        assert_eq!(hugetlb_part(start, len), None);
        assert!(RANGES.is_free(slot));
        // SAFETY: the first huge page of our live chunk; not needed any more.
        assert!(unsafe { Mmap.decommit(p, HUGE_2M) });
        assert_eq!(at(0), 0);
    }

    #[test]
    fn read_number_parses_sys_files() {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_eq!(read_number(c"/nonexistent/ferroc"), None);
            // `/proc/sys/vm/overcommit_memory` holds 0, 1 or 2 followed by a newline.
            if let Some(n) = read_number(c"/proc/sys/vm/overcommit_memory") {
                assert!(n <= 2);
            }
        }
        let f = facts();
        assert!(f.thp == 0 || f.thp.is_power_of_two());
    }
}
