//! [`Arenas`]: the lock-free slab allocator over a base.
//!
//! This file holds the types ([`Arenas`], the arena header, [`SlabRun`]), finding the arena of
//! a run or an address, the abandon glue, the stats and the drop. Each job has a file of its
//! own:
//! - `claim.rs`: [`Arenas::allocate`], placement, commit and warm-up, direct runs;
//! - `resize.rs`: [`Arenas::grow_in_place`], [`Arenas::shrink_in_place`],
//!   [`Arenas::move_into`] and the recycling of pending slabs' pages;
//! - `purge.rs`: [`Arenas::deallocate`], release and [`Arenas::purge`];
//! - `grow.rs`: new arenas, their layout, publishing, [`Arenas::manage`].
//!
//! The lock-free pieces they share have their own modules with loom models:
//! [`crate::arena_list`] (the published arenas) and [`crate::purge_clock`] (deadlines and
//! release stamps).

mod claim;
mod grow;
mod purge;
mod resize;
mod settings;

use core::{
    marker::PhantomData,
    mem::size_of,
    ptr::{self, NonNull},
};

use ferroc_base::{
    BaseAlloc, Chunk,
    bitmap::{Bitmap, words_for},
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use crate::{
    abandoned::AbandonedSet,
    arena_list::ArenaList,
    purge_clock::{Deadline, PurgeView},
    sizes::{MAX_ARENA_SLABS, MAX_ARENAS, SLAB_SHIFT},
};

/// The five per-slab bitmaps, in the order they follow the arena header.
const BITMAPS: usize = 5;

/// Words of one bitmap of the largest arena (the warm search snapshots that many).
const MAX_WORDS: usize = MAX_ARENA_SLABS.div_ceil(64);

/// The header of one arena, stored right after its last slab, followed by its bitmaps.
struct Arena<B: BaseAlloc> {
    /// The memory of the whole arena, header included; released when the `Arenas` drops.
    chunk: Chunk<B>,
    /// Address of slab 0 (slab-aligned).
    start: usize,
    /// Number of slabs.
    slabs: usize,
    /// Words per bitmap.
    words: usize,
    /// When pending slabs should be purged (base clock, ms), if any are.
    purge_at: Deadline,
    /// Unique in the process and never reused (see [`Arenas::own_run`]).
    serial: u64,
}

/// Serials of arenas: a plain counter (no structure hangs on it, so loom need not model it).
static NEXT_SERIAL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl<B: BaseAlloc> Arena<B> {
    fn bitmap(&self, which: usize) -> Bitmap<'_> {
        // SAFETY: `which < BITMAPS`, and the bitmaps follow the header in the committed tail
        // of the chunk (`make_arena` laid them out there), so this stays inside it.
        let first = unsafe { self.tail().add(which * self.words) };
        // SAFETY: `first` starts `self.words` words of that bitmap, zeroed when the arena was
        // made and only accessed atomically afterwards, alive as long as `self`.
        let words = unsafe { core::slice::from_raw_parts(first, self.words) };
        Bitmap::new(words, self.slabs)
    }
    fn used(&self) -> Bitmap<'_> {
        self.bitmap(0)
    }
    fn committed(&self) -> Bitmap<'_> {
        self.bitmap(1)
    }
    fn dirty(&self) -> Bitmap<'_> {
        self.bitmap(2)
    }
    fn pending(&self) -> Bitmap<'_> {
        self.bitmap(3)
    }
    fn abandoned_bits(&self) -> Bitmap<'_> {
        self.bitmap(4)
    }

    /// When each slab was last released (base clock, ms): its purge delay counts from there.
    /// Written by the slab's owner before it releases the slab, read by the purger after it
    /// claimed the slab.
    fn stamps(&self) -> &[AtomicU64] {
        // SAFETY: the stamps follow the `BITMAPS` bitmaps in the committed tail of the chunk
        // (`make_arena` laid them out there), so this stays inside it.
        let first = unsafe { self.tail().add(BITMAPS * self.words) };
        // SAFETY: `first` starts the `self.slabs` stamps, zeroed when the arena was made and
        // only accessed atomically afterwards, alive as long as `self`.
        unsafe { core::slice::from_raw_parts(first, self.slabs) }
    }

    /// The first word after the header: the bitmaps, then the stamps (see `make_arena`).
    fn tail(&self) -> *const AtomicU64 {
        // One past the header is still inside the chunk: the tail follows it.
        (self as *const Self).wrapping_add(1).cast::<AtomicU64>()
    }

    /// The purge state of the arena (see [`crate::purge_clock`]).
    fn purge_view(&self) -> PurgeView<'_> {
        PurgeView::new(self.used(), self.pending(), self.stamps(), &self.purge_at)
    }

    fn slab_address(&self, index: usize) -> NonNull<u8> {
        // SAFETY: `start` is inside the arena's chunk, hence non-null.
        unsafe { NonNull::new_unchecked((self.start + (index << SLAB_SHIFT)) as *mut u8) }
    }

    fn index_of(&self, ptr: usize) -> Option<usize> {
        (ptr >= self.start && ptr < self.start + (self.slabs << SLAB_SHIFT))
            .then(|| (ptr - self.start) >> SLAB_SHIFT)
    }

    /// Bytes needed after the slabs for the header, bitmaps and release stamps of an arena of
    /// `slabs` slabs.
    fn tail_size(slabs: usize) -> usize {
        size_of::<Self>() + (BITMAPS * words_for(slabs) + slabs) * 8
    }
}

