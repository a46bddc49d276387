//! # ferroc-capi: Ferroc for C and C++
//!
//! Builds `libferroc.so` and `libferroc.a` (`cargo xtask capi` names and installs them) with
//! the `fe_*` functions declared in `include/ferroc.h`, and, with the `override` feature (on
//! by default), the C allocator (`malloc`, `free`, ..., glibc's `__libc_*`) and the C++
//! `operator new`/`delete` family, so `LD_PRELOAD=libferroc.so program` runs any program on
//! Ferroc.
//!
//! ## Glossary
//! - **the instance** (`GLOBAL`): a `ThreadGlobal` over the [`Tracked`] OS base, with the
//!   initial-exec thread-local slot [`IeSlot`] (or std's, with the `dlopen` feature).
//! - **slab map** ([`Tracked`]): one bit per 4 MiB of the 47-bit address space (4 MiB of
//!   `.bss`, touched only where Ferroc has memory), set while the base has memory there. It
//!   lets `free`, `realloc` and `malloc_usable_size` tell Ferroc's pointers from foreign ones
//!   (from before the override was in place, or from another allocator) with one load.
//!
//! ## Invariants
//! - No function here unwinds into C, except the throwing `operator new`, which must throw
//!   `std::bad_alloc` and is declared `extern "C-unwind"` for it.
//! - Failure is a null pointer with `errno = ENOMEM` (`EINVAL` where POSIX says so); `free`
//!   never changes `errno` (the base puts back whatever its system calls set).
//! - A foreign pointer is never written to: `free` hands it to the invalid-free policy (abort
//!   with a message, as glibc does, by default; warn or ignore: `FERROC_INVALID_FREE`,
//!   `fe_option_set(FE_OPTION_INVALID_FREE, ..)`, `mallopt(M_CHECK_ACTION, ..)`), on a cold
//!   path of its own; `malloc_usable_size` says 0, `realloc` fails with `ENOMEM`.
//! - The options (`fe_option_set`/`fe_option_get`, `mallopt`) are `ferroc_global`'s
//!   (`ferroc_global::options`): read from the environment when the first thread allocates.
//! - Everything works before any constructor runs and after `main` returns: the instance is a
//!   `const`-initialised static, and a thread's heap is made on its first allocation.
//!
//! ## What it owns
//! The C ABI: symbol names, `errno`, C semantics of `realloc(p, 0)`, `posix_memalign` and
//! friends, the header and the pkg-config file.
#![no_std]

extern crate std;

mod api;
mod glibc;
mod introspect;
#[cfg(feature = "override")]
mod override_c;
#[cfg(feature = "override")]
mod override_cxx;

pub use api::*;
pub use glibc::*;
pub use introspect::*;

use core::{alloc::Layout, ptr::NonNull};

use ferroc_arena::sizes::{SLAB_SHIFT, SLAB_SIZE};
use ferroc_base::{
    BaseAlloc, Chunk, Mmap, MmapError,
    sync::atomic::{AtomicU64, Ordering},
};
use ferroc_global::{GlobalInstance, ThreadGlobal};
use ferroc_heap::Context;

/// Address bits covered by the slab map: user space on x86-64 and most 64-bit Linux.
const ADDRESS_BITS: u32 = 47;
const MAP_WORDS: usize = 1 << (ADDRESS_BITS - SLAB_SHIFT - 6);

/// The slab map (see the crate docs).
static SLAB_MAP: [AtomicU64; MAP_WORDS] = [const { AtomicU64::new(0) }; MAP_WORDS];

/// The OS base, recording in the slab map where its chunks are.
///
/// Chunks are rounded to whole, aligned slabs so that no two share a map bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracked;

fn mark(chunk: &Chunk<Mmap>, on: bool) {
    let first = chunk.pointer().as_ptr() as usize >> SLAB_SHIFT;
    let count = chunk.layout().size() >> SLAB_SHIFT;
    for i in first..first + count {
        let bit = 1u64 << (i % 64);
        if on {
            // Release: the chunk's existence is published before any pointer into it is.
            SLAB_MAP[i / 64].fetch_or(bit, Ordering::Release);
        } else {
            SLAB_MAP[i / 64].fetch_and(!bit, Ordering::Release);
        }
    }
}

