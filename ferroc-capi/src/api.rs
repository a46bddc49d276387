//! The `fe_*` functions (see `include/ferroc.h`).

use core::{
    alloc::Layout,
    ffi::{c_char, c_int, c_long, c_void},
    ptr::{self, NonNull},
};

use ferroc_global::{GlobalInstance, InvalidFree, OptionError, OptionId};

use crate::{GLOBAL, is_ferroc_pointer};

/// `errno` of the calling thread.
#[inline]
fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` has no precondition.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: it points at the calling thread's `errno`, always valid for it.
    unsafe { *errno = e };
}

/// Null with `errno = ENOMEM`.
#[cold]
fn enomem() -> *mut c_void {
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// The OS page size.
fn page_size() -> usize {
    ferroc_base::Mmap::os_page_size()
}

/// Allocates `size` bytes aligned to `align` (a power of two), or null with `ENOMEM`.
#[inline(always)]
pub(crate) fn alloc_aligned(size: usize, align: usize) -> *mut c_void {
    match Layout::from_size_align(size, align).map(|layout| GLOBAL.allocate(layout)) {
        Ok(Ok(p)) => p.as_ptr().cast(),
        _ => enomem(),
    }
}

/// The body of every `malloc`: the heap's small fast path first (it checks the size, so no
/// layout is built), then the general path (without trying the fast path again).
#[inline(always)]
pub(crate) fn malloc_impl(size: usize) -> *mut c_void {
    if let Some(p) = GLOBAL.allocate_small(size, 1) {
        return p.as_ptr().cast();
    }
    malloc_slow(size)
}

/// `malloc` after its fast path failed: any size, or null with `ENOMEM`.
#[cold]
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    match Layout::from_size_align(size, 1).map(|layout| GLOBAL.allocate_slow(layout)) {
        Ok(Ok(p)) => p.as_ptr().cast(),
        _ => enomem(),
    }
}

/// `malloc`: at least `size` bytes, 16-aligned from 16 bytes on (8-aligned below); a unique
/// pointer for size 0.
#[unsafe(no_mangle)]
pub extern "C" fn fe_malloc(size: usize) -> *mut c_void {
    malloc_impl(size)
}

/// `calloc`: zeroed memory for `n` elements of `size` bytes; `ENOMEM` on overflow.
#[unsafe(no_mangle)]
pub extern "C" fn fe_calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        return enomem();
    };
    match Layout::from_size_align(total, 1).map(|layout| GLOBAL.allocate_zeroed(layout)) {
        Ok(Ok(p)) => p.as_ptr().cast(),
        _ => enomem(),
    }
}

/// `free`: null does nothing; a pointer Ferroc did not allocate goes to the invalid-free
/// policy (`FE_OPTION_INVALID_FREE`: abort, the default, warn or ignore); `errno` is kept.
///
/// # Safety
///
/// `p` is null, a live block of Ferroc, or a pointer Ferroc never handed out.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_free(p: *mut c_void) {
    // SAFETY: `p` is null, a live Ferroc block or a foreign pointer (this fn's contract).
    unsafe { free_impl(p) }
}

/// The body of every `free`: inlined into each exported name.
///
/// # Safety
///
/// As for [`fe_free`].
#[inline(always)]
pub(crate) unsafe fn free_impl(p: *mut c_void) {
    if is_ferroc_pointer(p.cast()) {
        // SAFETY: the slab map has `p`'s slab, and address 0 is never mapped.
        let block = unsafe { NonNull::new_unchecked(p.cast()) };
        // SAFETY: a pointer into Ferroc's memory is a live Ferroc block (this fn's contract).
        unsafe { GLOBAL.free(block) }
    } else if !p.is_null() {
        invalid_free(p);
    }
}

/// `free` of a pointer Ferroc never handed out: the invalid-free policy. Never written to.
#[cold]
#[inline(never)]
fn invalid_free(p: *mut c_void) {
    let policy = GLOBAL.options().invalid_free;
    if policy == InvalidFree::Ignore {
        return;
    }
    let saved = errno();
    let mut w = ferroc_global::print::StackWriter::<96>::new();
    let _ = core::fmt::Write::write_fmt(
        &mut w,
        format_args!("ferroc: free(): invalid pointer {p:p}\n"),
    );
    w.flush_to(2);
    if policy == InvalidFree::Abort {
        // SAFETY: abort has no precondition; it does not return.
        unsafe { libc::abort() };
    }
    set_errno(saved);
}

/// `free_sized`: as `free` (the size is only a hint).
///
/// # Safety
///
/// As for [`fe_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: `p` is null, a live Ferroc block or a foreign pointer (this fn's contract).
    unsafe { fe_free(p) }
}