/// A run of slabs handed out by [`Arenas::allocate`]; give it back with
/// [`Arenas::deallocate`]. It is plain data: its owner may store it anywhere, typically in the
/// first slab's header.
pub struct SlabRun<B: BaseAlloc> {
    ptr: NonNull<u8>,
    count: usize,
    zeroed: bool,
    source: Source<B>,
}

enum Source<B: BaseAlloc> {
    /// Slabs `index..index + count` of the arena at this address, with that arena's serial.
    /// The pointer is never followed: [`Arenas::own_run`] finds the arena among its own.
    Arena {
        arena: NonNull<Arena<B>>,
        serial: u64,
        index: usize,
    },
    /// A chunk straight from the base, for runs larger than any arena.
    Base(Chunk<B>),
}

impl<B: BaseAlloc> Source<B> {
    /// Slabs from `index` of `arena`.
    fn of(arena: &Arena<B>, index: usize) -> Self {
        Source::Arena {
            arena: NonNull::from(arena),
            serial: arena.serial,
            index,
        }
    }
}

// SAFETY: a run is exclusive ownership of slab memory; the arena pointer is never followed
// (only compared), and a base chunk is `Send` when its handle is.
unsafe impl<B: BaseAlloc> Send for SlabRun<B> where B::Handle: Send {}

impl<B: BaseAlloc> SlabRun<B> {
    /// The first byte of the run (aligned as requested).
    #[inline]
    pub fn pointer(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Number of slabs.
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Size of the run in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.count << SLAB_SHIFT
    }

    /// Whether every byte of the run read zero when it was handed out.
    #[inline]
    pub fn is_zeroed(&self) -> bool {
        self.zeroed
    }

    /// Whether the run came straight from the base (it is larger than an arena).
    pub fn is_direct(&self) -> bool {
        matches!(self.source, Source::Base(_))
    }
}

impl<B: BaseAlloc> core::fmt::Debug for SlabRun<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlabRun")
            .field("ptr", &self.ptr)
            .field("count", &self.count)
            .field("zeroed", &self.zeroed)
            .field("direct", &self.is_direct())
            .finish()
    }
}

/// A snapshot of what the arenas hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Arenas made so far.
    pub arenas: usize,
    /// Bytes of slabs the arenas span (address space).
    pub reserved: usize,
    /// Bytes of slabs committed.
    pub committed: usize,
    /// Slabs handed out (abandoned ones included).
    pub slabs_in_use: usize,
    /// Slabs free but not purged yet.
    pub pending_purge: usize,
    /// Slabs abandoned and waiting for a new owner.
    pub abandoned: usize,
    /// Direct runs from the base alive.
    pub direct_runs: usize,
    /// Bytes of those direct runs.
    pub direct_bytes: usize,
    /// Huge blocks alive: runs their owner declared as holding one block each
    /// ([`Arenas::count_huge`]), from arenas or the base.
    pub huge_blocks: usize,
    /// Bytes of the runs of those huge blocks (committed: a huge run is committed whole).
    pub huge_bytes: usize,
    /// Most address space held at once: `reserved + direct_bytes` at its highest.
    pub peak_reserved: usize,
    /// Most memory committed at once: `committed + direct_bytes` at its highest.
    pub peak_committed: usize,
    /// Most bytes of runs handed out at once: `(slabs_in_use << SLAB_SHIFT) + direct_bytes`
    /// at its highest (an upper bound of the peak of live bytes).
    pub peak_in_use: usize,
}

