//! [`Mmap`]: chunks straight from the operating system.
//!
//! Chunks are reserved with `mmap(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
//! MAP_NORESERVE)`: with the kernel's overcommit, reserved pages cost nothing until touched, so
//! "commit" has nothing to do and always succeeds. Alignment beyond the page size is obtained by
//! reserving `size + align - page` bytes and unmapping the slack at both ends, so nothing is
//! leaked. Decommit is `madvise(MADV_DONTNEED)` (one advice, never OR-ed with another: advice
//! values are an enumeration, not flags), after which private anonymous pages read zero.
//! On Linux, pages move between two ranges of our mappings with `mremap(MREMAP_MAYMOVE |
//! MREMAP_FIXED | MREMAP_DONTUNMAP)`: the page tables move, no byte is copied, and the source
//! stays mapped, reading zero (Linux 5.7 or later; an older kernel refuses and the caller
//! copies).
//!
//! ## Large OS pages
//! [`Mmap::set_large_pages`] (off by default; the `FERROC_LARGE_PAGES` option sets it at
//! start-up) is one process-wide flag read by each `allocate`. With it on, a chunk of at least
//! one huge page (the arenas and the runs served straight from the OS; nothing smaller) is:
//! - **aligned** to the largest huge page it can use (2 MiB, or 1 GiB for a chunk of at least
//!   1 GiB when such pages are reserved), by the same trimming as any alignment: only address
//!   space is spent;
//! - **hugetlb-backed** on its largest prefix that is a whole number of reserved hugetlb pages,
//!   where `/sys/kernel/mm/hugepages/hugepages-{1048576,2048}kB/free_hugepages` was above 0 when
//!   first read (read once without allocating, cached): that prefix is re-mapped in place with
//!   `MAP_FIXED | MAP_HUGETLB | MAP_HUGE_1GB` (then `MAP_HUGE_2MB`) and without
//!   `MAP_NORESERVE`, so the kernel reserves the pages at once or refuses; when it refuses
//!   (the pool is used up), the range is mapped normally again and the chunk simply has no
//!   hugetlb part. An arena's slabs are whole 2 MiB pages; its header tail stays normal;
//! - **THP-advised** on the rest (all of it without hugetlb): `madvise(MADV_HUGEPAGE)` over the
//!   range, which is the committed range since commit has nothing to do here. The kernel then
//!   backs each aligned 2 MiB of it with a transparent huge page at the first touch (when
//!   `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`).
//!
//! What every operation does on such chunks:
//! - **commit**: nothing, as ever (hugetlb pages were reserved when mapped).
//! - **decommit**: THP ranges are `MADV_DONTNEED`ed like any (the arenas purge whole slabs,
//!   aligned to 4 MiB, so whole huge pages go back; a partial one is split by the kernel).
//!   Hugetlb pages are kept: returning them would leave a later fault without a reserved page
//!   (SIGBUS when the pool is empty), so they are skipped, the parts of the range outside them
//!   are decommitted, and the call answers "does not read zero": the arenas keep those slabs
//!   dirty and zero what they hand out when asked to.
//! - **move_pages**: refused ("cannot", the caller copies) when either range touches hugetlb
//!   memory (`MREMAP_DONTUNMAP` refuses it, and a move would mix page kinds in a chunk); THP
//!   ranges move like any, the page tables of whole huge pages included.
//! - **deallocate**: one `munmap` of the chunk, whose hugetlb prefix starts at its start and
//!   is whole hugetlb pages, as `munmap` of hugetlb memory needs.
//! - **page size**: [`BaseAlloc::page_size`] stays the run-time OS page size; no huge page size
//!   reaches the small-page logic above.
//!
//! Hugetlb chunks are known by their range in a fixed lock-free table (the `huge` module),
//! since `decommit` and `move_pages` only get an address range; when it is full a chunk gets
//! THP instead. Until some chunk is hugetlb-backed a lookup is one relaxed load.

mod huge;

use core::{
    alloc::Layout,
    ffi::c_int,
    fmt,
    ptr::NonNull,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::{BaseAlloc, Chunk, align_up};

/// Whether chunks of at least one huge page get large OS pages (see the module docs).
///
/// `Relaxed` is enough: the flag publishes no other data. Each `allocate` reads it once and
/// backs its chunk by what it read; what later happens to a chunk does not depend on the flag
/// (hugetlb memory is found through the registry of the `huge` module), so a change racing
/// with an allocation only decides which of the two ways that chunk is backed.
static LARGE_PAGES: AtomicBool = AtomicBool::new(false);

/// The operating system as a base: `mmap`/`munmap`/`madvise`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mmap;

/// Why an [`Mmap`] call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmapError {
    /// The layout's size plus alignment slack overflows the address space.
    Overflow,
    /// `mmap` failed with this `errno`.
    Map(i32),
}

