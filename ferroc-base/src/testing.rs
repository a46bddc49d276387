//! [`Failing`]: a base that fails on command, so every layer can test its out-of-memory paths.
//!
//! It wraps another base and counts calls: [`Failing::fail_allocate_at`]`(n)` makes the n-th
//! `allocate` from now fail, [`Failing::fail_commit_at`] does the same for `commit`, and
//! [`Failing::fail_always`] makes every allocation fail until turned off. It also counts the
//! chunks and bytes it has handed out and not yet seen released ([`Failing::live_chunks`],
//! [`Failing::live_bytes`]), so a test can check that an error path leaked nothing, and the
//! commit and decommit calls it forwarded ([`Failing::commits`], [`Failing::decommits`]), so a
//! test can see when memory is purged.

use core::{alloc::Layout, fmt, mem::ManuallyDrop, ptr::NonNull};

use crate::{
    BaseAlloc, Chunk,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// A base wrapper that fails the N-th allocate or commit. Use it as `&Failing<B>`.
pub struct Failing<B> {
    inner: B,
    allocate_countdown: AtomicUsize,
    commit_countdown: AtomicUsize,
    always: AtomicBool,
    live: AtomicUsize,
    live_bytes: AtomicUsize,
    allocations: AtomicUsize,
    commits: AtomicUsize,
    decommits: AtomicUsize,
    decommitted_bytes: AtomicUsize,
}

/// The error of a [`Failing`] base: injected, or the inner base's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailingError<E> {
    /// A failure this wrapper made up.
    Injected,
    /// The inner base failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for FailingError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailingError::Injected => f.write_str("injected failure"),
            FailingError::Inner(e) => e.fmt(f),
        }
    }
}

/// Counts a countdown down; true when it reaches zero now (the call that must fail).
fn tick(countdown: &AtomicUsize) -> bool {
    countdown
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok_and(|n| n == 1)
}

impl<B> Failing<B> {
    /// Wraps `inner`, failing nothing until told to.
    pub const fn new(inner: B) -> Self {
        Failing {
            inner,
            allocate_countdown: AtomicUsize::new(0),
            commit_countdown: AtomicUsize::new(0),
            always: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            live_bytes: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
            decommits: AtomicUsize::new(0),
            decommitted_bytes: AtomicUsize::new(0),
        }
    }

    /// The wrapped base.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Makes the `n`-th `allocate` from now fail (`n >= 1`); `0` cancels.
    pub fn fail_allocate_at(&self, n: usize) {
        self.allocate_countdown.store(n, Ordering::Relaxed);
    }

    /// Makes the `n`-th `commit` from now fail (`n >= 1`); `0` cancels.
    pub fn fail_commit_at(&self, n: usize) {
        self.commit_countdown.store(n, Ordering::Relaxed);
    }

    /// Makes every `allocate` and `commit` fail while `on`.
    pub fn fail_always(&self, on: bool) {
        self.always.store(on, Ordering::Relaxed);
    }

    /// Chunks handed out and not released yet.
    pub fn live_chunks(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Bytes of the chunks handed out and not released yet.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// Successful allocations so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }

    /// Successful commits so far.
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::Relaxed)
    }

    /// Decommit calls so far.
    pub fn decommits(&self) -> usize {
        self.decommits.load(Ordering::Relaxed)
    }

    /// Bytes passed to decommit so far.
    pub fn decommitted_bytes(&self) -> usize {
        self.decommitted_bytes.load(Ordering::Relaxed)
    }
}

