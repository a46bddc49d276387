//! # ferroc-arena: slabs out of arenas
//!
//! The second layer of Ferroc. An [`Arenas`] owns a base ([`BaseAlloc`]) and hands out
//! **slabs**: `SLAB_SIZE`-aligned blocks of `SLAB_SIZE` bytes (default 4 MiB), alone or as
//! contiguous runs, which the heap above cuts into shards and blocks.
//!
//! ## Glossary
//! - **arena**: a large chunk from the base (the first 64 MiB, each new one twice the last, up
//!   to 4 GiB) cut into slabs, with a small header *after* its last slab that holds the arena's
//!   bitmaps and per-slab release stamps. User memory given to [`Arenas::manage`] becomes an
//!   arena too.
//! - **slab run** ([`SlabRun`]): what [`Arenas::allocate`] returns; the owner keeps it (the heap
//!   stores it in the slab's own header) and gives it back with [`Arenas::deallocate`]. A run
//!   that fits in no existing arena and is larger than the next arena to be made comes
//!   straight from the base, carries its chunk, and goes back to the base when freed.
//! - **used / committed / dirty / pending / abandoned**: the five bitmaps of an arena, one bit
//!   per slab: the slab belongs to someone; its memory is committed; it was handed out since it
//!   last read zero; it is free but not purged yet; it was abandoned by a dead owner and waits
//!   to be reclaimed.
//! - **purge**: decommitting free slabs. A released slab is only marked *pending* and
//!   stamped with its release time; once the purge delay ([`Arenas::set_purge_delay`]) has
//!   passed since a slab's own release, the next release or purge that finds the arena's
//!   deadline (the earliest of its pending slabs') passed decommits every slab that is due,
//!   one base call per stretch of consecutive ones, and the earliest deadline of the rest
//!   becomes the arena's next. So memory freed a moment ago is not decommitted with older
//!   memory, and a program that frees and allocates in waves reuses it without a
//!   decommit/commit storm. A delay of 0 purges on release; a base without a clock purges
//!   only on [`Arenas::purge`]`(true)`.
//! - **placement**: a committed claim takes the free run holding the most pending slabs (still
//!   resident: no page faults, no new resident memory), else the first fit; an uncommitted one
//!   (a move target) prefers a run with nothing pending.
//! - **recycling** (bases that can move pages, [`BaseAlloc::move_pages`]: `mremap` on Linux):
//!   each slab of a committed claim that was never touched since it read zero gets the pages
//!   of some free pending slab moved in, so resident memory is reused wherever the run lies.
//!   [`Arenas::move_into`] moves a whole run's pages to another run (the heap's huge
//!   `realloc`), and [`Arenas::grow_in_place`] / [`Arenas::shrink_in_place`] resize a run over
//!   the slabs after it. Moves split OS mappings only at slab boundaries, so the number of
//!   mappings stays below the number of slabs.
//!
//! ## Invariants
//! - A slab is owned by at most one party: whoever set its *used* bit (see
//!   [`ferroc_base::bitmap`]). Its *committed*, *dirty* and *pending* bits are only changed by
//!   its owner, so they never race for the same slab.
//! - The purger owns a slab while it decommits it: it claims the *used* bit first.
//! - A run is reported zeroed only if no slab of it is dirty and the base said so.
//! - An abandoned slab keeps its *used* bit; taking its *abandoned* bit (one CAS) is what
//!   transfers ownership, so each abandoned slab is reclaimed by exactly one thread.
//! - Nothing panics or aborts on exhaustion: every failure is an [`Error`].
//! - A run names its arena by address and serial (unique in the process) and is never
//!   followed by that address: each method that takes a run finds the arena among its own
//!   first, so a run of other arenas, or of arenas since dropped, is refused
//!   ([`Error::Foreign`]) or left alone, and safe code cannot make the arenas touch memory
//!   they do not own.
//!
//! ## Where each job lives
//! - `arenas.rs`: the types ([`Arenas`], the arena header, [`SlabRun`], [`ArenaStats`]),
//!   finding the arena of a run or an address, the abandon glue ([`Arenas::abandon`],
//!   [`Arenas::reclaim`]), the stats and the drop;
//! - `arenas/claim.rs`: [`Arenas::allocate`] (placement, commit, warm-up), [`Arenas::commit`]
//!   and direct runs from the base;
//! - `arenas/resize.rs`: [`Arenas::grow_in_place`], [`Arenas::shrink_in_place`],
//!   [`Arenas::move_into`] and recycling (pending slabs' pages moved into fresh claims);
//! - `arenas/purge.rs`: [`Arenas::deallocate`], release, [`Arenas::purge`] and the purges due
//!   by time;
//! - `arenas/grow.rs`: the arenas' growth sequence, laying an arena out over a chunk,
//!   publishing it, [`Arenas::manage`];
//! - the lock-free parts, each a type of its own driven by loom models in `loom_tests/`:
//!   `arena_list.rs` (the published arenas: one CAS into the first free slot, readers walk
//!   the filled prefix), `purge_clock.rs` (an arena's purge deadline and its slabs' release
//!   stamps), [`abandoned`] (the abandoned set); the bitmaps are [`ferroc_base::bitmap`].
//!
//! ## What it owns
//! The base, the arenas' chunks (released when the `Arenas` is dropped), the slab bitmaps and
//! release stamps, the purge clock, and the set of abandoned slabs. It knows nothing of what is inside a slab.
#![no_std]

#[cfg(any(test, ferroc_loom))]
extern crate std;

pub mod abandoned;
mod arena_list;
mod purge_clock;
pub mod sizes;

#[cfg(all(test, ferroc_loom))]
mod loom_tests;

#[cfg(not(ferroc_loom))]
mod arenas;
#[cfg(not(ferroc_loom))]
pub use arenas::{ArenaStats, Arenas, DEFAULT_PURGE_DELAY_MS, NEVER_PURGE, SlabRun};

pub use ferroc_base::{BaseAlloc, Chunk};

use core::fmt;

/// Why the arenas could not serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The base failed to allocate or commit.
    Base(E),
    /// The request cannot be represented (size or alignment overflow).
    TooLarge,
    /// Every arena slot is taken and the request does not fit in the existing arenas.
    Exhausted,
    /// A chunk given to [`Arenas::manage`] cannot hold a single slab.
    ChunkTooSmall,
    /// The run belongs to other arenas (or to arenas since dropped).
    Foreign,
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Base(e) => write!(f, "base allocation failed: {e}"),
            Error::TooLarge => f.write_str("request too large"),
            Error::Exhausted => f.write_str("arenas exhausted"),
            Error::ChunkTooSmall => f.write_str("chunk too small to hold a slab"),
            Error::Foreign => f.write_str("run of other arenas"),
        }
    }
}
