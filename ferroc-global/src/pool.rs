//! The pool of thread slots: stable homes for the contexts of live threads.
//!
//! A thread's context must not move while the thread lives (its thread-local slot points at
//! it), and must not come from the allocator it serves. Slots therefore live in pages taken
//! straight from the base, 64 slots a page, claimed and released through a per-page
//! [`Bitmap`]; a slot freed at thread exit is reused by the next new thread, so thousands of
//! threads coming and going reuse a handful of pages.
//!
//! # Slot states
//! `FREE → INIT → LIVE ⇄ READING`, `LIVE → EXITING → FREE`. The owner writes its context only
//! in `INIT` (before others can look at it) and drops it in `EXITING`; a statistics reader
//! moves `LIVE → READING` with a CAS, reads the context's counters (atomics), and moves it
//! back. The exiting owner waits out a reader with a `CAS(LIVE → EXITING)` loop, so a reader
//! never sees a context being written or dropped. A reader holds `READING` inside
//! `ferroc_heap::fork`'s guard, so `fork()` (with ferroc-global's handlers) never copies a
//! `READING` slot into a child, where its owner's exit would wait for ever. Claiming the page
//! bit is `Acquire` and releasing it `Release` (see `ferroc_base::bitmap`), so a slot's
//! previous life happens-before its next one.

use core::{
    alloc::Layout,
    cell::{Cell, UnsafeCell},
    mem::MaybeUninit,
    ptr,
};

use crossbeam_utils::Backoff;
use ferroc_base::{
    BaseAlloc, Chunk,
    bitmap::Bitmap,
    sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering},
};
use ferroc_heap::Context;

/// Slots per page.
const SLOTS: usize = 64;
/// Pages at most: 256 × 64 = 16,384 threads alive at once.
const PAGES: usize = 256;

const FREE: u8 = 0;
const INIT: u8 = 1;
const LIVE: u8 = 2;
const READING: u8 = 3;
const EXITING: u8 = 4;

/// A stable home for one thread's context.
///
/// All zero bytes are a valid free slot, so a page that comes zeroed from the base is used
/// as it is: only the slots threads claim are ever written, and a process with one thread
/// touches one slot's memory, not the whole page's (64 contexts, some 170 KiB).
pub struct Slot<B: BaseAlloc + 'static> {
    state: AtomicU8,
    /// The page and the index in it, written by the claimer (for `release`).
    page: Cell<*const Page<B>>,
    index: Cell<usize>,
    cx: UnsafeCell<MaybeUninit<Context<'static, B>>>,
}

struct Page<B: BaseAlloc + 'static> {
    chunk: MaybeUninit<Chunk<B>>,
    bits: [AtomicU64; 1],
    slots: [Slot<B>; SLOTS],
}

/// The pool.
pub struct Pool<B: BaseAlloc + 'static> {
    pages: [AtomicPtr<Page<B>>; PAGES],
}

// SAFETY: slots are handed to one thread at a time (bitmap claim); everything shared is
// atomic; pages live as long as the pool.
unsafe impl<B: BaseAlloc + 'static> Sync for Pool<B> {}