impl fmt::Display for MmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmapError::Overflow => f.write_str("requested size overflows the address space"),
            MmapError::Map(errno) => write!(f, "mmap failed (errno {errno})"),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { libc::__errno_location() }
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn errno_location() -> *mut c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { libc::__error() }
}

/// Runs `f` and puts `errno` back as it was, so callers of the allocator never see our
/// failed system calls. Returns `f`'s result and the `errno` it left.
#[inline]
fn preserving_errno<T>(f: impl FnOnce() -> T) -> (T, c_int) {
    let loc = errno_location();
    // SAFETY: `loc` is this thread's errno.
    let saved = unsafe { *loc };
    let r = f();
    // SAFETY: `loc` is still this thread's errno (`errno_location` of this thread), valid
    // for as long as the thread runs.
    let err = unsafe { core::mem::replace(&mut *loc, saved) };
    (r, err)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const NORESERVE: c_int = libc::MAP_NORESERVE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NORESERVE: c_int = 0;

/// Maps `len` fresh bytes anywhere.
fn map(len: usize) -> Result<NonNull<u8>, MmapError> {
    let (ptr, err) = preserving_errno(|| {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
        // no existing memory.
        unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | NORESERVE,
                -1,
                0,
            )
        }
    });
    if ptr == libc::MAP_FAILED {
        return Err(MmapError::Map(err));
    }
    NonNull::new(ptr.cast()).ok_or(MmapError::Map(libc::ENOMEM))
}

/// Maps `size` fresh bytes (a multiple of `page`) at an `align`-aligned address: reserves
/// `size + align - page` bytes and unmaps the slack at both ends.
fn map_aligned(size: usize, align: usize, page: usize) -> Result<NonNull<u8>, MmapError> {
    let reserve = size.checked_add(align - page).ok_or(MmapError::Overflow)?;
    if reserve > isize::MAX as usize {
        return Err(MmapError::Overflow);
    }
    let raw = map(reserve)?.as_ptr();
    let Some(start) = align_up(raw as usize, align) else {
        // SAFETY: the mapping made just above, not handed out.
        unsafe { unmap(raw, reserve) };
        return Err(MmapError::Overflow);
    };
    let head = start - raw as usize;
    let tail = reserve - head - size;
    // SAFETY: `[raw, raw + head)` is the unused start of the mapping made just above.
    unsafe { unmap(raw, head) };
    // SAFETY: `head + size <= reserve`: the offset stays inside that mapping.
    let end = unsafe { raw.add(head + size) };
    // SAFETY: `[end, end + tail)` is the unused end of that mapping.
    unsafe { unmap(end, tail) };
    // SAFETY: `head < reserve`: the offset stays inside that mapping.
    let start = unsafe { raw.add(head) };
    // SAFETY: `start` is inside the mapping, so non-null.
    Ok(unsafe { NonNull::new_unchecked(start) })
}

/// `madvise(MADV_DONTNEED)` on `[ptr, ptr + len)`; whether the range reads zero afterwards.
///
/// # Safety
///
/// The range is page-aligned, inside one of our mappings, and its contents are not needed.
unsafe fn dont_need(ptr: NonNull<u8>, len: usize) -> bool {
    let (r, _) = preserving_errno(|| {
        // SAFETY: the range is inside one of our mappings (this fn's contract); MADV_DONTNEED
        // drops its pages, which read zero when next touched.
        unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTNEED) }
    });
    r == 0 && cfg!(any(target_os = "linux", target_os = "android"))
}

/// Unmaps `[ptr, ptr + len)`; a zero length does nothing.
///
/// # Safety
///
/// The range is mapped by us and nothing uses it any more.
unsafe fn unmap(ptr: *mut u8, len: usize) {
    if len != 0 {
        preserving_errno(|| {
            // SAFETY: the caller's contract. munmap of our own mapping only fails on invalid
            // arguments, which the contract rules out; the result carries nothing to act on.
            unsafe { libc::munmap(ptr.cast(), len) }
        });
    }
}