/// Whether `ptr` points into memory Ferroc got from the OS.
#[inline(always)]
pub(crate) fn is_ferroc_pointer(ptr: *const u8) -> bool {
    // `ptr - 1` finds the slab of blocks that start right at a slab boundary (see ferroc-heap's
    // slab docs); no block starts at address 0.
    let i = (ptr as usize).wrapping_sub(1) >> SLAB_SHIFT;
    i < MAP_WORDS * 64 && SLAB_MAP[i / 64].load(Ordering::Relaxed) & (1u64 << (i % 64)) != 0
}

// SAFETY: every chunk is an `Mmap` chunk (with Mmap's guarantees), only rounded up in size and
// alignment; the map bookkeeping changes no memory a chunk hands out.
unsafe impl BaseAlloc for Tracked {
    type Handle = ();
    type Error = MmapError;

    fn page_size(&self) -> usize {
        Mmap.page_size()
    }

    fn allocate(&self, layout: Layout, commit: bool) -> Result<Chunk<Self>, MmapError> {
        let size = ferroc_base::align_up(layout.size(), SLAB_SIZE).ok_or(MmapError::Overflow)?;
        let layout = Layout::from_size_align(size, layout.align().max(SLAB_SIZE))
            .map_err(|_| MmapError::Overflow)?;
        let chunk = Mmap.allocate(layout, commit)?;
        let end = chunk.pointer().as_ptr() as usize + chunk.layout().size();
        if end > 1 << ADDRESS_BITS {
            return Err(MmapError::Map(libc::ENOMEM));
        }
        mark(&chunk, true);
        let (ptr, layout, zeroed, ()) = chunk.into_parts();
        // SAFETY: Mmap's chunk, released through Mmap in `deallocate`.
        Ok(unsafe { Chunk::new(ptr, layout, zeroed, ()) })
    }

    unsafe fn deallocate(chunk: &mut Chunk<Self>) {
        // SAFETY: rebuilt from the parts of the Mmap chunk it was made from; released once.
        let inner =
            unsafe { Chunk::<Mmap>::new(chunk.pointer(), chunk.layout(), chunk.is_zeroed(), ()) };
        mark(&inner, false);
        drop(inner);
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, len: usize) -> Result<(), MmapError> {
        // SAFETY: the range is page-aligned and inside a live chunk of ours (this fn's
        // contract), and each of our chunks is a live Mmap chunk.
        unsafe { Mmap.commit(ptr, len) }
    }

    unsafe fn decommit(&self, ptr: NonNull<u8>, len: usize) -> bool {
        // SAFETY: the range is page-aligned, inside a live chunk of ours and its contents are
        // not read again (this fn's contract); each of our chunks is a live Mmap chunk.
        unsafe { Mmap.decommit(ptr, len) }
    }

    fn now_ms(&self) -> Option<u64> {
        Mmap.now_ms()
    }

    fn use_large_pages(&self, on: bool) {
        Mmap.use_large_pages(on);
    }

    unsafe fn move_pages(&self, from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
        // SAFETY: both ranges are page-aligned, disjoint, unused and inside live chunks of ours
        // (this fn's contract), which are live Mmap chunks; the map is unchanged, as the
        // ranges stay inside their chunks.
        unsafe { Mmap.move_pages(from, to, len) }
    }
}

/// The allocator instance behind every C entry point.
pub(crate) static GLOBAL: ThreadGlobal<Tracked, IeSlot> =
    ThreadGlobal::new(&GLOBAL, Tracked, on_thread_exit, on_process_exit);

unsafe extern "C" fn on_thread_exit(slot: *mut core::ffi::c_void) {
    // SAFETY: our pthread key only ever holds the slots `GLOBAL` registered, and its destructor
    // passes the exiting thread's own.
    unsafe { GLOBAL.on_thread_exit(slot) }
}

extern "C" fn on_process_exit() {
    GLOBAL.show_stats_at_exit();
}

type Cx = Context<'static, Tracked>;

