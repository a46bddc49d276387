//! Growth and publishing: the arenas' size sequence, laying an arena out over a chunk (slabs
//! first, then the header, bitmaps and stamps in its tail), and publishing it into the
//! lock-free slot array ([`crate::arena_list::ArenaList`]); [`Arenas::manage`] does the same
//! for memory the user hands over.

use core::{alloc::Layout, ptr::NonNull};

use ferroc_base::{BaseAlloc, Chunk, align_up, bitmap::words_for};

use super::{Arena, Arenas, BITMAPS, NEXT_SERIAL};
use crate::{
    Error,
    purge_clock::Deadline,
    sizes::{MAX_ARENA_SLABS, MAX_ARENAS, MIN_ARENA_SLABS, SLAB_SHIFT, SLAB_SIZE},
};

impl<B: BaseAlloc> Arenas<B> {
    /// Slabs of the arena [`grow`](Self::grow) makes next: `MIN_ARENA_SLABS` doubled for each
    /// arena made so far, up to `MAX_ARENA_SLABS`.
    pub(super) fn next_arena_slabs(&self) -> usize {
        let made = self.arenas.len();
        (MIN_ARENA_SLABS << made.min(16)).min(MAX_ARENA_SLABS)
    }

    /// Makes and publishes a new arena able to hold `needed` slabs: the next of the growth
    /// sequence (each arena twice the last), or smaller, down to `needed`, when the base
    /// cannot give that much.
    pub(super) fn grow(&self, needed: usize) -> Result<&Arena<B>, Error<B::Error>> {
        if self.arenas.len() >= MAX_ARENAS {
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
        self.commit_if_eager(arena);
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
        // SAFETY: `commit_from` is at or past `start` (the header follows the slabs, and a page
        // is no larger than a slab), and `start` lies inside the chunk: it is not null.
        let from = unsafe { NonNull::new_unchecked(commit_from as *mut u8) };
        // SAFETY: the header pages `[commit_from, commit_to)` are page-aligned and lie inside
        // our chunk, past the slabs.
        unsafe { self.base.commit(from, commit_to - commit_from) }.map_err(Error::Base)?;
        let zeroed = chunk.is_zeroed();
        let words = words_for(slabs);
        let serial = NEXT_SERIAL.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let arena = header as *mut Arena<B>;
        // SAFETY: the header fits in the tail just committed (checked by `fit`), is aligned
        // (a slab-aligned address), and nothing else uses that memory.
        unsafe {
            arena.write(Arena {
                chunk,
                start,
                slabs,
                words,
                purge_at: Deadline::new(),
                serial,
            })
        };
        // The bitmaps and the release stamps follow the header, all zero to begin with.
        let tail = arena.wrapping_add(1).cast::<u64>();
        // SAFETY: those `BITMAPS * words + slabs` words lie in the committed tail too (checked
        // by `fit`), 8-aligned after the header, and nothing else uses them.
        unsafe { tail.write_bytes(0, BITMAPS * words + slabs) };
        // SAFETY: the header was written just above and lives as long as its chunk, which is
        // released only when the `Arenas` drops or `publish` gives it back.
        let arena = unsafe { &*arena };
        if !zeroed {
            arena.dirty().set(0, slabs);
        }
        Ok(NonNull::from(arena))
    }

    /// Puts an arena in the first free slot, or gives its chunk back if there is none.
    fn publish(&self, arena: NonNull<Arena<B>>) -> Result<&Arena<B>, Error<B::Error>> {
        // SAFETY: `make_arena` wrote the header in full; it lives in its own chunk, which is
        // released only by the `Arenas`' drop (after `take_all`), and is only read shared.
        match unsafe { self.arenas.publish(arena) } {
            Ok(arena) => Ok(arena),
            Err(arena) => {
                // SAFETY: never published, so the header is ours alone and fully written.
                let header = unsafe { arena.as_ref() };
                // SAFETY: the chunk is moved out of the header once, here, and released,
                // which takes the header with it; nothing reads the header after.
                drop(unsafe { core::ptr::read(&header.chunk) });
                Err(Error::Exhausted)
            }
        }
    }

    /// Adds user memory (from a `Static`, or any chunk) as an extra arena: as many whole slabs
    /// as fit after aligning its start, with the arena header in its tail.
    pub fn manage(&self, chunk: Chunk<B>) -> Result<(), Error<B::Error>> {
        let arena = self.make_arena(chunk, None)?;
        self.publish(arena).map(|_| ())
    }
}