/// `mremap` of `len` bytes from `from` to exactly `to`, leaving `from` mapped and empty.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn move_pages(from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
    let (r, _) = preserving_errno(|| {
        // SAFETY: both ranges are inside our private anonymous mappings and unused (the
        // caller's contract); the target's old pages are unmapped by MREMAP_FIXED, and
        // MREMAP_DONTUNMAP keeps the source mapped (it reads zero afterwards). On failure the
        // kernel changes nothing.
        unsafe {
            libc::mremap(
                from.as_ptr().cast(),
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
                to.as_ptr().cast::<libc::c_void>(),
            )
        }
    });
    r == to.as_ptr().cast()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn move_pages(_from: NonNull<u8>, _to: NonNull<u8>, _len: usize) -> bool {
    false
}

impl Mmap {
    /// Turns large OS pages on or off for the chunks allocated from now on, process-wide (see
    /// the module docs): chunks of at least one huge page (arenas, and runs served straight
    /// from the OS) get transparent huge pages, and hugetlb pages where the system has
    /// reserved some. Chunks that exist keep how they were backed. Off by default.
    pub fn set_large_pages(on: bool) {
        LARGE_PAGES.store(on, Ordering::Relaxed);
    }

    /// Whether large OS pages are on (see [`set_large_pages`](Self::set_large_pages)).
    pub fn large_pages() -> bool {
        LARGE_PAGES.load(Ordering::Relaxed)
    }

    /// The OS page size, read once with `sysconf` and cached.
    pub fn os_page_size() -> usize {
        use core::sync::atomic::AtomicUsize;
        static PAGE: AtomicUsize = AtomicUsize::new(0);
        let cached = PAGE.load(Ordering::Relaxed);
        if cached != 0 {
            return cached;
        }
        let (raw, _) = preserving_errno(|| {
            // SAFETY: sysconf has no preconditions.
            unsafe { libc::sysconf(libc::_SC_PAGESIZE) }
        });
        let page = if raw > 0 && (raw as usize).is_power_of_two() {
            raw as usize
        } else {
            // An OS that cannot tell us its page size still maps in units of at least this.
            4096
        };
        PAGE.store(page, Ordering::Relaxed);
        page
    }
}

// SAFETY: chunks are fresh private anonymous mappings (zeroed, disjoint, aligned by trimming),
// released by `munmap` of exactly the range kept; commit is a no-op because the whole mapping
// is readable and writable; `MADV_DONTNEED` keeps the range mapped and makes it read zero.
unsafe impl BaseAlloc for Mmap {
    type Handle = ();
    type Error = MmapError;

    fn page_size(&self) -> usize {
        Self::os_page_size()
    }

    /// The process-wide setting ([`Mmap::set_large_pages`]): every `Mmap` is the same OS.
    fn use_large_pages(&self, on: bool) {
        Self::set_large_pages(on);
    }

    fn allocate(&self, layout: Layout, _commit: bool) -> Result<Chunk<Self>, MmapError> {
        let page = Self::os_page_size();
        let size = align_up(layout.size().max(1), page).ok_or(MmapError::Overflow)?;
        let align = layout.align().max(page);
        let chunk_layout = Layout::from_size_align(size, align).map_err(|_| MmapError::Overflow)?;
        let plan = Self::large_pages().then(|| huge::Plan::for_size(size));
        let map_align = plan.map_or(align, |p| align.max(p.align));
        let ptr = map_aligned(size, map_align, page)?;
        if let Some(plan) = plan {
            // SAFETY: `[ptr, ptr + size)` is the fresh mapping made just above, aligned to
            // `plan.align`, and nobody has it yet.
            unsafe { huge::back(ptr.as_ptr() as usize, size, &plan) }?;
        }
        // SAFETY: fresh anonymous memory (hugetlb pages too), zeroed, aligned and disjoint;
        // released by munmap.
        Ok(unsafe { Chunk::new(ptr, chunk_layout, true, ()) })
    }

    unsafe fn deallocate(chunk: &mut Chunk<Self>) {
        let ptr = chunk.pointer().as_ptr();
        // Forgotten before the unmap, so that no later chunk at these addresses looks hugetlb.
        huge::forget(ptr as usize);
        // SAFETY: the chunk is exactly the range we kept mapped (a hugetlb prefix of it starts
        // at its start and is whole hugetlb pages), and it is released once.
        unsafe { unmap(ptr, chunk.layout().size()) }
    }

    unsafe fn commit(&self, _ptr: NonNull<u8>, _len: usize) -> Result<(), MmapError> {
        Ok(())
    }

