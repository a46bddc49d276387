//! The pool of thread slots: stable homes for the contexts of live threads.
//!
//! A thread's context must not move while the thread lives (its thread-local slot points at
//! it), and must not come from the allocator it serves. Slots therefore live in pages taken
//! straight from the base, 64 slots a page, claimed and released through a per-page
//! [`Bitmap`]; a slot freed at thread exit is reused by the next new thread, so thousands of
//! threads coming and going reuse a handful of pages.
//!
//! # Slot states (`SlotState`)
//! `FREE → INIT → LIVE ⇄ READING`, `LIVE → EXITING → FREE`. The owner writes its context only
//! in `INIT` (before others can look at it) and drops it in `EXITING`; a statistics reader
//! moves `LIVE → READING` with a CAS, reads the context's counters (atomics), and moves it
//! back. The exiting owner waits out a reader with a `CAS(LIVE → EXITING)` loop, so a reader
//! never sees a context being written or dropped. A reader holds `READING` inside
//! `ferroc_heap::fork`'s guard, so `fork()` (with ferroc-global's handlers) never copies a
//! `READING` slot into a child, where its owner's exit would wait for ever.
//!
//! # Invariants
//! - A slot's page bit is set from its claim until its release; only the bit's holder (the
//!   owner) moves the state out of `FREE`, `INIT`, `LIVE` (to `EXITING`) and `EXITING`; a
//!   reader only moves `LIVE ⇄ READING`.
//! - The content is initialised exactly while the state is `LIVE` or `READING`, and between
//!   the owner's `INIT` and its `EXITING → FREE` (the owner's own view).
//! - Page `i` is published once (a CAS from null) with its bitmap and slots written, and never
//!   changes or goes away afterwards; pages are published in order, so the first null ends
//!   the list.
//!
//! # Orderings, and why each suffices
//! - `INIT` is stored `Relaxed`: no other thread reads a slot's content in `INIT`, and a
//!   reader's CAS expects `LIVE`. `LIVE` is stored `Release` after the content is written, and
//!   the reader's `LIVE → READING` CAS is `Acquire`: the reader sees the whole content.
//! - The reader's `READING → LIVE` store is `Release` and the owner's `LIVE → EXITING` CAS is
//!   `Acquire`: the reader's last read happens-before the owner drops the content.
//! - `FREE` is stored `Relaxed`; the slot's next life begins with a claim of its page bit,
//!   whose `Acquire` pairs with the release's `Release` (see `ferroc_base::bitmap`): the
//!   previous life, drop included, happens-before the next one.
//! - A page is published with an `AcqRel` CAS (its `Release` half publishes the bitmap and
//!   slots written before it; the `Acquire` half is for the failure value's sake, read with
//!   `Acquire`); loads of the table are `Acquire`. A thread that loses the race gives its
//!   unpublished chunk back.
//!
//! The loom models (`loom_tests` below, run by `cargo xtask test-loom`) drive this code with a
//! probe for content: an owner exiting while a reader reads, two threads claiming slots and
//! pages at once, and a released slot reused.

use core::{alloc::Layout, cell::Cell, mem::MaybeUninit, ptr};

use ferroc_base::{
    BaseAlloc, Chunk,
    bitmap::Bitmap,
    sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, Ordering},
};
#[cfg(not(ferroc_loom))]
use ferroc_heap::Context;

#[cfg(not(ferroc_loom))]
use core::cell::UnsafeCell;
/// A slot's content cell: loom's under loom, so that the models check every access to a
/// slot's content against the state word's orderings.
#[cfg(ferroc_loom)]
use loom::cell::UnsafeCell;

/// Slots per page (one under loom, so that two threads need two pages).
const SLOTS: usize = if cfg!(ferroc_loom) { 1 } else { 64 };
/// Pages at most: 256 × 64 = 16,384 threads alive at once (two pages under loom).
const PAGES: usize = if cfg!(ferroc_loom) { 2 } else { 256 };

/// What a slot holds: a thread's context (under loom, where there is none, a model's probe).
#[cfg(not(ferroc_loom))]
pub type Content<B> = Context<'static, B>;
/// What a slot holds: a thread's context (under loom, where there is none, a model's probe).
#[cfg(ferroc_loom)]
pub type Content<B> = core::marker::PhantomData<B>;