// SAFETY: every chunk is the inner base's chunk, unchanged, and released through it; failures
// only add `Err` results, which the trait allows.
unsafe impl<'a, B: BaseAlloc> BaseAlloc for &'a Failing<B> {
    type Handle = (&'a Failing<B>, B::Handle);
    type Error = FailingError<B::Error>;

    fn page_size(&self) -> usize {
        self.inner.page_size()
    }

    fn allocate(&self, layout: Layout, commit: bool) -> Result<Chunk<Self>, Self::Error> {
        if self.always.load(Ordering::Relaxed) || tick(&self.allocate_countdown) {
            return Err(FailingError::Injected);
        }
        let chunk = ManuallyDrop::new(
            self.inner
                .allocate(layout, commit)
                .map_err(FailingError::Inner)?,
        );
        self.live.fetch_add(1, Ordering::Relaxed);
        self.live_bytes
            .fetch_add(chunk.layout().size(), Ordering::Relaxed);
        self.allocations.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the inner chunk is never dropped (`ManuallyDrop`); ours releases it through
        // the inner base in `deallocate`.
        Ok(unsafe { chunk.with_handle((*self, *chunk.handle())) })
    }

    unsafe fn deallocate(chunk: &mut Chunk<Self>) {
        let (this, _) = chunk.handle();
        let this: &Failing<B> = this;
        this.live.fetch_sub(1, Ordering::Relaxed);
        this.live_bytes
            .fetch_sub(chunk.layout().size(), Ordering::Relaxed);
        // SAFETY: the outer chunk is being released now, and only here; the inner chunk with
        // the inner handle is what the inner base handed out in `allocate`.
        drop(unsafe { chunk.with_handle::<B>(chunk.handle().1) });
    }

    unsafe fn commit(&self, ptr: NonNull<u8>, len: usize) -> Result<(), Self::Error> {
        if self.always.load(Ordering::Relaxed) || tick(&self.commit_countdown) {
            return Err(FailingError::Injected);
        }
        // SAFETY: our caller keeps `commit`'s contract for our chunks, and our chunks are the
        // inner base's chunks unchanged (same page size): it holds for the inner base too.
        unsafe { self.inner.commit(ptr, len) }.map_err(FailingError::Inner)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    unsafe fn decommit(&self, ptr: NonNull<u8>, len: usize) -> bool {
        self.decommits.fetch_add(1, Ordering::Relaxed);
        self.decommitted_bytes.fetch_add(len, Ordering::Relaxed);
        // SAFETY: our caller keeps `decommit`'s contract for our chunks, which are the inner
        // base's chunks unchanged: it holds for the inner base too.
        unsafe { self.inner.decommit(ptr, len) }
    }

    fn now_ms(&self) -> Option<u64> {
        self.inner.now_ms()
    }

    unsafe fn move_pages(&self, from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
        // SAFETY: our caller keeps `move_pages`' contract for our chunks, which are the inner
        // base's chunks unchanged: it holds for the inner base too.
        unsafe { self.inner.move_pages(from, to, len) }
    }
}

#[cfg(all(test, feature = "base-mmap"))]
mod tests {
    use super::*;
    use crate::Mmap;
    use std::prelude::rust_2024::*;

    #[test]
    fn fails_exactly_the_nth_call_and_counts_chunks() {
        let f = Failing::new(Mmap);
        let base = &f;
        let l = Layout::from_size_align(1 << 16, 1 << 16).unwrap();
        f.fail_allocate_at(2);
        let a = base.allocate(l, true).unwrap();
        assert_eq!(base.allocate(l, true).unwrap_err(), FailingError::Injected);
        let b = base.allocate(l, true).unwrap();
        assert_eq!(f.live_chunks(), 2);
        assert_eq!(f.live_bytes(), 2 << 16);
        assert_eq!(f.allocations(), 2);
        f.fail_commit_at(1);
        // SAFETY: test-owned memory, used within its bounds while alive.
        assert!(unsafe { base.commit(a.pointer(), 1 << 16) }.is_err());
        // SAFETY: test-owned memory, used within its bounds while alive.
        assert!(unsafe { base.commit(a.pointer(), 1 << 16) }.is_ok());
        assert_eq!(f.commits(), 1);
        // SAFETY: test-owned memory whose contents are no longer needed.
        unsafe { base.decommit(b.pointer(), 1 << 16) };
        assert_eq!((f.decommits(), f.decommitted_bytes()), (1, 1 << 16));
        drop((a, b));
        assert_eq!(f.live_chunks(), 0);
        assert_eq!(f.live_bytes(), 0);
        f.fail_always(true);
        assert!(base.allocate(l, true).is_err());
    }
}
