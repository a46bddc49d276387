//! The C++ allocation functions, replaced (feature `override`), under their Itanium ABI names
//! (64-bit `size_t` is `m`).
//!
//! The throwing `operator new` must, on failure, call the installed new-handler until it
//! succeeds, and throw `std::bad_alloc` when there is none. Both live in libstdc++, which a
//! C++ program has loaded: they are looked up with `dlsym` on the failure path only. The
//! throw unwinds through the `extern "C-unwind"` frame of `operator new`, which holds nothing
//! to clean up; nothing else here unwinds.

use core::ffi::c_void;

use crate::api::*;

type NewHandler = Option<unsafe extern "C-unwind" fn()>;

/// Looks a libstdc++ function up by its mangled name.
fn cxx_symbol(name: &core::ffi::CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// The failure path of a throwing `new`: retries through the new-handler, throws
/// `std::bad_alloc` when there is none.
#[cold]
#[inline(never)]
fn new_failed(mut retry: impl FnMut() -> *mut c_void) -> *mut c_void {
    loop {
        let get = cxx_symbol(c"_ZSt15get_new_handlerv");
        let handler: NewHandler = if get.is_null() {
            None
        } else {
            // SAFETY: `std::get_new_handler()` has this signature and does not throw.
            unsafe { core::mem::transmute::<*mut c_void, extern "C" fn() -> NewHandler>(get)() }
        };
        match handler {
            // SAFETY: a new-handler takes nothing and may throw (it unwinds through us).
            Some(h) => unsafe { h() },
            None => throw_bad_alloc(),
        }
        let p = retry();
        if !p.is_null() {
            return p;
        }
    }
}

/// Throws `std::bad_alloc` (through libstdc++'s `std::__throw_bad_alloc()`), or aborts if
/// libstdc++ is not loaded.
fn throw_bad_alloc() -> ! {
    let f = cxx_symbol(c"_ZSt17__throw_bad_allocv");
    if !f.is_null() {
        // SAFETY: `std::__throw_bad_alloc()` takes nothing and throws.
        unsafe { core::mem::transmute::<*mut c_void, extern "C-unwind" fn() -> !>(f)() }
    }
    std::process::abort()
}

#[inline(always)]
fn new_impl(size: usize, align: usize) -> *mut c_void {
    let p = new_nothrow(size, align);
    if !p.is_null() {
        return p;
    }
    new_failed(|| new_nothrow(size, align))
}

#[inline(always)]
fn new_nothrow(size: usize, align: usize) -> *mut c_void {
    // `align` is a constant at every call site: 1 takes malloc's path.
    if align == 1 {
        malloc_impl(size)
    } else {
        alloc_aligned(size, align)
    }
}

macro_rules! cxx_new {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) => $body:expr;)*) => {$(
        $(#[$doc])*
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn $name($($arg: $ty),*) -> *mut c_void {
            $body
        }
    )*};
}

macro_rules! cxx_delete {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// `p` is null or a live block from the matching `operator new`.
        #[unsafe(no_mangle)]
        #[allow(unused_variables)]
        pub unsafe extern "C" fn $name(p: *mut c_void $(, $arg: $ty)*) {
            // SAFETY: `p` is null or a live Ferroc block (this fn's contract), which is all
            // `free_impl` needs.
            unsafe { free_impl(p) }
        }
    )*};
}

cxx_new! {
    /// `operator new(size_t)`.
    _Znwm(size: usize) => new_impl(size, 1);
    /// `operator new[](size_t)`.
    _Znam(size: usize) => new_impl(size, 1);
    /// `operator new(size_t, const std::nothrow_t&)`.
    _ZnwmRKSt9nothrow_t(size: usize, _nt: *const c_void) => new_nothrow(size, 1);
    /// `operator new[](size_t, const std::nothrow_t&)`.
    _ZnamRKSt9nothrow_t(size: usize, _nt: *const c_void) => new_nothrow(size, 1);
    /// `operator new(size_t, std::align_val_t)`.
    _ZnwmSt11align_val_t(size: usize, align: usize) => new_impl(size, align);
    /// `operator new[](size_t, std::align_val_t)`.
    _ZnamSt11align_val_t(size: usize, align: usize) => new_impl(size, align);
    /// `operator new(size_t, std::align_val_t, const std::nothrow_t&)`.
    _ZnwmSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, _nt: *const c_void) => new_nothrow(size, align);
    /// `operator new[](size_t, std::align_val_t, const std::nothrow_t&)`.
    _ZnamSt11align_val_tRKSt9nothrow_t(size: usize, align: usize, _nt: *const c_void) => new_nothrow(size, align);
}

cxx_delete! {
    /// `operator delete(void*)`.
    _ZdlPv();
    /// `operator delete[](void*)`.
    _ZdaPv();
    /// `operator delete(void*, size_t)`.
    _ZdlPvm(size: usize);
    /// `operator delete[](void*, size_t)`.
    _ZdaPvm(size: usize);
    /// `operator delete(void*, std::align_val_t)`.
    _ZdlPvSt11align_val_t(align: usize);
    /// `operator delete[](void*, std::align_val_t)`.
    _ZdaPvSt11align_val_t(align: usize);
    /// `operator delete(void*, size_t, std::align_val_t)`.
    _ZdlPvmSt11align_val_t(size: usize, align: usize);
    /// `operator delete[](void*, size_t, std::align_val_t)`.
    _ZdaPvmSt11align_val_t(size: usize, align: usize);
    /// `operator delete(void*, const std::nothrow_t&)`.
    _ZdlPvRKSt9nothrow_t(nt: *const c_void);
    /// `operator delete[](void*, const std::nothrow_t&)`.
    _ZdaPvRKSt9nothrow_t(nt: *const c_void);
    /// `operator delete(void*, std::align_val_t, const std::nothrow_t&)`.
    _ZdlPvSt11align_val_tRKSt9nothrow_t(align: usize, nt: *const c_void);
    /// `operator delete[](void*, std::align_val_t, const std::nothrow_t&)`.
    _ZdaPvSt11align_val_tRKSt9nothrow_t(align: usize, nt: *const c_void);
}
