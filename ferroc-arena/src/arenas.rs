//! [`Arenas`]: the lock-free slab allocator over a base.

use core::{
    alloc::Layout,
    marker::PhantomData,
    mem::size_of,
    ptr::{self, NonNull},
    sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering},
};

use ferroc_base::{
    BaseAlloc, Chunk, align_up,
    bitmap::{Bitmap, words_for},
};

use crate::{
    Error,
    abandoned::AbandonedSet,
    sizes::{MAX_ARENA_SLABS, MAX_ARENAS, MIN_ARENA_SLABS, SLAB_SHIFT, SLAB_SIZE},
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
    /// When pending slabs should be purged (base clock, ms); 0 when nothing is pending.
    purge_at: AtomicU64,
    /// Unique in the process and never reused (see [`Arenas::own_run`]).
    serial: u64,
}

/// Serials of arenas: a plain counter (no structure hangs on it, so loom need not model it).
static NEXT_SERIAL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl<B: BaseAlloc> Arena<B> {
    fn bitmap(&self, which: usize) -> Bitmap<'_> {
        // SAFETY: the bitmaps follow the header in the committed tail of the chunk, written
        // once when the arena was made, and only accessed atomically afterwards.
        let words = unsafe {
            let first = (self as *const Self)
                .add(1)
                .cast::<ferroc_base::sync::atomic::AtomicU64>();
            core::slice::from_raw_parts(first.add(which * self.words), self.words)
        };
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
        // SAFETY: the stamps follow the bitmaps in the committed tail, written once when the
        // arena was made and only accessed atomically afterwards.
        unsafe {
            let first = (self as *const Self)
                .add(1)
                .cast::<u64>()
                .add(BITMAPS * self.words)
                .cast::<AtomicU64>();
            core::slice::from_raw_parts(first, self.slabs)
        }
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
}

/// The slab allocator: a set of arenas over one base. `Send + Sync`, const-constructible.
pub struct Arenas<B: BaseAlloc> {
    base: B,
    arenas: [AtomicPtr<Arena<B>>; MAX_ARENAS],
    abandoned: AtomicUsize,
    purge_delay_ms: AtomicU64,
    next_owner: AtomicUsize,
    direct_runs: AtomicUsize,
    direct_bytes: AtomicUsize,
    _owns: PhantomData<Chunk<B>>,
}

// SAFETY: the arenas' shared state is atomics; the headers they point to live in chunks the
// `Arenas` owns and only expose atomics. Sharing needs a shareable base and handles.
unsafe impl<B: BaseAlloc + Sync> Sync for Arenas<B> where B::Handle: Send + Sync {}
// SAFETY: moving the `Arenas` moves ownership of its chunks.
unsafe impl<B: BaseAlloc + Send> Send for Arenas<B> where B::Handle: Send {}

/// The default purge delay: 10 ms after the first free slab of a wave.
pub const DEFAULT_PURGE_DELAY_MS: u64 = 10;

