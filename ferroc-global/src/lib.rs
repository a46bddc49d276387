//! # ferroc-global: Ferroc as the process allocator
//!
//! This crate turns the explicit `Arenas` → `Context` → `Heap` layers into global allocators:
//! a unit struct with `GlobalAlloc`, made by [`config!`] (or [`config_mod!`]) over any base.
//! The default one, [`Ferroc`], is itself made by `config!`.
//!
//! ## Glossary
//! - **instance**: the statics behind one allocator type: its `Arenas`, its pool of thread
//!   slots, its thread-local slot and its idle context ([`ThreadGlobal`]), or its single
//!   context ([`SingleGlobal`]).
//! - **instance trait** ([`GlobalInstance`]): the whole API of an instance, written once:
//!   an instance only says which context serves the calling thread (`current`, `owned`), its
//!   `arenas` and its `stats`; `allocate`, `allocate_zeroed`, `deallocate`, `free`,
//!   `reallocate`, `usable_size`, `collect`, `allocate_small` and `show_stats` are provided,
//!   under the names `ferroc_heap::Heap` uses. The unit types of `config!` stand for their
//!   static instance ([`InstanceHandle`]) and so have the same API; `GlobalAlloc`, the
//!   `Allocator` impl, `config_mod!`'s functions and the C API are thin glue over it.
//! - **thread-local slot**: a `const`-initialised `thread_local!` `Cell` holding a pointer to the
//!   current thread's context; it has no destructor, so reading it compiles to one load from
//!   thread-local storage, with no lazy-initialisation check.
//! - **idle context** (the read-only context): the context every slot starts at, one per
//!   [`ThreadGlobal`]. It never allocated, so its direct table points at the empty shard and
//!   the first allocation takes the slow path, which gives the thread a context of its own.
//!   Frees and size queries through it only read it.
//! - **thread slot** ([`pool`]): where a thread's context lives, in pages taken straight from
//!   the base (never from the allocator itself), reused after thread exit.
//!
//! ## Invariants
//! - The fast paths (small allocation, free) read the thread-local slot and go straight to the
//!   context: no initialisation branch, no atomic read-modify-write, no lock.
//! - Creating a thread's context never allocates through the allocator: slots come from the
//!   base, and the thread-local slot is set before anything that might allocate (the pthread
//!   key registration, `atexit`).
//! - At thread exit (a pthread key destructor, feature `libc`) the slot is reset to the
//!   idle context first, then the context is dropped: empty shards are released and slabs with
//!   live blocks abandoned, for other threads to reclaim. Allocations from later destructors
//!   get a fresh context.
//! - `fork()` (feature `libc`): the child can always allocate and free; the other threads'
//!   contexts are gone with them, and the blocks they held stay valid (freed blocks go to their
//!   slabs' remote lists). Ferroc holds no lock, but one step has another thread wait for a
//!   remote freer: the owner of a full shard waits out a notification in flight (`NOTIFYING`,
//!   see `ferroc_heap::thread_free`). So `pthread_atfork` handlers (registered once, on the
//!   first thread initialisation, without allocating) run `ferroc_heap::fork`'s guard: before
//!   `fork()` no new notification starts and those in flight finish, so the child never sees
//!   `NOTIFYING` (see `fork.rs`). The fast paths never look at the guard. The two waits of
//!   this crate are fork-safe too: a statistics reader holds a slot `READING` inside the same
//!   guard (see `pool.rs`), and the thread-exit key is created without a `CREATING` state
//!   that others would wait out (see `exit.rs`).
//!
//! ## What it owns
//! The thread-local slots, the pool of thread slots, thread exit, the fork handlers, the
//! runtime options of each instance ([`options`]: `FERROC_*` read at start-up), the
//! `FERROC_SHOW_STATS` report, and the macros.
#![no_std]

#[cfg(any(feature = "std", ferroc_loom))]
extern crate std;

// Under `--cfg ferroc_loom` (the loom models) only the pool compiles: the rest needs a heap.
#[cfg(all(feature = "std", not(ferroc_loom)))]
mod common;
#[cfg(all(feature = "libc", not(ferroc_loom)))]
mod exit;
#[cfg(all(feature = "libc", not(ferroc_loom)))]
mod fork;
#[cfg(not(ferroc_loom))]
mod instance;
#[cfg(not(ferroc_loom))]
pub mod options;
#[cfg(any(feature = "std", ferroc_loom))]
pub mod pool;
#[cfg(all(feature = "libc", not(ferroc_loom)))]
pub mod print;
#[cfg(not(ferroc_loom))]
mod single;
mod start_phase;
#[cfg(all(feature = "std", not(ferroc_loom)))]
mod thread;

