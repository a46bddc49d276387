//! The C allocator, replaced (feature `override`): every name a C program or glibc itself may
//! call to allocate or free.

use core::ffi::{c_int, c_void};

use crate::api::*;
use crate::glibc::*;

/// Defines exported C functions that forward to an `fe_*` function.
macro_rules! forward {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $target:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// The C contract of this function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: this function's C contract (its `# Safety`) is the one `$target`
            // requires, with the same arguments.
            #[allow(unused_unsafe)]
            unsafe { $target($($arg),*) }
        }
    )*};
}

/// `malloc`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    malloc_impl(size)
}

/// `free`.
///
/// # Safety
///
/// `p` is null, a live block of Ferroc, or a pointer Ferroc never handed out.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: `p` is null, a live Ferroc block or a foreign pointer (this fn's contract).
    unsafe { free_impl(p) }
}

forward! {
    /// `calloc`.
    fn calloc(n: usize, size: usize) -> *mut c_void => fe_calloc;
    /// `realloc`.
    fn realloc(p: *mut c_void, size: usize) -> *mut c_void => fe_realloc;
    /// `reallocarray`.
    fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void => fe_reallocarray;
    /// `cfree` (old SunOS/glibc name of `free`).
    fn cfree(p: *mut c_void) => fe_free;
    /// `free_sized` (C23).
    fn free_sized(p: *mut c_void, size: usize) => fe_free_sized;
    /// `free_aligned_sized` (C23).
    fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) => fe_free_aligned_sized;
    /// `posix_memalign`.
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int => fe_posix_memalign;
    /// `aligned_alloc` (C11).
    fn aligned_alloc(align: usize, size: usize) -> *mut c_void => fe_aligned_alloc;
    /// `memalign`.
    fn memalign(align: usize, size: usize) -> *mut c_void => fe_memalign;
    /// `valloc`.
    fn valloc(size: usize) -> *mut c_void => fe_valloc;
    /// `pvalloc`.
    fn pvalloc(size: usize) -> *mut c_void => fe_pvalloc;
    /// `malloc_usable_size`.
    fn malloc_usable_size(p: *const c_void) -> usize => fe_malloc_usable_size;
    /// `malloc_trim`: collects and purges; 1 if memory went back to the OS.
    fn malloc_trim(pad: usize) -> c_int => fe_malloc_trim;
    /// `mallopt`: glibc's parameters mapped onto Ferroc's options (see `fe_mallopt`); 1.
    fn mallopt(param: c_int, value: c_int) -> c_int => fe_mallopt;
    /// `mallinfo2`: Ferroc's figures (see `glibc.rs`).
    fn mallinfo2() -> Mallinfo2 => fe_mallinfo2;
    /// `mallinfo`: as `mallinfo2`, saturating at `INT_MAX`.
    fn mallinfo() -> Mallinfo => fe_mallinfo;
    /// `malloc_stats`: Ferroc's statistics table on stderr.
    fn malloc_stats() => fe_malloc_stats;
    /// `malloc_info`: Ferroc's figures as glibc's XML.
    fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int => fe_malloc_info;
    /// glibc's internal name of `malloc`.
    fn __libc_malloc(size: usize) -> *mut c_void => fe_malloc;
    /// glibc's internal name of `calloc`.
    fn __libc_calloc(n: usize, size: usize) -> *mut c_void => fe_calloc;
    /// glibc's internal name of `realloc`.
    fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void => fe_realloc;
    /// glibc's internal name of `free`.
    fn __libc_free(p: *mut c_void) => fe_free;
    /// glibc's internal name of `memalign`.
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void => fe_memalign;
    /// glibc's internal name of `valloc`.
    fn __libc_valloc(size: usize) -> *mut c_void => fe_valloc;
    /// glibc's internal name of `pvalloc`.
    fn __libc_pvalloc(size: usize) -> *mut c_void => fe_pvalloc;
    /// glibc's internal name of `posix_memalign`.
    fn __posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int => fe_posix_memalign;
}