impl<B: BaseAlloc + 'static> Pool<B> {
    /// An empty pool.
    pub const fn new() -> Self {
        Pool {
            pages: [const { AtomicPtr::new(ptr::null_mut()) }; PAGES],
        }
    }

    fn live_pages(&self) -> impl Iterator<Item = &Page<B>> {
        self.pages
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .take_while(|p| !p.is_null())
            // SAFETY: published pages live as long as the pool.
            .map(|p| unsafe { &*p })
    }

    /// Claims a slot and puts a new context over `arenas` in it. `None` if the base cannot
    /// give a page or every page is full.
    pub fn claim(
        &self,
        base: &B,
        arenas: &'static ferroc_arena::Arenas<B>,
    ) -> Option<&'static Slot<B>> {
        for i in 0..PAGES {
            let mut page = self.pages[i].load(Ordering::Acquire);
            if page.is_null() {
                page = self.add_page(i, base)?;
            }
            // SAFETY: published pages live as long as the pool, which is 'static.
            let page: &'static Page<B> = unsafe { &*page };
            if let Some(k) = Bitmap::new(&page.bits, SLOTS).claim(1, 1, 0) {
                let slot = &page.slots[k];
                slot.page.set(page);
                slot.index.set(k);
                slot.state.store(INIT, Ordering::Relaxed);
                // SAFETY: the slot is ours (bit claimed) and in state INIT, which nobody else
                // reads through.
                unsafe { (*slot.cx.get()).write(Context::new(arenas)) };
                slot.state.store(LIVE, Ordering::Release);
                return Some(slot);
            }
        }
        None
    }

    /// Makes page `i` (or returns the one another thread made first).
    #[cold]
    fn add_page(&self, i: usize, base: &B) -> Option<*mut Page<B>> {
        let chunk = base.allocate(Layout::new::<Page<B>>(), true).ok()?;
        let page = chunk.pointer().as_ptr().cast::<Page<B>>();
        // SAFETY: the chunk is ours, committed, and large and aligned enough for a page.
        unsafe {
            ptr::addr_of_mut!((*page).bits).write([AtomicU64::new(0)]);
            if !chunk.is_zeroed() {
                let slots = ptr::addr_of_mut!((*page).slots).cast::<Slot<B>>();
                for k in 0..SLOTS {
                    slots.add(k).write(Slot {
                        state: AtomicU8::new(FREE),
                        page: Cell::new(ptr::null()),
                        index: Cell::new(0),
                        cx: UnsafeCell::new(MaybeUninit::uninit()),
                    });
                }
            }
            // Otherwise every slot reads as FREE with null links already (see `Slot`).
            ptr::addr_of_mut!((*page).chunk).write(MaybeUninit::new(chunk));
        }
        match self.pages[i].compare_exchange(
            ptr::null_mut(),
            page,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Some(page),
            Err(other) => {
                // Another thread published first: give ours back.
                // SAFETY: never published; the chunk is moved out once and released.
                drop(unsafe { ptr::read((*page).chunk.as_ptr()) });
                Some(other)
            }
        }
    }

    /// Calls `f` with the context of every live slot (for statistics).
    pub fn for_each_live(&self, mut f: impl FnMut(&Context<'static, B>)) {
        for page in self.live_pages() {
            for slot in &page.slots {
                // The owner's exit waits out READING: inside the fork guard, so that a child
                // of `fork()` never inherits a READING slot whose reader is gone.
                let guard = ferroc_heap::fork::guard();
                guard.enter();
                if slot
                    .state
                    .compare_exchange(LIVE, READING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // SAFETY: READING keeps the owner from dropping or rewriting the context;
                    // `f` only reads its atomic counters.
                    f(unsafe { (*slot.cx.get()).assume_init_ref() });
                    slot.state.store(LIVE, Ordering::Release);
                }
                guard.leave();
            }
        }
    }
}

impl<B: BaseAlloc + 'static> Default for Pool<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: BaseAlloc + 'static> Slot<B> {
    /// The context in this slot.
    #[inline]
    pub fn context(&self) -> &Context<'static, B> {
        // SAFETY: a claimed slot holds an initialised context until `release`.
        unsafe { (*self.cx.get()).assume_init_ref() }
    }

    /// A pointer to the context, for the thread-local slot.
    #[inline]
    pub fn context_ptr(&self) -> *const Context<'static, B> {
        self.cx.get().cast()
    }

    /// The slot holding the context at `cx` (as stored in the thread-local slot).
    ///
    /// # Safety
    ///
    /// `cx` came from [`Slot::context_ptr`].
    pub unsafe fn from_context(cx: *const Context<'static, B>) -> &'static Slot<B> {
        let offset = core::mem::offset_of!(Slot<B>, cx);
        // SAFETY: the caller's contract: `cx` is the `cx` field of a slot in a live page.
        unsafe { &*cx.cast::<u8>().sub(offset).cast::<Slot<B>>() }
    }

    /// Drops the context (abandoning what is still live) and frees the slot. Called by the
    /// owning thread, once, after it stopped using the context.
    pub fn release(&'static self) {
        let backoff = Backoff::new();
        while self
            .state
            .compare_exchange(LIVE, EXITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
        // SAFETY: EXITING: no reader; the owner is done with it.
        unsafe { (*self.cx.get()).assume_init_drop() };
        self.state.store(FREE, Ordering::Relaxed);
        // SAFETY: the page outlives the pool's slots.
        let page = unsafe { &*self.page.get() };
        Bitmap::new(&page.bits, SLOTS).release(self.index.get(), 1);
    }
}

/// A pointer to a slot, to pass through C (the pthread key's value).
#[cfg(feature = "libc")]
pub(crate) fn slot_to_raw<B: BaseAlloc + 'static>(
    slot: &'static Slot<B>,
) -> *mut core::ffi::c_void {
    core::ptr::NonNull::from(slot).as_ptr().cast()
}
