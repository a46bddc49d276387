//! [`ThreadGlobal`]: a global allocator with one context per thread, found through a
//! const-initialised thread-local slot, and given back at thread exit.

use core::{
    alloc::Layout,
    ffi::c_void,
    marker::PhantomData,
    ptr::{self, NonNull},
};

use ferroc_arena::Arenas;
use ferroc_base::BaseAlloc;
use ferroc_heap::Context;

use crate::{
    common::Placeholder,
    pool::{Pool, Slot},
};

/// Where a thread finds its context: a thread-local pointer that reads as the placeholder
/// until [`set`](Self::set) stores a context of its own.
///
/// # Safety
///
/// `get` returns, for the calling thread, the last value `set` stored on it, or `placeholder`
/// if there was none; neither allocates, panics nor unwinds, and both work during thread-local
/// destruction.
pub unsafe trait ThreadSlot<B: BaseAlloc + 'static> {
    /// The calling thread's context pointer, or `placeholder`.
    fn get(placeholder: *const Context<'static, B>) -> *const Context<'static, B>;
    /// Stores the calling thread's context pointer.
    fn set(cx: *const Context<'static, B>, placeholder: *const Context<'static, B>);
}

/// A global allocator with per-thread contexts (made by [`config!`](crate::config)).
///
/// Each thread's slot starts at a shared placeholder context that never allocated: its direct
/// table points at the empty shard, so the first allocation of a thread falls to the slow
/// path, which sees the placeholder and gives the thread a context of its own from the
/// [`Pool`]. The fast paths never test whether the thread is initialised.
pub struct ThreadGlobal<B: BaseAlloc + 'static, S: ThreadSlot<B>> {
    arenas: Arenas<B>,
    placeholder: Placeholder<B>,
    pool: Pool<B>,
    slot: PhantomData<S>,
    #[cfg(feature = "libc")]
    exit: crate::exit::ExitKey,
    #[cfg(feature = "libc")]
    on_exit: unsafe extern "C" fn(*mut c_void),
    #[cfg(feature = "libc")]
    on_process_exit: extern "C" fn(),
    stats: crate::common::Retired,
}