/// `free_aligned_sized`: as `free`.
///
/// # Safety
///
/// As for [`fe_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: `p` is null, a live Ferroc block or a foreign pointer (this fn's contract).
    unsafe { fe_free(p) }
}

/// `realloc`: `realloc(NULL, n)` allocates; `realloc(p, 0)` frees `p` and returns NULL (as
/// glibc does); growth and shrink keep the contents, in place when the block allows. On
/// failure NULL with `ENOMEM`, and `p` is untouched. A foreign `p` fails with `ENOMEM`.
///
/// # Safety
///
/// `p` is null or a live block of Ferroc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    let Some(block) = NonNull::new(p.cast::<u8>()) else {
        return fe_malloc(size);
    };
    if !is_ferroc_pointer(block.as_ptr()) {
        return enomem();
    }
    if size == 0 {
        // SAFETY: a non-null pointer into Ferroc's memory is a live Ferroc block (this fn's
        // contract).
        unsafe { GLOBAL.free(block) };
        return ptr::null_mut();
    }
    let Ok(new) = Layout::from_size_align(size, 1) else {
        return enomem();
    };
    // SAFETY: a live Ferroc block (this fn's contract, and it is in Ferroc's memory).
    let held = unsafe { GLOBAL.usable_size(block) };
    // SAFETY: `held` bytes lie inside one mapping, so they fit in `isize`; align 1 is valid.
    let old = unsafe { Layout::from_size_align_unchecked(held, 1) };
    // SAFETY: a live Ferroc block holding `held` bytes, as `old` says.
    match unsafe { GLOBAL.reallocate(block, old, new) } {
        Ok(r) => r.as_ptr().cast(),
        Err(_) => enomem(),
    }
}

/// `reallocarray`: `realloc(p, n * size)` with overflow checked (`ENOMEM`).
///
/// # Safety
///
/// As for [`fe_realloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: `p` is null or a live Ferroc block (this fn's contract).
        Some(total) => unsafe { fe_realloc(p, total) },
        None => enomem(),
    }
}

/// `posix_memalign`: `EINVAL` if `align` is not a power of two multiple of `sizeof(void *)`,
/// `ENOMEM` on failure; `*out` is only written on success. Size 0 gives a freeable pointer.
///
/// # Safety
///
/// `out` is valid for a pointer write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_posix_memalign(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let saved = errno();
    let p = alloc_aligned(size, align);
    if p.is_null() {
        set_errno(saved);
        return libc::ENOMEM;
    }
    // SAFETY: `out` is valid for a pointer write (this fn's contract).
    unsafe { *out = p };
    0
}

fn errno() -> c_int {
    // SAFETY: `__errno_location` has no precondition.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: it points at the calling thread's `errno`, always valid for it.
    unsafe { *errno }
}

/// `aligned_alloc`: `EINVAL` (and NULL) if `align` is not a power of two.
#[unsafe(no_mangle)]
pub extern "C" fn fe_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    alloc_aligned(size, align)
}