#[cfg(not(ferroc_loom))]
pub use instance::{GlobalInstance, InstanceCore, InstanceHandle};
#[cfg(not(ferroc_loom))]
pub use options::{InvalidFree, OptionError, OptionId, Options};
#[cfg(not(ferroc_loom))]
pub use single::SingleGlobal;
#[cfg(all(feature = "std", not(ferroc_loom)))]
pub use thread::{ThreadGlobal, ThreadSlot};

#[cfg(not(ferroc_loom))]
pub use ferroc_heap::AllocError;
#[cfg(all(feature = "stat", not(ferroc_loom)))]
pub use ferroc_heap::Stats;

/// What the macros' expansions use; not a public API.
#[cfg(not(ferroc_loom))]
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "allocator-api2")]
    pub use allocator_api2;
    pub use core::{alloc::GlobalAlloc, alloc::Layout, cell::Cell, ffi::c_void, ptr, ptr::NonNull};
    pub use ferroc_heap::{__impl_allocator, AllocError, Context};
    #[cfg(feature = "std")]
    pub use std::thread_local;

    pub use crate::{GlobalInstance, InstanceHandle, Options, SingleGlobal};
    #[cfg(feature = "std")]
    pub use crate::{ThreadGlobal, ThreadSlot};
}

/// Defines a global allocator type over a base.
///
/// ```text
/// config!($(#[attr])* $vis $Name: $Base = $base_expr);                          // pthread exit
/// config!($(#[attr])* $vis $Name: $Base = $base_expr; thread_exit = pthread);   // the same
/// config!($(#[attr])* $vis $Name: $Base = $base_expr; thread_exit = unsafe none);
/// config!($(#[attr])* $vis $Name: $Base = $base_expr; options = $options_expr);
/// config!($(#[attr])* $vis $Name: $Base = $base_expr; thread_exit = unsafe none; options = $options_expr);
/// ```
///
/// - `thread_exit = pthread` (the default; features `std` and `libc`): one context per thread
///   in a thread-local slot, handed back by a pthread key destructor when the thread exits.
/// - `thread_exit = unsafe none` (no `std` needed): one context for the whole program, no
///   thread-local storage, nothing to do at thread exit: for bare metal and single-threaded
///   programs. `unsafe` because the program must never allocate from two threads at once.
/// - `options = ..` (a constant [`Options`]): the instance's own options instead of
///   [`Options::DEFAULT`]. The environment (`FERROC_*`) overrides them when the instance
///   starts; see [`options`] for the order, and
///   [`GlobalInstance::set_options`] for setting them at run time before the first allocation.
///
/// The type is a unit struct standing for a static instance ([`InstanceHandle`]), so it has
/// the whole [`GlobalInstance`] API (`allocate`, `allocate_zeroed`, `deallocate`, `free`,
/// `reallocate`, `usable_size`, `collect`, `arenas` and, feature `stat`, `stats`; bring the
/// trait into scope to call them), `GlobalAlloc`, and the `Allocator` trait for `&$Name`
/// (feature `allocator-api2`). It expands to stable Rust only.
///
/// ```
/// use ferroc_base::Mmap;
/// use ferroc_global::GlobalInstance;
///
/// ferroc_global::config!(pub MyAlloc: Mmap = Mmap);
///
/// // #[global_allocator] static A: MyAlloc = MyAlloc;
/// let layout = core::alloc::Layout::new::<[u64; 4]>();
/// let p = MyAlloc.allocate(layout).unwrap();
/// unsafe { MyAlloc.deallocate(p, layout) };
///
/// // Memory back to the OS as soon as it is free, unless FERROC_PURGE_DELAY says otherwise.
/// ferroc_global::config!(
///     pub Lean: Mmap = Mmap;
///     options = ferroc_global::Options { purge_delay_ms: 0, ..ferroc_global::Options::DEFAULT }
/// );
/// ```
#[macro_export]
macro_rules! config {
    ($(#[$attr:meta])* $vis:vis $name:ident : $B:ty = $base:expr $(; thread_exit = pthread)? $(; options = $opts:expr)? $(;)?) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        const _: () = {
            use $crate::__private as __p;
            static __GLOBAL: __p::ThreadGlobal<$B, __Slot> =
                __p::ThreadGlobal::new(&__GLOBAL, $base, __on_thread_exit, __on_process_exit)
                    $(.with_options($opts))?;
            __p::thread_local! {
                static __TLS: __p::Cell<*const __p::Context<'static, $B>> =
                    const { __p::Cell::new(__p::ThreadGlobal::idle_of(&__GLOBAL)) };
            }
            /// The type's thread-local slot (public, but unnameable outside this block, as
            /// the handle's instance type names it).
            #[doc(hidden)]
            pub struct __Slot;
            // SAFETY: a const-initialised, destructor-free thread-local starting at the idle
            // context: reading it never allocates or fails, also during thread-local
            // destruction (then `try_with` falls back to the idle context).
            unsafe impl __p::ThreadSlot<$B> for __Slot {
                #[inline(always)]
                fn get(idle: *const __p::Context<'static, $B>) -> *const __p::Context<'static, $B> {
                    __TLS.try_with(__p::Cell::get).unwrap_or(idle)
                }
                #[inline(always)]
                fn set(cx: *const __p::Context<'static, $B>, _idle: *const __p::Context<'static, $B>) {
                    let _ = __TLS.try_with(|c| c.set(cx));
                }
            }
            unsafe extern "C" fn __on_thread_exit(slot: *mut __p::c_void) {
                // SAFETY: the pthread key of this instance only ever holds the slots its
                // `init_thread` registered, and the key's destructor passes the exiting
                // thread's own.
                unsafe { __GLOBAL.on_thread_exit(slot) }
            }
            extern "C" fn __on_process_exit() {
                __p::GlobalInstance::show_stats_at_exit(&__GLOBAL);
            }
            $crate::__global_api!($name, __p::ThreadGlobal<$B, __Slot>);
        };
    };
    ($(#[$attr:meta])* $vis:vis $name:ident : $B:ty = $base:expr ; thread_exit = unsafe none $(; options = $opts:expr)? $(;)?) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        const _: () = {
            use $crate::__private as __p;
            static __GLOBAL: __p::SingleGlobal<$B> =
                // SAFETY: `thread_exit = unsafe none` is the user's promise that the program
                // never allocates from two threads at once.
                unsafe { __p::SingleGlobal::new(&__GLOBAL, $base) } $(.with_options($opts))?;
            $crate::__global_api!($name, __p::SingleGlobal<$B>);
        };
    };
}

/// Like [`config!`], but defines a module holding the allocator type (named `Ferroc` inside
/// it) and free functions over it: `allocate`, `allocate_zeroed`, `deallocate`, `free`,
/// `reallocate`, `usable_size`, `collect` and (feature `stat`) `stats`, each the
/// [`GlobalInstance`] method of the same name. It takes `config!`'s `; thread_exit = ..` and
/// `; options = ..` after the base.
///
/// ```
/// ferroc_global::config_mod!(pub mod my_alloc: ferroc_base::Mmap = ferroc_base::Mmap);
///
/// let layout = core::alloc::Layout::new::<u32>();
/// let p = my_alloc::allocate(layout).unwrap();
/// assert!(unsafe { my_alloc::usable_size(p) } >= 4);
/// unsafe { my_alloc::free(p) };
/// ```
#[macro_export]
macro_rules! config_mod {
    ($(#[$attr:meta])* $vis:vis mod $m:ident : $B:ty = $base:expr $(; $($rest:tt)+)?) => {
        $(#[$attr])*
        $vis mod $m {
            #[allow(unused_imports)]
            use super::*;
            use $crate::GlobalInstance as _;
            use core::{alloc::Layout, ptr::NonNull};
            $crate::config!(
                /// The allocator of this module.
                pub Ferroc: $B = $base $(; $($rest)+)?
            );
            /// [`GlobalInstance::allocate`]($crate::GlobalInstance::allocate).
            #[inline]
            pub fn allocate(layout: Layout) -> Result<NonNull<u8>, $crate::AllocError> {
                Ferroc.allocate(layout)
            }
            /// [`GlobalInstance::allocate_zeroed`]($crate::GlobalInstance::allocate_zeroed).
            pub fn allocate_zeroed(layout: Layout) -> Result<NonNull<u8>, $crate::AllocError> {
                Ferroc.allocate_zeroed(layout)
            }
            /// [`GlobalInstance::deallocate`]($crate::GlobalInstance::deallocate).
            ///
            /// # Safety
            ///
            /// `ptr` is a live block of this allocator, freed once.
            #[inline]
            pub unsafe fn deallocate(ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: `ptr` is a live block of `Ferroc`, freed once (this fn's contract).
                unsafe { Ferroc.deallocate(ptr, layout) }
            }
            /// [`GlobalInstance::free`]($crate::GlobalInstance::free).
            ///
            /// # Safety
            ///
            /// `ptr` is a live block of this allocator, freed once.
            #[inline]
            pub unsafe fn free(ptr: NonNull<u8>) {
                // SAFETY: `ptr` is a live block of `Ferroc`, freed once (this fn's contract).
                unsafe { Ferroc.free(ptr) }
            }
            /// [`GlobalInstance::reallocate`]($crate::GlobalInstance::reallocate).
            ///
            /// # Safety
            ///
            /// `ptr` is a live block of this allocator allocated with `old`.
            pub unsafe fn reallocate(
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<u8>, $crate::AllocError> {
                // SAFETY: `ptr` is a live block of `Ferroc` allocated with `old` (this fn's
                // contract).
                unsafe { Ferroc.reallocate(ptr, old, new) }
            }
            /// [`GlobalInstance::usable_size`]($crate::GlobalInstance::usable_size).
            ///
            /// # Safety
            ///
            /// `ptr` is a live block of this allocator.
            pub unsafe fn usable_size(ptr: NonNull<u8>) -> usize {
                // SAFETY: `ptr` is a live block of `Ferroc` (this fn's contract).
                unsafe { Ferroc.usable_size(ptr) }
            }
            /// [`GlobalInstance::collect`]($crate::GlobalInstance::collect).
            pub fn collect(force: bool) {
                Ferroc.collect(force)
            }
            $crate::__stats_fn!();
        }
    };
}

/// What makes a generated unit type an allocator: [`InstanceHandle`] (and through it the
/// [`GlobalInstance`] API), `GlobalAlloc`, and `Allocator` for `&$name`.
#[doc(hidden)]
#[macro_export]
macro_rules! __global_api {
    ($name:ident, $G:ty) => {
        impl __p::InstanceHandle for $name {
            type Instance = $G;
            #[inline(always)]
            fn instance() -> &'static $G {
                &__GLOBAL
            }
        }

        // SAFETY: blocks are valid, aligned and disjoint until freed; `alloc` never unwinds and
        // returns null on failure; `realloc` keeps the contents.
        unsafe impl __p::GlobalAlloc for $name {
            #[inline(always)]
            unsafe fn alloc(&self, layout: __p::Layout) -> *mut u8 {
                __p::GlobalInstance::allocate(self, layout)
                    .map_or(__p::ptr::null_mut(), __p::NonNull::as_ptr)
            }
            #[inline]
            unsafe fn alloc_zeroed(&self, layout: __p::Layout) -> *mut u8 {
                __p::GlobalInstance::allocate_zeroed(self, layout)
                    .map_or(__p::ptr::null_mut(), __p::NonNull::as_ptr)
            }
            #[inline(always)]
            unsafe fn dealloc(&self, ptr: *mut u8, layout: __p::Layout) {
                // SAFETY: GlobalAlloc's contract: `ptr` is a live block of this allocator, so
                // non-null.
                let ptr = unsafe { __p::NonNull::new_unchecked(ptr) };
                // SAFETY: GlobalAlloc's contract: a live block of ours, freed once.
                unsafe { __p::GlobalInstance::deallocate(self, ptr, layout) }
            }
            #[inline]
            unsafe fn realloc(
                &self,
                ptr: *mut u8,
                layout: __p::Layout,
                new_size: usize,
            ) -> *mut u8 {
                // SAFETY: GlobalAlloc's contract: `ptr` is a live block of this allocator, so
                // non-null.
                let ptr = unsafe { __p::NonNull::new_unchecked(ptr) };
                let align = layout.align();
                // SAFETY: GlobalAlloc's contract: `new_size`, rounded up to `align` (a valid
                // alignment, `layout`'s), does not overflow `isize`.
                let new = unsafe { __p::Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: GlobalAlloc's contract: a live block of ours allocated with `layout`.
                unsafe { __p::GlobalInstance::reallocate(self, ptr, layout, new) }
                    .map_or(__p::ptr::null_mut(), __p::NonNull::as_ptr)
            }
        }

        $crate::__allocator_api2_impl!($name);
    };
}

#[cfg(feature = "allocator-api2")]
#[doc(hidden)]
#[macro_export]
macro_rules! __allocator_api2_impl {
    ($name:ident) => {
        const _: () = {
            use __p::GlobalInstance as _;
            __p::__impl_allocator!(
                __p::allocator_api2::alloc::Allocator,
                __p::allocator_api2::alloc::AllocError,
                [],
                &$name
            );
        };
    };
}

#[cfg(not(feature = "allocator-api2"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __allocator_api2_impl {
    ($name:ident) => {};
}

#[cfg(feature = "stat")]
#[doc(hidden)]
#[macro_export]
macro_rules! __stats_fn {
    () => {
        /// [`GlobalInstance::stats`]($crate::GlobalInstance::stats).
        pub fn stats() -> $crate::Stats {
            Ferroc.stats()
        }
    };
}

#[cfg(not(feature = "stat"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __stats_fn {
    () => {};
}

#[cfg(all(feature = "base-mmap", feature = "libc", not(ferroc_loom)))]
config!(
    /// Ferroc over the OS: the default global allocator.
    ///
    /// ```
    /// #[global_allocator]
    /// static A: ferroc_global::Ferroc = ferroc_global::Ferroc;
    ///
    /// let v: Vec<u64> = (0..1000).collect();
    /// assert_eq!(v.iter().sum::<u64>(), 499_500);
    /// ```
    pub Ferroc: ferroc_base::Mmap = ferroc_base::Mmap
);