    unsafe fn decommit(&self, ptr: NonNull<u8>, len: usize) -> bool {
        let begin = ptr.as_ptr() as usize;
        let Some((huge_begin, huge_end)) = huge::hugetlb_part(begin, len) else {
            // SAFETY: the range is page-aligned and inside one of our mappings, and its
            // contents are not needed (this fn's contract).
            return unsafe { dont_need(ptr, len) };
        };
        // Hugetlb pages stay: giving them back would leave a later fault without a reserved
        // page (it could raise SIGBUS once the pool is used up). Only the parts of the range
        // outside them are decommitted, and the range as a whole does not read zero.
        let end = begin + len;
        if begin < huge_begin {
            // SAFETY: the part of the caller's range before the hugetlb pages: page-aligned
            // (both ends are) and not needed (this fn's contract).
            unsafe { dont_need(ptr, huge_begin - begin) };
        }
        if huge_end < end {
            // SAFETY: `huge_end` lies inside the caller's range, which is inside our mapping.
            let tail = unsafe { ptr.add(huge_end - begin) };
            // SAFETY: the part of the caller's range after the hugetlb pages: page-aligned
            // (both ends are) and not needed (this fn's contract).
            unsafe { dont_need(tail, end - huge_end) };
        }
        false
    }

    unsafe fn move_pages(&self, from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
        // Hugetlb memory cannot move with MREMAP_DONTUNMAP (the kernel refuses it) and a move
        // between hugetlb and normal memory would change what backs the chunks: the caller
        // copies instead.
        if huge::hugetlb_part(from.as_ptr() as usize, len).is_some()
            || huge::hugetlb_part(to.as_ptr() as usize, len).is_some()
        {
            return false;
        }
        move_pages(from, to, len)
    }