/// `memalign`: like glibc, an alignment that is not a power of two is rounded up to one.
#[unsafe(no_mangle)]
pub extern "C" fn fe_memalign(align: usize, size: usize) -> *mut c_void {
    match align.max(1).checked_next_power_of_two() {
        Some(a) => alloc_aligned(size, a),
        None => {
            set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// `valloc`: page-aligned memory.
#[unsafe(no_mangle)]
pub extern "C" fn fe_valloc(size: usize) -> *mut c_void {
    alloc_aligned(size, page_size())
}

/// `pvalloc`: page-aligned memory, the size rounded up to whole pages (one page for 0).
#[unsafe(no_mangle)]
pub extern "C" fn fe_pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match ferroc_base::align_up(size.max(1), page) {
        Some(rounded) => alloc_aligned(rounded, page),
        None => enomem(),
    }
}

/// `malloc_usable_size`: the bytes usable in the block (0 for NULL or a foreign pointer).
///
/// # Safety
///
/// `p` is null, a live block of Ferroc, or a pointer Ferroc never handed out.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_malloc_usable_size(p: *const c_void) -> usize {
    if !is_ferroc_pointer(p.cast()) {
        return 0;
    }
    // SAFETY: the slab map has `p`'s slab, and address 0 is never mapped.
    let block = unsafe { NonNull::new_unchecked(p as *mut u8) };
    // SAFETY: a pointer into Ferroc's memory is a live Ferroc block (this fn's contract).
    unsafe { GLOBAL.usable_size(block) }
}

/// `strdup` with Ferroc's memory.
///
/// # Safety
///
/// `s` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_strdup(s: *const c_char) -> *mut c_char {
    if s.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: NUL-terminated (the caller's contract).
    let n = unsafe { libc::strlen(s) };
    // SAFETY: `n` bytes are readable.
    unsafe { copy_string(s, n) }
}

/// `strndup` with Ferroc's memory: at most `n` bytes, NUL-terminated.
///
/// # Safety
///
/// `s` holds a NUL or at least `n` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_strndup(s: *const c_char, n: usize) -> *mut c_char {
    if s.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `s` holds a NUL or `n` readable bytes (this fn's contract), all strnlen reads.
    let len = unsafe { libc::strnlen(s, n) };
    // SAFETY: `len` bytes are readable.
    unsafe { copy_string(s, len) }
}

/// A new NUL-terminated copy of the `n` bytes at `s`.
///
/// # Safety
///
/// `n` bytes at `s` are readable.
unsafe fn copy_string(s: *const c_char, n: usize) -> *mut c_char {
    let Some(size) = n.checked_add(1) else {
        return enomem().cast();
    };
    let p = fe_malloc(size).cast::<c_char>();
    if !p.is_null() {
        // SAFETY: `n` bytes at `s` are readable (this fn's contract); `p` is a new block of
        // `n + 1` bytes, so writable and distinct from `s`.
        unsafe { ptr::copy_nonoverlapping(s, p, n) };
        // SAFETY: byte `n` is the last of the `n + 1` bytes of `p`.
        let end = unsafe { p.add(n) };
        // SAFETY: `end` is in `p`'s block, writable.
        unsafe { end.write(0) };
    }
    p
}

/// `realpath`: when `resolved` is NULL, the result is allocated by Ferroc (free it with
/// `fe_free`/`free`).
///
/// # Safety
///
/// `path` is a NUL-terminated string; `resolved` is NULL or holds `PATH_MAX` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fe_realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    if !resolved.is_null() {
        // SAFETY: `path` is NUL-terminated and `resolved` holds PATH_MAX bytes (this fn's
        // contract).
        return unsafe { libc::realpath(path, resolved) };
    }
    let mut buf = [0 as c_char; libc::PATH_MAX as usize];
    // SAFETY: `buf` holds PATH_MAX bytes.
    let r = unsafe { libc::realpath(path, buf.as_mut_ptr()) };
    if r.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: realpath wrote a NUL-terminated string into `buf`.
    unsafe { fe_strdup(buf.as_ptr()) }
}

/// Collects the calling thread's heap; `force` (non-zero) also takes over abandoned memory and
/// returns free memory to the OS at once.
#[unsafe(no_mangle)]
pub extern "C" fn fe_collect(force: bool) {
    GLOBAL.collect(force)
}