/// The states of a slot (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// Nobody's; the page bit is clear (or about to be taken). All zero bytes.
    Free = 0,
    /// Claimed; the owner is writing the content.
    Init,
    /// The content is there; readers may borrow it.
    Live,
    /// A reader is reading the content; the owner's exit waits.
    Reading,
    /// The owner is dropping the content.
    Exiting,
}

/// A slot's state word: the state machine of the module docs, with its orderings.
struct SlotState(AtomicU8);

impl SlotState {
    /// `FREE`.
    fn new() -> Self {
        SlotState(AtomicU8::new(State::Free as u8))
    }

    /// Owner, having claimed the slot's page bit: `FREE → INIT`. `Relaxed`: nobody reads an
    /// `INIT` slot's content, and readers expect `LIVE`.
    #[inline]
    fn init(&self) {
        self.0.store(State::Init as u8, Ordering::Relaxed);
    }

    /// Owner, the content written: `INIT → LIVE`, `Release`, so a reader's `Acquire` sees
    /// the content.
    #[inline]
    fn publish(&self) {
        self.0.store(State::Live as u8, Ordering::Release);
    }

    /// Reader: `LIVE → READING` if the slot is live (`Acquire`: the content's writes, and a
    /// previous reader's, happen-before). False if it is not live (or another reader has it).
    #[inline]
    fn begin_read(&self) -> bool {
        self.0
            .compare_exchange(
                State::Live as u8,
                State::Reading as u8,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Reader: `READING → LIVE`, `Release`, so its reads happen-before the owner's exit.
    #[inline]
    fn end_read(&self) {
        self.0.store(State::Live as u8, Ordering::Release);
    }

    /// Owner: `LIVE → EXITING`, waiting out a reader (`Acquire`, against `end_read`).
    fn begin_exit(&self) {
        #[cfg(not(ferroc_loom))]
        let backoff = crossbeam_utils::Backoff::new();
        while self
            .0
            .compare_exchange(
                State::Live as u8,
                State::Exiting as u8,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            #[cfg(not(ferroc_loom))]
            backoff.snooze();
            #[cfg(ferroc_loom)]
            ferroc_base::sync::spin_loop();
        }
    }

    /// Owner, the content dropped: `EXITING → FREE`. `Relaxed`: the page bit's release that
    /// follows publishes it to the next claimer.
    #[inline]
    fn free(&self) {
        self.0.store(State::Free as u8, Ordering::Relaxed);
    }
}

/// A stable home for one thread's context.
///
/// All zero bytes are a valid free slot, so a page that comes zeroed from the base is used
/// as it is: only the slots threads claim are ever written, and a process with one thread
/// touches one slot's memory, not the whole page's (64 contexts, some 170 KiB). (Not under
/// loom, whose atomics are not plain bytes: there every slot is written.)
pub struct Slot<B: BaseAlloc + 'static, T: 'static = Content<B>> {
    state: SlotState,
    /// The page and the index in it, written by the claimer (for `release`).
    page: Cell<*const Page<B, T>>,
    index: Cell<usize>,
    cx: UnsafeCell<MaybeUninit<T>>,
}

struct Page<B: BaseAlloc + 'static, T: 'static> {
    chunk: MaybeUninit<Chunk<B>>,
    bits: [AtomicU64; 1],
    slots: [Slot<B, T>; SLOTS],
}

/// The pool.
pub struct Pool<B: BaseAlloc + 'static, T: 'static = Content<B>> {
    pages: [AtomicPtr<Page<B, T>>; PAGES],
}

// SAFETY: slots are handed to one thread at a time (bitmap claim); everything shared is
// atomic; pages live as long as the pool.
unsafe impl<B: BaseAlloc + 'static, T: 'static> Sync for Pool<B, T> {}

impl<B: BaseAlloc + 'static, T: 'static> Pool<B, T> {
    /// An empty pool.
    #[cfg(not(ferroc_loom))]
    pub const fn new() -> Self {
        Pool {
            pages: [const { AtomicPtr::new(ptr::null_mut()) }; PAGES],
        }
    }

    /// An empty pool.
    #[cfg(ferroc_loom)]
    pub fn new() -> Self {
        Pool {
            pages: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    fn live_pages(&self) -> impl Iterator<Item = &Page<B, T>> {
        self.pages
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .take_while(|p| !p.is_null())
            // SAFETY: a published page is never unpublished or freed (see the invariants).
            .map(|p| unsafe { &*p })
    }

    /// Claims a slot and puts `init()` in it. `None` if the base cannot give a page or every
    /// page is full.
    pub fn claim_with(&self, base: &B, init: impl FnOnce() -> T) -> Option<&'static Slot<B, T>> {
        for i in 0..PAGES {
            let mut page = self.pages[i].load(Ordering::Acquire);
            if page.is_null() {
                page = self.add_page(i, base)?;
            }
            // SAFETY: a published page is never unpublished or freed (see the invariants).
            let page: &'static Page<B, T> = unsafe { &*page };
            if let Some(k) = Bitmap::new(&page.bits, SLOTS).claim(1, 1, 0) {
                let slot = &page.slots[k];
                slot.page.set(page);
                slot.index.set(k);
                slot.state.init();
                slot.cx.with_mut_ptr(|cx| {
                    // SAFETY: the slot is ours (bit claimed) and in state INIT, in which
                    // nobody else reads it.
                    unsafe { (*cx).write(init()) };
                });
                slot.state.publish();
                return Some(slot);
            }
        }
        None
    }

    /// Makes page `i` (or returns the one another thread made first).
    #[cold]
    fn add_page(&self, i: usize, base: &B) -> Option<*mut Page<B, T>> {
        let chunk = base.allocate(Layout::new::<Page<B, T>>(), true).ok()?;
        let page = chunk.pointer().as_ptr().cast::<Page<B, T>>();
        // SAFETY: the chunk is ours, committed, and large and aligned enough for a page: the
        // field is in it (no read, no reference made).
        let bits = unsafe { &raw mut (*page).bits };
        // SAFETY: the field lies in our committed chunk, which nobody else references yet.
        unsafe { bits.write([AtomicU64::new(0)]) };
        if cfg!(ferroc_loom) || !chunk.is_zeroed() {
            // SAFETY: `page` points into our committed chunk, large and aligned enough for a
            // page: the field is in it (no read, no reference made).
            let slots = unsafe { &raw mut (*page).slots }.cast::<Slot<B, T>>();
            for k in 0..SLOTS {
                // SAFETY: `k < SLOTS`: within the page's slot array, in our chunk.
                let slot = unsafe { slots.add(k) };
                // SAFETY: the chunk is ours, committed, and holds the page, slots included.
                unsafe { slot.write(Slot::empty()) };
            }
        }
        // Otherwise every slot reads as FREE with null links already (see `Slot`).
        // SAFETY: `page` points into our committed chunk, large and aligned enough for a page:
        // the field is in it (no read, no reference made).
        let chunk_field = unsafe { &raw mut (*page).chunk };
        // SAFETY: the field lies in our committed chunk, which nobody else references yet.
        unsafe { chunk_field.write(MaybeUninit::new(chunk)) };
        match self.pages[i].compare_exchange(
            ptr::null_mut(),
            page,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Some(page),
            Err(other) => {
                // Another thread published first: give ours back (the chunk the page lies in
                // is dropped, which releases it).
                let chunk = chunk_field.cast::<Chunk<B>>();
                // SAFETY: never published, so still ours; the field was written just above
                // (`MaybeUninit` has its content's layout) and is moved out once.
                drop(unsafe { ptr::read(chunk) });
                Some(other)
            }
        }
    }

    /// Calls `f` with the content of every live slot (for statistics).
    pub fn for_each_live(&self, mut f: impl FnMut(&T)) {
        for page in self.live_pages() {
            for slot in &page.slots {
                // The owner's exit waits out READING: inside the fork guard, so that a child
                // of `fork()` never inherits a READING slot whose reader is gone.
                let guard = ferroc_heap::fork::guard();
                guard.enter();
                if slot.state.begin_read() {
                    slot.cx.with_ptr(|cx| {
                        // SAFETY: READING keeps the owner from dropping or rewriting the
                        // cell while we borrow it.
                        let cx = unsafe { &*cx };
                        // SAFETY: LIVE (acquired by `begin_read`) says the content is written.
                        f(unsafe { cx.assume_init_ref() });
                    });
                    slot.state.end_read();
                }
                guard.leave();
            }
        }
    }
}

#[cfg(not(ferroc_loom))]
impl<B: BaseAlloc + 'static> Pool<B> {
    /// Claims a slot and puts a new context over `arenas` in it. `None` if the base cannot
    /// give a page or every page is full.
    pub fn claim(
        &self,
        base: &B,
        arenas: &'static ferroc_arena::Arenas<B>,
    ) -> Option<&'static Slot<B>> {
        self.claim_with(base, || Context::new(arenas))
    }
}

impl<B: BaseAlloc + 'static, T: 'static> Default for Pool<B, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: BaseAlloc + 'static, T: 'static> Slot<B, T> {
    /// A free slot.
    fn empty() -> Self {
        Slot {
            state: SlotState::new(),
            page: Cell::new(ptr::null()),
            index: Cell::new(0),
            cx: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The content of this slot (the context).
    #[inline]
    pub fn context(&self) -> &T {
        self.cx.with_ptr(|cx| {
            // SAFETY: only the owner (the caller) writes the cell, at the claim and at
            // `release`, neither while it holds this borrow.
            let cx = unsafe { &*cx };
            // SAFETY: a claimed slot holds initialised content until `release`.
            unsafe { cx.assume_init_ref() }
        })
    }

    /// Drops the content (for a context: abandoning what is still live) and frees the slot.
    /// Called by the owning thread, once, after it stopped using the content.
    pub fn release(&'static self) {
        self.state.begin_exit();
        self.cx.with_mut_ptr(|cx| {
            // SAFETY: EXITING: no reader, and the owner (the caller) is done with it.
            let cx = unsafe { &mut *cx };
            // SAFETY: written at the claim, dropped once (this fn is called once a life).
            unsafe { cx.assume_init_drop() };
        });
        self.state.free();
        // SAFETY: `page` was set at the claim to the slot's page, which is never freed.
        let page = unsafe { &*self.page.get() };
        Bitmap::new(&page.bits, SLOTS).release(self.index.get(), 1);
    }
}

#[cfg(not(ferroc_loom))]
impl<B: BaseAlloc + 'static> Slot<B> {
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
        // SAFETY: the caller's contract: `cx` is the `cx` field of a slot, so `offset` bytes
        // before it is still inside that slot (its start).
        let slot = unsafe { cx.cast::<u8>().sub(offset) }.cast::<Slot<B>>();
        // SAFETY: the slot lies in a page, which is never freed.
        unsafe { &*slot }
    }
}

/// Pointer access to a slot's content cell, the same under loom (which checks each access)
/// and without.
trait ContentAccess<T> {
    fn with_ptr<R>(&self, f: impl FnOnce(*const T) -> R) -> R;
    fn with_mut_ptr<R>(&self, f: impl FnOnce(*mut T) -> R) -> R;
}

impl<T> ContentAccess<T> for UnsafeCell<T> {
    #[inline(always)]
    fn with_ptr<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(ferroc_loom)]
        return self.with(f);
        #[cfg(not(ferroc_loom))]
        f(self.get())
    }

    #[inline(always)]
    fn with_mut_ptr<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(ferroc_loom)]
        return self.with_mut(f);
        #[cfg(not(ferroc_loom))]
        f(self.get())
    }
}

/// A pointer to a slot, to pass through C (the pthread key's value).
#[cfg(all(feature = "libc", not(ferroc_loom)))]
pub(crate) fn slot_to_raw<B: BaseAlloc + 'static>(
    slot: &'static Slot<B>,
) -> *mut core::ffi::c_void {
    core::ptr::NonNull::from(slot).as_ptr().cast()
}

#[cfg(all(test, ferroc_loom))]
mod loom_tests;
