//! Statistics (feature `stat`): counters kept per context, without atomic read-modify-writes.
//!
//! Each context counts what it does itself: blocks and bytes it allocated, blocks and bytes it
//! freed (a block freed by another thread counts there), slabs it took and gave back. Each
//! counter has a single writer, the owning thread, and is an atomic only so that other threads
//! may read a snapshot without a data race: an increment is a relaxed load and store, the
//! same instructions as a plain one. Without the feature, `StatCells` is empty and every
//! method compiles to nothing.

use crate::class::{LARGE_MAX, MEDIUM_MAX, SMALL_MAX};

/// What kind of block a count is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Up to 1 KiB, through the direct table.
    Small = 0,
    /// Up to an eighth of a shard unit.
    Medium = 1,
    /// Up to an eighth of a slab, in multi-unit shards.
    Large = 2,
    /// A run of slabs of its own.
    Huge = 3,
}

/// Number of kinds.
pub const KINDS: usize = 4;

impl Kind {
    /// The kind of a block of `size` bytes.
    #[inline]
    pub fn of_size(size: usize) -> Kind {
        if size <= SMALL_MAX {
            Kind::Small
        } else if size <= MEDIUM_MAX {
            Kind::Medium
        } else if size <= LARGE_MAX {
            Kind::Large
        } else {
            Kind::Huge
        }
    }

    /// All kinds, in order.
    pub const ALL: [Kind; KINDS] = [Kind::Small, Kind::Medium, Kind::Large, Kind::Huge];

    /// The kind's name.
    pub fn name(self) -> &'static str {
        ["small", "medium", "large", "huge"][self as usize]
    }
}

/// Blocks and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Number of blocks.
    pub blocks: u64,
    /// Their total size (block sizes, not requested sizes).
    pub bytes: u64,
}

/// A snapshot of allocator statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocations by kind.
    pub allocated: [Count; KINDS],
    /// Frees by kind.
    pub freed: [Count; KINDS],
    /// Slabs held now (by the contexts summed).
    pub slabs: i64,
    /// Most slabs held at once (by one context; summed over contexts, an upper bound).
    pub peak_slabs: i64,
    /// Address space the arenas span, in bytes (shared figure, not summed).
    pub reserved: u64,
    /// Bytes of it committed (shared figure, not summed).
    pub committed: u64,
    /// Bytes in runs served straight from the base (shared figure, not summed).
    pub direct: u64,
    /// Slabs abandoned and waiting (shared figure, not summed).
    pub abandoned: u64,
}

impl Stats {
    /// Adds another context's counts (not the shared arena figures).
    pub fn merge(&mut self, other: &Stats) {
        for k in 0..KINDS {
            self.allocated[k].blocks += other.allocated[k].blocks;
            self.allocated[k].bytes += other.allocated[k].bytes;
            self.freed[k].blocks += other.freed[k].blocks;
            self.freed[k].bytes += other.freed[k].bytes;
        }
        self.slabs += other.slabs;
        self.peak_slabs += other.peak_slabs;
    }

    /// Sets the shared figures from the arenas.
    pub fn add_arenas(&mut self, a: &ferroc_arena::ArenaStats) {
        self.reserved = a.reserved as u64;
        self.committed = a.committed as u64;
        self.direct = a.direct_bytes as u64;
        self.abandoned = a.abandoned as u64;
    }

    /// Bytes allocated and not freed, over every kind.
    pub fn live_bytes(&self) -> i64 {
        (0..KINDS)
            .map(|k| self.allocated[k].bytes as i64 - self.freed[k].bytes as i64)
            .sum()
    }

    /// Blocks allocated and not freed, over every kind.
    pub fn live_blocks(&self) -> i64 {
        (0..KINDS)
            .map(|k| self.allocated[k].blocks as i64 - self.freed[k].blocks as i64)
            .sum()
    }
}

#[cfg(feature = "stat")]
mod cells {
    use super::*;
    use ferroc_base::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    /// A single-writer counter (see the module docs).
    struct Counter(AtomicU64);

    impl Counter {
        const fn new() -> Self {
            Counter(AtomicU64::new(0))
        }
        #[inline(always)]
        fn add(&self, n: u64) {
            self.0.store(
                self.0.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
        fn get(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// The live counters of one context.
    pub struct StatCells {
        alloc: [[Counter; 2]; KINDS],
        free: [[Counter; 2]; KINDS],
        slabs: AtomicI64,
        peak_slabs: AtomicI64,
    }

    impl StatCells {
        pub const fn new() -> Self {
            StatCells {
                alloc: [const { [Counter::new(), Counter::new()] }; KINDS],
                free: [const { [Counter::new(), Counter::new()] }; KINDS],
                slabs: AtomicI64::new(0),
                peak_slabs: AtomicI64::new(0),
            }
        }
        #[inline(always)]
        pub fn alloc(&self, kind: Kind, bytes: usize) {
            self.alloc[kind as usize][0].add(1);
            self.alloc[kind as usize][1].add(bytes as u64);
        }
        #[inline(always)]
        pub fn free(&self, kind: Kind, bytes: usize) {
            self.free[kind as usize][0].add(1);
            self.free[kind as usize][1].add(bytes as u64);
        }
        pub fn slab(&self, delta: i64) {
            let n = self.slabs.load(Ordering::Relaxed) + delta;
            self.slabs.store(n, Ordering::Relaxed);
            if n > self.peak_slabs.load(Ordering::Relaxed) {
                self.peak_slabs.store(n, Ordering::Relaxed);
            }
        }
        pub fn snapshot(&self) -> Stats {
            let mut s = Stats::default();
            for k in 0..KINDS {
                s.allocated[k] = Count {
                    blocks: self.alloc[k][0].get(),
                    bytes: self.alloc[k][1].get(),
                };
                s.freed[k] = Count {
                    blocks: self.free[k][0].get(),
                    bytes: self.free[k][1].get(),
                };
            }
            s.slabs = self.slabs.load(Ordering::Relaxed);
            s.peak_slabs = self.peak_slabs.load(Ordering::Relaxed);
            s
        }
    }
}

#[cfg(not(feature = "stat"))]
mod cells {
    use super::Kind;

    /// Without the `stat` feature: nothing.
    pub struct StatCells;

    impl StatCells {
        pub const fn new() -> Self {
            StatCells
        }
        #[inline(always)]
        pub fn alloc(&self, _: Kind, _: usize) {}
        #[inline(always)]
        pub fn free(&self, _: Kind, _: usize) {}
        #[inline(always)]
        pub fn slab(&self, _: i64) {}
    }
}

pub(crate) use cells::StatCells;
