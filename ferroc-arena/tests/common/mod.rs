//! Test support shared by the arena tests: [`Probe`], a base wrapper that records where its
//! live chunks are and has a clock the test moves by hand, and [`give_back`].
#![allow(dead_code)]

use std::{
    alloc::Layout,
    mem::ManuallyDrop,
    ptr::NonNull,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use ferroc_arena::{Arenas, BaseAlloc, Chunk, SlabRun, sizes::SLAB_SIZE};

/// Gives every run of `runs` back and checks that the arenas hold no slab in use any more.
pub fn give_back<B: BaseAlloc>(arenas: &Arenas<B>, runs: impl IntoIterator<Item = SlabRun<B>>) {
    for r in runs {
        arenas.deallocate(r);
    }
    assert_eq!(arenas.stats().slabs_in_use, 0);
}

/// Wraps a base, recording every live chunk's range; `now_ms` is a hand-moved clock (or none).
pub struct Probe<B> {
    inner: B,
    chunks: Mutex<Vec<(usize, usize)>>,
    /// The clock in ms; `u64::MAX` means "no clock".
    clock: AtomicU64,
}

impl<B> Probe<B> {
    /// A probe with a clock at `Some(t)`, or without one.
    pub fn new(inner: B, clock: Option<u64>) -> Self {
        Probe {
            inner,
            chunks: Mutex::new(Vec::new()),
            clock: AtomicU64::new(clock.unwrap_or(u64::MAX)),
        }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Moves the clock forward (it must have one).
    pub fn advance(&self, ms: u64) {
        let old = self.clock.fetch_add(ms, Ordering::Relaxed);
        assert_ne!(old, u64::MAX, "advance on a probe without a clock");
    }

    /// The live chunks, as `(start, len)`.
    pub fn chunks(&self) -> Vec<(usize, usize)> {
        self.chunks.lock().unwrap().clone()
    }

    pub fn live_chunks(&self) -> usize {
        self.chunks.lock().unwrap().len()
    }

    /// The size of the live chunk that starts at `ptr`, if one does.
    pub fn chunk_at(&self, ptr: usize) -> Option<usize> {
        self.chunks
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.0 == ptr)
            .map(|c| c.1)
    }

    /// Whether `[ptr, ptr + len)` lies inside one live chunk. For a run of an arena
    /// (`in_arena`), also that it ends before the arena's header, which follows its last slab
    /// in the chunk's tail: no slab reaches the last slab-size boundary before the chunk end.
    pub fn holds(&self, ptr: usize, len: usize, in_arena: bool) -> bool {
        self.chunks.lock().unwrap().iter().any(|&(start, size)| {
            let end = start + size;
            let limit = if in_arena {
                (end - 1) & !(SLAB_SIZE - 1)
            } else {
                end
            };
            ptr >= start && ptr + len <= limit
        })
    }
}

// SAFETY: every chunk is the inner base's chunk, unchanged, and released through it; the probe
// only records ranges and answers the clock.
unsafe impl<'a, B: BaseAlloc> BaseAlloc for &'a Probe<B> {
    type Handle = (&'a Probe<B>, B::Handle);
    type Error = B::Error;

    fn page_size(&self) -> usize {
        self.inner.page_size()
    }

    fn allocate(&self, layout: Layout, commit: bool) -> Result<Chunk<Self>, Self::Error> {
        let chunk = ManuallyDrop::new(self.inner.allocate(layout, commit)?);
        self.chunks
            .lock()
            .unwrap()
            .push((chunk.pointer().as_ptr() as usize, chunk.layout().size()));
        // SAFETY: the inner chunk is never dropped (`ManuallyDrop`); ours releases it through
        // the inner base in `deallocate`.
        Ok(unsafe { chunk.with_handle((*self, *chunk.handle())) })
    }

    unsafe fn deallocate(chunk: &mut Chunk<Self>) {
        let this: &Probe<B> = chunk.handle().0;
        let start = chunk.pointer().as_ptr() as usize;
        {
            let mut chunks = this.chunks.lock().unwrap();
            let i = chunks.iter().position(|c| c.0 == start).unwrap();
            chunks.swap_remove(i);
        }
        // SAFETY: the outer chunk is being released now, and only here; the inner chunk with
        // the inner handle is what the inner base handed out in `allocate`.
        drop(unsafe { chunk.with_handle::<B>(chunk.handle().1) });
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, len: usize) -> Result<(), Self::Error> {
        // SAFETY: our caller keeps `commit`'s contract for our chunks, which are the inner
        // base's chunks unchanged (same page size): it holds for the inner base too.
        unsafe { self.inner.commit(ptr, len) }
    }

    unsafe fn decommit(&self, ptr: NonNull<u8>, len: usize) -> bool {
        // SAFETY: our caller keeps `decommit`'s contract for our chunks, which are the inner
        // base's chunks unchanged: it holds for the inner base too.
        unsafe { self.inner.decommit(ptr, len) }
    }

    unsafe fn move_pages(&self, from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
        // SAFETY: our caller keeps `move_pages`' contract for our chunks, which are the inner
        // base's chunks unchanged: it holds for the inner base too.
        unsafe { self.inner.move_pages(from, to, len) }
    }

    fn now_ms(&self) -> Option<u64> {
        let t = self.clock.load(Ordering::Relaxed);
        (t != u64::MAX).then_some(t)
    }
}