impl<B: BaseAlloc> Arenas<B> {
    /// Arenas over `base`; no memory is reserved until the first allocation.
    pub const fn new(base: B) -> Self {
        Arenas {
            base,
            arenas: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_ARENAS],
            abandoned: AtomicUsize::new(0),
            purge_delay_ms: AtomicU64::new(DEFAULT_PURGE_DELAY_MS),
            next_owner: AtomicUsize::new(1),
            direct_runs: AtomicUsize::new(0),
            direct_bytes: AtomicUsize::new(0),
            _owns: PhantomData,
        }
    }

    /// The base.
    pub fn base(&self) -> &B {
        &self.base
    }

    /// Sets how long free slabs wait before they are decommitted: `0` purges at once,
    /// `u64::MAX` never purges except by [`purge`](Self::purge)`(true)`.
    pub fn set_purge_delay(&self, ms: u64) {
        self.purge_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// A number no other caller of this `Arenas` gets: the heap uses it to name slab owners.
    pub fn new_owner_id(&self) -> usize {
        self.next_owner.fetch_add(1, Ordering::Relaxed)
    }

    /// The arenas made so far.
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

    fn iter(&self) -> impl Iterator<Item = &Arena<B>> {
        self.arenas
            .iter()
            .map(|slot| slot.load(Ordering::Acquire))
            .take_while(|p| !p.is_null())
            // SAFETY: a published arena header lives until the `Arenas` drops.
            .map(|p| unsafe { &*p })
    }

    /// Allocates a run of `count` slabs whose address plus `offset` is a multiple of `align`
    /// (`align` a power of two; `offset` a multiple of the slab size below `count` slabs).
    /// The run is committed if `commit` is true; it is zeroed if [`SlabRun::is_zeroed`] says so.
    /// A run that fits in no arena and is larger than the next arena to be made is served
    /// straight from the base ([`SlabRun::is_direct`]).
    pub fn allocate(
        &self,
        count: usize,
        align: usize,
        offset: usize,
        commit: bool,
    ) -> Result<SlabRun<B>, Error<B::Error>> {
        if count == 0
            || !align.is_power_of_two()
            || !offset.is_multiple_of(SLAB_SIZE)
            || offset >> SLAB_SHIFT >= count
        {
            return Err(Error::TooLarge);
        }
        let align = align.max(SLAB_SIZE);
        // Slabs an arena needs beyond `count` to be sure to find an aligned start.
        let slack = (align >> SLAB_SHIFT) - 1;
        let needed = count.checked_add(slack).ok_or(Error::TooLarge)?;
        if needed > MAX_ARENA_SLABS {
            return self.allocate_direct(count, align, offset);
        }
        for arena in self.iter() {
            if let Some(run) = self.claim_in(arena, count, align, offset, commit)? {
                return Ok(run);
            }
        }
        if needed > self.next_arena_slabs() {
            // Bigger than the arena that would be made next: an arena of its own size would
            // break the growth sequence and stay reserved after the run is freed.
            return self.allocate_direct(count, align, offset);
        }
        loop {
            let arena = self.grow(needed)?;
            if let Some(run) = self.claim_in(arena, count, align, offset, commit)? {
                return Ok(run);
            }
        }
    }

    /// Tries to claim an aligned run in one arena. `Ok(None)` if it has no room.
    fn claim_in(
        &self,
        arena: &Arena<B>,
        count: usize,
        align: usize,
        offset: usize,
        commit: bool,
    ) -> Result<Option<SlabRun<B>>, Error<B::Error>> {
        let step = align >> SLAB_SHIFT;
        // The first index whose address + offset is aligned.
        let first = align_up(arena.start + offset, align).ok_or(Error::TooLarge)? - offset;
        let phase = ((first - arena.start) >> SLAB_SHIFT) % step;
        // A committed run: free slabs still resident (pending purge) first, they cost no page
        // faults and no new resident memory. An uncommitted one (its owner fills it another
        // way, e.g. by moving pages in): slabs with nothing resident first, so none is wasted.
        // Then the first fit.
        let warm = Self::find_window(arena, count, step, phase, commit)
            .filter(|&i| arena.used().try_claim_at(i, count));
        let Some(index) = warm.or_else(|| arena.used().claim(count, step, phase)) else {
            return Ok(None);
        };
        let zeroed = self.take_claimed(arena, index, count, commit)?;
        Ok(Some(SlabRun {
            ptr: arena.slab_address(index),
            count,
            zeroed,
            source: Source::of(arena, index),
        }))
    }

    /// In a snapshot of the arena, the start `i` (with `i % step == phase`) of a run of
    /// `count` free slabs: if `warm`, the one holding the most slabs pending purge (the lowest
    /// such start; the first made of pending slabs only), or `None` if no free run holds any;
    /// if not, the lowest one holding none, or `None` if nothing is pending (plain first fit
    /// does as well) or every free run holds some.
    fn find_window(
        arena: &Arena<B>,
        count: usize,
        step: usize,
        phase: usize,
        warm_first: bool,
    ) -> Option<usize> {
        let (used, pending) = (arena.used(), arena.pending());
        let mut free_words = [0u64; MAX_WORDS];
        let mut warm_words = [0u64; MAX_WORDS];
        let mut any = false;
        for w in 0..arena.words {
            free_words[w] = !used.word(w);
            warm_words[w] = pending.word(w) & free_words[w];
            any |= warm_words[w] != 0;
        }
        if !any {
            return None;
        }
        let bit = |words: &[u64; MAX_WORDS], i: usize| (words[i / 64] >> (i % 64)) & 1 != 0;
        // Free slabs ending at `i`, and how many of the last `count` of them are warm.
        let (mut free_len, mut warm) = (0usize, 0usize);
        let mut best: Option<(usize, usize)> = None;
        for i in 0..arena.slabs {
            if !bit(&free_words, i) {
                (free_len, warm) = (0, 0);
                continue;
            }
            free_len += 1;
            warm += usize::from(bit(&warm_words, i));
            if free_len > count {
                warm -= usize::from(bit(&warm_words, i - count));
            }
            if free_len >= count {
                let start = i + 1 - count;
                if start % step != phase {
                    continue;
                }
                if !warm_first {
                    if warm == 0 {
                        return Some(start);
                    }
                    continue;
                }
                if warm > best.map_or(0, |(w, _)| w) {
                    best = Some((warm, start));
                    if warm == count {
                        break;
                    }
                }
            }
        }
        best.map(|(_, start)| start)
    }

    /// Makes the just-claimed slabs `index..index + count` usable: no longer pending purge,
    /// committed and warmed up if `commit`. Returns whether they read zero. On a failed commit
    /// they go back (the slabs committed so far stay committed and pending purge, so they are
    /// decommitted later and not forgotten).
    fn take_claimed(
        &self,
        arena: &Arena<B>,
        index: usize,
        count: usize,
        commit: bool,
    ) -> Result<bool, Error<B::Error>> {
        arena.pending().clear(index, count);
        if commit && !arena.committed().is_set(index, count) {
            self.commit_run(arena, index, count)
                .inspect_err(|_| self.release_run(arena, index, count))?;
        }
        if commit {
            self.warm_up(arena, index, count);
        }
        let zeroed = arena.dirty().is_clear(index, count);
        // Dirty from the moment it is usable: an uncommitted run becomes dirty when committed.
        if commit {
            arena.dirty().set(index, count);
        }
        Ok(zeroed)
    }

    /// Grows a run in place to `count` slabs by claiming the free slabs right after it
    /// (committing them if `commit`). `Ok(false)`, the run unchanged, when they are not free,
    /// past the arena's end, or the run came straight from the base.
    pub fn grow_in_place(
        &self,
        slabs: &mut SlabRun<B>,
        count: usize,
        commit: bool,
    ) -> Result<bool, Error<B::Error>> {
        let Some((arena, index)) = self.own_run(&slabs.source) else {
            return Ok(false);
        };
        if count <= slabs.count {
            return Ok(count == slabs.count);
        }
        let (from, extra) = (index + slabs.count, count - slabs.count);
        if from + extra > arena.slabs || !arena.used().try_claim_at(from, extra) {
            return Ok(false);
        }
        slabs.zeroed &= self.take_claimed(arena, from, extra, commit)?;
        arena.dirty().set(from, extra);
        slabs.count = count;
        Ok(true)
    }

    /// Shrinks a run in place to `count` slabs (at least one), giving the slabs past them
    /// back like [`deallocate`](Self::deallocate) does. `false`, the run unchanged, for a run
    /// straight from the base or a `count` that is not smaller.
    pub fn shrink_in_place(&self, slabs: &mut SlabRun<B>, count: usize) -> bool {
        let Some((arena, index)) = self.own_run(&slabs.source) else {
            return false;
        };
        if count == 0 || count >= slabs.count {
            return false;
        }
        self.release_run(arena, index + count, slabs.count - count);
        slabs.count = count;
        true
    }

    /// Moves the contents of `from` to the start of `to` without copying (the base moves the
    /// pages, see [`BaseAlloc::move_pages`]), then gives `from` back, decommitted and zeroed.
    /// The rest of `to` is committed (and warmed up, see [`allocate`](Self::allocate)), so
    /// `to` may have been allocated uncommitted. `Err(from)`, `from` unchanged, when the base
    /// cannot, `to` is shorter, or committing fails; then `to` may be partly committed.
    ///
    /// # Safety
    ///
    /// Both runs are the caller's; `from` is committed and nothing uses it any more, and
    /// `to`'s contents are not needed.
    pub unsafe fn move_into(&self, from: SlabRun<B>, to: &SlabRun<B>) -> Result<(), SlabRun<B>> {
        if to.count < from.count {
            return Err(from);
        }
        let source = self.own_run(&from.source);
        if source.is_none() && !from.is_direct() {
            return Err(from);
        }
        let target = match to.source {
            Source::Arena { .. } => {
                let Some((arena, index)) = self.own_run(&to.source) else {
                    return Err(from);
                };
                if self.commit_run(arena, index, to.count).is_err() {
                    return Err(from);
                }
                Some((arena, index))
            }
            Source::Base(_) => {
                if self.commit(to).is_err() {
                    return Err(from);
                }
                None
            }
        };
        let moved = Self::move_whole(&self.base, from.ptr, to.ptr, from.count);
        if let Some((arena, index)) = target {
            // Warm up what the move does not cover (only then: a caller that copies writes
            // over the head, and warm pages there would be wasted), and it is all dirty.
            if moved != 0 {
                self.warm_up(arena, index + from.count, to.count - from.count);
            }
            arena.dirty().set(index, to.count);
        }
        if moved == 0 {
            return Err(from);
        }
        match (from.source, source) {
            (Source::Arena { .. }, Some((arena, index))) => {
                // The moved slabs read zero now: neither committed nor dirty, nothing to purge.
                // Any copied ones go back like a freed run.
                arena.committed().clear(index, moved);
                arena.dirty().clear(index, moved);
                arena.used().release(index, moved);
                if moved < from.count {
                    self.release_run(arena, index + moved, from.count - moved);
                }
            }
            (Source::Base(chunk), _) => {
                self.direct_runs.fetch_sub(1, Ordering::Relaxed);
                self.direct_bytes
                    .fetch_sub(chunk.layout().size(), Ordering::Relaxed);
                drop(chunk);
            }
            (Source::Arena { .. }, None) => unreachable!("checked on entry"),
        }
        Ok(())
    }

    /// Moves `count` slabs of pages from `from` to `to`: in one base call, or slab by slab if
    /// the base refuses the whole (the source may span several OS mappings), copying the
    /// slabs from the first one it refuses on. Returns how many leading slabs moved; if none,
    /// nothing was copied either.
    fn move_whole(base: &B, from: NonNull<u8>, to: NonNull<u8>, count: usize) -> usize {
        // SAFETY: the caller's committed runs: disjoint, slab-aligned, unused.
        if unsafe { base.move_pages(from, to, count << SLAB_SHIFT) } {
            return count;
        }
        let slab = |p: NonNull<u8>, k: usize| {
            // SAFETY: slab `k` of a run of at least `count` slabs.
            unsafe { p.add(k << SLAB_SHIFT) }
        };
        for k in 0..count {
            // SAFETY: slab `k` of each run, as above.
            if unsafe { base.move_pages(slab(from, k), slab(to, k), SLAB_SIZE) } {
                continue;
            }
            if k != 0 {
                // SAFETY: as above; the source slabs from `k` on are still ours and intact.
                unsafe {
                    ptr::copy_nonoverlapping(
                        slab(from, k).as_ptr(),
                        slab(to, k).as_ptr(),
                        (count - k) << SLAB_SHIFT,
                    )
                };
            }
            return k;
        }
        count
    }

    /// Gives the slabs of an owned committed run that were never touched since they last read
    /// zero the pages of free slabs still pending purge (from any arena), moved by the base
    /// without a copy: reusing resident memory instead of faulting in new pages, wherever the
    /// run lies. Stops at the first slab the base cannot move.
    fn warm_up(&self, arena: &Arena<B>, index: usize, count: usize) {
        for i in index..index + count {
            if arena.dirty().is_set(i, 1) {
                continue;
            }
            if !self.recycle_into(arena.slab_address(i)) {
                return;
            }
            arena.dirty().set(i, 1);
        }
    }

    /// Moves the pages of one free pending slab into the slab at `target`, leaving that slab
    /// free, decommitted and zeroed. `false` if there is none or the base cannot move pages.
    fn recycle_into(&self, target: NonNull<u8>) -> bool {
        for a in self.iter() {
            let (pending, used) = (a.pending(), a.used());
            for w in 0..a.words {
                let mut bits = pending.word(w) & !used.word(w);
                while bits != 0 {
                    let j = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if !used.try_claim_at(j, 1) {
                        continue;
                    }
                    // Ours now: its pending bit is final.
                    if !pending.is_set(j, 1) {
                        used.release(j, 1);
                        continue;
                    }
                    // SAFETY: slab `j` is free, ours for the moment, committed (pending), and
                    // its contents are garbage; the target is the caller's untouched slab.
                    let moved =
                        unsafe { self.base.move_pages(a.slab_address(j), target, SLAB_SIZE) };
                    if moved {
                        a.committed().clear(j, 1);
                        a.dirty().clear(j, 1);
                        a.pending().clear(j, 1);
                    }
                    used.release(j, 1);
                    return moved;
                }
            }
        }
        false
    }

    /// Commits the uncommitted slabs of an owned run.
    fn commit_run(
        &self,
        arena: &Arena<B>,
        index: usize,
        count: usize,
    ) -> Result<(), Error<B::Error>> {
        for i in index..index + count {
            if arena.committed().is_set(i, 1) {
                continue;
            }
            // SAFETY: slab `i` is inside the arena's chunk and owned by us.
            unsafe { self.base.commit(arena.slab_address(i), SLAB_SIZE) }.map_err(Error::Base)?;
            arena.committed().set(i, 1);
        }
        Ok(())
    }

    /// Commits every slab of a run that is not committed yet (for owners that allocated it
    /// uncommitted and now need the memory).
    pub fn commit(&self, slabs: &SlabRun<B>) -> Result<(), Error<B::Error>> {
        match slabs.source {
            Source::Arena { .. } => {
                let (arena, index) = self.own_run(&slabs.source).ok_or(Error::Foreign)?;
                // Not warmed up: the run may have been reported zeroed.
                self.commit_run(arena, index, slabs.count)?;
                arena.dirty().set(index, slabs.count);
                Ok(())
            }
            Source::Base(ref chunk) => {
                // SAFETY: the whole chunk is ours.
                unsafe { self.base.commit(chunk.pointer(), chunk.layout().size()) }
                    .map_err(Error::Base)
            }
        }
    }

    /// Serves a run straight from the base.
    fn allocate_direct(
        &self,
        count: usize,
        align: usize,
        offset: usize,
    ) -> Result<SlabRun<B>, Error<B::Error>> {
        let size = count.checked_mul(SLAB_SIZE).ok_or(Error::TooLarge)?;
        let extra = align - SLAB_SIZE;
        let layout =
            Layout::from_size_align(size.checked_add(extra).ok_or(Error::TooLarge)?, SLAB_SIZE)
                .map_err(|_| Error::TooLarge)?;
        let chunk = self.base.allocate(layout, true).map_err(Error::Base)?;
        let base = chunk.pointer().as_ptr() as usize;
        let start = align_up(base + offset, align).ok_or(Error::TooLarge)? - offset;
        self.direct_runs.fetch_add(1, Ordering::Relaxed);
        self.direct_bytes
            .fetch_add(chunk.layout().size(), Ordering::Relaxed);
        Ok(SlabRun {
            // SAFETY: `start` lies inside the chunk (at most `extra` bytes past its start).
            ptr: unsafe { NonNull::new_unchecked(start as *mut u8) },
            count,
            zeroed: chunk.is_zeroed(),
            source: Source::Base(chunk),
        })
    }

    /// Gives a run back. Its slabs are purged once the purge delay has passed.
    pub fn deallocate(&self, slabs: SlabRun<B>) {
        match slabs.source {
            Source::Base(chunk) => {
                self.direct_runs.fetch_sub(1, Ordering::Relaxed);
                self.direct_bytes
                    .fetch_sub(chunk.layout().size(), Ordering::Relaxed);
                drop(chunk);
            }
            Source::Arena { .. } => {
                // A run of other arenas is left alone: its own arenas release it when they drop.
                if let Some((arena, index)) = self.own_run(&slabs.source) {
                    self.release_run(arena, index, slabs.count);
                }
            }
        }
    }

    /// Gives back the owned run `index..index + count` of `arena`: purged at once when the
    /// delay is 0, else marked pending and purged once the delay has passed.
    fn release_run(&self, arena: &Arena<B>, index: usize, count: usize) {
        let delay = self.purge_delay_ms.load(Ordering::Relaxed);
        if delay == 0 {
            self.purge_run(arena, index, count);
            arena.used().release(index, count);
            return;
        }
        let now = self.base.now_ms();
        if let Some(now) = now {
            // Relaxed: the stamps are published by the Release of `used().release` below, and
            // the purger reads a slab's stamp only after claiming its used bit (AcqRel CAS).
            for stamp in &arena.stamps()[index..index + count] {
                stamp.store(now, Ordering::Relaxed);
            }
        }
        arena.pending().set(index, count);
        arena.used().release(index, count);
        if let Some(now) = now {
            let at = now.saturating_add(delay).max(1);
            // The arena's deadline is the earliest one of its pending runs (0: none), so a
            // shorter delay set later is not stuck behind an earlier, longer one.
            Self::schedule(arena, at);
            self.purge_due(now);
        }
    }

    /// Decommits an owned run and records that it is no longer committed (and zeroed, if the
    /// base says so).
    fn purge_run(&self, arena: &Arena<B>, index: usize, count: usize) {
        // SAFETY: the run is inside the arena and owned by us; nothing reads its contents.
        let zeroed = unsafe {
            self.base
                .decommit(arena.slab_address(index), count << SLAB_SHIFT)
        };
        arena.committed().clear(index, count);
        arena.pending().clear(index, count);
        if zeroed {
            arena.dirty().clear(index, count);
        }
    }

    /// Makes `at` the arena's purge deadline if it is earlier than the one set (or none is).
    fn schedule(arena: &Arena<B>, at: u64) {
        let _ = arena
            .purge_at
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                (cur == 0 || at < cur).then_some(at)
            });
    }

    /// Purges the arenas whose deadline has passed at time `now`.
    fn purge_due(&self, now: u64) {
        for arena in self.iter() {
            let at = arena.purge_at.load(Ordering::Relaxed);
            if at != 0
                && now >= at
                && arena
                    .purge_at
                    .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.purge_arena(arena, Some(now));
            }
        }
    }

    /// Decommits the pending slabs of an arena that nobody has claimed meanwhile and, at time
    /// `now`, were released at least the purge delay ago (all of them when `now` is `None`),
    /// one base call per stretch of consecutive such slabs. The earliest deadline of the
    /// slabs left pending becomes the arena's next one.
    fn purge_arena(&self, arena: &Arena<B>, now: Option<u64>) {
        let (pending, used, stamps) = (arena.pending(), arena.used(), arena.stamps());
        let delay = self.purge_delay_ms.load(Ordering::Relaxed);
        let next = core::cell::Cell::new(u64::MAX);
        // Takes slab `j` for the purger if it is free, pending and due. Its pending bit and
        // stamp are only changed by its owner, so once we own it the second look is final (it
        // may have been reused and purged meanwhile).
        let take = |j: usize| {
            if !pending.is_set(j, 1) || !used.try_claim_at(j, 1) {
                return false;
            }
            let due = match now {
                None => true,
                Some(now) => {
                    let at = stamps[j].load(Ordering::Relaxed).saturating_add(delay);
                    if at > now {
                        next.set(next.get().min(at));
                    }
                    at <= now
                }
            };
            let still = due && pending.is_set(j, 1);
            if !still {
                used.release(j, 1);
            }
            still
        };
        let mut i = 0;
        while i < arena.slabs {
            if !take(i) {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end < arena.slabs && take(end) {
                end += 1;
            }
            self.purge_run(arena, i, end - i);
            used.release(i, end - i);
            i = end;
        }
        if next.get() != u64::MAX {
            Self::schedule(arena, next.get());
        }
    }

    /// Decommits free slabs: all of them if `force`, else those whose delay has passed.
    /// Returns whether anything was pending.
    pub fn purge(&self, force: bool) -> bool {
        let mut any = false;
        for arena in self.iter() {
            any |= arena.pending().count_set() != 0;
            if force {
                arena.purge_at.store(0, Ordering::Relaxed);
                self.purge_arena(arena, None);
            }
        }
        if !force && let Some(now) = self.base.now_ms() {
            self.purge_due(now);
        }
        any
    }

    /// Slabs of the arena [`grow`](Self::grow) makes next: `MIN_ARENA_SLABS` doubled for each
    /// arena made so far, up to `MAX_ARENA_SLABS`.
    fn next_arena_slabs(&self) -> usize {
        let made = self.iter().count();
        (MIN_ARENA_SLABS << made.min(16)).min(MAX_ARENA_SLABS)
    }

    /// Makes and publishes a new arena able to hold `needed` slabs: the next of the growth
    /// sequence (each arena twice the last), or smaller, down to `needed`, when the base
    /// cannot give that much.
    fn grow(&self, needed: usize) -> Result<&Arena<B>, Error<B::Error>> {
        if self.iter().count() >= MAX_ARENAS {
            return Err(Error::Exhausted);
        }
        let mut slabs = self.next_arena_slabs().max(needed);
        let page = self.base.page_size();
        let chunk = loop {
            let size = (slabs << SLAB_SHIFT)
                + align_up(Arena::<B>::tail_size(slabs), page).ok_or(Error::TooLarge)?;
            let layout = Layout::from_size_align(size, SLAB_SIZE).map_err(|_| Error::TooLarge)?;
            match self.base.allocate(layout, false) {
                Ok(chunk) => break chunk,
                Err(e) if slabs / 2 < needed => return Err(Error::Base(e)),
                Err(_) => slabs /= 2,
            }
        };
        let arena = self.make_arena(chunk, Some(slabs))?;
        self.publish(arena)
    }

    /// Lays an arena out over `chunk` (with `slabs` slabs, or as many as fit).
    fn make_arena(
        &self,
        chunk: Chunk<B>,
        slabs: Option<usize>,
    ) -> Result<NonNull<Arena<B>>, Error<B::Error>> {
        let begin = chunk.pointer().as_ptr() as usize;
        let end = begin + chunk.layout().size();
        let start = align_up(begin, SLAB_SIZE).ok_or(Error::ChunkTooSmall)?;
        let fit = |n: usize| start + (n << SLAB_SHIFT) + Arena::<B>::tail_size(n) <= end;
        let slabs = match slabs {
            Some(n) => n,
            None => {
                let mut n = (end.saturating_sub(start) >> SLAB_SHIFT).min(MAX_ARENA_SLABS);
                while n > 0 && !fit(n) {
                    n -= 1;
                }
                n
            }
        };
        if slabs == 0 || !fit(slabs) {
            return Err(Error::ChunkTooSmall);
        }
        let header = start + (slabs << SLAB_SHIFT);
        let page = self.base.page_size();
        let commit_from = header & !(page - 1);
        let commit_to = align_up(header + Arena::<B>::tail_size(slabs), page)
            .ok_or(Error::TooLarge)?
            .min(end);
        // SAFETY: the header pages lie inside the chunk, past the slabs.
        unsafe {
            self.base.commit(
                NonNull::new_unchecked(commit_from as *mut u8),
                commit_to - commit_from,
            )
        }
        .map_err(Error::Base)?;
        let zeroed = chunk.is_zeroed();
        let words = words_for(slabs);
        let arena = header as *mut Arena<B>;
        // SAFETY: the header and its bitmaps fit in the committed tail (checked by `fit`), are
        // suitably aligned (slab-aligned address), and nothing else uses that memory.
        unsafe {
            arena.write(Arena {
                chunk,
                start,
                slabs,
                words,
                purge_at: AtomicU64::new(0),
                serial: NEXT_SERIAL.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            });
            let bits = arena.add(1).cast::<u64>();
            for w in 0..BITMAPS * words + slabs {
                bits.add(w).write(0);
            }
            if !zeroed {
                (*arena).dirty().set(0, slabs);
            }
            Ok(NonNull::new_unchecked(arena))
        }
    }

    /// Puts an arena in the first free slot, or gives its chunk back if there is none.
    fn publish(&self, arena: NonNull<Arena<B>>) -> Result<&Arena<B>, Error<B::Error>> {
        for slot in &self.arenas {
            if slot
                .compare_exchange(
                    ptr::null_mut(),
                    arena.as_ptr(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                // SAFETY: published; lives until the `Arenas` drops.
                return Ok(unsafe { arena.as_ref() });
            }
        }
        // SAFETY: never published, so ours alone: move the chunk out and release it.
        drop(unsafe { ptr::read(&arena.as_ref().chunk) });
        Err(Error::Exhausted)
    }

    /// Adds user memory (from a `Static`, or any chunk) as an extra arena: as many whole slabs
    /// as fit after aligning its start, with the arena header in its tail.
    pub fn manage(&self, chunk: Chunk<B>) -> Result<(), Error<B::Error>> {
        let arena = self.make_arena(chunk, None)?;
        self.publish(arena).map(|_| ())
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

    /// A snapshot of the arenas' state.
    pub fn stats(&self) -> ArenaStats {
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
            s.pending_purge += a.pending().count_set();
            s.abandoned += a.abandoned_bits().count_set();
        }
        s
    }
}

impl<B: BaseAlloc> Drop for Arenas<B> {
    fn drop(&mut self) {
        for slot in &mut self.arenas {
            let p = *slot.get_mut();
            if !p.is_null() {
                // SAFETY: we own the arena; the chunk is moved out of its header once and then
                // released, which takes the header with it.
                drop(unsafe { ptr::read(&(*p).chunk) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroc_base::Mmap;

    #[test]
    fn slabs_are_aligned_disjoint_and_reused() {
        let arenas = Arenas::new(Mmap);
        let a = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        let b = arenas.allocate(3, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(a.pointer().as_ptr() as usize % SLAB_SIZE, 0);
        assert!(a.is_zeroed() && b.is_zeroed());
        assert!(a.pointer().as_ptr() as usize + SLAB_SIZE <= b.pointer().as_ptr() as usize);
        // SAFETY: the slab is ours and committed.
        unsafe { a.pointer().as_ptr().write(1) };
        let pa = a.pointer();
        arenas.deallocate(a);
        let c = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(c.pointer(), pa);
        assert!(!c.is_zeroed(), "reused before purge: not zeroed");
        arenas.deallocate(c);
        assert!(arenas.purge(true));
        let d = arenas.allocate(1, SLAB_SIZE, 0, true).unwrap();
        assert_eq!(d.pointer(), pa);
        assert!(d.is_zeroed(), "purged with MADV_DONTNEED: zeroed again");
        // SAFETY: the slab is ours and committed.
        let first = unsafe { *d.pointer().as_ptr() };
        assert_eq!(first, 0);
        arenas.deallocate(d);
        arenas.deallocate(b);
        assert_eq!(arenas.stats().slabs_in_use, 0);
    }

    #[test]
    fn aligned_runs_with_offset() {
        let arenas = Arenas::new(Mmap);
        for align_shift in [SLAB_SHIFT + 1, SLAB_SHIFT + 3, 30] {
            let align = 1usize << align_shift;
            let r = arenas.allocate(2, align, SLAB_SIZE, true).unwrap();
            assert_eq!(
                (r.pointer().as_ptr() as usize + SLAB_SIZE) % align,
                0,
                "{r:?}"
            );
            arenas.deallocate(r);
        }
        let huge = arenas
            .allocate(MAX_ARENA_SLABS + 1, SLAB_SIZE, 0, true)
            .unwrap();
        assert!(huge.is_direct());
        assert_eq!(arenas.stats().direct_runs, 1);
        arenas.deallocate(huge);
        assert_eq!(arenas.stats().direct_runs, 0);
    }

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
}