impl ArenaStats {
    /// Bytes of runs handed out now (slabs in use, direct runs).
    pub fn in_use(&self) -> usize {
        (self.slabs_in_use << SLAB_SHIFT) + self.direct_bytes
    }
}

/// The high-water marks of [`ArenaStats`] and the huge-block counts.
///
/// Peaks are raised on the slow paths that can raise them (a run claimed, grown or committed:
/// [`Arenas::allocate`], [`Arenas::grow_in_place`], [`Arenas::commit`]) by recounting the
/// bitmaps, and when the stats are read; a claim is never counted twice, so they are exact
/// for one thread. Two threads that claim and release runs at the same moment may leave an
/// overlap of a few microseconds unseen. Relaxed orderings: these are figures, nothing is
/// published through them.
struct Marks {
    huge_blocks: AtomicUsize,
    huge_bytes: AtomicUsize,
    peak_reserved: AtomicUsize,
    peak_committed: AtomicUsize,
    peak_in_use: AtomicUsize,
}

impl Marks {
    const fn new() -> Self {
        Marks {
            huge_blocks: AtomicUsize::new(0),
            huge_bytes: AtomicUsize::new(0),
            peak_reserved: AtomicUsize::new(0),
            peak_committed: AtomicUsize::new(0),
            peak_in_use: AtomicUsize::new(0),
        }
    }
}

/// The slab allocator: a set of arenas over one base. `Send + Sync`, const-constructible.
pub struct Arenas<B: BaseAlloc> {
    base: B,
    arenas: ArenaList<Arena<B>, MAX_ARENAS>,
    abandoned: AtomicUsize,
    purge_delay_ms: AtomicU64,
    /// Whether new arenas are committed whole when made (see `settings.rs`). `Relaxed`: a
    /// setting, read whole when an arena is made; the arena's committed bits it leads to are
    /// published with the arena itself (`ArenaList`'s `AcqRel` publish).
    eager_commit: AtomicBool,
    next_owner: AtomicUsize,
    direct_runs: AtomicUsize,
    direct_bytes: AtomicUsize,
    marks: Marks,
    _owns: PhantomData<Chunk<B>>,
}

// SAFETY: the arenas' shared state is atomics; the headers they point to live in chunks the
// `Arenas` owns and only expose atomics. Sharing needs a shareable base and handles.
unsafe impl<B: BaseAlloc + Sync> Sync for Arenas<B> where B::Handle: Send + Sync {}
// SAFETY: moving the `Arenas` moves ownership of its chunks.
unsafe impl<B: BaseAlloc + Send> Send for Arenas<B> where B::Handle: Send {}

/// The default purge delay: 10 ms after the first free slab of a wave.
pub const DEFAULT_PURGE_DELAY_MS: u64 = 10;

/// The purge delay that never purges by time: free slabs stay committed until
/// [`Arenas::purge`]`(true)` (an explicit trim) decommits them.
pub const NEVER_PURGE: u64 = u64::MAX;

impl<B: BaseAlloc> Arenas<B> {
    /// Arenas over `base`; no memory is reserved until the first allocation.
    pub const fn new(base: B) -> Self {
        Arenas {
            base,
            arenas: ArenaList::new(),
            abandoned: AtomicUsize::new(0),
            purge_delay_ms: AtomicU64::new(DEFAULT_PURGE_DELAY_MS),
            eager_commit: AtomicBool::new(false),
            next_owner: AtomicUsize::new(1),
            direct_runs: AtomicUsize::new(0),
            direct_bytes: AtomicUsize::new(0),
            marks: Marks::new(),
            _owns: PhantomData,
        }
    }

    /// The base.
    pub fn base(&self) -> &B {
        &self.base
    }

