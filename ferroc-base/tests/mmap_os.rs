//! `Mmap` against the operating system's own books: the alignment slack is unmapped at both
//! ends, and a refused `mmap` is a typed error that leaves `errno` alone.
//!
//! These checks read the whole process's address-space size and lower its address-space
//! limit, so they live in a test binary of their own with a single test: nothing else maps or
//! unmaps memory while they run.
#![cfg(all(feature = "base-mmap", target_os = "linux"))]

use std::alloc::Layout;

use ferroc_base::{BaseAlloc, Mmap, MmapError};

/// The process's mapped address space in bytes (`VmSize` of `/proc/self/status`).
fn vm_size() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb << 10
}

fn set_errno(v: i32) {
    // SAFETY: `__errno_location` has no precondition.
    let loc = unsafe { libc::__errno_location() };
    // SAFETY: `loc` is this thread's errno, valid while the thread runs.
    unsafe { *loc = v }
}

fn errno() -> i32 {
    // SAFETY: `__errno_location` has no precondition.
    let loc = unsafe { libc::__errno_location() };
    // SAFETY: `loc` is this thread's errno, valid while the thread runs.
    unsafe { *loc }
}

fn slack_is_unmapped_at_both_ends() {
    const CHUNKS: usize = 16;
    const ALIGN: usize = 256 << 20;
    let page = Mmap.page_size();
    // Sizes that are not multiples of the alignment, so that where mmap puts the reservation
    // leaves slack at both ends (the kernel packs mappings tightly: same-size requests would
    // leave almost all of it at one end).
    let sizes: Vec<usize> = (0..CHUNKS)
        .map(|i| (((i * 37) % 200) << 20) + 4 * page)
        .collect();
    let mut chunks = Vec::with_capacity(CHUNKS);
    let before = vm_size();
    for &size in &sizes {
        let c = Mmap
            .allocate(Layout::from_size_align(size, ALIGN).unwrap(), false)
            .unwrap();
        assert_eq!(c.pointer().as_ptr() as usize % ALIGN, 0);
        assert_eq!(c.layout().size(), size);
        chunks.push(c);
    }
    let grown = vm_size().saturating_sub(before);
    let kept: usize = sizes.iter().sum();
    // Each chunk reserved its size + 256 MiB - 1 page and must keep only its size: slack left
    // at either end shows as up to 256 MiB per chunk.
    assert!(
        grown <= kept + (16 << 20),
        "address space grew by {grown} bytes for {CHUNKS} chunks of {kept} bytes in all"
    );
    drop(chunks);
    assert!(
        vm_size() <= before + (16 << 20),
        "dropped chunks stay mapped"
    );
}

fn refused_mmap_is_a_typed_error_and_keeps_errno() {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) }, 0);
    let limit = (vm_size() + (512 << 20)) as libc::rlim_t;
    let lowered = libc::rlimit {
        rlim_cur: limit.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    // SAFETY: lowering the soft limit is always allowed; it is put back below.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lowered) }, 0);
    set_errno(4242);
    let result = Mmap.allocate(Layout::from_size_align(1 << 30, 1 << 22).unwrap(), false);
    let seen = errno();
    // SAFETY: restores the limit read above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &old) }, 0);
    assert_eq!(result.unwrap_err(), MmapError::Map(libc::ENOMEM));
    assert_eq!(seen, 4242, "errno changed by a failed allocate");
    // Under the old limit the same request succeeds.
    assert!(
        Mmap.allocate(Layout::from_size_align(1 << 30, 1 << 22).unwrap(), false)
            .is_ok()
    );
}

/// One test, so that the two checks never run at the same time as each other.
#[test]
fn mmap_against_the_os() {
    slack_is_unmapped_at_both_ends();
    refused_mmap_is_a_typed_error_and_keeps_errno();
}