    fn now_ms(&self) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let (r, _) = preserving_errno(|| {
            // SAFETY: `ts` is a valid out-pointer.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }
        });
        (r == 0).then(|| ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    fn set_errno(v: c_int) {
        // SAFETY: this thread's errno.
        unsafe { *errno_location() = v }
    }

    fn errno() -> c_int {
        // SAFETY: this thread's errno.
        unsafe { *errno_location() }
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(Mmap.page_size().is_power_of_two());
    }

    #[test]
    fn aligned_chunks_are_zeroed_and_writable() {
        for shift in [12, 16, 22, 26] {
            let align = 1usize << shift;
            let chunk = Mmap
                .allocate(Layout::from_size_align(3 * align + 5, align).unwrap(), true)
                .unwrap();
            assert_eq!(chunk.pointer().as_ptr() as usize % align, 0);
            assert!(chunk.layout().size() >= 3 * align + 5);
            assert!(chunk.is_zeroed());
            // SAFETY: the chunk is ours, committed, and this long.
            let s = unsafe {
                core::slice::from_raw_parts_mut(chunk.pointer().as_ptr(), chunk.layout().size())
            };
            assert!(s.iter().step_by(4096).all(|&b| b == 0));
            s.iter_mut().step_by(4096).for_each(|b| *b = 7);
        }
    }

    #[test]
    fn decommit_zeroes_and_keeps_errno() {
        let chunk = Mmap
            .allocate(Layout::from_size_align(1 << 20, 1 << 16).unwrap(), true)
            .unwrap();
        let p = chunk.pointer();
        // SAFETY: the chunk is ours and 1 MiB long.
        unsafe { p.as_ptr().write_bytes(0xAB, 1 << 20) };
        set_errno(1234);
        // SAFETY: the range is the chunk, whose contents we no longer need.
        let zeroed = unsafe { Mmap.decommit(p, 1 << 20) };
        assert_eq!(errno(), 1234);
        // On Linux `MADV_DONTNEED` zeroes private anonymous pages. An advice OR-ed with another
        // (say `MADV_DONTNEED | MADV_FREE`, which is `MADV_MERGEABLE`) would keep the bytes.
        assert_eq!(
            zeroed,
            cfg!(any(target_os = "linux", target_os = "android"))
        );
        if zeroed {
            let page = Mmap::os_page_size();
            for off in (0..1 << 20).step_by(page).chain([12345, (1 << 20) - 1]) {
                let at = p.as_ptr().wrapping_add(off);
                // SAFETY: `off` is below the chunk's 1 MiB, and the chunk is ours and committed.
                assert_eq!(unsafe { at.read() }, 0, "offset {off}");
            }
        }
        // SAFETY: test-owned memory, used within its bounds while alive.
        unsafe { Mmap.commit(p, 1 << 20) }.unwrap();
        // SAFETY: test-owned memory, used within its bounds while alive.
        unsafe { p.as_ptr().write(1) };
    }

    #[test]
    fn failure_is_typed_and_keeps_errno() {
        set_errno(77);
        let huge = Layout::from_size_align(isize::MAX as usize - (1 << 20), 1 << 20).unwrap();
        let err = Mmap.allocate(huge, false).unwrap_err();
        assert!(matches!(err, MmapError::Overflow | MmapError::Map(_)));
        assert_eq!(errno(), 77);
        // 64 TiB: representable, but more than any machine here maps.
        let big = Layout::from_size_align(1 << 46, 1 << 12).unwrap();
        if let Err(e) = Mmap.allocate(big, false) {
            assert!(matches!(e, MmapError::Map(_)));
        }
        assert_eq!(errno(), 77);
    }

    #[test]
    fn success_paths_keep_errno() {
        set_errno(4321);
        let page = Mmap.page_size();
        let chunk = Mmap
            .allocate(Layout::from_size_align(5 * page, 1 << 21).unwrap(), false)
            .unwrap();
        assert_eq!(errno(), 4321, "allocate (mmap and two munmaps)");
        // SAFETY: the chunk is ours.
        unsafe { Mmap.commit(chunk.pointer(), page) }.unwrap();
        // SAFETY: the first page of our live chunk, page-aligned; nothing reads it afterwards.
        unsafe { Mmap.decommit(chunk.pointer(), page) };
        assert_eq!(errno(), 4321, "commit and decommit");
        assert!(Mmap.now_ms().is_some());
        assert_eq!(errno(), 4321, "clock");
        // A failed madvise leaves errno alone too: a start that is not page-aligned is EINVAL
        // and changes nothing (the chunk is still ours).
        let odd = NonNull::new(chunk.pointer().as_ptr().wrapping_add(1)).unwrap();
        // SAFETY: inside our live chunk; misaligned on purpose so that madvise refuses it.
        let zeroed = unsafe { Mmap.decommit(odd, page) };
        assert!(!zeroed, "a refused decommit must not claim zero");
        assert_eq!(errno(), 4321, "failed madvise");
        drop(chunk);
        assert_eq!(errno(), 4321, "deallocate (munmap)");
    }

    #[test]
    fn moved_pages_keep_their_bytes_and_the_source_reads_zero() {
        let page = Mmap.page_size();
        let len = 64 * page;
        let chunk = Mmap
            .allocate(Layout::from_size_align(3 * len, 1 << 21).unwrap(), true)
            .unwrap();
        let from = chunk.pointer();
        // SAFETY: inside the chunk, which is `3 * len` long.
        let to = unsafe { from.add(2 * len) };
        for i in 0..len / 8 {
            // SAFETY: word `i` of the first `len` bytes of our committed chunk (8-aligned).
            unsafe {
                from.as_ptr()
                    .cast::<u64>()
                    .wrapping_add(i)
                    .write(i as u64 * 3 + 1)
            };
        }
        // SAFETY: `[to, to + len)` is the last third of our committed chunk.
        unsafe { to.as_ptr().write_bytes(0xEE, len) };
        set_errno(99);
        // SAFETY: disjoint page-aligned ranges of our live chunk.
        let moved = unsafe { Mmap.move_pages(from, to, len) };
        assert_eq!(errno(), 99);
        assert_eq!(
            moved,
            cfg!(any(target_os = "linux", target_os = "android")),
            "mremap with MREMAP_DONTUNMAP needs Linux 5.7"
        );
        if moved {
            for i in 0..len / 8 {
                // SAFETY: word `i` of `[to, to + len)`, inside our chunk.
                let moved = unsafe { to.as_ptr().cast::<u64>().wrapping_add(i).read() };
                // SAFETY: word `i` of `[from, from + len)`, inside our chunk.
                let source = unsafe { from.as_ptr().cast::<u64>().wrapping_add(i).read() };
                assert_eq!(moved, i as u64 * 3 + 1);
                assert_eq!(source, 0, "source reads zero");
            }
            // The source is still ours and writable.
            // SAFETY: `[from, from + len)` is still part of our live chunk.
            unsafe { from.as_ptr().write_bytes(1, len) };
        }
        // A range that is not page-aligned is refused and changes nothing.
        let odd = NonNull::new(from.as_ptr().wrapping_add(1)).unwrap();
        // SAFETY: both ranges lie inside our live chunk and do not overlap; `odd` is
        // misaligned on purpose, so the base must refuse without touching either.
        assert!(!unsafe { Mmap.move_pages(odd, to, page) });
        assert_eq!(errno(), 99);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = Mmap.now_ms().unwrap();
        let b = Mmap.now_ms().unwrap();
        assert!(b >= a);
    }
}
