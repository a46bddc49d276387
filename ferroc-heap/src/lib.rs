//! # ferroc-heap: blocks out of slabs, fast
//!
//! The heart of Ferroc. It turns slabs from [`ferroc_arena::Arenas`] into blocks of every size,
//! with per-thread owners and lock-free frees from other threads. `no_std`, generic over the
//! base, usable on its own: `Arenas` → [`Context`] → [`Heap`].
//!
//! ## Glossary
//! - **context** ([`Context`]): the per-thread owner of slabs and of everything the allocation
//!   paths touch: the direct table, the shard queues by class, the full list. Not `Send`.
//! - **heap** ([`Heap`]): the allocation front, a handle bound to one context.
//! - **slab**: 4 MiB (by default) from the arenas, with a header at its start, cut into shard
//!   units of 64 KiB (see `slab.rs`).
//! - **shard**: one or more units holding blocks of one size class, with three free lists:
//!   `free`, `local_free` and `thread_free` (see `shard.rs`).
//! - **size class**: see `class.rs`. **Small** blocks (≤ 1 KiB) are found through the
//!   **direct table**, `(size + 7) / 8` → current shard; medium and large ones through their
//!   class queue; **huge** blocks get a run of slabs of their own.
//! - **owner id**: a number from the arenas naming a context; a slab's `owner` field holds it.
//!   A free whose context id equals the slab's owner is *local*; any other is *remote*.
//!
//! ## Paths
//! Each path has a file of its own; all are `impl Context` blocks over the state `context.rs`
//! declares.
//! - **Allocate (small, fast)** (`alloc.rs`, [`Context::allocate_small`], the one entry
//!   `Heap`, ferroc-global and the C API try first): direct table → shard → pop `free`. No
//!   atomic, no lock, no branch on "initialised": a new context's table points at an empty
//!   shard, so its first allocation of each size takes the slow path.
//! - **Allocate (slow)** (`alloc.rs`): collect the class's shards (`local_free`,
//!   `thread_free`), move shards with no room to the full list, take notified shards back,
//!   carve a fresh shard from our slabs (units that held a shard before first: their pages
//!   are resident), reclaim an abandoned slab, claim a new slab.
//! - **Free (local, fast)** (`free.rs`): `(ptr - 1)` masked to the slab → unit → shard; owner
//!   and flags checked with two plain loads; push on `local_free`. Into a shard of our full
//!   list: the shard goes back to its class queue first.
//! - **Free (remote)** (`free.rs`, then `abandon.rs`'s `free_remote`; the handshake in
//!   `thread_free.rs`): one CAS loop onto
//!   `thread_free`. If the shard was in its owner's full list, the same CAS moves it to
//!   `NOTIFYING`; the freer then sets the shard's bit in the slab's `notified` mask and marks
//!   it `NOTIFIED`. Only this rare notification goes through the fork guard (`fork.rs`), so
//!   that `fork()` never happens in the middle of one.
//! - **Huge** (`huge.rs`): a run of slabs per block, from the arenas; given back whole by
//!   whichever thread frees it.
//! - **Reallocate** (dispatch in `context.rs`): in place while the new size fits the block and
//!   uses at least half of it; a huge block that stays huge (`huge.rs`) keeps its run when the
//!   slab count is unchanged, grows or shrinks it in place, or moves its pages to a new run
//!   without a copy (`Arenas::move_into`) when the base can; otherwise allocate, copy, free.
//! - **Ownership** (`context.rs`): the queues and the slab list, adopting reclaimed slabs,
//!   abandoning slabs with live blocks when a context is dropped, `collect`. The steps where
//!   a slab changes hands (give up, take over, the remote free racing them) are written once
//!   in `abandon.rs`, generic over the slab, so the loom models run the same code.
//! - **Introspection** (`visit.rs`, [`Context::visit_blocks`], [`Context::contains`]): walks
//!   the context's slab list and each shard's three free lists (read, not collected) into a
//!   bitmap on the stack; the live blocks are the carved ones not marked. No allocation; huge
//!   blocks belong to no context and are not visited.
//!
//! ## Invariants
//! - A shard's `used` counts blocks live, in its `thread_free`, or on a `free` list taken whole
//!   from `thread_free` and not counted yet: `used == capacity - |local_free| - free_counted ×
//!   |free|` (see `shard.rs`); it never reads below the live blocks. A shard is released only
//!   with `used == 0` and never while `NOTIFYING`.
//! - The owner waiting out `NOTIFYING` is the only wait on another thread's step in the heap
//!   (slab and bitmap claims, abandon and reclaim are single CASes or undo themselves). With
//!   the fork guard's hooks run around `fork()` (ferroc-global registers them with
//!   `pthread_atfork`), no `NOTIFYING` is ever copied into a child.
//! - Only the owning thread touches a slab's or shard's non-atomic fields. Other threads touch
//!   only `thread_free`, the slab's `notified` and `owner`, and fields that do not change while
//!   a block of the shard is live (`flags & HUGE`, block size, unit offsets).
//! - Nothing points into a `Context`: it may move while no `Heap` borrows it.
//! - Dropping a context releases what is free and abandons slabs with live blocks; their
//!   blocks stay valid, any thread may free them, and another context adopts the slab.
//! - No path panics or allocates through another allocator; out of memory is `None`/`Err`.
//!
//! ## Tests
//! - `tests/model.rs`: proptest model of every `Heap` operation against a shadow of the live
//!   blocks (alignment, usable size, no overlap, contents, zeroing), over `Mmap` and `Static`.
//! - `tests/stress.rs`: 8 workers whose threads exit with blocks live in other hands
//!   (abandon/reclaim), cross-thread frees and reallocates, cookies; one producer and eight
//!   consumers, checking that remotely freed full shards are reused.
//! - `tests/faults.rs`: every base allocation and commit failing in turn.
//! - `tests/edge.rs`: alignments up to 1 GiB, size 0, huge blocks across threads, runs of 64
//!   slabs, abandoned slabs, teardown, in-place reallocate, `allocator_api2`, `stat`, memory
//!   going back after a peak.
//! - unit tests: the shard invariant and list states through local and remote frees,
//!   collects and adoption (`context/tests.rs`), size classes (`class.rs`), the visited
//!   set and `contains` (`visit/tests.rs`, and the proptest `tests/visit.rs`); loom models of the
//!   remote-free handshake, abandon/reclaim and the fork guard on the real code
//!   (`loom_tests/`, run by `cargo xtask test-loom`).
//!
//! ## What it owns
//! The size classes, the slab header layout, the shard lists, the remote-free handshake, its
//! fork guard and abandonment of slabs. It owns no memory of its own: every byte comes from
//! the arenas.
#![no_std]
#![cfg_attr(all(feature = "nightly", ferroc_nightly), feature(allocator_api))]

#[cfg(any(test, ferroc_loom))]
extern crate std;

mod abandon;
pub mod fork;
pub mod thread_free;

#[cfg(all(test, ferroc_loom))]
mod loom_tests;

#[cfg(not(ferroc_loom))]
mod alloc;
#[cfg(not(ferroc_loom))]
pub mod class;
#[cfg(not(ferroc_loom))]
mod context;
#[cfg(not(ferroc_loom))]
mod free;
#[cfg(not(ferroc_loom))]
mod heap;
#[cfg(not(ferroc_loom))]
mod huge;
#[cfg(not(ferroc_loom))]
mod shard;
#[cfg(not(ferroc_loom))]
mod slab;
#[cfg(not(ferroc_loom))]
pub mod stat;
#[cfg(not(ferroc_loom))]
mod visit;

#[cfg(not(ferroc_loom))]
pub use context::Context;
#[cfg(not(ferroc_loom))]
pub use heap::{AllocError, Heap};
#[cfg(not(ferroc_loom))]
pub use stat::{Kind, Stats};

#[cfg(not(ferroc_loom))]
pub use ferroc_arena::Arenas;
pub use ferroc_arena::BaseAlloc;
