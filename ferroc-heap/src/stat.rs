//! Statistics (feature `stat`): counters kept per context, without atomic read-modify-writes.
//!
//! Each context counts what it does itself: blocks and bytes it allocated, blocks and bytes it
//! freed (a block freed by another thread counts there), slabs it took and gave back. Each
//! counter has a single writer, the owning thread, and is an atomic only so that other threads
//! may read a snapshot without a data race: an increment is a relaxed load and store, the
//! same instructions as a plain one. Without the feature, `StatCells` is empty and every
//! method compiles to nothing.
//!
//! [`Stats`] also carries the arenas' figures, which need no feature: reserved, committed,
//! bytes in use, huge blocks and their peaks ([`ferroc_arena::ArenaStats`]).
//!
//! ## Peaks
//! - `peak_reserved`, `peak_committed`, `peak_in_use` come from the arenas: raised whenever a
//!   run is claimed, grown or committed, so exact for one thread (see `ferroc_arena`'s
//!   `Marks`).
//! - `peak_live` (feature `stat`): each context raises its own peak of bytes it allocated
//!   minus bytes it freed on its slow paths only (when it takes a slab, allocates a huge
//!   block, and when it is read), never on the fast paths: between two such moments a
//!   context can allocate at most the free blocks of the slabs it holds, which its peak then
//!   misses. Contexts' peaks add up when merged (they may have peaked at different times, and
//!   a thread that frees another's blocks lowers its own count), so the sum is capped by the
//!   peak of bytes in use (which is exact and bounds live bytes) and raised to the current
//!   live bytes: `live ≤ peak_live ≤ peak_in_use`. Exited threads keep their counts, not
//!   their peaks.

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
    /// Most bytes live at once (feature `stat`; see the module docs for its precision).
    pub peak_live: i64,
    /// Bytes of runs handed out: slabs in use (shards, huge blocks, abandoned slabs) and
    /// direct runs (shared figure, not summed). Live blocks lie in them: `live ≤ in_use`.
    pub in_use: u64,
    /// Most bytes in use at once (shared figure).
    pub peak_in_use: u64,
    /// Most address space held at once, direct runs included: compare with
    /// `reserved + direct` (shared figure).
    pub peak_reserved: u64,
    /// Most memory committed at once, direct runs included: compare with
    /// `committed + direct` (shared figure).
    pub peak_committed: u64,
    /// Huge blocks alive (shared figure, counted without the `stat` feature too).
    pub huge_blocks: u64,
    /// Bytes of their runs (shared figure).
    pub huge_bytes: u64,
    /// Slabs free but still committed, waiting for the purge delay (shared figure).
    pub pending: u64,
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
        self.peak_live += other.peak_live;
    }

    /// Sets the shared figures from the arenas (after every [`merge`](Self::merge)), and
    /// bounds the merged live peak by them (see the module docs).
    pub fn add_arenas(&mut self, a: &ferroc_arena::ArenaStats) {
        self.reserved = a.reserved as u64;
        self.committed = a.committed as u64;
        self.direct = a.direct_bytes as u64;
        self.abandoned = a.abandoned as u64;
        self.in_use = a.in_use() as u64;
        self.peak_in_use = a.peak_in_use as u64;
        self.peak_reserved = a.peak_reserved as u64;
        self.peak_committed = a.peak_committed as u64;
        self.huge_blocks = a.huge_blocks as u64;
        self.huge_bytes = a.huge_bytes as u64;
        self.pending = a.pending_purge as u64;
        if cfg!(feature = "stat") {
            let cap = i64::try_from(self.peak_in_use).unwrap_or(i64::MAX);
            self.peak_live = self.peak_live.min(cap).max(self.live_bytes());
        }
    }

    /// The arenas' figures alone: what is known without the `stat` feature.
    pub fn of_arenas(a: &ferroc_arena::ArenaStats) -> Stats {
        let mut s = Stats::default();
        s.add_arenas(a);
        s
    }

    /// Address space held: the arenas and the direct runs.
    pub fn total_reserved(&self) -> u64 {
        self.reserved + self.direct
    }

    /// Memory committed: the arenas' slabs and the direct runs.
    pub fn total_committed(&self) -> u64 {
        self.committed + self.direct
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
        peak_live: AtomicI64,
    }

    impl StatCells {
        pub const fn new() -> Self {
            StatCells {
                alloc: [const { [Counter::new(), Counter::new()] }; KINDS],
                free: [const { [Counter::new(), Counter::new()] }; KINDS],
                slabs: AtomicI64::new(0),
                peak_slabs: AtomicI64::new(0),
                peak_live: AtomicI64::new(0),
            }
        }
        #[inline(always)]
        pub fn alloc(&self, kind: Kind, bytes: usize) {
            self.alloc[kind as usize][0].add(1);
            self.alloc[kind as usize][1].add(bytes as u64);
            // Every caller names its kind as a constant, so this folds away except on the
            // huge path (a slow path).
            if matches!(kind, Kind::Huge) {
                self.raise_live_peak();
            }
        }
        /// This context's bytes allocated minus bytes freed.
        fn net_live(&self) -> i64 {
            let mut net = 0i64;
            for k in 0..KINDS {
                net = net.wrapping_add(self.alloc[k][1].get() as i64);
                net = net.wrapping_sub(self.free[k][1].get() as i64);
            }
            net
        }
        /// Raises the live peak to the current count (slow paths only: see the module docs).
        #[cold]
        fn raise_live_peak(&self) {
            let net = self.net_live();
            if net > self.peak_live.load(Ordering::Relaxed) {
                self.peak_live.store(net, Ordering::Relaxed);
            }
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
            if delta > 0 {
                self.raise_live_peak();
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
            // Only the owner writes the peak: a reader from another thread computes it
            // without storing.
            s.peak_live = self
                .peak_live
                .load(Ordering::Relaxed)
                .max(self.net_live())
                .max(0);
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

#[cfg(test)]
mod tests {
    use core::alloc::Layout;

    use ferroc_arena::Arenas;
    use ferroc_base::Mmap;

    use crate::{Context, Heap};

    /// The arenas' figures (no feature needed) and, with `stat`, the live peak follow
    /// allocations and frees; peaks never fall below the current values.
    #[test]
    fn figures_and_peaks_move() {
        let arenas = Arenas::new(Mmap);
        let cx = Context::new(&arenas);
        let heap = Heap::new(&cx);
        let stats = || super::Stats::of_arenas(&arenas.stats());
        let before = stats();
        let huge = Layout::from_size_align(10 << 20, 8).unwrap();
        let small = Layout::from_size_align(64, 8).unwrap();
        let h = heap.allocate(huge).unwrap();
        let blocks: std::vec::Vec<_> = (0..10_000).map(|_| heap.allocate(small).unwrap()).collect();
        let during = stats();
        assert_eq!(during.huge_blocks, before.huge_blocks + 1);
        assert!(during.huge_bytes >= 10 << 20);
        assert!(during.in_use >= (10 << 20) + 640_000);
        assert!(during.total_committed() >= during.in_use);
        assert!(during.peak_in_use >= during.in_use);
        assert!(during.peak_committed >= during.total_committed());
        assert!(during.peak_reserved >= during.total_reserved());
        #[cfg(feature = "stat")]
        {
            let s = cx.stats();
            assert!(s.live_bytes() >= (10 << 20) + 640_000);
            assert!(s.peak_live >= s.live_bytes());
            assert!(s.peak_live as u64 <= s.peak_in_use);
        }
        // SAFETY: `h` is a live block of this heap, allocated with `huge`, freed once.
        unsafe { heap.deallocate(h, huge) };
        for b in blocks {
            // SAFETY: each is a live block of this heap, allocated with `small`, freed once.
            unsafe { heap.deallocate(b, small) };
        }
        let after = stats();
        assert_eq!(after.huge_blocks, before.huge_blocks);
        assert_eq!(after.huge_bytes, before.huge_bytes);
        assert!(after.in_use < during.in_use);
        // The peaks remember.
        assert!(after.peak_in_use >= during.in_use);
        assert!(after.peak_committed >= during.total_committed());
        #[cfg(feature = "stat")]
        {
            let s = cx.stats();
            assert!(s.peak_live >= (10 << 20) + 640_000);
            assert!(s.live_bytes() < s.peak_live);
        }
    }
}
