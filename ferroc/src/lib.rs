//! # Ferroc
//!
//! A lock-free, multi-threaded, general-purpose memory allocator in the line of mimalloc:
//! per-thread heaps, size-class shards carved out of large aligned slabs, sharded free lists,
//! and frees from other threads that never take a lock.
//!
//! ```
//! #[global_allocator]
//! static A: ferroc::Ferroc = ferroc::Ferroc;
//!
//! let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
//! assert_eq!(v[42], "42");
//! ```
//!
//! ## The layers
//! This crate re-exports every layer, so one dependency is enough:
//!
//! | module | crate | holds |
//! |---|---|---|
//! | [`base`] | `ferroc-base` | [`BaseAlloc`](base::BaseAlloc), `Chunk`, `Mmap` (OS), `Static` (fixed region) |
//! | [`arena`] | `ferroc-arena` | [`Arenas`]: slabs, commit/purge, abandoned slabs |
//! | [`heap`] | `ferroc-heap` | [`Context`], [`Heap`]: size classes, shards, free lists |
//! | [`global`] | `ferroc-global` | [`config!`], [`config_mod!`], [`Ferroc`], [`GlobalInstance`], thread-local heaps |
//! | `capi` (feature `c`) | `ferroc-capi` | the `fe_*` C functions |
//!
//! One set of names at every layer: [`Heap`] (inherent methods) and the global allocator types
//! ([`GlobalInstance`], in scope with `use ferroc::GlobalInstance`) both have `allocate`,
//! `allocate_zeroed`, `deallocate(ptr, layout)`, `free(ptr)`, `reallocate(ptr, old, new)`,
//! `usable_size`, `collect` and (feature `stat`) `stats`:
//!
//! ```
//! # #[cfg(all(feature = "global", feature = "base-mmap", feature = "libc"))] {
//! use core::alloc::Layout;
//! use ferroc::{Ferroc, GlobalInstance};
//!
//! let (old, new) = (Layout::new::<[u8; 24]>(), Layout::new::<[u8; 200]>());
//! let block = Ferroc.allocate(old).unwrap();
//! let block = unsafe { Ferroc.reallocate(block, old, new) }.unwrap();
//! assert!(unsafe { Ferroc.usable_size(block) } >= 200);
//! unsafe { Ferroc.free(block) };
//! # }
//! ```
//!
//! Explicit instances, dropped like any value:
//!
//! ```
//! use core::alloc::Layout;
//! use ferroc::{Arenas, Context, Heap, base::Mmap};
//!
//! let arenas = Arenas::new(Mmap);
//! let cx = Context::new(&arenas);
//! let heap = Heap::new(&cx);
//! let layout = Layout::new::<[u32; 64]>();
//! let block = heap.allocate(layout).unwrap();
//! unsafe { heap.deallocate(block, layout) };
//! // With the `allocator-api2` feature, `&heap` is an `Allocator`:
//! // `allocator_api2::vec::Vec::new_in(&heap)`.
//! ```
//!
//! ## Cargo features
//!
//! | feature | default | what it gives |
//! |---|---|---|
//! | `global` | yes | `config!`, `config_mod!` and the global allocator types |
//! | `base-mmap` | yes | `base::Mmap`, memory from the OS (`mmap`), and `Ferroc` (with `libc`) |
//! | `libc` | yes | thread-local heaps handed back at thread exit (pthread keys); `FERROC_SHOW_STATS` |
//! | `base-static` | no | `base::Static`, memory from a fixed region, for bare metal (`no_std`) |
//! | `stat` | no | statistics: `GlobalInstance::stats`, `Heap::stats`; `FERROC_SHOW_STATS=1` prints them at exit |
//! | `c` | no | the `fe_*` C API (`ferroc-capi`) linked in, for static linking into C programs |
//! | `allocator-api2` | no | `allocator_api2::alloc::Allocator` for `&Heap` and `&Ferroc`, on stable |
//! | `nightly` | no | `core::alloc::Allocator` too, on a nightly compiler (ignored on stable) |
//! | `finer-grained` | no | 8 size classes per power of two instead of 4: less waste, more shards |
//!
//! `--no-default-features` leaves the `no_std` layers (`base`, `arena`, `heap`);
//! `--no-default-features --features base-static,global` is the bare-metal set.
#![no_std]

pub use ferroc_arena as arena;
pub use ferroc_base as base;
#[cfg(feature = "c")]
pub use ferroc_capi as capi;
#[cfg(feature = "global")]
pub use ferroc_global as global;
pub use ferroc_heap as heap;

pub use ferroc_arena::Arenas;
#[cfg(all(feature = "global", feature = "base-mmap", feature = "libc"))]
pub use ferroc_global::Ferroc;
#[cfg(feature = "global")]
pub use ferroc_global::{
    GlobalInstance, InvalidFree, OptionError, OptionId, Options, config, config_mod,
};
#[cfg(feature = "stat")]
pub use ferroc_heap::Stats;
pub use ferroc_heap::{AllocError, Context, Heap};

/// The README's code blocks, compiled and run as doctests (with the features they use).
#[cfg(all(
    doctest,
    feature = "stat",
    feature = "allocator-api2",
    feature = "base-static"
))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