/// The initial-exec thread-local slot (x86-64 Linux without the `dlopen` feature).
///
/// The slot is 8 bytes of `.tdata` defined in assembly (stable Rust has no attribute for a TLS
/// model), read and written `fs:`-relative through its `@GOTTPOFF` offset: one load, no
/// `__tls_get_addr` call. Its initial value, in the TLS image every thread starts from, is the
/// idle context's address (a relocation the loader applies before any thread's TLS is
/// made), so the slot always holds a context pointer and no thread needs an initialisation
/// branch.
///
/// With the `dlopen` feature (or elsewhere) the slot is std's `thread_local!`, which starts at
/// zero: it holds the *distance* from the idle context instead, zero meaning "the idle context".
pub struct IeSlot;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(feature = "dlopen")))]
mod ie {
    use super::{Cx, GLOBAL, ThreadGlobal};

    /// Where the idle context lies inside [`GLOBAL`] (for the slot's initial value).
    const PLACEHOLDER_OFFSET: usize = {
        let idle = ThreadGlobal::idle_of(&GLOBAL).cast::<u8>();
        let global = (&raw const GLOBAL).cast::<u8>();
        // SAFETY: both pointers lie in the static GLOBAL, the idle context being a field of it.
        unsafe { idle.offset_from(global) as usize }
    };

    core::arch::global_asm!(
        ".pushsection .tdata,\"awT\",@progbits",
        ".p2align 3",
        // Global so every codegen unit links to it, hidden so it stays inside the library.
        ".globl ferroc_capi_thread_context",
        ".hidden ferroc_capi_thread_context",
        ".type ferroc_capi_thread_context,@object",
        ".size ferroc_capi_thread_context,8",
        "ferroc_capi_thread_context:",
        ".quad {global} + {offset}",
        ".popsection",
        global = sym GLOBAL,
        offset = const PLACEHOLDER_OFFSET,
    );

    /// The slot's offset from the thread pointer.
    #[inline(always)]
    fn offset() -> usize {
        let off: usize;
        // SAFETY: loads the GOT entry the linker fills with the slot's thread-pointer offset.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + ferroc_capi_thread_context@GOTTPOFF]",
                off = out(reg) off,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        off
    }

    #[inline(always)]
    pub fn get(_idle: *const Cx) -> *const Cx {
        let v: *const Cx;
        // SAFETY: `fs:offset` is this thread's slot (initial-exec TLS).
        unsafe {
            core::arch::asm!(
                "mov {v}, qword ptr fs:[{off}]",
                v = out(reg) v,
                off = in(reg) offset(),
                options(readonly, nostack, preserves_flags),
            );
        }
        v
    }

    #[inline(always)]
    pub fn set(cx: *const Cx, _idle: *const Cx) {
        // SAFETY: `fs:offset` is this thread's slot (initial-exec TLS), 8 bytes it owns.
        unsafe {
            core::arch::asm!(
                "mov qword ptr fs:[{off}], {v}",
                v = in(reg) cx,
                off = in(reg) offset(),
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(feature = "dlopen"))))]
mod ie {
    use super::Cx;
    use core::cell::Cell;
    std::thread_local!(static SLOT: Cell<usize> = const { Cell::new(0) });

    #[inline(always)]
    pub fn get(idle: *const Cx) -> *const Cx {
        let distance = SLOT.try_with(Cell::get).unwrap_or(0);
        (idle as usize).wrapping_add(distance) as *const Cx
    }

    #[inline(always)]
    pub fn set(cx: *const Cx, idle: *const Cx) {
        let _ = SLOT.try_with(|c| c.set((cx as usize).wrapping_sub(idle as usize)));
    }
}

// SAFETY: the slot starts at the idle context (the initial-exec slot holds it from its TLS
// image; std's holds distance zero) and returns what `set` stored after; the accesses neither
// allocate nor fail.
unsafe impl ferroc_global::ThreadSlot<Tracked> for IeSlot {
    #[inline(always)]
    fn get(idle: *const Cx) -> *const Cx {
        ie::get(idle)
    }

    #[inline(always)]
    fn set(cx: *const Cx, idle: *const Cx) {
        ie::set(cx, idle)
    }
}
