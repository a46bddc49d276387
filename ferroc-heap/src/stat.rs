//! Statistics (feature `stat`): counters kept per context, without atomic read-modify-writes.
//!
//! Each context counts what it does itself: blocks it allocated and freed by size class (a
//! block freed by another thread counts there), huge blocks and their bytes, slabs it took and
//! gave back. An allocation or free from a shard updates one counter, indexed by the shard's
//! class; bytes (blocks times the class size) and the figures by kind are computed when the
//! counters are read. Each counter has a single writer, the owning thread, and is an atomic
//! only so that other threads may read a snapshot without a data race: an increment is a
//! relaxed load and store, the same instructions as a plain one. Without the feature,
//! `StatCells` is empty and every method compiles to nothing. (`StatSums`, which adds up
//! exited threads' counts, uses atomic additions: once per thread exit.)
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

use crate::class::{CLASS_COUNT, CLASS_SIZES, LARGE_MAX, MEDIUM_MAX, SMALL_MAX};

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

    /// The kind of the blocks of size class `c` (`c < CLASS_COUNT`): small, medium or large.
    #[inline]
    pub fn of_class(c: usize) -> Kind {
        Kind::of_size(CLASS_SIZES[c])
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
///
/// The counters (feature `stat`) are kept by size class; the figures by kind are their sums
/// (bytes: blocks times the class size), the huge kind's counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Allocations by kind.
    pub allocated: [Count; KINDS],
    /// Frees by kind.
    pub freed: [Count; KINDS],
    /// Live blocks by size class (feature `stat`): allocated minus freed, indexed like
    /// [`CLASS_SIZES`]. One context's figure may be negative (a block another context
    /// allocated and this one freed); merged over every context, live and exited, it is not.
    pub class_live: [i64; CLASS_COUNT],
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

impl Default for Stats {
    /// All zero.
    fn default() -> Self {
        Stats {
            allocated: [Count::default(); KINDS],
            freed: [Count::default(); KINDS],
            class_live: [0; CLASS_COUNT],
            slabs: 0,
            peak_slabs: 0,
            reserved: 0,
            committed: 0,
            direct: 0,
            abandoned: 0,
            peak_live: 0,
            in_use: 0,
            peak_in_use: 0,
            peak_reserved: 0,
            peak_committed: 0,
            huge_blocks: 0,
            huge_bytes: 0,
            pending: 0,
        }
    }
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
        for (mine, theirs) in self.class_live.iter_mut().zip(&other.class_live) {
            *mine += theirs;
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

    /// Live blocks and their bytes in size class `c` (`c < CLASS_COUNT`; 0 when the merged
    /// count is not positive).
    pub fn class_count(&self, c: usize) -> Count {
        let blocks = self.class_live[c].max(0) as u64;
        Count {
            blocks,
            bytes: blocks * CLASS_SIZES[c] as u64,
        }
    }
}

#[cfg(feature = "stat")]
mod cells {
    use super::*;
    use crate::shard::Shard;
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

    /// The live counters of one context: blocks allocated and freed by size class (bytes
    /// are blocks times the class size, computed when read), huge blocks and bytes apart.
    pub struct StatCells {
        alloc: [Counter; CLASS_COUNT],
        free: [Counter; CLASS_COUNT],
        /// Huge blocks: allocated blocks, allocated bytes, freed blocks, freed bytes.
        huge: [Counter; 4],
        slabs: AtomicI64,
        peak_slabs: AtomicI64,
        peak_live: AtomicI64,
    }

    /// The counter of `shard`'s class in `counters`: one indexed access, no bounds check.
    #[inline(always)]
    fn of_class<'c>(counters: &'c [Counter; CLASS_COUNT], shard: &Shard) -> &'c Counter {
        let c = shard.class();
        debug_assert!(c < CLASS_COUNT);
        // SAFETY: `c < CLASS_COUNT`: a shard's class is written only by `Shard::init`, with
        // a class index (`fresh_shard`'s, from `class_for` and the bounds-checked queues; 0
        // for huge shards), and read here only for shards that hand out or take back blocks.
        unsafe { counters.get_unchecked(c) }
    }

    impl StatCells {
        pub const fn new() -> Self {
            StatCells {
                alloc: [const { Counter::new() }; CLASS_COUNT],
                free: [const { Counter::new() }; CLASS_COUNT],
                huge: [const { Counter::new() }; 4],
                slabs: AtomicI64::new(0),
                peak_slabs: AtomicI64::new(0),
                peak_live: AtomicI64::new(0),
            }
        }
        /// A block of `shard` (not huge) allocated: one counter.
        #[inline(always)]
        pub fn alloc(&self, shard: &Shard) {
            of_class(&self.alloc, shard).add(1);
        }
        /// A block of `shard` (not huge) freed: one counter.
        #[inline(always)]
        pub fn free(&self, shard: &Shard) {
            of_class(&self.free, shard).add(1);
        }
        /// A huge block of `bytes` allocated (a slow path: raises the live peak).
        pub fn alloc_huge(&self, bytes: usize) {
            self.huge[0].add(1);
            self.huge[1].add(bytes as u64);
            self.raise_live_peak();
        }
        /// A huge block of `bytes` freed.
        pub fn free_huge(&self, bytes: usize) {
            self.huge[2].add(1);
            self.huge[3].add(bytes as u64);
        }
        /// This context's bytes allocated minus bytes freed.
        fn net_live(&self) -> i64 {
            let mut net = (self.huge[1].get() as i64).wrapping_sub(self.huge[3].get() as i64);
            for (c, &size) in CLASS_SIZES.iter().enumerate() {
                let blocks = self.alloc[c].get().wrapping_sub(self.free[c].get()) as i64;
                net = net.wrapping_add(blocks.wrapping_mul(size as i64));
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
            for (c, &size) in CLASS_SIZES.iter().enumerate() {
                let (a, f) = (self.alloc[c].get(), self.free[c].get());
                let k = Kind::of_class(c) as usize;
                s.allocated[k].blocks += a;
                s.allocated[k].bytes += a * size as u64;
                s.freed[k].blocks += f;
                s.freed[k].bytes += f * size as u64;
                s.class_live[c] = a.wrapping_sub(f) as i64;
            }
            let h = Kind::Huge as usize;
            s.allocated[h] = Count {
                blocks: self.huge[0].get(),
                bytes: self.huge[1].get(),
            };
            s.freed[h] = Count {
                blocks: self.huge[2].get(),
                bytes: self.huge[3].get(),
            };
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

    /// Counts added up from many contexts, for the ones that are gone (the global instances
    /// keep their exited threads' counts in one): each [`add`](Self::add) is a handful of
    /// atomic additions per class, a slow path (a thread's exit).
    pub struct StatSums {
        /// Blocks and bytes allocated, blocks and bytes freed, by kind.
        kinds: [AtomicU64; 4 * KINDS],
        class_live: [AtomicI64; CLASS_COUNT],
    }

    impl StatSums {
        /// All zero.
        pub const fn new() -> Self {
            StatSums {
                kinds: [const { AtomicU64::new(0) }; 4 * KINDS],
                class_live: [const { AtomicI64::new(0) }; CLASS_COUNT],
            }
        }

        /// Adds a context's counts (the arenas' figures are not kept).
        pub fn add(&self, s: &Stats) {
            // Relaxed: independent sums, read without ordering against anything else.
            for k in 0..KINDS {
                self.kinds[4 * k].fetch_add(s.allocated[k].blocks, Ordering::Relaxed);
                self.kinds[4 * k + 1].fetch_add(s.allocated[k].bytes, Ordering::Relaxed);
                self.kinds[4 * k + 2].fetch_add(s.freed[k].blocks, Ordering::Relaxed);
                self.kinds[4 * k + 3].fetch_add(s.freed[k].bytes, Ordering::Relaxed);
            }
            for (sum, &n) in self.class_live.iter().zip(&s.class_live) {
                if n != 0 {
                    sum.fetch_add(n, Ordering::Relaxed);
                }
            }
        }

        /// The sums, as a [`Stats`] to [`merge`](Stats::merge) with the live contexts'.
        pub fn snapshot(&self) -> Stats {
            let mut s = Stats::default();
            for k in 0..KINDS {
                s.allocated[k].blocks = self.kinds[4 * k].load(Ordering::Relaxed);
                s.allocated[k].bytes = self.kinds[4 * k + 1].load(Ordering::Relaxed);
                s.freed[k].blocks = self.kinds[4 * k + 2].load(Ordering::Relaxed);
                s.freed[k].bytes = self.kinds[4 * k + 3].load(Ordering::Relaxed);
            }
            for (n, sum) in s.class_live.iter_mut().zip(&self.class_live) {
                *n = sum.load(Ordering::Relaxed);
            }
            s
        }
    }

    impl Default for StatSums {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(not(feature = "stat"))]
mod cells {
    use crate::shard::Shard;

    /// Without the `stat` feature: nothing.
    pub struct StatCells;

    impl StatCells {
        pub const fn new() -> Self {
            StatCells
        }
        #[inline(always)]
        pub fn alloc(&self, _: &Shard) {}
        #[inline(always)]
        pub fn free(&self, _: &Shard) {}
        #[inline(always)]
        pub fn alloc_huge(&self, _: usize) {}
        #[inline(always)]
        pub fn free_huge(&self, _: usize) {}
        #[inline(always)]
        pub fn slab(&self, _: i64) {}
    }
}

pub(crate) use cells::StatCells;
#[cfg(feature = "stat")]
pub use cells::StatSums;

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

    /// With `stat`: each allocation and free counts in its block's class; the figures by kind
    /// are the classes' sums; a block freed by another context counts there (its class goes
    /// negative in that context, and the merge is exact); exited contexts' sums keep classes.
    #[cfg(feature = "stat")]
    #[test]
    fn counts_by_class() {
        use super::{Kind, StatSums, Stats};
        use crate::class::{CLASS_COUNT, CLASS_SIZES, class_of};

        let arenas = Arenas::new(Mmap);
        let cx = Context::new(&arenas);
        let heap = Heap::new(&cx);
        // (size asked, blocks): small, medium and large classes, and a huge block.
        let asks = [
            (1, 3),
            (48, 100),
            (1000, 7),
            (3000, 20),
            (100_000, 5),
            (5 << 20, 2),
        ];
        let mut blocks = std::vec::Vec::new();
        for &(size, n) in &asks {
            let l = Layout::from_size_align(size, 8).unwrap();
            for _ in 0..n {
                blocks.push((heap.allocate(l).unwrap(), l));
            }
        }
        let s = cx.stats();
        let mut want = [0i64; CLASS_COUNT];
        for &(size, n) in &asks[..5] {
            want[class_of(size)] += n;
        }
        assert_eq!(s.class_live, want);
        assert_eq!(s.class_count(class_of(48)).bytes, 100 * 48);
        assert_eq!(
            s.class_count(class_of(3000)).bytes,
            20 * CLASS_SIZES[class_of(3000)] as u64
        );
        // The kinds are the classes' sums.
        for k in [Kind::Small, Kind::Medium, Kind::Large] {
            let (blocks, bytes) = (0..CLASS_COUNT)
                .filter(|&c| Kind::of_class(c) == k)
                .map(|c| s.class_count(c))
                .fold((0, 0), |(b, y), n| (b + n.blocks, y + n.bytes));
            assert_eq!(s.allocated[k as usize].blocks, blocks, "{}", k.name());
            assert_eq!(s.allocated[k as usize].bytes, bytes, "{}", k.name());
        }
        assert_eq!(s.allocated[Kind::Small as usize].blocks, 110);
        assert_eq!(s.allocated[Kind::Huge as usize].blocks, 2);
        assert!(s.allocated[Kind::Huge as usize].bytes >= 10 << 20);
        assert_eq!(s.live_blocks(), 137);

        // Free the first half here, the rest from another context.
        let theirs: std::vec::Vec<(usize, Layout)> = blocks
            .split_off(blocks.len() / 2)
            .into_iter()
            .map(|(p, l)| (p.as_ptr() as usize, l))
            .collect();
        for (p, l) in blocks {
            // SAFETY: a live block of this heap, allocated with `l`, freed once.
            unsafe { heap.deallocate(p, l) };
        }
        let (other, retired) = std::thread::scope(|t| {
            t.spawn(|| {
                let cx2 = Context::new(&arenas);
                let h2 = Heap::new(&cx2);
                for (p, l) in theirs {
                    let p = core::ptr::NonNull::new(p as *mut u8).unwrap();
                    // SAFETY: a live block of a context over the same arenas, handed over,
                    // freed once.
                    unsafe { h2.deallocate(p, l) };
                }
                let sums = StatSums::new();
                sums.add(&cx2.stats());
                (cx2.stats(), sums.snapshot())
            })
            .join()
            .unwrap()
        });
        assert_eq!(other.class_live, retired.class_live);
        assert_eq!(other.allocated, retired.allocated);
        assert_eq!(other.freed, retired.freed);
        assert!(other.class_live.iter().all(|&n| n <= 0));
        assert!(other.class_live.iter().any(|&n| n < 0));
        let mut total: Stats = cx.stats();
        total.merge(&retired);
        assert_eq!(total.class_live, [0; CLASS_COUNT]);
        assert_eq!((total.live_blocks(), total.live_bytes()), (0, 0));
        assert_eq!(total.allocated, total.freed);
    }
}