/// Prints statistics to standard error (feature `stat`; otherwise a note saying so).
#[unsafe(no_mangle)]
pub extern "C" fn fe_stats_print() {
    #[cfg(feature = "stat")]
    GLOBAL.show_stats();
    #[cfg(not(feature = "stat"))]
    {
        let msg = b"ferroc: statistics are not compiled in (feature `stat`)\n";
        // SAFETY: writes a static buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    }
}

/// Ferroc's version as `major * 10000 + minor * 100 + patch`.
#[unsafe(no_mangle)]
pub extern "C" fn fe_version() -> c_int {
    const fn num(s: &str) -> c_int {
        let b = s.as_bytes();
        let mut i = 0;
        let mut v = 0;
        while i < b.len() {
            v = v * 10 + (b[i] - b'0') as c_int;
            i += 1;
        }
        v
    }
    num(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + num(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + num(env!("CARGO_PKG_VERSION_PATCH"))
}

/// `malloc_trim`: collects and purges at once; returns 1 if memory went back to the OS.
#[unsafe(no_mangle)]
pub extern "C" fn fe_malloc_trim(_pad: usize) -> c_int {
    let before = GLOBAL.arenas().stats();
    GLOBAL.collect(true);
    let after = GLOBAL.arenas().stats();
    c_int::from(
        after.committed < before.committed
            || after.direct_bytes < before.direct_bytes
            || before.pending_purge > 0,
    )
}

/// `fe_option_set`: sets one option (`FE_OPTION_*`); 0 on success, `EINVAL` for an unknown
/// option or a bad value, `EBUSY` for a start-up-only option (large pages, eager commit,
/// reserve) after the first allocation. The run-time ones (purge delay, verbose, show stats,
/// invalid free) take effect at once.
#[unsafe(no_mangle)]
pub extern "C" fn fe_option_set(option: c_int, value: c_long) -> c_int {
    let Some(id) = OptionId::from_raw(option) else {
        return libc::EINVAL;
    };
    // `long` is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let value = i64::from(value);
    match GLOBAL.set_option(id, value) {
        Ok(()) => 0,
        Err(OptionError::Invalid) => libc::EINVAL,
        Err(OptionError::Started) => libc::EBUSY,
    }
}

/// `fe_option_get`: the value in force of one option (booleans 0/1, the reserve in bytes,
/// the invalid-free policy as `FE_INVALID_FREE_*`); 0 with `errno = EINVAL` for an unknown
/// option.
#[unsafe(no_mangle)]
pub extern "C" fn fe_option_get(option: c_int) -> c_long {
    match OptionId::from_raw(option) {
        Some(id) => c_long::try_from(GLOBAL.option(id)).unwrap_or(c_long::MAX),
        None => {
            set_errno(libc::EINVAL);
            0
        }
    }
}

/// glibc's `mallopt` parameters (`<malloc.h>`).
mod m {
    pub const MXFAST: i32 = 1;
    pub const TRIM_THRESHOLD: i32 = -1;
    pub const TOP_PAD: i32 = -2;
    pub const MMAP_THRESHOLD: i32 = -3;
    pub const MMAP_MAX: i32 = -4;
    pub const CHECK_ACTION: i32 = -5;
    pub const PERTURB: i32 = -6;
    pub const ARENA_TEST: i32 = -7;
    pub const ARENA_MAX: i32 = -8;
}

/// `mallopt`: glibc's tuning parameters, mapped onto Ferroc's options where they mean
/// something; always 1 (success), as glibc's documentation allows for parameters an
/// allocator does not use.
///
/// - `M_TRIM_THRESHOLD`: when free memory goes back to the OS. `0` gives it back at once
///   (purge delay 0); a negative value (glibc reads it as "never") never purges by time
///   (purge delay -1); a positive value restores the default delay (10 ms): Ferroc returns
///   free slabs by age, not by the size of the free top.
/// - `M_CHECK_ACTION`: what a `free` of a pointer that is not Ferroc's does: bit 2 set
///   aborts, else bit 1 set warns, else ignores (`FE_OPTION_INVALID_FREE`).
/// - `M_MMAP_THRESHOLD`, `M_MMAP_MAX`, `M_TOP_PAD`, `M_ARENA_MAX`, `M_ARENA_TEST`,
///   `M_MXFAST`, `M_PERTURB` and anything else: accepted and ignored (Ferroc has one heap
///   per thread, no free-top to pad, and serves blocks larger than its largest arena size
///   from the OS by its geometry).
#[unsafe(no_mangle)]
pub extern "C" fn fe_mallopt(param: c_int, value: c_int) -> c_int {
    match param {
        m::TRIM_THRESHOLD => {
            let delay = match value {
                0 => 0,
                v if v < 0 => -1,
                _ => ferroc_arena::DEFAULT_PURGE_DELAY_MS as i64,
            };
            let _ = GLOBAL.set_option(OptionId::PurgeDelay, delay);
        }
        m::CHECK_ACTION => {
            let policy = if value & 2 != 0 {
                InvalidFree::Abort
            } else if value & 1 != 0 {
                InvalidFree::Warn
            } else {
                InvalidFree::Ignore
            };
            let _ = GLOBAL.set_option(OptionId::InvalidFree, policy as i64);
        }
        m::MXFAST
        | m::TOP_PAD
        | m::MMAP_THRESHOLD
        | m::MMAP_MAX
        | m::PERTURB
        | m::ARENA_TEST
        | m::ARENA_MAX => {}
        _ => {}
    }
    1
}