    /// Sets how long free slabs wait before they are decommitted: `0` purges at once,
    /// [`NEVER_PURGE`] (`u64::MAX`) never purges except by [`purge`](Self::purge)`(true)`.
    pub fn set_purge_delay(&self, ms: u64) {
        self.purge_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// A number no other caller of this `Arenas` gets: the heap uses it to name slab owners.
    pub fn new_owner_id(&self) -> usize {
        self.next_owner.fetch_add(1, Ordering::Relaxed)
    }

    /// The arena of a run, if it is one of ours: `None` for a run of other `Arenas`, or of
    /// `Arenas` since dropped (whose arena a new one may sit where the old one was; the
    /// serial tells them apart). This is what makes the safe methods taking a [`SlabRun`] sound
    /// whatever run they are given: a foreign run is never followed into memory.
    /// Returns the arena and the run's first slab; `None` as well for a run from the base.
    fn own_run(&self, source: &Source<B>) -> Option<(&Arena<B>, usize)> {
        let Source::Arena {
            arena,
            serial,
            index,
        } = *source
        else {
            return None;
        };
        let arena = self
            .iter()
            .find(|a| core::ptr::eq(*a, arena.as_ptr()) && a.serial == serial)?;
        Some((arena, index))
    }

    /// The arenas made so far.
    #[inline]
    fn iter(&self) -> impl Iterator<Item = &Arena<B>> {
        self.arenas.iter()
    }

    /// The arena holding `ptr` and the slab index, if any.
    fn locate(&self, ptr: NonNull<u8>) -> Option<(&Arena<B>, usize)> {
        let addr = ptr.as_ptr() as usize;
        self.iter().find_map(|a| a.index_of(addr).map(|i| (a, i)))
    }

    fn abandoned_set<'a>(&'a self, arena: &'a Arena<B>) -> AbandonedSet<'a> {
        AbandonedSet::new(arena.abandoned_bits(), &self.abandoned)
    }

    /// Abandons the single-slab run `slabs`: its owner is gone but it still holds live data.
    /// The run stays allocated; [`reclaim`](Self::reclaim) hands it to a new owner. Returns the
    /// run back if it cannot be abandoned (a multi-slab or direct run).
    pub fn abandon(&self, slabs: SlabRun<B>) -> Result<(), SlabRun<B>> {
        match self.own_run(&slabs.source) {
            Some((arena, index)) if slabs.count == 1 => {
                self.abandoned_set(arena).abandon(index);
                Ok(())
            }
            _ => Err(slabs),
        }
    }

    /// Takes an abandoned slab, returning its run to the new owner.
    pub fn reclaim(&self) -> Option<SlabRun<B>> {
        if self.abandoned.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.iter().find_map(|arena| {
            let index = self.abandoned_set(arena).reclaim()?;
            Some(SlabRun {
                ptr: arena.slab_address(index),
                count: 1,
                zeroed: false,
                source: Source::of(arena, index),
            })
        })
    }

    /// Takes the abandoned slab at `ptr`, if it is one.
    pub fn reclaim_at(&self, ptr: NonNull<u8>) -> Option<SlabRun<B>> {
        let (arena, index) = self.locate(ptr)?;
        self.abandoned_set(arena)
            .reclaim_at(index)
            .then(|| SlabRun {
                ptr: arena.slab_address(index),
                count: 1,
                zeroed: false,
                source: Source::of(arena, index),
            })
    }

    /// How many slabs are abandoned (a hint).
    pub fn abandoned_count(&self) -> usize {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// A snapshot of the arenas' state, peaks raised to it first.
    pub fn stats(&self) -> ArenaStats {
        let mut s = self.note_peaks();
        s.huge_blocks = self.marks.huge_blocks.load(Ordering::Relaxed);
        s.huge_bytes = self.marks.huge_bytes.load(Ordering::Relaxed);
        for a in self.iter() {
            s.pending_purge += a.pending().count_set();
            s.abandoned += a.abandoned_bits().count_set();
        }
        s
    }

    /// Recounts what the peaks follow (reserved, committed, in use) and raises the peaks to
    /// it; returns those counts with the peaks (a slow path: a few words per arena).
    fn note_peaks(&self) -> ArenaStats {
        let mut s = ArenaStats {
            direct_runs: self.direct_runs.load(Ordering::Relaxed),
            direct_bytes: self.direct_bytes.load(Ordering::Relaxed),
            ..ArenaStats::default()
        };
        for a in self.iter() {
            s.arenas += 1;
            s.reserved += a.slabs << SLAB_SHIFT;
            s.committed += a.committed().count_set() << SLAB_SHIFT;
            s.slabs_in_use += a.used().count_set();
        }
        let raise =
            |peak: &AtomicUsize, now: usize| peak.fetch_max(now, Ordering::Relaxed).max(now);
        s.peak_reserved = raise(&self.marks.peak_reserved, s.reserved + s.direct_bytes);
        s.peak_committed = raise(&self.marks.peak_committed, s.committed + s.direct_bytes);
        s.peak_in_use = raise(&self.marks.peak_in_use, s.in_use());
        s
    }

    /// Raises the peaks after a claim, a growth or a commit (see [`Marks`]).
    #[cold]
    pub(crate) fn raise_peaks(&self) {
        self.note_peaks();
    }

    /// Counts huge blocks for [`ArenaStats`]: the heap calls it with `(1, bytes)` when a run
    /// starts holding a huge block, `(-1, -bytes)` when it gives the run back, and `(0, delta)`
    /// when the run is resized; `bytes` is the run's size. The arenas do not look at runs'
    /// contents, so only their owner can say which runs hold huge blocks. A slow path: one
    /// relaxed read-modify-write per figure.
    #[cold]
    pub fn count_huge(&self, blocks: isize, bytes: isize) {
        if blocks != 0 {
            self.marks
                .huge_blocks
                .fetch_add(blocks as usize, Ordering::Relaxed);
        }
        self.marks
            .huge_bytes
            .fetch_add(bytes as usize, Ordering::Relaxed);
    }
}

impl<B: BaseAlloc> Drop for Arenas<B> {
    fn drop(&mut self) {
        for arena in self.arenas.take_all() {
            // SAFETY: the list gave the arena back: `make_arena` wrote the header and nothing
            // else reaches it any more.
            let header = unsafe { arena.as_ref() };
            // SAFETY: the chunk is moved out of the header once, here, and released, which
            // takes the header (inside the chunk) with it; nothing reads the header after.
            drop(unsafe { ptr::read(&header.chunk) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizes::SLAB_SIZE;
    use ferroc_base::Mmap;

    #[test]
    fn abandon_and_reclaim() {
        let arenas = Arenas::new(Mmap);
        let a = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        let p = a.pointer();
        assert!(arenas.abandon(a).is_ok());
        assert_eq!(arenas.abandoned_count(), 1);
        let r = arenas.reclaim().unwrap();
        assert_eq!(r.pointer(), p);
        assert!(arenas.reclaim().is_none());
        arenas.abandon(r).unwrap();
        let r = arenas.reclaim_at(p).unwrap();
        arenas.deallocate(r);
        let multi = arenas.allocate(2, SLAB_SIZE, 0, true).unwrap();
        let multi = arenas.abandon(multi).unwrap_err();
        arenas.deallocate(multi);
    }

    #[test]
    fn peaks_follow_claims_and_stay() {
        let arenas = Arenas::new(Mmap);
        arenas.set_purge_delay(0);
        let runs: std::vec::Vec<_> = (0..4)
            .map(|_| arenas.allocate(2, SLAB_SIZE, 0, true).unwrap())
            .collect();
        let held = arenas.stats();
        assert_eq!(held.in_use(), 8 * SLAB_SIZE);
        assert!(held.committed >= 8 * SLAB_SIZE);
        assert_eq!(held.peak_in_use, held.in_use());
        assert_eq!(held.peak_committed, held.committed + held.direct_bytes);
        assert_eq!(held.peak_reserved, held.reserved + held.direct_bytes);
        arenas.count_huge(1, 2 * SLAB_SIZE as isize);
        assert_eq!(arenas.stats().huge_blocks, 1);
        assert_eq!(arenas.stats().huge_bytes, 2 * SLAB_SIZE);
        arenas.count_huge(-1, -2 * SLAB_SIZE as isize);
        for run in runs {
            arenas.deallocate(run);
        }
        let after = arenas.stats();
        assert_eq!((after.huge_blocks, after.huge_bytes), (0, 0));
        assert_eq!(after.in_use(), 0);
        assert!(after.committed < held.committed);
        assert_eq!(after.peak_in_use, held.peak_in_use);
        assert_eq!(after.peak_committed, held.peak_committed);
    }
}