impl<B: BaseAlloc + 'static, S: ThreadSlot<B>> ThreadGlobal<B, S> {
    /// The global `this` (the static being defined) over `base`, with the instance's
    /// thread-exit and process-exit hooks.
    pub const fn new(
        this: &'static Self,
        base: B,
        on_exit: unsafe extern "C" fn(*mut c_void),
        on_process_exit: extern "C" fn(),
    ) -> Self {
        #[cfg(not(feature = "libc"))]
        let _ = (on_exit, on_process_exit);
        ThreadGlobal {
            arenas: Arenas::new(base),
            placeholder: Placeholder(Context::new_read_only(&this.arenas)),
            pool: Pool::new(),
            slot: PhantomData,
            #[cfg(feature = "libc")]
            exit: crate::exit::ExitKey::new(),
            #[cfg(feature = "libc")]
            on_exit,
            #[cfg(feature = "libc")]
            on_process_exit,
            stats: crate::common::Retired::new(),
        }
    }

    /// The placeholder context every thread-local slot starts at (for the slot's initialiser).
    pub const fn placeholder_of(this: &'static Self) -> *const Context<'static, B> {
        &this.placeholder.0
    }

    /// The arenas.
    pub fn arenas(&'static self) -> &'static Arenas<B> {
        &self.arenas
    }

    /// The current thread's context, or the placeholder.
    #[inline(always)]
    fn current(&'static self) -> &'static Context<'static, B> {
        let cx = S::get(&self.placeholder.0);
        // SAFETY: the slot holds the placeholder or this thread's live context.
        unsafe { &*cx }
    }

    /// The current thread's own context, made on first use. `None` if none can be made.
    #[inline]
    fn owned(&'static self) -> Option<&'static Context<'static, B>> {
        let cx = self.current();
        if ptr::eq(cx, &self.placeholder.0) {
            self.init_thread()
        } else {
            Some(cx)
        }
    }

    #[cold]
    #[inline(never)]
    fn init_thread(&'static self) -> Option<&'static Context<'static, B>> {
        let slot = self.pool.claim(self.arenas.base(), &self.arenas)?;
        S::set(slot.context_ptr(), &self.placeholder.0);
        #[cfg(feature = "libc")]
        {
            // Before this thread's first block exists, so before any shard can be full.
            crate::fork::register_once();
            self.exit
                .register(crate::pool::slot_to_raw(slot), self.on_exit);
            self.stats.show_at_exit_once(self.on_process_exit);
        }
        Some(slot.context())
    }

    /// Hands a dead thread's context back (the pthread key destructor calls this).
    ///
    /// # Safety
    ///
    /// `slot` is the value this instance registered for the exiting thread.
    pub unsafe fn on_thread_exit(&'static self, slot: *mut c_void) {
        // SAFETY: registered by `init_thread` as a slot of our pool.
        let slot: &'static Slot<B> = unsafe { &*slot.cast::<Slot<B>>() };
        // Later allocations of this thread (from other destructors) start over cleanly.
        S::set(&self.placeholder.0, &self.placeholder.0);
        self.stats.retire(slot.context());
        slot.release();
    }

    /// Allocates (the `GlobalAlloc::alloc` path). Null when out of memory.
    #[inline(always)]
    pub fn alloc(&'static self, layout: Layout) -> *mut u8 {
        if let Some(p) = self.allocate_small(layout.size(), layout.align()) {
            return p.as_ptr();
        }
        self.alloc_slow(layout)
    }

    /// The small fast path of the current thread (see `Context::allocate_small`): `None` when
    /// the request is not small or needs the slow path.
    #[inline(always)]
    pub fn allocate_small(&'static self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.current().allocate_small(size, align)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&'static self, layout: Layout) -> *mut u8 {
        self.owned()
            .and_then(|cx| cx.allocate(layout))
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    /// Allocates zeroed memory. Null when out of memory.
    #[inline]
    pub fn alloc_zeroed(&'static self, layout: Layout) -> *mut u8 {
        self.owned()
            .and_then(|cx| cx.allocate_zeroed(layout))
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    /// Frees a block of this allocator (from any thread).
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator.
    #[inline(always)]
    pub unsafe fn dealloc(&'static self, ptr: NonNull<u8>) {
        // SAFETY: the placeholder only reads on this path (its id owns no slab).
        unsafe { self.current().free(ptr) }
    }

    /// Resizes a block (in place when the block's class allows). Null when out of memory,
    /// leaving the old block alone.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator holding `old_size` bytes.
    pub unsafe fn realloc(
        &'static self,
        ptr: NonNull<u8>,
        old_size: usize,
        new: Layout,
    ) -> *mut u8 {
        // SAFETY: the placeholder only reads on this path, and only when the block stays.
        if unsafe { self.current().fits_in_place(ptr, new) } {
            return ptr.as_ptr();
        }
        self.owned()
            // SAFETY: forwarded.
            .and_then(|cx| unsafe { cx.reallocate(ptr, old_size, new) })
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    /// The usable size of a live block.
    ///
    /// # Safety
    ///
    /// `ptr` is a live block of this allocator.
    #[inline]
    pub unsafe fn usable_size(&'static self, ptr: NonNull<u8>) -> usize {
        // SAFETY: forwarded.
        unsafe { self.current().usable_size(ptr) }
    }

    /// Collects the current thread's context (see `Context::collect`); with `force`, also
    /// takes over abandoned slabs and purges free memory to the OS at once.
    pub fn collect(&'static self, force: bool) {
        if let Some(cx) = self.owned() {
            cx.collect(force);
        }
    }

    /// Statistics over every thread, live and exited.
    #[cfg(feature = "stat")]
    pub fn stats(&'static self) -> ferroc_heap::Stats {
        let mut s = self.stats.snapshot();
        self.pool.for_each_live(|cx| s.merge(&cx.stats()));
        s.add_arenas(&self.arenas.stats());
        s
    }

    /// Prints the statistics to standard error without allocating (the `FERROC_SHOW_STATS`
    /// hook).
    pub fn show_stats(&'static self) {
        #[cfg(all(feature = "stat", feature = "libc"))]
        crate::print::print_stats(&self.stats());
    }
}
